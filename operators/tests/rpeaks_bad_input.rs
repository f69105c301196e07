//! R-peak detectors on bad input: gaps of NaN or infinite samples, flat lines, clipping,
//! low and high sampling rates, inverted polarity, missing leads. No panic, and the
//! documented behaviour.

mod common;

use common::{record, split, synthetic_ecg};
use ecgflow_operators::rpeaks::{detect, match_beats, RPeakDetector, RPeakError, RPeakMethod};
use ecgflow_operators::Chunk;

const FS: f64 = 360.0;

/// Peaks and gaps from feeding `x` in chunks of `size`.
fn stream(method: RPeakMethod, x: &[f32], size: usize) -> (Vec<u64>, Vec<std::ops::Range<u64>>) {
    let mut det = RPeakDetector::new(method, FS, 0).unwrap();
    let (mut peaks, mut gaps) = (Vec::new(), Vec::new());
    for c in split(&record(FS, x, &[]), size) {
        peaks.extend(det.process(c).remove(0).rpeaks);
        gaps.extend(det.take_gaps());
    }
    peaks.extend(det.finish().remove(0).rpeaks);
    gaps.extend(det.take_gaps());
    (peaks, gaps)
}

fn s(t: f64) -> u64 {
    (t * FS) as u64
}

#[test]
fn non_finite_samples_are_a_gap_after_which_thresholds_are_relearnt() {
    let (mut x, truth) = synthetic_ecg(FS, 60.0, 60.0, 100.0, 0.03, 21);
    for v in &mut x[s(20.0) as usize..s(23.0) as usize] {
        *v = f32::NAN;
    }
    x[s(40.0) as usize] = f32::INFINITY;
    x[s(40.0) as usize + 1] = f32::NEG_INFINITY;
    for method in RPeakMethod::ALL {
        let whole = detect(method, &x, FS).unwrap();
        for size in [1, 7, 1000, x.len()] {
            let (peaks, gaps) = stream(method, &x, size);
            assert_eq!(peaks, whole, "{method:?} chunk size {size}");
            assert_eq!(gaps, [s(20.0)..s(23.0), s(40.0)..s(40.0) + 2], "{method:?}");
        }
        assert!(
            !whole.iter().any(|&p| (s(20.0)..s(23.0)).contains(&p)),
            "no peak inside a gap"
        );
        // Every beat away from the gaps' edges is found again after re-learning.
        let away = |p: &u64| {
            let t = *p as f64 / FS;
            !(19.8..23.2).contains(&t) && !(39.8..40.2).contains(&t)
        };
        let truth: Vec<u64> = truth.iter().copied().filter(away).collect();
        let found: Vec<u64> = whole.iter().copied().filter(away).collect();
        let m = match_beats(&truth, &found, s(0.150));
        assert!(
            m.sensitivity() > 0.99 && m.positive_predictivity() > 0.99,
            "{method:?} {m:?}"
        );
    }
}

#[test]
fn a_flat_line_gives_no_peaks_and_detection_recovers() {
    let (mut x, truth) = synthetic_ecg(FS, 60.0, 60.0, 100.0, 0.03, 22);
    // Lead off for 10 s: the front end holds its last value.
    let hold = x[s(20.0) as usize];
    for v in &mut x[s(20.0) as usize..s(30.0) as usize] {
        *v = hold;
    }
    for method in RPeakMethod::ALL {
        let found = detect(method, &x, FS).unwrap();
        let inside = found.iter().filter(|&&p| (s(20.3)..s(30.0)).contains(&p)).count();
        assert_eq!(inside, 0, "{method:?}: peaks in the flat line");
        let after = |v: &[u64]| v.iter().copied().filter(|&p| p > s(31.0)).collect::<Vec<_>>();
        let m = match_beats(&after(&truth), &after(&found), s(0.150));
        assert!(
            m.sensitivity() > 0.98 && m.positive_predictivity() > 0.98,
            "{method:?} {m:?}"
        );
    }
}

#[test]
fn clipped_signal_is_still_detected() {
    let (x, truth) = synthetic_ecg(FS, 60.0, 50.0, 150.0, 0.03, 23);
    // A front end saturating at +-0.6 mV: R waves (about 1 mV) are cut flat.
    let clipped: Vec<f32> = x.iter().map(|v| v.clamp(-0.6, 0.6)).collect();
    for method in RPeakMethod::ALL {
        let found = detect(method, &clipped, FS).unwrap();
        let m = match_beats(&truth, &found, s(0.150));
        assert!(
            m.sensitivity() > 0.99 && m.positive_predictivity() > 0.99,
            "{method:?} {m:?}"
        );
    }
}

#[test]
fn sampling_rates_from_100_to_1000_hz() {
    for fs in [100.0, 128.0, 250.0, 360.0, 500.0, 1000.0] {
        let (x, truth) = synthetic_ecg(fs, 60.0, 50.0, 150.0, 0.03, 24);
        for method in RPeakMethod::ALL {
            let found = detect(method, &x, fs).unwrap();
            let m = match_beats(&truth, &found, (0.150 * fs) as u64);
            assert!(
                m.sensitivity() > 0.99 && m.positive_predictivity() > 0.99,
                "{method:?} fs {fs}: {m:?}"
            );
        }
    }
    for fs in [0.0, 49.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            RPeakDetector::new(RPeakMethod::PanTompkins, fs, 0),
            Err(RPeakError::SampleRate(_))
        ));
    }
}

#[test]
fn inverted_qrs_is_found_at_its_extremum() {
    let (x, truth) = synthetic_ecg(FS, 60.0, 50.0, 150.0, 0.03, 25);
    let inverted: Vec<f32> = x.iter().map(|v| -v).collect();
    for method in RPeakMethod::ALL {
        let found = detect(method, &inverted, FS).unwrap();
        let m = match_beats(&truth, &found, s(0.150));
        assert!(
            m.sensitivity() > 0.99 && m.positive_predictivity() > 0.99,
            "{method:?} {m:?}"
        );
        let close = truth
            .iter()
            .filter(|&&t| found.iter().any(|&f| f.abs_diff(t) <= s(0.010)))
            .count();
        assert!(close as f64 >= 0.99 * truth.len() as f64, "{method:?}");
    }
}

#[test]
fn a_missing_lead_or_a_discontinuity_is_an_error_and_a_gap_not_a_panic() {
    let (x, _) = synthetic_ecg(FS, 30.0, 60.0, 100.0, 0.03, 26);
    let mut det = RPeakDetector::new(RPeakMethod::PanTompkins, FS, 1).unwrap();
    let mut chunks = split(&record(FS, &x, &[]), 3600);
    // Lead 1 is there in every chunk but the second.
    for (i, c) in chunks.iter_mut().enumerate() {
        if i != 1 {
            c.leads.push("V1".into());
            c.samples.push(c.samples[0].clone());
        }
    }
    let mut peaks = Vec::new();
    for c in chunks {
        let out = det.process(c);
        assert_eq!(out.len(), 1);
        peaks.extend(out[0].rpeaks.iter().copied());
    }
    let errors = det.take_errors();
    assert!(
        matches!(
            errors.as_slice(),
            [RPeakError::MissingLead {
                lead: 1,
                leads: 1,
                start: 3600,
                len: 3600,
                ..
            }]
        ),
        "{errors:?}"
    );
    assert!(errors[0].to_string().contains("lead 1"));
    // A chunk starting past the expected sample: the missing span is a gap too.
    let late = Chunk::new(
        "rec",
        FS,
        x.len() as u64 + 100,
        vec!["a".into(), "b".into()],
        vec![vec![0.0; 10], vec![0.0; 10]],
    );
    det.process(late);
    assert!(matches!(
        det.take_errors().as_slice(),
        [RPeakError::Discontinuity { .. }]
    ));
    peaks.extend(det.finish().remove(0).rpeaks);
    assert_eq!(det.take_gaps(), [3600..7200, x.len() as u64..x.len() as u64 + 100]);
    assert!(!peaks.iter().any(|p| (3600..7200).contains(p)));
    assert!(peaks.windows(2).all(|w| w[0] < w[1]));
    assert!(peaks.len() > 20, "beats outside the gap are found: {}", peaks.len());
}
