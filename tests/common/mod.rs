//! Helpers shared by the end-to-end tests.
#![allow(dead_code)] // each test binary uses a subset of these helpers

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Python with pyarrow: `ECGFLOW_PYTHON` (set by .ci/run) or python3. In CI its absence
/// is a failure; elsewhere the cross-checks are skipped with a note.
pub fn python_with_pyarrow() -> Option<String> {
    let python = std::env::var("ECGFLOW_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-c", "import pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(python)
    } else if std::env::var_os("CI").is_some() {
        panic!("CI must provide pyarrow (see .ci/run)");
    } else {
        eprintln!("pyarrow is not installed; skipping the cross-check");
        None
    }
}

/// Runs a Python script with arguments and returns its standard output.
pub fn python(python: &str, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python starts");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where the real data is: `ECGFLOW_DATA`, or `../shared/data` beside the workspace.
pub fn data_root() -> PathBuf {
    std::env::var_os("ECGFLOW_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// The data directory when it holds MIT-BIH; `None` (with a note) when the data is absent.
pub fn mitdb_data() -> Option<PathBuf> {
    let dir = data_root();
    if dir.join("mitdb/100.hea").is_file() {
        Some(dir)
    } else {
        eprintln!("no data at {}; skipping", dir.display());
        None
    }
}

/// The data directory when it holds PTB-XL; `None` (with a note) when it is absent.
pub fn ptbxl_data() -> Option<PathBuf> {
    let dir = data_root();
    if dir.join("ptbxl/ptbxl_database.csv").is_file() {
        Some(dir)
    } else {
        eprintln!("no PTB-XL data at {}; skipping", dir.display());
        None
    }
}

/// `ecgflow export --model MODEL --onnx ONNX`; asserts that it succeeds.
pub fn export_onnx(model: &Path, onnx: &Path, data: &Path) {
    let out = ecgflow(
        &[
            "export",
            "--model",
            model.to_str().unwrap(),
            "--onnx",
            onnx.to_str().unwrap(),
        ],
        data,
    );
    assert!(out.status.success());
}

/// Runs the `ecgflow` binary in the workspace root with `ECGFLOW_DATA` set to `data`; its
/// stderr is printed too (the test harness shows it when the test fails).
pub fn ecgflow(args: &[&str], data: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ecgflow"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ECGFLOW_DATA", data)
        .args(args)
        .output()
        .expect("ecgflow starts");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The JSON file at `path`.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
