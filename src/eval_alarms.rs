//! `ecgflow eval alarms`: scores the ventricular-run alarms of a monitoring run (its events
//! JSONL) against the runs of ventricular beats in the records' reference annotations.
//!
//! A reference run is 3 or more consecutive beat annotations of class V (AAMI: `V`, `E`);
//! it can be known at its third beat. It is detected when an alarm starts within
//! `tolerance` of that beat. An alarm start that lies within no reference run (widened by
//! `tolerance` on both sides) is a false alarm.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ecgflow_datasets::annotations::{is_beat, read_annotations};
use serde::Serialize;

/// Arguments of `ecgflow eval alarms`.
#[derive(Args, Debug)]
pub struct AlarmsArgs {
    /// The events JSONL written by a monitoring pipeline (e.g. out/monitor_events.jsonl).
    #[arg(long)]
    pub events: PathBuf,
    /// The WFDB directory holding the records' reference annotations (.atr).
    #[arg(long)]
    pub db: PathBuf,
    /// Seconds an alarm may come before or after the third beat of a run.
    #[arg(long, default_value_t = 2.0)]
    pub tolerance_s: f64,
    /// Consecutive ventricular beats that make a reference run.
    #[arg(long, default_value_t = 3)]
    pub run_length: usize,
    /// Write the report here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A run of ventricular beats in the reference annotations, in samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ReferenceRun {
    pub first: u64,
    /// The beat at which the run is a run (the `run_length`-th).
    pub known: u64,
    pub last: u64,
    pub beats: usize,
}

/// The score of one record, or of all of them together.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlarmScore {
    pub runs: usize,
    pub detected: usize,
    pub alarms: usize,
    pub false_alarms: usize,
    pub hours: f64,
    /// detected / runs (NaN without runs, written as null).
    pub sensitivity: Option<f64>,
    pub false_alarms_per_hour: Option<f64>,
}

impl AlarmScore {
    fn add(&mut self, other: &AlarmScore) {
        self.runs += other.runs;
        self.detected += other.detected;
        self.alarms += other.alarms;
        self.false_alarms += other.false_alarms;
        self.hours += other.hours;
        self.finish();
    }

    fn finish(&mut self) {
        self.sensitivity = (self.runs > 0).then(|| self.detected as f64 / self.runs as f64);
        self.false_alarms_per_hour = (self.hours > 0.0).then(|| self.false_alarms as f64 / self.hours);
    }
}

/// Runs of at least `run_length` consecutive ventricular beats among `beats` (beat
/// annotations in order: sample and symbol).
pub fn reference_runs(beats: &[(u64, String)], run_length: usize) -> Vec<ReferenceRun> {
    let mut runs = Vec::new();
    let mut current: Vec<u64> = Vec::new();
    let mut close = |current: &mut Vec<u64>| {
        if current.len() >= run_length.max(1) {
            runs.push(ReferenceRun {
                first: current[0],
                known: current[run_length.max(1) - 1],
                last: *current.last().expect("not empty"),
                beats: current.len(),
            });
        }
        current.clear();
    };
    for (sample, symbol) in beats {
        if matches!(symbol.as_str(), "V" | "E") {
            current.push(*sample);
        } else {
            close(&mut current);
        }
    }
    close(&mut current);
    runs
}

/// Scores alarm starts (samples) against reference runs over a record of `seconds`.
pub fn score(runs: &[ReferenceRun], alarm_starts: &[u64], fs: f64, tolerance_s: f64, seconds: f64) -> AlarmScore {
    let tol = (tolerance_s * fs).round() as u64;
    let detected = runs
        .iter()
        .filter(|r| alarm_starts.iter().any(|&a| a + tol >= r.known && a <= r.known + tol))
        .count();
    let false_alarms = alarm_starts
        .iter()
        .filter(|&&a| !runs.iter().any(|r| a + tol >= r.first && a <= r.last + tol))
        .count();
    let mut s = AlarmScore {
        runs: runs.len(),
        detected,
        alarms: alarm_starts.len(),
        false_alarms,
        hours: seconds / 3600.0,
        ..AlarmScore::default()
    };
    s.finish();
    s
}

/// The report of `ecgflow eval alarms`.
#[derive(Debug, Serialize)]
pub struct AlarmsReport {
    pub tolerance_s: f64,
    pub run_length: usize,
    pub per_record: BTreeMap<String, AlarmScore>,
    pub gross: AlarmScore,
}

/// Reads the ventricular-run alarm starts (samples) of each stream of an events JSONL;
/// every stream that started (a `start` line) is listed, with or without alarms.
fn alarm_starts(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u64>>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut streams: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let Some(stream) = v["stream"].as_str() else { continue };
        if v["kind"] == "start" {
            streams.entry(stream.to_owned()).or_default();
        }
        if v["kind"] == "event" && v["event"] == "ventricular_run" && v["phase"] == "start" {
            let sample = v["sample"]
                .as_u64()
                .with_context(|| format!("{} line {}: event without a sample", path.display(), i + 1))?;
            streams.entry(stream.to_owned()).or_default().push(sample);
        }
    }
    Ok(streams)
}

/// Scores an events file against the reference annotations of the streams it names
/// (a stream `RECORD-cK`, a copy of a record, is scored against RECORD).
pub fn evaluate(args: &AlarmsArgs) -> anyhow::Result<AlarmsReport> {
    let mut per_record = BTreeMap::new();
    let mut gross = AlarmScore::default();
    for (stream, starts) in alarm_starts(&args.events)? {
        let record = stream.split("-c").next().unwrap_or(&stream);
        let header = ecgflow_datasets::wfdb::Header::read(&args.db.join(format!("{record}.hea")))
            .with_context(|| format!("stream {stream}: no record {record} in {}", args.db.display()))?;
        let atr = args.db.join(format!("{record}.atr"));
        let beats: Vec<(u64, String)> = read_annotations(&atr)
            .with_context(|| format!("reading {}", atr.display()))?
            .into_iter()
            .filter(|a| is_beat(&a.symbol))
            .map(|a| (a.sample, a.symbol))
            .collect();
        let runs = reference_runs(&beats, args.run_length);
        let seconds = header.n_samples.unwrap_or(0) as f64 / header.fs;
        let s = score(&runs, &starts, header.fs, args.tolerance_s, seconds);
        gross.add(&s);
        per_record.insert(stream, s);
    }
    Ok(AlarmsReport {
        tolerance_s: args.tolerance_s,
        run_length: args.run_length,
        per_record,
        gross,
    })
}

/// `ecgflow eval alarms`: prints a table and optionally writes the JSON report.
pub fn alarms(args: &AlarmsArgs) -> anyhow::Result<AlarmsReport> {
    let report = evaluate(args)?;
    let pct = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{:.1}", v * 100.0));
    let rate = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "{:<10} {:>6} {:>9} {:>7} {:>7} {:>7} {:>8}",
        "record", "runs", "detected", "Se %", "alarms", "false", "FA/h"
    );
    let gross = "gross".to_owned();
    let rows = report.per_record.iter().chain(std::iter::once((&gross, &report.gross)));
    for (name, s) in rows {
        println!(
            "{:<10} {:>6} {:>9} {:>7} {:>7} {:>7} {:>8}",
            name,
            s.runs,
            s.detected,
            pct(s.sensitivity),
            s.alarms,
            s.false_alarms,
            rate(s.false_alarms_per_hour)
        );
    }
    if let Some(path) = &args.json {
        crate::reports::write_json(path, &report)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beats(symbols: &str) -> Vec<(u64, String)> {
        symbols
            .chars()
            .enumerate()
            .map(|(i, c)| (i as u64 * 100, c.to_string()))
            .collect()
    }

    #[test]
    fn runs_are_three_or_more_consecutive_ventricular_beats() {
        let runs = reference_runs(&beats("NVVNVVVNEVVVVN"), 3);
        assert_eq!(
            runs,
            [
                ReferenceRun {
                    first: 400,
                    known: 600,
                    last: 600,
                    beats: 3
                },
                ReferenceRun {
                    first: 800,
                    known: 1000,
                    last: 1200,
                    beats: 5
                }
            ]
        );
    }

    #[test]
    fn alarms_within_the_tolerance_detect_runs_and_others_are_false() {
        let runs = reference_runs(&beats("NNNNNVVVNNNNNNNNNNNNNNNNNNNNNNNNNNNVVVVN"), 3);
        // fs 100: tolerance 2 s = 200 samples. The first run is known at 700, the second at 3700.
        let s = score(&runs, &[850, 2000, 4200], 100.0, 2.0, 3600.0);
        assert_eq!((s.runs, s.detected, s.alarms, s.false_alarms), (2, 1, 3, 2));
        assert_eq!(s.sensitivity, Some(0.5));
        assert_eq!(s.false_alarms_per_hour, Some(2.0));
    }
}
