//! ecgflow: a dataflow engine for electrocardiograms. Pipelines are TOML graphs of named
//! components (sources → transforms → sinks) run as timely dataflows, over whole datasets
//! in batch or over live streams.

pub mod atomic_file;
pub mod components;
pub mod config;
pub mod docs;
pub mod eval;
pub mod eval_alarms;
pub mod eval_beats;
pub mod eval_explain;
pub mod eval_ptbxl;
pub mod feed;
pub mod fetch_cli;
pub mod graph;
pub mod message;
pub mod metrics;
pub mod parquet_in;
pub mod parquet_out;
pub mod progress;
pub mod reports;
pub mod runtime;
pub mod serve;

use std::path::Path;

/// Loads and validates a pipeline file, with `--set` overrides, into a runnable graph.
/// On failure the error lists every problem, one per line.
pub fn load_pipeline(path: &Path, overrides: &[String]) -> anyhow::Result<graph::Graph> {
    let file = config::load(path, overrides)?;
    graph::validate(&file).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!("{} is not a valid pipeline:\n{}", path.display(), lines.join("\n"))
    })
}
