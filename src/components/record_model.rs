//! The `record_model` transform: a whole-record classifier (the PTB-XL models) applied to
//! each record as it ends. A record's chunks are gathered, turned into the network's input
//! exactly as in training ([`RecordInput::prepare`]: the leads, or their rendered image) and
//! classified; the input leaves as a tensor carrying the prediction.

use std::sync::Arc;

use anyhow::bail;
use ecgflow_operators::models::RecordInput;
use ecgflow_operators::{Chunk, Tensor};

use super::fields::{Default as D, FieldSpec as F};
use super::model::Classifier;
use super::{same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Step, Transform, Upstream};
use crate::config::Role;
use crate::message::Body;

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "record_model",
    role: Role::Transform,
    summary: "Classifies whole records with a trained record model (the PTB-XL models `ptbxl-image` and \
              `ptbxl-signal`, written by the `train` sink from records). Each stream is one record: its \
              chunks are held until it ends, then the first `samples` samples of the leads the model's card \
              names are taken (cut or zero-padded, at the card's sampling rate, which the record must have) \
              and, for an image model, rendered as in training. The output is one tensor per record: the \
              network's input ([leads, samples], or [height, width] for an image) with the prediction \
              attached: the model's name and version, the most probable class, every class's probability \
              (sigmoid for the multi-label PTB-XL models) and `labels`, the classes at or above the decision \
              thresholds the card keeps from validation. The jsonl sink writes them. With `runtime = \
              \"onnx\"` (the default) tract runs NAME.onnx beside the card NAME.json; with `runtime = \"burn\"` \
              the training code's own network runs from NAME.bpk. Beat models are refused (use `model`).",
    accepts: &[PortKind::Signal],
    output: Output::Kind(PortKind::Tensors),
    fields: &[
        F::string(
            "path",
            D::Required,
            "the model: NAME.json, NAME.onnx or NAME.bpk (the card NAME.json must be beside it)",
        ),
        F::choice(
            "runtime",
            &["onnx", "burn"],
            "onnx",
            "inference engine: onnx (tract on NAME.onnx) or burn (NAME.bpk)",
        ),
    ],
    check: check_record_model,
    output_fs: same_fs,
    build: |p| {
        let classifier = Classifier::from_params(p)?;
        let Some(input) = classifier.record().cloned() else {
            bail!("{}", not_a_record_model(&classifier));
        };
        Ok(Built::Transform(Arc::new(RecordModel {
            classifier: Arc::new(classifier),
            input: Arc::new(input),
        })))
    },
}];

fn not_a_record_model(classifier: &Classifier) -> String {
    format!(
        "model {} classifies beats, not whole records (or has no model card saying what it takes): use a `model` step",
        classifier.name
    )
}

fn check_record_model(p: &Params, _: &Upstream) -> Vec<FieldProblem> {
    match Classifier::from_params(p) {
        Ok(classifier) if classifier.record().is_none() => vec![("path".to_owned(), not_a_record_model(&classifier))],
        Ok(_) => Vec::new(),
        Err(e) => vec![("path".to_owned(), format!("{e:#}"))],
    }
}

struct RecordModel {
    classifier: Arc<Classifier>,
    input: Arc<RecordInput>,
}

impl Transform for RecordModel {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        Ok(Box::new(RecordModelStep {
            classifier: self.classifier.clone(),
            input: self.input.clone(),
            record: None,
        }))
    }
}

/// One record's samples, gathered from its chunks: what record models take (shared with the
/// `train` sink).
pub(super) struct RecordBuffer {
    pub stream: String,
    pub fs: f64,
    pub leads: Vec<String>,
    pub samples: Vec<Vec<f32>>,
}

impl RecordBuffer {
    /// A buffer for the record `chunk` begins.
    pub fn new(chunk: &Chunk) -> Self {
        RecordBuffer {
            stream: chunk.stream.clone(),
            fs: chunk.fs,
            leads: chunk.leads.clone(),
            samples: vec![Vec::new(); chunk.leads.len()],
        }
    }

    /// Appends `chunk`'s samples, keeping at most `keep` per lead (what the network takes).
    pub fn push(&mut self, chunk: &Chunk, keep: usize) -> anyhow::Result<()> {
        if chunk.leads != self.leads {
            bail!("stream {}: the leads changed within the record", chunk.stream);
        }
        if chunk.fs != self.fs {
            bail!("stream {}: the sampling rate changed within the record", chunk.stream);
        }
        for (lead, samples) in self.samples.iter_mut().zip(&chunk.samples) {
            let room = keep.saturating_sub(lead.len());
            lead.extend(samples.iter().take(room));
        }
        Ok(())
    }

    /// The network input of this record for a model taking `input`; errors name the record.
    pub fn prepare(&self, input: &RecordInput) -> anyhow::Result<Vec<f32>> {
        if self.fs != input.fs {
            bail!(
                "record {} is sampled at {} Hz; the model takes {} Hz",
                self.stream,
                self.fs,
                input.fs
            );
        }
        input
            .prepare(&self.leads, &self.samples)
            .map_err(|e| anyhow::anyhow!("record {}: {e}", self.stream))
    }
}

struct RecordModelStep {
    classifier: Arc<Classifier>,
    input: Arc<RecordInput>,
    record: Option<RecordBuffer>,
}

impl Step for RecordModelStep {
    fn process(&mut self, body: Body, _out: &mut Vec<Body>) -> anyhow::Result<()> {
        let Body::Chunk(chunk) = body else {
            bail!(
                "the record_model transform takes signal chunks, not {}",
                super::transforms::kind_of(&body)
            )
        };
        let keep = self.input.samples;
        self.record
            .get_or_insert_with(|| RecordBuffer::new(&chunk))
            .push(&chunk, keep)
    }

    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        let Some(record) = self.record.take() else {
            return Ok(());
        };
        let data = record.prepare(&self.input)?;
        let probabilities = self
            .classifier
            .runtime
            .predict(&data, 1)?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("record {}: the model returned nothing", record.stream))?;
        let shape = match &self.input.image {
            Some(image) => vec![image.height, image.width],
            None => vec![self.input.leads.len(), self.input.samples],
        };
        out.push(Body::Tensor(Tensor {
            stream: record.stream,
            sample: None,
            shape,
            data,
            symbol: None,
            prediction: Some(self.classifier.prediction(probabilities, None)),
        }));
        Ok(())
    }
}
