//! `ecgflow eval explain`: how faithful each explanation method is for a trained beat
//! classifier, measured rather than assumed. For labelled beats drawn from a `beats` Parquet
//! table, each method's attributions rank the window's segments; deleting the most
//! important segments first (replacing them by the mean background beat) must lower the
//! class probability faster than deleting them in random order, and inserting them first
//! must raise it faster. The model-randomisation check compares each method's attributions
//! on the trained model with those on a randomly initialised network of the same shape:
//! a faithful method's attributions change. JSON keys are documented in docs/reports.md.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use ecgflow_operators::explain::faithfulness::{faithfulness, spearman, Faithfulness};
use ecgflow_operators::explain::gradcam::GradCam;
use ecgflow_operators::explain::lime::{lime, LimeSettings};
use ecgflow_operators::explain::shap::{kernel_shap, ShapSettings};
use ecgflow_operators::explain::{mean_window, Attribution, BatchClassifier, Segments};
use ecgflow_operators::models::tract::OnnxClassifier;
use ecgflow_operators::models::{model_paths, TrainedModel};
use ecgflow_operators::plot::{attribution_chart, line_chart, Series};
use ecgflow_operators::rng::SplitMix64;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use crate::components::sources::beat_records;
use crate::parquet_in::{background_windows, read_beats};
use crate::reports::{labelled_beats, model_context, write_json};

#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    /// The model: NAME.json or NAME.bpk (NAME.onnx beside it for `--runtime onnx`).
    #[arg(long)]
    pub model: PathBuf,
    /// A beats Parquet file, or a directory of them (e.g. out/mitdb_beats).
    #[arg(long)]
    pub data: PathBuf,
    /// Records whose beats are explained: beats the model did not train on (e.g. DS2 for a
    /// model trained on DS1).
    #[arg(long, default_value = "DS2")]
    pub records: String,
    /// Records the background set is drawn from: the model's training records.
    #[arg(long, default_value = "DS1")]
    pub background_records: String,
    /// Beats explained, drawn evenly over the classes present (seeded).
    #[arg(long, default_value_t = 60)]
    pub beats: usize,
    /// Methods, comma-separated: gradcam, shap, lime.
    #[arg(long, default_value = "gradcam,shap,lime")]
    pub methods: String,
    /// Segments of the window for SHAP, LIME and the deletion curves.
    #[arg(long, default_value_t = 12)]
    pub segments: usize,
    /// Background beats (SHAP's background set; their mean is the deletion baseline).
    #[arg(long, default_value_t = 8)]
    pub background_beats: usize,
    /// Random orders averaged for the random deletion and insertion baselines.
    #[arg(long, default_value_t = 16)]
    pub random_orders: usize,
    /// Runtime that runs SHAP's and LIME's perturbed beats: onnx (tract) or burn.
    #[arg(long, default_value = "onnx")]
    pub runtime: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: PathBuf,
    /// Write plots (mean deletion and insertion curves, example attributions) here.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

/// One method's figures over all explained beats.
#[derive(Debug, Serialize)]
pub struct MethodReport {
    pub method: String,
    pub beats: usize,
    /// Mean wall time to explain one beat, in milliseconds (this machine, one beat at a time).
    pub ms_per_beat: f64,
    pub deletion_auc: f64,
    pub random_deletion_auc: f64,
    pub insertion_auc: f64,
    pub random_insertion_auc: f64,
    /// Share of beats whose deletion AUC is below their random deletion AUC.
    pub deletion_beats_random: f64,
    /// Mean deletion and insertion curves (probability after removing/inserting k segments).
    pub deletion_curve: Vec<f64>,
    pub insertion_curve: Vec<f64>,
    pub random_deletion_curve: Vec<f64>,
    /// Mean Spearman correlation of segment attributions, trained vs randomised model.
    pub randomisation_spearman: f64,
    /// LIME: mean R² of the local fits.
    pub mean_fit_r2: Option<f64>,
    /// SHAP: largest |Σφ − (f(x) − E f)| over the beats.
    pub max_efficiency_error: Option<f64>,
}

/// A method bound to one model (trained or randomised).
struct Explainer<'a> {
    method: &'a str,
    cam: GradCam,
    perturbed: &'a dyn BatchClassifier,
    window: usize,
    background: &'a [f32],
    background_mean: &'a [f32],
    segments: usize,
}

impl Explainer<'_> {
    fn explain(&self, input: &[f32], class: usize, seed: u64) -> anyhow::Result<Attribution> {
        Ok(match self.method {
            "gradcam" => self
                .cam
                .explain(input, Some(&[class]))?
                .pop()
                .context("Grad-CAM returned nothing")?,
            "shap" => {
                let settings = ShapSettings {
                    segments: self.segments,
                    seed,
                    ..ShapSettings::default()
                };
                kernel_shap(self.perturbed, input, self.window, self.background, class, &settings)?
            }
            _ => {
                let settings = LimeSettings {
                    segments: self.segments,
                    seed,
                    ..LimeSettings::default()
                };
                lime(
                    self.perturbed,
                    input,
                    self.window,
                    self.background_mean,
                    class,
                    &settings,
                )?
            }
        })
    }
}

pub fn explain(args: &ExplainArgs) -> anyhow::Result<Vec<MethodReport>> {
    let methods: Vec<&str> = args
        .methods
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if let Some(bad) = methods.iter().find(|m| !["gradcam", "shap", "lime"].contains(m)) {
        bail!("--methods: unknown method {bad:?} (gradcam, shap, lime)");
    }
    if methods.is_empty() || args.beats == 0 || args.random_orders == 0 || args.background_beats == 0 {
        bail!("--methods, --beats, --random-orders and --background-beats must not be empty or zero");
    }
    let model = TrainedModel::open(&args.model)?;
    let architecture = &model.card.architecture;
    let input = model.card.beat_input()?.clone();
    let window = input.before + 1 + input.after;
    let segments = Segments::even(window, args.segments).context("--segments")?;
    let onnx = match args.runtime.as_str() {
        "onnx" => {
            let path = model_paths(&args.model).1.with_extension("onnx");
            let onnx = OnnxClassifier::load(&path).with_context(|| {
                format!(
                    "--runtime onnx needs {} (ecgflow export), or use --runtime burn",
                    path.display()
                )
            })?;
            Some(onnx)
        }
        "burn" => None,
        other => bail!("--runtime {other:?}: onnx or burn"),
    };
    let perturbed: &dyn BatchClassifier = match &onnx {
        Some(o) => o,
        None => &model,
    };

    let map_name = &model.card.label_map;
    let map = crate::components::label_map(map_name).with_context(|| format!("label map {map_name:?}"))?;
    let (inputs, labels) = draw_beats(args, &model, &map)?;
    let background_records = beat_records(&args.background_records).context("--background-records")?;
    let background = background_windows(
        &args.data,
        background_records.as_ref(),
        (input.before, input.after),
        args.background_beats,
        args.seed ^ 0xB4C6_0000,
    )?;
    let background_mean = mean_window(&background, window);
    let input_len = architecture.input_len();
    let n = labels.len();
    let probabilities = model.predict(&inputs, 64)?;
    // The class explained is the model's verdict, as the explain transform does.
    let classes: Vec<usize> = probabilities
        .iter()
        .map(|p| ecgflow_operators::train::argmax(p))
        .collect();

    // A randomly initialised network of the same shape, for the randomisation check.
    let random = model.randomised(args.seed);

    let mut reports = Vec::new();
    for &method in &methods {
        let trained = Explainer {
            method,
            cam: GradCam::new(&model.network, architecture),
            perturbed,
            window,
            background: &background,
            background_mean: &background_mean,
            segments: args.segments,
        };
        let randomised = Explainer {
            method,
            cam: GradCam::new(&random.network, architecture),
            perturbed: &random,
            ..trained
        };
        let progress = ProgressBar::new(n as u64).with_prefix(format!("explain {method}"));
        progress.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} beats ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut per_beat: Vec<(Attribution, Faithfulness, f32)> = Vec::with_capacity(n);
        let mut seconds = 0.0;
        for i in 0..n {
            let input = &inputs[i * input_len..(i + 1) * input_len];
            let seed = args.seed.wrapping_add(i as u64);
            let start = Instant::now();
            let attribution = trained.explain(input, classes[i], seed)?;
            seconds += start.elapsed().as_secs_f64();
            let values = segment_values(&attribution, &segments);
            let curves = faithfulness(
                perturbed,
                input,
                window,
                &background_mean,
                classes[i],
                &segments,
                &values,
                args.random_orders,
                seed,
            )?;
            let random_values = segment_values(&randomised.explain(input, classes[i], seed)?, &segments);
            per_beat.push((attribution, curves, spearman(&values, &random_values)));
            progress.inc(1);
        }
        progress.finish_and_clear();
        reports.push(summarise(method, &per_beat, seconds));
        if let Some(dir) = &args.plots {
            example_pictures(dir, method, &inputs, &labels, &per_beat, &model, window)?;
        }
    }

    let context = json!({
        "model": model_context(&model, &args.model),
        "data": {
            "path": args.data.display().to_string(),
            "records": args.records,
            "background_records": args.background_records,
            "beats": n,
            "beats_per_class": count_per_class(&labels, model.card.classes.len()),
            "background_beats": args.background_beats,
        },
        "settings": {
            "segments": args.segments,
            "random_orders": args.random_orders,
            "runtime": args.runtime,
            "seed": args.seed,
            "deletion_baseline": "mean background beat",
            "shap": {"coalitions": ShapSettings::default().coalitions},
            "lime": {"samples": LimeSettings::default().samples, "kernel_width": LimeSettings::default().kernel_width,
                     "replacement": LimeSettings::default().replacement.name()},
        },
    });
    write_json(&args.json, &json!({"context": context, "methods": reports}))?;
    if let Some(dir) = &args.plots {
        curve_charts(dir, &reports)?;
    }
    print_reports(&reports);
    Ok(reports)
}

/// The attribution of each segment: SHAP's and LIME's own values, Grad-CAM's mean over the
/// segment's samples.
fn segment_values(a: &Attribution, segments: &Segments) -> Vec<f32> {
    if a.segments.len() == segments.len() {
        a.segments.iter().map(|s| s.value).collect()
    } else {
        segments.means(&a.per_sample)
    }
}

/// Up to `args.beats` labelled beats of `args.records`, drawn evenly over the classes
/// present (seeded): the inputs (`n × input_len`) and their true classes.
fn draw_beats(
    args: &ExplainArgs,
    model: &TrainedModel,
    map: &ecgflow_datasets::mitdb::LabelMap,
) -> anyhow::Result<(Vec<f32>, Vec<usize>)> {
    let records = beat_records(&args.records).context("--records")?;
    let table = read_beats(&args.data, records.as_ref())?;
    let beats = table.records.iter().flat_map(|(_, b)| b.iter().map(|s| &s.beat));
    let data = labelled_beats(beats, &model.card.architecture, map)?;
    if data.labels.is_empty() {
        bail!(
            "{}: no labelled beats of records {:?}",
            args.data.display(),
            args.records
        );
    }
    let classes = model.card.classes.len();
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &label) in data.labels.iter().enumerate() {
        by_class[label].push(i);
    }
    let mut rng = SplitMix64::new(args.seed);
    for members in &mut by_class {
        // Fisher-Yates, so each class contributes a random subset.
        for i in (1..members.len()).rev() {
            members.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
    }
    // Round-robin over the classes until enough beats are drawn or all are used.
    let mut chosen = Vec::with_capacity(args.beats);
    let mut round = 0;
    while chosen.len() < args.beats && by_class.iter().any(|m| m.len() > round) {
        for members in &by_class {
            if let Some(&i) = members.get(round) {
                if chosen.len() < args.beats {
                    chosen.push(i);
                }
            }
        }
        round += 1;
    }
    let input_len = model.card.architecture.input_len();
    let mut inputs = Vec::with_capacity(chosen.len() * input_len);
    let mut labels = Vec::with_capacity(chosen.len());
    for i in chosen {
        inputs.extend_from_slice(&data.inputs[i * input_len..(i + 1) * input_len]);
        labels.push(data.labels[i]);
    }
    Ok((inputs, labels))
}

fn count_per_class(labels: &[usize], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for &l in labels {
        counts[l] += 1;
    }
    counts
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// The mean of equally long curves, point by point.
fn mean_curve<'a>(curves: impl Iterator<Item = &'a [f32]>) -> Vec<f64> {
    let mut sum: Vec<f64> = Vec::new();
    let mut n = 0;
    for c in curves {
        sum.resize(c.len(), 0.0);
        for (s, &v) in sum.iter_mut().zip(c) {
            *s += f64::from(v);
        }
        n += 1;
    }
    sum.iter().map(|s| s / n.max(1) as f64).collect()
}

fn summarise(method: &str, per_beat: &[(Attribution, Faithfulness, f32)], seconds: f64) -> MethodReport {
    let n = per_beat.len();
    let f = || per_beat.iter().map(|(_, f, _)| f);
    let efficiency = per_beat
        .iter()
        .filter_map(|(a, _, _)| {
            let base = a.base_value?;
            let sum: f32 = a.segments.iter().map(|s| s.value).sum();
            Some(f64::from((sum - (a.probability - base)).abs()))
        })
        .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.max(e))));
    MethodReport {
        method: method.to_owned(),
        beats: n,
        ms_per_beat: 1000.0 * seconds / n.max(1) as f64,
        deletion_auc: mean(f().map(|f| f64::from(f.deletion_auc))),
        random_deletion_auc: mean(f().map(|f| f64::from(f.random_deletion_auc))),
        insertion_auc: mean(f().map(|f| f64::from(f.insertion_auc))),
        random_insertion_auc: mean(f().map(|f| f64::from(f.random_insertion_auc))),
        deletion_beats_random: mean(f().map(|f| f64::from(u8::from(f.deletion_auc < f.random_deletion_auc)))),
        deletion_curve: mean_curve(f().map(|f| f.deletion.as_slice())),
        insertion_curve: mean_curve(f().map(|f| f.insertion.as_slice())),
        random_deletion_curve: mean_curve(f().map(|f| f.random_deletion.as_slice())),
        randomisation_spearman: mean(per_beat.iter().map(|(_, _, r)| f64::from(*r)).filter(|r| r.is_finite())),
        mean_fit_r2: (method == "lime").then(|| mean(per_beat.iter().filter_map(|(a, _, _)| a.fit_r2.map(f64::from)))),
        max_efficiency_error: if method == "shap" { efficiency } else { None },
    }
}

/// The first explained beat of each true class, as attribution pictures.
fn example_pictures(
    dir: &Path,
    method: &str,
    inputs: &[f32],
    labels: &[usize],
    per_beat: &[(Attribution, Faithfulness, f32)],
    model: &TrainedModel,
    window: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let input_len = model.card.architecture.input_len();
    let input = model.card.beat_input()?;
    let ms = 1000.0 / input.fs;
    for (class, name) in model.card.classes.iter().enumerate() {
        let Some(i) = labels.iter().position(|&l| l == class) else {
            continue;
        };
        let a = &per_beat[i].0;
        let beat: Vec<(f64, f64)> = inputs[i * input_len..i * input_len + window]
            .iter()
            .enumerate()
            .map(|(t, &v)| ((t as f64 - input.before as f64) * ms, f64::from(v)))
            .collect();
        let attribution: Vec<f64> = a.per_sample.iter().map(|&v| f64::from(v)).collect();
        let title = format!(
            "{method}: true {name}, explained {} {:.0}%",
            model.card.classes[a.class],
            100.0 * a.probability
        );
        attribution_chart(&dir.join(format!("{method}_{name}.png")), &title, &beat, &attribution)?;
    }
    Ok(())
}

/// Mean deletion and insertion curves of every method, with the random deletion baseline.
fn curve_charts(dir: &Path, reports: &[MethodReport]) -> anyhow::Result<()> {
    let points = |c: &[f64]| -> Vec<(f64, f64)> {
        let last = (c.len().max(2) - 1) as f64;
        c.iter().enumerate().map(|(k, &p)| (k as f64 / last, p)).collect()
    };
    let mut deletion = Vec::new();
    let mut insertion = Vec::new();
    for r in reports {
        deletion.push(Series {
            name: r.method.clone(),
            points: points(&r.deletion_curve),
        });
        insertion.push(Series {
            name: r.method.clone(),
            points: points(&r.insertion_curve),
        });
    }
    if let Some(r) = reports.first() {
        deletion.push(Series {
            name: "random order".into(),
            points: points(&r.random_deletion_curve),
        });
    }
    let x = "share of segments removed";
    line_chart(
        &dir.join("deletion.png"),
        "deletion curves (lower is more faithful)",
        x,
        "class probability",
        &deletion,
    )?;
    let x = "share of segments inserted";
    line_chart(
        &dir.join("insertion.png"),
        "insertion curves (higher is more faithful)",
        x,
        "class probability",
        &insertion,
    )?;
    Ok(())
}

fn print_reports(reports: &[MethodReport]) {
    println!(
        "{:<8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "method", "beats", "ms/beat", "del AUC", "random", "ins AUC", "random", "rand ρ"
    );
    for r in reports {
        println!(
            "{:<8} {:>6} {:>9.1} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>8.3}",
            r.method,
            r.beats,
            r.ms_per_beat,
            r.deletion_auc,
            r.random_deletion_auc,
            r.insertion_auc,
            r.random_insertion_auc,
            r.randomisation_spearman
        );
    }
}
