//! The `explain` transform: each beat's verdict, or each whole record's (from a
//! `record_model` step), explained by Grad-CAM, Kernel SHAP or LIME (see
//! `ecgflow_operators::explain`), emitted as an explanation that the jsonl, parquet and png
//! sinks write.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use ecgflow_operators::explain::gradcam::GradCam;
use ecgflow_operators::explain::lime::{lime, LimeSettings, Replacement};
use ecgflow_operators::explain::shap::{kernel_shap, ShapSettings};
use ecgflow_operators::explain::{
    mean_window, Attribution, BatchClassifier, ExplainError, Explanation, Features, Subject, PERTURBATION_BATCH,
};
use ecgflow_operators::models::TrainedModel;
use ecgflow_operators::train::argmax;
use ecgflow_operators::{Beat, Prediction, Tensor};

use super::fields::{Default as D, FieldSpec as F};
use super::model::Classifier;
use super::sources::{beat_records, parse_folds};
use super::{same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Step, Transform, Upstream};
use crate::config::Role;
use crate::eval_explain::{background_records, record_features};
use crate::message::{stream_hash, Body};
use crate::parquet_in::background_windows;

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "explain",
    role: Role::Transform,
    summary: "Explains each beat's classification, or each whole record's, and emits an explanation: the beat \
              (or the record's network input) with its prediction, and one attribution per window sample \
              (or per pixel of a record's image, per sample of its leads); the jsonl, parquet and png sinks \
              write them. Beats come from a `model` step (or straight from segmentation) with a beat model; \
              records come from a `record_model` step with the same record model (PTB-XL). The class \
              explained is the upstream prediction's most probable class when it is one of this model's, \
              otherwise the class this model predicts. `method = \"gradcam\"`: Grad-CAM, the class logit's \
              gradient through burn's autodiff to the last convolutional block (NAME.bpk + NAME.json), \
              rectified and upsampled to the window or image; cheap enough for every beat. `method = \
              \"shap\"`: Kernel SHAP over features: `segments` contiguous segments of a beat's window, \
              `patches` of a record's image, or `segments` time segments of each lead of a record; an absent \
              feature takes the values of each input of a background set (`background`, required: training \
              beats, or PTB-XL records of `background_folds`), so the attributions sum to the probability \
              minus the background's mean probability. `method = \"lime\"`: LIME over the same features: \
              `samples` random on/off perturbations (an off feature filled as `replacement` says), weighted \
              by closeness to the input, and a ridge regression whose coefficients are the attributions and \
              whose R² is reported. SHAP and LIME run the model on `runtime` (tract by default) and cost \
              hundreds of model evaluations per input: use `max_per_stream` on long streams. RR features, \
              when the model takes them, are never perturbed.",
    accepts: &[PortKind::Beats, PortKind::Tensors],
    output: Output::Kind(PortKind::Explanations),
    fields: &[
        F::string(
            "path",
            D::Required,
            "the model: NAME.json, NAME.bpk or NAME.onnx (its card NAME.json must be beside it)",
        ),
        F::choice("method", &["gradcam", "shap", "lime"], "gradcam", "explanation method"),
        F::choice(
            "runtime",
            &["onnx", "burn"],
            "onnx",
            "SHAP and LIME: what runs the perturbed inputs (onnx: tract on NAME.onnx; burn: NAME.bpk). \
             Grad-CAM always runs on burn",
        ),
        F::int(
            "segments",
            1,
            64,
            D::Int(12),
            "SHAP and LIME: contiguous segments a beat's window is cut into, or each lead of a signal record",
        ),
        F::string(
            "patches",
            D::Str("8x8"),
            "SHAP and LIME on an image record model: the image's patches, ROWSxCOLS",
        ),
        F::int(
            "coalitions",
            2,
            1_000_000,
            D::Int(64),
            "SHAP: sampled coalitions, each with its complement (every coalition when 2^segments − 2 is no more)",
        ),
        F::int("samples", 2, 1_000_000, D::Int(256), "LIME: perturbed inputs"),
        F::choice(
            "replacement",
            &["mean", "zero", "background"],
            "mean",
            "LIME: an off feature becomes the input's mean (a flat line at the beat's level, a patch of \
             the image's mean grey), 0, or the mean background input",
        ),
        F::positive("kernel_width", 0.0, 100.0, D::Float(0.25), "LIME: width of the exponential kernel on the cosine distance"),
        F::string(
            "background",
            D::Absent,
            "SHAP (required) and LIME with replacement = background: where the background set is drawn \
             from: for a beat model a beats Parquet table of training beats (e.g. out/mitdb_beats), for a \
             record model a PTB-XL directory (e.g. ${ECGFLOW_DATA}/ptbxl)",
        ),
        F::string(
            "background_records",
            D::Str("all"),
            "beat models: records of the background table to draw from: the model's training records, e.g. DS1",
        ),
        F::string(
            "background_folds",
            D::Str("1-8"),
            "record models: PTB-XL folds the background records are drawn from (the model's training folds)",
        ),
        F::int(
            "background_beats",
            1,
            10_000,
            D::Int(8),
            "size of the background set, beats or records (SHAP's cost grows with it: 1 + size × (1 + coalitions) model runs per explained input)",
        ),
        F::int(
            "max_per_stream",
            0,
            i64::MAX,
            D::Int(0),
            "explain at most this many beats (or records) of each stream, the first ones (0: all); the rest are dropped",
        ),
        F::int("seed", 0, i64::MAX, D::Int(1), "random seed (background draw, coalitions, perturbations)"),
    ],
    check: check_explain,
    output_fs: same_fs,
    build: |p| {
        Ok(Built::Transform(Arc::new(ExplainTransform {
            explainer: Arc::new(Explainer::from_params(p)?),
            max_per_stream: p.usize("max_per_stream"),
        })))
    },
}];

fn check_explain(p: &Params, upstream: &Upstream) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let method = p.str("method");
    let needs_background = method == "shap" || (method == "lime" && p.str("replacement") == "background");
    let background = p.opt_str("background").unwrap_or("");
    if needs_background && background.is_empty() {
        let why = if method == "shap" {
            "SHAP needs a background set of training inputs"
        } else {
            "replacement = \"background\" needs a background set"
        };
        problems.push((
            "background".to_owned(),
            format!("{why}: a beats Parquet table (e.g. out/mitdb_beats), or for a record model a PTB-XL directory"),
        ));
    } else if needs_background && !Path::new(background).exists() {
        problems.push((
            "background".to_owned(),
            format!("{background}: no such file or directory"),
        ));
    }
    if let Err(e) = parse_folds(p.str("background_folds")) {
        problems.push(("background_folds".to_owned(), format!("{e:#}")));
    }
    if let Err(e) = beat_records(p.str("background_records")) {
        problems.push(("background_records".to_owned(), format!("{e:#}")));
    }
    match open_models(p) {
        Err(e) => problems.push(("path".to_owned(), format!("{e:#}"))),
        Ok((classifier, _)) => {
            let name = &classifier.name;
            match (upstream.kind, classifier.record().is_some()) {
                (Some(PortKind::Beats), true) => problems.push((
                    "path".to_owned(),
                    format!(
                        "model {name} classifies whole records (PTB-XL), but beats reach this step: explain beats \
                         with the beat model that classified them, records after a `record_model` step"
                    ),
                )),
                (Some(PortKind::Tensors), false) => problems.push((
                    "path".to_owned(),
                    format!(
                        "model {name} classifies beats, but tensors reach this step: explain records after a \
                         `record_model` step with the same record model"
                    ),
                )),
                _ => {}
            }
        }
    }
    problems
}

/// The classifier that turns beats or records into inputs (and runs perturbed inputs), and
/// for Grad-CAM the burn network.
fn open_models(p: &Params) -> anyhow::Result<(Classifier, Option<GradCam>)> {
    let path = Path::new(p.str("path"));
    if p.str("method") == "gradcam" {
        let model = TrainedModel::open(path).context("Grad-CAM needs the burn model (NAME.bpk + NAME.json)")?;
        let cam = GradCam::new(&model.network, &model.card.architecture).with_output(model.card.output);
        return Ok((Classifier::from_model(model), Some(cam)));
    }
    let classifier = Classifier::open(path, p.str("runtime"))?;
    if classifier.card.is_none() {
        bail!(
            "{}: no model card beside it (NAME.json); explanations need one",
            path.display()
        );
    }
    Ok((classifier, None))
}

/// How inputs are explained.
enum Method {
    /// burn modules are not `Sync`: one Grad-CAM network behind a lock (boxed: it is large).
    GradCam(Box<Mutex<GradCam>>),
    Shap {
        settings: ShapSettings,
        /// `background_beats × span` values (beats' windows, or records' inputs).
        background: Vec<f32>,
    },
    Lime {
        settings: LimeSettings,
        /// The mean background input (only used with `replacement = "background"`).
        background_mean: Vec<f32>,
    },
}

/// A model and a method, shared by every stream's step.
struct Explainer {
    classifier: Classifier,
    method: Method,
    /// What SHAP and LIME switch on and off: a beat window's segments, a record image's
    /// patches, a record's lead segments.
    features: Features,
    seed: u64,
}

impl Explainer {
    fn from_params(p: &Params) -> anyhow::Result<Self> {
        let (classifier, cam) = open_models(p)?;
        let card = classifier.card.as_ref().context("explanations need a model card")?;
        let seed = p.i64("seed") as u64;
        let count = p.usize("background_beats");
        let (features, background) = match classifier.record() {
            None => {
                let window = classifier.window_len();
                let features = Features::even(window, p.usize("segments")).context("segments")?;
                let background = match p.opt_str("background") {
                    None => Vec::new(),
                    Some(table) => {
                        let records = beat_records(p.str("background_records")).context("background_records")?;
                        let window = classifier.window.context("explanations need a model card")?;
                        background_windows(Path::new(table), records.as_ref(), window, count, seed)?
                    }
                };
                (features, background)
            }
            Some(input) => {
                let features = record_features(card, input, p.str("patches"), p.usize("segments"))?;
                let background = match p.opt_str("background") {
                    None => Vec::new(),
                    Some(dir) => {
                        let folds = parse_folds(p.str("background_folds")).context("background_folds")?;
                        background_records(Path::new(dir), &folds, count, seed, input)?
                    }
                };
                (features, background)
            }
        };
        let method = match (p.str("method"), cam) {
            (_, Some(cam)) => Method::GradCam(Box::new(Mutex::new(cam))),
            ("shap", _) => Method::Shap {
                settings: ShapSettings {
                    coalitions: p.usize("coalitions"),
                    seed,
                },
                background,
            },
            _ => {
                let replacement = Replacement::parse(p.str("replacement")).expect("a checked choice");
                Method::Lime {
                    settings: LimeSettings {
                        samples: p.usize("samples"),
                        kernel_width: p.f64("kernel_width") as f32,
                        replacement,
                        seed,
                        ..LimeSettings::default()
                    },
                    background_mean: mean_window(&background, features.span()),
                }
            }
        };
        Ok(Explainer {
            classifier,
            method,
            features,
            seed,
        })
    }

    /// The explanation of `beat`'s verdict.
    fn explain_beat(&self, beat: Beat) -> anyhow::Result<Explanation> {
        if self.classifier.record().is_some() {
            bail!(
                "beat {} of {}: model {} classifies whole records; explain beats with a beat model",
                beat.sample,
                beat.stream,
                self.classifier.name
            );
        }
        let input = self.classifier.input(&beat)?;
        // Per-beat seeds: the same beat gets the same explanation on any worker, in any run.
        let seed = self.seed ^ stream_hash(&beat.stream) ^ beat.sample.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let what = format!("beat {} of {}", beat.sample, beat.stream);
        let attribution = self.attribution(&input, beat.prediction.as_ref(), seed, &what)?;
        Ok(Explanation {
            class_name: self.classifier.classes[attribution.class].clone(),
            subject: Subject::Beat(beat),
            attribution,
        })
    }

    /// The explanation of a record's verdict: `tensor` is its network input, with the
    /// prediction of a `record_model` step.
    fn explain_record(&self, tensor: Tensor) -> anyhow::Result<Explanation> {
        let model = &self.classifier;
        let Some(input) = model.record() else {
            bail!(
                "record {}: model {} classifies beats; explain records with the record model that classified them",
                tensor.stream,
                model.name
            );
        };
        if tensor.data.len() != model.input_len {
            bail!(
                "record {}: a tensor of {} values; model {} takes {} (is it the record_model step's output \
                 for this model?)",
                tensor.stream,
                tensor.data.len(),
                model.name,
                model.input_len
            );
        }
        let seed = self.seed ^ stream_hash(&tensor.stream);
        let what = format!("record {}", tensor.stream);
        let attribution = self.attribution(&tensor.data, tensor.prediction.as_ref(), seed, &what)?;
        let subject = match input.image {
            Some(_) => Subject::Image(tensor),
            None => Subject::Leads {
                tensor,
                leads: input.leads.clone(),
                fs: input.fs,
            },
        };
        Ok(Explanation {
            class_name: model.classes[attribution.class].clone(),
            subject,
            attribution,
        })
    }

    /// One method's attribution of `input` (`what` names it in errors), for the class the
    /// upstream `prediction` named when this model has it, else for this model's verdict.
    fn attribution(
        &self,
        input: &[f32],
        prediction: Option<&Prediction>,
        seed: u64,
        what: &str,
    ) -> anyhow::Result<Attribution> {
        let model = &self.classifier;
        let predicted = prediction.and_then(|p| model.classes.iter().position(|c| *c == p.class));
        let named = |e: ExplainError| anyhow::anyhow!("{what}: {e}");
        Ok(match &self.method {
            Method::GradCam(cam) => {
                let cam = cam
                    .lock()
                    .map_err(|_| anyhow::anyhow!("the Grad-CAM lock was poisoned"))?;
                let classes = predicted.map(|c| vec![c]);
                let mut maps = cam.explain(input, classes.as_deref()).map_err(named)?;
                maps.pop().context("Grad-CAM returned nothing")?
            }
            Method::Shap { settings, background } => {
                let class = self.class_of(input, predicted)?;
                let settings = ShapSettings {
                    seed,
                    ..settings.clone()
                };
                kernel_shap(&Perturbed(model), input, &self.features, background, class, &settings).map_err(named)?
            }
            Method::Lime {
                settings,
                background_mean,
            } => {
                let class = self.class_of(input, predicted)?;
                let settings = LimeSettings {
                    seed,
                    ..settings.clone()
                };
                lime(
                    &Perturbed(model),
                    input,
                    &self.features,
                    background_mean,
                    class,
                    &settings,
                )
                .map_err(named)?
            }
        })
    }

    /// The class to explain: the upstream prediction's, or this model's own verdict.
    fn class_of(&self, input: &[f32], predicted: Option<usize>) -> anyhow::Result<usize> {
        match predicted {
            Some(c) => Ok(c),
            None => {
                let p = self.classifier.runtime.predict(input, 1)?;
                Ok(argmax(&p[0]))
            }
        }
    }
}

/// The model as SHAP and LIME see it.
struct Perturbed<'a>(&'a Classifier);

impl BatchClassifier for Perturbed<'_> {
    fn input_len(&self) -> usize {
        self.0.input_len
    }

    fn predict(&self, inputs: &[f32]) -> Result<Vec<Vec<f32>>, ExplainError> {
        self.0
            .runtime
            .predict(inputs, PERTURBATION_BATCH)
            .map_err(|e| ExplainError::Model(format!("{e:#}")))
    }
}

struct ExplainTransform {
    explainer: Arc<Explainer>,
    max_per_stream: usize,
}

impl Transform for ExplainTransform {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        Ok(Box::new(ExplainStep {
            explainer: self.explainer.clone(),
            left: (self.max_per_stream > 0).then_some(self.max_per_stream),
        }))
    }
}

struct ExplainStep {
    explainer: Arc<Explainer>,
    /// Inputs this stream may still have explained; `None`: no limit.
    left: Option<usize>,
}

impl Step for ExplainStep {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        if matches!(body, Body::Beat(_) | Body::Tensor(_)) {
            if let Some(left) = &mut self.left {
                if *left == 0 {
                    return Ok(());
                }
                *left -= 1;
            }
        }
        let explanation = match body {
            Body::Beat(beat) => self.explainer.explain_beat(beat)?,
            Body::Tensor(tensor) => self.explainer.explain_record(tensor)?,
            other => bail!(
                "the explain transform takes beats or classified records, not {}",
                super::transforms::kind_of(&other)
            ),
        };
        out.push(Body::Explanation(Box::new(explanation)));
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Body>) -> anyhow::Result<()> {
        Ok(())
    }
}
