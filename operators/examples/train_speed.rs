//! Times training steps of ResECANet widths on random beats, to choose a width that trains
//! in the time available: `cargo run --release -p ecgflow-operators --example train_speed
//! -- 16,32,64,128 [steps]`.

use ecgflow_operators::models::{Architecture, ResEcaNetConfig};
use ecgflow_operators::rng::SplitMix64;
use ecgflow_operators::train::{fit, Dataset, Quiet, TrainSettings};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let widths: Vec<usize> = args
        .get(1)
        .map_or("32,64,128,256,512", String::as_str)
        .split(',')
        .map(|w| w.parse().expect("widths: comma-separated integers"))
        .collect();
    let steps: usize = args.get(2).map_or(20, |s| s.parse().expect("steps: an integer"));
    let config = ResEcaNetConfig {
        widths,
        ..ResEcaNetConfig::study(5)
    };
    let mut rng = SplitMix64::new(1);
    let mut data = Dataset::new(config.input_len());
    for i in 0..64 * steps {
        let window: Vec<f32> = (0..config.input_len()).map(|_| rng.normal() as f32).collect();
        data.push(&window, i % 5, "p");
    }
    let valid = data.subset(&(0..64).collect::<Vec<_>>());
    let settings = TrainSettings {
        epochs: 1,
        patience: 0,
        ..TrainSettings::default()
    };
    let arch = Architecture::Resecanet(config.clone());
    let outcome = fit(&arch, &data, &valid, &settings, None, &mut Quiet).expect("training runs");
    let record = &outcome.history[0];
    println!(
        "widths {:?}: {} steps of 64 in {:.2} s: {:.1} ms/step, {:.0} beats/s",
        config.widths,
        record.steps,
        record.train_seconds,
        record.train_seconds * 1000.0 / record.steps as f64,
        record.examples_per_second
    );
}
