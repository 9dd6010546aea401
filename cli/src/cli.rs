//! The command line: every verb, flag and the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The manager server of the Rust `multiprocessing`.
#[derive(Parser, Debug)]
#[command(
    name = "mpserver",
    version,
    about = "Host shared objects (dicts, lists, queues, locks, …) for multiprocessing clients",
    long_about = "mpserver hosts the shared objects of Python's multiprocessing SyncManager — dict, \
list, Queue, JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier, \
Namespace, Value and Array — for clients that connect with the server's address and authkey. \
Connections use CPython's framing and HMAC challenge-response authentication, then CBOR messages: \
data, never code.\n\n\
When a client disconnects — cleanly, killed, or cut off — the server drops its references and \
releases every lock it held.",
    after_help = "EXAMPLES:\n    \
mpserver serve                                   # 127.0.0.1, free port, generated key\n    \
mpserver serve --listen 0.0.0.0:50000 --authkey-file /etc/mpserver/key\n    \
mpserver serve --unix /run/mpserver.sock --authkey-env MPSERVER_AUTHKEY\n    \
mpserver status --address 127.0.0.1:50000 --authkey-file key\n    \
mpserver objects --address /run/mpserver.sock --authkey-env MPSERVER_AUTHKEY --json\n\n\
EXIT STATUS:\n    0 on success (serve: after SIGINT, SIGTERM or a shutdown call); 1 on any error."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server until SIGINT, SIGTERM or a `shutdown` call.
    #[command(
        long_about = "Run the server. Prints one line, `serving at ADDR`, on standard \
output once it accepts connections (with the real port when --listen asks for port 0). Logs go \
to standard error. Without --authkey-file or --authkey-env, a random key is written to a new file \
readable only by you, and its path (never the key) is logged. On SIGINT or SIGTERM the server \
stops accepting, answers the calls in flight (waiting calls get ShuttingDown), and exits 0."
    )]
    Serve(ServeArgs),
    /// Check that a server answers.
    Ping(AdminArgs),
    /// Show uptime, connections and objects by typeid.
    Status(AdminArgs),
    /// List every live shared object with its typeid and refcount.
    Objects(AdminArgs),
    /// Ask a server to stop gracefully.
    Shutdown(AdminArgs),
}

/// Where the key comes from.
#[derive(Args, Debug, Clone, Default)]
#[group(multiple = false)]
pub struct KeyArgs {
    /// Read the authkey from FILE (its bytes, one trailing newline ignored).
    #[arg(long, value_name = "FILE")]
    pub authkey_file: Option<PathBuf>,
    /// Read the authkey from environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub authkey_env: Option<String>,
}

/// Log output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `serve`'s flags.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Listen on TCP HOST:PORT (port 0 picks a free port) [default: 127.0.0.1:0].
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "unix")]
    pub listen: Option<String>,
    /// Listen on a Unix socket at PATH instead of TCP.
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// The authkey.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Refuse connections beyond N at once.
    #[arg(long, value_name = "N", default_value_t = 16_384)]
    pub max_connections: usize,
    /// Close connections that send a frame larger than N bytes.
    #[arg(long, value_name = "N", default_value_t = 64 * 1024 * 1024)]
    pub max_frame_bytes: u64,
    /// Answer LimitExceeded beyond N blocking calls waiting per connection.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Drop peers that have not authenticated within SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub handshake_timeout: f64,
    /// Worker threads serving connections (0: one per CPU; 1: a single
    /// thread, no cross-thread hand-offs).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Probe idle TCP peers after SECS seconds, so a vanished host's session
    /// (and the locks it holds) ends within about half a minute more; 0
    /// turns keepalive off.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub keepalive: u64,
    /// Serve Prometheus metrics on HTTP GET http://HOST:PORT/metrics (no
    /// authentication: bind loopback or a monitoring network).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    /// Accept CPython <= 3.11 clients (HMAC-MD5 handshake).
    #[arg(long)]
    pub legacy_auth: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
}

/// The admin verbs' flags.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The server: HOST:PORT or a Unix socket PATH.
    #[arg(long, value_name = "HOST:PORT|PATH")]
    pub address: String,
    /// The authkey.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Give up connecting after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub timeout: f64,
}
