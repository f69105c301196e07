//! `ecgflow serve` end to end: the monitor page of pipelines/monitor-demo.toml in a real
//! browser (headless Chromium driven through chromedriver's WebDriver protocol, by a small
//! client over a TcpStream), saved as a screenshot; and the access-token rule.
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver` (installed by
//! .ci/run). Without them the browser test fails in CI and is skipped elsewhere.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where test artefacts go: `target/test-artifacts` (beside the binary's profile directory).
fn artifacts() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ecgflow"));
    let target = bin
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| root().join("target"), Path::to_owned);
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artefact directory");
    dir
}

// ---- a process that is killed when the test ends, however it ends --------------------------

struct Process {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    fn spawn(mut command: Command) -> Process {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = command.spawn().expect("the process starts");
        let collect = |pipe: Box<dyn Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = text.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
            text
        };
        let stdout = collect(Box::new(child.stdout.take().expect("stdout")));
        let stderr = collect(Box::new(child.stderr.take().expect("stderr")));
        Process { child, stdout, stderr }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to exit on its own.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(100)); // let the readers catch up
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ecgflow_serve<S: AsRef<std::ffi::OsStr>>(args: &[S], env_token: Option<&str>) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecgflow"));
    command
        .current_dir(root())
        .arg("serve")
        .args(args)
        .env_remove("ECGFLOW_TOKEN");
    if let Some(t) = env_token {
        command.env("ECGFLOW_TOKEN", t);
    }
    Process::spawn(command)
}

/// The address `ecgflow serve` prints, once /healthz answers there.
fn served_addr(p: &mut Process) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut addr = None;
    while addr.is_none() && Instant::now() < deadline {
        addr = p.stdout().split("http://").nth(1).and_then(|rest| {
            let end = rest.find('/')?;
            rest[..end].parse::<SocketAddr>().ok()
        });
        if addr.is_none() {
            if p.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let Some(mut addr) = addr else {
        panic!("ecgflow serve printed no address; stderr:\n{}", p.stderr());
    };
    if addr.ip().is_unspecified() {
        addr.set_ip([127, 0, 0, 1].into());
    }
    while Instant::now() < deadline {
        if http(addr, "GET", "/healthz", &[], None).is_ok_and(|(s, _)| s == 200) {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("/healthz never answered at {addr}; stderr:\n{}", p.stderr());
}

// ---- HTTP/1.1 over a TcpStream ---------------------------------------------------------------

/// Status and body of one request (on a fresh connection, closed after).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    // Read the head, then as much body as it announces (chromedriver keeps connections
    // open whatever the request says), or to the end.
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = Vec::new();
    if head.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok((status, body))
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (status, body) = http(addr, "GET", path, headers, None).expect("request");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

// ---- WebDriver -------------------------------------------------------------------------------

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Browser {
    addr: SocketAddr,
    session: String,
    _driver: Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = free_port();
        let mut command = Command::new(chromedriver);
        command.arg(format!("--port={port}"));
        let driver = Process::spawn(command);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http(addr, "GET", "/status", &[], None)
                .ok()
                .and_then(|(_, b)| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start:\n{}",
                driver.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1000", "--hide-scrollbars", "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let mut browser = Browser {
            addr,
            session: String::new(),
            _driver: driver,
            _profile: profile,
        };
        let v = browser.call("POST", "/session", Some(capabilities));
        browser.session = v["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    /// One WebDriver command; returns its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = if self.session.is_empty() {
            path.to_owned()
        } else {
            format!("/session/{}{path}", self.session)
        };
        let body = body.map(|b| b.to_string());
        let (status, bytes) = http(self.addr, method, &path, &[], body.as_deref().map(str::as_bytes))
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(status, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Runs `script` until `done` holds for its value, or panics after `timeout`.
    fn wait_for(&self, script: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.script(script);
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "the page never got there: {v}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn click(&self, css: &str) {
        let found = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element id")
            .to_owned();
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().expect("base64 PNG"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
        std::fs::write(path, png).expect("screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = http(self.addr, "DELETE", &path, &[], None);
        }
    }
}

/// Chromium and chromedriver, or `None` (with a note) outside CI when they are missing.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = on_path(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must provide headless Chromium: install the Debian packages `chromium chromium-driver` (see .ci/run)")
        }
        _ => {
            eprintln!("chromium or chromedriver is missing; skipping the browser test (apt-get install chromium chromium-driver)");
            None
        }
    }
}

const TOKEN: &str = "test-token-5d1c";

#[test]
fn the_monitor_page_draws_the_waveform_and_labels_beats_in_chromium() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    // Two patients played live at 4× real time for 30 s of signal: the page is opened while
    // they play and followed until they end.
    let mut serve = ecgflow_serve(
        &[
            "pipelines/monitor-demo.toml",
            "--addr",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--set",
            "sources.ecg.streams=2",
            "--set",
            "sources.ecg.duration_s=30",
            "--set",
            "sources.ecg.speed=4",
            "--exit-after",
            "600",
        ],
        None,
    );
    let addr = served_addr(&mut serve);
    let auth = format!("Bearer {TOKEN}");
    let browser = Browser::start(&chromium, &chromedriver);

    // The ward view: one tile per stream.
    browser.go(&format!("http://{addr}/?token={TOKEN}"));
    let ward = browser.wait_for(
        "return [...document.querySelectorAll('.tile')].map(t => t.dataset.stream);",
        Duration::from_secs(60),
        |v| v.as_array().is_some_and(|a| a.len() == 2),
    );
    assert_eq!(ward, json!(["syn000", "syn001"]));

    // The patient view, by clicking the first tile; the waveform and labelled beats appear
    // while the stream plays.
    browser.click(".tile");
    let page_state = "const c = document.getElementById('wave'); const img = document.getElementById('explanation'); \
         return {samples: +c.dataset.samplesDrawn, beats: +c.dataset.beatsDrawn, \
                 labels: [...document.querySelectorAll('.beat-label')].filter(e => e.offsetParent !== null).map(e => e.textContent), \
                 hr: document.getElementById('hr').textContent, hash: location.hash, \
                 picture: img.complete ? img.naturalWidth : 0, \
                 run: document.getElementById('run').dataset.status, \
                 connection: document.getElementById('connection').dataset.state};";
    let first = browser.wait_for(page_state, Duration::from_secs(120), |v| {
        v["samples"].as_u64().unwrap_or(0) > 0 && v["labels"].as_array().is_some_and(|l| !l.is_empty())
    });
    assert_eq!(first["hash"], "#/stream/syn000", "{first}");
    eprintln!("while the pipeline was {}: {first}", first["run"]);
    browser.screenshot(&artifacts().join("monitor-live.png"));

    // The page follows the run to its end by itself (events, no reload) and keeps the final
    // state: 10 s of waveform at 360 Hz (the paper is 1280 px wide at 4 px/mm, 25 mm/s).
    let last = browser.wait_for(page_state, Duration::from_secs(300), |v| {
        v["run"] == "finished" && v["samples"] == 3600 && v["picture"].as_u64().unwrap_or(0) > 0
    });
    let labels: Vec<&str> = last["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(labels.len() >= 8, "about 12 beats in 10 s at 72 bpm: {last}");
    assert!(
        labels.iter().all(|l| ["N", "S", "V", "F", "Q"].contains(l)),
        "predicted classes: {last}"
    );
    assert_eq!(last["beats"].as_u64(), Some(labels.len() as u64), "{last}");
    let hr: f64 = last["hr"].as_str().unwrap().parse().expect("a heart rate");
    assert!((50.0..=100.0).contains(&hr), "{last}");
    assert_eq!(last["connection"], "live", "{last}");
    browser.screenshot(&artifacts().join("monitor.png"));

    // Back to the ward, which shows both streams ended.
    browser.go(&format!("http://{addr}/?token={TOKEN}#"));
    browser.wait_for(
        "return [...document.querySelectorAll('.tile.ended')].length;",
        Duration::from_secs(30),
        |v| v == 2,
    );
    browser.screenshot(&artifacts().join("monitor-ward.png"));

    // Every request the page made carried the token.
    let (_, metrics) = get(addr, "/metrics", &[("Authorization", &auth)]);
    assert!(
        metrics.contains("\necgflow_monitor_unauthorized_total 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\necgflow_monitor_streams 2\n"), "{metrics}");
    assert!(metrics.contains("\necgflow_samples_total "), "{metrics}");
    eprintln!("screenshots in {}", artifacts().display());
}

#[test]
fn serving_beyond_loopback_needs_a_token_and_requests_without_it_get_401() {
    let args = |addr: &str, extra: &[&str]| -> Vec<String> {
        let mut a = vec!["pipelines/monitor-demo.toml", "--addr", addr];
        a.extend(["--set", "sources.ecg.streams=1", "--set", "sources.ecg.duration_s=5"]);
        a.extend(["--set", "sources.ecg.speed=0"]);
        a.extend(extra);
        a.extend(["--exit-after", "300"]);
        a.into_iter().map(str::to_owned).collect()
    };

    // Any address but loopback without a token: refused, saying what to do.
    let mut p = ecgflow_serve(&args("0.0.0.0:0", &[]), None);
    let status = p.wait(Duration::from_secs(60)).expect("serve exits by itself");
    assert!(!status.success());
    let err = p.stderr();
    assert!(
        err.contains("without an access token") && err.contains("--token") && err.contains("ECGFLOW_TOKEN"),
        "{err}"
    );
    assert!(p.stdout().is_empty(), "nothing served: {}", p.stdout());

    // With --token: 401 without it, 200 with it (header or query); the probe stays open.
    let mut p = ecgflow_serve(&args("0.0.0.0:0", &["--token", "s3cret-tok"]), None);
    let addr = served_addr(&mut p);
    for path in [
        "/",
        "/api/streams",
        "/metrics",
        "/events",
        "/api/streams/syn000/explanation.png",
    ] {
        assert_eq!(get(addr, path, &[]).0, 401, "{path}");
        assert_eq!(get(addr, path, &[("Authorization", "Bearer wrong")]).0, 401, "{path}");
        assert_eq!(get(addr, &format!("{path}?token=wrong"), &[]).0, 401, "{path}");
    }
    assert_eq!(
        get(addr, "/api/streams", &[("Authorization", "Bearer s3cret-tok")]).0,
        200
    );
    assert_eq!(get(addr, "/api/streams?token=s3cret-tok", &[]).0, 200);
    let (status, page) = get(addr, "/?token=s3cret-tok", &[]);
    assert_eq!(status, 200);
    assert!(page.contains("<canvas id=\"wave\""));
    assert_eq!(get(addr, "/healthz", &[]).0, 200);
    // What serve prints holds neither the token nor anything of the streams (counts, the
    // address and paths only).
    std::thread::sleep(Duration::from_millis(500));
    let printed = p.stdout() + &p.stderr();
    assert!(
        !printed.contains("s3cret-tok") && !printed.contains("syn000"),
        "{printed}"
    );
    drop(p);

    // The token from the environment.
    let mut p = ecgflow_serve(&args("0.0.0.0:0", &[]), Some("from-env-42"));
    let addr = served_addr(&mut p);
    assert_eq!(get(addr, "/api/streams", &[]).0, 401);
    assert_eq!(
        get(addr, "/api/streams", &[("Authorization", "Bearer from-env-42")]).0,
        200
    );
    drop(p);

    // Loopback needs none.
    let mut p = ecgflow_serve(&args("127.0.0.1:0", &[]), None);
    let addr = served_addr(&mut p);
    assert_eq!(get(addr, "/api/streams", &[]).0, 200);
}

#[test]
fn serve_refuses_an_invalid_pipeline_with_a_clear_message() {
    let mut p = ecgflow_serve(
        &["tests/pipelines/invalid/bad_choice.toml", "--addr", "127.0.0.1:0"],
        None,
    );
    let status = p.wait(Duration::from_secs(60)).expect("serve exits by itself");
    assert!(!status.success());
    let err = p.stderr();
    assert!(err.contains("is not a valid pipeline"), "{err}");
}
