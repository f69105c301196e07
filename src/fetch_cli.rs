//! `ecgflow datasets fetch`: the command-line face of `ecgflow_datasets::fetch`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use ecgflow_datasets::fetch::{base_url, fetch as fetch_files, FetchEvent, FetchOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Downloads `database` into `dest`; exits 1 when any file failed (each is listed).
pub fn fetch(
    database: &str,
    dest: PathBuf,
    url: Option<String>,
    jobs: usize,
    only: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(u) => u,
        None => base_url(database)?.to_owned(),
    };
    let mut options = FetchOptions::new(url.clone(), dest.clone());
    options.jobs = jobs;
    options.only = (!only.is_empty()).then_some(only);
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let bytes = AtomicU64::new(0);
    let report = fetch_files(&options, &|event| match event {
        FetchEvent::Listed { files } => bar.set_length(files as u64),
        FetchEvent::Progress { bytes: n, .. } => {
            let total = bytes.fetch_add(n, Ordering::Relaxed) + n;
            bar.set_message(format!("{:.1} MB", total as f64 / 1e6));
        }
        FetchEvent::Done { .. } | FetchEvent::Skipped { .. } | FetchEvent::Failed { .. } => bar.inc(1),
        FetchEvent::Retrying { path, attempt, why } => {
            bar.println(format!("retrying {path} (attempt {attempt}): {why}"))
        }
        FetchEvent::Started { .. } => {}
    })?;
    bar.finish_and_clear();
    eprintln!(
        "{url} → {}: {} downloaded, {} already present and verified, {} failed ({:.1} MB received)",
        dest.display(),
        report.downloaded.len(),
        report.skipped.len(),
        report.failed.len(),
        report.bytes as f64 / 1e6
    );
    if report.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (path, why) in &report.failed {
        eprintln!("  failed: {path}: {why}");
    }
    Ok(ExitCode::FAILURE)
}
