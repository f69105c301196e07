//! Explanations end to end: the `explain` transform in a pipeline (Grad-CAM and LIME on the
//! shipped model, written as JSONL, Parquet and pictures), and `ecgflow eval explain` on real
//! MIT-BIH beats: every method must beat random deletion on the trained model.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn ecgflow(args: &[&str]) -> std::process::Output {
    common::ecgflow(args, &common::data_root())
}

fn check(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "ecgflow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Synthetic ECG of two patients → beats → the shipped DS1 model → Grad-CAM and LIME (three
/// beats per stream each) → JSONL, Parquet and PNG under `dir`.
fn explain_pipeline(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"
[sources.ecg]
type = "synthetic"
streams = 2
duration_s = 20.0
ectopic_probability = 0.1
seed = 7

[transforms.clean]
type = "bandpass"
inputs = ["ecg"]
low_hz = 0.5
high_hz = 40.0

[transforms.peaks]
type = "rpeaks"
inputs = ["clean"]

[transforms.beats]
type = "segment"
inputs = ["peaks"]
before = 90
after = 168
template = true

[transforms.classify]
type = "model"
inputs = ["beats"]
path = "models/resecanet-ds1.json"

[transforms.gradcam]
type = "explain"
inputs = ["classify"]
path = "models/resecanet-ds1.json"
max_per_stream = 3

[transforms.lime]
type = "explain"
inputs = ["classify"]
path = "models/resecanet-ds1.json"
method = "lime"
samples = 64
max_per_stream = 3

[sinks.jsonl]
type = "jsonl"
inputs = ["gradcam", "lime"]
path = "{dir}/explanations.jsonl"

[sinks.table]
type = "parquet"
inputs = ["gradcam", "lime"]
path = "{dir}/explanations.parquet"

[sinks.pictures]
type = "png"
inputs = ["gradcam", "lime"]
path = "{dir}/pictures"
max_per_stream = 0
"#,
        dir = dir.display()
    );
    let path = dir.join("explain.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_explain_transform_writes_attributions_as_jsonl_parquet_and_pictures() {
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = explain_pipeline(tmp.path());
    check(&ecgflow(&["run", pipeline.to_str().unwrap(), "--quiet"]));

    let text = std::fs::read_to_string(tmp.path().join("explanations.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "explanation")
        .collect();
    assert_eq!(rows.len(), 2 * 2 * 3, "two streams × two methods × three beats");
    for row in &rows {
        let attribution: Vec<f64> = row["attribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(attribution.len(), 259);
        // The class explained is the one the model transform predicted.
        assert_eq!(row["explained_class"], row["prediction"]["class"]);
        match row["method"].as_str().unwrap() {
            "gradcam" => assert!(attribution.iter().all(|&a| a >= 0.0)),
            "lime" => {
                assert_eq!(row["segments"].as_array().unwrap().len(), 12);
                assert!(row["fit_r2"].as_f64().unwrap() <= 1.0);
            }
            other => panic!("unexpected method {other}"),
        }
    }
    let pictures = std::fs::read_dir(tmp.path().join("pictures")).unwrap().count();
    assert_eq!(pictures, rows.len());

    if let Some(python) = common::python_with_pyarrow() {
        let script = "import sys, pyarrow.parquet as pq\n\
                      t = pq.read_table(sys.argv[1])\n\
                      print(t.num_rows, t.schema.metadata[b'ecgflow.schema'].decode(), \
                      sorted(set(t.column('method').to_pylist())), \
                      set(len(a) for a in t.column('attribution').to_pylist()), \
                      ','.join(sorted(set(t.column('decided_by').to_pylist()))))";
        let table = tmp.path().join("explanations.parquet");
        let out = common::python(&python, script, &[table.to_str().unwrap()]);
        // The Parquet table says what decided each verdict, as the JSONL does.
        let decided_by: std::collections::BTreeSet<&str> = rows
            .iter()
            .map(|r| r["prediction"]["decided_by"].as_str().unwrap())
            .collect();
        let decided_by = decided_by.into_iter().collect::<Vec<_>>().join(",");
        assert_eq!(
            out.trim(),
            format!("12 explanations ['gradcam', 'lime'] {{259}} {decided_by}")
        );
    }
}

/// `ecgflow eval explain` of `model` on 12 beats of MIT-BIH 200 and 232 (normal,
/// ventricular and atrial premature beats), SHAP's background from 119: the report's
/// methods, and the plots directory.
fn explain_report(data: &Path, model: &str, tmp: &Path) -> (Vec<Value>, PathBuf) {
    let table = tmp.join("beats");
    if !table.is_dir() {
        let out = common::ecgflow(
            &[
                "run",
                "pipelines/mitdb-to-parquet.toml",
                "--quiet",
                "--set",
                "sources.mitdb.records=119,200,232",
                "--set",
                &format!("sinks.table.path={}", table.display()),
            ],
            data,
        );
        check(&out);
    }
    let name = Path::new(model).file_stem().unwrap().to_str().unwrap();
    let report = tmp.join(format!("{name}.json"));
    let plots = tmp.join(format!("{name}-plots"));
    check(&ecgflow(&[
        "eval",
        "explain",
        "--model",
        model,
        "--data",
        table.to_str().unwrap(),
        "--records",
        "200,232",
        "--background-records",
        "119",
        "--beats",
        "12",
        "--json",
        report.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
    ]));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let methods = report["methods"].as_array().unwrap().clone();
    assert_eq!(methods.len(), 3);
    (methods, plots)
}

/// Deletion below random, attributions that change with random weights, full curves.
fn assert_faithful(m: &Value) {
    let name = m["method"].as_str().unwrap();
    let f = |key: &str| m[key].as_f64().unwrap_or_else(|| panic!("{name}: {key} missing"));
    assert_eq!(f("beats"), 12.0);
    assert!(
        f("deletion_auc") < f("random_deletion_auc"),
        "{name}: deletion AUC {} is not below random {}",
        f("deletion_auc"),
        f("random_deletion_auc")
    );
    // Attributions of a randomly initialised network are not those of the trained one.
    assert!(
        f("randomisation_spearman") < 0.9,
        "{name}: {}",
        f("randomisation_spearman")
    );
    assert_eq!(m["deletion_curve"].as_array().unwrap().len(), 13);
}

#[test]
fn every_method_beats_random_deletion_on_the_trained_model() {
    let Some(data) = common::mitdb_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // The study's model, which sees the beat alone: all three methods.
    let (methods, plots) = explain_report(&data, "models/resecanet-study.json", tmp.path());
    methods.iter().for_each(assert_faithful);
    let shap = methods.iter().find(|m| m["method"] == "shap").unwrap();
    assert!(shap["max_efficiency_error"].as_f64().unwrap() < 1e-4);
    assert!(plots.join("deletion.png").is_file());
    assert!(plots.join("shap_V.png").is_file());
    // The inter-patient model, which compares the beat with its template: SHAP and LIME.
    // On these beats its Grad-CAM ranks the beat's samples worse than random (README,
    // "Explanations"): the map is shared by the beat and template channels, and what tells
    // a normal beat is that it matches the template, wherever it does.
    let (methods, _) = explain_report(&data, "models/resecanet-ds1.json", tmp.path());
    for m in methods.iter().filter(|m| m["method"] != "gradcam") {
        assert_faithful(m);
    }
}

#[test]
fn the_explain_transform_refuses_a_model_that_does_not_fit_its_input() {
    // The demo pipeline (beats) with its explainer pointed at the PTB-XL image model, for
    // each method: validation names the model and says what explains what.
    for method in ["gradcam", "shap"] {
        let out = ecgflow(&[
            "validate",
            "pipelines/demo.toml",
            "--set",
            "transforms.explain.path=models/ptbxl-image.json",
            "--set",
            &format!("transforms.explain.method={method}"),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for expected in [
            "transforms.explain.path",
            "ptbxl-image",
            "whole records",
            "`record_model` step",
        ] {
            assert!(stderr.contains(expected), "expected {expected:?} in:\n{stderr}");
        }
    }
    // Records explained with a beat model.
    let out = ecgflow(&[
        "validate",
        "pipelines/explain-ptbxl.toml",
        "--set",
        "transforms.explain.path=models/resecanet-ds1.json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("resecanet-ds1") && stderr.contains("classifies beats"),
        "{stderr}"
    );
}
