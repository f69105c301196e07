//! The progress bar of long batch runs: streams done and samples per second, drawn on
//! standard error only when it is a terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runtime::RunStats;

pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a thread that redraws the bar from the run's counters a few times a second.
    pub fn start(stats: Arc<RunStats>, total_samples: Option<u64>, cluster: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let bar = match total_samples.filter(|_| !cluster) {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = if bar.length().is_some() {
            "{spinner} [{elapsed_precise}] {bar:30} {percent:>3}% {msg} (eta {eta})"
        } else {
            "{spinner} [{elapsed_precise}] {msg}"
        };
        bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            loop {
                // Samples of signal and whole beats of beat tables.
                let samples = stats.counts.samples.load(Ordering::Relaxed) + stats.source_beats.load(Ordering::Relaxed);
                let rate = samples as f64 / started.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(samples);
                bar.set_message(format!(
                    "streams {}/{}, {} samples, {}/s",
                    stats.streams_done.load(Ordering::Relaxed),
                    stats.streams_total.load(Ordering::Relaxed),
                    human(samples as f64),
                    human(rate)
                ));
                if flag.load(Ordering::Relaxed) {
                    bar.finish_and_clear();
                    return;
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// 12 345 678 → "12.3M".
pub fn human(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}
