//! Release-mode cost of SMOTE on a MIT-BIH-sized minority class (7 000 beats × 259
//! samples, to be doubled) next to an untouched majority class:
//! `cargo test --release -p ecgflow-operators --test smote_cost -- --ignored --nocapture`.

use ecgflow_operators::rng::SplitMix64;
use ecgflow_operators::smote::Smote;

#[test]
#[ignore]
fn smote_minority_class_cost() {
    let (dim, minority, majority) = (259, 7_000, 14_000);
    let mut rng = SplitMix64::new(1);
    let features: Vec<f32> = (0..(minority + majority) * dim).map(|_| rng.normal() as f32).collect();
    let labels: Vec<usize> = (0..minority + majority).map(|i| usize::from(i < minority)).collect();
    let t0 = std::time::Instant::now();
    let (_, out) = Smote::default().resample(&features, dim, &labels).unwrap();
    println!(
        "SMOTE k=5: {minority} x {dim} minority class to {majority}: {:.2} s ({} samples out)",
        t0.elapsed().as_secs_f64(),
        out.len()
    );
}
