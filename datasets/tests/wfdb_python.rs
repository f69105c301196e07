//! Agreement with wfdb-python, the reference most users know.
//!
//! `tests/fixtures/wfdb_python/*.txt` were written by
//! `tests/fixtures/gen_wfdb_python.py` (wfdb-python 4.3.1's `rdrecord` and `rdann`)
//! for MIT-BIH records 100, 102, 114, 208, 232 and three 100 Hz PTB-XL records.
//! Each test reads the same records with this crate and compares:
//! - header facts: fs, number of signals, length, names, units, gain, baseline, format;
//! - samples at fixed indices (first 10, 10 in the middle, last 10), every signal:
//!   digital values exactly (our physical value must equal `to_physical(d)`), and
//!   physical values exactly as f32 (wfdb-python computes `(d - baseline) / gain` in
//!   f64; we compute the same in f64 and round to f32) and within 1e-6;
//! - annotations: total, first and last 20 (sample, symbol, subtype, chan, num, aux)
//!   and counts per symbol, exactly.
//!
//! One known difference, by design: wfdb-python keeps the NUL terminator PhysioNet's
//! files store with AUX strings (`"(N\0"`), while the WFDB C library (and its `rdann`)
//! and this crate end the string there (`"(N"`). We compare against the text up to
//! the first NUL.
//!
//! The tests skip (with a note) when the data directory is absent. The `#[ignore]`d
//! `bench_read_all_mitdb_vs_wfdb_python` is the benchmark of issue 3 in test form:
//! `cargo test --release -p ecgflow-datasets --test wfdb_python -- --ignored --nocapture`.

use ecgflow_datasets::annotations::read_annotations;
use ecgflow_datasets::wfdb::{read_record, Header};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    ecgflow_datasets::data_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")))
}

fn data(sub: &str) -> Option<PathBuf> {
    let d = data_dir().join(sub);
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!("note: {} not found (set ECGFLOW_DATA); skipping", d.display());
        None
    }
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wfdb_python")
}

/// One signal's header facts as wfdb-python reports them.
#[derive(Debug, Default)]
struct Sig {
    name: String,
    units: String,
    adc_gain: f64,
    baseline: i32,
    fmt: String,
}

/// One annotation as wfdb-python reports it (aux with its NUL terminator).
#[derive(Debug)]
struct Ann {
    pos: usize,
    sample: u64,
    symbol: String,
    subtype: i8,
    chan: u8,
    num: i8,
    aux: String,
}

/// A parsed fixture file (see the generator's docstring for the format).
#[derive(Debug, Default)]
struct Fixture {
    file: String,
    db: String,
    record: String,
    fs: f64,
    n_sig: usize,
    sig_len: u64,
    sigs: Vec<Sig>,
    digital: Vec<(usize, Vec<i32>)>,
    physical: Vec<(usize, Vec<f64>)>,
    ann_total: Option<usize>,
    anns: Vec<Ann>,
    counts: BTreeMap<String, usize>,
}

fn parse_fixture(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut f = Fixture {
        file: file.clone(),
        ..Fixture::default()
    };
    for (ln, line) in text.lines().enumerate() {
        let ctx = || format!("{file}:{}: {line:?}", ln + 1);
        let v: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| -> i64 { v[i].parse().unwrap_or_else(|_| panic!("{}", ctx())) };
        match v[0] {
            "wfdb" => {}
            "record" => {
                f.db = v[1].to_string();
                f.record = v[2].to_string();
            }
            "fs" => f.fs = v[1].parse().unwrap(),
            "n_sig" => f.n_sig = num(1) as usize,
            "sig_len" => f.sig_len = num(1) as u64,
            "sig" => {
                assert_eq!(num(1) as usize, f.sigs.len(), "{}", ctx());
                f.sigs.push(Sig {
                    name: v[2].into(),
                    units: v[3].into(),
                    adc_gain: v[4].parse().unwrap(),
                    baseline: num(5) as i32,
                    fmt: v[6].into(),
                });
            }
            "d" => f
                .digital
                .push((num(1) as usize, (2..v.len()).map(|i| num(i) as i32).collect())),
            "p" => f.physical.push((
                num(1) as usize,
                // Rust's f64 parser reads Python's repr ("nan" included) exactly.
                v[2..]
                    .iter()
                    .map(|s| s.parse::<f64>().unwrap_or_else(|_| panic!("{}", ctx())))
                    .collect(),
            )),
            "ann_total" => f.ann_total = Some(num(1) as usize),
            "ann" => f.anns.push(Ann {
                pos: num(1) as usize,
                sample: num(2) as u64,
                symbol: v[3].into(),
                subtype: num(4) as i8,
                chan: num(5) as u8,
                num: num(6) as i8,
                aux: v[7].replace("\\0", "\0"),
            }),
            "count" => {
                f.counts.insert(v[1].into(), num(2) as usize);
            }
            other => panic!("{}: unknown line kind {other:?}", ctx()),
        }
    }
    assert_eq!(f.sigs.len(), f.n_sig, "{file}");
    f
}

fn fixtures() -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths.iter().map(|p| parse_fixture(p)).collect()
}

/// The directory and record name of a fixture's record.
fn location(f: &Fixture) -> Option<(PathBuf, String)> {
    let base = data(&f.db)?;
    let rel = Path::new(&f.record);
    let dir = base.join(rel.parent().unwrap_or(Path::new("")));
    Some((dir, rel.file_name().unwrap().to_string_lossy().into_owned()))
}

#[test]
fn fixtures_are_complete() {
    // Needs no data: guards against a fixture lost or cut short.
    let fx = fixtures();
    let names: Vec<&str> = fx.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(
        names,
        [
            "mitdb_100.txt",
            "mitdb_102.txt",
            "mitdb_114.txt",
            "mitdb_208.txt",
            "mitdb_232.txt",
            "ptbxl_00001_lr.txt",
            "ptbxl_00500_lr.txt",
            "ptbxl_01999_lr.txt"
        ]
    );
    for f in &fx {
        assert_eq!(f.digital.len(), 30, "{}", f.file);
        assert_eq!(f.physical.len(), 30, "{}", f.file);
        assert!(f.digital.iter().all(|(_, d)| d.len() == f.n_sig));
        if f.db == "mitdb" {
            assert_eq!(f.anns.len(), 40, "{}", f.file);
            assert_eq!(f.counts.values().sum::<usize>(), f.ann_total.unwrap());
        }
    }
}

#[test]
fn signals_agree_with_wfdb_python() {
    let mut checked = 0;
    for f in fixtures() {
        let Some((dir, name)) = location(&f) else {
            return;
        };
        let (h, sig): (Header, Vec<Vec<f32>>) = read_record(&dir, &name).unwrap_or_else(|e| panic!("{}: {e}", f.file));
        let ctx = &f.file;
        assert_eq!(h.fs, f.fs, "{ctx}: fs");
        assert_eq!(h.signals.len(), f.n_sig, "{ctx}: n_sig");
        assert_eq!(h.n_samples, Some(f.sig_len), "{ctx}: sig_len");
        for (k, (s, py)) in h.signals.iter().zip(&f.sigs).enumerate() {
            assert_eq!(s.description, py.name, "{ctx}: sig_name[{k}]");
            assert_eq!(s.units, py.units, "{ctx}: units[{k}]");
            assert_eq!(s.effective_gain(), py.adc_gain, "{ctx}: adc_gain[{k}]");
            assert_eq!(s.baseline, py.baseline, "{ctx}: baseline[{k}]");
            assert_eq!(s.format.to_string(), py.fmt, "{ctx}: fmt[{k}]");
            assert_eq!(sig[k].len() as u64, f.sig_len, "{ctx}: length of signal {k}");
        }
        for ((i, d), (pi, p)) in f.digital.iter().zip(&f.physical) {
            assert_eq!(i, pi, "{ctx}: fixture d/p lines out of step");
            for k in 0..f.n_sig {
                let ours = sig[k][*i];
                let spec = &h.signals[k];
                // Digital: our sample is exactly the conversion of wfdb-python's d_signal.
                assert_eq!(
                    ours.to_bits(),
                    spec.to_physical(d[k]).to_bits(),
                    "{ctx}: signal {k} sample {i}: ours {ours}, wfdb-python d_signal {}",
                    d[k]
                );
                // Physical: wfdb-python's f64 p_signal rounded to f32, and within 1e-6.
                if p[k].is_nan() {
                    assert!(ours.is_nan(), "{ctx}: signal {k} sample {i}: {ours} vs nan");
                } else {
                    assert_eq!(
                        ours, p[k] as f32,
                        "{ctx}: signal {k} sample {i}: ours {ours}, wfdb-python p_signal {}",
                        p[k]
                    );
                    assert!((ours as f64 - p[k]).abs() <= 1e-6, "{ctx}: {i} {k}");
                }
                checked += 1;
            }
        }
    }
    println!("{checked} samples agree with wfdb-python");
}

#[test]
fn annotations_agree_with_wfdb_python() {
    let mut checked = 0;
    for f in fixtures().into_iter().filter(|f| f.db == "mitdb") {
        let Some((dir, name)) = location(&f) else {
            return;
        };
        let ctx = &f.file;
        let anns = read_annotations(&dir.join(format!("{name}.atr"))).unwrap();
        assert_eq!(Some(anns.len()), f.ann_total, "{ctx}: total");
        for py in &f.anns {
            let a = &anns[py.pos];
            let what = format!("{ctx}: annotation {}", py.pos);
            assert_eq!(a.sample, py.sample, "{what}: sample");
            assert_eq!(a.symbol, py.symbol, "{what}: symbol");
            assert_eq!(a.subtype, py.subtype, "{what}: subtype");
            assert_eq!(a.chan, py.chan, "{what}: chan");
            assert_eq!(a.num, py.num, "{what}: num");
            // wfdb-python keeps the stored NUL terminator; the C library and we do not.
            let py_aux = py.aux.split('\0').next().unwrap();
            assert_eq!(a.aux.as_deref().unwrap_or(""), py_aux, "{what}: aux");
            checked += 1;
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for a in &anns {
            *counts.entry(a.symbol.clone()).or_default() += 1;
        }
        assert_eq!(counts, f.counts, "{ctx}: counts per symbol");
    }
    println!("{checked} annotations agree with wfdb-python");
}

/// Reads all 48 MIT-BIH records (both signals, physical units) with this crate,
/// three times, then runs `benches/read_wfdb_python.py --repeat 3` (wfdb-python's
/// `rdrecord`, physical) on the same machine, and prints samples/s and the ratio of
/// the medians. Run in release:
/// `cargo test --release -p ecgflow-datasets --test wfdb_python -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_read_all_mitdb_vs_wfdb_python() {
    let Some(dir) = data("mitdb") else { return };
    let records = ecgflow_datasets::mitdb::record_set("all").unwrap();
    let mut times = Vec::new();
    let mut samples = 0usize;
    for run in 1..=3 {
        let t = std::time::Instant::now();
        samples = 0;
        for r in &records {
            let (_, sig) = read_record(&dir, r).unwrap();
            samples += sig.iter().map(Vec::len).sum::<usize>();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "ecgflow run {run}: {samples} samples in {s:.4} s = {:.1} M samples/s",
            samples as f64 / s / 1e6
        );
        times.push(s);
    }
    times.sort_by(f64::total_cmp);
    let ours = samples as f64 / times[1];
    println!("ecgflow median: {:.1} M samples/s", ours / 1e6);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/read_wfdb_python.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(["--repeat", "3"])
        .arg(&dir)
        .output();
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            eprintln!(
                "note: wfdb-python benchmark failed (pip install wfdb?): {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("note: python3 not runnable: {e}");
            return;
        }
    };
    print!("{out}");
    let py: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("median seconds "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .expect("median line from the Python script");
    println!(
        "wfdb-python median: {:.1} M samples/s; ecgflow is {:.1}x faster",
        py / 1e6,
        ours / py
    );
}
