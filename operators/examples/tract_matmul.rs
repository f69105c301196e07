//! How fast tract multiplies f32 matrices of a given shape on one thread: the product of a
//! constant `[M, K]` (a convolution's weights) by an input `[K, N]` (its im2col), or with
//! `TRANSPOSED` 1 of an input `[K, M]` by a constant `[K, N]`, the shapes of tract's im2col
//! convolutions. Prints the plan (which operand tract packs at run time, the kernel its cost
//! model picks), the time of each node and the rate.
//!
//! ```sh
//! cargo run --release -p ecgflow-operators --example tract_matmul -- M K N [RUNS] [TRANSPOSED]
//! ```
//!
//! On the AVX-512 machine of the README's measurements: `16 112 259` (ResECANet's first
//! block) ≈ 18 µs, 52 GFLOP/s, of which 6 µs pack the input; the same layer over 16 beats
//! at once, `16 112 4144`, 31 GFLOP/s (packing the 1.8 MB input takes 210 µs): folding the
//! batch into `N` makes tract's products slower per beat, not faster. `128 896 32` (the last
//! block) ≈ 63 µs, 115 GFLOP/s.
use std::time::Instant;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::axes::AxesMapping;
use tract_onnx::tract_core::ops::einsum::EinSum;

fn main() -> TractResult<()> {
    let args: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (m, k, n) = (args[0], args[1], args[2]);
    let runs = args.get(3).copied().unwrap_or(2000);
    let transposed = args.get(4).copied().unwrap_or(0) == 1;
    let mut model = TypedModel::default();
    // transposed: input x [k, m] (positions contiguous, as a conv's im2col), constant b [k, n]
    let x = model.add_source("x", f32::fact(if transposed { [k, m] } else { [k, n] }))?;
    let (rows, cols) = if transposed { (k, n) } else { (m, k) };
    let a = tract_ndarray::Array2::<f32>::from_shape_fn((rows, cols), |(i, j)| ((i * 7 + j) as f32 * 0.01).sin());
    let a = model.add_const("a", a.into_tensor())?;
    let y = if transposed {
        let axes = AxesMapping::from_strs(&["km", "kn"], &["mn"])?;
        model.wire_node("mm", EinSum::new(axes, f32::datum_type()), &[x, a])?
    } else {
        let axes = AxesMapping::from_strs(&["mk", "kn"], &["mn"])?;
        model.wire_node("mm", EinSum::new(axes, f32::datum_type()), &[a, x])?
    };
    model.select_output_outlets(&y)?;
    let plan = model.into_optimized()?.into_runnable()?;
    for node in plan.model().nodes() {
        println!("{} {} {}", node.name, node.op.name(), node.op.info()?.join("; "));
    }
    let cols = if transposed { m } else { n };
    let input: Tensor =
        tract_ndarray::Array2::<f32>::from_shape_fn((k, cols), |(i, j)| ((i + j) as f32 * 0.1).sin()).into();
    let mut state = plan.spawn()?;
    for _ in 0..50 {
        state.run(tvec!(input.clone().into()))?;
    }
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..runs {
            state.run(tvec!(input.clone().into()))?;
        }
        best = best.min(t.elapsed().as_secs_f64() / runs as f64);
    }
    let mut per_node = vec![0f64; plan.model().nodes().len()];
    for _ in 0..runs {
        state.run_plan_with_eval(tvec!(input.clone().into()), |session, op_state, node, inputs| {
            let t = Instant::now();
            let outputs = tract_onnx::tract_core::plan::eval(session, op_state, node, inputs);
            per_node[node.id] += t.elapsed().as_secs_f64();
            outputs
        })?;
    }
    for (id, s) in per_node.iter().enumerate() {
        println!("  {:<10} {:.2} us", plan.model().node(id).name, s / runs as f64 * 1e6);
    }
    let flop = 2.0 * (m * k * n) as f64;
    println!(
        "m {m} k {k} n {n}: {:.2} us, {:.1} GFLOP/s",
        best * 1e6,
        flop / best / 1e9
    );
    Ok(())
}
