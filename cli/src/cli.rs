//! The command line: every verb, flag and the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

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
mpserver serve --config /etc/mpserver/mpserver.toml --print-config\n    \
mpserver serve --listen 0.0.0.0:50000 --tls-cert cert.pem --tls-key key.pem --authkey-file key\n    \
mpserver serve --shared jobs=Queue --data-dir /var/lib/mpserver --appendfsync always\n    \
mpserver status --address 127.0.0.1:50000 --authkey-file key\n    \
mpserver objects --address /run/mpserver.sock --authkey-env MPSERVER_AUTHKEY --json\n    \
mpserver ping --address db1:50000 --authkey-file key --tls-ca ca.pem\n\n\
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
        // A wrapper's flags can be overridden by appending: the last wins.
        args_override_self = true,
        long_about = "Run the server. Prints one line, `serving at ADDR`, on standard \
output once it accepts connections (with the real port when --listen asks for port 0). Logs go \
to standard error. Without --authkey-file or --authkey-env, a random key is written to a new file \
readable only by you, and its path (never the key) is logged. On SIGINT or SIGTERM the server \
stops accepting, answers the calls in flight (waiting calls get ShuttingDown), and exits 0.\n\n\
Every setting comes from a flag, else an MPSERVER_* environment variable, else the TOML file \
given by --config (or MPSERVER_CONFIG), else its default; --print-config shows the result and \
where each value came from. With --tls-cert and --tls-key every connection is TLS (and with \
--tls-client-ca, mutual TLS); the authkey handshake runs inside it. Listening beyond loopback \
without TLS logs a warning."
    )]
    Serve(Box<ServeArgs>),
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
    /// Read the authkey from FILE: its bytes, one trailing newline ignored
    /// (clients: `multiprocessing::managers::read_authkey_file`).
    #[arg(long, value_name = "FILE")]
    pub authkey_file: Option<PathBuf>,
    /// Read the authkey from environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub authkey_env: Option<String>,
}

/// Log output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// When the data directory's log is fsynced (Redis's `appendfsync`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    /// Before each answer to a change.
    Always,
    /// Once a second.
    Everysec,
    /// When the operating system decides.
    No,
}

impl From<AppendFsync> for mp_server::durable::Fsync {
    fn from(f: AppendFsync) -> Self {
        match f {
            AppendFsync::Always => mp_server::durable::Fsync::Always,
            AppendFsync::Everysec => mp_server::durable::Fsync::Everysec,
            AppendFsync::No => mp_server::durable::Fsync::No,
        }
    }
}

/// `serve`'s flags.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Read settings from this TOML file (keys: the flags' names without
    /// `--`); flags and MPSERVER_* variables override it.
    #[arg(long, value_name = "FILE", env = "MPSERVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML, each value with where it
    /// came from (flag, environment, file, default), and exit.
    #[arg(long)]
    pub print_config: bool,
    /// The settings.
    #[command(flatten)]
    pub settings: ServeSettings,
}

/// Everything `serve` can be told, from a flag, an `MPSERVER_…` variable
/// or the config file (the same names, in kebab-case). Values a layer did
/// not set come from the next one: flag > environment > file > default.
#[derive(Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeSettings {
    /// Listen on TCP HOST:PORT (port 0 picks a free port).
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "MPSERVER_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub listen: String,
    /// Listen on a Unix socket at PATH instead of TCP.
    #[arg(long, value_name = "PATH", env = "MPSERVER_UNIX")]
    pub unix: Option<PathBuf>,
    /// Read the authkey from FILE: its bytes, one trailing newline ignored
    /// (clients: `multiprocessing::managers::read_authkey_file`).
    #[arg(long, value_name = "FILE", env = "MPSERVER_AUTHKEY_FILE")]
    pub authkey_file: Option<PathBuf>,
    /// Read the authkey from environment variable VAR.
    #[arg(long, value_name = "VAR", env = "MPSERVER_AUTHKEY_ENV")]
    pub authkey_env: Option<String>,
    /// Create an object at start and name it: NAME=TYPEID or
    /// NAME=TYPEID(ARGS) with Python literals (jobs=Queue, results=dict,
    /// q=Queue(maxsize=100)). Repeat for more (`;` between them in the
    /// variable). Clients find it with lookup(NAME); CPython clients with
    /// register(NAME) then m.NAME().
    #[arg(
        long = "shared",
        value_name = "NAME=TYPEID",
        env = "MPSERVER_SHARED",
        value_delimiter = ';'
    )]
    #[serde(default)]
    pub shared: Vec<String>,
    /// Keep the named objects, and the objects they hold, in DIR across
    /// restarts and crashes: a snapshot plus an append-only log, replayed
    /// at start (a --shared name restored from DIR keeps its object).
    /// Session objects stay in memory only. DIR is locked: a second
    /// server on it exits.
    #[arg(long, value_name = "DIR", env = "MPSERVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// When the data directory's log is fsynced: always (before each
    /// answer: an answered change survives a machine crash), everysec (a
    /// machine crash loses about the last second) or no (the OS decides).
    /// Every answered change survives a crash of the server itself.
    #[arg(
        long,
        value_enum,
        env = "MPSERVER_APPENDFSYNC",
        default_value_t = AppendFsync::Everysec
    )]
    pub appendfsync: AppendFsync,
    /// Rewrite the data directory's log into a new snapshot once the logs
    /// pass N bytes and twice the last snapshot.
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_REWRITE_MIN_BYTES",
        default_value_t = mp_server::durable::DEFAULT_REWRITE_MIN_BYTES
    )]
    pub rewrite_min_bytes: u64,
    /// Serve TLS with this certificate chain (PEM, leaf first); needs
    /// --tls-key.
    #[arg(long, value_name = "PEM", env = "MPSERVER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", env = "MPSERVER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Demand a client certificate signed by a CA in this PEM file.
    #[arg(long, value_name = "PEM", env = "MPSERVER_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse authenticated connections beyond N at once (peers still in
    /// their handshake do not count: see --max-handshakes).
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_MAX_CONNECTIONS",
        default_value_t = 16_384
    )]
    pub max_connections: usize,
    /// Close at once connections beyond N still in their handshake (not yet
    /// authenticated).
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_MAX_HANDSHAKES",
        default_value_t = 1024
    )]
    pub max_handshakes: usize,
    /// Close at once connections beyond N still in their handshake from one
    /// source address (an IPv4 address or an IPv6 /64).
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_MAX_HANDSHAKES_PER_SOURCE",
        default_value_t = 64
    )]
    pub max_handshakes_per_source: usize,
    /// Close connections that send a frame larger than N bytes (after an
    /// error frame saying so); answers larger than N are refused with
    /// LimitExceeded.
    #[arg(long, value_name = "N", env = "MPSERVER_MAX_FRAME_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_frame_bytes: u64,
    /// Stop answering and reading a connection's requests while N bytes
    /// of its answers are unwritten (the peer is not reading); it then
    /// holds at most N plus one answer of output.
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_MAX_OUTPUT_BYTES",
        default_value_t = mp_server::limits::DEFAULT_MAX_OUTPUT
    )]
    pub max_output_bytes: usize,
    /// Answer MemoryError to a store that would take the bytes held by
    /// every stored value and live object together past N (an estimate of
    /// what they take in memory; Redis's maxmemory).
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_MAX_MEMORY",
        default_value_t = mp_server::limits::DEFAULT_MAX_MEMORY
    )]
    pub max_memory: u64,
    /// Answer MemoryError to one operation that would store or build a
    /// value of more than N bytes (a repeat, a concatenation, a slice, a
    /// copy, what one extend or update adds), before anything is allocated.
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_MAX_VALUE_BYTES",
        default_value_t = mp_server::limits::DEFAULT_MAX_VALUE_BYTES
    )]
    pub max_value_bytes: u64,
    /// Answer LimitExceeded beyond N blocking calls waiting per connection.
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_MAX_IN_FLIGHT",
        default_value_t = 1024
    )]
    pub max_in_flight: usize,
    /// Drop peers that have not authenticated within SECS seconds (with
    /// TLS: the TLS handshake, then the authkey handshake, each).
    #[arg(
        long,
        value_name = "SECS",
        env = "MPSERVER_HANDSHAKE_TIMEOUT",
        default_value_t = 10.0
    )]
    pub handshake_timeout: f64,
    /// Worker threads serving connections (0: auto, a single thread on a
    /// machine with one or two CPUs, one per CPU otherwise; 1: a single
    /// thread, no cross-thread hand-offs).
    #[arg(long, value_name = "N", env = "MPSERVER_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Serve up to N connections that send requests back to back on a
    /// thread each (a blocking read per request, no event-loop wake-up);
    /// a connection goes back to the event loop when it idles or makes a
    /// blocking call. 0 serves every connection on the event loop.
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_DEDICATED_READERS",
        default_value_t = 64
    )]
    pub dedicated_readers: usize,
    /// Let up to N clients on this machine send their calls through
    /// shared memory (two 128 KiB rings each, a futex to wake the other
    /// side) instead of their TCP or Unix socket, which stays open beside
    /// it. Clients ask for it; 0 turns it off.
    #[arg(
        long,
        value_name = "N",
        env = "MPSERVER_SHARED_MEMORY_CHANNELS",
        default_value_t = 64
    )]
    pub shared_memory_channels: usize,
    /// Probe idle TCP peers after SECS seconds, so a vanished host's session
    /// (and the locks it holds) ends within about half a minute more; 0
    /// turns keepalive off.
    #[arg(
        long,
        value_name = "SECS",
        env = "MPSERVER_KEEPALIVE",
        default_value_t = 30
    )]
    pub keepalive: u64,
    /// Serve Prometheus metrics on HTTP GET http://HOST:PORT/metrics (no
    /// authentication: bind loopback or a monitoring network).
    #[arg(long, value_name = "HOST:PORT", env = "MPSERVER_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Accept CPython <= 3.11 clients (HMAC-MD5 handshake).
    #[arg(long, env = "MPSERVER_LEGACY_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub legacy_auth: bool,
    /// Log format.
    #[arg(long, value_enum, env = "MPSERVER_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(
        long,
        value_name = "LEVEL",
        env = "MPSERVER_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
}

/// How the admin verbs reach a TLS server.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsClientArgs {
    /// Connect with TLS, trusting the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Show this client certificate (PEM; for servers with
    /// --tls-client-ca); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Check the server's certificate against NAME instead of the host in
    /// --address.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
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
    /// TLS.
    #[command(flatten)]
    pub tls: TlsClientArgs,
}
