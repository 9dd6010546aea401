//! The admin verbs: `ping`, `status`, `objects`, `shutdown`, speaking the
//! real protocol through the SDK's low-level manager client.

use std::time::Duration;

use mp_proto::auth::AuthenticationError;
use multiprocessing::connection::Address;
use multiprocessing::managers::{ConnectOptions, ManagerClient, ManagerError, TlsConnector};

use crate::cli::{AdminArgs, TlsClientArgs};
use crate::{authkey, BoxError};

fn connect(args: &AdminArgs) -> Result<ManagerClient, BoxError> {
    let key = authkey::required(&args.key)?;
    let address: Address = args.address.parse()?;
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err("--timeout must be a positive number of seconds".into());
    }
    let options = ConnectOptions {
        timeout: Duration::from_secs_f64(args.timeout),
        tls: tls_connector(&args.tls)?,
        ..ConnectOptions::default()
    };
    ManagerClient::connect_with(&address, &key, &options).map_err(|e| match e {
        // A TLS server waits for a ClientHello while a plain client waits
        // for the challenge: say what is most likely going on.
        ManagerError::Authentication(
            AuthenticationError::Closed | AuthenticationError::Timeout,
        ) if args.tls.tls_ca.is_none() => {
            format!("{e} (if the server uses TLS, pass --tls-ca)").into()
        }
        e => e.into(),
    })
}

fn tls_connector(args: &TlsClientArgs) -> Result<Option<TlsConnector>, BoxError> {
    let Some(ca) = &args.tls_ca else {
        if args.tls_cert.is_some() || args.tls_server_name.is_some() {
            return Err("--tls-cert, --tls-key and --tls-server-name need --tls-ca".into());
        }
        return Ok(None);
    };
    let mut connector = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => TlsConnector::with_client_cert(ca, cert, key)?,
        _ => TlsConnector::from_ca_file(ca)?,
    };
    if let Some(name) = &args.tls_server_name {
        connector = connector.server_name(name)?;
    }
    Ok(Some(connector))
}

fn print_json(value: &serde_json::Value) -> Result<(), BoxError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `mpserver ping`.
pub fn ping(args: AdminArgs) -> Result<(), BoxError> {
    let client = connect(&args)?;
    let start = std::time::Instant::now();
    client.ping()?;
    let rtt = start.elapsed();
    if args.json {
        print_json(
            &serde_json::json!({"ok": true, "address": args.address, "rtt_ms": rtt.as_secs_f64() * 1e3}),
        )
    } else {
        println!(
            "pong from {} in {:.3} ms",
            args.address,
            rtt.as_secs_f64() * 1e3
        );
        Ok(())
    }
}

/// `mpserver status`.
pub fn status(args: AdminArgs) -> Result<(), BoxError> {
    let status = connect(&args)?.status()?;
    if args.json {
        return print_json(&serde_json::to_value(&status)?);
    }
    println!("server       {}", status.server);
    println!("address      {}", status.address);
    println!("uptime       {}", human_duration(status.uptime_secs));
    println!(
        "connections  {} open, {} since start",
        status.connections, status.connections_total
    );
    println!("requests     {}", status.requests_total);
    println!("objects      {}", status.number_of_objects);
    for (typeid, n) in &status.objects_by_typeid {
        println!("  {typeid:<18} {n}");
    }
    println!("names        {}", status.names.len());
    for named in &status.names {
        println!("  {:<18} {} ({})", named.name, named.id, named.typeid);
    }
    Ok(())
}

fn human_duration(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..=59 => format!("{secs:.1}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m{:02}s", s / 3600, (s / 60) % 60, s % 60),
    }
}

/// `mpserver objects`.
pub fn objects(args: AdminArgs) -> Result<(), BoxError> {
    let objects = connect(&args)?.debug_info()?;
    if args.json {
        return print_json(&serde_json::to_value(&objects)?);
    }
    println!("{:<16} {:<18} {:>8}  NAMES", "ID", "TYPEID", "REFCOUNT");
    for o in &objects {
        println!(
            "{:<16} {:<18} {:>8}  {}",
            o.id.to_string(),
            o.typeid,
            o.refcount,
            o.names.join(", ")
        );
    }
    println!("({} objects)", objects.len());
    Ok(())
}

/// `mpserver shutdown`.
pub fn shutdown(args: AdminArgs) -> Result<(), BoxError> {
    connect(&args)?.shutdown()?;
    if args.json {
        print_json(&serde_json::json!({"ok": true, "address": args.address}))
    } else {
        println!("{} is shutting down", args.address);
        Ok(())
    }
}
