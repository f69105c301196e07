//! Evaluation reports of classifiers: labelled beats (or PTB-XL records) → model → a JSON
//! report with documented keys (docs/reports.md) and PNG plots. Shared by the `train` sink
//! (its validation and test parts), `ecgflow eval beats` and `ecgflow eval ptbxl`.

use std::path::Path;

use anyhow::Context;
use ecgflow_datasets::mitdb::LabelMap;
use ecgflow_operators::metrics::{
    bootstrap_ci, roc_auc, roc_curve, ClassificationReport, MultiLabelReport, DEFAULT_THRESHOLD,
};
use ecgflow_operators::models::decision::Scored;
use ecgflow_operators::models::resecanet::{beat_input, missing_template};
use ecgflow_operators::models::{Architecture, BeatTiming, TrainedModel};
use ecgflow_operators::plot::{confusion_chart, line_chart, roc_chart, Series};
use ecgflow_operators::train::{Dataset, EpochRecord};
use ecgflow_operators::Beat;
use serde_json::{json, Value};

use crate::atomic_file::write_atomic;

/// Beats with their class in a label map, ready for a model.
#[derive(Debug, Default)]
pub struct LabelledBeats {
    /// Model inputs, `len() × input_len`.
    pub inputs: Vec<f32>,
    pub labels: Vec<usize>,
    /// Each beat's timing, for a model card's premature-beat rule.
    pub timings: Vec<Option<BeatTiming>>,
    /// Beats whose symbol the label map does not know (or that have none): left out.
    pub skipped: usize,
}

impl LabelledBeats {
    /// These beats with a network's `probabilities` for them (one row per beat).
    pub fn scored<'a>(&'a self, probabilities: &'a [Vec<f32>]) -> Scored<'a> {
        Scored {
            probabilities,
            truth: &self.labels,
            timings: &self.timings,
        }
    }
}

/// The inputs and classes of `beats` for a model with `architecture`, classes from `map`.
pub fn labelled_beats<'a>(
    beats: impl IntoIterator<Item = &'a Beat>,
    architecture: &Architecture,
    map: &LabelMap,
) -> anyhow::Result<LabelledBeats> {
    let extras = architecture.beat_extras();
    let mut out = LabelledBeats::default();
    for beat in beats {
        let Some(label) = beat.symbol.as_deref().and_then(|s| map.class_of(s)) else {
            out.skipped += 1;
            continue;
        };
        if let Some(problem) = missing_template(beat, extras) {
            anyhow::bail!("{problem}");
        }
        let input = beat_input(beat, extras);
        if input.len() != architecture.input_len() {
            anyhow::bail!(
                "beat {} of {} has a {}-sample window (before {} + 1 + after {}); the model takes {} values",
                beat.sample,
                beat.stream,
                beat.before + 1 + beat.after,
                beat.before,
                beat.after,
                architecture.input_len()
            );
        }
        out.inputs.extend(input);
        out.labels.push(label);
        out.timings.push(BeatTiming::of(beat));
    }
    Ok(out)
}

/// The classification report of `model` on `data`, with its card's decisions after the
/// network (minimum probabilities, premature-beat rule) where it keeps any.
pub fn classify(model: &TrainedModel, data: &LabelledBeats) -> anyhow::Result<ClassificationReport> {
    let probabilities = model.predict(&data.inputs, 256)?;
    Ok(data.scored(&probabilities).report(&model.card)?)
}

/// Writes `report` as JSON to `path` (when given) with `context` keys first (model, data,
/// ...), and the confusion matrix as `confusion.png` in `plots` when given.
pub fn write_classification(
    report: &ClassificationReport,
    context: Value,
    path: Option<&Path>,
    plots: Option<&Path>,
    title: &str,
) -> anyhow::Result<()> {
    let mut value = context;
    let body = serde_json::to_value(report)?;
    if let (Some(out), Value::Object(fields)) = (value.as_object_mut(), body) {
        out.extend(fields);
    }
    if let Some(path) = path {
        write_json(path, &value)?;
    }
    if let Some(dir) = plots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        confusion_chart(&dir.join("confusion.png"), title, &report.confusion)?;
    }
    Ok(())
}

/// Bootstrap resamples behind the 95 % intervals of multi-label reports.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// Scores `model` (multi-label, sigmoid outputs) on `data` (inputs with label sets) with
/// the thresholds of its card (0.5 where it has none), and writes the report as JSON to
/// `path` (when given) with `context` keys first, bootstrap 95 % intervals of every AUC, and the ROC
/// curves as a PNG at `roc` when given.
pub fn write_multi_label_report(
    model: &TrainedModel,
    data: &Dataset,
    context: Value,
    path: Option<&Path>,
    roc: Option<&Path>,
    title: &str,
) -> anyhow::Result<MultiLabelReport> {
    let classes = &model.card.classes;
    let thresholds = model
        .card
        .thresholds
        .clone()
        .unwrap_or_else(|| vec![DEFAULT_THRESHOLD; classes.len()]);
    let scores = model.predict(&data.inputs, 64)?;
    let truth = &data.label_sets;
    let report = MultiLabelReport::new(classes, &scores, truth, &thresholds)?;

    // Intervals: the same records resampled for every statistic.
    let column = |rows: &[usize], k: usize| -> (Vec<f32>, Vec<bool>) {
        rows.iter().map(|&i| (scores[i][k], truth[i][k])).unzip()
    };
    let seed = 0xB007;
    let n = data.len();
    let per_class_ci: Vec<Option<(f64, f64)>> = (0..classes.len())
        .map(|k| {
            bootstrap_ci(n, BOOTSTRAP_RESAMPLES, seed, |rows| {
                let (s, t) = column(rows, k);
                roc_auc(&s, &t)
            })
        })
        .collect();
    let macro_ci = bootstrap_ci(n, BOOTSTRAP_RESAMPLES, seed, |rows| {
        let aucs: Vec<f64> = (0..classes.len())
            .filter_map(|k| {
                let (s, t) = column(rows, k);
                roc_auc(&s, &t)
            })
            .collect();
        (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
    });
    let micro_ci = bootstrap_ci(n, BOOTSTRAP_RESAMPLES, seed, |rows| {
        let (s, t): (Vec<f32>, Vec<bool>) = rows
            .iter()
            .flat_map(|&i| scores[i].iter().copied().zip(truth[i].iter().copied()))
            .unzip();
        roc_auc(&s, &t)
    });

    let mut value = context;
    let body = serde_json::to_value(&report)?;
    if let (Some(out), Value::Object(fields)) = (value.as_object_mut(), body) {
        out.extend(fields);
        out.insert("examples".into(), json!(n));
        out.insert("macro_auc_ci95".into(), json!(macro_ci));
        out.insert("micro_auc_ci95".into(), json!(micro_ci));
        out.insert(
            "per_class_auc_ci95".into(),
            json!(classes
                .iter()
                .zip(&per_class_ci)
                .map(|(c, ci)| (c.clone(), json!(ci)))
                .collect::<serde_json::Map<_, _>>()),
        );
        out.insert("bootstrap_resamples".into(), json!(BOOTSTRAP_RESAMPLES));
    }
    if let Some(path) = path {
        write_json(path, &value)?;
    }
    if let Some(png) = roc {
        let curves: Vec<_> = (0..classes.len())
            .map(|k| {
                let (s, t): (Vec<f32>, Vec<bool>) = (0..n).map(|i| (scores[i][k], truth[i][k])).unzip();
                (
                    classes[k].clone(),
                    roc_curve(&s, &t),
                    report.per_class[k].auc.unwrap_or(f64::NAN),
                )
            })
            .collect();
        roc_chart(png, title, &curves)?;
    }
    Ok(report)
}

/// Pretty JSON written through a temporary file.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    write_atomic(path, text.as_bytes())
}

/// Training curves: `history.json`, `history.csv` and `curves.png` in `dir`.
pub fn write_history(dir: &Path, history: &[EpochRecord], title: &str) -> anyhow::Result<()> {
    write_json(&dir.join("history.json"), &history)?;
    let mut csv = String::from(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_macro_f1,steps,train_seconds,examples_per_second\n",
    );
    for r in history {
        csv += &format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6},{},{:.3},{:.1}\n",
            r.epoch,
            r.train_loss,
            r.train_accuracy,
            r.val_loss,
            r.val_accuracy,
            r.val_macro_f1,
            r.steps,
            r.train_seconds,
            r.examples_per_second
        );
    }
    write_atomic(&dir.join("history.csv"), csv.as_bytes())?;
    let series = |name: &str, f: fn(&EpochRecord) -> f64| Series {
        name: name.to_owned(),
        points: history.iter().map(|r| (r.epoch as f64, f(r))).collect(),
    };
    line_chart(
        &dir.join("loss.png"),
        &format!("{title}: loss"),
        "epoch",
        "cross-entropy",
        &[series("train", |r| r.train_loss), series("validation", |r| r.val_loss)],
    )?;
    line_chart(
        &dir.join("curves.png"),
        &format!("{title}: accuracy and macro F1"),
        "epoch",
        "fraction",
        &[
            series("train accuracy", |r| r.train_accuracy),
            series("val accuracy", |r| r.val_accuracy),
            series("val macro F1", |r| r.val_macro_f1),
        ],
    )?;
    Ok(())
}

/// The `model` key of reports: what was evaluated.
pub fn model_context(model: &TrainedModel, path: &Path) -> Value {
    json!({
        "path": path.display().to_string(),
        "name": model.card.name,
        "version": model.card.version,
        "label_map": model.card.label_map,
        "classes": model.card.classes,
        "min_probability": model.card.min_probability,
        "premature_rule": model.card.premature_rule,
    })
}
