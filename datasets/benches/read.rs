//! Reading all 48 MIT-BIH records (both signals, physical units) with this crate,
//! against wfdb-python's `rdrecord` (physical) on the same machine in one run.
//!
//! `cargo bench -p ecgflow-datasets --bench read` (needs `[[bench]] name = "read"
//! harness = false` and the data under `$ECGFLOW_DATA`, default `../shared/data`).
//!
//! Criterion measures `read_record` over the 48 records (throughput in samples);
//! then, unless `ECGFLOW_BENCH_NO_PYTHON` is set, the comparison runs: three timed
//! passes of ours and `benches/read_wfdb_python.py --repeat 3` (needs `pip install
//! wfdb`), and the ratio of the medians is printed.

use criterion::{Criterion, Throughput};
use ecgflow_datasets::wfdb::{read_record, RecordReader};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn mitdb_dir() -> Option<PathBuf> {
    let d =
        ecgflow_datasets::data_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))).join("mitdb");
    d.join("100.hea").is_file().then_some(d)
}

/// Reads every record whole; returns the number of samples (both signals).
fn read_all(dir: &Path, records: &[String]) -> usize {
    records
        .iter()
        .map(|r| {
            let (_, sig) = read_record(dir, r).unwrap();
            sig.iter().map(Vec::len).sum::<usize>()
        })
        .sum()
}

/// Streams every record in chunks of 4096 frames without keeping them.
fn stream_all(dir: &Path, records: &[String]) -> usize {
    let mut n = 0;
    for r in records {
        let mut rd = RecordReader::open(dir, r).unwrap();
        while let Some(c) = rd.read_chunk(4096).unwrap() {
            n += black_box(&c).iter().map(Vec::len).sum::<usize>();
        }
    }
    n
}

fn bench(c: &mut Criterion, dir: &Path, records: &[String]) {
    let samples = read_all(dir, records);
    let mut g = c.benchmark_group("mitdb_48_records");
    g.sample_size(10);
    g.throughput(Throughput::Elements(samples as u64));
    g.bench_function("read_record_physical", |b| b.iter(|| black_box(read_all(dir, records))));
    g.bench_function("read_chunk_4096_physical", |b| {
        b.iter(|| black_box(stream_all(dir, records)))
    });
    g.finish();
}

/// Three timed passes of ours, then the Python script; prints samples/s and the ratio.
fn compare_with_wfdb_python(dir: &Path, records: &[String]) {
    let mut times = Vec::new();
    let mut samples = 0;
    for _ in 0..3 {
        let t = Instant::now();
        samples = read_all(dir, records);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let ours = samples as f64 / times[1];
    println!(
        "ecgflow: {samples} samples, median {:.4} s = {:.1} M samples/s",
        times[1],
        ours / 1e6
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/read_wfdb_python.py");
    let out = match std::process::Command::new("python3")
        .arg(&script)
        .args(["--repeat", "3"])
        .arg(dir)
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            eprintln!(
                "wfdb-python comparison skipped (pip install wfdb?): {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("wfdb-python comparison skipped: python3: {e}");
            return;
        }
    };
    print!("wfdb-python: {out}");
    let py = out
        .lines()
        .find_map(|l| l.strip_prefix("median seconds "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok());
    if let Some(py) = py {
        println!(
            "wfdb-python median {:.1} M samples/s; ecgflow is {:.1}x faster (goal: 20x)",
            py / 1e6,
            ours / py
        );
    }
}

fn main() {
    let Some(dir) = mitdb_dir() else {
        eprintln!("MIT-BIH data not found (set ECGFLOW_DATA); nothing to benchmark");
        return;
    };
    let records = ecgflow_datasets::mitdb::record_set("all").unwrap();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &dir, &records);
    c.final_summary();
    if std::env::var_os("ECGFLOW_BENCH_NO_PYTHON").is_none() {
        compare_with_wfdb_python(&dir, &records);
    }
}
