//! The data that flows between steps. Plain values, serialisable so that the engine can
//! move them between workers and processes.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A reference annotation attached to a stream (e.g. a true or annotated R peak).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Absolute sample index in the stream.
    pub sample: u64,
    /// Beat or event symbol in the MIT-BIH convention (`N`, `V`, ...).
    pub symbol: String,
}

/// A run of consecutive samples of one stream (record or patient), one or more leads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Stream key: record or patient identifier.
    pub stream: String,
    /// Sampling rate in Hz.
    pub fs: f64,
    /// Absolute index of the first sample of this chunk in the stream.
    pub start: u64,
    /// Lead names, one per entry of `samples`.
    pub leads: Vec<String>,
    /// Samples per lead in physical units (mV); every lead has the same length.
    pub samples: Vec<Vec<f32>>,
    /// Reference annotations whose sample lies in `[start, start + len)`.
    pub annotations: Vec<Annotation>,
    /// R peaks detected so far and not yet reported (absolute indices; a detector's
    /// delay means they may lie before `start`).
    pub rpeaks: Vec<u64>,
    /// When the chunk reached the engine from a live source, for latency measurements;
    /// not serialised.
    #[serde(skip)]
    pub arrival: Option<Instant>,
}

impl Chunk {
    /// A chunk with samples and nothing attached.
    pub fn new(stream: impl Into<String>, fs: f64, start: u64, leads: Vec<String>, samples: Vec<Vec<f32>>) -> Self {
        Chunk {
            stream: stream.into(),
            fs,
            start,
            leads,
            samples,
            annotations: Vec::new(),
            rpeaks: Vec::new(),
            arrival: None,
        }
    }

    /// Number of samples per lead.
    pub fn len(&self) -> usize {
        self.samples.first().map_or(0, Vec::len)
    }

    /// True when the chunk carries no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Absolute index one past the last sample.
    pub fn end(&self) -> u64 {
        self.start + self.len() as u64
    }
}

/// One heartbeat: a fixed window of samples around an R peak.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    /// Stream key: record or patient identifier.
    pub stream: String,
    /// Sampling rate in Hz.
    pub fs: f64,
    /// Absolute sample index of the R peak.
    pub sample: u64,
    /// Lead names, one per block of `window`.
    pub leads: Vec<String>,
    /// Samples before the R peak in the window.
    pub before: usize,
    /// Samples after the R peak in the window.
    pub after: usize,
    /// Lead-major samples: lead 0's `before + 1 + after` samples, then lead 1's, ...
    pub window: Vec<f32>,
    /// The stream's typical beat just before this one, laid out like `window`: the
    /// sample-by-sample median of the recent beats that were not early (see
    /// [`crate::segment::TEMPLATE_BEATS`]; the first beat of a stream is its own);
    /// `None` unless the segmenter was asked for templates.
    // No `skip_serializing_if`: beats cross processes in bincode, which is not
    // self-describing and needs every field.
    #[serde(default)]
    pub template: Option<Vec<f32>>,
    /// Interval to the previous R peak in seconds, when there is one.
    pub rr_prev: Option<f32>,
    /// Interval to the next R peak in seconds, when there is one.
    pub rr_next: Option<f32>,
    /// Mean RR interval over the recent beats of the stream, in seconds.
    pub rr_local: Option<f32>,
    /// Mean RR interval over the last few minutes of the stream (up to 300 intervals), in
    /// seconds: the patient's own rhythm, against which an early beat stands out.
    #[serde(default)]
    pub rr_mean: Option<f32>,
    /// How irregular the rhythm was just before this beat, in seconds: the median absolute
    /// difference between successive RR intervals among the last 16 before `rr_prev`
    /// (near 0 in sinus rhythm with a few ectopic beats, high in atrial fibrillation).
    #[serde(default)]
    pub rr_irregularity: Option<f32>,
    /// Reference annotation symbol matched to this beat, when the stream carries them.
    pub symbol: Option<String>,
    /// A classifier's verdict on this beat, once a `model` step has seen it.
    #[serde(default)]
    pub prediction: Option<Prediction>,
    /// When the chunk that completed this beat reached the engine from a live source, for
    /// latency measurements; not serialised.
    #[serde(skip)]
    pub arrival: Option<Instant>,
}

/// A classifier's output for one beat or one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Model name and version (from its card).
    pub model: String,
    pub version: String,
    /// The model's verdict: the most probable class, unless the card's decisions after the
    /// network say otherwise (see `ecgflow_operators::models::decision`).
    pub class: String,
    /// Probability of each of the model's classes, in its class order.
    pub probabilities: Vec<f32>,
    /// Multi-label models: every class whose probability reaches its decision threshold
    /// (the model card's, chosen on validation data), in class order; empty otherwise.
    // Always written (bincode between processes needs every field).
    #[serde(default)]
    pub labels: Vec<String>,
    /// What made `class` the verdict: the network (its most probable class) or one of the
    /// card's decisions after it. When a decision did, `class` may have a low probability.
    #[serde(default)]
    pub decided_by: DecidedBy,
}

/// What made a prediction's class the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The network's most probable class.
    #[default]
    Network,
    /// The most probable class fell short of its minimum probability, so the next most
    /// probable class that reaches its own was called.
    MinProbability,
    /// The premature-beat rule turned an N verdict into S.
    PrematureRule,
}

impl DecidedBy {
    /// Its name as JSON and Parquet write it: `network`, `min_probability`, `premature_rule`.
    pub fn name(self) -> &'static str {
        match self {
            DecidedBy::Network => "network",
            DecidedBy::MinProbability => "min_probability",
            DecidedBy::PrematureRule => "premature_rule",
        }
    }

    /// How a person would say it, e.g. after "classified S".
    pub fn describe(self) -> &'static str {
        match self {
            DecidedBy::Network => "by the network",
            DecidedBy::MinProbability => "as the more probable class fell short of its minimum probability",
            DecidedBy::PrematureRule => "by the premature-beat rule: an early beat in a regular rhythm",
        }
    }
}

/// A tensor or image made from a beat or a record (a CWT scalogram, a rendered 12-lead
/// image), row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Stream key: record or patient identifier.
    pub stream: String,
    /// R-peak sample of the beat it was made from; `None` when made from a whole record.
    pub sample: Option<u64>,
    /// Dimensions, outermost first (e.g. `[1, 38, 259]` leads × scales × samples, or
    /// `[224, 224]` height × width).
    pub shape: Vec<usize>,
    /// Values, row-major; `shape.iter().product()` of them.
    pub data: Vec<f32>,
    /// Reference annotation symbol of the beat, when known.
    pub symbol: Option<String>,
    /// A record classifier's verdict, once a `record_model` step has seen it (the tensor
    /// is then the network's input: the record's image or its leads).
    #[serde(default)]
    pub prediction: Option<Prediction>,
}

/// Something that happened on a stream at a point of its time: an alarm starting or
/// ending, the leads coming off, a gap in the samples, samples dropped by a live source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Stream key: record or patient identifier.
    pub stream: String,
    /// What happened, e.g. `ventricular_run`, `bradycardia`, `lead_off`, `dropped`.
    pub kind: String,
    /// Whether a condition begins, ends, or is a single occurrence.
    pub phase: EventPhase,
    /// Sample index in the stream at which it happened (stream time).
    pub sample: u64,
    /// Sampling rate in Hz, so that `sample / fs` is the stream time in seconds.
    pub fs: f64,
    /// The patient and ward the stream belongs to, when the source states them.
    pub patient: Option<String>,
    pub ward: Option<String>,
    /// What supports the event, readable by a person (e.g. `3 V beats from 12.41 s`,
    /// `heart rate 36 bpm`).
    pub evidence: String,
}

impl Event {
    /// Stream time in seconds.
    pub fn time_s(&self) -> f64 {
        self.sample as f64 / self.fs
    }
}

/// The phase of an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventPhase {
    Start,
    End,
    Instant,
}

impl EventPhase {
    pub fn name(self) -> &'static str {
        match self {
            EventPhase::Start => "start",
            EventPhase::End => "end",
            EventPhase::Instant => "instant",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DecidedBy;

    #[test]
    fn decided_by_names_are_its_serde_names() {
        for d in [DecidedBy::Network, DecidedBy::MinProbability, DecidedBy::PrematureRule] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
    }
}
