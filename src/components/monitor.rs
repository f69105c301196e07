//! The `monitor` sink: hands everything it receives to the bedside web page's live state
//! (`ecgflow_monitor::Hub::global()`), which `ecgflow serve` shows.

use std::sync::Arc;

use ecgflow_monitor::Hub;

use super::fields::{Default as D, FieldSpec as F};
use super::{no_check, same_fs, Built, ComponentSpec, Output, PortKind, Sink, SinkWriter};
use crate::config::Role;
use crate::message::Body;

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "monitor",
    role: Role::Sink,
    summary: "The live state of the web page of `ecgflow serve` (docs/monitor.md): per stream the last \
              `seconds` of the first lead of the signal, the recent beats with their predicted class and \
              reference symbol, the heart rate, the active alarms (an event's start until its end), the \
              latest explanation, and the stream's patient and ward. Memory stays bounded however long \
              the run. Takes every kind; since a component's inputs must carry one kind, a page that \
              shows signal, classified beats, events and explanations has one monitor sink per kind \
              (they all feed the same page). Under `ecgflow run` it only keeps that state.",
    accepts: PortKind::ALL,
    output: Output::None,
    fields: &[F::float(
        "seconds",
        1.0,
        ecgflow_monitor::hub::MAX_SECONDS,
        D::Float(ecgflow_monitor::hub::DEFAULT_SECONDS),
        "seconds of waveform kept per stream (and drawn on the page)",
    )],
    check: no_check,
    output_fs: same_fs,
    build: |p| {
        Ok(Built::Sink(Arc::new(MonitorSink {
            seconds: p.f64("seconds"),
        })))
    },
}];

struct MonitorSink {
    seconds: f64,
}

impl Sink for MonitorSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        Ok(Box::new(MonitorWriter {
            hub: Hub::global(),
            seconds: self.seconds,
            received: 0,
        }))
    }
}

struct MonitorWriter {
    hub: Arc<Hub>,
    seconds: f64,
    received: u64,
}

impl SinkWriter for MonitorWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        self.received += 1;
        match body {
            Body::Chunk(c) => self.hub.chunk(c, self.seconds),
            Body::Beat(b) => self.hub.beat(b),
            Body::Explanation(e) => self.hub.explanation(e),
            Body::Event(e) => self.hub.event(e),
            Body::Start { stream, meta } => self.hub.start(stream, meta),
            Body::End { stream } => self.hub.end(stream),
            Body::Abort { stream, .. } => self.hub.abort(stream),
            Body::Tensor(_) => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        Ok(Some(format!(
            "{} payloads shown on the monitor page ({} streams)",
            self.received,
            self.hub.stream_count()
        )))
    }
}
