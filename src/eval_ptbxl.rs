//! `ecgflow eval ptbxl`: a trained multi-label PTB-XL classifier (image or signal model)
//! scored on the records of chosen folds of any directory in the PTB-XL layout: per-class
//! sensitivity, specificity, F1 and ROC AUC, macro and micro AUC with bootstrap 95 %
//! intervals, macro F1, and the ROC curves as a PNG. The JSON keys are documented in
//! docs/reports.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ecgflow_datasets::ptbxl::{self, PtbxlRecord, Resolution};
use ecgflow_operators::metrics::MultiLabelReport;
use ecgflow_operators::models::{RecordInput, TrainedModel};
use ecgflow_operators::train::Dataset;
use serde_json::json;

use crate::components::sources::parse_folds;
use crate::reports::{model_context, write_multi_label_report, BOOTSTRAP_RESAMPLES};

#[derive(clap::Args, Debug, Clone)]
pub struct PtbxlArgs {
    /// The model: NAME.json or NAME.bpk (both files must be there).
    #[arg(long)]
    pub model: PathBuf,
    /// A directory in the PTB-XL layout (ptbxl_database.csv, scp_statements.csv, records100/...).
    #[arg(long)]
    pub data: PathBuf,
    /// Folds to score, e.g. "9", "9,10" or "1-8".
    #[arg(long)]
    pub folds: String,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write plots (roc.png) into this directory.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

pub fn ptbxl(args: &PtbxlArgs) -> anyhow::Result<MultiLabelReport> {
    let model = TrainedModel::open(&args.model)?;
    let input = model.card.record_input()?.clone();
    let expected: Vec<&str> = ptbxl::SUPERCLASSES.to_vec();
    if model.card.classes != expected {
        bail!(
            "{}: the model outputs {:?}; eval ptbxl scores the PTB-XL superclasses {:?}",
            args.model.display(),
            model.card.classes,
            expected
        );
    }
    let resolution = resolution(&input)?;
    let folds = parse_folds(&args.folds).context("--folds")?;
    let all = ptbxl::load(&args.data).with_context(|| format!("reading PTB-XL from {}", args.data.display()))?;
    let records = ptbxl::filter_folds(&all, &folds);
    if records.is_empty() {
        bail!("{}: no record in folds {}", args.data.display(), args.folds);
    }

    let mut data = Dataset::new(model.card.architecture.input_len());
    let mut names = Vec::new();
    let mut no_class = 0;
    let progress = indicatif::ProgressBar::new(records.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("reading records [{bar:30}] {pos}/{len} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    for record in &records {
        progress.inc(1);
        if !record.superclasses.contains(&true) {
            no_class += 1;
            continue;
        }
        let values = network_input(record, &args.data, resolution, &input)?;
        data.push_multi(&values, &record.superclasses, &record.patient_id.to_string());
        names.push(record.ecg_id);
    }
    progress.finish_and_clear();
    if data.is_empty() {
        bail!(
            "none of the {no_class} records of folds {} has a diagnostic superclass",
            args.folds
        );
    }
    let context = json!({
        "model": model_context(&model, &args.model),
        "data": {
            "path": args.data.display().to_string(),
            "folds": folds,
            "records": data.len(),
            "records_without_superclass": no_class,
        },
        "thresholds_from": if model.card.thresholds.is_some() { "the model card (chosen on its validation part)" } else { "0.5 (the card has none)" },
    });
    let roc = match &args.plots {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Some(dir.join("roc.png"))
        }
        None => None,
    };
    let title = format!("{} on folds {}", title(&args.model), args.folds);
    let report = write_multi_label_report(&model, &data, context, args.json.as_deref(), roc.as_deref(), &title)?;
    print_report(&report, data.len(), no_class);
    Ok(report)
}

/// The PTB-XL resolution holding records at the sampling rate `input` takes.
pub(crate) fn resolution(input: &RecordInput) -> anyhow::Result<Resolution> {
    Ok(match input.fs {
        fs if (fs - 100.0).abs() < 1e-9 => Resolution::Low,
        fs if (fs - 500.0).abs() < 1e-9 => Resolution::High,
        fs => bail!("the model takes {fs} Hz records; PTB-XL has 100 and 500 Hz"),
    })
}

/// `record` of the PTB-XL directory `data` read and prepared as the network input
/// ([`RecordInput::prepare`]: the signal or its rendered image).
pub(crate) fn network_input(
    record: &PtbxlRecord,
    data: &Path,
    resolution: Resolution,
    input: &RecordInput,
) -> anyhow::Result<Vec<f32>> {
    let (header, signal) = record
        .read_signal(data, resolution)
        .with_context(|| format!("record {}", record.ecg_id))?;
    let leads: Vec<&str> = header.signals.iter().map(|s| s.description.as_str()).collect();
    input
        .prepare(&leads, &signal)
        .map_err(|e| anyhow::anyhow!("record {}: {e}", record.ecg_id))
}

fn title(model: &Path) -> String {
    model
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// A table a person can read in a terminal.
fn print_report(report: &MultiLabelReport, records: usize, no_class: usize) {
    let auc = |a: Option<f64>| a.map_or_else(|| "n/a".to_owned(), |a| format!("{a:.4}"));
    println!("{records} records ({no_class} without a diagnostic superclass left out)");
    println!(
        "{:<6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "class", "AUC", "sensitiv.", "specif.", "precision", "F1", "support", "threshold"
    );
    for c in &report.per_class {
        println!(
            "{:<6} {:>8} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>8} {:>9.3}",
            c.class,
            auc(c.auc),
            c.sensitivity,
            c.specificity,
            c.precision,
            c.f1,
            c.support,
            c.threshold
        );
    }
    println!(
        "macro AUC {}, micro AUC {}, macro F1 {:.4} (95 % intervals in the JSON, {BOOTSTRAP_RESAMPLES} bootstrap resamples)",
        auc(report.macro_auc),
        auc(report.micro_auc),
        report.macro_f1
    );
}
