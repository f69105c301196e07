//! The PTB-XL models end to end on real records, with tiny networks and a few steps: the
//! signal model and the image model train through their pipelines, keep the decision
//! thresholds chosen on the validation part, and `eval ptbxl` scores them on fold 9 with
//! the documented report keys. The real runs are the pipelines (see models/README.md).
//! Each test prints a note and passes when the data is absent (CI has it).

use std::path::Path;
use std::process::Output;

use ecgflow_datasets::ptbxl;
use serde_json::Value;

mod common;

use common::{ecgflow, json, ptbxl_data};

/// `ecgflow eval ptbxl` of `model` on fold 9, the report written to `report` (and plots to
/// `plots`).
fn eval_fold9(model: &Path, data: &Path, report: &Path, plots: Option<&Path>) -> Output {
    let ptbxl = data.join("ptbxl");
    let mut args = vec![
        "eval",
        "ptbxl",
        "--model",
        model.to_str().unwrap(),
        "--data",
        ptbxl.to_str().unwrap(),
        "--folds",
        "9",
        "--json",
        report.to_str().unwrap(),
    ];
    if let Some(plots) = plots {
        args.extend(["--plots", plots.to_str().unwrap()]);
    }
    ecgflow(&args, data)
}

/// Trains `pipeline` on the first 150 records (folds 1-9, fold 9 validating) with the
/// given extra settings, then scores it on all of fold 9; returns the card and the report.
fn train_and_evaluate(data: &Path, dir: &Path, pipeline: &str, name: &str, extra: &[&str]) -> (Value, Value) {
    let out = dir.join(name);
    let mut args: Vec<String> = vec!["train".into(), pipeline.into()];
    for set in [
        "sources.ptbxl.limit=150".to_owned(),
        format!("sinks.model.path={}", out.display()),
        format!("sinks.model.name={name}"),
        "sinks.model.epochs=3".to_owned(),
        "sinks.model.steps_per_epoch=6".to_owned(),
        "sinks.model.patience=0".to_owned(),
        "sinks.model.learning_rate=0.003".to_owned(),
    ]
    .iter()
    .map(String::as_str)
    .chain(extra.iter().copied())
    {
        args.extend(["--set".to_owned(), set.to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = ecgflow(&args, data);
    assert!(run.status.success());

    let history = json(&out.join("history.json"));
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 3);
    let loss = |r: &Value| r["train_loss"].as_f64().unwrap();
    assert!(loss(&history[2]) < loss(&history[0]), "{history:?}");
    assert!(history[2]["val_macro_auc"].is_number(), "{history:?}");
    assert!(out.join("validation-report.json").is_file());
    assert!(out.join("validation-roc.png").is_file());

    // The card: sigmoid outputs over the superclasses, one threshold each.
    let card = json(&out.join(format!("{name}.json")));
    assert_eq!(card["output"], "sigmoid");
    assert_eq!(card["classes"], serde_json::json!(ptbxl::SUPERCLASSES));
    assert_eq!(card["thresholds"].as_array().unwrap().len(), 5);

    let report_path = dir.join(format!("{name}-fold9.json"));
    let plots = dir.join(format!("{name}-plots"));
    let eval = eval_fold9(&out.join(format!("{name}.json")), data, &report_path, Some(&plots));
    assert!(eval.status.success());
    assert!(plots.join("roc.png").is_file());
    (card, json(&report_path))
}

/// The report has the documented keys, and its figures are consistent: the supports are
/// the fold's records with each class, the AUCs lie in their bootstrap intervals' range.
fn check_report(report: &Value, data: &Path) {
    for key in [
        "model",
        "data",
        "per_class",
        "macro_auc",
        "micro_auc",
        "macro_f1",
        "macro_auc_ci95",
        "micro_auc_ci95",
        "per_class_auc_ci95",
        "examples",
    ] {
        assert!(report.get(key).is_some(), "the report lacks {key}");
    }
    let records = ptbxl::filter_folds(&ptbxl::load(&data.join("ptbxl")).unwrap(), &[9]);
    let labelled: Vec<_> = records.iter().filter(|r| r.superclasses.contains(&true)).collect();
    assert_eq!(report["examples"].as_u64().unwrap() as usize, labelled.len());
    for (k, class) in report["per_class"].as_array().unwrap().iter().enumerate() {
        let support = labelled.iter().filter(|r| r.superclasses[k]).count();
        assert_eq!(class["support"].as_u64().unwrap() as usize, support, "{class}");
        for key in ["sensitivity", "specificity", "f1", "auc", "threshold"] {
            assert!(class.get(key).is_some(), "per_class lacks {key}");
        }
    }
    let auc = report["macro_auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc));
    let ci = report["macro_auc_ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() <= ci[1].as_f64().unwrap());
}

#[test]
fn the_signal_model_trains_and_is_scored_on_fold_9() {
    let Some(data) = ptbxl_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (card, report) = train_and_evaluate(
        &data,
        tmp.path(),
        "pipelines/train-ptbxl-signal.toml",
        "signal",
        &["sinks.model.widths=4,8", "sinks.model.batch_size=16"],
    );
    assert_eq!(card["input"]["leads"].as_array().unwrap().len(), 12);
    assert_eq!(card["input"]["samples"], 1000);
    assert!(card["input"]["image"].is_null());
    assert_eq!(card["architecture"]["leads"], 12);
    check_report(&report, &data);
}

#[test]
fn the_image_model_trains_and_is_scored_on_fold_9() {
    let Some(data) = ptbxl_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (card, report) = train_and_evaluate(
        &data,
        tmp.path(),
        "pipelines/train-ptbxl-image.toml",
        "image",
        &["sinks.model.widths=4,8,16", "sinks.model.image_size=64"],
    );
    assert_eq!(card["architecture"]["type"], "resdscnet");
    assert_eq!(card["input"]["image"]["width"], 64);
    check_report(&report, &data);

    // The image model exports to ONNX like the beat models.
    let onnx = tmp.path().join("image.onnx");
    let model = tmp.path().join("image/image.json");
    common::export_onnx(&model, &onnx, &data);
}

#[test]
fn multi_hot_labels_of_known_records() {
    let Some(data) = ptbxl_data() else { return };
    let records = ptbxl::load(&data.join("ptbxl")).unwrap();
    let by_id = |id: u32| records.iter().find(|r| r.ecg_id == id).unwrap();
    // 00001: NORM 100, LVOLT, SR (LVOLT and SR are not diagnostic).
    assert_eq!(by_id(1).superclass_names(), ["NORM"]);
    // 00008: IMI 35 → MI.
    assert_eq!(by_id(8).superclass_names(), ["MI"]);
    // 00146: IMI, ISCLA, SEHYP → MI, STTC, HYP.
    assert_eq!(by_id(146).superclass_names(), ["MI", "STTC", "HYP"]);
    // 00017: atrial flutter only, a rhythm statement: no diagnostic superclass.
    assert!(by_id(17).superclass_names().is_empty());
}

#[test]
fn eval_ptbxl_names_what_is_wrong() {
    let Some(data) = ptbxl_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let json_out = tmp.path().join("r.json");
    // A beat model is refused with the reason.
    let out = eval_fold9(Path::new("models/resecanet-ds1.json"), &data, &json_out, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("single beats"));
    assert!(!json_out.exists());
}

/// The `record_model` transform classifies records as `eval ptbxl` scores them: run over
/// fold 9 through the engine (burn, like the eval), the labels it attaches give each
/// class's sensitivity and specificity exactly as the eval's report has them.
#[test]
fn the_record_model_transform_agrees_with_eval_ptbxl() {
    let Some(data) = ptbxl_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let lines = tmp.path().join("predictions.jsonl");
    let sink = format!("sinks.predictions.path={}", lines.display());
    let run = ecgflow(
        &[
            "run",
            "pipelines/classify-ptbxl.toml",
            "--set",
            "transforms.classify.runtime=burn",
            "--set",
            &sink,
        ],
        &data,
    );
    assert!(run.status.success());
    let report_path = tmp.path().join("report.json");
    let eval = eval_fold9(Path::new("models/ptbxl-image.json"), &data, &report_path, None);
    assert!(eval.status.success());
    let report = json(&report_path);

    let text = std::fs::read_to_string(&lines).unwrap();
    let mut truth: std::collections::HashMap<String, Vec<bool>> = Default::default();
    let mut labels: std::collections::HashMap<String, Vec<String>> = Default::default();
    let classes: Vec<String> = report["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].as_str().unwrap().to_owned())
        .collect();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let stream = v["stream"].as_str().unwrap().to_owned();
        match v["kind"].as_str().unwrap() {
            "start" => {
                let set = classes.iter().map(|c| v["meta"][c] == "1").collect();
                truth.insert(stream, set);
            }
            "tensor" => {
                let prediction = &v["prediction"];
                assert_eq!(prediction["model"], "ptbxl-image");
                assert_eq!(prediction["probabilities"].as_array().unwrap().len(), classes.len());
                assert_eq!(v["shape"], serde_json::json!([224, 224]));
                let set = prediction["labels"]
                    .as_array()
                    .map_or_else(Vec::new, |l| l.iter().map(|c| c.as_str().unwrap().to_owned()).collect());
                labels.insert(stream, set);
            }
            _ => {}
        }
    }
    // Every record is classified; the report counts those with a superclass.
    assert_eq!(labels.len(), truth.len());
    let labelled: Vec<&String> = truth.keys().filter(|s| truth[*s].contains(&true)).collect();
    assert_eq!(labelled.len() as u64, report["examples"].as_u64().unwrap());
    for (k, class) in classes.iter().enumerate() {
        let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
        for stream in &labelled {
            match (truth[*stream][k], labels[*stream].contains(class)) {
                (true, true) => tp += 1.0,
                (false, true) => fp += 1.0,
                (false, false) => tn += 1.0,
                (true, false) => fn_ += 1.0,
            }
        }
        let reported = &report["per_class"][k];
        let close = |key: &str, value: f64| {
            let want = reported[key].as_f64().unwrap();
            assert!(
                (value - want).abs() < 1e-9,
                "{class} {key}: {value} from the engine, {want} in the report"
            );
        };
        close("sensitivity", tp / (tp + fn_));
        close("specificity", tn / (tn + fp));
    }
}

#[test]
fn beat_and_record_models_are_refused_where_they_do_not_fit() {
    let Some(data) = ptbxl_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let sink = format!("sinks.predictions.path={}", tmp.path().join("p.jsonl").display());
    let beat_model = ecgflow(
        &[
            "run",
            "pipelines/classify-ptbxl.toml",
            "--set",
            "transforms.classify.path=models/resecanet-ds1.json",
            "--set",
            &sink,
        ],
        &data,
    );
    assert!(!beat_model.status.success());
    let stderr = String::from_utf8_lossy(&beat_model.stderr);
    assert!(
        stderr.contains("resecanet-ds1") && stderr.contains("`model` step"),
        "{stderr}"
    );

    let record_model = ecgflow(
        &[
            "run",
            "pipelines/demo.toml",
            "--set",
            "transforms.classify.path=models/ptbxl-signal.json",
        ],
        &data,
    );
    assert!(!record_model.status.success());
    let stderr = String::from_utf8_lossy(&record_model.stderr);
    assert!(
        stderr.contains("ptbxl-signal") && stderr.contains("`record_model` step"),
        "{stderr}"
    );
}

/// `record_model` → `explain` → sinks on real records: Kernel SHAP over the image model's
/// 8 × 8 patches sums to the probability minus the background's mean (the efficiency
/// property), one attribution per pixel; Grad-CAM of the signal model covers its 12 leads;
/// the pictures and the Parquet table are written.
#[test]
fn the_explain_transform_explains_classified_records() {
    let Some(data) = ptbxl_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| -> Vec<Value> {
        let lines = tmp.path().join(format!("{name}.jsonl"));
        let sets = [
            "sources.ptbxl.limit=2".to_owned(),
            "sinks.predictions.inputs=[\"explain\"]".to_owned(),
            format!("sinks.predictions.path={}", lines.display()),
            format!("sinks.pictures.path={}", tmp.path().join(name).display()),
            format!(
                "sinks.attributions.path={}",
                tmp.path().join(format!("{name}.parquet")).display()
            ),
        ];
        let mut args = vec!["run", "pipelines/explain-ptbxl.toml"];
        for set in sets.iter().map(String::as_str).chain(extra.iter().copied()) {
            args.extend(["--set", set]);
        }
        assert!(ecgflow(&args, &data).status.success());
        assert_eq!(std::fs::read_dir(tmp.path().join(name)).unwrap().count(), 2);
        assert!(tmp.path().join(format!("{name}.parquet")).is_file());
        std::fs::read_to_string(&lines)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["kind"] == "explanation")
            .collect()
    };

    let background = format!("transforms.explain.background={}", data.join("ptbxl").display());
    let shap = run("shap", &["transforms.explain.method=shap", &background]);
    assert_eq!(shap.len(), 2);
    for e in &shap {
        assert_eq!(e["shape"], serde_json::json!([224, 224]));
        assert_eq!(e["attribution"].as_array().unwrap().len(), 224 * 224);
        assert_eq!(e["explained_class"], e["prediction"]["class"]);
        let features = e["features"].as_array().unwrap();
        assert_eq!(features.len(), 64);
        let sum: f64 = features.iter().map(|f| f["value"].as_f64().unwrap()).sum();
        let gap = e["probability"].as_f64().unwrap() - e["base_value"].as_f64().unwrap();
        assert!(
            (sum - gap).abs() < 1e-4,
            "SHAP sums to {sum}, the probability less the base value is {gap}"
        );
    }

    let signal = "models/ptbxl-signal.json";
    let cam = run(
        "gradcam",
        &[
            &format!("transforms.classify.path={signal}"),
            &format!("transforms.explain.path={signal}"),
        ],
    );
    assert_eq!(cam.len(), 2);
    for e in &cam {
        assert_eq!(e["leads"].as_array().unwrap().len(), 12);
        let attribution = e["attribution"].as_array().unwrap();
        assert_eq!(attribution.len(), 12 * 1000);
        assert!(
            attribution.iter().all(|v| v.as_f64().unwrap() >= 0.0),
            "Grad-CAM is rectified"
        );
    }
}
