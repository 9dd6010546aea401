//! `serve`'s configuration: flags, `MPSERVER_…` variables, a TOML file
//! and defaults, merged with that precedence, and `--print-config`.
//!
//! clap reads the flags, the variables and the defaults into one
//! [`ServeSettings`] and says where each value came from; the file is
//! slotted in between the variables and the defaults. Settings that are
//! alternatives (`listen`/`unix`, `authkey-file`/`authkey-env`) are taken
//! together from the highest layer that sets either, so `--unix` on the
//! command line beats `listen` in the file. (Python's `multiprocessing`
//! has no daemon and so no configuration file; this is `mpserver`'s own.)

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::Deserialize;
use toml::{Table, Value};

use crate::cli::{ServeArgs, ServeSettings};

/// Why the configuration could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("the config file {path} is not valid TOML: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: toml::de::Error,
    },
    /// The config file names a setting `serve` does not have.
    #[error("unknown setting `{key}` in the config file {path}; known: {known}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The stray key.
        key: String,
        /// Every known key.
        known: String,
    },
    /// A value in the config file has the wrong type or is out of range.
    #[error("bad value in the config file {path}: {message}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// What is wrong, from the TOML decoder.
        message: String,
    },
    /// One layer set two settings that exclude each other.
    #[error("`{first}` and `{second}` cannot both be set ({layer} sets both)")]
    Conflict {
        /// One setting.
        first: String,
        /// The other.
        second: String,
        /// Which layer set both.
        layer: String,
    },
    /// The settings could not be turned back into values (a bug, reported
    /// rather than hidden).
    #[error("cannot assemble the configuration: {0}")]
    Assemble(String),
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// An environment variable (its name).
    Env(String),
    /// The config file (its path).
    File(PathBuf),
    /// The built-in default.
    Default,
}

/// One setting in the effective configuration.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its name in the file (the flag's name without `--`).
    pub key: String,
    /// Its value, when it has one.
    pub value: Option<Value>,
    /// Where the value came from, when it has one.
    pub source: Option<Source>,
    /// The setting that took precedence over this one, if any.
    pub superseded_by: Option<String>,
}

/// The effective configuration.
#[derive(Debug)]
pub struct Resolved {
    /// The values `serve` runs with.
    pub settings: ServeSettings,
    /// Every setting in declaration order, with its origin.
    pub entries: Vec<Entry>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
}

/// Settings that are alternatives to each other.
const ALTERNATIVES: [[&str; 2]; 2] = [["listen", "unix"], ["authkey-file", "authkey-env"]];

/// A setting as clap declares it: its file key and its variable.
struct Declared {
    key: String,
    id: String,
    env: Option<String>,
}

/// Every setting in declaration order (clap's own list, so the file, the
/// flags and the variables can never drift apart).
fn declared() -> Vec<Declared> {
    let cmd = ServeSettings::augment_args(clap::Command::new("serve"));
    cmd.get_arguments()
        .filter_map(|arg| {
            Some(Declared {
                key: arg.get_long()?.to_owned(),
                id: arg.get_id().to_string(),
                env: arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            })
        })
        .collect()
}

/// The known keys, for error messages.
fn known_keys() -> String {
    declared()
        .iter()
        .map(|d| d.key.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and checks a config file: TOML, known keys only, right types.
pub fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(&text, path)
}

/// [`read_file`] on text already read.
pub fn parse_file(text: &str, path: &Path) -> Result<Table, ConfigError> {
    let table: Table = toml::from_str(text).map_err(|source| ConfigError::Syntax {
        path: path.to_owned(),
        source,
    })?;
    let declared = declared();
    for key in table.keys() {
        if !declared.iter().any(|d| &d.key == key) {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
                known: known_keys(),
            });
        }
    }
    // Type-check every value against the defaults it would replace.
    let defaults =
        Table::try_from(default_settings()?).map_err(|e| ConfigError::Assemble(e.to_string()))?;
    let mut check = defaults;
    check.extend(table.clone());
    ServeSettings::deserialize(Value::Table(check)).map_err(|e| ConfigError::BadValue {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(table)
}

/// The settings with nothing given: clap's defaults.
fn default_settings() -> Result<ServeSettings, ConfigError> {
    #[derive(clap::Parser)]
    struct Bare {
        #[command(flatten)]
        settings: ServeSettings,
    }
    let cmd = <Bare as clap::CommandFactory>::command();
    // Variables must not leak into the defaults: strip them from the
    // declaration before parsing an empty command line.
    let cmd = cmd.mut_args(|arg| arg.env(None::<&str>));
    let matches = cmd
        .try_get_matches_from(["serve"])
        .map_err(|e| ConfigError::Assemble(e.to_string()))?;
    <Bare as clap::FromArgMatches>::from_arg_matches(&matches)
        .map(|b| b.settings)
        .map_err(|e| ConfigError::Assemble(e.to_string()))
}

/// Merges the layers: flag > environment > file > default.
pub fn resolve(args: &ServeArgs, matches: &ArgMatches) -> Result<Resolved, ConfigError> {
    let declared = declared();
    let given =
        Table::try_from(&args.settings).map_err(|e| ConfigError::Assemble(e.to_string()))?;
    let (mut flags, mut env, mut defaults) = (Table::new(), Table::new(), Table::new());
    for d in &declared {
        let Some(value) = given.get(&d.key) else {
            continue;
        };
        let layer = match matches.value_source(&d.id) {
            Some(ValueSource::CommandLine) => &mut flags,
            Some(ValueSource::EnvVariable) => &mut env,
            _ => &mut defaults,
        };
        layer.insert(d.key.clone(), value.clone());
    }
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => Table::new(),
    };
    let file_path = args.config.clone().unwrap_or_default();
    let layers = [
        (&flags, "the command line"),
        (&env, "the environment"),
        (&file, "the config file"),
        (&defaults, "the defaults"),
    ];
    // Where layer `i` says a value for `d` came from.
    let source = |i: usize, d: &Declared| match i {
        0 => Source::Flag,
        1 => Source::Env(d.env.clone().unwrap_or_default()),
        2 => Source::File(file_path.clone()),
        _ => Source::Default,
    };

    let mut entries = Vec::new();
    let mut effective = Table::new();
    for d in &declared {
        let alone = [d.key.as_str()];
        let group = ALTERNATIVES
            .iter()
            .find(|g| g.contains(&d.key.as_str()))
            .map(|g| g.as_slice())
            .unwrap_or(&alone);
        let mut entry = Entry {
            key: d.key.clone(),
            value: None,
            source: None,
            superseded_by: None,
        };
        for (i, (table, layer)) in layers.iter().enumerate() {
            let present: Vec<&str> = group
                .iter()
                .copied()
                .filter(|k| table.contains_key(*k))
                .collect();
            if let [first, second] = present[..] {
                return Err(ConfigError::Conflict {
                    first: first.into(),
                    second: second.into(),
                    layer: (*layer).into(),
                });
            }
            let Some(winner) = present.first() else {
                continue;
            };
            if *winner == d.key {
                entry.value = table.get(&d.key).cloned();
                entry.source = Some(source(i, d));
            } else if layers.iter().any(|(t, _)| t.contains_key(&d.key)) {
                entry.superseded_by = Some((*winner).to_owned());
            }
            break;
        }
        if let Some(value) = &entry.value {
            effective.insert(d.key.clone(), value.clone());
        }
        entries.push(entry);
    }
    // A setting set aside for its alternative still needs a value to
    // build the struct; `serve` ignores it.
    for (key, value) in &given {
        if !effective.contains_key(key) {
            effective.insert(key.clone(), value.clone());
        }
    }
    let settings =
        ServeSettings::deserialize(Value::Table(effective)).map_err(|e| ConfigError::BadValue {
            path: args.config.clone().unwrap_or_default(),
            message: e.to_string(),
        })?;
    Ok(Resolved {
        settings,
        entries,
        file: args.config.clone(),
    })
}

/// When clap refused a value that came from an `MPSERVER_…` variable,
/// says so (clap's message names only the flag).
pub fn env_origin(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let ContextValue::String(arg) = err.get(ContextKind::InvalidArg)? else {
        return None;
    };
    let ContextValue::String(value) = err.get(ContextKind::InvalidValue)? else {
        return None;
    };
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let var = declared().into_iter().find(|d| d.key == long)?.env?;
    (std::env::var_os(&var)?.to_string_lossy() == value.as_str())
        .then(|| format!("the value {value:?} comes from the environment variable {var}"))
}

/// The effective configuration as TOML, each line commented with where its
/// value came from; the output is itself a valid config file.
pub fn render(resolved: &Resolved) -> String {
    let mut out = String::from(
        "# mpserver serve: effective configuration (flag > environment > file > default)\n",
    );
    match &resolved.file {
        Some(path) => {
            let _ = writeln!(out, "# config file: {}", path.display());
        }
        None => out.push_str("# config file: none (--config or MPSERVER_CONFIG)\n"),
    }
    for e in &resolved.entries {
        let line = match (&e.value, &e.superseded_by) {
            (Some(value), _) => format!("{} = {value}", e.key),
            (None, Some(other)) => format!("# {} (not used: `{other}` is set)", e.key),
            (None, None) => format!("# {} (not set)", e.key),
        };
        let origin = match &e.source {
            Some(Source::Flag) => format!("flag --{}", e.key),
            Some(Source::Env(name)) => format!("env {name}"),
            Some(Source::File(path)) => format!("file {}", path.display()),
            Some(Source::Default) => "default".into(),
            None => String::new(),
        };
        if origin.is_empty() {
            let _ = writeln!(out, "{line}");
        } else {
            let _ = writeln!(out, "{line:<40} # {origin}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::{CommandFactory, FromArgMatches};

    /// Parses a command line (no variables are set by these tests; the
    /// variable layer is tested with the real binary).
    fn resolve_args(argv: &[&str]) -> Result<Resolved, ConfigError> {
        let matches = Cli::command()
            .mut_subcommand("serve", |c| c.mut_args(|a| a.env(None::<&str>)))
            .try_get_matches_from(argv)
            .unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        resolve(&args, matches.subcommand_matches("serve").unwrap())
    }

    fn entry<'a>(r: &'a Resolved, key: &str) -> &'a Entry {
        r.entries.iter().find(|e| e.key == key).unwrap()
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "max-connections = 7\nthreads = 3\nunix = \"/tmp/x.sock\"\nlegacy-auth = true\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let r = resolve_args(&["mpserver", "serve", "--config", f, "--threads", "2"]).unwrap();
        assert_eq!(r.settings.threads, 2);
        assert_eq!(entry(&r, "threads").source, Some(Source::Flag));
        assert_eq!(r.settings.max_connections, 7);
        assert_eq!(
            entry(&r, "max-connections").source,
            Some(Source::File(file.clone()))
        );
        assert!(r.settings.legacy_auth);
        assert_eq!(r.settings.max_in_flight, 1024);
        assert_eq!(entry(&r, "max-in-flight").source, Some(Source::Default));
        // The file's unix beats the default listen...
        assert_eq!(r.settings.unix.as_deref(), Some(Path::new("/tmp/x.sock")));
        assert_eq!(entry(&r, "listen").superseded_by.as_deref(), Some("unix"));
        // ...and a --listen flag beats the file's unix.
        let r = resolve_args(&[
            "mpserver",
            "serve",
            "--config",
            f,
            "--listen",
            "127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(r.settings.unix, None);
        assert_eq!(r.settings.listen, "127.0.0.1:9");
        assert_eq!(entry(&r, "unix").superseded_by.as_deref(), Some("listen"));

        // The rendering is itself a config file giving the same settings.
        let text = render(&r);
        assert!(text.contains("threads = 3"), "{text}");
        assert!(text.contains("# flag --listen"), "{text}");
        let again = dir.path().join("again.toml");
        std::fs::write(&again, &text).unwrap();
        let back =
            resolve_args(&["mpserver", "serve", "--config", again.to_str().unwrap()]).unwrap();
        assert_eq!(back.settings, r.settings);
    }

    #[test]
    fn bad_files_and_conflicts_are_refused_with_the_reason() {
        let path = Path::new("c.toml");
        let e = parse_file("max-conections = 3\n", path).unwrap_err();
        assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e}");
        assert!(e.to_string().contains("max-connections"), "{e}");
        let e = parse_file("threads = \"two\"\n", path).unwrap_err();
        assert!(matches!(e, ConfigError::BadValue { .. }), "{e}");
        let e = parse_file("log-format = \"xml\"\n", path).unwrap_err();
        assert!(e.to_string().contains("xml"), "{e}");
        let e = parse_file("threads = \n", path).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        let e = parse_file("listen = \"a:1\"\nunix = \"/s\"\n", path).unwrap();
        assert_eq!(e.len(), 2);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("both.toml");
        std::fs::write(&file, "authkey-file = \"/k\"\nauthkey-env = \"K\"\n").unwrap();
        let e =
            resolve_args(&["mpserver", "serve", "--config", file.to_str().unwrap()]).unwrap_err();
        assert!(matches!(e, ConfigError::Conflict { .. }), "{e}");
        let e =
            resolve_args(&["mpserver", "serve", "--listen", "a:1", "--unix", "/s"]).unwrap_err();
        assert!(e.to_string().contains("command line"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever a file sets comes back, the rest are defaults, and the
        /// rendering read back as a file gives the same settings.
        #[test]
        fn a_file_round_trips_through_print_config(
            max_connections in proptest::option::of(1usize..1_000_000),
            threads in proptest::option::of(0usize..64),
            timeout in proptest::option::of(0.001f64..1e6),
            legacy in proptest::option::of(proptest::bool::ANY),
            level in proptest::option::of("[a-z_=,]{1,20}"),
            unix in proptest::option::of("/[a-zA-Z0-9 ._\"\\-]{1,30}"),
        ) {
            let mut table = Table::new();
            let mut set = |key: &str, value: Option<Value>| {
                if let Some(v) = value {
                    table.insert(key.into(), v);
                }
            };
            set("max-connections", max_connections.map(|n| Value::Integer(n as i64)));
            set("threads", threads.map(|n| Value::Integer(n as i64)));
            set("handshake-timeout", timeout.map(Value::Float));
            set("legacy-auth", legacy.map(Value::Boolean));
            set("log-level", level.clone().map(Value::String));
            set("unix", unix.clone().map(Value::String));
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("c.toml");
            std::fs::write(&file, toml::to_string(&table).unwrap()).unwrap();
            let r = resolve_args(&["mpserver", "serve", "--config", file.to_str().unwrap()])
                .unwrap();
            let s = &r.settings;
            proptest::prop_assert_eq!(s.max_connections, max_connections.unwrap_or(16_384));
            proptest::prop_assert_eq!(s.threads, threads.unwrap_or(0));
            proptest::prop_assert_eq!(s.handshake_timeout, timeout.unwrap_or(10.0));
            proptest::prop_assert_eq!(s.legacy_auth, legacy.unwrap_or(false));
            proptest::prop_assert_eq!(&s.log_level, level.as_deref().unwrap_or("info"));
            proptest::prop_assert_eq!(s.unix.as_deref(), unix.as_deref().map(Path::new));
            let again = dir.path().join("again.toml");
            std::fs::write(&again, render(&r)).unwrap();
            let back = resolve_args(&["mpserver", "serve", "--config", again.to_str().unwrap()])
                .unwrap();
            proptest::prop_assert_eq!(&back.settings, s);
        }
    }

    #[test]
    fn the_example_config_parses_and_names_every_setting() {
        let text = include_str!("../../deploy/mpserver.example.toml");
        let path = Path::new("deploy/mpserver.example.toml");
        parse_file(text, path).unwrap();
        // Every setting is documented, set or commented out.
        for d in declared() {
            assert!(
                text.contains(&format!("{} =", d.key)),
                "{} is missing from the example",
                d.key
            );
        }
        // With every commented setting uncommented it still parses (the
        // alternatives aside, which are mutually exclusive by design).
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .filter(|l| !l.starts_with("unix =") && !l.starts_with("authkey-env ="))
            .map(|l| format!("{l}\n"))
            .collect();
        let table = parse_file(&uncommented, path).unwrap();
        assert_eq!(table.len(), declared().len() - 2, "{uncommented}");
    }
}
