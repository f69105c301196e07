//! The `explain` transform: each beat's verdict explained by Grad-CAM, Kernel SHAP or LIME
//! (see `ecgflow_operators::explain`), emitted as an explanation that the jsonl, parquet
//! and png sinks write.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use ecgflow_operators::explain::gradcam::GradCam;
use ecgflow_operators::explain::lime::{lime, LimeSettings, Replacement};
use ecgflow_operators::explain::shap::{kernel_shap, ShapSettings};
use ecgflow_operators::explain::{
    mean_window, Attribution, BatchClassifier, ExplainError, Explanation, Features, PERTURBATION_BATCH,
};
use ecgflow_operators::models::{model_paths, ModelCard, TrainedModel};
use ecgflow_operators::train::argmax;
use ecgflow_operators::Beat;

use super::fields::{Default as D, FieldSpec as F};
use super::model::Classifier;
use super::sources::beat_records;
use super::{same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Step, Transform, Upstream};
use crate::config::Role;
use crate::message::{stream_hash, Body};
use crate::parquet_in::background_windows;

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "explain",
    role: Role::Transform,
    summary: "Explains each beat's classification and emits an explanation: the beat, with its prediction, \
              and one attribution per window sample (the jsonl, parquet and png sinks write them). The class \
              explained is the beat's predicted class when a `model` step upstream named one of this model's \
              classes, otherwise the class this model predicts. `method = \"gradcam\"`: Grad-CAM, the class \
              logit's gradient through burn's autodiff to the last convolutional block (NAME.bpk + NAME.json), \
              rectified and upsampled to the window; cheap enough for every beat. `method = \"shap\"`: Kernel \
              SHAP over `segments` contiguous segments of the window; an absent segment takes the values of \
              each beat of a background set drawn from training beats (`background`, required), so the \
              attributions sum to the probability minus the background's mean probability. `method = \
              \"lime\"`: LIME over the same segments: `samples` random on/off perturbations (an off segment \
              filled as `replacement` says), weighted by closeness to the beat, and a ridge regression whose \
              coefficients are the attributions and whose R² is reported. SHAP and LIME run the model on \
              `runtime` (tract by default) and cost hundreds of model evaluations per beat: use \
              `max_per_stream` on long streams. RR features, when the model takes them, are never perturbed. \
              Whole-record models (PTB-XL) are refused: there is no live record classification yet; \
              `ecgflow eval explain` explains them.",
    accepts: &[PortKind::Beats],
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
            "SHAP and LIME: what runs the perturbed beats (onnx: tract on NAME.onnx; burn: NAME.bpk). \
             Grad-CAM always runs on burn",
        ),
        F::int("segments", 1, 64, D::Int(12), "SHAP and LIME: contiguous segments the window is cut into"),
        F::int(
            "coalitions",
            2,
            1_000_000,
            D::Int(64),
            "SHAP: sampled coalitions, each with its complement (every coalition when 2^segments − 2 is no more)",
        ),
        F::int("samples", 2, 1_000_000, D::Int(256), "LIME: perturbed beats"),
        F::choice(
            "replacement",
            &["mean", "zero", "background"],
            "mean",
            "LIME: an off segment becomes the beat's mean (a flat line at its level), 0 mV, or the mean \
             background beat",
        ),
        F::positive("kernel_width", 0.0, 100.0, D::Float(0.25), "LIME: width of the exponential kernel on the cosine distance"),
        F::string(
            "background",
            D::Absent,
            "SHAP (required) and LIME with replacement = background: a beats Parquet table of training beats \
             (e.g. out/mitdb_beats) from which the background set is drawn",
        ),
        F::string(
            "background_records",
            D::Str("all"),
            "records of the background table to draw from: the model's training records, e.g. DS1",
        ),
        F::int(
            "background_beats",
            1,
            10_000,
            D::Int(8),
            "size of the background set (SHAP's cost grows with it: 1 + beats × (1 + coalitions) model runs per explained beat)",
        ),
        F::int(
            "max_per_stream",
            0,
            i64::MAX,
            D::Int(0),
            "explain at most this many beats of each stream, the first ones (0: all); the rest are dropped",
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

fn check_explain(p: &Params, _: &Upstream) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let method = p.str("method");
    let needs_background = method == "shap" || (method == "lime" && p.str("replacement") == "background");
    let background = p.opt_str("background").unwrap_or("");
    if needs_background && background.is_empty() {
        let why = if method == "shap" {
            "SHAP needs a background set of training beats"
        } else {
            "replacement = \"background\" needs a background set"
        };
        problems.push((
            "background".to_owned(),
            format!("{why}: a beats Parquet table, e.g. out/mitdb_beats"),
        ));
    } else if needs_background && !Path::new(background).exists() {
        problems.push((
            "background".to_owned(),
            format!("{background}: no such file or directory (write it with pipelines/mitdb-to-parquet.toml)"),
        ));
    }
    if let Err(e) = beat_records(p.str("background_records")) {
        problems.push(("background_records".to_owned(), format!("{e:#}")));
    }
    if let Err(e) = open_models(p) {
        problems.push(("path".to_owned(), format!("{e:#}")));
    }
    problems
}

/// The classifier that turns beats into inputs (and runs perturbed beats), and for
/// Grad-CAM the burn network.
fn open_models(p: &Params) -> anyhow::Result<(Classifier, Option<GradCam>)> {
    let path = Path::new(p.str("path"));
    refuse_record_models(path)?;
    if p.str("method") == "gradcam" {
        let model = TrainedModel::open(path).context("Grad-CAM needs the burn model (NAME.bpk + NAME.json)")?;
        let cam = GradCam::new(&model.network, &model.card.architecture);
        return Ok((Classifier::from_model(model)?, Some(cam)));
    }
    let classifier = Classifier::open(path, p.str("runtime"))?;
    if classifier.window.is_none() {
        bail!(
            "{}: no model card beside it (NAME.json); explanations need one",
            path.display()
        );
    }
    Ok((classifier, None))
}

/// A clear refusal when the card beside `path` is a whole-record model's (PTB-XL): there is
/// no live record classification to explain yet.
fn refuse_record_models(path: &Path) -> anyhow::Result<()> {
    let card_path = model_paths(path).1;
    let Ok(text) = std::fs::read_to_string(&card_path) else {
        return Ok(()); // a missing card is reported where the model is opened
    };
    let Ok(card) = serde_json::from_str::<ModelCard>(&text) else {
        return Ok(());
    };
    if card.record_input().is_ok() {
        bail!(
            "model {} ({}) takes whole records (PTB-XL), not beats: the explain transform explains \
             classified beats; explain a record model with `ecgflow eval explain --model {} --data PTB-XL-DIR`",
            card.name,
            card_path.display(),
            card_path.display()
        );
    }
    Ok(())
}

/// How beats are explained.
enum Method {
    /// burn modules are not `Sync`: one Grad-CAM network behind a lock (boxed: it is large).
    GradCam(Box<Mutex<GradCam>>),
    Shap {
        settings: ShapSettings,
        /// `background_beats × window` values.
        background: Vec<f32>,
    },
    Lime {
        settings: LimeSettings,
        /// The mean background window (only used with `replacement = "background"`).
        background_mean: Vec<f32>,
    },
}

/// A model and a method, shared by every stream's step.
struct Explainer {
    classifier: Classifier,
    method: Method,
    /// The window's segments (SHAP and LIME).
    segments: Features,
    seed: u64,
}

impl Explainer {
    fn from_params(p: &Params) -> anyhow::Result<Self> {
        let (classifier, cam) = open_models(p)?;
        let window = classifier.window_len();
        let segments = Features::even(window, p.usize("segments")).context("segments")?;
        let seed = p.i64("seed") as u64;
        let background = match p.opt_str("background") {
            None => Vec::new(),
            Some(table) => {
                let records = beat_records(p.str("background_records")).context("background_records")?;
                background_windows(
                    Path::new(table),
                    records.as_ref(),
                    classifier.window.expect("checked in open_models"),
                    p.usize("background_beats"),
                    seed,
                )?
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
                    background_mean: mean_window(&background, window),
                }
            }
        };
        Ok(Explainer {
            classifier,
            method,
            segments,
            seed,
        })
    }

    /// The explanation of `beat`'s verdict.
    fn explain(&self, beat: Beat) -> anyhow::Result<Explanation> {
        let model = &self.classifier;
        let input = model.input(&beat)?;
        let predicted = beat
            .prediction
            .as_ref()
            .and_then(|p| model.classes.iter().position(|c| *c == p.class));
        // Per-beat seeds: the same beat gets the same explanation on any worker, in any run.
        let seed = self.seed ^ stream_hash(&beat.stream) ^ beat.sample.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let named = |e: ExplainError| anyhow::anyhow!("beat {} of {}: {e}", beat.sample, beat.stream);
        let attribution: Attribution = match &self.method {
            Method::GradCam(cam) => {
                let cam = cam
                    .lock()
                    .map_err(|_| anyhow::anyhow!("the Grad-CAM lock was poisoned"))?;
                let classes = predicted.map(|c| vec![c]);
                let mut maps = cam.explain(&input, classes.as_deref()).map_err(named)?;
                maps.pop().context("Grad-CAM returned nothing")?
            }
            Method::Shap { settings, background } => {
                let class = self.class_of(&input, predicted)?;
                let settings = ShapSettings {
                    seed,
                    ..settings.clone()
                };
                kernel_shap(&Perturbed(model), &input, &self.segments, background, class, &settings).map_err(named)?
            }
            Method::Lime {
                settings,
                background_mean,
            } => {
                let class = self.class_of(&input, predicted)?;
                let settings = LimeSettings {
                    seed,
                    ..settings.clone()
                };
                lime(
                    &Perturbed(model),
                    &input,
                    &self.segments,
                    background_mean,
                    class,
                    &settings,
                )
                .map_err(named)?
            }
        };
        Ok(Explanation {
            class_name: model.classes[attribution.class].clone(),
            beat,
            attribution,
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
    /// Beats this stream may still have explained; `None`: no limit.
    left: Option<usize>,
}

impl Step for ExplainStep {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        match body {
            Body::Beat(beat) => {
                if let Some(left) = &mut self.left {
                    if *left == 0 {
                        return Ok(());
                    }
                    *left -= 1;
                }
                out.push(Body::Explanation(Box::new(self.explainer.explain(beat)?)));
                Ok(())
            }
            other => bail!(
                "the explain transform takes beats, not {}",
                super::transforms::kind_of(&other)
            ),
        }
    }

    fn finish(&mut self, _out: &mut Vec<Body>) -> anyhow::Result<()> {
        Ok(())
    }
}
