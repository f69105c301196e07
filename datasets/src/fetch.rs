//! Download the files of a PhysioNet database, verified by SHA-256.
//!
//! PhysioNet serves `SHA256SUMS.txt` at the base URL of every database: one line
//! `<sha256>  <relative path>` per file. [`fetch`] reads it, keeps the files whose
//! path starts with one of [`FetchOptions::only`] (all when `None`), and downloads
//! them with [`FetchOptions::jobs`] worker threads:
//!
//! - a file is written as `<name>.part` and renamed to `<name>` only once its
//!   SHA-256 matches, so a final name always holds verified content;
//! - an existing `.part` is resumed with `Range: bytes=N-` (appended on `206`,
//!   restarted on `200`);
//! - a file already present with the right hash is skipped, so a re-run is cheap;
//! - network errors and `5xx`/`429` answers are retried [`RETRIES`] times with
//!   backoff; a hash mismatch is never retried: the `.part` is deleted and the file
//!   reported with both hashes (except that a mismatch after resuming an old `.part`
//!   restarts the file once from zero, since the old part may be stale);
//! - paths are sanitised: an absolute path, `..`, `.`, a backslash or a drive
//!   letter is refused and reported, never written.
//!
//! A copy of `SHA256SUMS.txt` is written into the destination, so that the files
//! can be checked again later without the network.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The databases [`base_url`] knows: name and PhysioNet base URL.
pub const DATABASES: &[(&str, &str)] = &[
    ("mitdb", "https://physionet.org/files/mitdb/1.0.0/"),
    ("ptbxl", "https://physionet.org/files/ptb-xl/1.0.3/"),
];

/// Name of the checksum list served at the base URL of a PhysioNet database.
pub const SUMS_FILE: &str = "SHA256SUMS.txt";

/// Default number of parallel downloads.
pub const DEFAULT_JOBS: usize = 4;

/// How many times a request that failed on the network (or with `5xx`/`429`) is
/// tried again, waiting 0.5 s, then 1 s, ... in between.
pub const RETRIES: u32 = 2;

/// Largest `SHA256SUMS.txt` accepted (PTB-XL's is about 10 MB).
const MAX_SUMS_BYTES: u64 = 256 << 20;

/// The PhysioNet base URL of a known database (`mitdb`, `ptbxl`).
pub fn base_url(db: &str) -> Result<&'static str, FetchError> {
    DATABASES
        .iter()
        .find(|(name, _)| *name == db)
        .map(|(_, url)| *url)
        .ok_or_else(|| FetchError::UnknownDatabase {
            name: db.to_string(),
            known: DATABASES.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", "),
        })
}

/// What to download and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// URL of the database directory, holding `SHA256SUMS.txt` (a missing final
    /// `/` is added).
    pub base_url: String,
    /// Directory the files are written into (created if missing), keeping the
    /// relative paths of the sums file.
    pub dest: PathBuf,
    /// Number of parallel downloads (0 is taken as 1).
    pub jobs: usize,
    /// Fetch only the files whose relative path starts with one of these prefixes
    /// (e.g. `records100/`, or record names such as `100`); `None` fetches all.
    pub only: Option<Vec<String>>,
}

impl FetchOptions {
    /// Options fetching everything from `base_url` into `dest` with
    /// [`DEFAULT_JOBS`] parallel downloads.
    pub fn new(base_url: impl Into<String>, dest: impl Into<PathBuf>) -> FetchOptions {
        FetchOptions {
            base_url: base_url.into(),
            dest: dest.into(),
            jobs: DEFAULT_JOBS,
            only: None,
        }
    }
}

/// Progress of a [`fetch`], reported from the worker threads as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// The sums file was read: `files` files are to be checked or downloaded.
    Listed {
        /// Number of files selected (after the `only` filter).
        files: usize,
    },
    /// A download (or a resumed download) of `path` begins at byte `offset`.
    Started {
        /// Relative path of the file.
        path: String,
        /// Bytes already on disk from an earlier attempt.
        offset: u64,
        /// Total size when the server said so.
        total: Option<u64>,
    },
    /// `bytes` more bytes of `path` were received.
    Progress {
        /// Relative path of the file.
        path: String,
        /// Bytes received since the previous event for this file.
        bytes: u64,
    },
    /// `path` is already present with the right hash.
    Skipped {
        /// Relative path of the file.
        path: String,
    },
    /// `path` was downloaded and verified.
    Done {
        /// Relative path of the file.
        path: String,
    },
    /// An attempt at `path` failed and will be retried.
    Retrying {
        /// Relative path of the file.
        path: String,
        /// The attempt about to be made (2 for the first retry).
        attempt: u32,
        /// Why the previous attempt failed.
        why: String,
    },
    /// `path` could not be fetched.
    Failed {
        /// Relative path of the file.
        path: String,
        /// Why.
        why: String,
    },
}

/// Outcome of a [`fetch`]; every selected file is in exactly one of the lists,
/// each sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Files downloaded and verified in this run.
    pub downloaded: Vec<String>,
    /// Files already present with the right hash.
    pub skipped: Vec<String>,
    /// Files that could not be fetched, with the reason.
    pub failed: Vec<(String, String)>,
    /// Bytes received from the server for the files (all attempts, this run).
    pub bytes: u64,
}

/// Why a [`fetch`] could not start at all (single files that fail are reported in
/// [`FetchReport::failed`] instead).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The database name is not one of [`DATABASES`].
    #[error("unknown database `{name}`; known databases: {known}")]
    UnknownDatabase {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// The sums file could not be downloaded.
    #[error("cannot download {url}: {why}")]
    Unreachable {
        /// URL of the sums file.
        url: String,
        /// Why.
        why: String,
    },
    /// The sums file is not a list of `<sha256>  <path>` lines.
    #[error("{url}: line {line}: {why}")]
    MalformedSums {
        /// URL of the sums file.
        url: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The destination directory cannot be created or written.
    #[error("destination {}: {error}", path.display())]
    Dest {
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
}

/// Download the files of a database as described in the [module docs](self).
///
/// Returns `Ok` with [`FetchReport::failed`] non-empty when some files failed (the
/// others are still fetched), and `Err` only when nothing can be done: the sums
/// file is unreachable or malformed, or `dest` is not writable.
pub fn fetch(options: &FetchOptions, progress: &(dyn Fn(FetchEvent) + Sync)) -> Result<FetchReport, FetchError> {
    let dest = &options.dest;
    fs::create_dir_all(dest).map_err(|error| FetchError::Dest {
        path: dest.clone(),
        error,
    })?;

    let mut base = options.base_url.clone();
    if !base.ends_with('/') {
        base.push('/');
    }
    let agent = make_agent();

    let sums_url = format!("{base}{SUMS_FILE}");
    let sums_text = download_text(&agent, &sums_url)?;
    let entries = parse_sums(&sums_text, &sums_url)?;
    write_atomically(&dest.join(SUMS_FILE), sums_text.as_bytes()).map_err(|error| FetchError::Dest {
        path: dest.join(SUMS_FILE),
        error,
    })?;

    let selected: Vec<&SumsEntry> = entries
        .iter()
        .filter(|e| match &options.only {
            None => true,
            Some(prefixes) => prefixes.iter().any(|p| e.path.starts_with(p.as_str())),
        })
        .collect();
    progress(FetchEvent::Listed { files: selected.len() });

    let report = Mutex::new(FetchReport::default());
    let next = AtomicUsize::new(0);
    let jobs = options.jobs.clamp(1, selected.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(entry) = selected.get(i) else { break };
                let mut bytes = 0;
                let outcome = fetch_one(&agent, &base, dest, entry, progress, &mut bytes);
                let mut report = report.lock().unwrap_or_else(|e| e.into_inner());
                report.bytes += bytes;
                match outcome {
                    Ok(Outcome::Downloaded) => {
                        progress(FetchEvent::Done {
                            path: entry.path.clone(),
                        });
                        report.downloaded.push(entry.path.clone());
                    }
                    Ok(Outcome::Skipped) => {
                        progress(FetchEvent::Skipped {
                            path: entry.path.clone(),
                        });
                        report.skipped.push(entry.path.clone());
                    }
                    Err(why) => {
                        progress(FetchEvent::Failed {
                            path: entry.path.clone(),
                            why: why.clone(),
                        });
                        report.failed.push((entry.path.clone(), why));
                    }
                }
            });
        }
    });

    let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    report.downloaded.sort();
    report.skipped.sort();
    report.failed.sort();
    Ok(report)
}

/// One line of the sums file.
#[derive(Debug)]
struct SumsEntry {
    /// Relative path, as written in the sums file.
    path: String,
    /// Expected SHA-256, lowercase hex.
    sha256: String,
}

/// Parse `<sha256>  <path>` lines (`sha256sum` format; a `*` before the path is
/// allowed, blank lines are skipped). The paths are not checked here.
fn parse_sums(text: &str, url: &str) -> Result<Vec<SumsEntry>, FetchError> {
    let malformed = |line: usize, why: String| FetchError::MalformedSums {
        url: url.to_string(),
        line,
        why,
    };
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((hash, rest)) = line.split_once(char::is_whitespace) else {
            return Err(malformed(i + 1, "expected `<sha256>  <path>`".into()));
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(i + 1, format!("`{hash}` is not a SHA-256 (64 hex digits)")));
        }
        let path = rest.trim_start();
        let path = path.strip_prefix('*').unwrap_or(path);
        if path.is_empty() {
            return Err(malformed(i + 1, "missing path after the hash".into()));
        }
        match seen.insert(path, hash) {
            Some(old) if !old.eq_ignore_ascii_case(hash) => {
                return Err(malformed(
                    i + 1,
                    format!("`{path}` is listed twice with different hashes"),
                ));
            }
            Some(_) => continue,
            None => {}
        }
        entries.push(SumsEntry {
            path: path.to_string(),
            sha256: hash.to_ascii_lowercase(),
        });
    }
    if entries.is_empty() {
        return Err(malformed(0, "the sums file lists no files".into()));
    }
    Ok(entries)
}

/// The path under `dest` for a relative path from the sums file, or why it is
/// refused: only plain relative components are allowed.
fn safe_path(dest: &Path, rel: &str) -> Result<PathBuf, String> {
    let refuse = |why: &str| Err(format!("unsafe path refused ({why})"));
    if rel.starts_with('/') {
        return refuse("absolute path");
    }
    if rel.contains('\\') || rel.contains(':') || rel.contains('\0') {
        return refuse("backslash, colon or NUL in path");
    }
    let mut out = dest.to_path_buf();
    for part in rel.split('/') {
        match part {
            "" => return refuse("empty path component"),
            "." | ".." => return refuse("`.` or `..` component"),
            _ => out.push(part),
        }
    }
    Ok(out)
}

/// What happened to one file.
enum Outcome {
    Downloaded,
    Skipped,
}

/// Why one attempt at a file failed.
enum AttemptError {
    /// Worth trying again (network trouble, `5xx`, `429`).
    Retry(String),
    /// Final (hash mismatch, `404`, disk error, ...).
    Fatal(String),
}

/// Check, download and verify one file; `bytes` counts what was received.
fn fetch_one(
    agent: &ureq::Agent,
    base: &str,
    dest: &Path,
    entry: &SumsEntry,
    progress: &(dyn Fn(FetchEvent) + Sync),
    bytes: &mut u64,
) -> Result<Outcome, String> {
    let target = safe_path(dest, &entry.path)?;
    if target.is_file() {
        let actual = hash_file(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        if actual == entry.sha256 {
            return Ok(Outcome::Skipped);
        }
    }
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let part = part_path(&target);
    let url = format!("{base}{}", encode_path(&entry.path));

    let mut attempt = 1;
    let mut restarted_stale = false;
    loop {
        match download(agent, &url, entry, &part, progress, bytes) {
            Ok((actual, _)) if actual == entry.sha256 => {
                fs::rename(&part, &target)
                    .map_err(|e| format!("cannot rename {} to {}: {e}", part.display(), target.display()))?;
                return Ok(Outcome::Downloaded);
            }
            Ok((actual, resumed)) => {
                let _ = fs::remove_file(&part);
                if resumed && !restarted_stale {
                    // The old `.part` may come from another version of the file.
                    restarted_stale = true;
                    progress(FetchEvent::Retrying {
                        path: entry.path.clone(),
                        attempt: attempt + 1,
                        why: "hash mismatch after resuming; restarting from zero".into(),
                    });
                    attempt += 1;
                    continue;
                }
                return Err(format!(
                    "SHA-256 mismatch: expected {}, got {actual}; file refused",
                    entry.sha256
                ));
            }
            Err(AttemptError::Fatal(why)) => return Err(why),
            Err(AttemptError::Retry(why)) => {
                if attempt > RETRIES {
                    return Err(format!("{why} (after {attempt} attempts)"));
                }
                attempt += 1;
                progress(FetchEvent::Retrying {
                    path: entry.path.clone(),
                    attempt,
                    why,
                });
                std::thread::sleep(backoff(attempt));
            }
        }
    }
}

/// One attempt at a file: continue or start `part`; once the server has sent
/// everything, return the SHA-256 of the whole `.part` and whether bytes from an
/// earlier attempt were kept.
fn download(
    agent: &ureq::Agent,
    url: &str,
    entry: &SumsEntry,
    part: &Path,
    progress: &(dyn Fn(FetchEvent) + Sync),
    bytes: &mut u64,
) -> Result<(String, bool), AttemptError> {
    let disk = |e: io::Error| AttemptError::Fatal(format!("{}: {e}", part.display()));
    let have = match fs::metadata(part) {
        Ok(m) => m.len(),
        Err(_) => 0,
    };
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| AttemptError::Retry(e.to_string()))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_length = header("content-length").and_then(|v| v.parse::<u64>().ok());

    let (mut hasher, mut file, offset) = match status {
        206 if have > 0 && content_range_start(header("content-range")) == Some(have) => {
            let mut hasher = Sha256::new();
            hash_into(part, &mut hasher).map_err(disk)?;
            let file = OpenOptions::new().append(true).open(part).map_err(disk)?;
            (hasher, file, have)
        }
        206 => {
            // A range we did not ask for: drop the part and start again.
            let _ = fs::remove_file(part);
            return Err(AttemptError::Retry(format!(
                "HTTP 206 with unexpected Content-Range {:?}",
                header("content-range")
            )));
        }
        // The whole file (also the answer of a server that ignores Range).
        200 => (Sha256::new(), File::create(part).map_err(disk)?, 0),
        416 if have > 0 => {
            // The part is at least as long as the file: maybe it is complete.
            let mut hasher = Sha256::new();
            hash_into(part, &mut hasher).map_err(disk)?;
            let actual = hex(&hasher.finalize());
            if actual == entry.sha256 {
                return Ok((actual, true));
            }
            let _ = fs::remove_file(part);
            return Err(AttemptError::Retry(
                "HTTP 416 for a partial download; restarting from zero".into(),
            ));
        }
        429 | 500..=599 => return Err(AttemptError::Retry(format!("HTTP {status} for {url}"))),
        _ => return Err(AttemptError::Fatal(format!("HTTP {status} for {url}"))),
    };

    progress(FetchEvent::Started {
        path: entry.path.clone(),
        offset,
        total: content_length.map(|n| n + offset),
    });
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = file.flush();
                return Err(AttemptError::Retry(format!("connection lost: {e}")));
            }
        };
        file.write_all(&buf[..n]).map_err(disk)?;
        hasher.update(&buf[..n]);
        *bytes += n as u64;
        progress(FetchEvent::Progress {
            path: entry.path.clone(),
            bytes: n as u64,
        });
    }
    file.flush().map_err(disk)?;
    Ok((hex(&hasher.finalize()), offset > 0))
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(value: Option<String>) -> Option<u64> {
    let value = value?;
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

/// Download a small text file (the sums file), with retries.
fn download_text(agent: &ureq::Agent, url: &str) -> Result<String, FetchError> {
    let unreachable = |why: String| FetchError::Unreachable {
        url: url.to_string(),
        why,
    };
    let mut attempt = 1;
    loop {
        let why = match agent.get(url).call() {
            Ok(response) if response.status().as_u16() == 200 => {
                let mut text = String::new();
                match response
                    .into_body()
                    .into_with_config()
                    .limit(MAX_SUMS_BYTES)
                    .reader()
                    .read_to_string(&mut text)
                {
                    Ok(_) => return Ok(text),
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        return Err(unreachable(format!("not UTF-8 text: {e}")));
                    }
                    Err(e) => e.to_string(),
                }
            }
            Ok(response) => {
                let status = response.status().as_u16();
                if status != 429 && status < 500 {
                    return Err(unreachable(format!("HTTP {status}")));
                }
                format!("HTTP {status}")
            }
            Err(e) => e.to_string(),
        };
        if attempt > RETRIES {
            return Err(unreachable(format!("{why} (after {attempt} attempts)")));
        }
        attempt += 1;
        std::thread::sleep(backoff(attempt));
    }
}

/// The HTTP client: no error on 4xx/5xx (handled here), bounded waits.
fn make_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("ecgflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Wait before `attempt` (2, 3, ...): 0.5 s, 1 s, 2 s, ...
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 << attempt.saturating_sub(2).min(6))
}

/// `<target>.part`.
fn part_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Percent-encode a relative path for a URL, keeping `/` and unreserved bytes.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SHA-256 of a file, lowercase hex.
fn hash_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    hash_into(path, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Feed a file's bytes into `hasher`.
fn hash_into(path: &Path, hasher: &mut Sha256) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Lowercase hex of bytes.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write a file through a temporary name, so a reader never sees half of it.
fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = part_path(path);
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_databases() {
        assert_eq!(base_url("mitdb").unwrap(), "https://physionet.org/files/mitdb/1.0.0/");
        assert_eq!(base_url("ptbxl").unwrap(), "https://physionet.org/files/ptb-xl/1.0.3/");
        let e = base_url("foo").unwrap_err().to_string();
        assert!(e.contains("foo") && e.contains("mitdb, ptbxl"), "{e}");
    }

    #[test]
    fn sums_parsing() {
        let h = "a".repeat(64);
        let text = format!("{h}  RECORDS\r\n\n{h} *100.dat\n{h}  x/y z.hea\n{h}  RECORDS\n");
        let e = parse_sums(&text, "u").unwrap();
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["RECORDS", "100.dat", "x/y z.hea"]);

        let bad = parse_sums("abc  RECORDS\n", "u").unwrap_err().to_string();
        assert!(bad.contains("line 1") && bad.contains("abc"), "{bad}");
        let twice = format!("{h}  a\n{}  a\n", "b".repeat(64));
        assert!(parse_sums(&twice, "u").is_err());
        assert!(parse_sums(&format!("{h}\n"), "u").is_err());
        assert!(parse_sums("\n", "u").is_err());
    }

    #[test]
    fn path_sanitising() {
        let d = Path::new("/d");
        assert_eq!(safe_path(d, "a/b.dat").unwrap(), Path::new("/d/a/b.dat"));
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\..\\x",
            "C:x",
            "a/",
        ] {
            assert!(safe_path(d, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(encode_path("a b/c%.dat"), "a%20b/c%25.dat");
        assert_eq!(content_range_start(Some("bytes 100-199/200".into())), Some(100));
        assert_eq!(content_range_start(Some("items 1-2/3".into())), None);
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_millis(1000));
        assert_eq!(part_path(Path::new("a/b.dat")), Path::new("a/b.dat.part"));
    }
}
