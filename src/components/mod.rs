//! Component types: what each takes and emits, its fields, its checks, and how it is built.
//! The registry here is the single source for validation, `ecgflow components` and
//! `docs/components.md`.

mod adc;
mod alarms;
mod census;
mod explain;
mod features;
pub mod fields;
mod model;
mod monitor;
mod record_model;
mod sinks;
pub use sinks::label_map;
pub mod sources;
mod train;
mod transforms;

use std::sync::Arc;

use crate::config::Role;
use crate::message::{Body, MessageStream};
pub use fields::{FieldSpec, Params};

/// The kind of data on a port. Edges must connect equal kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// Chunks of samples of one or more leads, with reference annotations and detected peaks.
    Signal,
    /// Heartbeat windows around R peaks.
    Beats,
    /// Tensors and images made from signals or beats.
    Tensors,
    /// Model outputs.
    Predictions,
    /// Attributions explaining predictions.
    Explanations,
    /// Alarms and stream events.
    Events,
}

impl PortKind {
    /// Every kind, for components that take anything.
    pub const ALL: &'static [PortKind] = &[
        PortKind::Signal,
        PortKind::Beats,
        PortKind::Tensors,
        PortKind::Predictions,
        PortKind::Explanations,
        PortKind::Events,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PortKind::Signal => "signal",
            PortKind::Beats => "beats",
            PortKind::Tensors => "tensors",
            PortKind::Predictions => "predictions",
            PortKind::Explanations => "explanations",
            PortKind::Events => "events",
        }
    }
}

/// What a component emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Sinks emit nothing.
    None,
    Kind(PortKind),
    /// Pass-through steps emit what they take.
    SameAsInput,
}

/// Facts about a component's input known before running, for checks that span components.
#[derive(Clone, Copy, Debug, Default)]
pub struct Upstream {
    /// Sampling rate of the input signal, when the upstream source states it.
    pub fs: Option<f64>,
    /// What the inputs carry (events aside), when known.
    pub kind: Option<PortKind>,
}

/// A field-level problem found by a component's own check: `(field, message)`.
pub type FieldProblem = (String, String);

/// Everything the engine knows about one component type.
pub struct ComponentSpec {
    pub type_name: &'static str,
    pub role: Role,
    pub summary: &'static str,
    /// Kinds accepted on the input port (empty for sources).
    pub accepts: &'static [PortKind],
    pub output: Output,
    pub fields: &'static [FieldSpec],
    /// Checks between fields and against the upstream (e.g. a cut-off above Nyquist).
    pub check: fn(&Params, &Upstream) -> Vec<FieldProblem>,
    /// The sampling rate this component emits, given its input's.
    pub output_fs: fn(&Params, Option<f64>) -> Option<f64>,
    /// Builds the runnable component from checked fields.
    pub build: fn(&Params) -> anyhow::Result<Built>,
}

/// No cross-field checks.
pub fn no_check(_: &Params, _: &Upstream) -> Vec<FieldProblem> {
    Vec::new()
}

/// The sampling rate passes through unchanged.
pub fn same_fs(_: &Params, fs: Option<f64>) -> Option<f64> {
    fs
}

/// A runnable component, shared by all workers.
#[derive(Clone)]
pub enum Built {
    Source(Arc<dyn Source>),
    Transform(Arc<dyn Transform>),
    Sink(Arc<dyn Sink>),
}

/// A source of streams. Each stream is read by one reader on one worker's thread.
pub trait Source: Send + Sync {
    /// The stream names, in a fixed order; stream `i` is routed to worker `i % workers`.
    fn streams(&self) -> anyhow::Result<Vec<String>>;
    /// Total samples over all streams, when known in advance (for progress bars).
    fn total_samples(&self) -> Option<u64>;
    /// Opens stream `index` for reading.
    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>>;
    /// For a live source (replay, ADC): how it is paced and what happens when the dataflow
    /// falls behind. `None` for a dataset source, read as fast as the dataflow takes it.
    fn live(&self) -> Option<Live> {
        None
    }
}

/// How a live source runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Live {
    /// Play the streams at this multiple of real time (1.0 = real time), all of a worker's
    /// streams at once; `None` when the source paces itself (hardware with its own clock).
    pub speed: Option<f64>,
    /// What happens when the queue to the dataflow is full.
    pub overflow: Overflow,
    /// Chunks per stream the queue to the dataflow holds.
    pub capacity: usize,
}

/// What a live source does when the dataflow is slower than the signal arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for room: nothing is lost, the source falls behind real time.
    Block,
    /// Drop the oldest queued chunk to make room; every dropped sample is counted.
    DropOldest,
}

impl Overflow {
    /// The choices of an `overflow` field.
    pub const CHOICES: &'static [&'static str] = &["block", "drop_oldest"];

    /// From an `overflow` field's value (one of [`Overflow::CHOICES`]).
    pub fn from_name(name: &str) -> Overflow {
        if name == "drop_oldest" {
            Overflow::DropOldest
        } else {
            Overflow::Block
        }
    }
}

/// Reads one stream piece by piece: signal chunks, or beats for a beat table.
pub trait StreamReader: Send {
    /// The next payload (`Body::Chunk` or `Body::Beat`), or `None` at the end of the stream.
    fn next(&mut self) -> anyhow::Result<Option<Body>>;
    /// What is known about the stream (`patient`, `database`, ...), sent before its chunks.
    fn meta(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// A transform: makes one step per stream, holding that stream's state.
pub trait Transform: Send + Sync {
    /// A new step for the stream whose first payload is `first`.
    fn open(&self, first: &Body) -> anyhow::Result<Box<dyn Step>>;
    /// True for a transform that needs every stream at once (e.g. SMOTE): it gets one step
    /// on one worker, fed everything, and finished when all input has arrived.
    fn global(&self) -> bool {
        false
    }
    /// True for a transform whose steps hold output for later and must be polled as time
    /// passes ([`Step::poll`]; the model's batches).
    fn waits(&self) -> bool {
        false
    }
    /// For a transform that builds its own operators (differential dataflow) instead of
    /// per-stream steps.
    fn dataflow(&self) -> Option<&dyn DataflowTransform> {
        None
    }
}

/// A transform built as its own piece of dataflow.
pub trait DataflowTransform: Send + Sync {
    /// Builds the operators that take `input` (every upstream message) and returns their
    /// output; `name` names the component in operator names; `counts` are the run's
    /// counters.
    fn build<'scope>(
        &self,
        input: MessageStream<'scope>,
        name: &str,
        counts: Arc<crate::metrics::Metrics>,
    ) -> MessageStream<'scope>;
}

/// The per-stream state of a transform.
pub trait Step {
    /// What the stream said of itself when it started (`patient`, `ward`, ...), given
    /// once, right after the step is opened.
    fn start(&mut self, _meta: &[(String, String)]) {}
    /// Processes one payload of its stream, pushing what it emits.
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()>;
    /// The stream has ended: emit whatever is still held.
    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()>;
    /// Time has passed: emit what has waited long enough (a batch past its delay). Returns
    /// how long until something else is due, or `None` when nothing waits. The engine
    /// calls it again after that long even if no input comes (live streams).
    fn poll(&mut self, _out: &mut Vec<Body>) -> anyhow::Result<Option<std::time::Duration>> {
        Ok(None)
    }
}

/// A sink: one writer for the whole pipeline run, on one worker.
pub trait Sink: Send + Sync {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>>;
    /// Streams whose complete output this sink already holds from an earlier run, or `None`
    /// when it cannot tell (then every stream is read). A run skips the streams that every
    /// sink holds, so an interrupted conversion resumes where it stopped.
    fn completed_streams(&self) -> anyhow::Result<Option<std::collections::HashSet<String>>> {
        Ok(None)
    }
}

/// Writes what reaches a sink.
pub trait SinkWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()>;
    /// All input has arrived: complete the output. Returns a line for the run summary.
    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>>;
}

/// Every component type, sources then transforms then sinks.
pub fn registry() -> Vec<&'static ComponentSpec> {
    sources::SPECS
        .iter()
        .chain(adc::SPECS)
        .chain(transforms::SPECS)
        .chain(features::SPECS)
        .chain(model::SPECS)
        .chain(record_model::SPECS)
        .chain(explain::SPECS)
        .chain(alarms::SPECS)
        .chain(census::SPECS)
        .chain(sinks::SPECS)
        .chain(monitor::SPECS)
        .chain(train::SPECS)
        .collect()
}

/// The component type with this role and name.
pub fn find(role: Role, type_name: &str) -> Option<&'static ComponentSpec> {
    registry()
        .into_iter()
        .find(|s| s.role == role && s.type_name == type_name)
}
