//! The `ecgflow` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecgflow::runtime::{self, RunOptions};
use ecgflow::{config, docs, graph, load_pipeline};

#[derive(Parser)]
#[command(
    name = "ecgflow",
    version,
    about = "A dataflow engine for electrocardiograms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline to completion.
    Run(RunArgs),
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate { files, set } => return validate(&files, &set),
        Command::Graph { file, set } => {
            load_pipeline(&file, &set).map(|g| print!("{}", g.to_dot()))
        }
        Command::Components => {
            print!("{}", docs::components_markdown());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let graph = load_pipeline(&args.file, &args.set)?;
    let options = RunOptions {
        workers: args.workers,
        processes: args.processes,
        process: args.process,
        hostfile: args.hostfile,
        progress: !args.quiet,
    };
    let summary = runtime::run(&graph, &options)?;
    for line in &summary.sink_lines {
        eprintln!("{line}");
    }
    eprintln!(
        "done: {} streams, {} samples, {} beats in {:.2} s ({}samples/s)",
        summary.streams,
        summary.samples,
        summary.beats,
        summary.seconds,
        ecgflow::progress::human(summary.samples as f64 / summary.seconds.max(1e-9))
    );
    Ok(())
}

fn validate(files: &[PathBuf], set: &[String]) -> ExitCode {
    let mut all_ok = true;
    for path in files {
        let problems = match config::load(path, set) {
            Err(e) => vec![e.to_string()],
            Ok(file) => match graph::validate(&file) {
                Ok(_) => Vec::new(),
                Err(problems) => problems
                    .iter()
                    .map(|p| format!("{}: {p}", path.display()))
                    .collect(),
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
