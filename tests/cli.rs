//! End-to-end tests of the `ecgflow` binary: validation errors, graphs, runs over workers
//! and processes, the demo, and the generated component reference.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn ecgflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecgflow"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn run(args: &[&str]) -> Output {
    ecgflow().args(args).output().expect("ecgflow starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_invalid_pipeline_is_rejected_with_component_and_field() {
    let dir = root().join("tests/pipelines/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 12, "the suite covers every error class");
    for file in files {
        let expected: Vec<String> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: ").map(str::to_owned))
            .collect();
        assert!(!expected.is_empty(), "{} states what it expects", file.display());
        let out = run(&["validate", file.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", file.display());
        for e in expected {
            assert!(stderr.contains(&e), "{}: expected {e:?} in:\n{stderr}", file.display());
        }
    }
}

#[test]
fn validate_reports_every_problem_and_every_file() {
    let dir = root().join("tests/pipelines/invalid");
    let out = run(&[
        "validate",
        "pipelines/demo.toml",
        dir.join("cycle.toml").to_str().unwrap(),
        dir.join("no_sink.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.contains("pipelines/demo.toml: ok"), "{stdout}");
    assert!(
        stderr.contains("cycle.toml") && stderr.contains("no_sink.toml"),
        "{stderr}"
    );
}

#[test]
fn shipped_pipelines_are_valid() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    // Pipelines over the real data validate only where it is (validation checks the paths).
    let data = common::data_root();
    if !data.join("mitdb").is_dir() {
        eprintln!(
            "no data at {}; checking only the pipelines that need none",
            data.display()
        );
        files.retain(|f| !std::fs::read_to_string(f).unwrap().contains("${ECGFLOW_DATA}"));
    }
    // Training pipelines read the beats that mitdb-to-parquet.toml writes under out/; their
    // source path is checked only where that conversion has run.
    if !root().join("out/mitdb_beats").is_dir() {
        files.retain(|f| !std::fs::read_to_string(f).unwrap().contains("\"out/mitdb_beats\""));
    }
    assert!(files.iter().any(|f| f.ends_with("demo.toml")));
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn set_overrides_are_validated_too() {
    let out = run(&[
        "validate",
        "pipelines/demo.toml",
        "--set",
        "transforms.clean.high_hz=200",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("transforms.clean.high_hz"));
    let out = run(&["validate", "pipelines/demo.toml", "--set", "transforms.nope.x=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("transforms.nope"), "{}", text(&out.stderr));
}

#[test]
fn graph_prints_dot() {
    let out = run(&["graph", "pipelines/demo.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("\"clean\" [label=\"clean\\n(bandpass)\""), "{dot}");
    assert!(dot.contains("\"peaks\" -> \"beats\" [label=\"signal\"]"), "{dot}");
    assert!(dot.contains("\"beats\" -> \"beats_file\" [label=\"beats\"]"), "{dot}");
}

#[test]
fn components_reference_is_in_sync_with_docs() {
    let out = run(&["components"]);
    assert!(out.status.success());
    let generated = text(&out.stdout);
    let committed = std::fs::read_to_string(root().join("docs/components.md")).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/components.md is out of date: run `cargo run -- components > docs/components.md`"
    );
    for name in [
        "synthetic",
        "bandpass",
        "rpeaks",
        "segment",
        "passthrough",
        "console",
        "jsonl",
        "parquet",
        "null",
    ] {
        assert!(generated.contains(&format!("### `{name}`")), "{name} is documented");
    }
}

/// A small pipeline with per-stream state (filter, detector, segmenter) writing JSONL.
fn write_pipeline(dir: &Path, out: &Path) -> PathBuf {
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[sources.ecg]
type = "synthetic"
streams = 5
duration_s = 20.0
ectopic_probability = 0.1
seed = 7

[transforms.clean]
type = "bandpass"
inputs = ["ecg"]

[transforms.peaks]
type = "rpeaks"
inputs = ["clean"]

[transforms.beats]
type = "segment"
inputs = ["peaks"]
template = true

# Beats with templates and predictions cross process boundaries (bincode) in a cluster run.
[transforms.classify]
type = "model"
inputs = ["beats"]
path = "models/resecanet-ds1.json"

[sinks.out]
type = "jsonl"
inputs = ["classify"]
path = "{}"
include_samples = true
"#,
            out.display()
        ),
    )
    .unwrap();
    path
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn one_and_two_workers_give_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for workers in ["1", "2"] {
        let out_file = dir.path().join(format!("w{workers}.jsonl"));
        let pipeline = write_pipeline(dir.path(), &out_file);
        let out = run(&["run", pipeline.to_str().unwrap(), "--workers", workers, "--quiet"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("done: 5 streams"), "{}", text(&out.stderr));
        outputs.push(sorted_lines(&out_file));
    }
    assert!(outputs[0].len() > 5 * 20, "beats came out: {}", outputs[0].len());
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn two_processes_on_localhost_match_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single.jsonl");
    let pipeline = write_pipeline(dir.path(), &single);
    let out = run(&["run", pipeline.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let cluster = dir.path().join("cluster.jsonl");
    let pipeline = write_pipeline(dir.path(), &cluster);
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let hostfile = dir.path().join("hosts");
    std::fs::write(
        &hostfile,
        ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect::<String>(),
    )
    .unwrap();
    let children: Vec<_> = (0..2)
        .map(|i| {
            ecgflow()
                .args([
                    "run",
                    pipeline.to_str().unwrap(),
                    "--quiet",
                    "--workers",
                    "1",
                    "--processes",
                    "2",
                ])
                .args(["--process", &i.to_string(), "--hostfile", hostfile.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert_eq!(sorted_lines(&single), sorted_lines(&cluster));
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("beats.parquet");
    let jsonl = dir.path().join("beats.jsonl");
    let out = run(&[
        "run",
        "pipelines/demo.toml",
        "--quiet",
        "--set",
        "sources.ecg.duration_s=15",
        "--set",
        &format!("sinks.beats_file.path={}", parquet.display()),
        "--set",
        &format!("sinks.beats_jsonl.path={}", jsonl.display()),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("done: 4 streams, 21600 samples"), "{stderr}");
    // About 72 bpm for 15 s, four streams, less the first and last beats.
    let beats = sorted_lines(&jsonl)
        .iter()
        .filter(|l| l.contains(r#""kind":"beat""#))
        .count();
    assert!((4 * 12..=4 * 20).contains(&beats), "{beats} beats");
    assert!(
        text(&out.stdout).contains("total (4)"),
        "console summary: {}",
        text(&out.stdout)
    );
    let (rows, window) = ecgflow_read_back(&parquet);
    assert_eq!(rows, beats);
    assert_eq!(window, 259);
    assert!(!dir.path().join("beats.parquet.tmp").exists());
}

/// Reads a beats Parquet file with the parquet crate: rows and window length.
fn ecgflow_read_back(path: &Path) -> (usize, usize) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let meta = reader.metadata();
    let rows = meta.file_metadata().num_rows() as usize;
    let kv = meta.file_metadata().key_value_metadata().cloned().unwrap_or_default();
    let after: usize = kv
        .iter()
        .find(|k| k.key == "ecgflow.after")
        .and_then(|k| k.value.clone())
        .unwrap()
        .parse()
        .unwrap();
    let before: usize = kv
        .iter()
        .find(|k| k.key == "ecgflow.before")
        .and_then(|k| k.value.clone())
        .unwrap()
        .parse()
        .unwrap();
    (rows, before + after + 1)
}

#[test]
fn a_failing_run_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("x.jsonl");
    let pipeline = write_pipeline(dir.path(), &out_file);
    // A lead index that the one-lead synthetic streams lack fails every stream at run time.
    let bad_lead = ["--set", "transforms.peaks.lead=3"];
    let out = run(&[
        &["run", pipeline.to_str().unwrap(), "--quiet", "--set", "on_error=fail"][..],
        &bad_lead,
    ]
    .concat());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("transforms.peaks") && stderr.contains("lead index 3"),
        "{stderr}"
    );
    assert!(!out_file.exists());
    assert!(!dir.path().join("x.jsonl.tmp").exists());

    // Under the default `on_error = "skip"` the run completes, reports every stream and
    // exits 3; the file holds nothing of the failed streams.
    let out = run(&[&["run", pipeline.to_str().unwrap(), "--quiet"][..], &bad_lead].concat());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("5 stream(s) failed"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "");
}

#[test]
fn parquet_opens_in_pyarrow() {
    let Some(py) = common::python_with_pyarrow() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("beats.parquet");
    let out = run(&[
        "run",
        "pipelines/demo.toml",
        "--quiet",
        "--set",
        "sources.ecg.duration_s=10",
        "--set",
        &format!("sinks.beats_file.path={}", parquet.display()),
        "--set",
        &format!("sinks.beats_jsonl.path={}", dir.path().join("b.jsonl").display()),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
assert t.column_names == ["record", "patient", "lead", "sample", "symbol", "aami", "label", "rr_prev", "rr_next", "rr_local", "rr_mean", "rr_irregularity", "window", "template"], t.column_names
assert t.schema.field("window").type.list_size == 259
assert t.schema.metadata[b"ecgflow.fs"] == b"360", t.schema.metadata
assert set(t.column("record").to_pylist()) == {"syn000", "syn001", "syn002", "syn003"}
assert set(t.column("aami").to_pylist()) <= {"N", "V"}
print(t.num_rows)
"#;
    let rows: usize = common::python(&py, script, &[parquet.to_str().unwrap()])
        .trim()
        .parse()
        .unwrap();
    assert!(rows > 4 * 8, "{rows} beats");
}

/// Serves the files of `dir` over HTTP on 127.0.0.1 (GET only, no ranges) until the test ends.
fn serve(dir: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_owned();
            let mut stream = stream;
            match std::fs::read(dir.join(&path)) {
                Ok(body) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
                }
                Err(_) => {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            }
        }
    });
    format!("http://{addr}/")
}

#[test]
fn datasets_fetch_downloads_verifies_and_refuses_a_bad_file() {
    let served = tempfile::tempdir().unwrap();
    std::fs::write(served.path().join("RECORDS"), "100\n").unwrap();
    std::fs::write(
        served.path().join("100.hea"),
        "100 1 360 10\n100.dat 212 200 11 1024 0 0 0 MLII\n",
    )
    .unwrap();
    // The sums file lists the right hash of RECORDS and a wrong one for 100.hea.
    let sums = "7b6c0b8e2b1c7a6c33b19c3b9b1cbc55a0a2c33f3b1b4a7c52a9c5fd9b3f5d22  100.hea\n";
    let records_hash = {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(b"100\n");
        digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    std::fs::write(
        served.path().join("SHA256SUMS.txt"),
        format!("{records_hash}  RECORDS\n{sums}"),
    )
    .unwrap();
    let url = serve(served.path().to_owned());
    let dest = tempfile::tempdir().unwrap();
    let out = run(&[
        "datasets",
        "fetch",
        "mitdb",
        "--dest",
        dest.path().to_str().unwrap(),
        "--base-url",
        &url,
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1 downloaded") && stderr.contains("1 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("failed: 100.hea"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dest.path().join("RECORDS")).unwrap(), "100\n");
    assert!(
        !dest.path().join("100.hea").exists(),
        "a file that fails its hash never appears"
    );
}

#[test]
fn bad_command_lines_get_clear_errors() {
    for (args, expected) in [
        (
            &["run", "nope.toml"][..],
            "cannot read pipeline file nope.toml: No such file",
        ),
        (
            &["run", "pipelines/demo.toml", "--workers", "0"][..],
            "--workers and --processes must be at least 1",
        ),
        (
            &["run", "pipelines/demo.toml", "--set", "bogus"][..],
            "bad --set \"bogus\"",
        ),
        (
            &[
                "run",
                "pipelines/demo.toml",
                "--processes",
                "2",
                "--hostfile",
                "/nonexistent/hosts",
            ][..],
            "cannot read hostfile",
        ),
    ] {
        let out = run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
