//! Training, evaluation and export end to end on real MIT-BIH beats, with tiny networks and
//! a few steps (the real runs are the pipelines under pipelines/, see models/README.md).
//! Each test prints a note and passes when the data is absent (CI has it).

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::{ecgflow, json, mitdb_data};

/// Beats of a few records with normal, supraventricular and ventricular beats, as Parquet.
fn beats(data: &Path, dir: &Path) -> PathBuf {
    let path = dir.join("beats");
    let out = ecgflow(
        &[
            "run",
            "pipelines/mitdb-to-parquet.toml",
            "--set",
            "sources.mitdb.records=100,106,119,209,220,223",
            "--set",
            &format!("sinks.table.path={}", path.display()),
        ],
        data,
    );
    assert!(out.status.success());
    path
}

/// `--set` arguments that shrink a training pipeline to seconds.
fn tiny(beats: &Path, out: &Path) -> Vec<String> {
    [
        format!("sources.beats.path={}", beats.display()),
        "sources.beats.records=all".to_owned(),
        format!("sinks.model.path={}", out.display()),
        "sinks.model.widths=8,16".to_owned(),
        "sinks.model.epochs=4".to_owned(),
        "sinks.model.steps_per_epoch=12".to_owned(),
        "sinks.model.learning_rate=0.003".to_owned(),
        "sinks.model.patience=0".to_owned(),
        "sinks.model.smote_ratio=0.2".to_owned(),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_owned(), s])
    .collect()
}

/// `ecgflow train PIPELINE` arguments with [`tiny`]'s settings.
fn train_args(pipeline: &str, beats: &Path, out: &Path) -> Vec<String> {
    let mut args = vec!["train".to_owned(), pipeline.to_owned()];
    args.extend(tiny(beats, out));
    args
}

/// `ecgflow validate` on the pipeline of `train_args` (with more `--set`s): it must refuse
/// it (exit status 1); returns what it said.
fn refused_by_validate(train_args: &[String], sets: &[&str], data: &Path) -> String {
    let mut args: Vec<&str> = train_args.iter().map(String::as_str).collect();
    args[0] = "validate";
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = ecgflow(&args, data);
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The beats a classification report counts: its classes' support added up.
fn support(report: &Value) -> u64 {
    report["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["support"].as_u64().unwrap())
        .sum()
}

const REPORT_KEYS: [&str; 9] = [
    "model",
    "data",
    "accuracy",
    "per_class",
    "macro_avg",
    "weighted_avg",
    "ec57",
    "kappa",
    "confusion",
];

#[test]
fn the_study_pipeline_trains_reports_evaluates_resumes_and_exports() {
    let Some(data) = mitdb_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let beats = beats(&data, tmp.path());
    let out = tmp.path().join("model");
    let args = train_args("pipelines/train-resecanet-study.toml", &beats, &out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = ecgflow(&args, &data);
    assert!(run.status.success());

    // The loss falls over a few dozen steps on real beats.
    let history = json(&out.join("history.json"));
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 4);
    let loss = |r: &Value| r["train_loss"].as_f64().unwrap();
    assert!(loss(&history[3]) < loss(&history[0]), "{history:?}");
    for file in [
        "resecanet-study.bpk",
        "resecanet-study.json",
        "curves.png",
        "loss.png",
        "history.csv",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }

    // The test part's report has the documented keys and the real class balance: its
    // support adds up to the test beats, none of them synthetic.
    let report = json(&out.join("test-report.json"));
    for key in REPORT_KEYS {
        assert!(report.get(key).is_some(), "test-report.json lacks {key}");
    }
    assert_eq!(support(&report), report["data"]["beats"].as_u64().unwrap());
    assert!(out.join("test-confusion.png").is_file());

    // `eval beats` on the written test part agrees with the training run's own report.
    let eval_json = tmp.path().join("eval.json");
    let model = out.join("resecanet-study.json");
    let eval = ecgflow(
        &[
            "eval",
            "beats",
            "--model",
            model.to_str().unwrap(),
            "--data",
            out.join("test-beats.parquet").to_str().unwrap(),
            "--json",
            eval_json.to_str().unwrap(),
            "--plots",
            tmp.path().join("plots").to_str().unwrap(),
        ],
        &data,
    );
    assert!(eval.status.success());
    let evaluated = json(&eval_json);
    assert_eq!(evaluated["accuracy"], report["accuracy"]);
    assert_eq!(evaluated["confusion"], report["confusion"]);
    assert!(tmp.path().join("plots/confusion.png").is_file());
    // Without `--json` the report is printed only.
    let test_part = out.join("test-beats.parquet");
    let printed = ecgflow(
        &[
            "eval",
            "beats",
            "--model",
            model.to_str().unwrap(),
            "--data",
            test_part.to_str().unwrap(),
        ],
        &data,
    );
    assert!(printed.status.success());
    let accuracy = format!("accuracy {:.4}", report["accuracy"].as_f64().unwrap());
    assert!(
        String::from_utf8_lossy(&printed.stdout).contains(&accuracy),
        "{accuracy}"
    );

    // Started again, the run finds its checkpoint complete and trains no further.
    let again = ecgflow(&args, &data);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("resumed after epoch 4"));
    assert_eq!(json(&out.join("history.json")).as_array().unwrap().len(), 4);

    // The model exports to ONNX.
    let onnx = tmp.path().join("m.onnx");
    common::export_onnx(&model, &onnx, &data);
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);
}

#[test]
fn cross_validation_by_patient_reports_mean_and_std() {
    let Some(data) = mitdb_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let beats = beats(&data, tmp.path());
    let out = tmp.path().join("cv");
    let mut args = train_args("pipelines/train-resecanet.toml", &beats, &out);

    // The premature-beat rule needs the AAMI classes N and S, the jκ index S and V, and a
    // minimum probability a class the label map has.
    let stderr = refused_by_validate(&args, &["sinks.model.label_map=study6"], &data);
    assert!(
        stderr.contains("sinks.model.premature_rule: needs classes N and S"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sinks.model.decision_metric: the jκ index needs classes S and V"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sinks.model.min_probability: no class \"S\" in label map \"study6\""),
        "{stderr}"
    );

    // The pipeline chooses its decisions out of fold, which a K-fold run does not do.
    args.extend(["--set".to_owned(), "sinks.model.k_folds=3".to_owned()]);
    let stderr = refused_by_validate(&args, &[], &data);
    assert!(
        stderr.contains("sinks.model.decision_folds: is for a single training run"),
        "{stderr}"
    );

    args.extend(["--set".to_owned(), "sinks.model.decision_folds=0".to_owned()]);
    args.extend(["--set".to_owned(), "sinks.model.epochs=1".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(ecgflow(&args, &data).status.success());
    let cv = json(&out.join("cv.json"));
    assert_eq!(cv["folds"], 3);
    assert!(cv["summary"]["kappa"]["mean"].is_number() && cv["summary"]["jk"]["mean"].is_number());
    assert_eq!(cv["group_by"], "patient");
    let accuracy = &cv["summary"]["accuracy"];
    assert!(accuracy["mean"].as_f64().unwrap() > 0.0 && accuracy["std"].as_f64().unwrap() >= 0.0);
    assert_eq!(cv["per_fold"].as_array().unwrap().len(), 3);
    // Every beat is tested exactly once over the folds.
    let pooled: u64 = cv["summary"]["pooled"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    let table = json(&out.join("fold-1/test-report.json"));
    assert!(table["accuracy"].is_number());
    // What follows each fold's network was chosen on that fold's validation part, and only
    // kept where it did better there than the network alone.
    let card = json(&out.join("fold-1/resecanet-ds1.json"));
    let choice = &card["training"]["decisions"];
    assert_eq!(choice["part"], "validation");
    let (alone, with) = (
        choice["network_alone"].as_f64().unwrap(),
        choice["with_decisions"].as_f64().unwrap(),
    );
    assert!(with >= alone, "{choice}");
    assert_eq!(card["premature_rule"], choice["premature_rule"], "{card}");
    let min_probability = card.get("min_probability").cloned().unwrap_or(serde_json::json!({}));
    assert_eq!(min_probability, choice["min_probability"], "{card}");
    let nothing_kept = card["premature_rule"].is_null() && min_probability == serde_json::json!({});
    assert_eq!(nothing_kept, with == alone, "{card}");
    assert!(pooled > 0);
}

#[test]
fn decisions_chosen_out_of_fold_score_every_training_beat_once() {
    let Some(data) = mitdb_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let beats = beats(&data, tmp.path());
    // One epoch, two decision folds, and `extra` settings.
    let train = |out: &Path, extra: &[&str]| {
        let mut args = train_args("pipelines/train-resecanet.toml", &beats, out);
        for set in ["sinks.model.decision_folds=2", "sinks.model.epochs=1"]
            .iter()
            .chain(extra)
        {
            args.extend(["--set".to_owned(), set.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ecgflow(&args, &data)
    };
    let out = tmp.path().join("oof");
    let run = train(&out, &[]);
    assert!(run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("decision fold 2/2"));

    // Two more trainings, each scoring the three patients it left out: every beat of the
    // run (no test part here) is scored once, and the decisions are chosen on those scores.
    let card = json(&out.join("resecanet-ds1.json"));
    let counts = &card["training"]["class_counts"];
    let total = |part: &str| -> u64 {
        counts[part]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum()
    };
    let report = json(&out.join("out-of-fold-report.json"));
    assert_eq!(report["data"]["part"], "out-of-fold");
    assert_eq!(
        report["data"]["beats"].as_u64().unwrap(),
        total("train") + total("validation")
    );
    assert_eq!(support(&report), report["data"]["beats"].as_u64().unwrap());
    assert!(out.join("out-of-fold-plots/confusion.png").is_file());
    let choice = &card["training"]["decisions"];
    assert_eq!(choice["part"], "out-of-fold");
    assert_eq!(&report["decisions"], choice);
    // The pipeline chooses for the jκ index, which the report computes from the same scores.
    assert_eq!(choice["metric"], "jk");
    let with = choice["with_decisions"].as_f64().unwrap();
    assert!(with >= choice["network_alone"].as_f64().unwrap());
    assert!((report["jk"].as_f64().unwrap() - with).abs() < 1e-12, "{report}");

    // The three trainings ran at once, one per core (where there are several); one at a time
    // they give the same.
    let alone = tmp.path().join("oof-alone");
    assert!(train(&alone, &["sinks.model.concurrent_trainings=1"]).status.success());
    let alone_report = json(&alone.join("out-of-fold-report.json"));
    assert_eq!(alone_report["confusion"], report["confusion"]);
    assert_eq!(alone_report["decisions"], report["decisions"]);
    assert_eq!(
        json(&alone.join("history.json"))[0]["train_loss"],
        json(&out.join("history.json"))[0]["train_loss"]
    );
}

#[test]
fn eval_beats_names_what_is_wrong() {
    let Some(data) = mitdb_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing.json");
    let out = ecgflow(
        &[
            "eval",
            "beats",
            "--model",
            missing.to_str().unwrap(),
            "--data",
            "out",
            "--json",
            tmp.path().join("r.json").to_str().unwrap(),
        ],
        &data,
    );
    assert!(!out.status.success());
    // It names the card it looked for and the weights that go with it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing.json") && stderr.contains("nothing.bpk"),
        "{stderr}"
    );
}

#[test]
fn vgg16_on_scalograms_trains_from_raw_beats_evaluates_and_exports() {
    let Some(data) = mitdb_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let beats = beats(&data, tmp.path());
    let out = tmp.path().join("vgg");
    let mut args = train_args("pipelines/train-vgg16-cwt.toml", &beats, &out);
    // Two records and the narrowest network: VGG16 is the slowest of the beat models.
    for set in [
        "sources.beats.records=119,209",
        "sinks.model.widths=4,8",
        "sinks.model.dense=16",
        "sinks.model.batch_size=32",
        "sinks.model.epochs=3",
        "sinks.model.test_fraction=0.2",
        "sinks.model.group_by=beat",
    ] {
        args.extend(["--set".to_owned(), set.to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(ecgflow(&args, &data).status.success());

    let history = json(&out.join("history.json"));
    let history = history.as_array().unwrap();
    let loss = |r: &Value| r["train_loss"].as_f64().unwrap();
    assert!(loss(&history[2]) < loss(&history[0]), "{history:?}");

    // The card: a VGG16 whose fixed first layer is the study's CWT, on raw beat windows.
    let card = json(&out.join("vgg16-cwt-ds1.json"));
    assert_eq!(card["architecture"]["type"], "vgg16");
    assert_eq!(card["architecture"]["height"], 38);
    assert_eq!(card["architecture"]["width"], 259);
    assert_eq!(card["architecture"]["cwt"]["wavelet"], "mexh");
    assert_eq!(card["input"]["before"], 90);

    // `eval beats` reproduces the training run's own test report.
    let eval_json = tmp.path().join("eval.json");
    let model = out.join("vgg16-cwt-ds1.json");
    let eval = ecgflow(
        &[
            "eval",
            "beats",
            "--model",
            model.to_str().unwrap(),
            "--data",
            out.join("test-beats.parquet").to_str().unwrap(),
            "--json",
            eval_json.to_str().unwrap(),
        ],
        &data,
    );
    assert!(eval.status.success());
    let report = json(&out.join("test-report.json"));
    assert_eq!(json(&eval_json)["confusion"], report["confusion"]);

    let onnx = tmp.path().join("vgg.onnx");
    common::export_onnx(&model, &onnx, &data);
}
