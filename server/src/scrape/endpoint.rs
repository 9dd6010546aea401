//! `GET /metrics` over plain HTTP/1.1: the smallest responder that a
//! Prometheus scraper (or `curl`) needs, on tokio, so the server takes no
//! HTTP framework for one read-only page.
//!
//! Each scrape is one connection: the request head is read (at most
//! [`MAX_HEAD`] bytes, within [`READ_TIMEOUT`]), answered, and the
//! connection closed. At most [`MAX_SCRAPERS`] are served at once; a
//! connection past that cuts the oldest one still served, so connections
//! that open and say nothing cannot keep a scraper waiting: a new scrape
//! is always served at once. Anything but `GET /metrics` gets a 4xx.
//! The endpoint carries no authentication: bind it to loopback or a
//! monitoring network (see deploy/README.md, "Metrics"); binding it
//! elsewhere logs a warning.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::render::{render, CONTENT_TYPE};
use crate::engine::Engine;
use crate::server::ServeError;

/// The longest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a scraper may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once.
pub const MAX_SCRAPERS: usize = 64;

/// A bound metrics listener.
pub struct MetricsEndpoint {
    listener: TcpListener,
    address: String,
    engine: Arc<Engine>,
}

impl MetricsEndpoint {
    /// Listens on `address` (`HOST:PORT`, port 0 for a free one) for
    /// scrapes of `engine`'s metrics.
    pub async fn bind(address: &str, engine: Arc<Engine>) -> Result<Self, ServeError> {
        let bind_error = |source| ServeError::Bind {
            address: address.to_owned(),
            source,
        };
        let listener = TcpListener::bind(address).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        if !local.ip().is_loopback() {
            tracing::warn!(
                address = %local,
                "serving metrics beyond this host: the endpoint has no authentication, \
                 so anyone who can reach it can read object counts and traffic figures; \
                 bind it to loopback or a monitoring network"
            );
        }
        let local = local.to_string();
        Ok(MetricsEndpoint {
            listener,
            address: local,
            engine,
        })
    }

    /// The address scrapers use (the real port if 0 was asked).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Serves scrapes until the engine shuts down.
    pub async fn run(self) {
        tracing::info!(address = %self.address, "serving metrics");
        let mut serving: VecDeque<AbortHandle> = VecDeque::new();
        loop {
            tokio::select! {
                _ = self.engine.shutdown.wait() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        serving.retain(|task| !task.is_finished());
                        if serving.len() >= MAX_SCRAPERS {
                            if let Some(oldest) = serving.pop_front() {
                                oldest.abort();
                            }
                        }
                        let engine = Arc::clone(&self.engine);
                        let task = tokio::spawn(async move {
                            let _ = scrape(stream, &engine).await;
                        });
                        serving.push_back(task.abort_handle());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request by its first line.
fn route(head: &[u8]) -> Route {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    if method != "GET" {
        return Route::MethodNotAllowed;
    }
    match target.split('?').next() {
        Some("/metrics") => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// Reads the request head: up to the blank line, at most [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(head))
}

async fn scrape(mut stream: TcpStream, engine: &Arc<Engine>) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let route = head.as_deref().map_or(Route::BadRequest, route);
    let (status, extra, body) = match route {
        Route::Metrics => ("200 OK", "", render(engine)),
        Route::NotFound => ("404 Not Found", "", "only /metrics is served\n".into()),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "Allow: GET\r\n",
            "only GET is served\n".into(),
        ),
        Route::BadRequest => ("400 Bad Request", "", "bad request\n".into()),
    };
    let content_type = if route == Route::Metrics {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(
            route(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"),
            Route::BadRequest
        );
        assert_eq!(route(b""), Route::BadRequest);
    }

    #[tokio::test]
    async fn a_scrape_over_tcp_gets_the_text_format() {
        let engine = Engine::new(crate::Registry::sync_manager());
        engine.declare(&"jobs=Queue".parse().unwrap()).unwrap();
        let endpoint = MetricsEndpoint::bind("127.0.0.1:0", Arc::clone(&engine))
            .await
            .unwrap();
        let address = endpoint.address().to_owned();
        let serving = tokio::spawn(endpoint.run());
        let get = |request: &'static [u8]| {
            let address = address.clone();
            async move {
                let mut s = TcpStream::connect(&address).await.unwrap();
                s.write_all(request).await.unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            }
        };
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("\r\nContent-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.contains("\nmpserver_objects{typeid=\"dict\"} 0\n"),
            "{ok}"
        );
        assert!(ok.contains("\nmpserver_named_objects 1\n"), "{ok}");
        assert!(
            ok.contains("\nmpserver_objects{typeid=\"Queue\"} 1\n"),
            "{ok}"
        );
        assert!(
            ok.contains("\nmpserver_call_duration_seconds_count 0\n"),
            "{ok}"
        );
        let missing = get(b"GET /other HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        engine.shutdown().trigger();
        serving.await.unwrap();
    }
}
