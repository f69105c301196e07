//! Where tract spends its time on an ONNX classifier: each node of the optimised plan timed
//! over many runs, summed by operator, the slowest nodes listed with the kernel tract chose.
//!
//! ```sh
//! cargo run --release -p ecgflow-operators --example tract_profile -- MODEL.onnx [LEN] [BATCH] [RUNS] [TOP]
//! ```
//!
//! The plan is optimised as `OnnxClassifier` optimises it (`models::tract::optimize`: its
//! rewrites, then tract's optimisation). `LEN` is the input length (the beat window plus any RR features; default 262, as
//! `resecanet-ds1`), `BATCH` the fixed batch the plan is made for (default 1, what
//! `OnnxClassifier` runs), `RUNS` the number of runs timed (default 2000), `TOP` the number of slowest nodes listed (default 20). One thread. The
//! figures are per input (per beat). Compare with onnxruntime's own profiler
//! (`SessionOptions.enable_profiling`) to see which operators differ.

use std::collections::HashMap;
use std::time::Instant;

use ecgflow_operators::models::tract::optimize;
use tract_onnx::prelude::*;

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() -> TractResult<()> {
    let path: String = arg(1, "models/resecanet-ds1.onnx".to_owned());
    let len: usize = arg(2, 262);
    let batch: usize = arg(3, 1);
    let runs: usize = arg(4, 2000);
    let top: usize = arg(5, 20);
    let model = tract_onnx::onnx()
        .model_for_path(&path)?
        .with_input_fact(0, f32::fact([batch, 1, len]).into())?
        .into_typed()?;
    let plan = optimize(model)?.into_runnable()?;
    let model = plan.model();
    let mut state = plan.spawn()?;
    let input: Tensor =
        tract_ndarray::Array3::<f32>::from_shape_fn((batch, 1, len), |(b, _, i)| ((i + b) as f32 * 0.1).sin()).into();

    let mut seconds: HashMap<usize, f64> = HashMap::new();
    let started = Instant::now();
    for _ in 0..runs {
        state.run_plan_with_eval(tvec!(input.clone().into()), |session, op_state, node, inputs| {
            let t = Instant::now();
            let outputs = tract_onnx::tract_core::plan::eval(session, op_state, node, inputs);
            *seconds.entry(node.id).or_default() += t.elapsed().as_secs_f64();
            outputs
        })?;
    }
    let per_input_ms = |s: f64| s / (runs * batch) as f64 * 1e3;
    let total: f64 = seconds.values().sum();
    println!(
        "{path}: {:.3} ms per input in all, {:.3} ms in the nodes, {} nodes, batch {batch}, {runs} runs",
        per_input_ms(started.elapsed().as_secs_f64()),
        per_input_ms(total),
        model.nodes().len()
    );

    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    for (&id, &s) in &seconds {
        let entry = by_op.entry(model.node(id).op.name().to_string()).or_default();
        entry.0 += s;
        entry.1 += 1;
    }
    let mut by_op: Vec<_> = by_op.into_iter().collect();
    by_op.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!("\nby operator:");
    for (op, (s, n)) in by_op {
        println!(
            "  {op:<32} {n:>3} nodes {:>8.4} ms {:>5.1} %",
            per_input_ms(s),
            s / total * 100.0
        );
    }

    let mut nodes: Vec<_> = seconds.into_iter().collect();
    nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("\nslowest nodes (output shape; what tract says of the node):");
    for (id, s) in nodes.into_iter().take(top) {
        let node = model.node(id);
        let dims: Vec<String> = model
            .outlet_fact(OutletId::new(id, 0))?
            .shape
            .iter()
            .map(|d| d.to_string())
            .collect();
        let shape = dims.join(", ");
        let info = node.op.info()?.join("; ");
        println!(
            "  {:>8.4} ms {:<24} {:<28} [{shape}] {info}",
            per_input_ms(s),
            node.name,
            node.op.name()
        );
    }
    Ok(())
}
