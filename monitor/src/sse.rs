//! Server-sent events: the framing, and the loop that feeds one page.
//!
//! There is no queue per client to fill up: each client keeps a [`Cursor`] into the hub's
//! bounded state, wakes when the hub changes, and is sent what it has not seen. A slow
//! page therefore never holds up the dataflow (which only takes the hub's lock to copy a
//! chunk in) and never makes the server hold more memory: it skips what it missed and gets
//! the current window afresh.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::hub::{Cursor, Hub, Updates};

/// Least time between two rounds of updates to one page: updates in between are coalesced.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Least time between two ward summaries to one page.
pub const SUMMARY_INTERVAL: Duration = Duration::from_millis(500);
/// A comment line is sent after this long without events, so that proxies and the browser
/// keep the connection (and a page that went away is noticed).
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long the browser waits before reconnecting, in milliseconds (the `retry:` field).
pub const RETRY_MS: u64 = 2000;

/// One event in the text/event-stream format: `event: NAME`, one `data:` line per line
/// of `data`, and a blank line.
pub fn frame(event: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + event.len() + 16);
    out.push_str("event: ");
    out.push_str(event);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The head of the event-stream response, written straight to the socket.
pub fn response_head() -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\n\
         Connection: keep-alive\r\nX-Content-Type-Options: nosniff\r\nX-Accel-Buffering: no\r\n\r\n\
         retry: {RETRY_MS}\n\n"
    )
}

/// A value as JSON text (`null` should it ever fail).
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// The frames of a round of updates, in the order the page applies them.
pub fn frames(updates: &Updates) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = &updates.snapshot {
        out.push(frame("streams", &to_json(s)));
    }
    if let Some(w) = &updates.wave {
        out.push(frame("wave", &to_json(w)));
    }
    if let Some(b) = &updates.beats {
        out.push(frame("beats", &to_json(b)));
    }
    if let Some((stream, info)) = &updates.explanation {
        let v = serde_json::json!({"stream": stream, "explanation": info});
        out.push(frame("explanation", &v.to_string()));
    }
    out
}

/// Feeds one page until it goes away or `stop` is set.
pub fn serve_client(hub: &Hub, out: &mut dyn Write, stream: Option<String>, stop: &AtomicBool) {
    if out
        .write_all(response_head().as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    let mut cursor = Cursor::new(stream);
    let mut last_write = Instant::now();
    let mut last_summary: Option<Instant> = None;
    loop {
        let version = hub.version();
        let summary_due = last_summary.is_none_or(|t| t.elapsed() >= SUMMARY_INTERVAL);
        let updates = hub.updates(&mut cursor, summary_due);
        if updates.snapshot.is_some() {
            last_summary = Some(Instant::now());
        }
        let frames = frames(&updates);
        let mut text = frames.concat();
        if text.is_empty() && last_write.elapsed() >= KEEPALIVE {
            text.push_str(": keep-alive\n\n");
        }
        if !text.is_empty() {
            if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
                return;
            }
            hub.counters
                .sse_frames
                .fetch_add(frames.len() as u64, Ordering::Relaxed);
            last_write = Instant::now();
        }
        // Coalesce what arrives meanwhile, then wait for a change, for a summary held back
        // by the pacing, for the keep-alive, or (at least once a second) to notice `stop`.
        std::thread::sleep(MIN_INTERVAL);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut wait = KEEPALIVE
            .saturating_sub(last_write.elapsed())
            .min(Duration::from_secs(1));
        if cursor.summary_behind(version) {
            let since = last_summary.map_or(SUMMARY_INTERVAL, |t| t.elapsed());
            wait = wait.min(SUMMARY_INTERVAL.saturating_sub(since));
        }
        hub.wait_for_change(version, wait.max(Duration::from_millis(1)));
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecgflow_operators::Chunk;

    use std::sync::Arc;

    #[test]
    fn framing() {
        assert_eq!(frame("streams", "{\"a\":1}"), "event: streams\ndata: {\"a\":1}\n\n");
        assert_eq!(
            frame("x", "one\ntwo\r\nthree"),
            "event: x\ndata: one\ndata: two\ndata: three\n\n"
        );
        assert_eq!(frame("x", ""), "event: x\ndata: \n\n");
        let head = response_head();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("Content-Type: text/event-stream"));
        assert!(head.ends_with("\r\n\r\nretry: 2000\n\n"));
    }

    #[test]
    fn frames_carry_json_one_line_each() {
        let hub = Hub::new();
        hub.chunk(
            &Chunk::new("a", 360.0, 0, vec!["II".into()], vec![vec![0.5, f32::NAN]]),
            10.0,
        );
        let mut cursor = Cursor::new(Some("a".into()));
        let frames = frames(&hub.updates(&mut cursor, true));
        assert_eq!(frames.len(), 2);
        assert!(
            frames[0].starts_with("event: streams\ndata: {\"status\":\"idle\""),
            "{}",
            frames[0]
        );
        assert!(frames[1].starts_with("event: wave\ndata: {"), "{}", frames[1]);
        assert!(frames[1].contains("\"samples\":[0.5,null]"), "{}", frames[1]);
        for f in &frames {
            assert_eq!(f.matches('\n').count(), 3, "one data line: {f}");
        }
    }

    /// A writer that takes a while per write, like a slow page.
    struct Slow(std::sync::mpsc::Sender<String>);
    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(50));
            self.0
                .send(String::from_utf8_lossy(buf).into_owned())
                .map_err(|_| std::io::Error::other("gone"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_page_never_holds_up_the_writers_and_skips_what_it_missed() {
        let hub = Arc::new(Hub::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let client = {
            let (hub, stop) = (hub.clone(), stop.clone());
            std::thread::spawn(move || serve_client(&hub, &mut Slow(tx), Some("a".into()), &stop))
        };
        // 60 s of signal pushed as fast as possible: the writer is never blocked by the page.
        let started = Instant::now();
        for i in 0..600u64 {
            hub.chunk(
                &Chunk::new("a", 360.0, i * 36, vec!["II".into()], vec![vec![0.1; 36]]),
                10.0,
            );
        }
        hub.end("a");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        // The page still ends up with the final state.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut text = String::new();
        while Instant::now() < deadline && !text.contains("\"ended\":true") {
            if let Ok(t) = rx.recv_timeout(Duration::from_millis(200)) {
                text.push_str(&t);
            }
        }
        stop.store(true, Ordering::Relaxed);
        hub.wake_all();
        drop(rx);
        client.join().unwrap();
        assert!(text.contains("\"ended\":true"), "{text}");
        assert!(text.contains("event: wave"));
        // Far fewer frames than chunks: updates were coalesced or skipped.
        assert!(text.matches("event: wave").count() < 100);
    }
}
