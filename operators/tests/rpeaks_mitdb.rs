//! Regression floors of the R-peak detectors on a few real MIT-BIH records (lead MLII,
//! whole records, 150 ms, scored like `bxb`). Skipped, with a note, when the data
//! directory is absent. The full 48-record evaluation is the example `rpeaks_mitdb`:
//! `cargo run --release -p ecgflow-operators --example rpeaks_mitdb`.

use std::path::Path;

use ecgflow_datasets::{annotations, mitdb};
use ecgflow_operators::rpeaks::{detect, match_beats, MatchCounts, RPeakMethod};

/// (record, method, Se floor, +P floor): a little below what was measured (PT 203: Se
/// 0.9849 +P 0.9963, 207: 0.9271 0.9904; HT 203: 0.9849 0.9953, 207: 0.9597 0.9925).
/// 203 (multiform PVCs, noise) and 207 (ventricular flutter) are the hardest records.
const FLOORS: &[(&str, RPeakMethod, f64, f64)] = &[
    ("100", RPeakMethod::PanTompkins, 0.999, 0.999),
    ("101", RPeakMethod::PanTompkins, 0.998, 0.996),
    ("105", RPeakMethod::PanTompkins, 0.992, 0.985),
    ("119", RPeakMethod::PanTompkins, 0.998, 0.998),
    ("203", RPeakMethod::PanTompkins, 0.980, 0.994),
    ("207", RPeakMethod::PanTompkins, 0.920, 0.988),
    ("208", RPeakMethod::PanTompkins, 0.990, 0.997),
    ("100", RPeakMethod::HamiltonTompkins, 0.999, 0.999),
    ("101", RPeakMethod::HamiltonTompkins, 0.998, 0.996),
    ("105", RPeakMethod::HamiltonTompkins, 0.995, 0.978),
    ("119", RPeakMethod::HamiltonTompkins, 0.998, 0.998),
    ("203", RPeakMethod::HamiltonTompkins, 0.980, 0.993),
    ("207", RPeakMethod::HamiltonTompkins, 0.955, 0.990),
    ("208", RPeakMethod::HamiltonTompkins, 0.992, 0.997),
];

#[test]
fn detectors_keep_their_accuracy_on_mitdb_records() {
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let dir = ecgflow_datasets::data_dir(&fallback).join("mitdb");
    if !dir.join("100.hea").exists() {
        println!("skipped: no MIT-BIH records in {}", dir.display());
        return;
    }
    let mut failures = Vec::new();
    for &(record, method, se, ppv) in FLOORS {
        let (fs, x) = mitdb::read_lead(&dir, record, "MLII").unwrap();
        let reference: Vec<u64> = mitdb::read_reference(&dir, record)
            .unwrap()
            .into_iter()
            .filter(annotations::Annotation::is_beat)
            .map(|a| a.sample)
            .collect();
        let found = detect(method, &x, fs).unwrap();
        let m: MatchCounts = match_beats(&reference, &found, (0.150 * fs).round() as u64);
        println!(
            "{record} {}: {m:?} Se {:.4} +P {:.4}",
            method.name(),
            m.sensitivity(),
            m.positive_predictivity()
        );
        if m.sensitivity() < se || m.positive_predictivity() < ppv {
            failures.push(format!(
                "{record} {}: {m:?} below Se {se} +P {ppv}",
                method.name()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
