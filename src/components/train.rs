//! The `train` sink: labelled beats in, a trained classifier and its reports out.
//!
//! It holds every beat until the input ends, then splits them (test part, validation part,
//! or K folds; by beat or by patient), balances the training part only with SMOTE when asked,
//! trains with `ecgflow_operators::train::fit` (resumable from its checkpoint) and writes
//! the model, the training curves and the reports under `path`.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{bail, Context};
use ecgflow_datasets::mitdb::LabelMap;
use ecgflow_datasets::ptbxl::SUPERCLASSES;
use ecgflow_operators::augment::{Augmentation, Fill};
use ecgflow_operators::metrics::{best_f1_thresholds, ClassificationReport, CrossValidationSummary};
use ecgflow_operators::models::cwt_layer::CwtFrontEnd;
use ecgflow_operators::models::decision::{self, DecisionChoice, DecisionMetric};
use ecgflow_operators::models::resecanet::{beat_input as beat_input_values, missing_template, RrReference};
use ecgflow_operators::models::{
    predict_with, save_model, Architecture, BeatInput, BeatTiming, ModelCard, ModelInput, Network,
    Output as Activation, RecordInput, ResDscNetConfig, ResEcaNetConfig, RuleClasses, TrainedModel, Vgg16Config,
};
use ecgflow_operators::render::{RenderConfig, STANDARD_LEADS};
use ecgflow_operators::smote::{Smote, Target};
use ecgflow_operators::split::{holdout, k_folds, SplitBy};
use ecgflow_operators::train::{
    balancing_weights, fit, Dataset, EpochRecord, Monitor, Schedule, TrainObserver, TrainOutcome, TrainSettings,
};
use ecgflow_operators::Beat;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use super::fields::{Default as D, FieldSpec as F};
use super::record_model::RecordBuffer;
use super::{same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Sink, SinkWriter, Upstream};
use crate::config::Role;
use crate::message::{meta_value, Body};
use crate::parquet_out::{BeatRows, ParquetTable};
use crate::reports::{
    classify, write_classification, write_history, write_json, write_multi_label_report, LabelledBeats,
};

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "train",
    role: Role::Sink,
    summary: "Trains a classifier (burn, CPU) on what reaches it, holding everything until the input ends. \
              Labelled **beats** train a beat classifier: `model = \"resecanet\"` (the study's model 1) or \
              `\"vgg16_cwt\"` (model 2: VGG16 on the beat's 38 × 259 Mexican-hat CWT scalogram, computed by \
              the network's fixed first layer, so it takes raw beats like ResECANet); classes come from \
              `label_map`. Whole **records** from the `ptbxl` source (signal chunks) train a multi-label \
              classifier over the five PTB-XL diagnostic superclasses, read from the stream metadata \
              (records with none are left out): `model = \"resdscnet\"` sees each record rendered as a \
              `image_size` × `image_size` grayscale image (model 3), `\"resecanet\"` sees the 12-lead signal \
              itself (`samples` per lead); sigmoid outputs, binary cross-entropy. Splits: a test part \
              (`test_fraction`), a validation part (`validation_fraction`, or whole PTB-XL folds with \
              `validation_folds`), by beat or by patient (`group_by`), or K-fold cross-validation \
              (`k_folds`, beats only); SMOTE on the training part only (`balance = \"smote\"`) or class \
              weights in the loss (`balance = \"weights\"`), beats only. \
              Adam, validation every epoch, early stopping, the best epoch kept. Writes PATH/NAME.bpk + \
              NAME.json (the model), history.json/.csv, loss.png and curves.png, validation-report.json \
              (multi-label: with the per-class decision thresholds chosen there, which the model card \
              keeps, and validation-roc.png), and with a test part test-beats.parquet, test-report.json \
              and test-confusion.png; K-fold writes cv.json. A run interrupted after an epoch resumes \
              from PATH/checkpoint.",
    accepts: &[PortKind::Beats, PortKind::Signal],
    output: Output::None,
    fields: &[
        F::string(
            "path",
            D::Required,
            "output directory for the model, curves and reports",
        ),
        F::string(
            "name",
            D::Str("resecanet"),
            "model name: the files are PATH/NAME.bpk and PATH/NAME.json",
        ),
        F::choice(
            "model",
            &["resecanet", "vgg16_cwt", "resdscnet"],
            "resecanet",
            "network: resecanet (beats, or 12-lead records), vgg16_cwt (beats), resdscnet (records as images)",
        ),
        F::string(
            "widths",
            D::Absent,
            "filters of each stage; default the study's: resecanet and resdscnet 32,64,128,256,512, \
             vgg16_cwt 64,128,256,512,512",
        ),
        F::int("stem_kernel", 1, 255, D::Int(15), "resecanet: kernel of the first convolution"),
        F::int("kernel", 1, 255, D::Int(7), "resecanet: kernel of the residual convolutions"),
        F::boolean(
            "rr_features",
            false,
            "resecanet on beats: also feed three RR features to the dense layer (see `rr_reference`)",
        ),
        F::choice(
            "rr_reference",
            &["local", "long"],
            "local",
            "what the RR features are relative to: local (previous/local, next/local and the local mean in seconds; \
             local = the last 10 intervals) or long (previous, next and local mean over the stream's mean of its \
             last 300 intervals, which a run of early beats barely moves)",
        ),
        F::boolean(
            "template",
            false,
            "resecanet on beats: also feed the beat's template (the stream's typical beat just before it, the \
             `template` column of a beats table) as a second input channel",
        ),
        F::boolean(
            "premature_rule",
            false,
            "beats with classes N and S (aami): after training, choose the premature-beat rule's two thresholds \
             on the validation part, or out of fold with decision_folds (best decision_metric; none when no rule helps) and keep the rule in the model card: \
             a beat the network calls N becomes S when its previous RR is below the first share of the stream's \
             long mean and its rhythm's irregularity (the `rr_irregularity` column) below the second",
        ),
        F::string(
            "min_probability",
            D::Absent,
            "beats: classes (comma-separated, e.g. \"V\") each given a minimum probability chosen after training on \
             the validation part, or out of fold with decision_folds (best decision_metric; none when it does not help), kept in the model card: such a class \
             is called only at or above it, else the next most probable class is",
        ),
        F::int(
            "decision_folds",
            0,
            100,
            D::Int(0),
            "beats, with premature_rule or min_probability: choose them on out-of-fold predictions of K folds of \
             the training data (split as group_by says) instead of the validation part: K more trainings, each \
             scoring the fold it left out, so the choice sees every training patient as a new one (0: on the \
             validation part); the pooled scores are written as PATH/out-of-fold-report.json",
        ),
        F::choice(
            "decision_metric",
            &DecisionMetric::NAMES,
            "macro_f1",
            "what premature_rule and min_probability are chosen to maximise: macro_f1 (over the classes the \
             beats have, every class alike) or jk (the jκ index of Mondéjar-Guerra et al. 2019: Cohen's kappa \
             over all classes and the EC57 Se and +P of S and V beats, half each; needs classes S and V)",
        ),
        F::int(
            "concurrent_trainings",
            0,
            64,
            D::Int(0),
            "how many of a run's independent trainings (the network and its decision_folds, or the k_folds) run \
             at once, each on its share of the cores (0: one per core). Each gives the weights it gives alone; \
             a network with dropout (vgg16_cwt) trains one at a time, since its random numbers come from one \
             generator per process",
        ),
        F::string(
            "dense",
            D::Str("256,128"),
            "vgg16_cwt: units of the hidden dense layers (dropout 0.5 after the first, 0.2 after the others)",
        ),
        F::int(
            "samples",
            1,
            1_000_000,
            D::Int(1000),
            "records: samples per lead the network takes (cut or zero-padded; 1000 = 10 s at 100 Hz)",
        ),
        F::int(
            "image_size",
            16,
            4096,
            D::Int(224),
            "resdscnet: side of the square grayscale image each record is rendered as (clinical 3 × 4 layout)",
        ),
        F::string(
            "label_map",
            D::Str("aami"),
            "beats: classes from aami, study6, raw, or a CSV file of symbol,class (records use the PTB-XL superclasses)",
        ),
        F::int("epochs", 1, 100_000, D::Int(30), "epochs at most"),
        F::int("batch_size", 1, 65_536, D::Int(64), "examples per optimisation step"),
        F::positive("learning_rate", 0.0, 1.0, D::Float(4e-4), "Adam learning rate"),
        F::choice(
            "schedule",
            &["constant", "cosine"],
            "constant",
            "learning rate over the run: constant (the study's), or cosine annealing from `learning_rate` to 1 % of it at the last step of `epochs` (resumable; early stopping may end it sooner)",
        ),
        F::int(
            "seed",
            0,
            i64::MAX,
            D::Int(7),
            "seed of splits, initial weights, shuffling, SMOTE, augmentation",
        ),
        F::int(
            "patience",
            0,
            100_000,
            D::Int(5),
            "stop after this many epochs without improvement (0: never)",
        ),
        F::choice(
            "monitor",
            &["auto", "val_macro_f1", "val_loss", "val_accuracy", "val_macro_auc"],
            "auto",
            "validation figure for early stopping and the best epoch (auto: macro F1 for beats, macro AUC for records)",
        ),
        F::int(
            "steps_per_epoch",
            0,
            i64::MAX,
            D::Int(0),
            "optimisation steps per epoch at most, on a fresh shuffle each epoch (0: the whole training part)",
        ),
        F::float(
            "test_fraction",
            0.0,
            0.9,
            D::Float(0.0),
            "part held out as the test set (0: none)",
        ),
        F::float(
            "validation_fraction",
            0.0,
            0.9,
            D::Float(0.1),
            "part of the rest held out for validation (early stopping, best epoch)",
        ),
        F::string(
            "validation_folds",
            D::Absent,
            "records: the PTB-XL folds (stream metadata `fold`) that form the validation part instead, e.g. \"9\"",
        ),
        F::choice(
            "group_by",
            &["beat", "patient"],
            "beat",
            "split example by example (the study's protocol) or keep each patient on one side",
        ),
        F::int(
            "k_folds",
            0,
            100,
            D::Int(0),
            "K-fold cross-validation with K folds (0 or 1: a single training run)",
        ),
        F::choice(
            "balance",
            &["none", "smote", "weights"],
            "none",
            "rare classes in the training part: smote (synthetic examples up to `smote_ratio`, training part only; \
             validation and test keep their real class balance) or weights (each class's loss weighted by \
             sqrt(largest class count / its count))",
        ),
        F::positive(
            "smote_ratio",
            0.0,
            1.0,
            D::Float(1.0),
            "SMOTE raises each class to ratio × the majority count",
        ),
        F::int("smote_k", 1, 1000, D::Int(5), "SMOTE nearest neighbours"),
        F::float(
            "augment_scale",
            0.0,
            0.9,
            D::Float(0.0),
            "training augmentation: amplitude (images: contrast) scaled by a factor in [1 - x, 1 + x]",
        ),
        F::float(
            "augment_noise_mv",
            0.0,
            10.0,
            D::Float(0.0),
            "training augmentation: Gaussian noise of this std (mV; images: in pixel units)",
        ),
        F::int(
            "augment_shift",
            0,
            1000,
            D::Int(0),
            "training augmentation: time shift of up to this many samples (images: pixels, in both directions)",
        ),
        F::float(
            "augment_erase",
            0.0,
            0.9,
            D::Float(0.0),
            "training augmentation: erase a random span (images: rectangle) of this fraction of the length (side)",
        ),
        F::boolean(
            "resume",
            true,
            "continue from PATH/checkpoint when it holds the same run",
        ),
    ],
    check: check_train,
    output_fs: same_fs,
    build: |p| Ok(Built::Sink(Arc::new(TrainSink::from_params(p)?))),
}];

fn check_train(p: &Params, _: &Upstream) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let mut parsed = true;
    match super::sinks::label_map(p.str("label_map")) {
        Err(e) => problems.push(("label_map".to_owned(), format!("{e:#}"))),
        Ok(labels) => {
            for (field, problem) in decision_problems(p, &labels) {
                problems.push((field.to_owned(), problem));
                parsed = false;
            }
        }
    }
    for field in ["widths", "dense"] {
        if let Some(Err(e)) = p.opt_str(field).map(|text| parse_widths(field, text)) {
            problems.push((field.to_owned(), format!("{e:#}")));
            parsed = false;
        }
    }
    if let Some(folds) = p.opt_str("validation_folds") {
        if let Err(e) = super::sources::parse_folds(folds) {
            problems.push(("validation_folds".to_owned(), format!("{e:#}")));
            parsed = false;
        }
    }
    if parsed {
        match TrainSink::from_params(p) {
            Err(e) => problems.push(("model".to_owned(), format!("{e:#}"))),
            Ok(sink) => {
                // The shape is checked with the study's input; the real one is known once
                // data arrives.
                if let Err(e) = sink.architecture(2, &study_input(sink.kind)).validate() {
                    problems.push(("widths".to_owned(), e));
                }
            }
        }
    }
    if p.usize("decision_folds") >= 2 {
        if !p.bool("premature_rule") && p.opt_str("min_probability").is_none() {
            problems.push((
                "decision_folds".to_owned(),
                "chooses premature_rule and min_probability, and neither is asked for".to_owned(),
            ));
        }
        if p.usize("k_folds") >= 2 {
            problems.push((
                "decision_folds".to_owned(),
                "is for a single training run; with k_folds each fold chooses on its own validation part".to_owned(),
            ));
        }
    }
    if p.opt_str("validation_folds").is_none() && p.usize("k_folds") < 2 && p.f64("validation_fraction") <= 0.0 {
        problems.push((
            "validation_fraction".to_owned(),
            "must be positive (or give validation_folds): early stopping and the best epoch are chosen on the validation part".to_owned(),
        ));
    }
    problems
}

/// One line on what [`decision::choose`] kept in `card`.
fn describe_decisions(card: &ModelCard, choice: &DecisionChoice) -> String {
    match decision::describe(card) {
        None => "nothing after the network helps".to_owned(),
        Some(kept) => format!(
            "{kept} ({} on the {} part: {:.3}, and {:.3} without)",
            choice.metric.name(),
            choice.part,
            choice.with_decisions,
            choice.network_alone
        ),
    }
}

/// The classes of a comma-separated list.
fn class_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Why `premature_rule` or `min_probability` cannot apply to these labels: (field, why).
fn decision_problems(p: &Params, labels: &LabelMap) -> Vec<(&'static str, String)> {
    let classes = labels.classes();
    let mut problems = Vec::new();
    if p.bool("premature_rule") && RuleClasses::of(classes).is_none() {
        problems.push((
            "premature_rule",
            format!(
                "needs classes N and S (label_map = \"aami\"); label map {:?} has {:?}",
                labels.name(),
                classes
            ),
        ));
    }
    if let Some(problem) = DecisionMetric::parse(p.str("decision_metric")).and_then(|m| m.problem(classes)) {
        problems.push(("decision_metric", format!("{problem} (label map {:?})", labels.name())));
    }
    for class in p.opt_str("min_probability").map_or_else(Vec::new, class_list) {
        if !classes.contains(&class) {
            problems.push((
                "min_probability",
                format!(
                    "no class {class:?} in label map {:?} (classes {classes:?})",
                    labels.name()
                ),
            ));
        }
    }
    problems
}

fn parse_widths(field: &str, text: &str) -> anyhow::Result<Vec<usize>> {
    let widths: Result<Vec<usize>, _> = text.split(',').map(|w| w.trim().parse::<usize>()).collect();
    match widths {
        Ok(w) if !w.is_empty() && !w.contains(&0) => Ok(w),
        _ => bail!("{field} = {text:?}: expected positive integers separated by commas, e.g. \"16,32,64,128\""),
    }
}

/// The network a `train` sink builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelKind {
    Resecanet,
    Vgg16Cwt,
    Resdscnet,
}

/// The input the study used for each network: what the shape is checked with before data
/// arrives.
fn study_input(kind: ModelKind) -> ModelInput {
    match kind {
        ModelKind::Resecanet | ModelKind::Vgg16Cwt => ModelInput::Beat(BeatInput {
            fs: 360.0,
            before: 90,
            after: 168,
            lead: "MLII".to_owned(),
        }),
        ModelKind::Resdscnet => ModelInput::Record(RecordInput {
            fs: 100.0,
            leads: STANDARD_LEADS.iter().map(|l| (*l).to_owned()).collect(),
            samples: 1000,
            image: Some(RenderConfig::default()),
        }),
    }
}

/// The settings of a `train` sink.
#[derive(Clone, Debug)]
struct TrainSink {
    dir: PathBuf,
    name: String,
    labels: LabelMap,
    kind: ModelKind,
    /// Stage widths; `None`: the study's for the network.
    widths: Option<Vec<usize>>,
    stem_kernel: usize,
    kernel: usize,
    /// The RR features fed to a beat model, if any.
    rr_features: Option<RrReference>,
    /// Feed a beat model the beat's template too.
    template: bool,
    /// Choose a premature-beat rule after training.
    premature_rule: bool,
    /// Classes whose minimum probability is chosen after training.
    min_probability: Vec<String>,
    /// Folds whose out-of-fold predictions the decisions are chosen on (< 2: the validation part).
    decision_folds: usize,
    /// What the decisions are chosen to maximise.
    decision_metric: DecisionMetric,
    /// Trainings run at once (0: one per core).
    concurrent_trainings: usize,
    dense: Vec<usize>,
    samples: usize,
    image_size: usize,
    /// Erased span as a fraction of the window (signals) or image side.
    erase_fraction: f64,
    settings: TrainSettings,
    /// `monitor = "auto"`: chosen once the data's kind is known.
    auto_monitor: bool,
    test_fraction: f64,
    validation_fraction: f64,
    validation_folds: Option<Vec<u8>>,
    by: SplitBy,
    k_folds: usize,
    balance: Balance,
    resume: bool,
}

/// How the training part's rare classes are lifted.
#[derive(Clone, Debug, PartialEq)]
enum Balance {
    None,
    Smote(Smote),
    /// Class-weighted cross-entropy ([`balancing_weights`]).
    Weights,
}

impl TrainSink {
    fn from_params(p: &Params) -> anyhow::Result<Self> {
        let labels = super::sinks::label_map(p.str("label_map"))?;
        if let Some((field, problem)) = decision_problems(p, &labels).into_iter().next() {
            bail!("{field}: {problem}");
        }
        let kind = match p.str("model") {
            "vgg16_cwt" => ModelKind::Vgg16Cwt,
            "resdscnet" => ModelKind::Resdscnet,
            _ => ModelKind::Resecanet,
        };
        let widths = p.opt_str("widths").map(|w| parse_widths("widths", w)).transpose()?;
        let mut augment = Vec::new();
        let scale = p.f64("augment_scale") as f32;
        let noise = p.f64("augment_noise_mv") as f32;
        let shift = p.usize("augment_shift");
        let erase = p.f64("augment_erase");
        let image_size = p.usize("image_size");
        if kind == ModelKind::Resdscnet {
            // Images: the stacked image augmentations of the study (shift and scale as an
            // affine map, contrast, noise, random erasing).
            if shift > 0 || scale > 0.0 {
                augment.push(Augmentation::Affine {
                    max_rotation_deg: 0.0,
                    min_scale: 1.0 - scale / 2.0,
                    max_scale: 1.0 + scale / 2.0,
                    max_translate: shift as f32,
                    fill: 1.0,
                });
            }
            if scale > 0.0 {
                augment.push(Augmentation::BrightnessContrast {
                    max_brightness: scale / 2.0,
                    max_contrast: scale,
                });
            }
            if noise > 0.0 {
                augment.push(Augmentation::GaussianNoise {
                    std: noise,
                    relative: false,
                });
            }
            if erase > 0.0 {
                let side = ((image_size as f64 * erase).round() as usize).max(1);
                augment.push(Augmentation::EraseRect {
                    width: side,
                    height: side,
                    value: 1.0,
                });
            }
        } else {
            if scale > 0.0 {
                augment.push(Augmentation::AmplitudeScale {
                    min: 1.0 - scale,
                    max: 1.0 + scale,
                });
            }
            if noise > 0.0 {
                augment.push(Augmentation::GaussianNoise {
                    std: noise,
                    relative: false,
                });
            }
            if shift > 0 {
                augment.push(Augmentation::TimeShift { max_shift: shift });
            }
            if erase > 0.0 {
                augment.push(Augmentation::Erase {
                    length: 0, // set from the window once known
                    fill: Fill::Mean,
                });
            }
        }
        let seed = p.i64("seed") as u64;
        let settings = TrainSettings {
            epochs: p.usize("epochs"),
            batch_size: p.usize("batch_size"),
            learning_rate: p.f64("learning_rate"),
            schedule: match p.str("schedule") {
                "cosine" => Schedule::Cosine,
                _ => Schedule::Constant,
            },
            seed,
            patience: p.usize("patience"),
            monitor: match p.str("monitor") {
                "val_loss" => Monitor::ValLoss,
                "val_accuracy" => Monitor::ValAccuracy,
                "val_macro_auc" => Monitor::ValMacroAuc,
                _ => Monitor::ValMacroF1,
            },
            augment,
            max_steps_per_epoch: Some(p.usize("steps_per_epoch")).filter(|&s| s > 0),
            augment_len: 0, // set from the data once known
            leads: 1,
            image: None,
            class_weights: None, // set from the training part's class counts when balance = "weights"
        };
        Ok(TrainSink {
            dir: PathBuf::from(p.str("path")),
            name: p.str("name").to_owned(),
            labels,
            kind,
            widths,
            stem_kernel: p.usize("stem_kernel"),
            kernel: p.usize("kernel"),
            rr_features: p.bool("rr_features").then(|| match p.str("rr_reference") {
                "long" => RrReference::Long,
                _ => RrReference::Local,
            }),
            template: p.bool("template"),
            premature_rule: p.bool("premature_rule"),
            min_probability: p.opt_str("min_probability").map_or_else(Vec::new, class_list),
            decision_folds: p.usize("decision_folds"),
            decision_metric: DecisionMetric::parse(p.str("decision_metric")).unwrap_or_default(),
            concurrent_trainings: p.usize("concurrent_trainings"),
            dense: parse_widths("dense", p.str("dense"))?,
            samples: p.usize("samples"),
            image_size,
            erase_fraction: erase,
            settings,
            auto_monitor: p.str("monitor") == "auto",
            test_fraction: p.f64("test_fraction"),
            validation_fraction: p.f64("validation_fraction"),
            validation_folds: p
                .opt_str("validation_folds")
                .map(super::sources::parse_folds)
                .transpose()?,
            by: if p.str("group_by") == "patient" {
                SplitBy::Group
            } else {
                SplitBy::Example
            },
            k_folds: p.usize("k_folds"),
            balance: match p.str("balance") {
                "smote" => Balance::Smote(Smote {
                    k: p.usize("smote_k"),
                    target: Target::Ratio(p.f64("smote_ratio")),
                    seed,
                }),
                "weights" => Balance::Weights,
                _ => Balance::None,
            },
            resume: p.bool("resume"),
        })
    }

    /// The network for `classes` classes and this input.
    fn architecture(&self, classes: usize, input: &ModelInput) -> Architecture {
        let widths = |study: Vec<usize>| self.widths.clone().unwrap_or(study);
        match (self.kind, input) {
            (ModelKind::Resecanet, ModelInput::Beat(b)) => {
                let study = ResEcaNetConfig::study(classes);
                Architecture::Resecanet(ResEcaNetConfig {
                    window: b.before + 1 + b.after,
                    widths: widths(study.widths.clone()),
                    stem_kernel: self.stem_kernel,
                    kernel: self.kernel,
                    rr_features: self.rr_features.is_some(),
                    rr_reference: self.rr_features.unwrap_or_default(),
                    template: self.template,
                    ..study
                })
            }
            (ModelKind::Resecanet, ModelInput::Record(r)) => {
                let study = ResEcaNetConfig::study(classes);
                Architecture::Resecanet(ResEcaNetConfig {
                    window: r.samples,
                    leads: r.leads.len(),
                    widths: widths(study.widths.clone()),
                    stem_kernel: self.stem_kernel,
                    kernel: self.kernel,
                    ..study
                })
            }
            (ModelKind::Vgg16Cwt, input) => {
                let study = Vgg16Config::study(classes);
                let front = CwtFrontEnd::study();
                let width = match input {
                    ModelInput::Beat(b) => b.before + 1 + b.after,
                    ModelInput::Record(r) => r.samples,
                };
                let dropout = (0..self.dense.len()).map(|i| if i == 0 { 0.5 } else { 0.2 }).collect();
                Architecture::Vgg16(Vgg16Config {
                    height: front.scales.len(),
                    width,
                    widths: widths(study.widths.clone()),
                    convs: study
                        .convs
                        .iter()
                        .copied()
                        .chain(std::iter::repeat(3))
                        .take(self.widths.as_ref().map_or(study.convs.len(), Vec::len))
                        .collect(),
                    dense: self.dense.clone(),
                    dropout,
                    cwt: Some(front),
                    ..study
                })
            }
            (ModelKind::Resdscnet, _) => {
                let study = ResDscNetConfig::study(classes);
                Architecture::Resdscnet(ResDscNetConfig {
                    height: self.image_size,
                    width: self.image_size,
                    widths: widths(study.widths.clone()),
                    ..study
                })
            }
        }
    }
}

impl Sink for TrainSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        Ok(Box::new(TrainWriter {
            sink: self.clone(),
            meta: HashMap::new(),
            beats: Vec::new(),
            records: HashMap::new(),
            failed: HashSet::new(),
        }))
    }
}

/// Collects the beats or records; all the work happens in `finish`.
struct TrainWriter {
    sink: TrainSink,
    meta: HashMap<String, Vec<(String, String)>>,
    beats: Vec<Beat>,
    records: HashMap<String, RecordBuffer>,
    failed: HashSet<String>,
}

impl SinkWriter for TrainWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        match body {
            Body::Start { stream, meta } => {
                self.meta.insert(stream.clone(), meta.clone());
            }
            Body::Beat(beat) => self.beats.push(beat.clone()),
            Body::Chunk(chunk) => self
                .records
                .entry(chunk.stream.clone())
                .or_insert_with(|| RecordBuffer::new(chunk))
                .push(chunk, self.sink.samples)?,
            Body::Abort { stream, .. } => {
                self.failed.insert(stream.clone());
            }
            Body::End { .. } | Body::Event(_) => {}
            Body::Tensor(_) | Body::Explanation(_) => {
                bail!("the train sink takes beats or whole records (signal chunks)")
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        let TrainWriter {
            sink,
            meta,
            mut beats,
            mut records,
            failed,
        } = *self;
        beats.retain(|b| !failed.contains(&b.stream));
        records.retain(|stream, _| !failed.contains(stream));
        let run = match (beats.is_empty(), records.is_empty()) {
            (false, true) => Run::from_beats(sink, meta, beats)?,
            (true, false) => Run::from_records(sink, meta, records)?,
            (true, true) => bail!("no beats or records reached the train sink"),
            (false, false) => bail!("the train sink takes either beats or records, not both"),
        };
        let line = if run.sink.k_folds >= 2 {
            run.cross_validate()?
        } else {
            run.train_once()?
        };
        Ok(Some(line))
    }
}

/// One training run's data, ready to split.
struct Run {
    sink: TrainSink,
    architecture: Architecture,
    /// Labelled beats (those the label map knows), with their stream's metadata; empty
    /// when training on records.
    beats: Vec<Beat>,
    meta: HashMap<String, Vec<(String, String)>>,
    data: Dataset,
    /// The stream of each example.
    streams: Vec<String>,
    /// Classes in output order.
    classes: Vec<String>,
    skipped: usize,
    input: ModelInput,
}

impl Run {
    fn from_beats(
        mut sink: TrainSink,
        meta: HashMap<String, Vec<(String, String)>>,
        beats: Vec<Beat>,
    ) -> anyhow::Result<Self> {
        let first = &beats[0];
        if first.leads.len() != 1 {
            bail!(
                "the train sink takes single-lead beats; stream {} has leads {}",
                first.stream,
                first.leads.join(",")
            );
        }
        if sink.kind == ModelKind::Resdscnet {
            bail!("model = \"resdscnet\" takes whole PTB-XL records, not beats (use resecanet or vgg16_cwt)");
        }
        if sink.validation_folds.is_some() {
            bail!("validation_folds splits PTB-XL records; for beats use validation_fraction");
        }
        let beat_input = BeatInput {
            fs: first.fs,
            before: first.before,
            after: first.after,
            lead: first.leads[0].clone(),
        };
        let input = ModelInput::Beat(beat_input.clone());
        let classes = sink.labels.classes().to_vec();
        let architecture = sink.architecture(classes.len(), &input);
        architecture.validate().map_err(|e| anyhow::anyhow!("train: {e}"))?;
        let window = beat_input.before + 1 + beat_input.after;
        sink.settings.augment_len = window;
        set_erase_length(&mut sink, window);
        let extras = architecture.beat_extras();
        let mut data = Dataset::new(architecture.input_len());
        let mut kept = Vec::with_capacity(beats.len());
        let mut skipped = 0;
        for beat in beats {
            let Some(label) = beat.symbol.as_deref().and_then(|s| sink.labels.class_of(s)) else {
                skipped += 1;
                continue;
            };
            // Leads may differ (MIT-BIH 102 and 104 have no MLII); window sizes may not.
            if beat.before != beat_input.before || beat.after != beat_input.after || beat.leads.len() != 1 {
                bail!(
                    "beat {} of stream {} is not a single-lead {} + 1 + {} window like the first beat",
                    beat.sample,
                    beat.stream,
                    beat_input.before,
                    beat_input.after
                );
            }
            if let Some(problem) = missing_template(&beat, extras) {
                bail!("{problem}");
            }
            data.push(
                &beat_input_values(&beat, extras),
                label,
                &patient_of(&meta, &beat.stream),
            );
            kept.push(beat);
        }
        if data.is_empty() {
            bail!(
                "none of the {skipped} beats has a symbol in the label map {:?}",
                sink.labels.name()
            );
        }
        if sink.auto_monitor {
            sink.settings.monitor = Monitor::ValMacroF1;
        }
        Ok(Run {
            streams: kept.iter().map(|b| b.stream.clone()).collect(),
            sink,
            architecture,
            beats: kept,
            meta,
            data,
            classes,
            skipped,
            input,
        })
    }

    /// Whole PTB-XL records, labelled with their diagnostic superclasses (multi-label).
    fn from_records(
        mut sink: TrainSink,
        meta: HashMap<String, Vec<(String, String)>>,
        records: HashMap<String, RecordBuffer>,
    ) -> anyhow::Result<Self> {
        if sink.kind == ModelKind::Vgg16Cwt {
            bail!("model = \"vgg16_cwt\" takes beats, not whole records (use resdscnet or resecanet)");
        }
        if sink.balance != Balance::None
            || sink.k_folds >= 2
            || sink.premature_rule
            || !sink.min_probability.is_empty()
            || sink.decision_folds >= 2
        {
            bail!(
                "balance, k_folds, premature_rule, min_probability and decision_folds are for beat classifiers; \
                 records train multi-label"
            );
        }
        // Sorted, so that the run does not depend on which worker delivered a record first.
        let mut names: Vec<&String> = records.keys().collect();
        names.sort();
        let first = &records[names[0]];
        let input = ModelInput::Record(RecordInput {
            fs: first.fs,
            leads: first.leads.clone(),
            samples: sink.samples,
            image: (sink.kind == ModelKind::Resdscnet).then(|| RenderConfig {
                width: sink.image_size,
                height: sink.image_size,
                ..RenderConfig::default()
            }),
        });
        let ModelInput::Record(record_input) = &input else {
            unreachable!("built as a record input just above")
        };
        let classes: Vec<String> = SUPERCLASSES.iter().map(|c| (*c).to_owned()).collect();
        let architecture = sink.architecture(classes.len(), &input);
        architecture.validate().map_err(|e| anyhow::anyhow!("train: {e}"))?;
        match &record_input.image {
            Some(image) => sink.settings.image = Some((image.width, image.height)),
            None => {
                sink.settings.leads = record_input.leads.len();
                sink.settings.augment_len = record_input.leads.len() * record_input.samples;
                set_erase_length(&mut sink, record_input.samples);
            }
        }
        let mut data = Dataset::new(architecture.input_len());
        let mut streams = Vec::new();
        let mut skipped = 0;
        for name in names {
            let record = &records[name];
            let stream_meta = meta.get(name).map_or(&[][..], Vec::as_slice);
            let mut labels = Vec::with_capacity(classes.len());
            for class in &classes {
                match meta_value(stream_meta, class) {
                    Some(v) => labels.push(v == "1"),
                    None => bail!(
                        "stream {name} has no {class} label in its metadata: records must come from the ptbxl source"
                    ),
                }
            }
            if !labels.contains(&true) {
                skipped += 1;
                continue;
            }
            let values = record.prepare(record_input)?;
            data.push_multi(&values, &labels, &patient_of(&meta, name));
            streams.push(name.clone());
        }
        if data.is_empty() {
            bail!("none of the {skipped} records has a diagnostic superclass");
        }
        if sink.auto_monitor {
            sink.settings.monitor = Monitor::ValMacroAuc;
        }
        Ok(Run {
            sink,
            architecture,
            beats: Vec::new(),
            meta,
            data,
            streams,
            classes,
            skipped,
            input,
        })
    }

    fn classes(&self) -> Vec<String> {
        self.classes.clone()
    }

    /// Splits `indices` into training and validation parts: by PTB-XL fold when
    /// `validation_folds` is set, otherwise a `validation_fraction` by example or patient.
    fn validation_split(&self, indices: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let sink = &self.sink;
        match &sink.validation_folds {
            Some(folds) => indices.iter().partition(|&&i| {
                let meta = self.meta.get(&self.streams[i]).map_or(&[][..], Vec::as_slice);
                let fold = meta_value(meta, "fold").and_then(|f| f.parse::<u8>().ok());
                !fold.is_some_and(|f| folds.contains(&f))
            }),
            None => holdout(
                indices,
                &self.data.groups,
                sink.validation_fraction,
                sink.by,
                sink.settings.seed ^ 0x5EED,
            ),
        }
    }

    /// Runs `jobs`, independent trainings, `concurrent_trainings` at a time, each in a
    /// rayon pool of its share of the cores; returns what each gave, in the jobs' order.
    /// Each training's weights do not depend on what runs beside it ([`fit`]), except with
    /// dropout, so such networks train one at a time. After a failure no further job starts,
    /// and the first failure (in the jobs' order) is returned.
    fn fit_all(&self, jobs: &[FitJob]) -> anyhow::Result<Vec<Fitted>> {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let at_once = match self.sink.concurrent_trainings {
            _ if self.architecture.draws_while_training() => 1,
            0 => cores,
            n => n,
        }
        .min(jobs.len())
        .max(1);
        // A job that cannot train says so before any other starts.
        let splits = jobs
            .iter()
            .map(|job| self.training_split(job))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let progress = MultiProgress::new();
        if at_once == 1 {
            return jobs
                .iter()
                .zip(&splits)
                .map(|(job, split)| self.fit_on(job, split, &progress))
                .collect();
        }
        let pools = (0..at_once)
            .map(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads((cores / at_once).max(1))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .context("cannot start the threads of the concurrent trainings")?;
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Option<anyhow::Result<Fitted>>>> = Mutex::new(jobs.iter().map(|_| None).collect());
        std::thread::scope(|scope| {
            for pool in &pools {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let result = pool.install(|| self.fit_on(job, &splits[i], &progress));
                        failed.fetch_or(result.is_err(), Ordering::Relaxed);
                        results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(result);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_iter()
            .flatten()
            .collect()
    }

    /// The training and validation parts of a job's examples; an error names the job when
    /// either is empty.
    fn training_split(&self, job: &FitJob) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
        let (train_idx, valid_idx) = self.validation_split(&job.indices);
        if valid_idx.is_empty() {
            bail!(
                "{}: the validation part is empty: check validation_folds or validation_fraction",
                job.title
            );
        }
        if train_idx.is_empty() {
            bail!(
                "{}: nothing is left to train on after the test and validation parts ({} examples of {} patients): \
                 lower test_fraction or validation_fraction, or split by beat",
                job.title,
                job.indices.len(),
                job.indices
                    .iter()
                    .map(|&i| &self.data.groups[i])
                    .collect::<HashSet<_>>()
                    .len()
            );
        }
        Ok((train_idx, valid_idx))
    }

    /// Trains on the job's `split` ([`Self::training_split`]) after balancing its training
    /// part, its progress bar among those of `progress`.
    fn fit_on(
        &self,
        job: &FitJob,
        split: &(Vec<usize>, Vec<usize>),
        progress: &MultiProgress,
    ) -> anyhow::Result<Fitted> {
        let sink = &self.sink;
        let FitJob { checkpoint, title, .. } = job;
        let say = |line: String| print_above(progress, line);
        let (train_idx, valid_idx) = split;
        let mut train = self.data.subset(train_idx);
        let valid = self.data.subset(valid_idx);
        let classes = self.classes().len();
        if let Balance::Smote(smote) = &sink.balance {
            // Only the signal part is interpolated when RR features follow it: SMOTE runs on
            // whole inputs, which keeps RR features consistent with the synthetic beat.
            let (inputs, labels) = smote
                .resample(&train.inputs, train.input_len, &train.labels)
                .context("SMOTE on the training part")?;
            let added = labels.len() - train.labels.len();
            train.groups.extend(std::iter::repeat_n("smote".to_owned(), added));
            train.inputs = inputs;
            train.labels = labels;
        }
        let counts = train.class_counts(classes);
        let valid_counts = valid.class_counts(classes);
        let mut settings = sink.settings.clone();
        if sink.balance == Balance::Weights {
            settings.class_weights = Some(balancing_weights(&counts));
        }
        say(format!(
            "{title}: training on {} examples {:?}, validating on {} {:?}",
            train.len(),
            counts,
            valid.len(),
            valid_counts
        ));
        let checkpoint_dir = sink.resume.then_some(checkpoint.as_path());
        if !sink.resume {
            let _ = std::fs::remove_dir_all(checkpoint);
        }
        let mut observer = BarObserver::new(title, progress);
        let started = Instant::now();
        let outcome = fit(
            &self.architecture,
            &train,
            &valid,
            &settings,
            checkpoint_dir,
            &mut observer,
        )?;
        observer.done();
        if let Some(epoch) = outcome.resumed_after {
            say(format!(
                "{title}: resumed after epoch {epoch} from {}",
                checkpoint.display()
            ));
        }
        Ok(Fitted {
            outcome,
            train_counts: counts,
            valid_counts,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn card(&self, training: serde_json::Value) -> ModelCard {
        let multi_label = self.data.is_multi_label();
        ModelCard {
            name: self.sink.name.clone(),
            version: "1".to_owned(),
            architecture: self.architecture.clone(),
            classes: self.classes(),
            label_map: if multi_label {
                "ptbxl_superclasses".to_owned()
            } else {
                self.sink.labels.name().to_owned()
            },
            input: self.input.clone(),
            output: if multi_label {
                Activation::Sigmoid
            } else {
                Activation::Softmax
            },
            thresholds: None,
            min_probability: Default::default(),
            premature_rule: None,
            training,
        }
    }

    fn settings_json(&self) -> serde_json::Value {
        let sink = &self.sink;
        json!({
            "settings": sink.settings,
            "test_fraction": sink.test_fraction,
            "validation_fraction": sink.validation_fraction,
            "group_by": if sink.by == SplitBy::Group { "patient" } else { "beat" },
            "balance": match &sink.balance {
                Balance::None => serde_json::Value::Null,
                Balance::Smote(s) => json!({"method": "smote", "k": s.k, "target": format!("{:?}", s.target)}),
                Balance::Weights => json!({"method": "weights", "rule": "sqrt(largest count / count)"}),
            },
            "records": self.records(),
        })
    }

    fn records(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.streams
            .iter()
            .filter(|s| seen.insert(s.as_str()))
            .cloned()
            .collect()
    }

    fn train_once(&self) -> anyhow::Result<String> {
        let sink = &self.sink;
        let all: Vec<usize> = (0..self.data.len()).collect();
        let (rest, test_idx) = holdout(&all, &self.data.groups, sink.test_fraction, sink.by, sink.settings.seed);
        // The network, and beside it the trainings its decisions are chosen with.
        let (left_out, fold_jobs) = self.decision_folds(&rest);
        let network = FitJob {
            indices: rest.clone(),
            checkpoint: sink.dir.join("checkpoint"),
            title: sink.name.clone(),
        };
        let jobs: Vec<FitJob> = std::iter::once(network).chain(fold_jobs).collect();
        let mut fitted = self.fit_all(&jobs)?.into_iter();
        let Fitted {
            outcome,
            train_counts,
            valid_counts,
            seconds,
        } = fitted.next().context("the network's training gave nothing")?;
        let out_of_fold: Vec<(Vec<usize>, Network)> = left_out
            .into_iter()
            .zip(fitted)
            .map(|(left_out, fold)| (left_out, fold.outcome.best))
            .collect();
        let best = outcome.history.iter().find(|r| r.epoch == outcome.best_epoch);
        let mut training = self.settings_json();
        training["class_counts"] = json!({"train": train_counts, "validation": valid_counts, "test": self.data.subset(&test_idx).class_counts(self.classes().len())});
        training[if self.beats.is_empty() {
            "records_skipped_no_class"
        } else {
            "beats_skipped_no_class"
        }] = json!(self.skipped);
        training["best_epoch"] = json!(outcome.best_epoch);
        training["epochs_run"] = json!(outcome.history.len());
        training["stopped_early"] = json!(outcome.stopped_early);
        training["best_validation"] = json!(best);
        training["seconds"] = json!(seconds);
        training["mean_epoch_seconds"] = json!(mean(outcome.history.iter().map(|r| r.train_seconds)));
        training["mean_step_seconds"] = json!(mean(
            outcome.history.iter().map(|r| r.train_seconds / r.steps.max(1) as f64)
        ));
        training["examples_per_second"] = json!(mean(outcome.history.iter().map(|r| r.examples_per_second)));
        let mut card = self.card(training);
        let model_path = sink.dir.join(&sink.name);
        write_history(&sink.dir, &outcome.history, &sink.name)?;
        if self.data.is_multi_label() {
            return self.report_multi_label(&outcome, &mut card, &model_path, &rest, &test_idx);
        }
        let decisions = self.choose_decisions(&outcome.best, &rest, &out_of_fold, &mut card)?;
        // The validation part (chosen before SMOTE, real class balance).
        let (_, valid_idx) = self.validation_split(&rest);
        let valid = self.labelled(&valid_idx);
        save_model(&outcome.best, &card, &model_path)?;
        let model = TrainedModel::open(&model_path)?;
        let context = |part: &str, beats: usize| {
            json!({
                "model": crate::reports::model_context(&model, &model_path),
                "data": {"part": part, "beats": beats, "records": self.records()},
            })
        };
        let report = classify(&model, &valid)?;
        write_classification(
            &report,
            context("validation", valid_idx.len()),
            Some(&sink.dir.join("validation-report.json")),
            None,
            "validation",
        )?;
        let mut line = format!(
            "train {}: best epoch {} of {}, validation accuracy {:.2} %, macro F1 {:.3}; model {}",
            sink.name,
            outcome.best_epoch,
            outcome.history.len(),
            report.accuracy * 100.0,
            report.macro_avg.f1,
            model_path.with_extension("bpk").display()
        );
        if let Some(choice) = decisions {
            line += &format!(
                "; chosen on the {} part: {}",
                choice.part,
                describe_decisions(&card, &choice)
            );
        }
        if !test_idx.is_empty() {
            self.write_test_beats(&test_idx)?;
            let test = self.labelled(&test_idx);
            let report = classify(&model, &test)?;
            let plots = sink.dir.join("test-plots");
            write_classification(
                &report,
                context("test", test_idx.len()),
                Some(&sink.dir.join("test-report.json")),
                Some(&plots),
                &format!("{}: test part", sink.name),
            )?;
            std::fs::rename(plots.join("confusion.png"), sink.dir.join("test-confusion.png"))?;
            let _ = std::fs::remove_dir(&plots);
            line += &format!(
                "; test part ({} beats, real class balance): accuracy {:.2} %, macro F1 {:.3}",
                test_idx.len(),
                report.accuracy * 100.0,
                report.macro_avg.f1
            );
        }
        Ok(line)
    }

    /// Multi-label reports: the decision thresholds are chosen on the validation part (best
    /// F1 per class) and kept in the model card; the validation report uses them (so its F1
    /// is optimistic; its AUCs are not), the test part, if any, is scored with them.
    fn report_multi_label(
        &self,
        outcome: &TrainOutcome,
        card: &mut ModelCard,
        model_path: &Path,
        rest: &[usize],
        test_idx: &[usize],
    ) -> anyhow::Result<String> {
        let sink = &self.sink;
        let (_, valid_idx) = self.validation_split(rest);
        let valid = self.data.subset(&valid_idx);
        let probabilities = predict_with(
            &outcome.best,
            self.architecture.input_len(),
            Activation::Sigmoid,
            &valid.inputs,
            64,
        )?;
        let thresholds = best_f1_thresholds(&probabilities, &valid.label_sets)?;
        card.thresholds = Some(thresholds.clone());
        save_model(&outcome.best, card, model_path)?;
        let model = TrainedModel::open(model_path)?;
        let context = |part: &str, records: usize| {
            json!({
                "model": crate::reports::model_context(&model, model_path),
                "data": {"part": part, "records": records},
            })
        };
        let report = write_multi_label_report(
            &model,
            &valid,
            context("validation", valid.len()),
            Some(&sink.dir.join("validation-report.json")),
            Some(&sink.dir.join("validation-roc.png")),
            &format!("{}: validation part", sink.name),
        )?;
        let mut line = format!(
            "train {}: best epoch {} of {}, validation macro AUC {}, micro AUC {}, macro F1 {:.3}; model {}",
            sink.name,
            outcome.best_epoch,
            outcome.history.len(),
            fmt_auc(report.macro_auc),
            fmt_auc(report.micro_auc),
            report.macro_f1,
            model_path.with_extension("bpk").display()
        );
        if !test_idx.is_empty() {
            let test = self.data.subset(test_idx);
            let report = write_multi_label_report(
                &model,
                &test,
                context("test", test.len()),
                Some(&sink.dir.join("test-report.json")),
                Some(&sink.dir.join("test-roc.png")),
                &format!("{}: test part", sink.name),
            )?;
            line += &format!(
                "; test part ({} records): macro AUC {}, micro AUC {}",
                test.len(),
                fmt_auc(report.macro_auc),
                fmt_auc(report.micro_auc)
            );
        }
        Ok(line)
    }

    /// With `min_probability` or `premature_rule`: what follows `network` in `card`, chosen
    /// for the best `decision_metric` ([`decision::choose`]) on the validation part of `rest`, or
    /// on out-of-fold predictions of all of `rest` when `out_of_fold` has the networks of
    /// [`Self::decision_folds`], each with the fold it left out (the scores with the
    /// decisions go to PATH/out-of-fold-report.json); kept in the card.
    fn choose_decisions(
        &self,
        network: &Network,
        rest: &[usize],
        out_of_fold: &[(Vec<usize>, Network)],
        card: &mut ModelCard,
    ) -> anyhow::Result<Option<DecisionChoice>> {
        let sink = &self.sink;
        if !self.wants_decisions() {
            return Ok(None);
        }
        let (part, scored, probabilities) = if !out_of_fold.is_empty() {
            let (mut scored, mut probabilities) = (Vec::new(), Vec::new());
            for (left_out, network) in out_of_fold {
                probabilities.extend(self.probabilities(network, left_out)?);
                scored.extend_from_slice(left_out);
            }
            ("out-of-fold", scored, probabilities)
        } else {
            let (_, valid_idx) = self.validation_split(rest);
            let probabilities = self.probabilities(network, &valid_idx)?;
            ("validation", valid_idx, probabilities)
        };
        let beats = self.labelled(&scored);
        let choice = decision::choose(
            part,
            card,
            &sink.min_probability,
            sink.premature_rule,
            sink.decision_metric,
            &beats.scored(&probabilities),
        )?;
        card.training["decisions"] = json!(choice);
        if !out_of_fold.is_empty() {
            let report = beats.scored(&probabilities).report(card)?;
            write_classification(
                &report,
                json!({"data": {"part": part, "folds": sink.decision_folds, "beats": scored.len(), "records": self.records()},
                       "decisions": choice}),
                Some(&sink.dir.join("out-of-fold-report.json")),
                Some(&sink.dir.join("out-of-fold-plots")),
                &format!("{}: out-of-fold", sink.name),
            )?;
            eprintln!(
                "{}: out-of-fold ({} beats, {} folds), with the decisions chosen there: accuracy {:.2} %, macro F1 {:.3}",
                sink.name,
                scored.len(),
                out_of_fold.len(),
                report.accuracy * 100.0,
                report.macro_avg.f1
            );
        }
        Ok(Some(choice))
    }

    /// Whether `premature_rule` or `min_probability` asks for decisions after the network.
    fn wants_decisions(&self) -> bool {
        self.sink.premature_rule || !self.sink.min_probability.is_empty()
    }

    /// The trainings out-of-fold decisions are chosen with (none unless `decision_folds`
    /// asks for them): `indices` split in `decision_folds` folds (as `group_by` says), and for
    /// each the fold and a training on all the others, so that every beat is scored by a
    /// network that never saw it (by patient: nor its patient). Returns the folds and their
    /// trainings, in the same order.
    fn decision_folds(&self, indices: &[usize]) -> (Vec<Vec<usize>>, Vec<FitJob>) {
        let sink = &self.sink;
        if !self.wants_decisions() || sink.decision_folds < 2 || self.data.is_multi_label() {
            return (Vec::new(), Vec::new());
        }
        let folds = k_folds(
            indices,
            &self.data.groups,
            sink.decision_folds,
            sink.by,
            sink.settings.seed ^ 0xF01D,
        );
        let count = folds.len();
        folds
            .into_iter()
            .enumerate()
            .filter(|(_, fold)| !fold.is_empty())
            .map(|(k, left_out)| {
                let job = FitJob {
                    indices: all_but(indices, &left_out),
                    checkpoint: sink.dir.join(format!("decision-fold-{}", k + 1)).join("checkpoint"),
                    title: format!("{} decision fold {}/{count}", sink.name, k + 1),
                };
                (left_out, job)
            })
            .unzip()
    }

    /// The class probabilities `network` gives the examples `indices`.
    fn probabilities(&self, network: &Network, indices: &[usize]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(predict_with(
            network,
            self.architecture.input_len(),
            Activation::Softmax,
            &self.data.subset(indices).inputs,
            256,
        )?)
    }

    fn labelled(&self, indices: &[usize]) -> LabelledBeats {
        LabelledBeats {
            inputs: self.data.subset(indices).inputs,
            labels: indices.iter().map(|&i| self.data.labels[i]).collect(),
            timings: indices.iter().map(|&i| BeatTiming::of(&self.beats[i])).collect(),
            skipped: 0,
        }
    }

    /// The test part as a beats table, for `ecgflow eval beats --data PATH/test-beats.parquet`.
    fn write_test_beats(&self, indices: &[usize]) -> anyhow::Result<()> {
        let path = self.sink.dir.join("test-beats.parquet");
        let first = &self.beats[indices[0]];
        let meta_of = |stream: &str| self.meta.get(stream).cloned().unwrap_or_default();
        let rows = BeatRows::new(first, &meta_of(&first.stream), self.sink.labels.clone())?;
        let mut table = ParquetTable::create(&path, Box::new(rows), 65_536)?;
        for &i in indices {
            let beat = &self.beats[i];
            table.push(&Body::Beat(beat.clone()), &meta_of(&beat.stream))?;
        }
        table.finish(&HashSet::new())?;
        Ok(())
    }

    fn cross_validate(&self) -> anyhow::Result<String> {
        let sink = &self.sink;
        let all: Vec<usize> = (0..self.data.len()).collect();
        let folds = k_folds(&all, &self.data.groups, sink.k_folds, sink.by, sink.settings.seed);
        // The folds' trainings first, as many at once as concurrent_trainings says. (Their
        // decisions are chosen on their validation parts: validation refuses decision_folds.)
        let jobs: Vec<FitJob> = folds
            .iter()
            .enumerate()
            .map(|(k, test_idx)| FitJob {
                indices: all_but(&all, test_idx),
                checkpoint: sink.dir.join(format!("fold-{}", k + 1)).join("checkpoint"),
                title: format!("{} fold {}/{}", sink.name, k + 1, folds.len()),
            })
            .collect();
        let fitted = self.fit_all(&jobs)?;
        let mut reports: Vec<ClassificationReport> = Vec::new();
        let mut histories: Vec<Vec<EpochRecord>> = Vec::new();
        for (k, ((test_idx, job), Fitted { outcome, .. })) in folds.iter().zip(jobs).zip(fitted).enumerate() {
            let (rest, title) = (job.indices, job.title);
            let dir = sink.dir.join(format!("fold-{}", k + 1));
            let mut card = self.card(self.settings_json());
            self.choose_decisions(&outcome.best, &rest, &[], &mut card)?;
            let model_path = dir.join(&sink.name);
            save_model(&outcome.best, &card, &model_path)?;
            write_history(&dir, &outcome.history, &title)?;
            let model = TrainedModel::open(&model_path)?;
            let report = classify(&model, &self.labelled(test_idx))?;
            write_classification(
                &report,
                json!({"fold": k + 1, "test_beats": test_idx.len()}),
                Some(&dir.join("test-report.json")),
                Some(&dir),
                &title,
            )?;
            eprintln!(
                "{title}: test accuracy {:.2} %, macro F1 {:.3}",
                report.accuracy * 100.0,
                report.macro_avg.f1
            );
            reports.push(report);
            histories.push(outcome.history);
        }
        let summary = CrossValidationSummary::from_reports(&reports)?;
        write_json(
            &sink.dir.join("cv.json"),
            &json!({
                "folds": folds.len(),
                "group_by": if sink.by == SplitBy::Group { "patient" } else { "beat" },
                "training": self.settings_json(),
                "summary": summary,
                "per_fold": reports,
            }),
        )?;
        Ok(format!(
            "train {}: {}-fold cross-validation, accuracy {:.2} ± {:.2} %, macro F1 {:.3} ± {:.3} ({})",
            sink.name,
            folds.len(),
            summary.accuracy.mean * 100.0,
            summary.accuracy.std * 100.0,
            summary.macro_avg.f1.mean,
            summary.macro_avg.f1.std,
            sink.dir.join("cv.json").display()
        ))
    }
}

/// `indices` without those in `left_out`, in order.
fn all_but(indices: &[usize], left_out: &[usize]) -> Vec<usize> {
    let held: HashSet<usize> = left_out.iter().copied().collect();
    indices.iter().copied().filter(|i| !held.contains(i)).collect()
}

/// The patient of a stream (its metadata's `patient`, else the stream itself).
fn patient_of(meta: &HashMap<String, Vec<(String, String)>>, stream: &str) -> String {
    meta_value(meta.get(stream).map_or(&[][..], Vec::as_slice), "patient")
        .unwrap_or(stream)
        .to_owned()
}

/// Sets the span of the erase augmentation (a fraction of the window) once the window is known.
fn set_erase_length(sink: &mut TrainSink, window: usize) {
    let fraction = sink.erase_fraction;
    for step in &mut sink.settings.augment {
        if let Augmentation::Erase { length, .. } = step {
            *length = ((window as f64 * fraction).round() as usize).max(1);
        }
    }
}

/// An AUC with three decimals, or `n/a`.
pub(crate) fn fmt_auc(auc: Option<f64>) -> String {
    auc.map_or_else(|| "n/a".to_owned(), |a| format!("{a:.3}"))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// One training of [`Run::fit_all`]: the examples it trains and validates on (split as
/// the sink says), where its checkpoint is kept, and its name on the progress bars.
#[derive(Debug)]
struct FitJob {
    indices: Vec<usize>,
    checkpoint: PathBuf,
    title: String,
}

/// What a [`FitJob`] gave: the outcome, the class counts it trained and validated on, and
/// its own time in seconds.
struct Fitted {
    outcome: TrainOutcome,
    train_counts: Vec<usize>,
    valid_counts: Vec<usize>,
    seconds: f64,
}

/// A progress bar per epoch with the running loss, and one log line per epoch.
struct BarObserver {
    title: String,
    progress: MultiProgress,
    bar: Option<ProgressBar>,
}

impl BarObserver {
    /// A bar among the bars of `progress` (the trainings that run at once).
    fn new(title: &str, progress: &MultiProgress) -> Self {
        BarObserver {
            title: title.to_owned(),
            progress: progress.clone(),
            bar: None,
        }
    }

    fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl TrainObserver for BarObserver {
    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: f64) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = self.progress.add(ProgressBar::new(steps as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps, {msg} ({eta} left)")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        if step == 1 {
            bar.set_length(steps as u64);
            bar.reset();
            bar.set_prefix(format!("{} epoch {epoch}", self.title));
        }
        bar.set_position(step as u64);
        bar.set_message(format!("loss {loss:.4}"));
    }

    fn epoch(&mut self, r: &EpochRecord, improved: bool) {
        let auc = r
            .val_macro_auc
            .map_or_else(String::new, |a| format!(" macro AUC {a:.4}"));
        let line = format!(
            "{} epoch {}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} macro F1 {:.4}{auc}{} | {:.0} s, {:.0} examples/s",
            self.title,
            r.epoch,
            r.train_loss,
            r.train_accuracy,
            r.val_loss,
            r.val_accuracy,
            r.val_macro_f1,
            if improved { " *" } else { "" },
            r.train_seconds,
            r.examples_per_second
        );
        print_above(&self.progress, line);
    }
}

/// Prints `line` above the progress bars, or to standard error when they are not drawn.
fn print_above(progress: &MultiProgress, line: String) {
    if progress.is_hidden() {
        eprintln!("{line}");
    } else {
        let _ = progress.println(line);
    }
}
