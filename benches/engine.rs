//! Engine overhead: a trivial graph (synthetic source → pass-through → null sink) run by the
//! engine with 1 and 2 workers, against the same operators called in a plain loop.
//!
//!   cargo bench --bench engine
//!   ECGFLOW_BENCH_SAMPLES=100000000 cargo bench --bench engine   # the 100 M-sample figure

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ecgflow::runtime::{run, RunOptions};
use ecgflow_operators::synthetic::{SyntheticConfig, SyntheticEcg};

const STREAMS: usize = 4;
const CHUNK: usize = 3600;

fn total_samples() -> u64 {
    std::env::var("ECGFLOW_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8_000_000)
}

fn config(per_stream: u64) -> SyntheticConfig {
    SyntheticConfig {
        duration_s: per_stream as f64 / 360.0,
        ..SyntheticConfig::default()
    }
}

/// The same work without the engine: read every stream, pass each chunk on, drop it.
fn plain_loop(per_stream: u64) -> u64 {
    let config = config(per_stream);
    let mut samples = 0;
    for i in 0..STREAMS {
        let mut ecg = SyntheticEcg::new(&config, i).expect("valid config");
        while let Some(chunk) = ecg.next_chunk(CHUNK) {
            let passed = black_box(chunk);
            samples += passed.len() as u64;
        }
    }
    samples
}

fn engine(c: &mut Criterion) {
    let per_stream = total_samples() / STREAMS as u64;
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/passthrough.toml");
    let overrides = vec![
        format!("sources.ecg.streams={STREAMS}"),
        format!("sources.ecg.duration_s={}", per_stream as f64 / 360.0),
        format!("sources.ecg.chunk_size={CHUNK}"),
    ];
    let graph = ecgflow::load_pipeline(&pipeline, &overrides).expect("valid pipeline");

    let mut group = c.benchmark_group("passthrough");
    group.throughput(Throughput::Elements(per_stream * STREAMS as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("plain_loop", |b| b.iter(|| plain_loop(per_stream)));
    for workers in [1, 2] {
        let options = RunOptions {
            workers,
            ..RunOptions::default()
        };
        group.bench_function(format!("engine_{workers}_workers"), |b| {
            b.iter(|| run(&graph, &options).expect("run succeeds").samples)
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
