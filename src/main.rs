//! The `ecgflow` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecgflow::runtime::{self, RunOptions};
use ecgflow::{config, docs, eval, graph, load_pipeline};

#[derive(Parser)]
#[command(name = "ecgflow", version, about = "A dataflow engine for electrocardiograms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline to completion.
    Run(RunArgs),
    /// Run a training pipeline (one ending in a `train` sink); the same as `run`.
    Train(RunArgs),
    /// Check pipeline files; exits 0 when all are valid, 1 otherwise.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a field: section.NAME.FIELD=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print a pipeline's graph as Graphviz DOT.
    Graph {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List every component type with its fields, defaults, ranges and port kinds (Markdown).
    Components,
    /// Evaluate against reference annotations.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Convert a trained model to ONNX (dynamic batch axis) for tract, onnxruntime, ...
    Export {
        /// The model: NAME.json or NAME.bpk.
        #[arg(long)]
        model: PathBuf,
        /// The ONNX file to write.
        #[arg(long)]
        onnx: PathBuf,
    },
    /// Download and verify public databases.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Run a pipeline and serve the live monitor web page of its `monitor` sinks.
    Serve(ecgflow::serve::ServeArgs),
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Beat-by-beat R-peak scoring against reference beat annotations (ANSI/AAMI EC57, like bxb).
    Rpeaks(eval::RpeaksArgs),
    /// A trained beat classifier scored on labelled beats from a beats Parquet table.
    Beats(ecgflow::eval_beats::BeatsArgs),
    /// Faithfulness of explanations (Grad-CAM, SHAP, LIME) of a beat classifier or a PTB-XL
    /// record classifier: deletion and insertion curves against random orders, and the
    /// model-randomisation check.
    Explain(Box<ecgflow::eval_explain::ExplainArgs>),
    /// Ventricular-run alarms of a monitoring run (its events JSONL) scored against the runs
    /// of V beats in the reference annotations: sensitivity and false alarms per hour.
    Alarms(ecgflow::eval_alarms::AlarmsArgs),
    /// A multi-label PTB-XL classifier (image or signal model) scored on chosen folds of a
    /// PTB-XL directory: per-class sensitivity, specificity, F1 and ROC AUC, macro and micro
    /// AUC with bootstrap 95 % intervals, ROC curves.
    Ptbxl(ecgflow::eval_ptbxl::PtbxlArgs),
}

#[derive(Subcommand)]
enum DatasetsCommand {
    /// Download a PhysioNet database, verifying every file against its SHA256SUMS.txt.
    Fetch {
        /// mitdb or ptbxl.
        database: String,
        /// Directory to download into (resumes and skips verified files).
        #[arg(long)]
        dest: PathBuf,
        /// Another server or mirror laid out like PhysioNet.
        #[arg(long)]
        base_url: Option<String>,
        /// Parallel downloads.
        #[arg(long, default_value_t = ecgflow_datasets::fetch::DEFAULT_JOBS)]
        jobs: usize,
        /// Only files whose path starts with one of these (repeatable), e.g. records100/.
        #[arg(long)]
        only: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The pipeline file.
    file: PathBuf,
    /// Worker threads per process.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Override a field: section.NAME.FIELD=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Processes in a cluster run (timely's cluster mode).
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// This process's index in the cluster, 0-based.
    #[arg(long, default_value_t = 0)]
    process: usize,
    /// File with one host:port per process (default: 127.0.0.1:2101, 2102, ...).
    #[arg(long)]
    hostfile: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Write the run's metrics (counters, stage times, prediction latency) here at the end,
    /// in the Prometheus text format.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) | Command::Train(args) => run(args),
        Command::Validate { files, set } => Ok(validate(&files, &set)),
        Command::Graph { file, set } => load_pipeline(&file, &set).map(|g| {
            print!("{}", g.to_dot());
            ExitCode::SUCCESS
        }),
        Command::Components => {
            print!("{}", docs::components_markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(EvalCommand::Rpeaks(args)) => eval::rpeaks(&args).map(|()| ExitCode::SUCCESS),
        Command::Export { model, onnx } => export(&model, &onnx),
        Command::Eval(EvalCommand::Beats(args)) => ecgflow::eval_beats::beats(&args).map(|_| ExitCode::SUCCESS),
        Command::Eval(EvalCommand::Explain(args)) => ecgflow::eval_explain::explain(&args).map(|_| ExitCode::SUCCESS),
        Command::Eval(EvalCommand::Alarms(args)) => ecgflow::eval_alarms::alarms(&args).map(|_| ExitCode::SUCCESS),
        Command::Eval(EvalCommand::Ptbxl(args)) => ecgflow::eval_ptbxl::ptbxl(&args).map(|_| ExitCode::SUCCESS),
        Command::Datasets(DatasetsCommand::Fetch {
            database,
            dest,
            base_url,
            jobs,
            only,
        }) => ecgflow::fetch_cli::fetch(&database, dest, base_url, jobs, only),
        Command::Serve(args) => ecgflow::serve::serve(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 0 when every stream went through, 3 when some were skipped (`on_error = "skip"`).
fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let graph = load_pipeline(&args.file, &args.set)?;
    let options = RunOptions {
        workers: args.workers,
        processes: args.processes,
        process: args.process,
        hostfile: args.hostfile,
        progress: !args.quiet,
        metrics: args.metrics.is_some().then(Default::default),
    };
    let summary = runtime::run(&graph, &options)?;
    if let (Some(path), Some(metrics)) = (&args.metrics, &options.metrics) {
        report_metrics(path, metrics)?;
    }
    if let Some(note) = summary.dropped_note() {
        eprintln!("{note}");
    }
    for line in &summary.sink_lines {
        eprintln!("{line}");
    }
    if summary.already_done > 0 {
        eprintln!(
            "{} stream(s) already complete in every sink were not read again",
            summary.already_done
        );
    }
    // The rate of what the sources read: samples of signal, or beats of beat tables.
    let (read, unit) = if summary.samples > 0 {
        (summary.samples, "samples")
    } else {
        (summary.beats, "beats")
    };
    eprintln!(
        "done: {} streams, {} samples, {} beats in {:.2} s ({}{unit}/s)",
        summary.streams,
        summary.samples,
        summary.beats,
        summary.seconds,
        ecgflow::progress::human(read as f64 / summary.seconds.max(1e-9))
    );
    if !summary.skipped.is_empty() {
        eprintln!(
            "{} stream(s) failed and were left out of every output:",
            summary.skipped.len()
        );
        for line in &summary.skipped {
            eprintln!("  {line}");
        }
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the metrics file and prints the prediction latency, when beats were timed.
fn report_metrics(path: &std::path::Path, metrics: &ecgflow::metrics::Metrics) -> anyhow::Result<()> {
    ecgflow::atomic_file::write_atomic(path, metrics.render_prometheus().as_bytes())?;
    let latency = metrics.prediction_latency();
    if let (Some(p50), Some(p99), Some(mean)) = (latency.quantile(0.5), latency.quantile(0.99), latency.mean()) {
        eprintln!(
            "prediction latency over {} beats: mean {:.2} ms, p50 ≤ {} ms, p99 ≤ {} ms",
            latency.count(),
            mean * 1e3,
            p50 * 1e3,
            p99 * 1e3
        );
    }
    Ok(())
}

fn validate(files: &[PathBuf], set: &[String]) -> ExitCode {
    let mut all_ok = true;
    for path in files {
        let problems = match config::load(path, set) {
            Err(e) => vec![format!("{:#}", anyhow::Error::new(e))],
            Ok(file) => match graph::validate(&file) {
                Ok(_) => Vec::new(),
                Err(problems) => problems.iter().map(|p| format!("{}: {p}", path.display())).collect(),
            },
        };
        if problems.is_empty() {
            println!("{}: ok", path.display());
        } else {
            all_ok = false;
            for p in problems {
                eprintln!("{p}");
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn export(model: &std::path::Path, onnx: &std::path::Path) -> anyhow::Result<ExitCode> {
    let trained = ecgflow_operators::models::TrainedModel::open(model)?;
    ecgflow_operators::models::onnx::export_onnx(&trained, onnx)?;
    println!(
        "{}: {} ({} classes: {})",
        onnx.display(),
        trained.card.name,
        trained.card.classes.len(),
        trained.card.classes.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
