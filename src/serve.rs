//! `ecgflow serve PIPELINE.toml`: runs a pipeline and serves its `monitor` sinks' live state
//! as the bedside web page (docs/monitor.md), until interrupted.
//!
//! Only counts, addresses and paths are printed: never a patient's data, nor the token.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ecgflow_monitor::auth::{check_bind, TOKEN_ENV};
use ecgflow_monitor::{Hub, RunStatus, Server, ServerConfig};

use crate::config::Role;
use crate::metrics::Metrics;
use crate::runtime::{self, RunOptions};

/// The address served when `--addr` is not given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The pipeline file; what reaches its `monitor` sinks is shown.
    pub file: PathBuf,
    /// Address to listen on. Anything but a loopback address needs an access token. Port 0
    /// picks a free port (the URL printed says which).
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// Access token every request must carry (`Authorization: Bearer TOKEN` or `?token=TOKEN`);
    /// read from ECGFLOW_TOKEN when not given (which keeps it out of the process list).
    #[arg(long)]
    pub token: Option<String>,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Override a field: section.NAME.FIELD=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Stop serving after this many seconds (for tests and demos); by default the page is
    /// served until the process is interrupted, also after the pipeline has ended.
    #[arg(long, value_name = "SECONDS")]
    pub exit_after: Option<f64>,
}

/// The token from `--token`, else from the environment; empty counts as none.
fn token(args: &ServeArgs) -> Option<String> {
    args.token
        .clone()
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .filter(|t| !t.is_empty())
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("--addr {addr}: not an address to listen on (e.g. 127.0.0.1:8080)"))?
        .next()
        .with_context(|| format!("--addr {addr}: the name has no address"))
}

/// Runs `ecgflow serve`. Returns only with `--exit-after` (or on an error before serving).
pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let addr = resolve(&args.addr)?;
    let token = token(args);
    check_bind(&addr, token.as_deref())?;
    if args.exit_after.is_some_and(|s| !(s.is_finite() && s >= 0.0)) {
        bail!("--exit-after must be a number of seconds, 0 or more");
    }
    let graph = crate::load_pipeline(&args.file, &args.set)?;
    let monitors = graph
        .nodes
        .iter()
        .filter(|n| n.decl.role == Role::Sink && n.spec.type_name == "monitor")
        .count();
    if monitors == 0 {
        eprintln!(
            "warning: {} has no `monitor` sink: the page will show no streams",
            args.file.display()
        );
    }

    let hub = Hub::global();
    hub.reset();
    let metrics = Arc::new(Metrics::default());
    let mut config = ServerConfig::new(addr);
    config.token = token.clone();
    let run_metrics = metrics.clone();
    config.metrics = Some(Arc::new(move || run_metrics.render_prometheus()));
    let server = Server::start(config, hub.clone())?;
    let bound = server.addr();
    println!("ecgflow serve: the monitor page is at http://{bound}/");
    if token.is_some() {
        println!("  every request needs the access token: open http://{bound}/?token=TOKEN, or send Authorization: Bearer TOKEN");
    }
    println!(
        "  pipeline {} ({monitors} monitor sink(s)); JSON at /api/streams, metrics at /metrics",
        args.file.display()
    );

    let (done_tx, done_rx) = mpsc::channel();
    let options = RunOptions {
        workers: args.workers,
        progress: false,
        metrics: Some(metrics),
        ..RunOptions::default()
    };
    let run_hub = hub.clone();
    std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            run_hub.set_status(RunStatus::Running);
            let ok = match runtime::run(&graph, &options) {
                Ok(summary) => {
                    if let Some(note) = summary.dropped_note() {
                        eprintln!("{note}");
                    }
                    for line in &summary.sink_lines {
                        eprintln!("{line}");
                    }
                    eprintln!(
                        "pipeline finished: {} streams, {} samples, {} beats in {:.2} s{}; still serving the page",
                        summary.streams,
                        summary.samples,
                        summary.beats,
                        summary.seconds,
                        if summary.skipped.is_empty() {
                            String::new()
                        } else {
                            format!(", {} stream(s) failed and were left out", summary.skipped.len())
                        }
                    );
                    run_hub.set_status(RunStatus::Finished);
                    true
                }
                Err(e) => {
                    eprintln!("error: the pipeline failed: {e:#}\nstill serving the page");
                    run_hub.set_status(RunStatus::Failed(format!("{e:#}")));
                    false
                }
            };
            let _ = done_tx.send(ok);
        })
        .context("cannot start the pipeline's thread")?;

    let Some(seconds) = args.exit_after else {
        loop {
            std::thread::park();
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut outcome = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if outcome.is_some() {
            std::thread::sleep(left);
            break;
        }
        match done_rx.recv_timeout(left) {
            Ok(ok) => outcome = Some(ok),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => outcome = Some(false),
        }
    }
    server.stop();
    match outcome {
        Some(true) => Ok(ExitCode::SUCCESS),
        Some(false) => Ok(ExitCode::FAILURE),
        None => {
            eprintln!("--exit-after {seconds} s: stopped while the pipeline was still running");
            Ok(ExitCode::SUCCESS)
        }
    }
}
