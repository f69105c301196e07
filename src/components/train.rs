//! The `train` sink: labelled beats in, a trained classifier and its reports out.
//!
//! It holds every beat until the input ends, then splits them (test part, validation part,
//! or K folds; by beat or by patient), balances the training part only with SMOTE when asked,
//! trains with `ecgflow_operators::train::fit` (resumable from its checkpoint) and writes
//! the model, the training curves and the reports under `path`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use ecgflow_datasets::mitdb::LabelMap;
use ecgflow_operators::augment::Augmentation;
use ecgflow_operators::metrics::{ClassificationReport, CrossValidationSummary};
use ecgflow_operators::models::resecanet::beat_input;
use ecgflow_operators::models::{save_model, Architecture, BeatInput, ModelCard, ResEcaNetConfig, TrainedModel};
use ecgflow_operators::smote::{Smote, Target};
use ecgflow_operators::split::{holdout, k_folds, SplitBy};
use ecgflow_operators::train::{fit, Dataset, EpochRecord, Monitor, TrainObserver, TrainSettings};
use ecgflow_operators::Beat;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::fields::{Default as D, FieldSpec as F};
use super::{same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Sink, SinkWriter, Upstream};
use crate::config::Role;
use crate::message::{meta_value, Body};
use crate::parquet_out::{BeatRows, ParquetTable};
use crate::reports::{classify, write_classification, write_history, write_json, LabelledBeats};

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "train",
    role: Role::Sink,
    summary: "Trains a beat classifier (ResECANet, burn, CPU) on the labelled beats that reach it. Holds every \
              beat until the input ends, then: sets aside a test part (`test_fraction`), a validation part \
              (`validation_fraction`), by beat or by patient (`group_by`), or runs K-fold cross-validation \
              (`k_folds`); balances the training part only with SMOTE (`balance = \"smote\"`); trains with Adam \
              and cross-entropy, validating every epoch, stopping early and keeping the best epoch. Writes \
              PATH/NAME.bpk + NAME.json (the model), history.json/.csv, loss.png and curves.png, \
              validation-report.json, and with a test part test-beats.parquet, test-report.json and \
              test-confusion.png; K-fold writes cv.json. A run interrupted after an epoch resumes from \
              PATH/checkpoint.",
    accepts: &[PortKind::Beats],
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
        F::choice("model", &["resecanet"], "resecanet", "network architecture"),
        F::string(
            "widths",
            D::Str("32,64,128,256,512"),
            "filters of each residual stage (the study's 32 → 512 by default)",
        ),
        F::int("stem_kernel", 1, 255, D::Int(15), "kernel of the first convolution"),
        F::int("kernel", 1, 255, D::Int(7), "kernel of the residual convolutions"),
        F::boolean(
            "rr_features",
            false,
            "also feed the RR intervals (previous/local, next/local, local mean) to the dense layer",
        ),
        F::string(
            "label_map",
            D::Str("aami"),
            "classes: aami, study6, raw, or a CSV file of symbol,class",
        ),
        F::int("epochs", 1, 100_000, D::Int(30), "epochs at most"),
        F::int("batch_size", 1, 65_536, D::Int(64), "beats per optimisation step"),
        F::positive("learning_rate", 0.0, 1.0, D::Float(4e-4), "Adam learning rate"),
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
            &["val_macro_f1", "val_loss", "val_accuracy"],
            "val_macro_f1",
            "validation figure for early stopping and the best epoch",
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
        F::choice(
            "group_by",
            &["beat", "patient"],
            "beat",
            "split beat by beat (the study's protocol) or keep each patient on one side",
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
            &["none", "smote"],
            "none",
            "SMOTE on the training part only (validation and test keep their real class balance)",
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
            "training augmentation: amplitude scaled by a factor in [1 - x, 1 + x]",
        ),
        F::float(
            "augment_noise_mv",
            0.0,
            10.0,
            D::Float(0.0),
            "training augmentation: Gaussian noise of this std in mV",
        ),
        F::int(
            "augment_shift",
            0,
            1000,
            D::Int(0),
            "training augmentation: time shift of up to this many samples",
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
    if let Err(e) = super::sinks::label_map(p.str("label_map")) {
        problems.push(("label_map".to_owned(), format!("{e:#}")));
    }
    match parse_widths(p.str("widths")) {
        Err(e) => problems.push(("widths".to_owned(), e)),
        Ok(widths) => {
            let config = ResEcaNetConfig {
                widths,
                stem_kernel: p.usize("stem_kernel"),
                kernel: p.usize("kernel"),
                ..ResEcaNetConfig::study(2)
            };
            if let Err(e) = config.validate() {
                problems.push(("widths".to_owned(), e));
            }
        }
    }
    if p.usize("k_folds") < 2 && p.f64("validation_fraction") <= 0.0 {
        problems.push((
            "validation_fraction".to_owned(),
            "must be positive: early stopping and the best epoch are chosen on the validation part".to_owned(),
        ));
    }
    problems
}

fn parse_widths(text: &str) -> Result<Vec<usize>, String> {
    let widths: Result<Vec<usize>, _> = text.split(',').map(|w| w.trim().parse::<usize>()).collect();
    match widths {
        Ok(w) if !w.is_empty() && !w.contains(&0) => Ok(w),
        _ => Err(format!(
            "{text:?}: expected positive integers separated by commas, e.g. \"16,32,64,128\""
        )),
    }
}

/// The settings of a `train` sink.
#[derive(Clone, Debug)]
struct TrainSink {
    dir: PathBuf,
    name: String,
    labels: LabelMap,
    config: ResEcaNetConfig,
    settings: TrainSettings,
    test_fraction: f64,
    validation_fraction: f64,
    by: SplitBy,
    k_folds: usize,
    smote: Option<Smote>,
    resume: bool,
}

impl TrainSink {
    fn from_params(p: &Params) -> anyhow::Result<Self> {
        let labels = super::sinks::label_map(p.str("label_map"))?;
        let config = ResEcaNetConfig {
            widths: parse_widths(p.str("widths")).map_err(anyhow::Error::msg)?,
            stem_kernel: p.usize("stem_kernel"),
            kernel: p.usize("kernel"),
            rr_features: p.bool("rr_features"),
            ..ResEcaNetConfig::study(labels.classes().len())
        };
        let mut augment = Vec::new();
        let scale = p.f64("augment_scale") as f32;
        if scale > 0.0 {
            augment.push(Augmentation::AmplitudeScale {
                min: 1.0 - scale,
                max: 1.0 + scale,
            });
        }
        let noise = p.f64("augment_noise_mv") as f32;
        if noise > 0.0 {
            augment.push(Augmentation::GaussianNoise {
                std: noise,
                relative: false,
            });
        }
        let max_shift = p.usize("augment_shift");
        if max_shift > 0 {
            augment.push(Augmentation::TimeShift { max_shift });
        }
        let seed = p.i64("seed") as u64;
        let settings = TrainSettings {
            epochs: p.usize("epochs"),
            batch_size: p.usize("batch_size"),
            learning_rate: p.f64("learning_rate"),
            seed,
            patience: p.usize("patience"),
            monitor: match p.str("monitor") {
                "val_loss" => Monitor::ValLoss,
                "val_accuracy" => Monitor::ValAccuracy,
                _ => Monitor::ValMacroF1,
            },
            augment,
            max_steps_per_epoch: Some(p.usize("steps_per_epoch")).filter(|&s| s > 0),
            augment_len: 0, // set from the beats' window once known
        };
        Ok(TrainSink {
            dir: PathBuf::from(p.str("path")),
            name: p.str("name").to_owned(),
            labels,
            config,
            settings,
            test_fraction: p.f64("test_fraction"),
            validation_fraction: p.f64("validation_fraction"),
            by: if p.str("group_by") == "patient" {
                SplitBy::Group
            } else {
                SplitBy::Example
            },
            k_folds: p.usize("k_folds"),
            smote: (p.str("balance") == "smote").then(|| Smote {
                k: p.usize("smote_k"),
                target: Target::Ratio(p.f64("smote_ratio")),
                seed,
            }),
            resume: p.bool("resume"),
        })
    }
}

impl Sink for TrainSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        Ok(Box::new(TrainWriter {
            sink: self.clone(),
            meta: HashMap::new(),
            beats: Vec::new(),
            failed: HashSet::new(),
        }))
    }
}

/// Collects the beats; all the work happens in `finish`.
struct TrainWriter {
    sink: TrainSink,
    meta: HashMap<String, Vec<(String, String)>>,
    beats: Vec<Beat>,
    failed: HashSet<String>,
}

impl SinkWriter for TrainWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        match body {
            Body::Start { stream, meta } => {
                self.meta.insert(stream.clone(), meta.clone());
            }
            Body::Beat(beat) => self.beats.push(beat.clone()),
            Body::Abort { stream, .. } => {
                self.failed.insert(stream.clone());
            }
            Body::End { .. } | Body::Event(_) => {}
            Body::Chunk(_) | Body::Tensor(_) | Body::Explanation(_) => {
                bail!("the train sink takes beats")
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        let TrainWriter {
            sink,
            meta,
            mut beats,
            failed,
        } = *self;
        beats.retain(|b| !failed.contains(&b.stream));
        let run = Run::new(sink, meta, beats)?;
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
    /// Labelled beats (those the label map knows), with their stream's metadata.
    beats: Vec<Beat>,
    meta: HashMap<String, Vec<(String, String)>>,
    data: Dataset,
    skipped: usize,
    input: BeatInput,
}

impl Run {
    fn new(
        mut sink: TrainSink,
        meta: HashMap<String, Vec<(String, String)>>,
        beats: Vec<Beat>,
    ) -> anyhow::Result<Self> {
        let Some(first) = beats.first() else {
            bail!("no beats reached the train sink");
        };
        if first.leads.len() != 1 {
            bail!(
                "the train sink takes single-lead beats; stream {} has leads {}",
                first.stream,
                first.leads.join(",")
            );
        }
        let input = BeatInput {
            fs: first.fs,
            before: first.before,
            after: first.after,
            lead: first.leads[0].clone(),
        };
        sink.config.window = first.before + 1 + first.after;
        sink.settings.augment_len = sink.config.window;
        let architecture = Architecture::Resecanet(sink.config.clone());
        architecture.validate().map_err(|e| anyhow::anyhow!("train: {e}"))?;
        let mut data = Dataset::new(sink.config.input_len());
        let mut kept = Vec::with_capacity(beats.len());
        let mut skipped = 0;
        for beat in beats {
            let Some(label) = beat.symbol.as_deref().and_then(|s| sink.labels.class_of(s)) else {
                skipped += 1;
                continue;
            };
            // Leads may differ (MIT-BIH 102 and 104 have no MLII); window sizes may not.
            if beat.before != input.before || beat.after != input.after || beat.leads.len() != 1 {
                bail!(
                    "beat {} of stream {} is not a single-lead {} + 1 + {} window like the first beat",
                    beat.sample,
                    beat.stream,
                    input.before,
                    input.after
                );
            }
            let patient = meta_value(meta.get(&beat.stream).map_or(&[][..], Vec::as_slice), "patient")
                .unwrap_or(&beat.stream)
                .to_owned();
            data.push(&beat_input(&beat, sink.config.rr_features), label, &patient);
            kept.push(beat);
        }
        if data.is_empty() {
            bail!(
                "none of the {skipped} beats has a symbol in the label map {:?}",
                sink.labels.name()
            );
        }
        Ok(Run {
            sink,
            architecture,
            beats: kept,
            meta,
            data,
            skipped,
            input,
        })
    }

    fn classes(&self) -> Vec<String> {
        self.sink.labels.classes().to_vec()
    }

    /// Splits `indices` into training and validation parts, balances the training part, and
    /// trains; returns the outcome and the training part's class counts (after SMOTE).
    fn fit_on(
        &self,
        indices: &[usize],
        checkpoint: &Path,
        title: &str,
    ) -> anyhow::Result<(ecgflow_operators::train::TrainOutcome, Vec<usize>, Vec<usize>)> {
        let sink = &self.sink;
        let (train_idx, valid_idx) = holdout(
            indices,
            &self.data.groups,
            sink.validation_fraction,
            sink.by,
            sink.settings.seed ^ 0x5EED,
        );
        let mut train = self.data.subset(&train_idx);
        let valid = self.data.subset(&valid_idx);
        let classes = self.classes().len();
        if let Some(smote) = &sink.smote {
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
        eprintln!(
            "{title}: training on {} beats {:?}, validating on {} {:?}",
            train.len(),
            counts,
            valid.len(),
            valid_counts
        );
        let checkpoint_dir = sink.resume.then_some(checkpoint);
        if !sink.resume {
            let _ = std::fs::remove_dir_all(checkpoint);
        }
        let mut observer = BarObserver::new(title);
        let outcome = fit(
            &self.architecture,
            &train,
            &valid,
            &sink.settings,
            checkpoint_dir,
            &mut observer,
        )?;
        observer.done();
        if let Some(epoch) = outcome.resumed_after {
            eprintln!("{title}: resumed after epoch {epoch} from {}", checkpoint.display());
        }
        Ok((outcome, counts, valid_counts))
    }

    fn card(&self, training: serde_json::Value) -> ModelCard {
        ModelCard {
            name: self.sink.name.clone(),
            version: "1".to_owned(),
            architecture: self.architecture.clone(),
            classes: self.classes(),
            label_map: self.sink.labels.name().to_owned(),
            input: self.input.clone(),
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
            "balance": sink.smote.as_ref().map(|s| json!({"method": "smote", "k": s.k, "target": format!("{:?}", s.target)})),
            "records": self.records(),
        })
    }

    fn records(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.beats
            .iter()
            .filter(|b| seen.insert(b.stream.clone()))
            .map(|b| b.stream.clone())
            .collect()
    }

    fn train_once(&self) -> anyhow::Result<String> {
        let sink = &self.sink;
        let all: Vec<usize> = (0..self.data.len()).collect();
        let (rest, test_idx) = holdout(&all, &self.data.groups, sink.test_fraction, sink.by, sink.settings.seed);
        let started = Instant::now();
        let (outcome, train_counts, valid_counts) = self.fit_on(&rest, &sink.dir.join("checkpoint"), &sink.name)?;
        let seconds = started.elapsed().as_secs_f64();
        let best = outcome.history.iter().find(|r| r.epoch == outcome.best_epoch);
        let mut training = self.settings_json();
        training["class_counts"] = json!({"train": train_counts, "validation": valid_counts, "test": self.data.subset(&test_idx).class_counts(self.classes().len())});
        training["beats_skipped_no_class"] = json!(self.skipped);
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
        let card = self.card(training);
        let model_path = sink.dir.join(&sink.name);
        save_model(&outcome.best, &card, &model_path)?;
        write_history(&sink.dir, &outcome.history, &sink.name)?;
        let model = TrainedModel::open(&model_path)?;

        // The validation part (chosen before SMOTE, real class balance).
        let classes = self.classes();
        let context = |part: &str, beats: usize| {
            json!({
                "model": crate::reports::model_context(&model, &model_path),
                "data": {"part": part, "beats": beats, "records": self.records()},
            })
        };
        let (_, valid_idx) = holdout(
            &rest,
            &self.data.groups,
            sink.validation_fraction,
            sink.by,
            sink.settings.seed ^ 0x5EED,
        );
        let valid = self.labelled(&valid_idx);
        let report = classify(&model, &valid, &classes)?;
        write_classification(
            &report,
            context("validation", valid_idx.len()),
            &sink.dir.join("validation-report.json"),
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
        if !test_idx.is_empty() {
            self.write_test_beats(&test_idx)?;
            let test = self.labelled(&test_idx);
            let report = classify(&model, &test, &classes)?;
            let plots = sink.dir.join("test-plots");
            write_classification(
                &report,
                context("test", test_idx.len()),
                &sink.dir.join("test-report.json"),
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

    fn labelled(&self, indices: &[usize]) -> LabelledBeats {
        LabelledBeats {
            inputs: indices
                .iter()
                .flat_map(|&i| self.data.input(i).iter().copied())
                .collect(),
            labels: indices.iter().map(|&i| self.data.labels[i]).collect(),
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
        let classes = self.classes();
        let mut reports: Vec<ClassificationReport> = Vec::new();
        let mut histories: Vec<Vec<EpochRecord>> = Vec::new();
        for (k, test_idx) in folds.iter().enumerate() {
            let held: HashSet<usize> = test_idx.iter().copied().collect();
            let rest: Vec<usize> = all.iter().copied().filter(|i| !held.contains(i)).collect();
            let dir = sink.dir.join(format!("fold-{}", k + 1));
            let title = format!("{} fold {}/{}", sink.name, k + 1, folds.len());
            let (outcome, _, _) = self.fit_on(&rest, &dir.join("checkpoint"), &title)?;
            let card = self.card(self.settings_json());
            let model_path = dir.join(&sink.name);
            save_model(&outcome.best, &card, &model_path)?;
            write_history(&dir, &outcome.history, &title)?;
            let model = TrainedModel::open(&model_path)?;
            let report = classify(&model, &self.labelled(test_idx), &classes)?;
            write_classification(
                &report,
                json!({"fold": k + 1, "test_beats": test_idx.len()}),
                &dir.join("test-report.json"),
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

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// A progress bar per epoch with the running loss, and one log line per epoch.
struct BarObserver {
    title: String,
    bar: Option<ProgressBar>,
}

impl BarObserver {
    fn new(title: &str) -> Self {
        BarObserver {
            title: title.to_owned(),
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
            let bar = ProgressBar::new(steps as u64);
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
        let line = format!(
            "{} epoch {}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} macro F1 {:.4}{} | {:.0} s, {:.0} beats/s",
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
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }
}
