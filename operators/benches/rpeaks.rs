//! R-peak detection throughput: the detector's own 5-15 Hz band-pass + detection
//! (`ecgflow_operators::rpeaks::detect`), one thread, over MIT-BIH lead MLII (the first
//! lead for 102 and 104) held in memory. File reading is never timed.
//!
//! ```text
//! cargo bench -p ecgflow-operators --bench rpeaks
//! ```
//!
//! It first prints a one-shot timing over all 48 records per method (each record whole,
//! one pass after one warm-up pass, like NeuroKit2's per-record timing in
//! `benches/python/rpeaks_neurokit.py`), then criterion measures 6 records per method
//! with throughput in samples. Data: `$ECGFLOW_DATA/mitdb`, default
//! `../shared/data/mitdb` beside the workspace. Without the data it falls back to
//! synthetic ECG (`SyntheticEcg`, 48 streams of 30 min at 360 Hz) and says so.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ecgflow_datasets::wfdb::RecordReader;
use ecgflow_operators::rpeaks::{detect, RPeakMethod};
use ecgflow_operators::synthetic::{SyntheticConfig, SyntheticEcg};

/// Records timed by the criterion loop (a mix of clean, noisy and ectopic-rich ones).
const CRITERION_RECORDS: [&str; 6] = ["100", "105", "108", "119", "203", "208"];

/// One signal: name, sampling rate, samples.
struct Signal {
    name: String,
    fs: f64,
    x: Vec<f32>,
}

/// All 48 MIT-BIH records (MLII, or lead 0), or synthetic ECG when the data is absent;
/// the flag says which.
fn load() -> (Vec<Signal>, bool) {
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let dir = ecgflow_datasets::data_dir(&fallback).join("mitdb");
    if dir.join("100.hea").exists() {
        let signals = ecgflow_datasets::mitdb::ALL.iter().map(|r| read(&dir, r)).collect();
        return (signals, true);
    }
    let config = SyntheticConfig {
        duration_s: 1805.0,
        ..SyntheticConfig::default()
    };
    let signals = (0..48)
        .map(|i| {
            let mut s = SyntheticEcg::new(&config, i).expect("synthetic config");
            let fs = s.fs();
            let mut x = Vec::new();
            while let Some(c) = s.next_chunk(1 << 16) {
                x.extend_from_slice(&c.samples[0]);
            }
            Signal {
                name: SyntheticEcg::stream_name(i),
                fs,
                x,
            }
        })
        .collect();
    (signals, false)
}

/// Lead MLII of `record`, or its first lead when it has none (102, 104).
fn read(dir: &Path, record: &str) -> Signal {
    let mut reader = RecordReader::open(dir, record).unwrap_or_else(|e| panic!("{record}: {e}"));
    let lead = reader.header().signal_index("MLII").unwrap_or(0);
    reader.select(&[lead]).expect("select lead");
    let fs = reader.header().fs;
    let mut x = Vec::new();
    while let Some(c) = reader.read_chunk(1 << 16).expect("read") {
        x.extend_from_slice(&c[0]);
    }
    Signal {
        name: record.to_string(),
        fs,
        x,
    }
}

/// Detects over every signal once; returns (seconds, samples, peaks found).
fn one_pass(method: RPeakMethod, signals: &[Signal]) -> (f64, usize, usize) {
    let (mut seconds, mut samples, mut peaks) = (0.0, 0, 0);
    for s in signals {
        let t = Instant::now();
        let found = detect(method, black_box(&s.x), s.fs).expect("detector");
        seconds += t.elapsed().as_secs_f64();
        samples += s.x.len();
        peaks += black_box(found).len();
    }
    (seconds, samples, peaks)
}

fn rpeaks(c: &mut Criterion) {
    let (signals, real) = load();
    let source = if real {
        "MIT-BIH, 48 records, lead MLII (first lead for 102, 104)"
    } else {
        "SYNTHETIC ECG (MIT-BIH data not found): 48 streams x 1805 s at 360 Hz"
    };
    println!("rpeaks bench data: {source}");
    for method in RPeakMethod::ALL {
        one_pass(method, &signals); // warm-up
        let (seconds, samples, peaks) = one_pass(method, &signals);
        println!(
            "one-shot {:<18} {} records, {samples} samples, {peaks} peaks in {seconds:.3} s = {:.1} M samples/s (band-pass + detection, 1 thread)",
            method.name(),
            signals.len(),
            samples as f64 / seconds / 1e6
        );
    }

    let subset: Vec<&Signal> = if real {
        signals
            .iter()
            .filter(|s| CRITERION_RECORDS.contains(&s.name.as_str()))
            .collect()
    } else {
        signals.iter().take(CRITERION_RECORDS.len()).collect()
    };
    let total: usize = subset.iter().map(|s| s.x.len()).sum();
    let mut group = c.benchmark_group(if real { "rpeaks_mitdb6" } else { "rpeaks_synthetic6" });
    group.throughput(Throughput::Elements(total as u64));
    group.sample_size(10);
    for method in RPeakMethod::ALL {
        group.bench_function(method.name(), |b| {
            b.iter(|| {
                for s in &subset {
                    black_box(detect(method, black_box(&s.x), s.fs).expect("detector"));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rpeaks);
criterion_main!(benches);
