//! The live state of every stream, shared by the dataflow (which writes it through the
//! `monitor` sink) and the web server (which reads it for the page, the JSON API and the
//! server-sent events).
//!
//! Memory stays bounded whatever the length of the run: per stream a ring of the last
//! `seconds` of the first lead, the last [`MAX_BEATS`] beats, the last [`MAX_EVENTS`] events,
//! at most [`MAX_ALARMS`] active alarms, the latest explanation; and at most [`MAX_STREAMS`]
//! streams. Writers hold the lock only to copy a chunk in; readers copy out what they need
//! and format it after the lock is released.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use ecgflow_operators::explain::Explanation;
use ecgflow_operators::{Beat, Chunk, DecidedBy, Event, EventPhase};
use serde::Serialize;

/// Seconds of waveform kept per stream unless a sink asks for another window.
pub const DEFAULT_SECONDS: f64 = 10.0;
/// The longest waveform window a sink may ask for, in seconds.
pub const MAX_SECONDS: f64 = 600.0;
/// Waveform samples kept per stream at most, whatever the window and the sampling rate.
pub const MAX_WAVE_SAMPLES: usize = 1 << 20;
/// Beats kept per stream (the page marks those inside the waveform window).
pub const MAX_BEATS: usize = 512;
/// Recent events kept per stream.
pub const MAX_EVENTS: usize = 32;
/// Active alarms per stream at most (alarm kinds are few; this only guards against a flood).
pub const MAX_ALARMS: usize = 32;
/// Streams the hub follows at most; later ones are refused and counted.
pub const MAX_STREAMS: usize = 10_000;
/// R peaks kept per stream for the heart rate.
const HR_PEAKS: usize = 9;
/// Beats sent in a stream's summary (the strip of recent classes on the ward view).
const SUMMARY_BEATS: usize = 24;
/// Events sent in a stream's summary.
const SUMMARY_EVENTS: usize = 8;
/// Longest text kept from sources (metadata values, event evidence), in characters.
const MAX_TEXT: usize = 200;
/// Metadata entries kept per stream.
const MAX_META: usize = 16;
/// Distinct class names counted per stream.
const MAX_CLASSES: usize = 32;

/// How the pipeline behind the page is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Nothing has started (the hub was just made or reset).
    Idle,
    Running,
    Finished,
    /// The run stopped with an error (the message is shown on the page).
    Failed(String),
}

impl RunStatus {
    pub fn name(&self) -> &'static str {
        match self {
            RunStatus::Idle => "idle",
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed(_) => "failed",
        }
    }
}

/// One beat as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BeatMark {
    /// Order of arrival in its stream, from 1 (a mark completed later, e.g. by its
    /// classification, gets a new one).
    pub seq: u64,
    /// R-peak sample index in the stream.
    pub sample: u64,
    /// The predicted class, when a model classified the beat.
    pub class: Option<String>,
    /// Probability of the predicted class, when the network's most probable class is the
    /// verdict (a decision after the network may call a less probable class).
    pub probability: Option<f32>,
    /// What made `class` the verdict: how a person would say it ("by the network", "by the
    /// premature-beat rule (...)", ...).
    pub decided_by: Option<&'static str>,
    /// The reference annotation (e.g. MIT-BIH's symbol), when the stream carries one.
    pub symbol: Option<String>,
}

/// An alarm that started and has not ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alarm {
    pub kind: String,
    /// Stream time at which it started, in seconds.
    pub since_s: f64,
    pub evidence: String,
}

/// A recent event of a stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventMark {
    pub kind: String,
    pub phase: &'static str,
    pub time_s: f64,
    pub evidence: String,
}

/// What the page shows of the latest explanation (the picture is fetched separately).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExplanationInfo {
    /// Order of arrival in its stream, from 1: the picture's URL changes with it.
    pub seq: u64,
    pub sample: u64,
    pub method: String,
    pub class: String,
    /// The network's probability of `class`.
    pub probability: f32,
    /// What made `class` the verdict (see [`BeatMark::decided_by`]), when known.
    pub decided_by: Option<&'static str>,
    pub symbol: Option<String>,
}

/// The live state of one stream.
#[derive(Debug)]
struct StreamState {
    meta: Vec<(String, String)>,
    fs: f64,
    lead: Option<String>,
    /// The last samples of the first lead; `wave_end` is the stream index one past the last.
    wave: VecDeque<f32>,
    wave_capacity: usize,
    wave_end: u64,
    beats: VecDeque<BeatMark>,
    beats_total: u64,
    /// Bumped for each beat mark added or completed: the marks' `seq`.
    beat_seq: u64,
    classes: BTreeMap<String, u64>,
    /// Recent R peaks (beats and detected peaks), ascending.
    peaks: VecDeque<u64>,
    alarms: Vec<Alarm>,
    events: VecDeque<EventMark>,
    events_total: u64,
    explanation: Option<(ExplanationInfo, Arc<Explanation>)>,
    picture: Option<(u64, Arc<Vec<u8>>)>,
    explanations_total: u64,
    ended: bool,
    failed: bool,
}

impl StreamState {
    fn new() -> Self {
        StreamState {
            meta: Vec::new(),
            fs: 0.0,
            lead: None,
            wave: VecDeque::new(),
            wave_capacity: 0,
            wave_end: 0,
            beats: VecDeque::new(),
            beats_total: 0,
            beat_seq: 0,
            classes: BTreeMap::new(),
            peaks: VecDeque::new(),
            alarms: Vec::new(),
            events: VecDeque::new(),
            events_total: 0,
            explanation: None,
            picture: None,
            explanations_total: 0,
            ended: false,
            failed: false,
        }
    }

    fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Stream index of the first sample held.
    fn wave_start(&self) -> u64 {
        self.wave_end - self.wave.len() as u64
    }

    /// The latest stream time known (samples, or beats when no samples come).
    fn latest_sample(&self) -> u64 {
        let beat = self.beats.back().map_or(0, |b| b.sample);
        self.wave_end.max(beat)
    }

    fn add_peak(&mut self, sample: u64) {
        match self.peaks.binary_search(&sample) {
            Ok(_) => {}
            Err(i) if i == 0 && self.peaks.len() >= HR_PEAKS => {} // older than all we keep
            Err(i) => {
                self.peaks.insert(i, sample);
                while self.peaks.len() > HR_PEAKS {
                    self.peaks.pop_front();
                }
            }
        }
    }

    /// Beats per minute from the median RR interval of the recent peaks; none when fewer
    /// than three peaks are known or the last one is more than 5 s old (asystole or lead off
    /// would otherwise leave a stale rate on the screen).
    fn heart_rate(&self) -> Option<f64> {
        if self.fs <= 0.0 || self.peaks.len() < 3 {
            return None;
        }
        let last = *self.peaks.back()?;
        if self.latest_sample().saturating_sub(last) as f64 > 5.0 * self.fs {
            return None;
        }
        let mut rr: Vec<u64> = self
            .peaks
            .iter()
            .zip(self.peaks.iter().skip(1))
            .map(|(a, b)| b - a)
            .collect();
        rr.sort_unstable();
        let median = rr[rr.len() / 2] as f64 / self.fs;
        (median > 0.0).then(|| 60.0 / median)
    }

    /// Sets the waveform window; keeps the newest samples when it shrinks.
    fn set_capacity(&mut self, capacity: usize) {
        self.wave_capacity = capacity;
        while self.wave.len() > capacity {
            self.wave.pop_front();
        }
        self.wave.shrink_to(capacity);
    }

    fn push_chunk(&mut self, chunk: &Chunk, seconds: f64) {
        if chunk.fs > 0.0 && chunk.fs != self.fs {
            self.fs = chunk.fs;
        }
        let capacity = wave_capacity(seconds, self.fs);
        if capacity != self.wave_capacity {
            self.set_capacity(capacity);
        }
        if self.lead.is_none() {
            self.lead = chunk.leads.first().map(|l| truncate(l));
        }
        for &peak in &chunk.rpeaks {
            self.add_peak(peak);
        }
        let Some(samples) = chunk.samples.first() else {
            return;
        };
        let end = chunk.start + samples.len() as u64;
        if end <= self.wave_end {
            return; // already held (the same stream reaching the hub by two edges)
        }
        let mut from = 0usize;
        if chunk.start < self.wave_end {
            from = (self.wave_end - chunk.start) as usize;
        } else if chunk.start > self.wave_end {
            // A gap (lost or dropped samples): shown as a break in the trace.
            let gap = chunk.start - self.wave_end;
            if gap >= self.wave_capacity as u64 {
                self.wave.clear();
            } else {
                for _ in 0..gap {
                    self.push_sample(f32::NAN);
                }
            }
        }
        let new = &samples[from..];
        if new.len() >= self.wave_capacity {
            self.wave.clear();
            self.wave.extend(&new[new.len() - self.wave_capacity..]);
        } else {
            for &v in new {
                self.push_sample(v);
            }
        }
        self.wave_end = end;
    }

    fn push_sample(&mut self, v: f32) {
        if self.wave.len() >= self.wave_capacity {
            self.wave.pop_front();
        }
        self.wave.push_back(v);
    }

    fn push_beat(&mut self, beat: &Beat) {
        if beat.fs > 0.0 && self.fs <= 0.0 {
            self.fs = beat.fs;
        }
        self.add_peak(beat.sample);
        let class = beat.prediction.as_ref().map(|p| truncate(&p.class));
        let decided_by = beat.prediction.as_ref().map(|p| p.decided_by.describe());
        let probability = beat
            .prediction
            .as_ref()
            .filter(|p| p.decided_by == DecidedBy::Network)
            .and_then(|p| {
                p.probabilities
                    .iter()
                    .copied()
                    .fold(None, |m: Option<f32>, x| Some(m.map_or(x, |m| m.max(x))))
            });
        // Marks are kept in R-peak order. The same beat may arrive more than once (segmented,
        // classified, explained: by different edges, in any order): the first mark is
        // completed instead, with a new `seq` so that pages get it again.
        let at = self.beats.partition_point(|b| b.sample < beat.sample);
        if let Some(mark) = self.beats.get_mut(at).filter(|b| b.sample == beat.sample) {
            if mark.class.is_none() && class.is_some() {
                self.beat_seq += 1;
                mark.seq = self.beat_seq;
                mark.class = class.clone();
                mark.probability = probability;
                mark.decided_by = decided_by;
                self.count_class(class);
            }
            return;
        }
        if at == 0 && self.beats.len() >= MAX_BEATS {
            return; // older than every beat kept
        }
        self.beats_total += 1;
        self.beat_seq += 1;
        self.count_class(class.clone());
        let mark = BeatMark {
            seq: self.beat_seq,
            sample: beat.sample,
            class,
            probability,
            decided_by,
            symbol: beat.symbol.as_deref().map(truncate),
        };
        self.beats.insert(at, mark);
        while self.beats.len() > MAX_BEATS {
            self.beats.pop_front();
        }
    }

    fn count_class(&mut self, class: Option<String>) {
        let Some(class) = class else { return };
        if let Some(n) = self.classes.get_mut(&class) {
            *n += 1;
        } else if self.classes.len() < MAX_CLASSES {
            self.classes.insert(class, 1);
        }
    }

    fn push_event(&mut self, event: &Event) {
        if event.fs > 0.0 && self.fs <= 0.0 {
            self.fs = event.fs;
        }
        // The alarm rules know the patient and ward even when the stream's start did not say.
        for (key, value) in [("patient", &event.patient), ("ward", &event.ward)] {
            if let Some(v) = value {
                if self.meta_value(key).is_none() && self.meta.len() < MAX_META {
                    self.meta.push((key.to_owned(), truncate(v)));
                }
            }
        }
        let kind = truncate(&event.kind);
        let evidence = truncate(&event.evidence);
        match event.phase {
            EventPhase::Start => {
                self.alarms.retain(|a| a.kind != kind);
                if self.alarms.len() < MAX_ALARMS {
                    self.alarms.push(Alarm {
                        kind: kind.clone(),
                        since_s: event.time_s(),
                        evidence: evidence.clone(),
                    });
                }
            }
            EventPhase::End => self.alarms.retain(|a| a.kind != kind),
            EventPhase::Instant => {}
        }
        self.events_total += 1;
        self.events.push_back(EventMark {
            kind,
            phase: event.phase.name(),
            time_s: event.time_s(),
            evidence,
        });
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }

    fn summary(&self, name: &str) -> StreamSummary {
        StreamSummary {
            stream: name.to_owned(),
            patient: self.meta_value("patient").map(str::to_owned),
            ward: self.meta_value("ward").map(str::to_owned),
            meta: self.meta.iter().cloned().collect(),
            fs: self.fs,
            lead: self.lead.clone(),
            samples: self.wave_end,
            time_s: if self.fs > 0.0 {
                self.latest_sample() as f64 / self.fs
            } else {
                0.0
            },
            window_s: if self.fs > 0.0 {
                self.wave_capacity as f64 / self.fs
            } else {
                0.0
            },
            heart_rate: self.heart_rate().map(|hr| (hr * 10.0).round() / 10.0),
            beats: self.beats_total,
            classes: self.classes.clone(),
            last_beats: self.beats.iter().rev().take(SUMMARY_BEATS).rev().cloned().collect(),
            alarms: self.alarms.clone(),
            events: self.events.iter().rev().take(SUMMARY_EVENTS).rev().cloned().collect(),
            explanation: self.explanation.as_ref().map(|(info, _)| info.clone()),
            ended: self.ended,
            failed: self.failed,
        }
    }

    /// The beats whose R peak lies in the waveform window (or the last ones when there is no
    /// waveform), after `after_seq`.
    fn beats_in_window(&self, after_seq: u64) -> Vec<BeatMark> {
        let start = if self.wave_end > 0 { self.wave_start() } else { 0 };
        self.beats
            .iter()
            .filter(|b| b.seq > after_seq && b.sample >= start)
            .cloned()
            .collect()
    }
}

/// Samples of a `seconds` window at `fs`, within [`MAX_WAVE_SAMPLES`].
fn wave_capacity(seconds: f64, fs: f64) -> usize {
    let seconds = if seconds.is_finite() {
        seconds.clamp(0.1, MAX_SECONDS)
    } else {
        DEFAULT_SECONDS
    };
    let fs = if fs.is_finite() && fs > 0.0 { fs } else { 360.0 };
    ((seconds * fs).ceil() as usize).clamp(1, MAX_WAVE_SAMPLES)
}

/// Text from a source, cut to [`MAX_TEXT`] characters.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A sample rounded to the microvolt, for compact JSON.
fn round_uv(v: f32) -> f32 {
    (v * 1000.0).round() / 1000.0
}

/// What the ward view shows of a stream: the items of `/api/streams`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub patient: Option<String>,
    pub ward: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub fs: f64,
    pub lead: Option<String>,
    /// Samples received (the stream index one past the last).
    pub samples: u64,
    /// Stream time of the latest sample or beat, in seconds.
    pub time_s: f64,
    /// Seconds of waveform kept.
    pub window_s: f64,
    pub heart_rate: Option<f64>,
    pub beats: u64,
    pub classes: BTreeMap<String, u64>,
    pub last_beats: Vec<BeatMark>,
    pub alarms: Vec<Alarm>,
    pub events: Vec<EventMark>,
    pub explanation: Option<ExplanationInfo>,
    pub ended: bool,
    pub failed: bool,
}

/// The body of `GET /api/streams` and of the `streams` server-sent event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    pub status: &'static str,
    pub error: Option<String>,
    /// Changes with every reset of the hub (a new run).
    pub generation: u64,
    pub streams: Vec<StreamSummary>,
}

/// A piece of a stream's waveform: the `wave` server-sent event, and `wave` in
/// `GET /api/streams/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Wave {
    pub stream: String,
    pub fs: f64,
    /// Stream index of the first sample.
    pub start: u64,
    /// Samples the window holds at most (`window_s × fs`).
    pub capacity: usize,
    /// True when these samples replace what the page holds (first piece, a gap, a new run).
    pub reset: bool,
    /// First lead, mV rounded to the microvolt; `null` for a gap.
    pub samples: Vec<f32>,
}

/// New beats of a stream: the `beats` server-sent event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Beats {
    pub stream: String,
    pub beats: Vec<BeatMark>,
}

/// One stream in full: `GET /api/streams/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamDetail {
    #[serde(flatten)]
    pub summary: StreamSummary,
    pub wave: Wave,
    /// Every beat held whose R peak lies in the waveform window.
    pub window_beats: Vec<BeatMark>,
}

/// Where a server-sent-event client stands: what it has already been sent.
#[derive(Clone, Debug, Default)]
pub struct Cursor {
    /// The stream of the patient view, or none for the ward view.
    pub stream: Option<String>,
    generation: u64,
    /// Hub version of the last summary sent; `None` before the first.
    summary_version: Option<u64>,
    wave_end: Option<u64>,
    beat_seq: u64,
    explanation_seq: u64,
}

impl Cursor {
    pub fn new(stream: Option<String>) -> Self {
        Cursor {
            stream,
            ..Cursor::default()
        }
    }

    /// True when the client's last summary is older than hub version `version`.
    pub fn summary_behind(&self, version: u64) -> bool {
        self.summary_version != Some(version)
    }
}

/// Updates for one client, made by [`Hub::updates`].
#[derive(Debug, Default)]
pub struct Updates {
    pub snapshot: Option<Snapshot>,
    pub wave: Option<Wave>,
    pub beats: Option<Beats>,
    pub explanation: Option<(String, ExplanationInfo)>,
}

impl Updates {
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.wave.is_none() && self.beats.is_none() && self.explanation.is_none()
    }
}

struct Inner {
    /// Bumped on every change.
    version: u64,
    generation: u64,
    status: RunStatus,
    streams: BTreeMap<String, StreamState>,
}

/// Counters of the hub and its server, for `/metrics`.
#[derive(Debug, Default)]
pub struct HubCounters {
    pub samples: AtomicU64,
    pub beats: AtomicU64,
    pub events: AtomicU64,
    pub explanations: AtomicU64,
    pub streams_refused: AtomicU64,
    pub sse_clients: AtomicU64,
    pub sse_frames: AtomicU64,
    pub sse_refused: AtomicU64,
    pub http_requests: AtomicU64,
    pub unauthorized: AtomicU64,
}

/// The live state of every stream, thread-safe. One per process ([`Hub::global`]) for the
/// `monitor` sinks of a pipeline and the server of `ecgflow serve`; tests make their own.
pub struct Hub {
    inner: Mutex<Inner>,
    changed: Condvar,
    pub counters: HubCounters,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("streams", &self.stream_count()).finish()
    }
}

impl Hub {
    pub fn new() -> Self {
        Hub {
            inner: Mutex::new(Inner {
                version: 0,
                generation: 1,
                status: RunStatus::Idle,
                streams: BTreeMap::new(),
            }),
            changed: Condvar::new(),
            counters: HubCounters::default(),
        }
    }

    /// The process's hub: `monitor` sinks are built from pipeline fields alone, so they and
    /// the server meet here.
    pub fn global() -> Arc<Hub> {
        static GLOBAL: OnceLock<Arc<Hub>> = OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(Hub::new())).clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent (if partial) state: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a change to a stream (created on first sight) and wakes the clients.
    fn update(&self, stream: &str, f: impl FnOnce(&mut StreamState)) {
        let mut inner = self.lock();
        if !inner.streams.contains_key(stream) {
            if inner.streams.len() >= MAX_STREAMS {
                self.counters.streams_refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            inner.streams.insert(stream.to_owned(), StreamState::new());
        }
        f(inner.streams.get_mut(stream).expect("present"));
        inner.version += 1;
        drop(inner);
        self.changed.notify_all();
    }

    /// Forgets every stream (a new run begins).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.streams.clear();
        inner.generation += 1;
        inner.version += 1;
        inner.status = RunStatus::Idle;
        drop(inner);
        self.changed.notify_all();
    }

    pub fn set_status(&self, status: RunStatus) {
        let mut inner = self.lock();
        inner.status = status;
        inner.version += 1;
        drop(inner);
        self.changed.notify_all();
    }

    pub fn status(&self) -> RunStatus {
        self.lock().status.clone()
    }

    /// A stream begins, with what its source knows of it (`patient`, `ward`, ...). The same
    /// stream may be announced by several edges; the metadata is only replaced.
    pub fn start(&self, stream: &str, meta: &[(String, String)]) {
        self.update(stream, |s| {
            s.meta = meta
                .iter()
                .take(MAX_META)
                .map(|(k, v)| (truncate(k), truncate(v)))
                .collect();
        });
    }

    /// Samples of a stream; the first lead's last `seconds` are kept.
    pub fn chunk(&self, chunk: &Chunk, seconds: f64) {
        self.counters.samples.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.update(&chunk.stream, |s| s.push_chunk(chunk, seconds));
    }

    /// A beat, classified or not. A beat seen again (by another edge) completes the first.
    pub fn beat(&self, beat: &Beat) {
        self.counters.beats.fetch_add(1, Ordering::Relaxed);
        self.update(&beat.stream, |s| s.push_beat(beat));
    }

    /// An alarm or stream event: `start` raises an alarm until its `end`.
    pub fn event(&self, event: &Event) {
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        self.update(&event.stream, |s| s.push_event(event));
    }

    /// An explained beat: becomes the stream's latest explanation (and its beat is marked).
    /// Explanations of whole records are counted but not shown: the page follows beats.
    pub fn explanation(&self, explanation: &Explanation) {
        self.counters.explanations.fetch_add(1, Ordering::Relaxed);
        let Some(e) = explanation.beat() else { return };
        self.update(&e.stream, |s| {
            s.push_beat(e);
            s.explanations_total += 1;
            let info = ExplanationInfo {
                seq: s.explanations_total,
                sample: e.sample,
                method: truncate(&explanation.attribution.method),
                class: truncate(&explanation.class_name),
                probability: explanation.attribution.probability,
                decided_by: e.prediction.as_ref().map(|p| p.decided_by.describe()),
                symbol: e.symbol.as_deref().map(truncate),
            };
            s.explanation = Some((info, Arc::new(explanation.clone())));
            s.picture = None;
        });
    }

    /// The stream has ended (the page keeps showing its last state).
    pub fn end(&self, stream: &str) {
        self.update(stream, |s| s.ended = true);
    }

    /// The stream failed and was left out of the run.
    pub fn abort(&self, stream: &str) {
        self.update(stream, |s| {
            s.failed = true;
            s.ended = true;
            s.alarms.clear();
        });
    }

    pub fn stream_count(&self) -> usize {
        self.lock().streams.len()
    }

    /// The current version (bumped on every change).
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Waits until the version differs from `seen` or `timeout` passes; returns the version.
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64 {
        let inner = self.lock();
        if inner.version != seen {
            return inner.version;
        }
        let (inner, _) = self
            .changed
            .wait_timeout_while(inner, timeout, |i| i.version == seen)
            .unwrap_or_else(|e| e.into_inner());
        inner.version
    }

    /// Wakes every waiting client (e.g. for shutdown).
    pub fn wake_all(&self) {
        self.changed.notify_all();
    }

    /// Every stream's summary, as `GET /api/streams` gives it.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        snapshot_of(&inner)
    }

    /// One stream in full, with its waveform and the beats inside it.
    pub fn detail(&self, stream: &str) -> Option<StreamDetail> {
        let inner = self.lock();
        let s = inner.streams.get(stream)?;
        Some(StreamDetail {
            summary: s.summary(stream),
            wave: wave_of(stream, s, s.wave_start(), true),
            window_beats: s.beats_in_window(0),
        })
    }

    /// The explanation to draw for a stream, with its sequence number and a picture already
    /// drawn for it, if any.
    #[allow(clippy::type_complexity)]
    pub fn latest_explanation(&self, stream: &str) -> Option<(u64, Arc<Explanation>, Option<Arc<Vec<u8>>>)> {
        let inner = self.lock();
        let s = inner.streams.get(stream)?;
        let (info, e) = s.explanation.as_ref()?;
        let picture = s
            .picture
            .as_ref()
            .filter(|(seq, _)| *seq == info.seq)
            .map(|(_, p)| p.clone());
        Some((info.seq, e.clone(), picture))
    }

    /// Keeps the picture drawn for explanation `seq` of a stream (unless a newer one came).
    pub fn keep_picture(&self, stream: &str, seq: u64, picture: Arc<Vec<u8>>) {
        let mut inner = self.lock();
        if let Some(s) = inner.streams.get_mut(stream) {
            if s.explanation.as_ref().is_some_and(|(info, _)| info.seq == seq) {
                s.picture = Some((seq, picture));
            }
        }
    }

    /// What a client has not seen yet. The ward view (no stream) gets summaries; the patient
    /// view also gets its stream's new samples, beats and explanation. A client that fell
    /// behind the window gets the window afresh (`reset`): it never holds up the dataflow,
    /// it skips what it missed. Summaries are sent when `with_summary` is true (the caller
    /// paces them).
    pub fn updates(&self, cursor: &mut Cursor, with_summary: bool) -> Updates {
        let inner = self.lock();
        let mut out = Updates::default();
        let new_run = cursor.generation != inner.generation;
        if new_run {
            cursor.generation = inner.generation;
            cursor.summary_version = None;
            cursor.wave_end = None;
            cursor.beat_seq = 0;
            cursor.explanation_seq = 0;
        }
        if (with_summary || cursor.summary_version.is_none()) && cursor.summary_version != Some(inner.version) {
            cursor.summary_version = Some(inner.version);
            out.snapshot = Some(snapshot_of(&inner));
        }
        let Some(name) = cursor.stream.clone() else {
            return out;
        };
        let Some(s) = inner.streams.get(&name) else {
            return out;
        };
        let start = s.wave_start();
        match cursor.wave_end {
            Some(end) if end == s.wave_end => {}
            Some(end) if end >= start && end < s.wave_end => {
                out.wave = Some(wave_of(&name, s, end, false));
            }
            _ => out.wave = Some(wave_of(&name, s, start, true)),
        }
        cursor.wave_end = Some(s.wave_end);
        let last_seq = s.beat_seq;
        if last_seq > cursor.beat_seq || out.wave.as_ref().is_some_and(|w| w.reset) {
            let after = if out.wave.as_ref().is_some_and(|w| w.reset) {
                0
            } else {
                cursor.beat_seq
            };
            let beats = s.beats_in_window(after);
            cursor.beat_seq = last_seq;
            if !beats.is_empty() {
                out.beats = Some(Beats {
                    stream: name.clone(),
                    beats,
                });
            }
        }
        if let Some((info, _)) = &s.explanation {
            if info.seq != cursor.explanation_seq {
                cursor.explanation_seq = info.seq;
                out.explanation = Some((name.clone(), info.clone()));
            }
        }
        out
    }

    /// The hub's own metrics in the Prometheus text format.
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write as _;
        let (streams, ended, alarms) = {
            let inner = self.lock();
            let ended = inner.streams.values().filter(|s| s.ended).count();
            let alarms: usize = inner.streams.values().map(|s| s.alarms.len()).sum();
            (inner.streams.len(), ended, alarms)
        };
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let gauges = [
            (
                "ecgflow_monitor_streams",
                "Streams the monitor follows.",
                streams as u64,
            ),
            (
                "ecgflow_monitor_streams_ended",
                "Streams that have ended.",
                ended as u64,
            ),
            (
                "ecgflow_monitor_active_alarms",
                "Alarms started and not ended, over all streams.",
                alarms as u64,
            ),
            (
                "ecgflow_monitor_sse_clients",
                "Pages connected for server-sent events.",
                load(&c.sse_clients),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        let counters = [
            (
                "ecgflow_monitor_samples_total",
                "Samples that reached monitor sinks.",
                load(&c.samples),
            ),
            (
                "ecgflow_monitor_beats_total",
                "Beats that reached monitor sinks.",
                load(&c.beats),
            ),
            (
                "ecgflow_monitor_events_total",
                "Events that reached monitor sinks.",
                load(&c.events),
            ),
            (
                "ecgflow_monitor_explanations_total",
                "Explanations that reached monitor sinks.",
                load(&c.explanations),
            ),
            (
                "ecgflow_monitor_streams_refused_total",
                "Payloads of streams beyond the monitor's limit, not shown.",
                load(&c.streams_refused),
            ),
            (
                "ecgflow_monitor_sse_frames_total",
                "Server-sent events written to pages.",
                load(&c.sse_frames),
            ),
            (
                "ecgflow_monitor_sse_refused_total",
                "Event-stream connections refused (too many clients).",
                load(&c.sse_refused),
            ),
            (
                "ecgflow_monitor_http_requests_total",
                "HTTP requests served.",
                load(&c.http_requests),
            ),
            (
                "ecgflow_monitor_unauthorized_total",
                "HTTP requests refused for a missing or wrong token.",
                load(&c.unauthorized),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        out
    }
}

fn snapshot_of(inner: &Inner) -> Snapshot {
    Snapshot {
        status: inner.status.name(),
        error: match &inner.status {
            RunStatus::Failed(e) => Some(e.clone()),
            _ => None,
        },
        generation: inner.generation,
        streams: inner.streams.iter().map(|(name, s)| s.summary(name)).collect(),
    }
}

fn wave_of(name: &str, s: &StreamState, from: u64, reset: bool) -> Wave {
    let start = s.wave_start();
    let skip = from.saturating_sub(start) as usize;
    Wave {
        stream: name.to_owned(),
        fs: s.fs,
        start: start.max(from),
        capacity: s.wave_capacity,
        reset,
        samples: s.wave.iter().skip(skip).map(|&v| round_uv(v)).collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(stream: &str, start: u64, n: usize) -> Chunk {
        let samples = (0..n).map(|i| (start + i as u64) as f32 / 1000.0).collect();
        Chunk::new(stream, 360.0, start, vec!["MLII".into()], vec![samples])
    }

    pub(crate) fn beat(stream: &str, sample: u64, class: Option<&str>) -> Beat {
        let prediction = class.map(|c| json!({"model": "m", "version": "1", "class": c, "probabilities": [0.1, 0.9]}));
        serde_json::from_value(json!({
            "stream": stream, "fs": 360.0, "sample": sample, "leads": ["MLII"], "before": 1, "after": 1,
            "window": [0.0, 1.0, 0.0], "rr_prev": null, "rr_next": null, "rr_local": null,
            "symbol": "N", "prediction": prediction,
        }))
        .expect("a beat")
    }

    fn event(stream: &str, kind: &str, phase: &str, sample: u64) -> Event {
        serde_json::from_value(json!({
            "stream": stream, "kind": kind, "phase": phase, "sample": sample, "fs": 360.0,
            "patient": null, "ward": null, "evidence": "3 V beats",
        }))
        .expect("an event")
    }

    #[test]
    fn the_waveform_keeps_only_its_window_however_long_the_run() {
        let hub = Hub::new();
        for i in 0..10_000u64 {
            hub.chunk(&chunk("a", i * 360, 360), 10.0);
        }
        let d = hub.detail("a").expect("stream");
        assert_eq!(d.wave.samples.len(), 3600);
        assert_eq!(d.wave.capacity, 3600);
        assert_eq!(d.wave.start, 10_000 * 360 - 3600);
        assert_eq!(d.summary.samples, 10_000 * 360);
        // The newest sample is the last one sent (values are the index / 1000, rounded).
        assert_eq!(
            *d.wave.samples.last().unwrap(),
            round_uv((10_000 * 360 - 1) as f32 / 1000.0)
        );
    }

    #[test]
    fn a_chunk_longer_than_the_window_keeps_its_end() {
        let hub = Hub::new();
        hub.chunk(&chunk("a", 0, 5000), 1.0);
        let d = hub.detail("a").unwrap();
        assert_eq!(d.wave.samples.len(), 360);
        assert_eq!(d.wave.start, 5000 - 360);
    }

    #[test]
    fn duplicate_and_overlapping_chunks_are_not_held_twice_and_gaps_are_breaks() {
        let hub = Hub::new();
        hub.chunk(&chunk("a", 0, 100), 10.0);
        hub.chunk(&chunk("a", 0, 100), 10.0);
        hub.chunk(&chunk("a", 50, 100), 10.0);
        let d = hub.detail("a").unwrap();
        assert_eq!(d.wave.samples.len(), 150);
        hub.chunk(&chunk("a", 160, 10), 10.0);
        let d = hub.detail("a").unwrap();
        assert_eq!(d.wave.samples.len(), 170);
        assert!(d.wave.samples[150..160].iter().all(|v| v.is_nan()));
        // A gap longer than the window starts it afresh.
        hub.chunk(&chunk("a", 1_000_000, 10), 10.0);
        let d = hub.detail("a").unwrap();
        assert_eq!((d.wave.start, d.wave.samples.len()), (1_000_000, 10));
    }

    #[test]
    fn beats_events_and_streams_are_bounded() {
        let hub = Hub::new();
        for i in 0..5000u64 {
            hub.beat(&beat("a", i * 300, Some(if i % 10 == 0 { "V" } else { "N" })));
            hub.event(&event("a", "pause", "instant", i * 300));
        }
        let d = hub.detail("a").unwrap();
        assert_eq!(d.summary.beats, 5000);
        assert_eq!(d.summary.classes["V"], 500);
        assert_eq!(d.summary.classes["N"], 4500);
        assert_eq!(d.summary.last_beats.len(), SUMMARY_BEATS);
        assert_eq!(d.summary.events.len(), SUMMARY_EVENTS);
        let inner = hub.lock();
        let s = &inner.streams["a"];
        assert_eq!(s.beats.len(), MAX_BEATS);
        assert_eq!(s.events.len(), MAX_EVENTS);
        assert!(s.peaks.len() <= HR_PEAKS);
        drop(inner);
        for i in 0..MAX_STREAMS + 5 {
            hub.end(&format!("s{i}"));
        }
        assert_eq!(hub.stream_count(), MAX_STREAMS);
        assert_eq!(hub.counters.streams_refused.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn heart_rate_from_recent_peaks_and_stale_when_they_stop() {
        let hub = Hub::new();
        // 72 bpm: a beat every 300 samples at 360 Hz.
        for i in 1..=10u64 {
            hub.beat(&beat("a", i * 300, Some("N")));
        }
        hub.chunk(&chunk("a", 0, 3100), 10.0);
        let hr = hub.detail("a").unwrap().summary.heart_rate.expect("a rate");
        assert!((hr - 72.0).abs() < 0.1, "{hr}");
        // Detected peaks in chunks count as well; 6 s without any: no rate.
        hub.chunk(&chunk("a", 3100, 360 * 6), 10.0);
        assert_eq!(hub.detail("a").unwrap().summary.heart_rate, None);
    }

    #[test]
    fn a_classified_copy_completes_the_beat_instead_of_doubling_it() {
        let hub = Hub::new();
        hub.beat(&beat("a", 1000, None));
        hub.beat(&beat("a", 1000, Some("V")));
        let s = hub.detail("a").unwrap().summary;
        assert_eq!(s.beats, 1);
        assert_eq!(s.last_beats[0].class.as_deref(), Some("V"));
        assert_eq!(s.last_beats[0].probability, Some(0.9));
        assert_eq!(s.last_beats[0].decided_by, Some("by the network"));
        assert_eq!(s.classes["V"], 1);
    }

    #[test]
    fn a_class_a_decision_called_shows_no_network_probability() {
        // The network's 0.9 is for N; the premature-beat rule called S.
        let hub = Hub::new();
        let mut early = beat("a", 1000, Some("S"));
        early.prediction.as_mut().unwrap().decided_by = DecidedBy::PrematureRule;
        hub.beat(&early);
        let s = hub.detail("a").unwrap().summary;
        assert_eq!(s.last_beats[0].class.as_deref(), Some("S"));
        assert_eq!(s.last_beats[0].probability, None);
        assert!(s.last_beats[0].decided_by.unwrap().contains("premature-beat rule"));
    }

    #[test]
    fn a_beat_arriving_by_several_edges_in_any_order_is_one_beat() {
        let hub = Hub::new();
        let mut cursor = Cursor::new(Some("a".into()));
        for i in 1..=30u64 {
            hub.beat(&beat("a", i * 300, None)); // segmented
        }
        hub.chunk(&chunk("a", 0, 9100), 30.0);
        let up = hub.updates(&mut cursor, false);
        assert_eq!(up.beats.expect("beats").beats.len(), 30);
        for i in (1..=30u64).rev() {
            hub.beat(&beat("a", i * 300, Some("V"))); // classified, late and in another order
        }
        for i in 1..=30u64 {
            hub.explanation(&crate::chart::tests::explanation("a", i * 300)); // explained
        }
        let s = hub.detail("a").unwrap();
        assert_eq!(s.summary.beats, 30);
        assert_eq!(s.summary.classes["V"], 30);
        let samples: Vec<u64> = s.window_beats.iter().map(|b| b.sample).collect();
        assert_eq!(samples, (1..=30).map(|i| i * 300).collect::<Vec<_>>());
        // The page gets the completed marks again.
        let beats = hub.updates(&mut cursor, false).beats.expect("beats").beats;
        assert_eq!(beats.len(), 30);
        assert!(beats.iter().all(|b| b.class.as_deref() == Some("V")));
        assert_eq!(hub.updates(&mut cursor, false).beats, None);
    }

    #[test]
    fn alarms_are_active_from_start_to_end() {
        let hub = Hub::new();
        hub.event(&event("a", "ventricular_run", "start", 3600));
        hub.event(&event("a", "bradycardia", "start", 3700));
        hub.event(&event("a", "pause", "instant", 3800));
        let s = hub.detail("a").unwrap().summary;
        let kinds: Vec<&str> = s.alarms.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["ventricular_run", "bradycardia"]);
        assert_eq!(s.alarms[0].since_s, 10.0);
        hub.event(&event("a", "ventricular_run", "end", 4000));
        let s = hub.detail("a").unwrap().summary;
        assert_eq!(s.alarms.len(), 1);
        assert_eq!(s.events.len(), 4);
        assert_eq!(s.patient, None);
        let mut e = event("a", "pause", "instant", 4100);
        e.patient = Some("p7".into());
        e.ward = Some("icu".into());
        hub.event(&e);
        let s = hub.detail("a").unwrap().summary;
        assert_eq!((s.patient.as_deref(), s.ward.as_deref()), (Some("p7"), Some("icu")));
    }

    #[test]
    fn metadata_start_end_and_abort() {
        let hub = Hub::new();
        let meta = vec![
            ("patient".to_owned(), "p1".to_owned()),
            ("ward".to_owned(), "icu".to_owned()),
        ];
        hub.start("a", &meta);
        hub.end("a");
        hub.abort("b");
        let snap = hub.snapshot();
        assert_eq!(snap.streams[0].patient.as_deref(), Some("p1"));
        assert_eq!(snap.streams[0].ward.as_deref(), Some("icu"));
        assert!(snap.streams[0].ended && !snap.streams[0].failed);
        assert!(snap.streams[1].failed);
        hub.reset();
        assert_eq!(hub.stream_count(), 0);
        assert_eq!(hub.snapshot().generation, snap.generation + 1);
    }

    #[test]
    fn a_client_gets_what_it_missed_and_a_fresh_window_when_it_fell_behind() {
        let hub = Hub::new();
        let mut cursor = Cursor::new(Some("a".into()));
        let up = hub.updates(&mut cursor, true);
        assert!(up.snapshot.is_some() && up.wave.is_none());
        hub.chunk(&chunk("a", 0, 360), 10.0);
        hub.beat(&beat("a", 100, Some("N")));
        let up = hub.updates(&mut cursor, false);
        assert!(up.snapshot.is_none(), "summaries only when asked for");
        let wave = up.wave.expect("wave");
        assert!(wave.reset);
        assert_eq!((wave.start, wave.samples.len()), (0, 360));
        assert_eq!(up.beats.expect("beats").beats.len(), 1);
        // Nothing new: nothing sent.
        let up = hub.updates(&mut cursor, true);
        assert!(up.wave.is_none() && up.beats.is_none());
        assert!(up.snapshot.is_some(), "the version moved since the last summary");
        assert!(hub.updates(&mut cursor, true).is_empty());
        // Incremental.
        hub.chunk(&chunk("a", 360, 36), 10.0);
        hub.beat(&beat("a", 400, Some("V")));
        let up = hub.updates(&mut cursor, false);
        let wave = up.wave.expect("wave");
        assert!(!wave.reset);
        assert_eq!((wave.start, wave.samples.len()), (360, 36));
        let beats = up.beats.expect("beats").beats;
        assert_eq!((beats.len(), beats[0].sample), (1, 400));
        // Fell behind by more than the window: the whole window again.
        hub.chunk(&chunk("a", 396, 360 * 20), 10.0);
        let wave = hub.updates(&mut cursor, false).wave.expect("wave");
        assert!(wave.reset);
        assert_eq!(wave.samples.len(), 3600);
        // A new run starts everything afresh.
        hub.reset();
        hub.chunk(&chunk("a", 0, 10), 10.0);
        let up = hub.updates(&mut cursor, false);
        assert!(up.snapshot.is_some());
        assert!(up.wave.expect("wave").reset);
    }

    #[test]
    fn waiting_returns_on_change_or_timeout() {
        let hub = Arc::new(Hub::new());
        let seen = hub.version();
        assert_eq!(hub.wait_for_change(seen, Duration::from_millis(10)), seen);
        let h = hub.clone();
        let t = std::thread::spawn(move || h.wait_for_change(seen, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        hub.end("a");
        assert!(t.join().unwrap() > seen);
    }

    #[test]
    fn long_text_from_sources_is_cut() {
        let hub = Hub::new();
        hub.start("a", &[("patient".to_owned(), "x".repeat(10_000))]);
        let p = hub.snapshot().streams[0].patient.clone().unwrap();
        assert_eq!(p.chars().count(), MAX_TEXT + 1);
    }
}
