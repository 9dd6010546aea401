//! `mpserver serve`: the configuration, logging, the key, TLS, the
//! listener, signals, the server.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::ArgMatches;
use mp_proto::auth::AuthOptions;
use mp_server::durable::DurableOptions;
use mp_server::MetricsEndpoint;
use mp_server::{Limits, Listen, Registry, Server};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::{KeyArgs, LogFormat, ServeArgs, ServeSettings};
use crate::{authkey, config, BoxError};

/// The runtime's worker count for `--threads requested` on a machine with
/// `cpus` CPUs. 0 is "auto": one per CPU, except that on one or two CPUs a
/// single thread serves everything, because there the cross-thread
/// wake-ups of a multi-threaded runtime cost a one-call-at-a-time client
/// more than a second worker gains (measured: `bench/README.md`, `manager`).
fn worker_threads(requested: usize, cpus: usize) -> usize {
    match requested {
        0 if cpus <= 2 => 1,
        0 => cpus,
        n => n,
    }
}

/// Standard error that never fails: when whoever reads the log goes away
/// (a closed pipe), log lines are dropped and the server keeps serving,
/// instead of tracing-subscriber's fallback `eprintln!` panicking.
struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn init_logging(format: LogFormat, level: &str) -> Result<(), BoxError> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("bad --log-level {level:?}: {e}"))?;
    // Colour codes only for a person at a terminal: in a file, a pipe or
    // a container's log they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| LogSink);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(())
}

/// Raises the open-file limit to the hard limit: every connection is a
/// descriptor, and the default soft limit (often 1024) would cap a server
/// far below `--max-connections`.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid, owned struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let old = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(from = old, to = lim.rlim_max, "raised the open-file limit");
            }
        }
    }
}

/// The TLS configuration the settings ask for, if any.
fn tls_config(
    args: &ServeSettings,
) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, BoxError> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let config = mp_server::tls::server_config(cert, key, args.tls_client_ca.as_deref())?;
            tracing::info!(
                cert = %cert.display(),
                client_certificates = args.tls_client_ca.is_some(),
                "TLS on"
            );
            Ok(Some(config))
        }
        (None, None) if args.tls_client_ca.is_some() => {
            Err("--tls-client-ca needs --tls-cert and --tls-key".into())
        }
        (None, None) => Ok(None),
        _ => Err("--tls-cert and --tls-key go together".into()),
    }
}

/// Runs the server until a signal or a `shutdown` call (or, with
/// `--print-config`, prints the effective configuration).
pub fn run(args: ServeArgs, matches: &ArgMatches) -> Result<(), BoxError> {
    let resolved = config::resolve(&args, matches)?;
    if args.print_config {
        print!("{}", config::render(&resolved));
        return Ok(());
    }
    let args = resolved.settings;
    init_logging(args.log_format, &args.log_level)?;
    raise_fd_limit();
    let key_args = KeyArgs {
        authkey_file: args.authkey_file.clone(),
        authkey_env: args.authkey_env.clone(),
    };
    let tls = tls_config(&args)?;
    let (key, generated) = match authkey::from_args(&key_args)? {
        Some(key) => (key, None),
        None => {
            let g = authkey::generate()?;
            tracing::info!(path = %g.path.display(), "generated an authkey (mode 0600); clients need it");
            (g.key, Some(g.path))
        }
    };
    if !(args.handshake_timeout > 0.0 && args.handshake_timeout.is_finite()) {
        return Err("--handshake-timeout must be a positive number of seconds".into());
    }
    let limits = Limits {
        max_connections: args.max_connections.max(1),
        max_handshakes: args.max_handshakes.max(1),
        max_handshakes_per_source: args.max_handshakes_per_source.max(1),
        max_frame_bytes: args.max_frame_bytes,
        max_output_bytes: args.max_output_bytes.max(1),
        max_memory: args.max_memory,
        max_value_bytes: args.max_value_bytes,
        max_in_flight: args.max_in_flight.max(1),
        handshake_timeout: Duration::from_secs_f64(args.handshake_timeout),
        keepalive: (args.keepalive > 0).then(|| Duration::from_secs(args.keepalive)),
        dedicated_readers: args.dedicated_readers,
        shared_memory_channels: args.shared_memory_channels,
        ..Limits::default()
    };
    let shared = args
        .shared
        .iter()
        .map(|d| {
            d.parse::<mp_server::names::Declaration>()
                .map_err(|e| format!("--shared {d:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // `unix` is only set when it won over `listen` (see `config`).
    let listen = match &args.unix {
        Some(path) => Listen::Unix(path.clone()),
        None => Listen::Tcp(args.listen.clone()),
    };
    let auth = if args.legacy_auth {
        AuthOptions::legacy()
    } else {
        AuthOptions::default()
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = match worker_threads(args.threads, cpus) {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let metrics_listen = args.metrics_listen.clone();
    let (data_dir, appendfsync, rewrite_min_bytes) = (
        args.data_dir.clone(),
        args.appendfsync,
        args.rewrite_min_bytes,
    );
    let result = runtime.block_on(async move {
        let mut server = Server::new(Registry::sync_manager(), key)
            .limits(limits)
            .auth_options(auth)
            .shared(shared);
        if let Some(dir) = data_dir {
            server = server.data_dir(
                DurableOptions::new(dir)
                    .fsync(appendfsync.into())
                    .rewrite_min_bytes(rewrite_min_bytes),
            );
        }
        if let Some(tls) = tls {
            server = server.tls(tls);
        }
        let server = server.bind(&listen).await?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        if let Some(address) = metrics_listen {
            let endpoint = MetricsEndpoint::bind(&address, server.engine().clone()).await?;
            tokio::spawn(endpoint.run());
        }
        let engine = server.engine().clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
                _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            }
            engine.shutdown().trigger();
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "serving at {}", server.address())?;
        out.flush()?;
        drop(out);
        server.run().await?;
        Ok::<(), BoxError>(())
    });
    if let Some(path) = generated {
        let _ = std::fs::remove_file(path);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::worker_threads;

    #[test]
    fn auto_threads_is_one_on_small_machines_and_one_per_cpu_otherwise() {
        assert_eq!(worker_threads(0, 1), 1);
        assert_eq!(worker_threads(0, 2), 1);
        assert_eq!(worker_threads(0, 3), 3);
        assert_eq!(worker_threads(0, 16), 16);
    }

    #[test]
    fn an_explicit_count_is_kept() {
        assert_eq!(worker_threads(1, 16), 1);
        assert_eq!(worker_threads(2, 2), 2);
        assert_eq!(worker_threads(5, 1), 5);
    }
}
