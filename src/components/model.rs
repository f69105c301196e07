//! The `model` transform: a trained beat classifier applied to beats as they pass, in
//! batches, attaching each beat's predicted class and probabilities.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use ecgflow_operators::models::resecanet::beat_input;
use ecgflow_operators::models::{Architecture, TrainedModel};
use ecgflow_operators::train::argmax;
use ecgflow_operators::{Beat, Prediction};

use super::fields::{Default as D, FieldSpec as F};
use super::{same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Step, Transform, Upstream};
use crate::config::Role;
use crate::message::Body;

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "model",
    role: Role::Transform,
    summary: "Classifies beats with a trained model (NAME.json + NAME.bpk written by the `train` sink, e.g. \
              models/resecanet-ds1.json) and attaches the prediction to each beat: the model's name and \
              version, the most probable class and every class's probability (the jsonl sink writes them). \
              Beats are run in batches of up to `max_batch`, flushed when the batch is full, when the oldest \
              beat has waited `max_delay_ms`, or when the stream ends. The beats' window (before/after) must \
              be the one the model was trained on.",
    accepts: &[PortKind::Beats],
    output: Output::Kind(PortKind::Beats),
    fields: &[
        F::string("path", D::Required, "the model: NAME.json or NAME.bpk"),
        F::choice(
            "runtime",
            &["burn"],
            "burn",
            "inference engine: burn (CPU, the training code's own network)",
        ),
        F::int("max_batch", 1, 65_536, D::Int(64), "beats per batch at most"),
        F::int(
            "max_delay_ms",
            0,
            3_600_000,
            D::Int(200),
            "longest a beat waits for its batch to fill (live streams)",
        ),
    ],
    check: check_model,
    output_fs: same_fs,
    build: |p| {
        let model = TrainedModel::open(&PathBuf::from(p.str("path")))?;
        Ok(Built::Transform(Arc::new(ModelTransform {
            model: Arc::new(Mutex::new(model)),
            max_batch: p.usize("max_batch"),
            max_delay: Duration::from_millis(p.i64("max_delay_ms") as u64),
        })))
    },
}];

fn check_model(p: &Params, _: &Upstream) -> Vec<FieldProblem> {
    match TrainedModel::open(&PathBuf::from(p.str("path"))) {
        Ok(_) => Vec::new(),
        Err(e) => vec![("path".to_owned(), e.to_string())],
    }
}

struct ModelTransform {
    /// One network shared by every stream's step (burn modules are not `Sync`).
    model: Arc<Mutex<TrainedModel>>,
    max_batch: usize,
    max_delay: Duration,
}

impl Transform for ModelTransform {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        Ok(Box::new(ModelStep {
            model: self.model.clone(),
            max_batch: self.max_batch,
            max_delay: self.max_delay,
            pending: Vec::new(),
            oldest: None,
        }))
    }
}

struct ModelStep {
    model: Arc<Mutex<TrainedModel>>,
    max_batch: usize,
    max_delay: Duration,
    pending: Vec<Beat>,
    oldest: Option<Instant>,
}

impl ModelStep {
    fn flush(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let model = self
            .model
            .lock()
            .map_err(|_| anyhow::anyhow!("the model lock was poisoned"))?;
        let Architecture::Resecanet(config) = &model.card.architecture;
        let mut inputs = Vec::with_capacity(self.pending.len() * config.input_len());
        for beat in &self.pending {
            let input = beat_input(beat, config.rr_features);
            if input.len() != config.input_len() || beat.before != model.card.input.before {
                bail!(
                    "beat {} of {}: a {} + 1 + {} window; the model {} takes {} + 1 + {}",
                    beat.sample,
                    beat.stream,
                    beat.before,
                    beat.after,
                    model.card.name,
                    model.card.input.before,
                    model.card.input.after
                );
            }
            inputs.extend(input);
        }
        let probabilities = model.predict(&inputs, self.max_batch)?;
        for (mut beat, p) in self.pending.drain(..).zip(probabilities) {
            beat.prediction = Some(Prediction {
                model: model.card.name.clone(),
                version: model.card.version.clone(),
                class: model.card.classes[argmax(&p)].clone(),
                probabilities: p,
            });
            out.push(Body::Beat(beat));
        }
        self.oldest = None;
        Ok(())
    }
}

impl Step for ModelStep {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        match body {
            Body::Beat(beat) => {
                self.pending.push(beat);
                let oldest = *self.oldest.get_or_insert_with(Instant::now);
                if self.pending.len() >= self.max_batch || oldest.elapsed() >= self.max_delay {
                    self.flush(out)?;
                }
                Ok(())
            }
            other => bail!(
                "the model transform takes beats, not {}",
                super::transforms::kind_of(&other)
            ),
        }
    }

    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        self.flush(out)
    }
}
