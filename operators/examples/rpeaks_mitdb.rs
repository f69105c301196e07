//! Beat-by-beat evaluation of the R-peak detectors on the 48 MIT-BIH records, scored
//! like PhysioNet's `bxb` over whole records with a 150 ms window, and their speed.
//!
//! ```text
//! cargo run --release -p ecgflow-operators --example rpeaks_mitdb [-- METHOD... [--records LIST] [--misses]]
//! ```
//!
//! `--misses` also lists, per record, the missed reference beats (`FN` time s + symbol)
//! and the false detections (`FP` time s).
//!
//! Lead MLII (the first lead for 102 and 104); reference = the beat annotations of
//! `.atr`. Speed is band-pass + detection alone (`detect` over the whole record in
//! memory, single thread), not file reading. Data: `$ECGFLOW_DATA/mitdb`, default
//! `../shared/data/mitdb` beside the workspace.

use std::path::Path;
use std::time::Instant;

use ecgflow_datasets::{annotations, mitdb, wfdb::RecordReader};
use ecgflow_operators::rpeaks::{detect, match_beats, MatchCounts, RPeakDetector, RPeakMethod};

fn main() {
    let mut methods = Vec::new();
    let mut records = "all".to_string();
    let mut misses = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--records" {
            records = args.next().expect("--records LIST");
        } else if a == "--misses" {
            misses = true;
        } else {
            methods.push(RPeakMethod::from_name(&a).unwrap_or_else(|| panic!("unknown method {a}")));
        }
    }
    if methods.is_empty() {
        methods = RPeakMethod::ALL.to_vec();
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let dir = ecgflow_datasets::data_dir(&fallback).join("mitdb");
    let records = mitdb::record_set(&records).expect("record list");
    let data: Vec<Record> = records
        .iter()
        .map(|r| {
            let (fs, x) = read(&dir, r);
            let reference = mitdb::read_reference(&dir, r)
                .unwrap_or_else(|e| panic!("{r}: {e}"))
                .into_iter()
                .filter(annotations::Annotation::is_beat)
                .map(|a| (a.sample, a.symbol))
                .collect();
            (r.clone(), fs, x, reference)
        })
        .collect();
    for method in methods {
        println!("\n{} (tolerance 150 ms, whole records)", method.name());
        println!("record     ref     tp    fp    fn      Se%     +P%     F1%");
        let (mut all, mut nonpaced) = (MatchCounts::default(), MatchCounts::default());
        let (mut seconds, mut samples) = (0.0, 0usize);
        for (r, fs, x, reference) in &data {
            let t = Instant::now();
            let found = detect(method, x, *fs).expect("detector");
            seconds += t.elapsed().as_secs_f64();
            samples += x.len();
            let samples_ref: Vec<u64> = reference.iter().map(|r| r.0).collect();
            let tolerance = (0.150 * fs).round() as u64;
            let m = match_beats(&samples_ref, &found, tolerance);
            if misses {
                print_misses(reference, &found, tolerance, *fs);
            }
            println!("{r:>6} {:>7} {}", reference.len(), row(&m));
            all += m;
            if !mitdb::PACED.contains(&r.as_str()) {
                nonpaced += m;
            }
        }
        println!("gross  {:>7} {}", all.tp + all.fn_, row(&all));
        println!("nonpaced {:>5} {}", nonpaced.tp + nonpaced.fn_, row(&nonpaced));
        println!(
            "speed: {samples} samples in {seconds:.3} s = {:.1} M samples/s (band-pass + detection, 1 thread)",
            samples as f64 / seconds / 1e6
        );
        let delay = RPeakDetector::new(method, 360.0, 0).expect("detector").delay_samples();
        println!("delay bound: {delay} samples at 360 Hz ({:.3} s)", delay as f64 / 360.0);
    }
}

/// A record: name, sampling rate, lead samples, reference beats (sample, symbol).
type Record = (String, f64, Vec<f32>, Vec<(u64, String)>);

/// Lead MLII, or the first lead of records without one (102, 104).
fn read(dir: &Path, record: &str) -> (f64, Vec<f32>) {
    let mut reader = RecordReader::open(dir, record).unwrap_or_else(|e| panic!("{record}: {e}"));
    let lead = reader.header().signal_index("MLII").unwrap_or(0);
    reader.select(&[lead]).expect("select lead");
    let fs = reader.header().fs;
    let mut x = Vec::new();
    while let Some(c) = reader.read_chunk(1 << 16).expect("read") {
        x.extend_from_slice(&c[0]);
    }
    (fs, x)
}

/// Lists the unmatched reference beats (FN, with their symbol) and detections (FP), at
/// their time in seconds, by the same pairing as [`match_beats`].
fn print_misses(reference: &[(u64, String)], detected: &[u64], tolerance: u64, fs: f64) {
    let (mut i, mut j) = (0, 0);
    let mut line = Vec::new();
    while i < reference.len() || j < detected.len() {
        let (r, d) = (reference.get(i).map(|r| r.0), detected.get(j).copied());
        let (Some(r), Some(d)) = (r, d) else {
            if let Some(r) = r {
                line.push(format!("FN {:.2}{}", r as f64 / fs, reference[i].1));
                i += 1;
            } else {
                line.push(format!("FP {:.2}", detected[j] as f64 / fs));
                j += 1;
            }
            continue;
        };
        let dist = r.abs_diff(d);
        let better_ref = reference.get(i + 1).is_some_and(|r2| r2.0.abs_diff(d) < dist);
        let better_det = detected.get(j + 1).is_some_and(|&d2| d2.abs_diff(r) < dist);
        if dist <= tolerance && !(r <= d && better_ref) && !(d < r && better_det) {
            i += 1;
            j += 1;
        } else if r <= d {
            line.push(format!("FN {:.2}{}", r as f64 / fs, reference[i].1));
            i += 1;
        } else {
            line.push(format!("FP {:.2}", d as f64 / fs));
            j += 1;
        }
    }
    if !line.is_empty() {
        println!("    {}", line.join(" "));
    }
}

fn row(m: &MatchCounts) -> String {
    format!(
        "{:>6} {:>5} {:>5} {:>8.3} {:>7.3} {:>7.3}",
        m.tp,
        m.fp,
        m.fn_,
        100.0 * m.sensitivity(),
        100.0 * m.positive_predictivity(),
        100.0 * m.f1()
    )
}
