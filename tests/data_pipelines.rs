//! End-to-end tests on the real data in `ECGFLOW_DATA` (default `../shared/data`):
//! MIT-BIH and PTB-XL conversion to Parquet, resuming, damaged records, `eval rpeaks`.
//! Each test prints a note and passes when the data is absent (CI has it).

use std::path::{Path, PathBuf};

mod common;

use common::{ecgflow, mitdb_data, ptbxl_data};

use ecgflow_datasets::annotations::{is_beat, read_annotations};
use ecgflow_datasets::wfdb::Header;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Beat annotations of a record whose 90 + 1 + 168 window fits inside it.
fn expected_beats(mitdb: &Path, record: &str) -> Vec<(u64, String)> {
    let n = Header::read(&mitdb.join(format!("{record}.hea")))
        .unwrap()
        .n_samples
        .unwrap();
    read_annotations(&mitdb.join(format!("{record}.atr")))
        .unwrap()
        .into_iter()
        .filter(|a| is_beat(&a.symbol) && a.sample >= 90 && a.sample + 168 < n)
        .map(|a| (a.sample, a.symbol))
        .collect()
}

const CONVERT_SCRIPT: &str = r#"
import sys, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1], format="parquet").to_table()
assert t.schema.field("window").type.list_size == 259
for r in sorted(set(t.column("record").to_pylist())):
    s = t.filter(ds.field("record") == r)
    for sample, symbol in zip(s.column("sample").to_pylist(), s.column("symbol").to_pylist()):
        print(r, sample, symbol)
"#;

#[test]
fn mitdb_conversion_holds_exactly_the_annotated_beats_with_full_windows() {
    let Some(data) = mitdb_data() else { return };
    let out_dir = tempfile::tempdir().unwrap();
    let table = out_dir.path().join("beats");
    let records = ["100", "102", "114", "208"];
    let out = ecgflow(
        &[
            "run",
            "pipelines/mitdb-to-parquet.toml",
            "--quiet",
            "--workers",
            "2",
            "--set",
            &format!("sources.mitdb.records={}", records.join(",")),
            "--set",
            &format!("sinks.table.path={}", table.display()),
        ],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut expected = Vec::new();
    for r in records {
        expected.extend(
            expected_beats(&data.join("mitdb"), r)
                .into_iter()
                .map(|(s, y)| format!("{r} {s} {y}")),
        );
    }
    let Some(py) = common::python_with_pyarrow() else {
        return;
    };
    let got: Vec<String> = common::python(&py, CONVERT_SCRIPT, &[table.to_str().unwrap()])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);

    // Values: the window's R-peak sample is the signal at the annotation (MLII of 100).
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
row = t.slice(0, 1).to_pylist()[0]
print(row["record"], row["patient"], row["lead"], row["sample"], row["aami"], row["label"], "%.6f" % row["window"][90])
print(t.schema.metadata[b"ecgflow.label_map"].decode(), t.schema.metadata[b"ecgflow.database"].decode())
"#;
    let first = common::python(&py, script, &[table.join("100.parquet").to_str().unwrap()]);
    let (_, signal) = ecgflow_datasets::mitdb::read_lead(&data.join("mitdb"), "100", "MLII").unwrap();
    let (sample, _) = &expected_beats(&data.join("mitdb"), "100")[0];
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(
        lines[0],
        format!("100 100 MLII {sample} N 0 {:.6}", signal[*sample as usize])
    );
    assert_eq!(lines[1], "aami mitdb");
    // 102 has no MLII: the pipeline falls back to its first lead and says so.
    let lead = common::python(
        &py,
        "import sys,pyarrow.parquet as pq; print(set(pq.read_table(sys.argv[1]).column('lead').to_pylist()))",
        &[table.join("102.parquet").to_str().unwrap()],
    );
    assert_eq!(lead.trim(), "{'V5'}");
}

#[test]
fn an_interrupted_conversion_resumes_without_duplicates() {
    let Some(data) = mitdb_data() else { return };
    let out_dir = tempfile::tempdir().unwrap();
    let table = out_dir.path().join("beats");
    let args = |records: &str| {
        vec![
            "run".to_owned(),
            "pipelines/mitdb-to-parquet.toml".to_owned(),
            "--quiet".to_owned(),
            "--set".to_owned(),
            format!("sources.mitdb.records={records}"),
            "--set".to_owned(),
            format!("sinks.table.path={}", table.display()),
        ]
    };
    let run = |records: &str| {
        let a = args(records);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        ecgflow(&refs, &data)
    };
    // The first run converts two records; an interruption is a run that did not finish
    // the third (its temporary file is left behind, as a killed process would leave it).
    assert!(run("100,101").status.success());
    std::fs::write(table.join("103.parquet.tmp"), b"partial").unwrap();
    let out = run("100,101,103");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 stream(s) already complete"), "{stderr}");
    assert!(stderr.contains("done: 1 streams"), "{stderr}");
    let mut files: Vec<String> = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["100.parquet", "101.parquet", "103.parquet"]);
    if let Some(py) = common::python_with_pyarrow() {
        let got = common::python(&py, CONVERT_SCRIPT, &[table.to_str().unwrap()]);
        let expected: usize = ["100", "101", "103"]
            .iter()
            .map(|r| expected_beats(&data.join("mitdb"), r).len())
            .sum();
        assert_eq!(got.lines().count(), expected, "no duplicates, none missing");
    }
}

/// A copy of records 100 and 101 of MIT-BIH with 101's signal file cut short.
fn damaged_copy(data: &Path, dir: &Path) -> PathBuf {
    let db = dir.join("mitdb");
    std::fs::create_dir_all(&db).unwrap();
    for r in ["100", "101"] {
        for ext in ["hea", "dat", "atr"] {
            std::fs::copy(data.join(format!("mitdb/{r}.{ext}")), db.join(format!("{r}.{ext}"))).unwrap();
        }
    }
    let dat = std::fs::read(db.join("101.dat")).unwrap();
    std::fs::write(db.join("101.dat"), &dat[..dat.len() / 2 + 1]).unwrap();
    db
}

#[test]
fn a_damaged_record_is_reported_by_name_and_the_others_are_converted() {
    let Some(data) = mitdb_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = damaged_copy(&data, dir.path());
    let jsonl = dir.path().join("beats.jsonl");
    let parquet = dir.path().join("beats.parquet");
    let pipeline = dir.path().join("p.toml");
    let write = |on_error: &str| {
        std::fs::write(
            &pipeline,
            format!(
                "on_error = \"{on_error}\"\n[sources.db]\ntype = \"wfdb\"\npath = \"{}\"\nrecords = \"100,101\"\n\
                 [transforms.peaks]\ntype = \"rpeaks\"\ninputs = [\"db\"]\nmethod = \"reference\"\n\
                 [transforms.beats]\ntype = \"segment\"\ninputs = [\"peaks\"]\n\
                 [sinks.j]\ntype = \"jsonl\"\ninputs = [\"beats\"]\npath = \"{}\"\n\
                 [sinks.p]\ntype = \"parquet\"\ninputs = [\"beats\"]\npath = \"{}\"\n",
                db.display(),
                jsonl.display(),
                parquet.display()
            ),
        )
        .unwrap();
    };

    write("skip");
    let out = ecgflow(&["run", pipeline.to_str().unwrap(), "--quiet"], &data);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("stream 101") && stderr.contains("101.dat"), "{stderr}");
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert!(lines.contains(r#""stream":"100""#));
    assert!(
        !lines.contains(r#""stream":"101""#),
        "the damaged record's rows are left out"
    );
    let beats_100 = expected_beats(&data.join("mitdb"), "100").len();
    assert_eq!(
        lines.lines().filter(|l| l.contains(r#""kind":"beat""#)).count(),
        beats_100
    );
    if let Some(py) = common::python_with_pyarrow() {
        let rows = common::python(&py, "import sys,pyarrow.parquet as pq; t=pq.read_table(sys.argv[1]); print(t.num_rows, set(t.column('record').to_pylist()))", &[parquet.to_str().unwrap()]);
        assert_eq!(rows.trim(), format!("{beats_100} {{'100'}}"));
    }

    std::fs::remove_file(&jsonl).unwrap();
    std::fs::remove_file(&parquet).unwrap();
    write("fail");
    let out = ecgflow(&["run", pipeline.to_str().unwrap(), "--quiet"], &data);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stream 101"), "{stderr}");
    assert!(!jsonl.exists() && !parquet.exists(), "a failed run completes no file");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn ptbxl_conversion_writes_one_row_per_ecg_with_its_labels() {
    let Some(data) = ptbxl_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("ecgs.parquet");
    let out = ecgflow(
        &[
            "run",
            "pipelines/ptbxl-to-parquet.toml",
            "--quiet",
            "--workers",
            "2",
            "--set",
            "sources.ptbxl.folds=9",
            "--set",
            &format!("sinks.table.path={}", table.display()),
        ],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = ecgflow_datasets::ptbxl::load(&data.join("ptbxl")).unwrap();
    let fold9: Vec<_> = records.iter().filter(|r| r.strat_fold == 9).collect();
    let Some(py) = common::python_with_pyarrow() else {
        return;
    };
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).sort_by("ecg_id")
print(t.num_rows, t.schema.field("signal").type)
for r in t.select(["ecg_id", "patient", "fold", "NORM", "MI", "STTC", "CD", "HYP"]).to_pylist():
    print(r["ecg_id"], r["patient"], r["fold"], "".join("1" if r[c] else "0" for c in ["NORM", "MI", "STTC", "CD", "HYP"]))
"#;
    let got = common::python(&py, script, &[table.to_str().unwrap()]);
    let mut lines = got.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with(&format!("{} fixed_size_list", fold9.len())), "{head}");
    for (line, r) in lines.zip(&fold9) {
        let flags: String = r.superclasses.iter().map(|&b| if b { '1' } else { '0' }).collect();
        assert_eq!(line, format!("{} {} 9 {flags}", r.ecg_id, r.patient_id));
    }
}

#[test]
fn eval_rpeaks_scores_records_and_writes_json_and_qrs() {
    let Some(data) = mitdb_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let qrs = dir.path().join("qrs");
    let db = data.join("mitdb");
    let out = ecgflow(
        &[
            "eval",
            "rpeaks",
            "--db",
            db.to_str().unwrap(),
            "--records",
            "100,104,119",
            "--json",
            json.to_str().unwrap(),
            "--write-qrs",
            qrs.to_str().unwrap(),
            "--workers",
            "2",
        ],
        &data,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("gross (3)"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["method"], "pan_tompkins");
    assert_eq!(report["tolerance_ms"], 150.0);
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1]["lead"], "V5", "104 has no MLII and uses its first lead");
    let mut tp = 0;
    for r in records {
        for key in ["se", "ppv", "f1"] {
            let v = r[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key} = {v}");
        }
        tp += r["tp"].as_u64().unwrap();
    }
    assert_eq!(report["gross"]["tp"].as_u64().unwrap(), tp);
    assert!(report["gross"]["se"].as_f64().unwrap() > 0.98);
    assert_eq!(report["samples"].as_u64().unwrap(), 3 * 650_000);
    // The .qrs files are real WFDB annotation files with the detected beats.
    let written = read_annotations(&qrs.join("100.qrs")).unwrap();
    assert_eq!(
        written.len() as u64,
        records[0]["tp"].as_u64().unwrap() + records[0]["fp"].as_u64().unwrap()
    );
}

#[test]
fn eval_rpeaks_rejects_bad_arguments_clearly() {
    let Some(data) = mitdb_data() else { return };
    let db = data.join("mitdb");
    let out = ecgflow(
        &["eval", "rpeaks", "--db", db.to_str().unwrap(), "--method", "magic"],
        &data,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown method \"magic\" (known: pan_tompkins, hamilton_tompkins, consensus)"));
    let out = ecgflow(
        &["eval", "rpeaks", "--db", db.to_str().unwrap(), "--records", "100,999"],
        &data,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("999"), "{}", text(&out.stderr));
}
