//! `ecgflow eval explain` on whole-record models: the shipped PTB-XL image model explained
//! on two real fold-9 records with small sample counts: the report keys, SHAP's exact sum,
//! the pictures, and Grad-CAM's deletion beating random orders on the trained model. The
//! test prints a note and passes when the data is absent (CI has it).

mod common;

use std::path::Path;

use serde_json::Value;

use common::ptbxl_data;

/// `ecgflow eval explain` on the image model with `extra` arguments; returns the report.
fn eval_explain(data: &Path, report: &Path, extra: &[&str]) -> Value {
    let ptbxl = data.join("ptbxl");
    let mut args = vec![
        "eval",
        "explain",
        "--model",
        "models/ptbxl-image.json",
        "--data",
        ptbxl.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = common::ecgflow(&args, data);
    assert!(
        out.status.success(),
        "ecgflow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap()
}

#[test]
fn eval_explain_explains_records_of_the_image_model() {
    let Some(data) = ptbxl_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("explain.json");
    let plots = tmp.path().join("plots");
    let report = eval_explain(
        &data,
        &report,
        &[
            "--count",
            "2",
            "--background",
            "2",
            "--coalitions",
            "16",
            "--lime-samples",
            "32",
            "--random-orders",
            "2",
            "--plots",
            plots.to_str().unwrap(),
        ],
    );

    let context = &report["context"];
    assert_eq!(context["data"]["records"], 2);
    assert_eq!(context["data"]["folds"], serde_json::json!([9]));
    assert_eq!(context["data"]["background_records"].as_array().unwrap().len(), 2);
    let explained = context["data"]["explained"].as_array().unwrap();
    assert_eq!(explained.len(), 2);
    for e in explained {
        assert!(e["ecg_id"].is_u64() && e["class"].is_string(), "{e}");
        assert!(!e["superclasses"].as_array().unwrap().is_empty(), "{e}");
    }
    let settings = &context["settings"];
    assert_eq!(settings["features"], 64, "8 × 8 patches by default");
    assert_eq!(settings["curve_steps"], 16);
    assert_eq!(settings["shap"]["coalitions"], 16);
    assert_eq!(settings["lime"]["samples"], 32);

    let methods = report["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 3);
    for m in methods {
        let name = m["method"].as_str().unwrap();
        let f = |key: &str| m[key].as_f64().unwrap_or_else(|| panic!("{name}: {key} missing"));
        assert_eq!(f("records"), 2.0);
        assert!(f("ms_per_record") > 0.0);
        for key in [
            "deletion_auc",
            "random_deletion_auc",
            "insertion_auc",
            "random_insertion_auc",
        ] {
            assert!((0.0..=1.0).contains(&f(key)), "{name}: {key} = {}", f(key));
        }
        assert!((0.0..=1.0).contains(&f("deletion_records_random")));
        assert!(f("randomisation_spearman").abs() <= 1.0);
        for key in ["deletion_curve", "insertion_curve", "random_deletion_curve"] {
            assert_eq!(m[key].as_array().unwrap().len(), 17, "{name}: {key}");
        }
        assert!(m.get("beats").is_none() && m.get("ms_per_beat").is_none());
        // Two records, each pictured once, under a superclass it has.
        for class in ["NORM", "MI"] {
            assert!(
                plots.join(format!("{name}_{class}.png")).is_file(),
                "{name}_{class}.png"
            );
        }
    }
    // SHAP's attributions sum to the probability minus the background's mean probability.
    let shap = methods.iter().find(|m| m["method"] == "shap").unwrap();
    assert!(shap["max_efficiency_error"].as_f64().unwrap() < 1e-4, "{shap}");
    // Grad-CAM of the trained model deletes the evidence faster than random orders do.
    // Measured here: 0.428 against 0.527 (seeds 2 and 3: 0.617 against 0.726, 0.540
    // against 0.672); on the 12 records of the defaults, 0.424 against 0.558 and below
    // random on every record. SHAP with these few coalitions is not asserted (0.480).
    let gradcam = methods.iter().find(|m| m["method"] == "gradcam").unwrap();
    let (deletion, random) = (
        gradcam["deletion_auc"].as_f64().unwrap(),
        gradcam["random_deletion_auc"].as_f64().unwrap(),
    );
    assert!(
        deletion < random - 0.05,
        "Grad-CAM deletion AUC {deletion} is not clearly below random {random}"
    );
    let lime = methods.iter().find(|m| m["method"] == "lime").unwrap();
    assert!(lime["mean_fit_r2"].as_f64().unwrap() <= 1.0);
    assert!(plots.join("deletion.png").is_file() && plots.join("insertion.png").is_file());
}
