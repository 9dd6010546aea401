//! Reading a server's Prometheus metrics the way a scraper does: a plain
//! HTTP/1.1 GET over TCP, no client library, and a parser for the text
//! format's sample lines.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::mpserver::{Options, ServerProcess};

/// Starts a server with `options` and its metrics on loopback; returns it
/// and its metrics address.
pub fn start_with_metrics(mut options: Options) -> (ServerProcess, String) {
    options.args.splice(
        0..0,
        ["--metrics-listen".to_string(), "127.0.0.1:0".to_string()],
    );
    let server = ServerProcess::start_with(options);
    let metrics = metrics_address(&server);
    (server, metrics)
}

/// The metrics address a server started with `--metrics-listen` logged
/// (the JSON log line `serving metrics` with its `address` field).
pub fn metrics_address(server: &ServerProcess) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = server.log.recv_timeout(left) else {
            break;
        };
        if !line.contains("serving metrics") {
            continue;
        }
        let start = line.find("\"address\":\"").expect("an address field") + 11;
        let end = line[start..].find('"').expect("the address's end") + start;
        return line[start..end].to_owned();
    }
    panic!("the server logged no `serving metrics` line in 30 s");
}

/// One scrape: every sample, by its series (`name{labels}`).
#[derive(Debug)]
pub struct Scrape {
    /// The response body.
    pub text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    /// The value of `series`, exactly as written before the value
    /// (`mpserver_calls_total{typeid="dict",method="get"}`); panics with
    /// the whole scrape if it is missing.
    pub fn get(&self, series: &str) -> f64 {
        match self.samples.get(series) {
            Some(v) => *v,
            None => panic!("no sample {series} in:\n{}", self.text),
        }
    }

    /// The value of `series` as a whole number.
    pub fn int(&self, series: &str) -> u64 {
        let v = self.get(series);
        assert!(v >= 0.0 && v.fract() == 0.0, "{series} = {v}");
        v as u64
    }

    /// Parses the text format's sample lines (comments skipped).
    pub fn parse(text: String) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("`series value`");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
                };
                (series.to_owned(), value)
            })
            .collect();
        Scrape { text, samples }
    }
}

/// `GET /metrics` from `address`; panics unless the answer is a 200 in
/// the Prometheus text format.
pub fn scrape(address: &str) -> Scrape {
    let mut s = TcpStream::connect(address).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: text/plain\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .parse()
        .unwrap();
    assert_eq!(length, body.len());
    Scrape::parse(body.to_owned())
}
