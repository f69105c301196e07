//! The chunk-level steps give the same output whether a record is fed whole or in
//! chunks of any size, and the segmenter cuts the right windows.

mod common;

use common::{record, split, synthetic_ecg};
use ecgflow_operators::filter::{Band, Bandpass, FilterError, FilterMode, Sos, SosFilter};
use ecgflow_operators::rpeaks::{RPeakDetector, RPeakMethod};
use ecgflow_operators::segment::Segmenter;
use ecgflow_operators::{Annotation, Beat, Chunk};

const SIZES: [usize; 4] = [1, 7, 1000, usize::MAX];

fn two_lead_record(fs: f64, seconds: f64) -> (Chunk, Vec<u64>) {
    let (x, peaks) = synthetic_ecg(fs, seconds, 50.0, 150.0, 0.03, 11);
    let mut chunk = record(fs, &x, &peaks);
    chunk.leads.push("V1".into());
    chunk.samples.push(x.iter().map(|v| -0.5 * v).collect());
    (chunk, peaks)
}

/// Runs `process` over the chunks and then `finish`, collecting everything.
fn run<S, T>(
    step: &mut S,
    chunks: Vec<Chunk>,
    process: impl Fn(&mut S, Chunk) -> Vec<T>,
    finish: impl Fn(&mut S) -> Vec<T>,
) -> Vec<T> {
    let mut out: Vec<T> = chunks.into_iter().flat_map(|c| process(step, c)).collect();
    out.extend(finish(step));
    out
}

#[test]
fn causal_bandpass_is_chunking_invariant_and_keeps_attachments() {
    let (rec, _) = two_lead_record(360.0, 20.0);
    let mut reference = None;
    for size in SIZES {
        let mut bp = Bandpass::new(0.5, 40.0, 2, FilterMode::Causal, 360.0, 2).unwrap();
        let chunks = split(&rec, size.min(rec.len()));
        let n = chunks.len();
        let out = run(&mut bp, chunks, |s, c| s.process(c), |s| s.finish());
        assert_eq!(out.len(), n, "one chunk out per chunk in");
        let samples: Vec<Vec<f32>> = (0..2)
            .map(|l| out.iter().flat_map(|c| c.samples[l].clone()).collect())
            .collect();
        let annotations: Vec<Annotation> = out.iter().flat_map(|c| c.annotations.clone()).collect();
        assert_eq!(annotations, rec.annotations);
        match &reference {
            None => reference = Some(samples),
            Some(r) => assert_eq!(&samples, r, "chunk size {size}"),
        }
    }
    // Lead 1 is lead 0 times -0.5, and the filter is linear.
    let r = reference.unwrap();
    for (a, b) in r[0].iter().zip(&r[1]) {
        assert!((-0.5 * a - b).abs() < 1e-5);
    }
}

#[test]
fn zero_phase_bandpass_emits_the_whole_record_at_finish() {
    let (rec, _) = two_lead_record(360.0, 10.0);
    let sos = Sos::butterworth(2, Band::Bandpass(0.5, 40.0), 360.0).unwrap();
    let x: Vec<f64> = rec.samples[0].iter().map(|&v| v as f64).collect();
    let want: Vec<f32> = sos.filtfilt(&x).iter().map(|&v| v as f32).collect();
    for size in SIZES {
        let mut bp = Bandpass::new(0.5, 40.0, 2, FilterMode::ZeroPhase, 360.0, 2).unwrap();
        for c in split(&rec, size.min(rec.len())) {
            assert!(bp.process(c).is_empty());
        }
        let out = bp.finish();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start, 0);
        assert_eq!(out[0].samples[0], want, "chunk size {size}");
        assert_eq!(out[0].annotations, rec.annotations);
    }
}

#[test]
fn notch_and_baseline_remove_what_they_should() {
    use std::f64::consts::PI;
    let fs = 360.0;
    let tone = |f: f64| -> Vec<f32> { (0..3600).map(|i| (2.0 * PI * f * i as f64 / fs).sin() as f32).collect() };
    let rms_tail = |c: &Chunk| {
        let s = &c.samples[0][1800..];
        (s.iter().map(|v| (v * v) as f64).sum::<f64>() / s.len() as f64).sqrt()
    };
    let mut notch = SosFilter::notch(50.0, FilterMode::Causal, fs, 1).unwrap();
    let out = notch.process(Chunk::new("s", fs, 0, vec!["I".into()], vec![tone(50.0)]));
    assert!(rms_tail(&out[0]) < 0.01);
    let mut notch = SosFilter::notch(50.0, FilterMode::Causal, fs, 1).unwrap();
    let out = notch.process(Chunk::new("s", fs, 0, vec!["I".into()], vec![tone(10.0)]));
    assert!(rms_tail(&out[0]) > 0.69);
    let mut baseline = SosFilter::baseline(FilterMode::ZeroPhase, fs, 1).unwrap();
    baseline.process(Chunk::new("s", fs, 0, vec!["I".into()], vec![tone(0.1)]));
    assert!(rms_tail(&baseline.finish()[0]) < 0.05);
}

#[test]
fn filter_errors_name_the_value() {
    let err = |r: Result<Bandpass, FilterError>| r.unwrap_err().to_string();
    let e = err(Bandpass::new(0.5, 180.0, 2, FilterMode::Causal, 360.0, 1));
    assert!(e.contains("high_hz = 180") && e.contains("Nyquist"), "{e}");
    let e = err(Bandpass::new(40.0, 20.0, 2, FilterMode::Causal, 360.0, 1));
    assert!(e.contains("low_hz = 40") && e.contains("high_hz = 20"), "{e}");
    let e = err(Bandpass::new(-1.0, 20.0, 2, FilterMode::Causal, 360.0, 1));
    assert!(e.contains("low_hz = -1"), "{e}");
    let e = err(Bandpass::new(0.5, 40.0, 0, FilterMode::Causal, 360.0, 1));
    assert!(e.contains("order = 0"), "{e}");
    let e = err(Bandpass::new(0.5, 40.0, 2, FilterMode::Causal, 0.0, 1));
    assert!(e.contains("fs = 0"), "{e}");
    assert!(Sos::notch(50.0, 0.0, 360.0).is_err());
}

#[test]
fn segmenter_cuts_exact_windows_and_drops_incomplete_ones() {
    let fs = 100.0;
    let ramp: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    let neg: Vec<f32> = ramp.iter().map(|v| -v).collect();
    let mut rec = Chunk::new("r", fs, 0, vec!["a".into(), "b".into()], vec![ramp, neg]);
    rec.rpeaks = vec![50, 300, 600, 990];
    rec.annotations = vec![
        Annotation {
            sample: 290,
            symbol: "+".into(),
        },
        Annotation {
            sample: 310,
            symbol: "V".into(),
        },
        Annotation {
            sample: 620,
            symbol: "N".into(),
        },
        Annotation {
            sample: 700,
            symbol: "A".into(),
        },
    ];
    for size in SIZES {
        let mut seg = Segmenter::new(90, 168);
        let beats = run(
            &mut seg,
            split(&rec, size.min(1000)),
            |s, c| s.process(&c),
            |s| s.finish(),
        );
        assert_eq!(seg.dropped(), 2, "50 starts before the stream, 990 never completes");
        assert_eq!(beats.iter().map(|b| b.sample).collect::<Vec<_>>(), [300, 600]);
        let b = &beats[0];
        assert_eq!(b.window.len(), 2 * 259);
        assert_eq!(b.window[0], 210.0);
        assert_eq!(b.window[90], 300.0);
        assert_eq!(b.window[258], 468.0);
        assert_eq!(b.window[259], -210.0);
        assert_eq!(b.rr_prev, Some(2.5));
        assert_eq!(b.rr_next, Some(3.0));
        assert_eq!(b.rr_local, Some(2.5));
        assert_eq!(b.symbol.as_deref(), Some("V"), "nearest beat annotation, '+' ignored");
        let b = &beats[1];
        assert_eq!(b.rr_next, Some(3.9));
        assert_eq!(b.rr_local, Some(2.75));
        assert_eq!(b.symbol, None, "620 is 200 ms away, beyond 150 ms");
    }
}

#[test]
fn detector_then_segmenter_streams_like_batch() {
    let fs = 360.0;
    let (rec, peaks) = two_lead_record(fs, 30.0);
    for method in RPeakMethod::ALL {
        let mut reference: Option<(Vec<Beat>, u64)> = None;
        for size in SIZES {
            let mut det = RPeakDetector::new(method, fs, 0).unwrap();
            let mut seg = Segmenter::new(90, 168).with_max_delay(det.delay_samples());
            let mut beats = Vec::new();
            for c in split(&rec, size.min(rec.len())) {
                for c in det.process(c) {
                    beats.extend(seg.process(&c));
                }
            }
            for c in det.finish() {
                beats.extend(seg.process(&c));
            }
            beats.extend(seg.finish());
            let got = (beats, seg.dropped());
            match &reference {
                None => {
                    // Every true beat but those too close to the ends is cut and labelled.
                    let inner = peaks.iter().filter(|&&p| p >= 90 && p + 168 < rec.len() as u64);
                    assert!(got.0.len() >= inner.count());
                    assert!(got.0.iter().all(|b| b.symbol.as_deref() == Some("N")));
                    assert!(got.0.iter().all(|b| b.window.len() == 2 * 259));
                    reference = Some(got);
                }
                Some(r) => assert_eq!(&got, r, "{method:?} chunk size {size}"),
            }
        }
    }
}

/// Leads off (NaN samples) must not poison a causal filter: the gap comes out as NaN and
/// the output afterwards equals a filter started fresh on the samples after the gap.
#[test]
fn causal_bandpass_recovers_after_nan_samples() {
    let fs = 360.0;
    let signal: Vec<f32> = (0..2000).map(|i| (i as f32 * 0.05).sin() + 0.3).collect();
    let mut with_gap = signal.clone();
    with_gap[500..700].fill(f32::NAN);
    let mut filter = Bandpass::new(0.5, 40.0, 2, FilterMode::Causal, fs, 1).unwrap();
    let out = filter.process(Chunk::new("s", fs, 0, vec!["a".into()], vec![with_gap]));
    let out = &out[0].samples[0];
    assert!(out[500..700].iter().all(|v| v.is_nan()));
    let mut fresh = Bandpass::new(0.5, 40.0, 2, FilterMode::Causal, fs, 1).unwrap();
    let expected = fresh.process(Chunk::new("s", fs, 700, vec!["a".into()], vec![signal[700..].to_vec()]));
    assert_eq!(&out[700..], &expected[0].samples[0][..]);
}
