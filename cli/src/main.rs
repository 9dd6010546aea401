//! `mpserver`: the standalone manager server and its admin verbs.
//!
//! `mpserver serve` hosts SyncManager's shared objects (Python's
//! `multiprocessing.managers.SyncManager` server, as a daemon); `ping`,
//! `status`, `objects` and `shutdown` talk to a running server over the
//! same authenticated protocol its clients use.
//!
//! # Layout
//!
//! * `cli`: the command line (clap), with the manual-page help text.
//! * `authkey`: reading the key from a file or variable, or generating one.
//! * `config`: `serve`'s settings from flags, variables, a TOML file and
//!   defaults; `--print-config`.
//! * `serve`: the `serve` verb: logging, TLS, signals, the server.
//! * `admin`: the admin verbs and their text and JSON output.

mod admin;
mod authkey;
mod cli;
mod config;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let matches = match cli::Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => {
            if let Some(origin) = config::env_origin(&e) {
                eprintln!("mpserver: {origin}");
            }
            e.exit()
        }
    };
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        cli::Command::Serve(args) => match matches.subcommand_matches("serve") {
            Some(serve) => serve::run(*args, serve),
            None => Err("internal error: no matches for serve".into()),
        },
        cli::Command::Ping(args) => admin::ping(args),
        cli::Command::Status(args) => admin::status(args),
        cli::Command::Objects(args) => admin::objects(args),
        cli::Command::Shutdown(args) => admin::shutdown(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpserver: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Any failure of a verb, shown as one line on stderr.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
