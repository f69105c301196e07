//! CWT throughput on the study's map: 259-sample beats at 38 scales, one thread.
//! Needs `[[bench]] name = "cwt" harness = false` in `operators/Cargo.toml`; run with
//! `cargo bench -p ecgflow-operators --bench cwt`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ecgflow_operators::cwt::{study_scales, Cwt, Wavelet};

/// A heartbeat-like shape (Gaussian P, Q, R, S and T waves), as in the fixture script.
fn beat(n: usize, r: f64) -> Vec<f32> {
    let waves = [
        (-72.0, 9.0, 0.15),
        (-8.0, 3.0, -0.12),
        (0.0, 4.0, 1.2),
        (9.0, 3.5, -0.3),
        (110.0, 18.0, 0.35),
    ];
    (0..n)
        .map(|t| {
            waves
                .iter()
                .map(|(offset, width, amp)| {
                    let z = (t as f64 - r - offset) / width;
                    amp * (-0.5 * z * z).exp()
                })
                .sum::<f64>() as f32
        })
        .collect()
}

fn cwt_study_map(c: &mut Criterion) {
    let count = 256;
    let beats: Vec<f32> = (0..count)
        .flat_map(|k| beat(259, 90.0).into_iter().map(move |v| v * (1.0 + k as f32 * 1e-3)))
        .collect();
    let mut group = c.benchmark_group("cwt_38x259");
    group.throughput(Throughput::Elements(count as u64));
    for wavelet in [Wavelet::MexicanHat, Wavelet::Morlet] {
        let mut cwt = Cwt::new(wavelet, &study_scales(), 259).expect("valid settings");
        let mut out = vec![0.0; count * cwt.map_len()];
        group.bench_function(wavelet.pywt_name(), |b| {
            b.iter(|| {
                cwt.transform_batch(black_box(&beats), &mut out).expect("sizes match");
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cwt_study_map);
criterion_main!(benches);
