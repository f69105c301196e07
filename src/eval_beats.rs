//! `ecgflow eval beats`: a trained beat classifier scored on labelled beats from a `beats`
//! Parquet table. The JSON keys are documented in docs/reports.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ecgflow_operators::metrics::ClassificationReport;
use ecgflow_operators::models::TrainedModel;
use serde_json::json;

use crate::components::sources::beat_records;
use crate::parquet_in::read_beats;
use crate::reports::{classify, labelled_beats, model_context, write_classification};

#[derive(clap::Args, Debug, Clone)]
pub struct BeatsArgs {
    /// The model: NAME.json or NAME.bpk (both files must be there).
    #[arg(long)]
    pub model: PathBuf,
    /// A beats Parquet file, or a directory of them (e.g. out/mitdb_beats).
    #[arg(long)]
    pub data: PathBuf,
    /// Records: "all" (every record in the data), names, or MIT-BIH sets such as "DS2".
    #[arg(long, default_value = "all")]
    pub records: String,
    /// Label map turning annotation symbols into classes; default: the model's own. Its
    /// classes must be the model's.
    #[arg(long)]
    pub label_map: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write plots (confusion.png) into this directory.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

pub fn beats(args: &BeatsArgs) -> anyhow::Result<ClassificationReport> {
    let model = TrainedModel::open(&args.model)?;
    let map_name = args.label_map.as_deref().unwrap_or(&model.card.label_map);
    let map = crate::components::label_map(map_name).with_context(|| format!("label map {map_name:?}"))?;
    if map.classes() != model.card.classes.as_slice() {
        bail!(
            "label map {map_name:?} has classes {:?} but the model {} outputs {:?}",
            map.classes(),
            args.model.display(),
            model.card.classes
        );
    }
    let records = beat_records(&args.records).context("--records")?;
    let table = read_beats(&args.data, records.as_ref())?;
    if table.is_empty() {
        bail!("{}: no beats of records {:?}", args.data.display(), args.records);
    }
    let beats = table.records.iter().flat_map(|(_, b)| b.iter().map(|s| &s.beat));
    let data = labelled_beats(beats, &model.card.architecture, &map)?;
    if model.card.premature_rule.is_some() && data.timings.iter().all(Option::is_none) {
        bail!(
            "{}: no beat has the RR intervals the model's premature-beat rule reads (rr_prev, rr_mean, \
             rr_irregularity; a table written before rr_irregularity existed?); rebuild it, e.g. with \
             pipelines/mitdb-to-parquet.toml",
            args.data.display()
        );
    }
    let report = classify(&model, &data)?;
    let record_names: Vec<&str> = table.records.iter().map(|(r, _)| r.as_str()).collect();
    let context = json!({
        "model": model_context(&model, &args.model),
        "data": {
            "path": args.data.display().to_string(),
            "records": record_names,
            "beats": data.labels.len(),
            "skipped": data.skipped,
            "label_map": map_name,
        },
    });
    write_classification(
        &report,
        context,
        args.json.as_deref(),
        args.plots.as_deref(),
        &title(&args.model),
    )?;
    print_report(&report, data.labels.len(), data.skipped);
    if let Some(decisions) = ecgflow_operators::models::decision::describe(&model.card) {
        println!("after the network (from the model card): {decisions}");
    }
    Ok(report)
}

fn title(model: &Path) -> String {
    model
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// A table a person can read in a terminal.
fn print_report(report: &ClassificationReport, beats: usize, skipped: usize) {
    println!("{beats} beats ({skipped} without a class in the label map left out)");
    println!(
        "{:<6} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "specif.", "F1", "support"
    );
    for c in &report.per_class {
        println!(
            "{:<6} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>8}",
            c.class, c.precision, c.recall, c.specificity, c.f1, c.support
        );
    }
    let m = &report.macro_avg;
    println!(
        "{:<6} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
        "macro", m.precision, m.recall, m.specificity, m.f1
    );
    println!("accuracy {:.4}, kappa {:.4}", report.accuracy, report.kappa);
    for (class, e) in &report.ec57 {
        println!("EC57 {class}: Se {:.4}, +P {:.4}", e.se, e.ppv);
    }
    if let Some(jk) = report.jk {
        println!("jκ index {jk:.4}");
    }
}
