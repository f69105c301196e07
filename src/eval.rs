//! `ecgflow eval rpeaks`: beat-by-beat scoring of an R-peak detector against reference beat
//! annotations over whole records, as ANSI/AAMI EC57 and PhysioNet's bxb do (a detection
//! matches at most one reference beat within the tolerance; non-beat annotations are
//! ignored).
//!
//! JSON report keys: `method`, `tolerance_ms`, `lead`, `records` (list of `record`, `lead`,
//! `tp`, `fp`, `fn`, `se`, `ppv`, `f1`), `gross` (`tp`, `fp`, `fn`, `se`, `ppv`, `f1` over
//! all records), `seconds` (wall time of detection alone, summed over records), `samples`.
//! Rates are fractions in [0, 1] (null when undefined).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};
use ecgflow_datasets::annotations::{is_beat, read_annotations, write_annotations, Annotation};
use ecgflow_datasets::wfdb::RecordReader;
use ecgflow_operators::rpeaks::{detect, match_beats, MatchCounts, RPeakMethod};
use serde_json::json;

use crate::components::sources::record_list;

#[derive(clap::Args, Debug, Clone)]
pub struct RpeaksArgs {
    /// Directory of WFDB records with reference beat annotations (e.g. $ECGFLOW_DATA/mitdb).
    #[arg(long)]
    pub db: PathBuf,
    /// Records: names and MIT-BIH sets, e.g. "100,101", "DS2", "all,-paced"; "all" reads RECORDS.
    #[arg(long, default_value = "all")]
    pub records: String,
    /// Lead to detect on, by its header name; records without it use their first lead.
    #[arg(long, default_value = "MLII")]
    pub lead: String,
    /// Detection method.
    #[arg(long, default_value = "pan_tompkins")]
    pub method: String,
    /// Matching window in milliseconds.
    #[arg(long, default_value_t = 150.0)]
    pub tolerance_ms: f64,
    /// Reference annotation file extension.
    #[arg(long, default_value = "atr")]
    pub annotator: String,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the detected peaks as WFDB annotation files RECORD.qrs into this directory.
    #[arg(long)]
    pub write_qrs: Option<PathBuf>,
    /// Records evaluated in parallel.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

/// One record's result.
#[derive(Clone, Debug)]
pub struct RecordScore {
    pub record: String,
    pub lead: String,
    pub counts: MatchCounts,
    pub samples: u64,
    pub seconds: f64,
}

fn rate(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

fn counts_json(c: &MatchCounts) -> serde_json::Value {
    json!({
        "tp": c.tp, "fp": c.fp, "fn": c.fn_,
        "se": rate(c.sensitivity()), "ppv": rate(c.positive_predictivity()), "f1": rate(c.f1()),
    })
}

/// Scores one record: reads the lead, detects, matches.
pub fn score_record(args: &RpeaksArgs, method: RPeakMethod, record: &str) -> anyhow::Result<RecordScore> {
    let mut reader = RecordReader::open(&args.db, record)?;
    let header = reader.header().clone();
    let lead = header.signal_index(&args.lead).unwrap_or(0);
    reader.select(&[lead])?;
    let mut signal = Vec::with_capacity(header.n_samples.unwrap_or(0) as usize);
    while let Some(chunk) = reader.read_chunk(1 << 16)? {
        signal.extend_from_slice(&chunk[0]);
    }
    let annotation_path = args.db.join(format!("{record}.{}", args.annotator));
    let reference: Vec<u64> = read_annotations(&annotation_path)?
        .into_iter()
        .filter(|a| is_beat(&a.symbol))
        .map(|a| a.sample)
        .collect();

    let started = Instant::now();
    let detected = detect(method, &signal, header.fs).with_context(|| format!("record {record}"))?;
    let seconds = started.elapsed().as_secs_f64();

    if let Some(dir) = &args.write_qrs {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let anns: Vec<Annotation> = detected.iter().map(|&s| Annotation::new(s, "N")).collect();
        write_annotations(&dir.join(format!("{record}.qrs")), &anns)?;
    }
    let tolerance = (args.tolerance_ms * header.fs / 1000.0).round() as u64;
    Ok(RecordScore {
        record: record.to_owned(),
        lead: header.signals[lead].description.clone(),
        counts: match_beats(&reference, &detected, tolerance),
        samples: signal.len() as u64,
        seconds,
    })
}

/// Runs the evaluation, prints the table, and writes the JSON report if asked.
pub fn rpeaks(args: &RpeaksArgs) -> anyhow::Result<()> {
    let Some(method) = RPeakMethod::from_name(&args.method) else {
        let known: Vec<&str> = RPeakMethod::ALL.iter().map(|m| m.name()).collect();
        bail!("unknown method {:?} (known: {})", args.method, known.join(", "));
    };
    if !args.tolerance_ms.is_finite() || args.tolerance_ms <= 0.0 {
        bail!("--tolerance-ms must be positive, got {}", args.tolerance_ms);
    }
    let records = record_list(&args.db, &args.records)?;
    let results: Mutex<Vec<anyhow::Result<RecordScore>>> = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..args.workers.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(record) = records.get(i) else { break };
                // The errors of `score_record` name the record or its file already.
                let result = score_record(args, method, record);
                results.lock().expect("no panics while holding the lock").push(result);
            });
        }
    });
    let mut scores = Vec::new();
    for result in results.into_inner().expect("threads joined") {
        scores.push(result?);
    }
    scores.sort_by(|a, b| a.record.cmp(&b.record));

    let mut gross = MatchCounts::default();
    let (mut samples, mut seconds) = (0u64, 0.0f64);
    println!(
        "{:<8} {:<6} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8}",
        "record", "lead", "tp", "fp", "fn", "Se %", "+P %", "F1 %"
    );
    for s in &scores {
        let c = &s.counts;
        println!(
            "{:<8} {:<6} {:>7} {:>6} {:>6} {:>8.2} {:>8.2} {:>8.2}",
            s.record,
            s.lead,
            c.tp,
            c.fp,
            c.fn_,
            100.0 * c.sensitivity(),
            100.0 * c.positive_predictivity(),
            100.0 * c.f1()
        );
        gross.tp += c.tp;
        gross.fp += c.fp;
        gross.fn_ += c.fn_;
        samples += s.samples;
        seconds += s.seconds;
    }
    println!(
        "{:<15} {:>7} {:>6} {:>6} {:>8.3} {:>8.3} {:>8.3}",
        format!("gross ({})", scores.len()),
        gross.tp,
        gross.fp,
        gross.fn_,
        100.0 * gross.sensitivity(),
        100.0 * gross.positive_predictivity(),
        100.0 * gross.f1()
    );
    println!(
        "method {}, tolerance {} ms, detection {:.3} s for {} samples ({:.1} M samples/s)",
        method.name(),
        args.tolerance_ms,
        seconds,
        samples,
        samples as f64 / seconds.max(1e-12) / 1e6
    );
    if let Some(path) = &args.json {
        let report = json!({
            "method": method.name(),
            "tolerance_ms": args.tolerance_ms,
            "lead": args.lead,
            "records": scores.iter().map(|s| {
                let mut v = counts_json(&s.counts);
                v["record"] = json!(s.record);
                v["lead"] = json!(s.lead);
                v
            }).collect::<Vec<_>>(),
            "gross": counts_json(&gross),
            "seconds": seconds,
            "samples": samples,
        });
        let (file, handle) = crate::atomic_file::AtomicFile::create(path)?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(handle), &report)?;
        file.commit()?;
    }
    Ok(())
}
