//! `ecgflow eval explain`: how faithful each explanation method is for a trained classifier,
//! measured rather than assumed. For a beat classifier, labelled beats are drawn from a
//! `beats` Parquet table and the features are contiguous segments of the window; for a
//! whole-record classifier (PTB-XL), records are read from a directory in the PTB-XL layout
//! and the features are patches of the rendered image (image models) or lead × time
//! segments (signal models). Each method's attributions rank the features; deleting the most
//! important first (replacing them by the mean background input) must lower the probability
//! of the class explained faster than deleting them in random order, and inserting them
//! first must raise it faster. The model-randomisation check compares each method's
//! attributions on the trained model with those on a randomly initialised network of the
//! same shape: a faithful method's attributions change. JSON keys are documented in
//! docs/reports.md.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use ecgflow_datasets::ptbxl::{self, PtbxlRecord};
use ecgflow_operators::explain::faithfulness::{spearman, DeletionTest, Faithfulness, RandomCurves};
use ecgflow_operators::explain::gradcam::GradCam;
use ecgflow_operators::explain::lime::{lime, LimeSettings};
use ecgflow_operators::explain::shap::{kernel_shap, ShapSettings};
use ecgflow_operators::explain::{mean_window, Attribution, BatchClassifier, Features};
use ecgflow_operators::models::tract::OnnxClassifier;
use ecgflow_operators::models::{
    model_paths, Architecture, BeatInput, ModelCard, ModelInput, RecordInput, TrainedModel,
};
use ecgflow_operators::plot::{
    attribution_chart, image_attribution_chart, leads_attribution_chart, line_chart, Series,
};
use ecgflow_operators::rng::SplitMix64;
use ecgflow_operators::train::argmax;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};

use crate::components::sources::{beat_records, parse_folds};
use crate::eval_ptbxl::{network_input, resolution};
use crate::parquet_in::{background_windows, read_beats};
use crate::reports::{labelled_beats, model_context, write_json};

#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    /// The model: NAME.json or NAME.bpk (NAME.onnx beside it for `--runtime onnx`): a beat
    /// classifier (MIT-BIH) or a whole-record classifier (the PTB-XL image or signal model).
    #[arg(long)]
    pub model: PathBuf,
    /// Beat models: a beats Parquet file, or a directory of them (e.g. out/mitdb_beats).
    /// Record models: a directory in the PTB-XL layout (e.g. $ECGFLOW_DATA/ptbxl).
    #[arg(long)]
    pub data: PathBuf,
    /// Beat models: records whose beats are explained, beats the model did not train on
    /// (e.g. DS2 for a model trained on DS1).
    #[arg(long, default_value = "DS2")]
    pub records: String,
    /// Beat models: records the background set is drawn from (the model's training records).
    #[arg(long, default_value = "DS1")]
    pub background_records: String,
    /// Record models: folds whose records are explained, e.g. "9" (not trained on).
    #[arg(long, default_value = "9")]
    pub folds: String,
    /// Record models: folds the background set is drawn from (the training folds).
    #[arg(long, default_value = "1-8")]
    pub background_folds: String,
    /// Inputs explained, drawn evenly over the classes present (seeded): beats of
    /// --records [default: 60], or labelled records of --folds, round-robin over the
    /// diagnostic superclasses [default: 12].
    #[arg(long = "count", visible_alias = "beats")]
    pub count: Option<usize>,
    /// Methods, comma-separated: gradcam, shap, lime.
    #[arg(long, default_value = "gradcam,shap,lime")]
    pub methods: String,
    /// The features of SHAP, LIME and the deletion curves. Beat models: contiguous segments
    /// of the window [default: 12]. Signal record models: segments of each lead
    /// [default: 4, so 12 leads × 4 = 48 features].
    #[arg(long)]
    pub segments: Option<usize>,
    /// Image record models: the image's patches, ROWSxCOLS [default: 8x8, 64 features].
    #[arg(long)]
    pub patches: Option<String>,
    /// Background inputs, drawn from --background-records or --background-folds: SHAP's
    /// background set; their mean is the deletion baseline and LIME's fill [default: 8
    /// beats, 2 records].
    #[arg(long = "background", visible_alias = "background-beats")]
    pub background: Option<usize>,
    /// SHAP: sampled coalitions per input, each with its complement [default: 64 for beats,
    /// 256 for records]. SHAP costs 1 + background × (1 + coalitions) model runs per input.
    #[arg(long)]
    pub coalitions: Option<usize>,
    /// LIME: perturbed copies evaluated per explained input [default: 256].
    #[arg(long)]
    pub lime_samples: Option<usize>,
    /// Steps of the deletion and insertion curves (each removes or inserts features /
    /// steps features) [default: one feature per step, at most 16 steps].
    #[arg(long)]
    pub curve_steps: Option<usize>,
    /// Random orders averaged for the random deletion and insertion baselines [default: 16
    /// for beats, 8 for records].
    #[arg(long)]
    pub random_orders: Option<usize>,
    /// Runtime that runs SHAP's and LIME's perturbed inputs and the curves: onnx (tract) or
    /// burn. Grad-CAM and the randomised network of the randomisation check run on burn.
    #[arg(long, default_value = "onnx")]
    pub runtime: String,
    /// Seed of the draws (inputs, background), the random orders, SHAP's coalitions, LIME's
    /// perturbations and the randomised network.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write plots (mean deletion and insertion curves, example attributions) here.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

/// How many inputs a method explained and how fast, named for what they are.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Explained {
    Beats {
        beats: usize,
        /// Mean wall time to explain one beat, in milliseconds (this machine, one at a time).
        ms_per_beat: f64,
        /// Share of beats whose deletion AUC is below their random deletion AUC.
        deletion_beats_random: f64,
    },
    Records {
        records: usize,
        ms_per_record: f64,
        deletion_records_random: f64,
    },
}

impl Explained {
    /// Inputs explained.
    pub fn count(&self) -> usize {
        match self {
            Explained::Beats { beats, .. } => *beats,
            Explained::Records { records, .. } => *records,
        }
    }

    /// Mean milliseconds to explain one input.
    pub fn ms_per_input(&self) -> f64 {
        match self {
            Explained::Beats { ms_per_beat, .. } => *ms_per_beat,
            Explained::Records { ms_per_record, .. } => *ms_per_record,
        }
    }

    /// Share of inputs whose deletion AUC is below their random deletion AUC.
    pub fn deletion_beats_random(&self) -> f64 {
        match self {
            Explained::Beats {
                deletion_beats_random, ..
            } => *deletion_beats_random,
            Explained::Records {
                deletion_records_random,
                ..
            } => *deletion_records_random,
        }
    }
}

/// One method's figures over all explained inputs.
#[derive(Debug, Serialize)]
pub struct MethodReport {
    pub method: String,
    /// `beats`, `ms_per_beat`, `deletion_beats_random` (or the same for `records`).
    #[serde(flatten)]
    pub explained: Explained,
    pub deletion_auc: f64,
    pub random_deletion_auc: f64,
    pub insertion_auc: f64,
    pub random_insertion_auc: f64,
    /// Mean deletion and insertion curves (probability after removing/inserting k steps).
    pub deletion_curve: Vec<f64>,
    pub insertion_curve: Vec<f64>,
    pub random_deletion_curve: Vec<f64>,
    /// Mean Spearman correlation of feature attributions, trained vs randomised model.
    pub randomisation_spearman: f64,
    /// LIME: mean R² of the local fits.
    pub mean_fit_r2: Option<f64>,
    /// SHAP: largest |Σφ − (f(x) − E f)| over the inputs.
    pub max_efficiency_error: Option<f64>,
}

/// What is explained, and how: the inputs, their features and background, and the
/// settings. Beats and records differ only here.
struct Task {
    /// `n × input_len` values.
    inputs: Vec<f32>,
    features: Features,
    /// `background × span` values: SHAP's background set.
    background: Vec<f32>,
    budget: Budget,
    /// What the inputs are, for the report's keys and the pictures.
    kind: Kind,
    /// The report's `context.data` and `context.settings` (the common settings are added).
    data: Value,
    settings: Value,
}

/// How much work each input gets: the curves' steps and random orders, SHAP's and LIME's
/// settings. The command line's values, or defaults that differ for beats and records.
struct Budget {
    steps: usize,
    random_orders: usize,
    shap: ShapSettings,
    lime: LimeSettings,
}

impl Budget {
    fn new(args: &ExplainArgs, features: &Features, random_orders: usize, coalitions: usize) -> Self {
        Budget {
            steps: args.curve_steps.unwrap_or(features.len().min(16)),
            random_orders: args.random_orders.unwrap_or(random_orders),
            shap: ShapSettings {
                coalitions: args.coalitions.unwrap_or(coalitions),
                ..ShapSettings::default()
            },
            lime: LimeSettings {
                samples: args.lime_samples.unwrap_or(256),
                ..LimeSettings::default()
            },
        }
    }
}

enum Kind {
    Beats {
        input: BeatInput,
        /// The true class of each beat.
        labels: Vec<usize>,
    },
    Records {
        input: RecordInput,
        /// Each record's PTB-XL id and superclasses.
        records: Vec<PtbxlRecord>,
    },
}

/// A method bound to one model (trained or randomised).
struct Explainer<'a> {
    method: &'a str,
    cam: GradCam,
    perturbed: &'a dyn BatchClassifier,
    task: &'a Task,
    background_mean: &'a [f32],
}

impl Explainer<'_> {
    fn explain(&self, input: &[f32], class: usize, seed: u64) -> anyhow::Result<Attribution> {
        let task = self.task;
        Ok(match self.method {
            "gradcam" => self
                .cam
                .explain(input, Some(&[class]))?
                .pop()
                .context("Grad-CAM returned nothing")?,
            "shap" => {
                let settings = ShapSettings {
                    seed,
                    ..task.budget.shap.clone()
                };
                kernel_shap(
                    self.perturbed,
                    input,
                    &task.features,
                    &task.background,
                    class,
                    &settings,
                )?
            }
            _ => {
                let settings = LimeSettings {
                    seed,
                    ..task.budget.lime.clone()
                };
                lime(
                    self.perturbed,
                    input,
                    &task.features,
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
    let zero = [
        args.count,
        args.random_orders,
        args.background,
        args.coalitions,
        args.curve_steps,
    ]
    .contains(&Some(0));
    if methods.is_empty() || zero {
        bail!(
            "--methods must name a method, and --count, --random-orders, --background, --coalitions and \
             --curve-steps must not be zero"
        );
    }
    let model = TrainedModel::open(&args.model)?;
    let architecture = &model.card.architecture;
    let onnx = match args.runtime.as_str() {
        "onnx" => {
            let path = model_paths(&args.model).1.with_extension("onnx");
            let onnx = OnnxClassifier::load(&path).with_context(|| {
                format!(
                    "--runtime onnx needs {} (ecgflow export), or use --runtime burn",
                    path.display()
                )
            })?;
            Some(onnx.with_output(model.card.output))
        }
        "burn" => None,
        other => bail!("--runtime {other:?}: onnx or burn"),
    };
    let perturbed: &dyn BatchClassifier = match &onnx {
        Some(o) => o,
        None => &model,
    };

    let task = match &model.card.input {
        ModelInput::Beat(input) => beat_task(args, &model, input)?,
        ModelInput::Record(input) => record_task(args, &model, input)?,
    };
    let background_mean = mean_window(&task.background, task.features.span());
    let input_len = architecture.input_len();
    let inputs = &task.inputs;
    let n = inputs.len() / input_len;
    let probabilities = model.predict(inputs, 16)?;
    // The class explained is the model's verdict (the most probable class; for multi-label
    // models too), as the explain transform does.
    let classes: Vec<usize> = probabilities.iter().map(|p| argmax(p)).collect();
    let input_of = |i: usize| &inputs[i * input_len..(i + 1) * input_len];
    let seed_of = |i: usize| args.seed.wrapping_add(i as u64);

    // The random orders do not depend on the method: their curves are computed once.
    let progress = bar(n, "random orders");
    let mut random_curves: Vec<RandomCurves> = Vec::with_capacity(n);
    for (i, &class) in classes.iter().enumerate() {
        let test = DeletionTest::new(
            perturbed,
            input_of(i),
            &background_mean,
            class,
            &task.features,
            task.budget.steps,
        )?;
        random_curves.push(test.random(task.budget.random_orders, seed_of(i))?);
        progress.inc(1);
    }
    progress.finish_and_clear();

    // A randomly initialised network of the same shape, for the randomisation check.
    let random = model.randomised(args.seed);
    let mut reports = Vec::new();
    for &method in &methods {
        let trained = Explainer {
            method,
            cam: GradCam::new(&model.network, architecture).with_output(model.card.output),
            perturbed,
            task: &task,
            background_mean: &background_mean,
        };
        let randomised = Explainer {
            method,
            cam: GradCam::new(&random.network, architecture).with_output(model.card.output),
            perturbed: &random,
            ..trained
        };
        let progress = bar(n, &format!("explain {method}"));
        let mut per_input: Vec<(Attribution, Faithfulness, f32)> = Vec::with_capacity(n);
        let mut seconds = 0.0;
        for (i, &class) in classes.iter().enumerate() {
            let input = input_of(i);
            let seed = seed_of(i);
            let start = Instant::now();
            let attribution = trained.explain(input, class, seed)?;
            seconds += start.elapsed().as_secs_f64();
            let values = feature_values(&attribution, &task.features);
            let test = DeletionTest::new(
                perturbed,
                input,
                &background_mean,
                class,
                &task.features,
                task.budget.steps,
            )?;
            let curves = test.faithfulness(&values, &random_curves[i])?;
            let random_values = feature_values(&randomised.explain(input, class, seed)?, &task.features);
            per_input.push((attribution, curves, spearman(&values, &random_values)));
            progress.inc(1);
        }
        progress.finish_and_clear();
        let report = summarise(method, &per_input, seconds, &task.kind);
        reports.push(report);
        if let Some(dir) = &args.plots {
            example_pictures(dir, method, &task, &per_input, &model)?;
        }
    }

    let mut settings = task.settings.clone();
    settings["features"] = json!(task.features.len());
    settings["curve_steps"] = json!(task.budget.steps);
    settings["random_orders"] = json!(task.budget.random_orders);
    settings["runtime"] = json!(args.runtime);
    settings["seed"] = json!(args.seed);
    settings["shap"] = json!({"coalitions": task.budget.shap.coalitions});
    settings["lime"] = json!({"samples": task.budget.lime.samples, "kernel_width": task.budget.lime.kernel_width,
                              "replacement": task.budget.lime.replacement.name()});
    let mut data = task.data.clone();
    data["path"] = json!(args.data.display().to_string());
    if let Kind::Records { records, .. } = &task.kind {
        data["explained"] = json!(records
            .iter()
            .zip(&classes)
            .zip(&probabilities)
            .map(|((r, &c), p)| json!({
                "ecg_id": r.ecg_id,
                "superclasses": r.superclass_names(),
                "class": model.card.classes[c],
                "probability": p[c],
            }))
            .collect::<Vec<_>>());
    }
    let context = json!({
        "model": model_context(&model, &args.model),
        "data": data,
        "settings": settings,
    });
    if let Some(path) = &args.json {
        write_json(path, &json!({"context": context, "methods": reports}))?;
    }
    if let Some(dir) = &args.plots {
        curve_charts(dir, &reports)?;
    }
    print_reports(&reports);
    Ok(reports)
}

fn bar(n: usize, prefix: &str) -> ProgressBar {
    let progress = ProgressBar::new(n as u64).with_prefix(prefix.to_owned());
    progress.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} inputs ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress
}

/// Labelled beats of `--records`, the window's segments, and background beats of
/// `--background-records`.
fn beat_task(args: &ExplainArgs, model: &TrainedModel, input: &BeatInput) -> anyhow::Result<Task> {
    if args.patches.is_some() {
        bail!("--patches: model {} takes beats; use --segments", model.card.name);
    }
    let window = input.before + 1 + input.after;
    let features = Features::even(window, args.segments.unwrap_or(12)).context("--segments")?;
    let map_name = &model.card.label_map;
    let map = crate::components::label_map(map_name).with_context(|| format!("label map {map_name:?}"))?;
    let (inputs, labels) = draw_beats(args, model, &map, args.count.unwrap_or(60))?;
    let background_records = beat_records(&args.background_records).context("--background-records")?;
    let background_beats = args.background.unwrap_or(8);
    let background = background_windows(
        &args.data,
        background_records.as_ref(),
        (input.before, input.after),
        background_beats,
        args.seed ^ 0xB4C6_0000,
    )?;
    let mut counts = vec![0; model.card.classes.len()];
    for &l in &labels {
        counts[l] += 1;
    }
    Ok(Task {
        data: json!({
            "records": args.records,
            "background_records": args.background_records,
            "beats": labels.len(),
            "beats_per_class": counts,
            "background_beats": background_beats,
        }),
        settings: json!({
            "segments": features.len(),
            "deletion_baseline": "mean background beat",
        }),
        budget: Budget::new(args, &features, 16, 64),
        inputs,
        features,
        background,
        kind: Kind::Beats {
            input: input.clone(),
            labels,
        },
    })
}

/// Labelled records of `--folds` (round-robin over the superclasses), the image's patches
/// or the leads' segments, and background records of `--background-folds`.
fn record_task(args: &ExplainArgs, model: &TrainedModel, input: &RecordInput) -> anyhow::Result<Task> {
    let features = match &input.image {
        Some(_) if args.segments.is_some() => bail!(
            "--segments: model {} takes images; use --patches ROWSxCOLS",
            model.card.name
        ),
        None if args.patches.is_some() => bail!("--patches: model {} takes signals; use --segments", model.card.name),
        _ => record_features(
            &model.card,
            input,
            args.patches.as_deref().unwrap_or("8x8"),
            args.segments.unwrap_or(4),
        )?,
    };
    let resolution = resolution(input)?;
    let all = ptbxl::load(&args.data).with_context(|| format!("reading PTB-XL from {}", args.data.display()))?;
    let folds = parse_folds(&args.folds).context("--folds")?;
    let candidates: Vec<PtbxlRecord> = ptbxl::filter_folds(&all, &folds)
        .into_iter()
        .filter(|r| r.superclasses.contains(&true))
        .collect();
    if candidates.is_empty() {
        bail!(
            "{}: no record of folds {} has a diagnostic superclass",
            args.data.display(),
            args.folds
        );
    }
    let mut rng = SplitMix64::new(args.seed);
    let by_class: Vec<Vec<usize>> = (0..ptbxl::SUPERCLASSES.len())
        .map(|c| {
            let mut members: Vec<usize> = (0..candidates.len())
                .filter(|&i| candidates[i].superclasses[c])
                .collect();
            shuffle(&mut members, &mut rng);
            members
        })
        .collect();
    let records: Vec<PtbxlRecord> = round_robin(&by_class, args.count.unwrap_or(12))
        .into_iter()
        .map(|i| candidates[i].clone())
        .collect();

    let background_folds = parse_folds(&args.background_folds).context("--background-folds")?;
    let pool = background_pool(&all, &background_folds, args.background.unwrap_or(2), args.seed)
        .with_context(|| format!("{} (--background-folds)", args.data.display()))?;

    let progress = bar(records.len() + pool.len(), "reading records");
    let read = |list: &[PtbxlRecord]| -> anyhow::Result<Vec<f32>> {
        let mut values = Vec::with_capacity(list.len() * features.span());
        for r in list {
            values.extend(network_input(r, &args.data, resolution, input)?);
            progress.inc(1);
        }
        Ok(values)
    };
    let inputs = read(&records)?;
    let background = read(&pool)?;
    progress.finish_and_clear();

    let mut counts = [0usize; 5];
    for r in &records {
        for (c, &on) in counts.iter_mut().zip(&r.superclasses) {
            *c += usize::from(on);
        }
    }
    let description = match &input.image {
        Some(_) => format!("{} image patches", args.patches.as_deref().unwrap_or("8x8")),
        None => format!(
            "{} leads × {} segments",
            input.leads.len(),
            features.len() / input.leads.len().max(1)
        ),
    };
    Ok(Task {
        data: json!({
            "folds": folds,
            "background_folds": background_folds,
            "records": records.len(),
            "records_per_superclass": ptbxl::SUPERCLASSES.iter().zip(counts)
                .map(|(name, n)| (name.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "background_records": pool.iter().map(|r| r.ecg_id).collect::<Vec<_>>(),
        }),
        settings: json!({
            "feature_kind": description,
            "deletion_baseline": "mean background record",
        }),
        budget: Budget::new(args, &features, 8, 256),
        inputs,
        features,
        background,
        kind: Kind::Records {
            input: input.clone(),
            records,
        },
    })
}

/// `ROWSxCOLS`, e.g. `8x8`.
fn parse_patches(spec: &str) -> anyhow::Result<(usize, usize)> {
    let parse = || {
        let (rows, cols) = spec.split_once(['x', 'X', '×'])?;
        Some((rows.trim().parse().ok()?, cols.trim().parse().ok()?))
    };
    parse().ok_or_else(|| anyhow::anyhow!("patches {spec:?}: expected ROWSxCOLS, e.g. 8x8"))
}

/// The features a record model's input is explained over: `patches` (ROWSxCOLS) of an
/// image, or `segments` time segments of each lead of a signal (shared with the `explain`
/// transform).
pub(crate) fn record_features(
    card: &ModelCard,
    input: &RecordInput,
    patches: &str,
    segments: usize,
) -> anyhow::Result<Features> {
    let features = match (&input.image, &card.architecture) {
        (Some(image), architecture) => {
            let (rows, cols) = parse_patches(patches)?;
            let channels = architecture.input_len() / (image.height * image.width).max(1);
            Features::patches(channels, image.height, image.width, rows, cols).context("patches")?
        }
        (None, Architecture::Resecanet(_)) => {
            Features::lead_segments(input.leads.len(), input.samples, segments).context("segments")?
        }
        (None, other) => bail!("model {}: no record features for {other:?}", card.name),
    };
    if features.span() != card.architecture.input_len() {
        bail!(
            "model {}: its record input has {} values but the network takes {}",
            card.name,
            features.span(),
            card.architecture.input_len()
        );
    }
    Ok(features)
}

/// The network inputs of `count` records of `folds` of the PTB-XL directory `data`, drawn at
/// random (seeded): a background set for a record model taking `input`.
pub(crate) fn background_records(
    data: &Path,
    folds: &[u8],
    count: usize,
    seed: u64,
    input: &RecordInput,
) -> anyhow::Result<Vec<f32>> {
    let all = ptbxl::load(data).with_context(|| format!("reading PTB-XL from {}", data.display()))?;
    let pool = background_pool(&all, folds, count, seed).with_context(|| data.display().to_string())?;
    let resolution = resolution(input)?;
    let mut values = Vec::new();
    for record in &pool {
        values.extend(network_input(record, data, resolution, input)?);
    }
    Ok(values)
}

/// `count` records of `folds` drawn at random (seeded): a background set of records.
pub(crate) fn background_pool(
    all: &[PtbxlRecord],
    folds: &[u8],
    count: usize,
    seed: u64,
) -> anyhow::Result<Vec<PtbxlRecord>> {
    let candidates = ptbxl::filter_folds(all, folds);
    if candidates.is_empty() {
        bail!("no record in folds {folds:?}");
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    shuffle(&mut order, &mut SplitMix64::new(seed ^ 0xB4C6_0000));
    Ok(order.into_iter().take(count).map(|i| candidates[i].clone()).collect())
}

/// The attribution of each feature: SHAP's and LIME's own values, Grad-CAM's mean over the
/// feature's samples or pixels.
fn feature_values(a: &Attribution, features: &Features) -> Vec<f32> {
    if a.features.len() == features.len() {
        a.features.iter().map(|f| f.value).collect()
    } else {
        features.means(&a.per_sample)
    }
}

/// Fisher-Yates, so that each class contributes a random subset.
fn shuffle(members: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..members.len()).rev() {
        members.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
}

/// Up to `count` members, taken round-robin over the classes (each class's members in
/// their order) until enough are taken or all are used; a member of several classes is
/// taken once.
fn round_robin(by_class: &[Vec<usize>], count: usize) -> Vec<usize> {
    let mut chosen = Vec::with_capacity(count);
    let mut taken = HashSet::new();
    let mut round = 0;
    while chosen.len() < count && by_class.iter().any(|m| m.len() > round) {
        for members in by_class {
            if let Some(&i) = members.get(round) {
                if chosen.len() < count && taken.insert(i) {
                    chosen.push(i);
                }
            }
        }
        round += 1;
    }
    chosen
}

/// Up to `count` labelled beats of `args.records`, drawn evenly over the classes present
/// (seeded): the inputs (`n × input_len`) and their true classes.
fn draw_beats(
    args: &ExplainArgs,
    model: &TrainedModel,
    map: &ecgflow_datasets::mitdb::LabelMap,
    count: usize,
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
        shuffle(members, &mut rng);
    }
    let input_len = model.card.architecture.input_len();
    let mut inputs = Vec::with_capacity(count * input_len);
    let mut labels = Vec::with_capacity(count);
    for i in round_robin(&by_class, count) {
        inputs.extend_from_slice(&data.inputs[i * input_len..(i + 1) * input_len]);
        labels.push(data.labels[i]);
    }
    Ok((inputs, labels))
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

fn summarise(method: &str, per_input: &[(Attribution, Faithfulness, f32)], seconds: f64, kind: &Kind) -> MethodReport {
    let n = per_input.len();
    let f = || per_input.iter().map(|(_, f, _)| f);
    let efficiency = per_input
        .iter()
        .filter_map(|(a, _, _)| {
            let base = a.base_value?;
            let sum: f32 = a.features.iter().map(|s| s.value).sum();
            Some(f64::from((sum - (a.probability - base)).abs()))
        })
        .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.max(e))));
    let ms = 1000.0 * seconds / n.max(1) as f64;
    let beats_random = mean(f().map(|f| f64::from(u8::from(f.deletion_auc < f.random_deletion_auc))));
    MethodReport {
        method: method.to_owned(),
        explained: match kind {
            Kind::Beats { .. } => Explained::Beats {
                beats: n,
                ms_per_beat: ms,
                deletion_beats_random: beats_random,
            },
            Kind::Records { .. } => Explained::Records {
                records: n,
                ms_per_record: ms,
                deletion_records_random: beats_random,
            },
        },
        deletion_auc: mean(f().map(|f| f64::from(f.deletion_auc))),
        random_deletion_auc: mean(f().map(|f| f64::from(f.random_deletion_auc))),
        insertion_auc: mean(f().map(|f| f64::from(f.insertion_auc))),
        random_insertion_auc: mean(f().map(|f| f64::from(f.random_insertion_auc))),
        deletion_curve: mean_curve(f().map(|f| f.deletion.as_slice())),
        insertion_curve: mean_curve(f().map(|f| f.insertion.as_slice())),
        random_deletion_curve: mean_curve(f().map(|f| f.random_deletion.as_slice())),
        randomisation_spearman: mean(
            per_input
                .iter()
                .map(|(_, _, r)| f64::from(*r))
                .filter(|r| r.is_finite()),
        ),
        mean_fit_r2: (method == "lime").then(|| mean(per_input.iter().filter_map(|(a, _, _)| a.fit_r2.map(f64::from)))),
        max_efficiency_error: if method == "shap" { efficiency } else { None },
    }
}

/// Attribution pictures, `METHOD_CLASS.png`: for beats, the first explained beat of each
/// true class; for records, the first explained record with each superclass (each record
/// pictured once).
fn example_pictures(
    dir: &Path,
    method: &str,
    task: &Task,
    per_input: &[(Attribution, Faithfulness, f32)],
    model: &TrainedModel,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let input_len = model.card.architecture.input_len();
    let input_of = |i: usize| &task.inputs[i * input_len..(i + 1) * input_len];
    let explained = |a: &Attribution| {
        format!(
            "explained {} {:.0}%",
            model.card.classes[a.class],
            100.0 * a.probability
        )
    };
    let per_sample = |a: &Attribution| a.per_sample.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    match &task.kind {
        Kind::Beats { input, labels } => {
            let ms = 1000.0 / input.fs;
            let window = task.features.span();
            for (class, name) in model.card.classes.iter().enumerate() {
                let Some(i) = labels.iter().position(|&l| l == class) else {
                    continue;
                };
                let a = &per_input[i].0;
                let beat: Vec<(f64, f64)> = input_of(i)[..window]
                    .iter()
                    .enumerate()
                    .map(|(t, &v)| ((t as f64 - input.before as f64) * ms, f64::from(v)))
                    .collect();
                let title = format!("{method}: true {name}, {}", explained(a));
                attribution_chart(&dir.join(format!("{method}_{name}.png")), &title, &beat, &per_sample(a))?;
            }
        }
        Kind::Records { input, records } => {
            let mut pictured = HashSet::new();
            for (class, name) in ptbxl::SUPERCLASSES.iter().enumerate() {
                let Some(i) = (0..records.len()).find(|&i| records[i].superclasses[class] && !pictured.contains(&i))
                else {
                    continue;
                };
                pictured.insert(i);
                let (r, a) = (&records[i], &per_input[i].0);
                let title = format!(
                    "{method}: record {} ({}), {}",
                    r.ecg_id,
                    r.superclass_names().join(" "),
                    explained(a)
                );
                let path = dir.join(format!("{method}_{name}.png"));
                match &input.image {
                    Some(image) => image_attribution_chart(
                        &path,
                        &title,
                        input_of(i),
                        (image.width, image.height),
                        &per_sample(a),
                    )?,
                    None => {
                        leads_attribution_chart(&path, &title, &input.leads, input.fs, input_of(i), &per_sample(a))?
                    }
                };
            }
        }
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
    let x = "share of features removed";
    line_chart(
        &dir.join("deletion.png"),
        "deletion curves (lower is more faithful)",
        x,
        "class probability",
        &deletion,
    )?;
    let x = "share of features inserted";
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
    let records = matches!(reports.first().map(|r| &r.explained), Some(Explained::Records { .. }));
    let (inputs, ms) = if records {
        ("records", "ms/record")
    } else {
        ("beats", "ms/beat")
    };
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "method", inputs, ms, "del AUC", "random", "ins AUC", "random", "rand ρ"
    );
    for r in reports {
        println!(
            "{:<8} {:>7} {:>9.1} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>8.3}",
            r.method,
            r.explained.count(),
            r.explained.ms_per_input(),
            r.deletion_auc,
            r.random_deletion_auc,
            r.insertion_auc,
            r.random_insertion_auc,
            r.randomisation_spearman
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_parse_as_rows_by_columns() {
        assert_eq!(parse_patches("8x8").unwrap(), (8, 8));
        assert_eq!(parse_patches("4X7").unwrap(), (4, 7));
        assert_eq!(parse_patches("2×3").unwrap(), (2, 3));
        assert!(parse_patches("8").is_err());
        assert!(parse_patches("ax2").is_err());
    }

    #[test]
    fn round_robin_takes_each_member_once() {
        let by_class = vec![vec![0, 1, 2], vec![1, 3], vec![], vec![4]];
        assert_eq!(round_robin(&by_class, 10), vec![0, 1, 4, 3, 2]);
        assert_eq!(round_robin(&by_class, 2), vec![0, 1]);
        assert_eq!(round_robin(&[], 3), Vec::<usize>::new());
    }
}
