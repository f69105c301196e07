//! The R-peak detectors on synthetic ECGs with known R peaks: accuracy, delay bound, streaming.

mod common;

use common::{record, split, synthetic_ecg};
use ecgflow_operators::rpeaks::{detect, match_beats, RPeakDetector, RPeakMethod};

#[test]
fn detectors_find_beats_from_40_to_180_bpm() {
    for (fs, seed, method) in [(360.0, 1), (500.0, 2)]
        .into_iter()
        .flat_map(|(fs, seed)| RPeakMethod::ALL.map(|m| (fs, seed, m)))
    {
        let (x, truth) = synthetic_ecg(fs, 80.0, 40.0, 180.0, 0.08, seed);
        let found = detect(method, &x, fs).unwrap();
        let tol = (0.150 * fs) as u64;
        let m = match_beats(&truth, &found, tol);
        println!(
            "{method:?} fs {fs}: {m:?} Se {} +P {}",
            m.sensitivity(),
            m.positive_predictivity()
        );
        assert!(m.sensitivity() > 0.99, "fs {fs}: {m:?}");
        // Hamilton-Tompkins' linear (|derivative|) feature lets strong white noise
        // (0.08 mV) at 40 bpm through a few times more than PT's squared one: a known
        // weakness, measured at +P 0.954 here; the consensus, which keeps the beats of
        // either detector, inherits it (+P 0.961).
        let ppv_floor = match method {
            RPeakMethod::PanTompkins => 0.99,
            _ => 0.95,
        };
        assert!(m.positive_predictivity() > ppv_floor, "fs {fs}: {m:?}");
        // Refined to the R wave itself: within 10 ms for nearly all beats.
        let close = truth
            .iter()
            .filter(|&&t| found.iter().any(|&f| f.abs_diff(t) as f64 <= 0.010 * fs))
            .count();
        assert!(
            close as f64 >= 0.99 * truth.len() as f64,
            "fs {fs}: {close}/{}",
            truth.len()
        );
    }
}

#[test]
fn peaks_come_within_the_delay_bound_and_do_not_depend_on_chunking() {
    let fs = 360.0;
    let (x, _) = synthetic_ecg(fs, 40.0, 50.0, 150.0, 0.03, 3);
    for method in RPeakMethod::ALL {
        let whole = detect(method, &x, fs).unwrap();
        assert!(!whole.is_empty());
        for size in [1, 7, 1000, x.len()] {
            let mut det = RPeakDetector::new(method, fs, 0).unwrap();
            let d = det.delay_samples();
            let mut got = Vec::new();
            for chunk in split(&record(fs, &x, &[]), size) {
                let end = chunk.end();
                let out = det.process(chunk).remove(0);
                for &p in &out.rpeaks {
                    // Reported no later than the chunk holding sample p + D.
                    assert!(end <= p + d + size as u64, "peak {p} reported at {end}, D {d}");
                }
                got.extend(out.rpeaks);
            }
            let tail = det.finish();
            assert_eq!(tail.len(), 1);
            assert_eq!(tail[0].start, x.len() as u64);
            assert!(tail[0].is_empty());
            got.extend(&tail[0].rpeaks);
            assert_eq!(got, whole, "{method:?} chunk size {size}");
        }
    }
}

#[test]
fn method_names_round_trip() {
    for m in RPeakMethod::ALL {
        assert_eq!(RPeakMethod::from_name(m.name()), Some(m));
    }
    assert_eq!(RPeakMethod::PanTompkins.name(), "pan_tompkins");
    assert_eq!(RPeakMethod::HamiltonTompkins.name(), "hamilton_tompkins");
    assert_eq!(RPeakMethod::from_name("nope"), None);
}

#[test]
fn match_beats_pairs_one_to_one_in_time_order() {
    let m = match_beats(&[100, 200, 300, 400], &[102, 150, 205, 299, 500], 10);
    assert_eq!((m.tp, m.fp, m.fn_), (3, 2, 1));
    // The closer of two candidates wins.
    let m = match_beats(&[100], &[95, 99], 10);
    assert_eq!((m.tp, m.fp, m.fn_), (1, 1, 0));
    let m = match_beats(&[95, 100], &[99], 10);
    assert_eq!((m.tp, m.fp, m.fn_), (1, 0, 1));
    assert!((m.sensitivity() - 0.5).abs() < 1e-12);
    assert!((m.positive_predictivity() - 1.0).abs() < 1e-12);
    assert!((m.f1() - 2.0 / 3.0).abs() < 1e-12);
}
