//! Tests of `ecgflow_datasets::fetch` against a small HTTP server on 127.0.0.1,
//! written with `std::net`, serving records 100, 101 and 102 of MIT-BIH (copied
//! from `$ECGFLOW_DATA/mitdb`, or random files when the data is absent) laid out
//! like PhysioNet, with `SHA256SUMS.txt` generated here.

use ecgflow_datasets::fetch::{fetch, FetchError, FetchEvent, FetchOptions, FetchReport};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ecgflow-fetch-{}-{}-{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How the server misbehaves, and what it saw.
#[derive(Default)]
struct State {
    /// Path → (file offset at which to cut the connection, how many more times).
    cut: HashMap<String, (u64, u32)>,
    /// Answer 200 with the whole file even when a Range is asked for.
    ignore_range: bool,
    /// Every request: path and the start of the Range asked for.
    log: Vec<(String, Option<u64>)>,
}

/// A PhysioNet-like file server on an ephemeral port of 127.0.0.1.
struct Server {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    /// Serve the files under `root` (the thread lives as long as the test process).
    fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/files/mitdb/1.0.0/", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let (root, st) = (root.to_path_buf(), state.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (root, st) = (root.clone(), st.clone());
                std::thread::spawn(move || serve(stream, &root, &st));
            }
        });
        Server { url, state }
    }

    /// The requests seen for `path`: the Range start of each.
    fn requests(&self, path: &str) -> Vec<Option<u64>> {
        let st = self.state.lock().unwrap();
        st.log.iter().filter(|(p, _)| p == path).map(|(_, r)| *r).collect()
    }

    /// All paths requested, in order.
    fn paths(&self) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.log.iter().map(|(p, _)| p.clone()).collect()
    }

    fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

/// Answer one request (one per connection, `Connection: close`).
fn serve(mut stream: TcpStream, root: &Path, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = value
                    .trim()
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<u64>().ok());
            }
        }
    }
    let path = target
        .strip_prefix("/files/mitdb/1.0.0/")
        .unwrap_or(&target)
        .to_string();
    let (cut, ignore_range) = {
        let mut st = state.lock().unwrap();
        st.log.push((path.clone(), range));
        let cut = match st.cut.get_mut(&path) {
            Some((at, n)) if *n > 0 => {
                *n -= 1;
                Some(*at)
            }
            _ => None,
        };
        (cut, st.ignore_range)
    };
    let file = root.join(&path);
    let data = match (path.contains(".."), std::fs::read(&file)) {
        (false, Ok(d)) => d,
        _ => {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
    };
    let len = data.len() as u64;
    let (status, start, extra) = match range {
        Some(n) if !ignore_range && n >= len => {
            let head = format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            return;
        }
        Some(n) if !ignore_range => (
            "206 Partial Content",
            n,
            format!("Content-Range: bytes {n}-{}/{len}\r\n", len - 1),
        ),
        _ => ("200 OK", 0, String::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        len - start
    );
    let _ = stream.write_all(head.as_bytes());
    let end = match cut {
        Some(at) => at.max(start),
        None => len,
    };
    let _ = stream.write_all(&data[start as usize..end as usize]);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The files served: records 100–102 and `RECORDS`, plus one nested file.
const FILES: &[&str] = &[
    "100.atr",
    "100.dat",
    "100.hea",
    "101.atr",
    "101.dat",
    "101.hea",
    "102.atr",
    "102.dat",
    "102.hea",
    "RECORDS",
    "x/y/notes.txt",
];

/// A test setup: the server's root, an empty destination, the server.
struct Fixture {
    tmp: TempDir,
    root: PathBuf,
    dest: PathBuf,
    server: Server,
}

impl Fixture {
    /// Copy (or generate) the files, write their `SHA256SUMS.txt`, start a server.
    fn new(tag: &str) -> Fixture {
        let tmp = TempDir::new(tag);
        let root = tmp.0.join("physionet");
        let dest = tmp.0.join("dest");
        std::fs::create_dir_all(root.join("x/y")).unwrap();
        let data = ecgflow_datasets::data_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")))
            .join("mitdb");
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut sums = String::new();
        for name in FILES {
            let bytes = match *name {
                "RECORDS" => b"100\n101\n102\n".to_vec(),
                "x/y/notes.txt" => b"nested file\n".to_vec(),
                _ => std::fs::read(data.join(name)).unwrap_or_else(|_| {
                    let n = if name.ends_with(".dat") { 300_000 } else { 3000 };
                    (0..n)
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            seed as u8
                        })
                        .collect()
                }),
            };
            std::fs::write(root.join(name), &bytes).unwrap();
            sums.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
        }
        std::fs::write(root.join("SHA256SUMS.txt"), sums).unwrap();
        let server = Server::start(&root);
        Fixture {
            tmp,
            root,
            dest,
            server,
        }
    }

    fn options(&self) -> FetchOptions {
        FetchOptions::new(self.server.url.clone(), self.dest.clone())
    }

    fn len(&self, name: &str) -> u64 {
        std::fs::metadata(self.root.join(name)).unwrap().len()
    }

    /// The destination file equals the served one.
    fn same(&self, name: &str) -> bool {
        std::fs::read(self.dest.join(name)).ok() == std::fs::read(self.root.join(name)).ok()
    }
}

/// Run `fetch`, collecting the events.
fn run(options: &FetchOptions) -> (Result<FetchReport, FetchError>, Vec<FetchEvent>) {
    let events = Mutex::new(Vec::new());
    let result = fetch(options, &|e| events.lock().unwrap().push(e));
    (result, events.into_inner().unwrap())
}

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn downloads_and_verifies_everything() {
    let fx = Fixture::new("all");
    let (report, events) = run(&fx.options());
    let report = report.unwrap();
    assert_eq!(report.downloaded, names(FILES));
    assert!(report.skipped.is_empty() && report.failed.is_empty());
    let total: u64 = FILES.iter().map(|f| fx.len(f)).sum();
    assert_eq!(report.bytes, total);
    for f in FILES {
        assert!(fx.same(f), "{f}");
        assert!(!fx.dest.join(format!("{f}.part")).exists());
    }
    assert!(fx.dest.join("SHA256SUMS.txt").is_file());
    assert!(events.contains(&FetchEvent::Listed { files: FILES.len() }));
    let done = events.iter().filter(|e| matches!(e, FetchEvent::Done { .. })).count();
    assert_eq!(done, FILES.len());
    let progressed: u64 = events
        .iter()
        .map(|e| match e {
            FetchEvent::Progress { bytes, .. } => *bytes,
            _ => 0,
        })
        .sum();
    assert_eq!(progressed, total);
}

#[test]
fn corrupted_file_is_refused_and_others_still_downloaded() {
    let fx = Fixture::new("corrupt");
    // The served bytes no longer match the sums file.
    let mut bad = std::fs::read(fx.root.join("101.dat")).unwrap();
    let expected = sha256_hex(&bad);
    bad[1000] ^= 0xff;
    let actual = sha256_hex(&bad);
    std::fs::write(fx.root.join("101.dat"), &bad).unwrap();
    // And one listed file is missing on the server.
    std::fs::remove_file(fx.root.join("102.atr")).unwrap();

    let mut options = fx.options();
    options.jobs = 2;
    let report = run(&options).0.unwrap();
    assert_eq!(report.failed.len(), 2, "{:?}", report.failed);
    let (name, why) = &report.failed[0];
    assert_eq!(name, "101.dat");
    assert!(why.contains(&expected) && why.contains(&actual), "{why}");
    assert!(!fx.dest.join("101.dat").exists());
    assert!(!fx.dest.join("101.dat.part").exists());
    assert_eq!(fx.server.requests("101.dat").len(), 1, "no retry on mismatch");
    let (name, why) = &report.failed[1];
    assert_eq!(name, "102.atr");
    assert!(why.contains("404"), "{why}");
    assert_eq!(report.downloaded.len(), FILES.len() - 2);
    for f in &report.downloaded {
        assert!(fx.same(f), "{f}");
    }
}

#[test]
fn dropped_connection_is_resumed_with_range() {
    let fx = Fixture::new("drop");
    let half = fx.len("100.dat") / 2;
    fx.server.state.lock().unwrap().cut.insert("100.dat".into(), (half, 1));
    let (report, events) = run(&fx.options());
    let report = report.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(fx.same("100.dat"));
    assert_eq!(fx.server.requests("100.dat"), [None, Some(half)]);
    assert!(events.iter().any(|e| matches!(e,
        FetchEvent::Retrying { path, attempt: 2, .. } if path == "100.dat")));
    assert!(events.contains(&FetchEvent::Started {
        path: "100.dat".into(),
        offset: half,
        total: Some(fx.len("100.dat")),
    }));
}

#[test]
fn interrupted_run_is_completed_by_the_next_run() {
    let fx = Fixture::new("rerun-resume");
    let len = fx.len("100.dat");
    let half = len / 2;
    // Every attempt of the first run is cut at the same place.
    fx.server.state.lock().unwrap().cut.insert("100.dat".into(), (half, 3));
    let first = run(&fx.options()).0.unwrap();
    assert_eq!(first.failed.len(), 1);
    assert_eq!(first.failed[0].0, "100.dat");
    assert!(!fx.dest.join("100.dat").exists());
    assert_eq!(std::fs::metadata(fx.dest.join("100.dat.part")).unwrap().len(), half);

    fx.server.clear_log();
    let second = run(&fx.options()).0.unwrap();
    assert_eq!(second.downloaded, ["100.dat"]);
    assert_eq!(second.skipped.len(), FILES.len() - 1);
    assert_eq!(second.bytes, len - half);
    assert_eq!(fx.server.requests("100.dat"), [Some(half)]);
    assert!(fx.same("100.dat"));
    assert!(!fx.dest.join("100.dat.part").exists());
}

#[test]
fn server_ignoring_range_restarts_the_file() {
    let fx = Fixture::new("norange");
    fx.server.state.lock().unwrap().ignore_range = true;
    std::fs::create_dir_all(&fx.dest).unwrap();
    std::fs::write(fx.dest.join("100.hea.part"), b"stale bytes").unwrap();
    let mut options = fx.options();
    options.only = Some(vec!["100.hea".into()]);
    let report = run(&options).0.unwrap();
    assert_eq!(report.downloaded, ["100.hea"]);
    assert!(fx.same("100.hea"));
    assert_eq!(fx.server.requests("100.hea"), [Some(11)]);
}

#[test]
fn stale_part_is_restarted_from_zero() {
    let fx = Fixture::new("stale");
    std::fs::create_dir_all(&fx.dest).unwrap();
    // A `.part` whose bytes are not the start of the file: resuming it gives a
    // hash mismatch, and the file is fetched again whole.
    std::fs::write(fx.dest.join("100.atr.part"), b"not the file").unwrap();
    let mut options = fx.options();
    options.only = Some(vec!["100.atr".into()]);
    let report = run(&options).0.unwrap();
    assert_eq!(report.downloaded, ["100.atr"]);
    assert!(fx.same("100.atr"));
    assert_eq!(fx.server.requests("100.atr"), [Some(12), None]);
}

#[test]
fn rerun_skips_verified_files_and_replaces_damaged_ones() {
    let fx = Fixture::new("skip");
    let first = run(&fx.options()).0.unwrap();
    assert_eq!(first.downloaded.len(), FILES.len());

    fx.server.clear_log();
    let second = run(&fx.options()).0.unwrap();
    assert_eq!(second.skipped, names(FILES));
    assert!(second.downloaded.is_empty() && second.failed.is_empty());
    assert_eq!(second.bytes, 0);
    assert_eq!(fx.server.paths(), ["SHA256SUMS.txt"]);

    std::fs::write(fx.dest.join("102.hea"), b"edited by hand").unwrap();
    let third = run(&fx.options()).0.unwrap();
    assert_eq!(third.downloaded, ["102.hea"]);
    assert!(fx.same("102.hea"));
}

#[test]
fn only_fetches_the_selected_prefixes() {
    let fx = Fixture::new("only");
    let mut options = fx.options();
    options.only = Some(vec!["100".into(), "RECORDS".into(), "x/".into()]);
    options.jobs = 1;
    let (report, events) = run(&options);
    let report = report.unwrap();
    assert_eq!(
        report.downloaded,
        names(&["100.atr", "100.dat", "100.hea", "RECORDS", "x/y/notes.txt"])
    );
    assert!(events.contains(&FetchEvent::Listed { files: 5 }));
    assert!(!fx.dest.join("101.dat").exists());
    assert!(!fx.dest.join("102.hea").exists());
    assert!(fx.same("x/y/notes.txt"));
}

#[test]
fn path_traversal_in_the_sums_file_is_refused() {
    let fx = Fixture::new("traversal");
    let outside = fx.tmp.0.join("outside.txt");
    let hash = sha256_hex(b"evil");
    let mut sums = std::fs::read_to_string(fx.root.join("SHA256SUMS.txt")).unwrap();
    for evil in [
        "../outside.txt".to_string(),
        "x/../../outside.txt".to_string(),
        outside.display().to_string(),
    ] {
        sums.push_str(&format!("{hash}  {evil}\n"));
    }
    std::fs::write(fx.root.join("SHA256SUMS.txt"), sums).unwrap();

    let report = run(&fx.options()).0.unwrap();
    assert_eq!(report.failed.len(), 3, "{:?}", report.failed);
    for (path, why) in &report.failed {
        assert!(why.contains("unsafe path"), "{path}: {why}");
    }
    assert_eq!(report.downloaded.len(), FILES.len());
    assert!(!outside.exists());
    assert!(fx.server.paths().iter().all(|p| !p.contains("outside")));
}

#[test]
fn unusable_sums_file_or_destination_is_an_error() {
    let fx = Fixture::new("errors");

    let mut options = fx.options();
    options.base_url = options.base_url.replace("mitdb", "nodb");
    match run(&options).0 {
        Err(FetchError::Unreachable { url, why }) => {
            assert!(url.ends_with("nodb/1.0.0/SHA256SUMS.txt"), "{url}");
            assert!(why.contains("404"), "{why}");
        }
        other => panic!("{other:?}"),
    }

    std::fs::write(fx.root.join("SHA256SUMS.txt"), "0123  RECORDS\nnot a line\n").unwrap();
    match run(&fx.options()).0 {
        Err(e @ FetchError::MalformedSums { line: 1, .. }) => {
            assert!(e.to_string().contains("SHA256SUMS.txt: line 1"), "{e}")
        }
        other => panic!("{other:?}"),
    }

    let file = fx.tmp.0.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let options = FetchOptions::new(fx.server.url.clone(), file.join("sub"));
    match run(&options).0 {
        Err(e @ FetchError::Dest { .. }) => assert!(e.to_string().contains("a-file"), "{e}"),
        other => panic!("{other:?}"),
    }
}
