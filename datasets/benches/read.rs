//! Reading all 48 MIT-BIH records (both signals, physical units) with this crate,
//! against wfdb-python's `rdrecord` on the same machine in one run (issue 3).
//!
//! `cargo bench -p ecgflow-datasets --bench read` (data under `$ECGFLOW_DATA`,
//! default `../shared/data`; the comparison needs `python3`, or the interpreter
//! named by `ECGFLOW_BENCH_PYTHON`, with `pip install wfdb`).
//!
//! 1. Criterion measures, over the 48 records (throughput in samples, both signals):
//!    `read_record` one record after another on one thread, `read_to_end_into`
//!    likewise but reusing the output vectors, `read_records` (all records, on
//!    every core, all held in memory), and `read_chunk(4096)` on one thread and on
//!    every core (a record per thread at a time).
//! 2. Then, unless `ECGFLOW_BENCH_NO_PYTHON` is set, the comparison: each of ours
//!    timed `ECGFLOW_BENCH_REPEAT` times (default 7), each in a fresh process (see
//!    `run_case`), then `benches/read_wfdb_python.py --variant all` as many times:
//!    wfdb-python's `rdrecord` in physical units (float64, its default, and float32)
//!    and in ADC units (int64, its default, and int16). The best time of each is
//!    reported (the machine is shared: the best run is the least disturbed one),
//!    and the ratio of ours to the fastest Python variant, physical and overall.
//!    Two floors are printed beside ours: mapping the files and summing their
//!    bytes, and allocating and filling the output vectors alone; and, for
//!    reference, copying the files out of the page cache with `read(2)` (which
//!    the reader saves by mapping them).
//!
//! `ECGFLOW_BENCH_COMPARE_ONLY=1` skips the criterion part.

use criterion::{Criterion, Throughput};
use ecgflow_datasets::wfdb::{read_record, read_records, RecordReader};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn mitdb_dir() -> Option<PathBuf> {
    let d =
        ecgflow_datasets::data_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))).join("mitdb");
    d.join("100.hea").is_file().then_some(d)
}

/// Reads every record whole, one after another, as a user looping over
/// `read_record` would (each record dropped before the next); returns the number
/// of samples (both signals).
fn read_each(dir: &Path, records: &[String]) -> usize {
    records
        .iter()
        .map(|r| {
            let (_, sig) = read_record(dir, r).unwrap();
            black_box(&sig).iter().map(Vec::len).sum::<usize>()
        })
        .sum()
}

/// Reads every record whole into the same vectors
/// ([`RecordReader::read_to_end_into`]), as a loop that handles one record at a
/// time can: the output's memory is reused instead of faulted in afresh.
fn read_each_reusing(dir: &Path, records: &[String]) -> usize {
    let mut sig = Vec::new();
    let mut n = 0;
    for r in records {
        RecordReader::open(dir, r).unwrap().read_to_end_into(&mut sig).unwrap();
        n += black_box(&sig).iter().map(Vec::len).sum::<usize>();
    }
    n
}

/// Reads all records into memory at once, on every core.
fn read_parallel(dir: &Path, records: &[String]) -> usize {
    let all = read_records(dir, records).unwrap();
    black_box(&all)
        .iter()
        .map(|(_, sig)| sig.iter().map(Vec::len).sum::<usize>())
        .sum()
}

/// Streams every record in chunks of 4096 frames without keeping them.
fn stream_each(dir: &Path, records: &[String]) -> usize {
    let mut n = 0;
    for r in records {
        let mut rd = RecordReader::open(dir, r).unwrap();
        while let Some(c) = rd.read_chunk(4096).unwrap() {
            n += black_box(&c).iter().map(Vec::len).sum::<usize>();
        }
    }
    n
}

/// Streams the records in chunks of 4096 frames on every core (a record per
/// thread at a time), as a pipeline with several workers reads a database.
fn stream_parallel(dir: &Path, records: &[String]) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while let Some(r) = records.get(next.fetch_add(1, Relaxed)) {
                        n += stream_each(dir, std::slice::from_ref(r));
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

/// A floor under the readers: mapping the 48 signal files (as the reader does)
/// and summing their bytes, 8 at a time (returns bytes).
fn floor_map(dir: &Path, records: &[String]) -> usize {
    let mut n = 0;
    for r in records {
        let f = std::fs::File::open(dir.join(format!("{r}.dat"))).unwrap();
        // SAFETY: the benchmark's data files are not modified while it runs.
        let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
        let (words, _) = map.as_chunks::<8>();
        let sum = words.iter().fold(0u64, |s, w| s.wrapping_add(u64::from_le_bytes(*w)));
        black_box(sum);
        n += map.len();
    }
    n
}

/// What the reader saves by mapping the files: copying them out of the page cache
/// into a reused 128 KiB buffer with `read(2)` (returns bytes).
fn read_files(dir: &Path, records: &[String]) -> usize {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 17];
    let mut n = 0;
    for r in records {
        let mut f = std::fs::File::open(dir.join(format!("{r}.dat"))).unwrap();
        loop {
            let k = f.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += black_box(&buf[..k]).len();
        }
    }
    n
}

/// Another floor: allocating and filling `read_record`'s output alone, 2 x 650 000
/// `f32` per record, each record dropped before the next (returns samples). When
/// malloc gives the freed memory back to the kernel between records, this is page
/// faults: the kernel zeroes a fresh 4 KiB page per 1024 samples.
fn floor_alloc(_: &Path, records: &[String]) -> usize {
    let mut n = 0;
    for _ in records {
        let sig: Vec<Vec<f32>> = (0..2)
            .map(|_| {
                let mut v = Vec::with_capacity(650_000);
                v.resize(650_000, 1.0f32);
                v
            })
            .collect();
        n += black_box(&sig).iter().map(Vec::len).sum::<usize>();
    }
    n
}

type Reader = fn(&Path, &[String]) -> usize;

/// The timed cases of the comparison: (name, what the count counts, function).
const CASES: [(&str, &str, Reader); 8] = [
    ("ecgflow read_record, 1 thread", "samples", read_each),
    (
        "ecgflow read_to_end_into (reused), 1 thread",
        "samples",
        read_each_reusing,
    ),
    ("ecgflow read_records, all cores", "samples", read_parallel),
    ("ecgflow read_chunk(4096), 1 thread", "samples", stream_each),
    ("ecgflow read_chunk(4096), all cores", "samples", stream_parallel),
    ("floor: map + sum the .dat files", "bytes", floor_map),
    ("reference: read(2) the .dat files", "bytes", read_files),
    ("floor: allocate+fill the output", "samples", floor_alloc),
];

fn bench(c: &mut Criterion, dir: &Path, records: &[String]) {
    let samples = read_each(dir, records);
    let mut g = c.benchmark_group("mitdb_48_records");
    g.sample_size(10);
    g.throughput(Throughput::Elements(samples as u64));
    g.bench_function("read_record_physical", |b| {
        b.iter(|| black_box(read_each(dir, records)))
    });
    g.bench_function("read_to_end_into_physical", |b| {
        b.iter(|| black_box(read_each_reusing(dir, records)))
    });
    g.bench_function("read_records_parallel_physical", |b| {
        b.iter(|| black_box(read_parallel(dir, records)))
    });
    g.bench_function("read_chunk_4096_physical", |b| {
        b.iter(|| black_box(stream_each(dir, records)))
    });
    g.bench_function("read_chunk_4096_parallel_physical", |b| {
        b.iter(|| black_box(stream_parallel(dir, records)))
    });
    g.finish();
}

/// Best of `repeat` timed runs: (samples, seconds).
fn best_of(repeat: usize, mut f: impl FnMut() -> usize) -> (usize, f64) {
    let mut best = f64::INFINITY;
    let mut samples = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        samples = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (samples, best)
}

/// Runs case `i` of [`CASES`] in a process of its own (this executable again, with
/// `ECGFLOW_BENCH_CASE=i`): what a process allocated before changes how malloc
/// recycles the output's memory (up to twice the time of `read_record`), so no case
/// inherits another's heap, as the Python script has its own process too. Returns
/// (count, best seconds).
fn run_case(i: usize, repeat: usize) -> Option<(usize, f64)> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .env("ECGFLOW_BENCH_CASE", i.to_string())
        .env("ECGFLOW_BENCH_REPEAT", repeat.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("case "))?
        .split_whitespace()
        .collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// Times ours and wfdb-python's variants; prints one line each and the ratios.
fn compare_with_wfdb_python(dir: &Path, repeat: usize) {
    println!("\nAll 48 MIT-BIH records, both signals; best of {repeat} runs each, each case in a fresh process:");
    println!("  load average before: {}", load_average());
    let mut ours = Vec::new();
    for (i, (name, unit, _)) in CASES.iter().enumerate() {
        let Some((n, s)) = run_case(i, repeat) else {
            eprintln!("  {name}: the child process failed");
            continue;
        };
        println!(
            "  {name:<46} {n:>9} {unit:<7} {s:.4} s {:7.1} M {unit}/s",
            n as f64 / s / 1e6
        );
        if name.starts_with("ecgflow") {
            ours.push((name, n as f64 / s));
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/read_wfdb_python.py");
    let python = std::env::var("ECGFLOW_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = match std::process::Command::new(&python)
        .arg(&script)
        .args(["--variant", "all", "--repeat", &repeat.to_string()])
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
            eprintln!("wfdb-python comparison skipped: {python}: {e}");
            return;
        }
    };
    // Lines: `best <variant> <units> samples <n> seconds <s> samples_per_s <r>`.
    let mut py: Vec<(String, bool, f64)> = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 9 && f[0] == "best" {
            let (Ok(n), Ok(s)) = (f[4].parse::<f64>(), f[6].parse::<f64>()) else {
                continue;
            };
            println!(
                "  {:<46} {n:>9} samples {s:.4} s {:7.1} M samples/s",
                format!("wfdb-python rdrecord {} ({})", f[1], f[2]),
                n / s / 1e6
            );
            py.push((f[1].to_string(), f[2].starts_with("physical"), n / s));
        }
    }
    let fastest = |physical_only: bool| {
        py.iter()
            .filter(|p| p.1 || !physical_only)
            .max_by(|a, b| a.2.total_cmp(&b.2))
    };
    println!("  load average after: {}", load_average());
    for (name, rate) in &ours {
        for (what, p) in [("fastest physical", fastest(true)), ("fastest of all", fastest(false))] {
            if let Some((v, _, r)) = p {
                println!("  {name} vs wfdb-python {what} ({v}): {:.1}x (goal: 20x)", rate / r);
            }
        }
    }
}

/// The 1, 5 and 15-minute load averages (`/proc/loadavg`; the machine may be shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

fn main() {
    let Some(dir) = mitdb_dir() else {
        eprintln!("MIT-BIH data not found (set ECGFLOW_DATA); nothing to benchmark");
        return;
    };
    let records = ecgflow_datasets::mitdb::record_set("all").unwrap();
    let repeat = std::env::var("ECGFLOW_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7usize)
        .max(1);
    if let Some(i) = std::env::var("ECGFLOW_BENCH_CASE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        // A child of `run_case`: one case, then out.
        let (n, s) = best_of(repeat, || CASES[i].2(&dir, &records));
        println!("case {i} {n} {s:.6}");
        return;
    }
    if std::env::var_os("ECGFLOW_BENCH_COMPARE_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c, &dir, &records);
        c.final_summary();
    }
    if std::env::var_os("ECGFLOW_BENCH_NO_PYTHON").is_none() {
        compare_with_wfdb_python(&dir, repeat);
    }
}
