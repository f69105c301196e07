//! Inference speed of a trained beat classifier on one CPU thread: tract on the exported
//! ONNX file and, for comparison, burn on the same weights.
//!
//! ```sh
//! cargo run --release -p ecgflow-operators --example inference_speed -- [MODEL] [BEATS] [REPEATS]
//! ```
//!
//! `MODEL` names the model (NAME.json, with NAME.bpk and NAME.onnx beside it; default
//! `models/resecanet-ds1.json`). The inputs are `BEATS` (default 512) random beats of the
//! model's input length. Per-beat latency is the mean time of a call classifying one beat
//! (`predict(beat, 1)`, 200 calls); throughput is beats per second classifying all `BEATS`
//! beats at batch 1, 16, 64 and 256. Each figure is the best of `REPEATS` (default 5)
//! measurements, after a warm-up. Softmax is included, as in the engine. One thread: tract
//! runs its plan on the calling thread, and burn's rayon pool is limited to one thread
//! (`RAYON_NUM_THREADS=1`, set here unless already set). The load average is printed before
//! and after: on a shared machine it explains much of the spread between runs.
//! `benches/python/inference_onnxruntime.py` measures onnxruntime the same way. With
//! `INFERENCE_SPEED_TRACT_ONLY` set, burn is not measured (quicker tract/onnxruntime pairs).

use std::path::PathBuf;
use std::time::Instant;

use ecgflow_operators::models::tract::OnnxClassifier;
use ecgflow_operators::models::{model_paths, TrainedModel};
use ecgflow_operators::rng::SplitMix64;

const BATCHES: [usize; 4] = [1, 16, 64, 256];
const LATENCY_CALLS: usize = 200;

type Predict<'a> = Box<dyn Fn(&[f32], usize) -> Vec<Vec<f32>> + 'a>;

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The shortest of `repeats` timings of `f`, in seconds.
fn best_of(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..repeats)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn measure(name: &str, predict: &Predict, inputs: &[f32], input_len: usize, repeats: usize) {
    let beats = inputs.len() / input_len;
    let one = &inputs[..input_len];
    let latency = best_of(repeats, || {
        for _ in 0..LATENCY_CALLS {
            std::hint::black_box(predict(one, 1));
        }
    }) / LATENCY_CALLS as f64;
    println!("{name:<6} latency, 1 beat per call: {:>8.3} ms", latency * 1e3);
    for batch in BATCHES {
        let seconds = best_of(repeats, || {
            std::hint::black_box(predict(inputs, batch));
        });
        println!(
            "{name:<6} batch {batch:>3}: {:>9.0} beats/s ({:.3} ms per beat, {beats} beats in {:.3} s)",
            beats as f64 / seconds,
            seconds * 1e3 / beats as f64,
            seconds
        );
    }
}

fn main() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let args: Vec<String> = std::env::args().collect();
    let path = PathBuf::from(args.get(1).map_or("models/resecanet-ds1.json", String::as_str));
    let beats: usize = args.get(2).map_or(512, |s| s.parse().expect("BEATS: an integer"));
    let repeats: usize = args.get(3).map_or(5, |s| s.parse().expect("REPEATS: an integer"));
    let (_, card) = model_paths(&path);
    let onnx = card.with_extension("onnx");
    println!("load average before: {}", load_average());

    let start = Instant::now();
    let tract = OnnxClassifier::load(&onnx).unwrap_or_else(|e| panic!("{e}"));
    let tract_load = start.elapsed();
    let start = Instant::now();
    let burn = TrainedModel::open(&card).unwrap_or_else(|e| panic!("{e}"));
    let burn_load = start.elapsed();
    tract.check_card(&burn.card, &card).unwrap_or_else(|e| panic!("{e}"));
    let input_len = tract.input_len();
    println!(
        "model {} ({} classes, {input_len} values per beat): tract load + optimise {:.1} ms, burn load {:.1} ms",
        onnx.display(),
        tract.classes(),
        tract_load.as_secs_f64() * 1e3,
        burn_load.as_secs_f64() * 1e3
    );
    println!("{beats} random beats, best of {repeats}, one thread");

    let mut rng = SplitMix64::new(3);
    let inputs: Vec<f32> = (0..beats * input_len).map(|_| 0.3 * rng.normal() as f32).collect();
    let tract_predict: Predict = Box::new(|x, b| tract.predict(x, b).expect("tract runs"));
    let burn_predict: Predict = Box::new(|x, b| burn.predict(x, b).expect("burn runs"));
    let (a, b) = (tract_predict(&inputs, 64), burn_predict(&inputs, 64));
    let differ = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    println!("tract and burn probabilities differ by at most {differ:.2e}");
    measure("tract", &tract_predict, &inputs, input_len, repeats);
    if std::env::var_os("INFERENCE_SPEED_TRACT_ONLY").is_none() {
        measure("burn", &burn_predict, &inputs, input_len, repeats);
    }
    println!("load average after: {}", load_average());
}
