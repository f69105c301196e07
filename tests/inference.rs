//! Inference: tract running the exported ONNX files gives burn's probabilities on real
//! MIT-BIH beats, and the `model` transform classifies alike on either runtime, with or
//! without a model card. The real-data test prints a note and passes when the data is
//! absent (CI has it); the others need no data (synthetic ECG, tiny freshly trained networks).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use ecgflow_operators::models::onnx::export_onnx;
use ecgflow_operators::models::resecanet::{beat_input, BeatExtras, RrReference};
use ecgflow_operators::models::tract::OnnxClassifier;
use ecgflow_operators::models::{
    Architecture, BeatInput, ModelCard, ModelInput, Output as Activation, ResEcaNetConfig, TrainedModel,
};
use ecgflow_operators::rng::SplitMix64;
use ecgflow_operators::train::{fit, Dataset, Quiet, TrainSettings};
use ecgflow_operators::Beat;
use serde_json::Value;

mod common;

const TOLERANCE: f32 = 1e-4;

/// The classes of the networks trained here.
const CLASSES: [&str; 3] = ["N", "V", "other"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ecgflow(args: &[&str]) -> Output {
    common::ecgflow(args, &common::data_root())
}

/// A tiny ResECANet (8 → 16 filters, 259-sample window at 90 + 1 + 168) trained for a few
/// steps on `examples`, saved as `dir/NAME.{bpk,json}` and exported as `dir/NAME.onnx`.
/// Returns the card's path.
fn fresh_model(dir: &Path, name: &str, rr_features: bool, examples: &Dataset) -> PathBuf {
    let architecture = Architecture::Resecanet(ResEcaNetConfig {
        widths: vec![8, 16],
        rr_features,
        ..ResEcaNetConfig::study(3)
    });
    assert_eq!(examples.input_len, architecture.input_len());
    let settings = TrainSettings {
        epochs: 1,
        batch_size: 16,
        learning_rate: 3e-3,
        patience: 0,
        max_steps_per_epoch: Some(4),
        ..TrainSettings::default()
    };
    let outcome = fit(&architecture, examples, examples, &settings, None, &mut Quiet).unwrap();
    let model = TrainedModel {
        card: ModelCard {
            name: name.to_owned(),
            version: "0".to_owned(),
            architecture,
            classes: CLASSES.map(str::to_owned).to_vec(),
            label_map: "test".to_owned(),
            input: ModelInput::Beat(BeatInput {
                fs: 360.0,
                before: 90,
                after: 168,
                lead: "MLII".to_owned(),
            }),
            output: Activation::Softmax,
            thresholds: None,
            min_probability: Default::default(),
            premature_rule: None,
            training: Value::Null,
        },
        network: outcome.best,
    };
    let card = dir.join(format!("{name}.json"));
    model.save(&card).unwrap();
    export_onnx(&model, &card.with_extension("onnx")).unwrap();
    card
}

/// Random examples of `input_len` values in three classes.
fn random_examples(input_len: usize, n: usize) -> Dataset {
    let mut rng = SplitMix64::new(11);
    let mut data = Dataset::new(input_len);
    for i in 0..n {
        let input: Vec<f32> = (0..input_len).map(|_| 0.3 * rng.normal() as f32).collect();
        data.push(&input, i % 3, "r");
    }
    data
}

/// Every shipped model: each card under models/ with an ONNX file beside it.
fn shipped_models() -> Vec<PathBuf> {
    let mut cards: Vec<PathBuf> = std::fs::read_dir(root().join("models"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    cards.retain(|p| p.extension().is_some_and(|e| e == "json") && p.with_extension("onnx").is_file());
    cards.sort();
    cards
}

/// The first `per_record` beats of MIT-BIH records 100 and 119 (normal beats; ventricular
/// bigeminy), converted by the project's own pipeline into `dir`.
fn real_beats(dir: &Path, per_record: usize) -> Vec<Beat> {
    let table = dir.join("beats");
    let out = ecgflow(&[
        "run",
        "pipelines/mitdb-to-parquet.toml",
        "--set",
        "sources.mitdb.records=100,119",
        "--set",
        &format!("sinks.table.path={}", table.display()),
    ]);
    assert!(out.status.success());
    let table = ecgflow::parquet_in::read_beats(&table, None).unwrap();
    assert_eq!(table.records.len(), 2);
    table
        .records
        .into_iter()
        .flat_map(|(_, beats)| beats.into_iter().take(per_record).map(|b| b.beat))
        .collect()
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

#[test]
fn tract_gives_burns_probabilities_on_real_beats_for_every_model() {
    let data = common::data_root();
    if !data.join("mitdb/100.hea").is_file() {
        eprintln!("no data at {}; skipping", data.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let beats = real_beats(tmp.path(), 200);
    assert!(beats.len() >= 390, "{} beats", beats.len());

    // The shipped beat models, and a tiny one trained here on these beats with RR features.
    let mut models = shipped_models();
    models.retain(|card| TrainedModel::open(card).unwrap().card.beat_input().is_ok());
    let mut examples = Dataset::new(259 + 3);
    for b in &beats {
        let label = match b.symbol.as_deref() {
            Some("N") => 0,
            Some("V") => 1,
            _ => 2,
        };
        examples.push(
            &beat_input(
                b,
                BeatExtras {
                    template: false,
                    rr: Some(RrReference::Local),
                },
            ),
            label,
            &b.stream,
        );
    }
    models.push(fresh_model(tmp.path(), "fresh-rr", true, &examples));

    for card in models {
        let burn = TrainedModel::open(&card).unwrap();
        let tract = OnnxClassifier::load(&card.with_extension("onnx")).unwrap();
        tract.check_card(&burn.card, &card).unwrap();
        let extras = burn.card.architecture.beat_extras();
        let input = burn.card.beat_input().unwrap();
        let window = (input.before, input.after);
        let mut inputs = Vec::new();
        let mut n = 0;
        for b in beats.iter().filter(|b| (b.before, b.after) == window) {
            inputs.extend(beat_input(b, extras));
            n += 1;
        }
        assert!(n >= 390, "{}: {n} beats with its window", card.display());
        for batch in [1, 37] {
            let expected = burn.predict(&inputs, batch).unwrap();
            let got = tract.predict(&inputs, batch).unwrap();
            assert_eq!(got.len(), n);
            let diff = max_difference(&expected, &got);
            eprintln!(
                "{}: {n} beats, batch {batch}: largest |burn - tract| = {diff:.2e}",
                card.display()
            );
            assert!(diff <= TOLERANCE, "{}: batch {batch}: {diff}", card.display());
        }
    }
}

#[test]
fn tract_gives_burns_probabilities_on_real_records_for_every_ptbxl_model() {
    let data = common::data_root().join("ptbxl");
    if !data.join("ptbxl_database.csv").is_file() {
        eprintln!("no PTB-XL data at {}; skipping", data.display());
        return;
    }
    let records = ecgflow_datasets::ptbxl::load(&data).unwrap();
    let fold9 = ecgflow_datasets::ptbxl::filter_folds(&records, &[9]);
    for card in shipped_models() {
        let burn = TrainedModel::open(&card).unwrap();
        let Ok(input) = burn.card.record_input() else { continue };
        let tract = OnnxClassifier::load(&card.with_extension("onnx"))
            .unwrap()
            .with_output(burn.card.output);
        tract.check_card(&burn.card, &card).unwrap();
        let mut inputs = Vec::new();
        for record in fold9.iter().take(12) {
            let (header, signal) = record
                .read_signal(&data, ecgflow_datasets::ptbxl::Resolution::Low)
                .unwrap();
            let leads: Vec<&str> = header.signals.iter().map(|s| s.description.as_str()).collect();
            inputs.extend(input.prepare(&leads, &signal).unwrap());
        }
        let expected = burn.predict(&inputs, 4).unwrap();
        let got = tract.predict(&inputs, 4).unwrap();
        let diff = max_difference(&expected, &got);
        eprintln!("{}: 12 records: largest |burn - tract| = {diff:.2e}", card.display());
        assert!(diff <= TOLERANCE, "{}: {diff}", card.display());
    }
}

/// A pipeline: synthetic ECG of two patients → band-pass → Pan-Tompkins → 90 + 1 + 168
/// beats → the `model` transform on `model` → jsonl at `out`.
fn classify_pipeline(dir: &Path, model: &Path, out: &Path) -> PathBuf {
    let text = format!(
        r#"
[sources.ecg]
type = "synthetic"
streams = 2
duration_s = 40.0
ectopic_probability = 0.1
seed = 5

[transforms.clean]
type = "bandpass"
inputs = ["ecg"]
low_hz = 0.5
high_hz = 40.0

[transforms.peaks]
type = "rpeaks"
inputs = ["clean"]
method = "pan_tompkins"

[transforms.beats]
type = "segment"
inputs = ["peaks"]
before = 90
after = 168
template = true

[transforms.classify]
type = "model"
inputs = ["beats"]
path = "{}"
max_batch = 37

[sinks.out]
type = "jsonl"
inputs = ["classify"]
path = "{}"
"#,
        model.display(),
        out.display()
    );
    let path = dir.join("classify.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Each beat's prediction in a jsonl file, keyed by stream and sample.
fn predictions(path: &Path) -> BTreeMap<(String, u64), Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "beat")
        .map(|v| {
            let key = (v["stream"].as_str().unwrap().to_owned(), v["sample"].as_u64().unwrap());
            (key, v["prediction"].clone())
        })
        .collect()
}

fn probabilities(p: &Value) -> Vec<f32> {
    p["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn the_model_transform_classifies_alike_on_onnx_and_burn_and_without_a_card() {
    let tmp = tempfile::tempdir().unwrap();
    let card = fresh_model(tmp.path(), "fresh", false, &random_examples(259, 64));
    let run = |model: &Path, runtime: Option<&str>, name: &str| {
        let out = tmp.path().join(format!("{name}.jsonl"));
        let pipeline = classify_pipeline(tmp.path(), model, &out);
        let mut args = vec!["run".to_owned(), pipeline.display().to_string()];
        if let Some(runtime) = runtime {
            args.extend(["--set".to_owned(), format!("transforms.classify.runtime={runtime}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(ecgflow(&args).status.success(), "{name}");
        predictions(&out)
    };
    // onnx is the default runtime.
    let onnx = run(&card, None, "onnx");
    let burn = run(&card.with_extension("bpk"), Some("burn"), "burn");
    assert!(onnx.len() > 60, "{} beats", onnx.len());
    assert_eq!(onnx.keys().collect::<Vec<_>>(), burn.keys().collect::<Vec<_>>());
    for (key, o) in &onnx {
        let b = &burn[key];
        assert_eq!((&o["model"], &o["version"]), (&b["model"], &b["version"]));
        let (po, pb) = (probabilities(o), probabilities(b));
        let diff = max_difference(&[po], std::slice::from_ref(&pb));
        assert!(diff <= TOLERANCE, "{key:?}: {o} vs {b}");
        // The same class, unless burn sees a near tie.
        let chosen = CLASSES.iter().position(|c| o["class"] == *c).unwrap();
        let top = pb.iter().copied().fold(0.0, f32::max);
        assert!(pb[chosen] >= top - TOLERANCE, "{key:?}: {o} vs {b}");
    }

    // An ONNX file alone: classes by index, the model named by its file, the window from the
    // beats.
    let alone = tmp.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(card.with_extension("onnx"), alone.join("bare.onnx")).unwrap();
    let bare = run(&alone.join("bare.onnx"), Some("onnx"), "bare");
    assert_eq!(bare.len(), onnx.len());
    for (key, o) in &onnx {
        let p = &bare[key];
        assert_eq!(p["model"], "bare");
        assert_eq!(p["version"], "");
        assert_eq!(probabilities(p), probabilities(o));
        let index: usize = p["class"].as_str().unwrap().parse().unwrap();
        assert_eq!(o["class"], CLASSES[index]);
    }
}

#[test]
fn validation_checks_the_onnx_file_against_its_card() {
    let tmp = tempfile::tempdir().unwrap();
    let card = fresh_model(tmp.path(), "m", false, &random_examples(259, 32));
    let out = tmp.path().join("out.jsonl");
    let pipeline = classify_pipeline(tmp.path(), &card, &out);
    let validate = |expect: &[&str]| {
        let out = ecgflow(&["validate", pipeline.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for e in expect {
            assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
        }
    };
    assert!(ecgflow(&["validate", pipeline.to_str().unwrap()]).status.success());

    // A card that does not describe the ONNX network: another window, another class list.
    let original = std::fs::read_to_string(&card).unwrap();
    let mut edited: Value = serde_json::from_str(&original).unwrap();
    edited["architecture"]["window"] = 200.into();
    std::fs::write(&card, edited.to_string()).unwrap();
    validate(&[
        "transforms.classify.path",
        "m.onnx",
        "m.json",
        "takes 259 values per beat",
        "200",
    ]);
    let mut edited: Value = serde_json::from_str(&original).unwrap();
    edited["classes"] = serde_json::json!(["N", "V"]);
    std::fs::write(&card, edited.to_string()).unwrap();
    validate(&["transforms.classify.path", "3 outputs", "2 class names"]);
    std::fs::write(&card, &original).unwrap();

    // No ONNX file beside the card: how to make one; a file that is not ONNX.
    let onnx = card.with_extension("onnx");
    std::fs::rename(&onnx, tmp.path().join("elsewhere.onnx")).unwrap();
    validate(&["transforms.classify.path", "m.onnx", "ecgflow export"]);
    std::fs::write(&onnx, "not a network").unwrap();
    validate(&["transforms.classify.path", "m.onnx", "not an ONNX model"]);
}

/// The model transform batches beats across the streams of a worker: with batches larger
/// than any stream, every beat still comes out once, classified, in its stream's order, on
/// one worker as on two.
#[test]
fn batches_span_streams_and_lose_no_beat() {
    let tmp = tempfile::tempdir().unwrap();
    let model = root().join("models/resecanet-ds1.json");
    let out = tmp.path().join("classified.jsonl");
    let pipeline = classify_pipeline(tmp.path(), &model, &out);
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("streams = 2", "streams = 5")
        + &format!(
            "\n[sinks.raw]\ntype = \"jsonl\"\ninputs = [\"beats\"]\npath = \"{}\"\n",
            tmp.path().join("beats.jsonl").display()
        );
    std::fs::write(&pipeline, text).unwrap();
    let order = |path: &Path| -> Vec<(String, u64)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["kind"] == "beat")
            .map(|v| (v["stream"].as_str().unwrap().to_owned(), v["sample"].as_u64().unwrap()))
            .collect()
    };
    let per_stream = |beats: Vec<(String, u64)>| {
        let mut map: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (stream, sample) in beats {
            map.entry(stream).or_default().push(sample);
        }
        map
    };
    let mut results = Vec::new();
    for workers in ["1", "2"] {
        let args = [
            "run",
            pipeline.to_str().unwrap(),
            "--quiet",
            "--workers",
            workers,
            "--set",
            "transforms.classify.max_batch=1000",
            "--set",
            "transforms.classify.max_delay_ms=3600000",
        ];
        assert!(ecgflow(&args).status.success());
        let classified = per_stream(order(&out));
        assert_eq!(classified.len(), 5);
        assert_eq!(classified, per_stream(order(&tmp.path().join("beats.jsonl"))));
        assert_eq!(
            predictions(&out).len(),
            classified.values().map(Vec::len).sum::<usize>()
        );
        results.push(predictions(&out));
    }
    // The same verdicts (probabilities may differ in the last bits with the batch sizes).
    let classes = |p: &BTreeMap<(String, u64), Value>| -> Vec<((String, u64), String)> {
        p.iter()
            .map(|(k, v)| (k.clone(), v["class"].as_str().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(classes(&results[0]), classes(&results[1]));
}
