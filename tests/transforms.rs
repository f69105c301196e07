//! End-to-end tests of the shaping transforms (normalize, augment, resample, cwt, render)
//! and the tensor sinks, on synthetic data (and PTB-XL when present).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ecgflow_operators::cwt::{Cwt, Wavelet};

mod common;

fn run_pipeline(dir: &Path, text: &str, extra: &[&str]) -> Output {
    let path = dir.join("p.toml");
    std::fs::write(&path, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ecgflow"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", path.to_str().unwrap(), "--quiet"])
        .args(extra)
        .output()
        .expect("ecgflow starts")
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn beats_source(out: &Path, middle: &str) -> String {
    format!(
        r#"
[sources.ecg]
type = "synthetic"
streams = 3
duration_s = 20.0
ectopic_probability = 0.1
seed = 3
[transforms.peaks]
type = "rpeaks"
inputs = ["ecg"]
[transforms.beats]
type = "segment"
inputs = ["peaks"]
{middle}
[sinks.out]
type = "jsonl"
inputs = ["last"]
path = "{}"
include_samples = true
"#,
        out.display()
    )
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn normalize_gives_each_window_mean_zero_and_unit_deviation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.jsonl");
    let middle = "[transforms.last]\ntype = \"normalize\"\ninputs = [\"beats\"]\nmethod = \"zscore\"";
    assert_ok(&run_pipeline(dir.path(), &beats_source(&out, middle), &[]));
    let beats: Vec<_> = lines(&out).into_iter().filter(|v| v["kind"] == "beat").collect();
    assert!(beats.len() > 40);
    for b in beats {
        let w: Vec<f64> = b["window"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(
            mean.abs() < 1e-4 && (var.sqrt() - 1.0).abs() < 1e-3,
            "mean {mean}, std {}",
            var.sqrt()
        );
    }
}

#[test]
fn augment_is_reproducible_whatever_the_workers_and_changes_the_beats() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.jsonl");
    let passthrough = "[transforms.last]\ntype = \"passthrough\"\ninputs = [\"beats\"]";
    assert_ok(&run_pipeline(dir.path(), &beats_source(&plain, passthrough), &[]));
    let mut runs = Vec::new();
    for workers in ["1", "2"] {
        let out = dir.path().join(format!("w{workers}.jsonl"));
        let middle = "[transforms.last]\ntype = \"augment\"\ninputs = [\"beats\"]\nscale_min = 0.8\nscale_max = 1.2\nnoise_mv = 0.02\nmax_shift = 5\nseed = 9";
        assert_ok(&run_pipeline(
            dir.path(),
            &beats_source(&out, middle),
            &["--workers", workers],
        ));
        let mut rows: Vec<String> = lines(&out).iter().map(|v| v.to_string()).collect();
        rows.sort();
        runs.push(rows);
    }
    assert_eq!(runs[0], runs[1]);
    let mut original: Vec<String> = lines(&plain).iter().map(|v| v.to_string()).collect();
    original.sort();
    assert_eq!(original.len(), runs[0].len());
    assert_ne!(original, runs[0]);
}

#[test]
fn resample_changes_the_rate_and_moves_the_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.jsonl");
    let text = format!(
        r#"
[sources.ecg]
type = "synthetic"
duration_s = 30.0
fs = 360.0
[transforms.down]
type = "resample"
inputs = ["ecg"]
to_hz = 250.0
[transforms.peaks]
type = "rpeaks"
inputs = ["down"]
[sinks.out]
type = "jsonl"
inputs = ["peaks"]
path = "{}"
"#,
        out.display()
    );
    assert_ok(&run_pipeline(dir.path(), &text, &[]));
    let chunks: Vec<_> = lines(&out).into_iter().filter(|v| v["kind"] == "chunk").collect();
    let samples: u64 = chunks.iter().map(|c| c["len"].as_u64().unwrap()).sum();
    assert!((samples as i64 - 7500).abs() <= 1, "{samples} samples at 250 Hz");
    assert!(chunks.iter().all(|c| c["fs"] == 250.0));
    // The detector at 250 Hz finds the (mapped) reference beats.
    let reference: Vec<u64> = chunks
        .iter()
        .flat_map(|c| {
            c["annotations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["sample"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let detected: Vec<u64> = chunks
        .iter()
        .flat_map(|c| {
            c["rpeaks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let counts = ecgflow_operators::rpeaks::match_beats(&reference, &detected, 38);
    assert!(reference.len() > 30);
    assert!(
        counts.sensitivity() > 0.97 && counts.positive_predictivity() > 0.97,
        "{counts:?}"
    );
}

#[test]
fn cwt_tensors_match_the_operator_and_land_in_parquet_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let beats = dir.path().join("beats.jsonl");
    let table = dir.path().join("cwt.parquet");
    let pictures = dir.path().join("png");
    let text = format!(
        r#"
[sources.ecg]
type = "synthetic"
streams = 2
duration_s = 10.0
[transforms.peaks]
type = "rpeaks"
inputs = ["ecg"]
[transforms.beats]
type = "segment"
inputs = ["peaks"]
[transforms.maps]
type = "cwt"
inputs = ["beats"]
scales = "1-38"
[sinks.beat_rows]
type = "jsonl"
inputs = ["beats"]
path = "{}"
include_samples = true
[sinks.table]
type = "parquet"
inputs = ["maps"]
path = "{}"
[sinks.pictures]
type = "png"
inputs = ["maps"]
path = "{}"
max_per_stream = 2
"#,
        beats.display(),
        table.display(),
        pictures.display()
    );
    assert_ok(&run_pipeline(dir.path(), &text, &[]));
    assert_eq!(std::fs::read_dir(&pictures).unwrap().count(), 4);

    // The first beat of syn000, transformed by the operator itself.
    let first = lines(&beats)
        .into_iter()
        .find(|v| v["kind"] == "beat" && v["stream"] == "syn000")
        .unwrap();
    let window: Vec<f32> = first["window"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let mut cwt = Cwt::new(Wavelet::MexicanHat, &(1..=38).map(f64::from).collect::<Vec<_>>(), 259).unwrap();
    let mut expected = vec![0.0; 38 * 259];
    cwt.transform(&window, &mut expected).unwrap();

    use arrow_array::{Array, FixedSizeListArray, Float32Array, StringArray, UInt64Array};
    let file = std::fs::File::open(&table).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let shape = reader.schema().metadata().get("ecgflow.shape").cloned();
    assert_eq!(shape.as_deref(), Some("1,38,259"));
    let mut found = false;
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        let records = batch
            .column_by_name("record")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        let samples = batch
            .column_by_name("sample")
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .clone();
        let data = batch
            .column_by_name("data")
            .unwrap()
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap()
            .clone();
        for i in 0..batch.num_rows() {
            if records.value(i) == "syn000" && samples.value(i) == first["sample"].as_u64().unwrap() {
                let row = data.value(i);
                let values = row.as_any().downcast_ref::<Float32Array>().unwrap();
                assert_eq!(values.len(), expected.len());
                for (a, b) in values.values().iter().zip(&expected) {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
                }
                found = true;
            }
        }
    }
    assert!(found, "the beat's scalogram is in the table");
}

fn ptbxl_dir() -> Option<PathBuf> {
    let dir = common::data_root().join("ptbxl");
    dir.join("ptbxl_database.csv").is_file().then_some(dir).or_else(|| {
        eprintln!("no PTB-XL data; skipping");
        None
    })
}

#[test]
fn render_makes_one_224_by_224_image_per_record() {
    let Some(ptbxl) = ptbxl_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("images.parquet");
    let out = Command::new(env!("CARGO_BIN_EXE_ecgflow"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ECGFLOW_DATA", ptbxl.parent().unwrap())
        .args(["run", "pipelines/ptbxl-images.toml", "--quiet", "--workers", "2"])
        .args([
            "--set",
            "sources.ptbxl.limit=6",
            "--set",
            &format!("sinks.table.path={}", table.display()),
        ])
        .args([
            "--set",
            &format!("sinks.pictures.path={}", dir.path().join("png").display()),
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(std::fs::read_dir(dir.path().join("png")).unwrap().count(), 6);
    let Some(py) = common::python_with_pyarrow() else {
        return;
    };
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
assert t.schema.metadata[b"ecgflow.shape"] == b"224,224"
for row in t.column("data").to_pylist():
    assert len(row) == 224 * 224 and min(row) >= 0.0 and max(row) <= 1.0
    assert 0.005 < sum(1 for v in row if v < 0.5) / len(row) < 0.3, "a trace, not a blank or a blot"
print(t.num_rows)
"#;
    assert_eq!(common::python(&py, script, &[table.to_str().unwrap()]).trim(), "6");
}

#[test]
fn bad_transform_fields_are_caught_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.jsonl");
    for (middle, expected) in [
        (
            "[transforms.last]\ntype = \"cwt\"\ninputs = [\"beats\"]\nscales = \"5-2\"",
            "transforms.last.scales",
        ),
        (
            "[transforms.last]\ntype = \"augment\"\ninputs = [\"beats\"]\nscale_min = 2.0",
            "transforms.last.scale_min",
        ),
        (
            "[transforms.last]\ntype = \"normalize\"\ninputs = [\"peaks\"]",
            "port type mismatch",
        ),
    ] {
        let path = dir.path().join("p.toml");
        std::fs::write(&path, beats_source(&out, middle)).unwrap();
        let result = Command::new(env!("CARGO_BIN_EXE_ecgflow"))
            .args(["validate", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(result.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
}

#[test]
fn smote_balances_the_classes_with_beats_between_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.jsonl");
    let passthrough = "[transforms.last]\ntype = \"passthrough\"\ninputs = [\"beats\"]";
    assert_ok(&run_pipeline(dir.path(), &beats_source(&plain, passthrough), &[]));
    let out = dir.path().join("smote.jsonl");
    let middle = "[transforms.last]\ntype = \"smote\"\ninputs = [\"beats\"]\nk = 3\nseed = 4";
    assert_ok(&run_pipeline(
        dir.path(),
        &beats_source(&out, middle),
        &["--workers", "2"],
    ));

    let beats = |rows: &[serde_json::Value]| -> Vec<serde_json::Value> {
        rows.iter().filter(|v| v["kind"] == "beat").cloned().collect()
    };
    let original = beats(&lines(&plain));
    let all = beats(&lines(&out));
    let count = |rows: &[serde_json::Value], symbol: &str| rows.iter().filter(|v| v["symbol"] == symbol).count();
    let (n, v) = (count(&original, "N"), count(&original, "V"));
    assert!(n > v && v > 0, "N {n}, V {v}");
    let synthetic: Vec<_> = all.iter().filter(|b| b["stream"] == "smote").cloned().collect();
    assert_eq!(all.len() - synthetic.len(), original.len(), "originals pass through");
    assert_eq!(count(&synthetic, "V"), n - v);
    assert_eq!(count(&all, "V"), count(&all, "N"));
    // Every synthetic window lies between two ventricular beats: inside their envelope.
    let windows = |rows: &[serde_json::Value]| -> Vec<Vec<f64>> {
        rows.iter()
            .filter(|b| b["symbol"] == "V")
            .map(|b| {
                b["window"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let v_windows = windows(&original);
    for s in windows(&synthetic) {
        for (i, x) in s.iter().enumerate() {
            let lo = v_windows.iter().map(|w| w[i]).fold(f64::INFINITY, f64::min);
            let hi = v_windows.iter().map(|w| w[i]).fold(f64::NEG_INFINITY, f64::max);
            assert!(*x >= lo - 1e-5 && *x <= hi + 1e-5);
        }
    }
}
