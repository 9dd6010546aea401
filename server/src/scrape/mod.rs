//! Reading the server's counters out for an operator: the Prometheus text
//! of every metric ([`render`](mod@render)) and the tiny HTTP responder
//! for `GET /metrics` ([`endpoint`], `mpserver serve --metrics-listen`).
//!
//! No Python counterpart (see [`crate::metrics`]). This layer sits above
//! the engine: it reads the engine's counters, sessions and object table
//! at scrape time, and nothing below it knows it exists.

pub mod endpoint;
pub mod render;

pub use endpoint::MetricsEndpoint;
pub use render::render;
