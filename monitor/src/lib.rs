//! The bedside web page of ecgflow (`ecgflow serve`): the live state of every stream, kept
//! bounded in a [`Hub`] that a pipeline's `monitor` sinks write, and served over HTTP — a
//! ward view of all streams and a patient view (the waveform on ECG paper, beats marked
//! and coloured by their predicted class, heart rate, active alarms, the latest explanation
//! picture) kept live with server-sent events, a JSON API, and `/metrics` in the
//! Prometheus text format.
//!
//! This crate knows nothing of timely or pipeline files: the engine's `monitor` sink pushes
//! chunks, beats, events and explanations into [`Hub::global`], and `ecgflow serve` starts a
//! [`Server`] on it. Binding anything but a loopback address needs an access token
//! ([`auth::check_bind`]).

pub mod auth;
pub mod chart;
pub mod hub;
pub mod server;
pub mod sse;

use std::net::SocketAddr;

pub use hub::{Hub, RunStatus};
pub use server::{Server, ServerConfig};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(
        "refusing to serve on {addr} without an access token: the page shows patient data, and only a \
         loopback address (127.0.0.1) may be served without one; pass --token TOKEN or set {env}",
        env = auth::TOKEN_ENV
    )]
    TokenRequired { addr: SocketAddr },
    #[error("the access token must be printable ASCII without spaces, and not empty")]
    BadToken,
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: SocketAddr, message: String },
}
