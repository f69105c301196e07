//! Helpers shared by the integration tests: a synthetic ECG with known R peaks, and
//! splitting a record into chunks.

#![allow(dead_code)]

use ecgflow_operators::rng::SplitMix64;
use ecgflow_operators::{Annotation, Chunk};

/// A synthetic single-lead ECG in mV: Gaussian P, Q, R, S and T waves whose timing
/// scales with the RR interval, heart rate sweeping between `hr_min` and `hr_max` bpm
/// (period 40 s), 0.3 Hz baseline wander of 0.3 mV, 50 Hz interference of 0.05 mV and
/// white noise of `noise` mV. Returns the signal and the true R-peak sample indices.
pub fn synthetic_ecg(fs: f64, seconds: f64, hr_min: f64, hr_max: f64, noise: f64, seed: u64) -> (Vec<f32>, Vec<u64>) {
    use std::f64::consts::PI;
    let n = (seconds * fs) as usize;
    let mut rng = SplitMix64::new(seed);
    let mut x: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 / fs;
            0.3 * (2.0 * PI * 0.3 * t).sin() + 0.05 * (2.0 * PI * 50.0 * t).sin() + noise * rng.normal()
        })
        .collect();
    let mut peaks = Vec::new();
    let mut t = 0.6;
    while t < seconds - 0.6 {
        let hr = hr_min + (hr_max - hr_min) * 0.5 * (1.0 - (2.0 * PI * t / 40.0).cos());
        let rr = 60.0 / hr;
        let amp = 1.0 + 0.15 * rng.normal();
        // (offset s, width s, amplitude mV); QT shortens with the RR interval.
        let qt = 0.4 * rr.sqrt();
        let waves = [
            (-0.16 * rr.sqrt(), 0.025, 0.12),
            (-0.025, 0.008, -0.12 * amp),
            (0.0, 0.010, amp),
            (0.028, 0.009, -0.25 * amp),
            (qt - 0.08, 0.045, 0.3),
        ];
        for (offset, width, a) in waves {
            let centre = (t + offset) * fs;
            let w = width * fs;
            let lo = (centre - 5.0 * w).max(0.0) as usize;
            let hi = ((centre + 5.0 * w) as usize).min(n - 1);
            for (i, v) in x.iter_mut().enumerate().take(hi + 1).skip(lo) {
                let z = (i as f64 - centre) / w;
                *v += a * (-0.5 * z * z).exp();
            }
        }
        peaks.push((t * fs).round() as u64);
        t += rr;
    }
    (x.into_iter().map(|v| v as f32).collect(), peaks)
}

/// A one-lead chunk of the whole record, with `N` annotations at `peaks`.
pub fn record(fs: f64, signal: &[f32], peaks: &[u64]) -> Chunk {
    let mut chunk = Chunk::new("rec", fs, 0, vec!["MLII".into()], vec![signal.to_vec()]);
    chunk.annotations = peaks
        .iter()
        .map(|&p| Annotation {
            sample: p,
            symbol: "N".into(),
        })
        .collect();
    chunk
}

/// Splits a chunk into consecutive chunks of `size` samples, annotations and R peaks
/// going with the chunk whose span holds them (earlier R peaks go to the first chunk).
pub fn split(chunk: &Chunk, size: usize) -> Vec<Chunk> {
    let len = chunk.len();
    let mut out = Vec::new();
    let mut from = 0;
    while from < len {
        let to = (from + size).min(len);
        let start = chunk.start + from as u64;
        let end = chunk.start + to as u64;
        let first = from == 0;
        let mut part = Chunk::new(
            chunk.stream.clone(),
            chunk.fs,
            start,
            chunk.leads.clone(),
            chunk.samples.iter().map(|l| l[from..to].to_vec()).collect(),
        );
        part.annotations = chunk
            .annotations
            .iter()
            .filter(|a| a.sample >= start && a.sample < end)
            .cloned()
            .collect();
        part.rpeaks = chunk
            .rpeaks
            .iter()
            .copied()
            .filter(|&p| (first || p >= start) && p < end)
            .collect();
        out.push(part);
        from = to;
    }
    out
}
