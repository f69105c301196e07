// TEMPORARY scratch experiment (to be deleted).
use std::collections::HashMap;
use std::time::Instant;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

fn best_of(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..repeats)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> TractResult<()> {
    let path = std::env::args().nth(1).unwrap_or("models/resecanet-ds1.onnx".into());
    let mut model = tract_onnx::onnx().model_for_path(&path)?;
    let fact = model.input_fact(0)?.clone();
    let len = fact.shape.dim(2).unwrap().concretize().unwrap().to_i64()? as usize;
    let n = model.sym("N");
    model.set_input_fact(0, f32::fact(tract_onnx::tract_core::dims!(n, 1, len)).into())?;
    let typed = model.into_typed()?;
    let t = Instant::now();
    let decl = typed.clone().into_decluttered()?;
    println!("declutter {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let sym = typed.clone().into_optimized()?.into_runnable()?;
    println!("symbolic optimise {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let beats = 512;
    let inputs: Vec<f32> = (0..beats * len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let run = |plan: &Arc<TypedSimplePlan>, size: usize, spawn_each: bool| {
        let mut state = plan.spawn().unwrap();
        for part in inputs.chunks(size * len) {
            if part.len() != size * len {
                break;
            }
            if spawn_each {
                state = plan.spawn().unwrap();
            }
            let x = Tensor::from_shape(&[size, 1, len], part).unwrap();
            std::hint::black_box(state.run(tvec!(x.into_tvalue())).unwrap());
        }
    };
    if let Ok(ps) = std::env::var("PROFILE") {
        for size in ps.split(',').map(|x| x.parse::<usize>().unwrap()) {
            let subs: HashMap<Symbol, TDim> = [(n.clone(), TDim::Val(size as i64))].into();
            let conc = typed.set_symbols(&subs)?.into_optimized()?;
            if std::env::var("DUMP").is_ok() {
                for node in conc.eval_order()? {
                    let nd = conc.node(node);
                    println!("{} {} {:?}", nd.id, nd, conc.outlet_fact(OutletId::new(node, 0))?);
                }
            }
            let plan = conc.into_runnable()?;
            let mut state = plan.spawn()?;
            let mut times: HashMap<usize, (String, f64)> = HashMap::new();
            let reps = 4096 / size;
            let x = Tensor::from_shape(&[size, 1, len], &inputs[..size * len])?;
            let total = Instant::now();
            for _ in 0..reps {
                state.run_plan_with_eval(tvec!(x.clone().into_tvalue()), |ctx, st, node, inp| {
                    let t = Instant::now();
                    let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inp);
                    let e = times.entry(node.id).or_insert_with(|| (format!("{}", node.op().name()), 0.0));
                    e.1 += t.elapsed().as_secs_f64();
                    r
                })?;
            }
            let total = total.elapsed().as_secs_f64();
            let mut by_op: HashMap<String, f64> = HashMap::new();
            for (_, (name, t)) in &times {
                *by_op.entry(name.clone()).or_default() += t;
            }
            let mut v: Vec<_> = by_op.into_iter().collect();
            v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
            let beats = (reps * size) as f64;
            println!("size {size}: {:.0} beats/s total", beats / total);
            for (name, t) in v {
                println!("   {name:<30} {:>8.2} us/beat", t / beats * 1e6);
            }
            let mut nodes: Vec<_> = times.into_iter().collect();
            nodes.sort_by(|a, b| b.1 .1.partial_cmp(&a.1 .1).unwrap());
            for (id, (name, t)) in nodes.iter().take(15) {
                println!("   node {id:>4} {name:<30} {:>8.2} us/beat", t / beats * 1e6);
            }
        }
        return Ok(());
    }
    let sizes: Vec<usize> = std::env::args()
        .nth(2)
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256]);
    for &size in &sizes {
        let t = Instant::now();
        let subs: HashMap<Symbol, TDim> = [(n.clone(), TDim::Val(size as i64))].into();
        let conc = typed.set_symbols(&subs)?.into_optimized()?.into_runnable()?;
        let build = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let subs2: HashMap<Symbol, TDim> = [(n.clone(), TDim::Val(size as i64))].into();
        let conc2 = decl.set_symbols(&subs2)?.into_optimized()?.into_runnable()?;
        let build2 = t.elapsed().as_secs_f64() * 1e3;
        let full = (beats / size) * size;
        let ts = best_of(5, || run(&sym, size, false));
        let tc = best_of(5, || run(&conc, size, false));
        let tc2 = best_of(5, || run(&conc2, size, false));
        let tcs = best_of(5, || run(&conc, size, true));
        println!(
            "size {size:>3}: sym {:>6.0}/s  conc {:>6.0}/s  conc-from-decluttered {:>6.0}/s  conc+spawn-per-run {:>6.0}/s  build {build:.0} ms / {build2:.0} ms",
            full as f64 / ts,
            full as f64 / tc,
            full as f64 / tc2,
            full as f64 / tcs
        );
    }
    Ok(())
}
