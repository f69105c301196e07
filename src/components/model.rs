//! The `model` transform: a trained beat classifier applied to beats as they pass, in
//! batches, attaching each beat's predicted class and probabilities. The network runs on
//! tract (`runtime = "onnx"`, NAME.onnx) or on burn (`runtime = "burn"`, NAME.bpk); both go
//! through the one [`Classifier`] and the one batching step.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ecgflow_operators::models::resecanet::{beat_input, missing_template, BeatExtras};
use ecgflow_operators::models::tract::OnnxClassifier;
use ecgflow_operators::models::{model_paths, BeatTiming, ModelCard, RecordInput, TrainedModel};
use ecgflow_operators::train::argmax;
use ecgflow_operators::{Beat, DecidedBy, Prediction};

use super::fields::{Default as D, FieldSpec as F};
use super::{same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Step, Transform, Upstream};
use crate::config::Role;
use crate::message::Body;

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "model",
    role: Role::Transform,
    summary: "Classifies beats with a trained model and attaches the prediction to each beat: the model's \
              name and version, the most probable class and every class's probability (the jsonl sink writes \
              them); the class follows the card's decisions where it keeps any (docs/reports.md, \"Decisions \
              after the network\": minimum probabilities per class, and the premature-beat rule that calls S a \
              beat the network calls N when it came early in a regular rhythm), the probabilities staying the \
              network's; `decided_by` says what made the class the verdict (`network`, `min_probability` or \
              `premature_rule`). With `runtime = \"onnx\"` (the default) tract runs NAME.onnx (written by `ecgflow export`, \
              or any ONNX classifier with one input [N, 1, L] f32 and one output of logits [N, classes]); \
              NAME.json beside it, the model card, gives the class names, the beat window and whether RR \
              features follow the window, and validation checks that the ONNX input length and output width \
              agree with it. Without a card the classes are named by index (\"0\", \"1\", ...), the model by its \
              file name with an empty version, the input is the beat's window alone, and each beat's window \
              (before + 1 + after) must have the ONNX input length. With `runtime = \"burn\"` the training \
              code's own network runs from NAME.bpk + NAME.json (written by the `train` sink). Beats of all \
              the streams on a worker are run together in batches of up to `max_batch`, flushed when the batch \
              is full, when a beat arrives and the oldest waiting beat has waited `max_delay_ms`, or when a \
              stream ends. The beats' window (before/after) must be the one the \
              model was trained on.",
    accepts: &[PortKind::Beats],
    output: Output::Kind(PortKind::Beats),
    fields: &[
        F::string(
            "path",
            D::Required,
            "the model: NAME.onnx, NAME.json or NAME.bpk (any of them names the model; the runtime picks the file)",
        ),
        F::choice(
            "runtime",
            &["onnx", "burn"],
            "onnx",
            "inference engine: onnx (tract on NAME.onnx, card NAME.json optional) or burn (NAME.bpk + NAME.json)",
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
        Ok(Built::Transform(Arc::new(ModelTransform {
            classifier: Arc::new(Classifier::from_params(p)?),
            max_batch: p.usize("max_batch"),
            max_delay: Duration::from_millis(p.i64("max_delay_ms") as u64),
            batches: Mutex::new(HashMap::new()),
        })))
    },
}];

fn check_model(p: &Params, _: &Upstream) -> Vec<FieldProblem> {
    match Classifier::from_params(p) {
        Ok(classifier) if classifier.record().is_some() => vec![(
            "path".to_owned(),
            format!(
                "model {} takes whole records (PTB-XL), not beats: classify records with a `record_model` step",
                classifier.name
            ),
        )],
        Ok(_) => Vec::new(),
        Err(e) => vec![("path".to_owned(), format!("{e:#}"))],
    }
}

/// A network in one of the runtimes.
pub(super) enum Runtime {
    /// burn modules are not `Sync`: one network behind a lock, shared by every stream.
    Burn(Box<Mutex<TrainedModel>>),
    /// A tract plan runs each call in its own state: shared without a lock.
    Onnx(OnnxClassifier),
}

impl Runtime {
    /// Class probabilities for `inputs` (`n × input_len`), `batch` beats at a time.
    pub(super) fn predict(&self, inputs: &[f32], batch: usize) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(match self {
            Runtime::Burn(model) => model
                .lock()
                .map_err(|_| anyhow::anyhow!("the model lock was poisoned"))?
                .predict(inputs, batch)?,
            Runtime::Onnx(model) => model.predict(inputs, batch)?,
        })
    }
}

/// A loaded model and what it takes to feed it beats or records and name its outputs
/// (shared by the `model`, `record_model` and `explain` transforms).
pub(super) struct Classifier {
    pub(super) runtime: Runtime,
    /// Name and version written into each prediction.
    pub(super) name: String,
    version: String,
    /// Class names in output order.
    pub(super) classes: Vec<String>,
    /// Values per input.
    pub(super) input_len: usize,
    /// What follows the window in the input.
    extras: BeatExtras,
    /// The window (before, after) the model was trained on, from its card; `None` without a
    /// card (then the beat's window must have `input_len` samples) and for record models.
    pub(super) window: Option<(usize, usize)>,
    /// Multi-label models: each class's decision threshold, from the card.
    thresholds: Option<Vec<f32>>,
    /// The model card, when there is one.
    pub(super) card: Option<ModelCard>,
}

impl Classifier {
    pub(super) fn from_params(p: &Params) -> anyhow::Result<Self> {
        Self::open(Path::new(p.str("path")), p.str("runtime"))
    }

    /// Loads the model named by `path` for `runtime` (`onnx` or `burn`).
    pub(super) fn open(path: &Path, runtime: &str) -> anyhow::Result<Self> {
        if runtime == "burn" {
            return Ok(Self::from_model(TrainedModel::open(path)?));
        }
        let (_, card_path) = model_paths(path);
        let onnx_path = match path.extension().and_then(|e| e.to_str()) {
            Some("onnx") => path.to_path_buf(),
            _ => card_path.with_extension("onnx"),
        };
        if !onnx_path.is_file() {
            bail!(
                "{}: no such file; runtime = \"onnx\" runs NAME.onnx (write it with `ecgflow export --model {} \
                 --onnx {}`), runtime = \"burn\" runs NAME.bpk",
                onnx_path.display(),
                card_path.display(),
                onnx_path.display()
            );
        }
        let onnx = OnnxClassifier::load(&onnx_path)?;
        if !card_path.is_file() {
            if path.extension().is_some_and(|e| e == "json") {
                bail!("{}: no such file", card_path.display());
            }
            let name = onnx_path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            return Ok(Classifier {
                name,
                version: String::new(),
                classes: (0..onnx.classes()).map(|c| c.to_string()).collect(),
                input_len: onnx.input_len(),
                extras: BeatExtras::default(),
                window: None,
                thresholds: None,
                card: None,
                runtime: Runtime::Onnx(onnx),
            });
        }
        let text = std::fs::read_to_string(&card_path).with_context(|| card_path.display().to_string())?;
        let card: ModelCard =
            serde_json::from_str(&text).with_context(|| format!("{}: not a model card", card_path.display()))?;
        onnx.check_card(&card, &card_path)?;
        Ok(Self::with_card(Runtime::Onnx(onnx.with_output(card.output)), &card))
    }

    /// A burn model as a classifier.
    pub(super) fn from_model(model: TrainedModel) -> Self {
        let card = model.card.clone();
        Self::with_card(Runtime::Burn(Box::new(Mutex::new(model))), &card)
    }

    fn with_card(runtime: Runtime, card: &ModelCard) -> Self {
        Classifier {
            runtime,
            name: card.name.clone(),
            version: card.version.clone(),
            classes: card.classes.clone(),
            input_len: card.architecture.input_len(),
            extras: card.architecture.beat_extras(),
            window: card.beat_input().ok().map(|input| (input.before, input.after)),
            thresholds: card.thresholds.clone(),
            card: Some(card.clone()),
        }
    }

    /// The prediction for one input's class probabilities: the most probable class (or the
    /// card's decision, given the beat's `timing`), and for multi-label models
    /// every class at or above its threshold.
    pub(super) fn prediction(&self, probabilities: Vec<f32>, timing: Option<BeatTiming>) -> Prediction {
        let labels = match &self.thresholds {
            Some(thresholds) => self
                .classes
                .iter()
                .zip(probabilities.iter().zip(thresholds))
                .filter(|(_, (p, t))| p >= t)
                .map(|(class, _)| class.clone())
                .collect(),
            None => Vec::new(),
        };
        let (class, decided_by) = match &self.card {
            Some(card) => card.decide(&probabilities, timing),
            None => (argmax(&probabilities), DecidedBy::Network),
        };
        Prediction {
            model: self.name.clone(),
            version: self.version.clone(),
            class: self.classes[class].clone(),
            probabilities,
            labels,
            decided_by,
        }
    }

    /// What a whole-record model takes (its card says); `None` for beat models.
    pub(super) fn record(&self) -> Option<&RecordInput> {
        self.card.as_ref()?.record_input().ok()
    }

    /// Samples of the beat window at the start of each input (the rest are its template
    /// and RR features, when the model takes them).
    pub(super) fn window_len(&self) -> usize {
        self.window.map_or(self.input_len, |(before, after)| before + 1 + after)
    }

    /// The model's input for `beat`, or why the beat does not fit the model.
    pub(super) fn input(&self, beat: &Beat) -> anyhow::Result<Vec<f32>> {
        if let Some(problem) = missing_template(beat, self.extras) {
            bail!("{problem} ({})", self.name);
        }
        let input = beat_input(beat, self.extras);
        let fits = match self.window {
            Some(window) => window == (beat.before, beat.after) && input.len() == self.input_len,
            None => input.len() == self.input_len,
        };
        if !fits {
            let takes = match self.window {
                Some((before, after)) => format!("{before} + 1 + {after} window"),
                None => format!("window of {} samples", self.input_len),
            };
            bail!(
                "beat {} of {}: a {} + 1 + {} window; the model {} takes a {takes}",
                beat.sample,
                beat.stream,
                beat.before,
                beat.after,
                self.name,
            );
        }
        Ok(input)
    }
}

struct ModelTransform {
    /// One model shared by every stream's step.
    classifier: Arc<Classifier>,
    max_batch: usize,
    max_delay: Duration,
    /// One batch per worker thread, shared by the steps of all its streams, so that beats of
    /// many slow (live) streams fill a batch together.
    batches: Mutex<HashMap<ThreadId, Arc<Mutex<Batch>>>>,
}

/// Beats waiting to be classified together, with their inputs.
#[derive(Default)]
struct Batch {
    beats: Vec<Beat>,
    inputs: Vec<f32>,
    /// When the oldest waiting beat arrived.
    oldest: Option<Instant>,
}

impl Transform for ModelTransform {
    fn open(&self, first: &Body) -> anyhow::Result<Box<dyn Step>> {
        let batch = self
            .batches
            .lock()
            .map_err(|_| anyhow::anyhow!("the batch table lock was poisoned"))?
            .entry(std::thread::current().id())
            .or_default()
            .clone();
        Ok(Box::new(ModelStep {
            stream: first.stream().to_owned(),
            classifier: self.classifier.clone(),
            max_batch: self.max_batch,
            max_delay: self.max_delay,
            batch,
        }))
    }
    fn waits(&self) -> bool {
        true
    }
}

/// One stream's view of its worker's batch.
struct ModelStep {
    stream: String,
    classifier: Arc<Classifier>,
    max_batch: usize,
    max_delay: Duration,
    batch: Arc<Mutex<Batch>>,
}

impl ModelStep {
    fn batch(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Batch>> {
        self.batch
            .lock()
            .map_err(|_| anyhow::anyhow!("the batch lock was poisoned"))
    }

    /// Classifies every waiting beat, of whichever stream, and emits them in arrival order
    /// (each keeps its stream; the engine routes it by that stream).
    fn flush(&self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        let mut batch = self.batch()?;
        if batch.beats.is_empty() {
            return Ok(());
        }
        let model = &*self.classifier;
        let inputs = std::mem::take(&mut batch.inputs);
        let beats = std::mem::take(&mut batch.beats);
        batch.oldest = None;
        let probabilities = model.runtime.predict(&inputs, self.max_batch)?;
        for (mut beat, p) in beats.into_iter().zip(probabilities) {
            beat.prediction = Some(model.prediction(p, BeatTiming::of(&beat)));
            out.push(Body::Beat(beat));
        }
        Ok(())
    }
}

impl Step for ModelStep {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        match body {
            Body::Beat(beat) => {
                // Checked here, so that a beat that does not fit fails its own stream.
                let input = self.classifier.input(&beat)?;
                let full = {
                    let mut batch = self.batch()?;
                    batch.inputs.extend(input);
                    batch.beats.push(beat);
                    let oldest = *batch.oldest.get_or_insert_with(Instant::now);
                    batch.beats.len() >= self.max_batch || oldest.elapsed() >= self.max_delay
                };
                if full {
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

    fn poll(&mut self, out: &mut Vec<Body>) -> anyhow::Result<Option<Duration>> {
        let waited = self.batch()?.oldest.map(|oldest| oldest.elapsed());
        match waited {
            None => Ok(None),
            Some(waited) if waited >= self.max_delay => self.flush(out).map(|()| None),
            Some(waited) => Ok(Some(self.max_delay - waited)),
        }
    }
}

impl Drop for ModelStep {
    /// A stream that failed or was aborted leaves no beats behind in the shared batch.
    fn drop(&mut self) {
        if let Ok(mut batch) = self.batch.lock() {
            let len = self.classifier.input_len;
            let Batch { beats, inputs, .. } = &mut *batch;
            let mut kept = Vec::with_capacity(beats.len());
            let mut kept_inputs = Vec::with_capacity(inputs.len());
            for (beat, input) in beats.drain(..).zip(inputs.chunks(len)) {
                if beat.stream != self.stream {
                    kept.push(beat);
                    kept_inputs.extend_from_slice(input);
                }
            }
            *beats = kept;
            *inputs = kept_inputs;
            if beats.is_empty() {
                batch.oldest = None;
            }
        }
    }
}
