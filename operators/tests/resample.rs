//! Sampling-rate conversion: chunking invariance, pass-band fidelity, stop-band
//! attenuation, lengths, annotation mapping and bad input.

use std::f64::consts::PI;

use ecgflow_operators::resample::{resample, ResampleError, Resampler};
use ecgflow_operators::{Annotation, Chunk};

fn sine(n: usize, fs: f64, f: f64, phase: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (2.0 * PI * f * i as f64 / fs + phase).sin() as f32)
        .collect()
}

/// Feeds `leads` (equal lengths) starting at absolute sample `start` in chunks of `size`,
/// with annotations at `marks`; returns the concatenated output leads, the output chunks'
/// annotations and R peaks.
fn run(
    r: &mut Resampler,
    leads: &[Vec<f32>],
    start: u64,
    size: usize,
    marks: &[u64],
) -> (Vec<Vec<f32>>, Vec<Annotation>, Vec<u64>) {
    let n = leads[0].len();
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < n {
        let end = (at + size).min(n);
        let mut c = Chunk::new(
            "rec",
            500.0,
            start + at as u64,
            vec!["I".into(), "II".into()][..leads.len()].to_vec(),
            leads.iter().map(|l| l[at..end].to_vec()).collect(),
        );
        let range = c.start..c.end();
        c.annotations = marks
            .iter()
            .filter(|m| range.contains(m))
            .map(|&m| Annotation {
                sample: m,
                symbol: "N".into(),
            })
            .collect();
        c.rpeaks = marks.iter().copied().filter(|m| range.contains(m)).collect();
        chunks.extend(r.process(c));
        at = end;
    }
    chunks.extend(r.finish());
    let mut out = vec![Vec::new(); leads.len()];
    let (mut anns, mut peaks) = (Vec::new(), Vec::new());
    let mut next = None;
    for c in chunks {
        if let Some(next) = next {
            assert_eq!(c.start, next, "output chunks are contiguous");
        }
        next = Some(c.end());
        assert_eq!(c.fs, r.to_hz());
        for (o, l) in out.iter_mut().zip(&c.samples) {
            o.extend_from_slice(l);
        }
        anns.extend(c.annotations);
        peaks.extend(c.rpeaks);
    }
    (out, anns, peaks)
}

#[test]
fn chunked_output_is_identical_to_whole() {
    let a: Vec<f32> = (0..2500)
        .map(|i| ((i as f32) * 0.05).sin() + ((i * i) as f32 * 0.001).cos() * 0.3 + 0.7)
        .collect();
    let b: Vec<f32> = a.iter().map(|v| -2.0 * v + 0.1).collect();
    let marks = [0, 3, 500, 1001, 2499];
    for (from, to) in [(500.0, 360.0), (100.0, 360.0), (360.0, 250.0)] {
        let mut r = Resampler::new(from, to, 2).unwrap();
        let mut whole = None;
        for size in [usize::MAX, 1, 7, 1000] {
            let mut got = run(&mut r, &[a.clone(), b.clone()], 40, size, &marks);
            got.1.sort_by_key(|a| a.sample);
            match &whole {
                None => whole = Some(got),
                Some(w) => assert!(&got == w, "{from}->{to} chunk size {size}"),
            }
        }
    }
}

#[test]
fn annotations_and_rpeaks_map_to_the_new_rate() {
    let x = vec![0.0f32; 3000];
    let marks = [0, 1, 499, 1000, 2999];
    let mut r = Resampler::new(500.0, 360.0, 1).unwrap();
    let (out, anns, peaks) = run(&mut r, &[x], 0, 333, &marks);
    let want: Vec<u64> = marks
        .iter()
        .map(|&m| (m as f64 * 360.0 / 500.0).round() as u64)
        .collect();
    assert_eq!(anns.iter().map(|a| a.sample).collect::<Vec<_>>(), want);
    assert_eq!(peaks, want);
    assert_eq!(out[0].len(), 2160);
}

#[test]
fn pass_band_sines_keep_amplitude_and_phase_within_1_percent() {
    for (from, to, f) in [
        (500.0, 360.0, 40.0),
        (500.0, 360.0, 140.0),
        (100.0, 360.0, 10.0),
        (100.0, 360.0, 39.0),
        (360.0, 250.0, 95.0),
        (360.0, 250.0, 1.0),
    ] {
        let n = (8.0 * from) as usize;
        let y = resample(&sine(n, from, f, 0.4), from, to).unwrap();
        let want = sine(y.len(), to, f, 0.4);
        // Away from the edges (the signal is extended with its edge values there).
        let edge = (0.5 * to) as usize;
        let err = y[edge..y.len() - edge]
            .iter()
            .zip(&want[edge..])
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("{from}->{to} Hz, {f} Hz tone: max error {err:.2e}");
        assert!(err < 0.01, "{from}->{to} Hz, {f} Hz tone: max error {err}");
    }
}

#[test]
fn tones_above_the_new_nyquist_are_attenuated_more_than_40_db() {
    for (from, to, f) in [(500.0, 360.0, 185.0), (500.0, 360.0, 240.0), (360.0, 250.0, 130.0)] {
        let n = (8.0 * from) as usize;
        let y = resample(&sine(n, from, f, 0.0), from, to).unwrap();
        let edge = to as usize;
        let peak = y[edge..y.len() - edge].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let db = 20.0 * (peak as f64).log10();
        eprintln!("{from}->{to}: {f} Hz tone at {db:.1} dB");
        assert!(db < -40.0, "{from}->{to}: {f} Hz tone at {db:.1} dB");
    }
    // Upsampling: the images of a 45 Hz tone sampled at 100 Hz (55 Hz, 145 Hz, ...) are gone.
    let y = resample(&sine(800, 100.0, 45.0, 0.0), 100.0, 360.0).unwrap();
    let residual: Vec<f64> = {
        // Project out the 45 Hz tone (least squares on sin/cos) and look at what is left.
        let w = 2.0 * PI * 45.0 / 360.0;
        let seg = &y[360..y.len() - 360];
        let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &v) in seg.iter().enumerate() {
            let (s, c) = ((w * i as f64).sin(), (w * i as f64).cos());
            ss += s * s;
            sc += s * c;
            cc += c * c;
            ys += v as f64 * s;
            yc += v as f64 * c;
        }
        let det = ss * cc - sc * sc;
        let (a, b) = ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
        seg.iter()
            .enumerate()
            .map(|(i, &v)| v as f64 - a * (w * i as f64).sin() - b * (w * i as f64).cos())
            .collect()
    };
    let peak = residual.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    eprintln!("100->360: images of a 45 Hz tone at {:.1} dB", 20.0 * peak.log10());
    assert!(20.0 * peak.log10() < -40.0, "image residual {peak}");
}

#[test]
fn lengths_are_round_n_times_ratio_within_one() {
    for (from, to) in [(500.0, 360.0), (100.0, 360.0), (360.0, 250.0), (1000.0, 100.0)] {
        for n in [1usize, 2, 3, 10, 259, 1001] {
            let y = resample(&vec![1.0; n], from, to).unwrap();
            let want = (n as f64 * to / from).round() as i64;
            assert!(
                (y.len() as i64 - want).abs() <= 1,
                "{from}->{to} n={n}: {} vs {want}",
                y.len()
            );
            // A constant stays exactly constant (each phase has DC gain 1, edges extended).
            assert!(y.iter().all(|v| (v - 1.0).abs() < 1e-5));
        }
    }
    assert!(resample(&[], 500.0, 360.0).unwrap().is_empty());
}

#[test]
fn ratio_delay_and_errors() {
    let r = Resampler::new(500.0, 360.0, 1).unwrap();
    assert_eq!(r.ratio(), (18, 25));
    assert!(r.delay_samples() > 0 && r.delay_samples() < 40, "{}", r.delay_samples());
    assert_eq!(Resampler::new(100.0, 360.0, 1).unwrap().ratio(), (18, 5));
    assert_eq!(Resampler::new(360.0, 250.0, 1).unwrap().ratio(), (25, 36));
    for bad in [0.0, -5.0, f64::NAN, f64::INFINITY, 0.4] {
        assert!(matches!(
            Resampler::new(bad, 360.0, 1),
            Err(ResampleError::Rate { name: "from_hz", .. })
        ));
        assert!(matches!(
            resample(&[1.0], 360.0, bad),
            Err(ResampleError::Rate { name: "to_hz", .. })
        ));
    }
    assert_eq!(Resampler::new(360.0, 250.0, 0).unwrap_err(), ResampleError::Leads);
    assert!(matches!(
        Resampler::new(10007.0, 10009.0, 1),
        Err(ResampleError::Ratio {
            up: 10009,
            down: 10007,
            ..
        })
    ));
}

#[test]
fn bad_samples_and_ragged_chunks_do_not_panic() {
    let mut r = Resampler::new(500.0, 360.0, 2).unwrap();
    let mut x = vec![0.5f32; 600];
    x[300] = f32::NAN;
    // One lead only (the second is held at its last value), then a ragged chunk.
    let mut out = r.process(Chunk::new("s", 500.0, 0, vec!["I".into()], vec![x]));
    out.extend(r.process(Chunk::new(
        "s",
        500.0,
        600,
        vec!["I".into(), "II".into(), "III".into()],
        vec![vec![1.0; 10], vec![2.0; 3], vec![3.0; 10]],
    )));
    out.extend(r.process(Chunk::new("s", 500.0, 610, vec![], vec![])));
    out.extend(r.finish());
    let total: usize = out.iter().map(Chunk::len).sum();
    assert_eq!(total, (610 * 18usize).div_ceil(25));
    let lead0: Vec<f32> = out.iter().flat_map(|c| c.samples[0].clone()).collect();
    assert!(lead0[..150].iter().all(|v| (v - 0.5).abs() < 1e-5));
    assert!(lead0[200..232].iter().any(|v| v.is_nan()));
    assert!(lead0[260..400].iter().all(|v| v.is_finite()));
    assert!(out.iter().all(|c| c.samples.len() == 2 && c.leads.len() == 2));
    // Finished: the resampler is ready for a new stream.
    assert!(r.finish().is_empty());
}
