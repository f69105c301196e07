//! Times training steps (forward, backward, Adam) of the 2D networks on random inputs, to
//! choose widths that train in the time available:
//!
//! ```text
//! cargo run --release -p ecgflow-operators --example train_speed_2d                  # the standard set
//! cargo run --release -p ecgflow-operators --example train_speed_2d -- vgg16 8,16,32,64,64 [batch] [steps]
//! cargo run --release -p ecgflow-operators --example train_speed_2d -- vgg16_cwt 8,16,32,64,64 [batch] [steps]
//! cargo run --release -p ecgflow-operators --example train_speed_2d -- resdscnet 32,64,128,256,512 [batch] [steps]
//! ```
//!
//! VGG16 runs on 38 × 259 scalograms (convolutions per stage 2, 2, 3, 3, 3, dense 128 and
//! 64, batch norm) with cross-entropy, 64 per batch by default (`vgg16_cwt`: on raw 259-sample
//! beats through the study's CWT front end); ResDSCNet on 224 × 224 images
//! (one block per stage) with binary cross-entropy on five labels, 16 per batch by default.
//! The first step (allocation, warm-up) is reported apart from the mean of the others.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ecgflow_operators::models::cwt_layer::CwtFrontEnd;
use ecgflow_operators::models::{Architecture, Network, ResDscNetConfig, Vgg16Config};
use ecgflow_operators::rng::SplitMix64;

const CLASSES: usize = 5;

fn vgg16(widths: Vec<usize>) -> Architecture {
    Architecture::Vgg16(Vgg16Config {
        widths,
        dense: vec![128, 64],
        ..Vgg16Config::study(CLASSES)
    })
}

fn vgg16_cwt(widths: Vec<usize>) -> Architecture {
    let Architecture::Vgg16(config) = vgg16(widths) else {
        unreachable!()
    };
    Architecture::Vgg16(Vgg16Config {
        cwt: Some(CwtFrontEnd::study()),
        ..config
    })
}

fn resdscnet(widths: Vec<usize>) -> Architecture {
    Architecture::Resdscnet(ResDscNetConfig {
        widths,
        ..ResDscNetConfig::study(CLASSES)
    })
}

/// Seconds of the first step and the mean seconds of the following `steps − 1`.
fn time_steps(architecture: &Architecture, batch: usize, steps: usize) -> (f64, f64) {
    architecture.validate().expect("a valid architecture");
    let device = Device::flex().autodiff();
    device.seed(1);
    let mut network = Network::init(architecture, &device);
    let mut optimizer = AdamConfig::new().init();
    let multi_label = matches!(architecture, Architecture::Resdscnet(_));
    let cross_entropy = CrossEntropyLossConfig::new().init(&device);
    let binary = BinaryCrossEntropyLossConfig::new().with_logits(true).init(&device);
    let len = architecture.input_len();
    let mut rng = SplitMix64::new(2);
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let inputs: Vec<f32> = (0..batch * len).map(|_| rng.normal() as f32).collect();
        let started = Instant::now();
        let x = Tensor::<3>::from_data(TensorData::new(inputs, [batch, 1, len]), &device);
        let logits = network.forward(x);
        let loss = if multi_label {
            let labels: Vec<i64> = (0..batch * CLASSES).map(|_| (rng.uniform() < 0.3) as i64).collect();
            let targets = Tensor::<2, Int>::from_data(TensorData::new(labels, [batch, CLASSES]), &device);
            binary.forward(logits, targets)
        } else {
            let labels: Vec<i64> = (0..batch).map(|i| (i % CLASSES) as i64).collect();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
            cross_entropy.forward(logits, targets)
        };
        // Read the loss, as the trainer does for its progress report.
        let _ = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &network);
        network = optimizer.step(1e-3, network, grads);
        times.push(started.elapsed().as_secs_f64());
    }
    let rest = &times[1.min(times.len() - 1)..];
    (times[0], rest.iter().sum::<f64>() / rest.len() as f64)
}

fn report(name: &str, architecture: &Architecture, batch: usize, steps: usize) {
    let params = Network::init(architecture, &Device::flex()).num_params();
    let (first, mean) = time_steps(architecture, batch, steps);
    println!(
        "{name} {:?}, {params} parameters, batch {batch}: first step {first:.2} s, then {mean:.2} s/step ({:.1} examples/s)",
        match architecture {
            Architecture::Vgg16(c) => &c.widths,
            Architecture::Resdscnet(c) => &c.widths,
            Architecture::Resecanet(c) => &c.widths,
        },
        batch as f64 / mean
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let widths = |i: usize, default: &str| -> Vec<usize> {
        args.get(i)
            .map_or(default, String::as_str)
            .split(',')
            .map(|w| w.parse().expect("widths: comma-separated integers"))
            .collect()
    };
    let number = |i: usize, default: usize| -> usize {
        args.get(i)
            .map_or(default, |s| s.parse().expect("batch and steps: integers"))
    };
    match args.first().map(String::as_str) {
        None => {
            for w in ["8,16,32,64,64", "16,32,64,128,128"] {
                let w: Vec<usize> = w.split(',').map(|v| v.parse().unwrap()).collect();
                report("vgg16", &vgg16(w), 64, 4);
            }
            for w in ["16,32,64,128,256", "32,64,128,256,512"] {
                let w: Vec<usize> = w.split(',').map(|v| v.parse().unwrap()).collect();
                report("resdscnet", &resdscnet(w), 16, 4);
            }
        }
        Some("vgg16") => report(
            "vgg16",
            &vgg16(widths(1, "64,128,256,512,512")),
            number(2, 64),
            number(3, 5),
        ),
        Some("vgg16_cwt") => report(
            "vgg16_cwt",
            &vgg16_cwt(widths(1, "64,128,256,512,512")),
            number(2, 64),
            number(3, 5),
        ),
        Some("resdscnet") => report(
            "resdscnet",
            &resdscnet(widths(1, "32,64,128,256,512")),
            number(2, 16),
            number(3, 5),
        ),
        Some(other) => {
            eprintln!("unknown network {other}: vgg16, vgg16_cwt or resdscnet");
            std::process::exit(2);
        }
    }
}
