//! What travels on the dataflow's edges.

use ecgflow_operators::explain::Explanation;
use ecgflow_operators::{Beat, Chunk, Event, Tensor};
use serde::{Deserialize, Serialize};

/// An edge of the running dataflow: messages stamped with the run's epoch.
pub type MessageStream<'scope> = timely::dataflow::Stream<'scope, u64, Vec<Message>>;

/// One item on an edge, with the route that keeps each stream on one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Chosen by the source for each stream; every edge exchanges by it, so all of a
    /// stream's data (and its per-stream state) lives on worker `route % workers`.
    pub route: u64,
    pub body: Body,
}

/// The payload of a message. Which variants appear on an edge depends on its port kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// Samples of one stream (port kind `signal`).
    Chunk(Chunk),
    /// One heartbeat (port kind `beats`).
    Beat(Beat),
    /// A tensor or image (port kind `tensors`).
    Tensor(Tensor),
    /// A beat or a record with its prediction explained (port kind `explanations`).
    Explanation(Box<Explanation>),
    /// An alarm or stream event (port kind `events`).
    Event(Event),
    /// A stream begins; `meta` describes it (e.g. `patient`, `database`, PTB-XL's `fold`).
    /// Sent by sources before the first chunk and forwarded by every transform.
    Start {
        stream: String,
        meta: Vec<(String, String)>,
    },
    /// The named stream has ended: steps flush their state for it.
    End { stream: String },
    /// The stream failed (damaged record, bad data) and is skipped: steps drop its state and
    /// sinks drop what they wrote of it. No `End` follows.
    Abort { stream: String, reason: String },
}

impl Body {
    /// The stream this payload belongs to.
    pub fn stream(&self) -> &str {
        match self {
            Body::Chunk(c) => &c.stream,
            Body::Beat(b) => &b.stream,
            Body::Tensor(t) => &t.stream,
            Body::Explanation(e) => e.stream(),
            Body::Event(e) => &e.stream,
            Body::Start { stream, .. } | Body::End { stream } | Body::Abort { stream, .. } => stream,
        }
    }
}

/// Looks up a key in a stream's metadata.
pub fn meta_value<'a>(meta: &'a [(String, String)], key: &str) -> Option<&'a str> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// FNV-1a of a stream name: stable across machines, runs and processes (for routes and
/// per-stream seeds).
pub fn stream_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
