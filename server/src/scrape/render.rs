//! The scrape: every counter of an engine in the Prometheus text format
//! (version 0.0.4), encoded by `prometheus-client` from a collector that
//! reads the atomics, the engine's session counters and its object table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::engine::Engine;
use crate::metrics::{always, ERROR_KINDS, HANDSHAKE_REASONS, OTHER};
use mp_proto::methods::builtin::ServerMethod;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric of `engine`, as Prometheus text.
pub fn render(engine: &Arc<Engine>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector(Arc::clone(engine))));
    let mut out = String::new();
    // Writing into a String cannot fail, and the collector only fails if
    // the writer does.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

struct EngineCollector(Arc<Engine>);

impl std::fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineCollector")
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// One unlabelled sample.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => metric.encode_counter::<NoLabelSet, _, u64>(&value, None),
        _ => metric.encode_gauge(&value),
    }
}

/// One sample per label set.
fn family<'l>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Vec<(&'l str, &'l str)>, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let mut sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => sample.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
            _ => sample.encode_gauge(&value)?,
        }
    }
    Ok(())
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let engine = &self.0;
        let m = &engine.metrics;
        let e = &mut encoder;
        single(
            e,
            "mpserver_uptime_seconds",
            "Seconds since the server started.",
            Gauge,
            engine.started.elapsed().as_secs(),
        )?;
        single(
            e,
            "mpserver_connections_open",
            "Client sockets open now, including those still in the handshake.",
            Gauge,
            load(&m.connections_open),
        )?;
        single(
            e,
            "mpserver_dedicated_readers",
            "Connections served by a thread of their own now (see --dedicated-readers).",
            Gauge,
            load(&m.dedicated_readers),
        )?;
        single(
            e,
            "mpserver_shared_memory_channels",
            "Shared-memory channels offered or open now (see --shared-memory-channels).",
            Gauge,
            load(&m.channels),
        )?;
        single(
            e,
            "mpserver_connections",
            "Client sockets accepted.",
            Counter,
            load(&m.connections_accepted),
        )?;
        single(
            e,
            "mpserver_connections_refused",
            "Peers refused after the handshake (connection limit or protocol version).",
            Counter,
            load(&m.connections_refused),
        )?;
        single(
            e,
            "mpserver_sessions",
            "Authenticated client sessions now.",
            Gauge,
            load(&m.sessions_open),
        )?;
        single(
            e,
            "mpserver_sessions_started",
            "Authenticated client sessions started.",
            Counter,
            load(&m.sessions_total),
        )?;
        single(
            e,
            "mpserver_auth_failures",
            "Handshakes failed because the peer does not hold the authkey.",
            Counter,
            load(&m.auth_failures),
        )?;
        family(
            e,
            "mpserver_handshake_failures",
            "Handshakes ended without a session for another reason than the key.",
            Counter,
            HANDSHAKE_REASONS
                .iter()
                .zip(&m.handshake_failures)
                .map(|(r, n)| (vec![("reason", *r)], load(n))),
        )?;
        single(
            e,
            "mpserver_log_lines_suppressed",
            "Log lines a peer provoked that were left out by the rate limit.",
            Counter,
            crate::quiet_log::suppressed(),
        )?;
        single(
            e,
            "mpserver_auth_throttled",
            "Connections made to wait before their challenge after failures from their address.",
            Counter,
            load(&m.auth_throttled),
        )?;
        single(
            e,
            "mpserver_memory_held_bytes",
            "Bytes held by stored values and live objects, as the memory budget estimates them.",
            Gauge,
            engine.table.budget().held() as u64,
        )?;
        single(
            e,
            "mpserver_named_objects",
            "Objects the server owns by name (--shared, publish).",
            Gauge,
            engine.names.len() as u64,
        )?;
        let counts = engine.table.counts_by_typeid();
        family(
            e,
            "mpserver_objects",
            "Live shared objects by typeid.",
            Gauge,
            engine.types.keys().map(|t| {
                (
                    vec![("typeid", t.as_str())],
                    counts.get(t).copied().unwrap_or(0),
                )
            }),
        )?;
        single(
            e,
            "mpserver_requests",
            "Requests answered or dispatched.",
            Counter,
            load(&m.requests),
        )?;
        // Registry order, then the method order of each type, so the
        // output is stable from one scrape to the next.
        let calls = engine.types.iter().flat_map(|(typeid, spec)| {
            let calls = &m.calls[typeid];
            let methods = spec.exposed.iter().map(String::as_str).chain(always());
            methods
                .filter_map(move |name| calls.methods.get(name).map(|n| (name, n)))
                .chain([(OTHER, &calls.other)])
                .map(move |(method, n)| {
                    (
                        vec![("typeid", typeid.as_str()), ("method", method)],
                        load(n),
                    )
                })
        });
        family(
            e,
            "mpserver_calls",
            "Calls on shared objects by typeid and method.",
            Counter,
            calls,
        )?;
        family(
            e,
            "mpserver_server_calls",
            "Server-level calls (create, incref, …) by method.",
            Counter,
            ServerMethod::ALL
                .iter()
                .map(|m| m.name())
                .chain([OTHER])
                .zip(&m.server_calls)
                .map(|(method, n)| (vec![("method", method)], load(n))),
        )?;
        family(
            e,
            "mpserver_errors",
            "Errors by Python exception name: calls that raised, and connections closed for \
             a bad frame or an undecodable request (ProtocolError).",
            Counter,
            ERROR_KINDS
                .iter()
                .chain([&OTHER])
                .zip(&m.errors)
                .map(|(kind, n)| (vec![("kind", *kind)], load(n))),
        )?;
        let latency = m.latency.snapshot();
        encoder
            .encode_descriptor(
                "mpserver_call_duration_seconds",
                "Time from reading a request to its answer (a blocking call includes its wait).",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(latency.sum, latency.count, &latency.buckets, None)?;
        single(
            &mut encoder,
            "mpserver_received_bytes",
            "Bytes read from clients after their handshake.",
            Counter,
            load(&m.bytes_received),
        )?;
        single(
            &mut encoder,
            "mpserver_sent_bytes",
            "Bytes written to clients after their handshake.",
            Counter,
            load(&m.bytes_sent),
        )?;
        Ok(())
    }
}
