//! The `alarms` transform: bedside alarm rules (see `ecgflow_operators::alarms`) over a
//! sliding window of each stream's classified beats, maintained with differential dataflow,
//! emitted as events with a start and an end.
//!
//! A per-stream operator inserts each beat into a differential collection keyed by its
//! stream and retracts it once the stream's clock has moved `window_s` past it. A `reduce`
//! runs the rules over each stream's window whenever it changes; the alarms each new window
//! shows are announced once, in stream time (`AlarmAnnouncer`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use differential_dataflow::AsCollection;
use ecgflow_operators::alarms::{AlarmAnnouncer, AlarmBeat, AlarmConfig, AlarmRules};
use ecgflow_operators::{Event, EventPhase};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Filter;
use timely::dataflow::operators::{Concat, Operator};
use timely::dataflow::Stream;

use super::fields::{Default as D, FieldSpec as F};
use super::{same_fs, Built, ComponentSpec, DataflowTransform, Output, Params, PortKind, Step, Transform};
use crate::config::Role;
use crate::message::{meta_value, Body, Message, MessageStream};
use crate::metrics::Metrics;

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "alarms",
    role: Role::Transform,
    summary: "Alarm rules over each stream's classified beats (a `model` step upstream), in stream time: \
              `ventricular_run` starts at the `run_length`-th consecutive ventricular beat and ends at the \
              next beat of another class; `bradycardia` / `tachycardia` when the mean of the last \
              `rate_beats` RR intervals is under / over the limit (ending `hysteresis_bpm` back inside it); \
              `pause` (an instant event at the last beat before it) when no beat came for `pause_s`; \
              `poor_signal` when at least `uncertain_share` of the last `quality_beats` beats were \
              classified with a top probability under `min_probability`. Emits events (start, end or \
              instant, with the sample, the rule, the evidence, and the patient and ward the stream's \
              metadata names) and passes upstream events (lead_off, \
              dropped samples) on; alarms still active when a stream ends end there. The rules run \
              over a sliding window of each stream's last `window_s` seconds of beats, kept in \
              differential dataflow and re-evaluated as beats enter and leave it; an alarm is \
              announced once however many windows show it, and one that its window no longer \
              shows active (a rate alarm whose trigger left the window while the rate stayed \
              inside the hysteresis band) ends at the window's last beat.",
    accepts: &[PortKind::Beats],
    output: Output::Kind(PortKind::Events),
    fields: &[
        F::int(
            "run_length",
            1,
            1000,
            D::Int(3),
            "consecutive ventricular beats that make a run",
        ),
        F::string(
            "ventricular",
            D::Str("V"),
            "predicted classes counted as ventricular, comma-separated",
        ),
        F::positive(
            "bradycardia_bpm",
            0.0,
            400.0,
            D::Float(40.0),
            "heart rate below this is bradycardia",
        ),
        F::positive(
            "tachycardia_bpm",
            0.0,
            400.0,
            D::Float(150.0),
            "heart rate above this is tachycardia",
        ),
        F::int(
            "rate_beats",
            1,
            1000,
            D::Int(8),
            "RR intervals averaged into the heart rate",
        ),
        F::float(
            "hysteresis_bpm",
            0.0,
            100.0,
            D::Float(5.0),
            "a rate alarm ends this far back inside its limit",
        ),
        F::positive(
            "pause_s",
            0.0,
            600.0,
            D::Float(3.0),
            "no beat for longer than this is a pause",
        ),
        F::float(
            "min_probability",
            0.0,
            1.0,
            D::Float(0.5),
            "a beat classified with less top probability is uncertain",
        ),
        F::float(
            "uncertain_share",
            0.0,
            1.0,
            D::Float(0.5),
            "share of uncertain beats that is poor signal",
        ),
        F::int(
            "quality_beats",
            1,
            10_000,
            D::Int(10),
            "beats over which the uncertain share is measured",
        ),
        F::positive(
            "window_s",
            1.0,
            86_400.0,
            D::Float(60.0),
            "stream time of beats the rules see (never fewer than the beats they look back on: `rate_beats` + 1, `quality_beats`, `run_length`)",
        ),
    ],
    check: |p, _| {
        if p.f64("bradycardia_bpm") >= p.f64("tachycardia_bpm") {
            return vec![("bradycardia_bpm".to_owned(), "must be below tachycardia_bpm".to_owned())];
        }
        Vec::new()
    },
    output_fs: same_fs,
    build: |p| {
        Ok(Built::Transform(Arc::new(AlarmsTransform {
            config: config(p),
            window_ms: (p.f64("window_s") * 1000.0).round() as u64,
        })))
    },
}];

fn config(p: &Params) -> AlarmConfig {
    AlarmConfig {
        run_length: p.usize("run_length"),
        ventricular: p
            .str("ventricular")
            .split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect(),
        bradycardia_bpm: p.f64("bradycardia_bpm"),
        tachycardia_bpm: p.f64("tachycardia_bpm"),
        rate_beats: p.usize("rate_beats"),
        hysteresis_bpm: p.f64("hysteresis_bpm"),
        pause_s: p.f64("pause_s"),
        min_probability: p.f64("min_probability") as f32,
        uncertain_share: p.f64("uncertain_share") as f32,
        quality_beats: p.usize("quality_beats"),
    }
}

struct AlarmsTransform {
    config: AlarmConfig,
    window_ms: u64,
}

impl Transform for AlarmsTransform {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        anyhow::bail!("the alarms transform runs as its own dataflow")
    }
    fn dataflow(&self) -> Option<&dyn DataflowTransform> {
        Some(self)
    }
}

/// A stream, as the key of its window: with its route (the engine's placement of the
/// stream, kept on what it emits) and the patient and ward its metadata names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct StreamKey {
    stream: String,
    route: u64,
    patient: Option<String>,
    ward: Option<String>,
}

/// What a stream's window holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum WindowFact {
    /// The stream's `seq`-th beat (the order the rules take them in), with what the rules
    /// need of it; floats as their bits.
    Beat {
        seq: u64,
        sample: u64,
        fs_bits: u64,
        prediction: Option<(String, u32)>,
    },
    /// The stream ended (or was aborted, with the reason): active alarms end at its last beat.
    Ended { abort: Option<String> },
}

impl WindowFact {
    fn beat(seq: u64, beat: &AlarmBeat) -> Self {
        WindowFact::Beat {
            seq,
            sample: beat.sample,
            fs_bits: beat.fs.to_bits(),
            prediction: beat.prediction.as_ref().map(|(c, p)| (c.clone(), p.to_bits())),
        }
    }
}

/// What the rules find over a stream's window.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct WindowAlarms {
    /// The rules' events over the window, in order: (rule, phase, sample, evidence).
    events: Vec<(String, u8, u64, String)>,
    /// The window's last beat: sample and the bits of fs.
    last_beat: Option<(u64, u64)>,
    /// `Some` once the stream has ended: `Some(reason)` if it was aborted.
    ended: Option<Option<String>>,
}

const PHASES: [EventPhase; 3] = [EventPhase::Start, EventPhase::End, EventPhase::Instant];

impl WindowAlarms {
    /// Runs `config`'s rules over a window's facts (sorted: beats in order, then the end).
    fn of(config: &AlarmConfig, key: &StreamKey, facts: &[(&WindowFact, isize)]) -> Self {
        let mut rules = AlarmRules::new(config.clone(), key.patient.clone(), key.ward.clone());
        let mut found = WindowAlarms::default();
        let mut events = Vec::new();
        for (fact, _) in facts {
            match fact {
                WindowFact::Beat {
                    sample,
                    fs_bits,
                    prediction,
                    ..
                } => {
                    let beat = AlarmBeat {
                        sample: *sample,
                        fs: f64::from_bits(*fs_bits),
                        prediction: prediction.as_ref().map(|(c, p)| (c.clone(), f32::from_bits(*p))),
                    };
                    events.extend(rules.observe(&key.stream, &beat));
                    found.last_beat = Some((*sample, *fs_bits));
                }
                WindowFact::Ended { abort } => {
                    if let Some((sample, fs)) = rules.last_beat() {
                        events.extend(rules.finish(&key.stream, sample, fs));
                    }
                    found.ended = Some(abort.clone());
                }
            }
        }
        found.events = events
            .into_iter()
            .map(|e| {
                let phase = PHASES.iter().position(|p| *p == e.phase).expect("every phase listed") as u8;
                (e.kind, phase, e.sample, e.evidence)
            })
            .collect();
        found
    }

    fn events(&self, key: &StreamKey) -> Vec<Event> {
        let fs = self.last_beat.map_or(1.0, |(_, fs)| f64::from_bits(fs));
        self.events
            .iter()
            .map(|(kind, phase, sample, evidence)| Event {
                stream: key.stream.clone(),
                kind: kind.clone(),
                phase: PHASES[usize::from(*phase)],
                sample: *sample,
                fs,
                patient: key.patient.clone(),
                ward: key.ward.clone(),
                evidence: evidence.clone(),
            })
            .collect()
    }
}

/// A stream's window: its key, its beats still inside (stream time in ms, the fact), and
/// its inputs that have not ended yet.
struct StreamWindow {
    key: StreamKey,
    beats: VecDeque<(u64, WindowFact)>,
    /// The dataflow time of the latest beats and how many entered at it (at the back).
    batch: (u64, usize),
    seq: u64,
    open: usize,
}

/// A fact of a stream's window, at a time, inserted (+1) or retracted (-1).
type Update = ((StreamKey, WindowFact), u64, isize);

/// Changes of what the rules find over each stream's window, as differential leaves them.
type AlarmUpdates<'scope> = Stream<'scope, u64, Vec<((StreamKey, WindowAlarms), u64, isize)>>;

impl DataflowTransform for AlarmsTransform {
    fn build<'scope>(&self, input: MessageStream<'scope>, name: &str, counts: Arc<Metrics>) -> MessageStream<'scope> {
        let facts = windows(input.clone(), name, self.window_ms, self.config.history_beats());
        let config = self.config.clone();
        let alarms = facts.as_collection().reduce(
            move |key, facts: &[(&WindowFact, isize)], output: &mut Vec<(WindowAlarms, isize)>| {
                output.push((WindowAlarms::of(&config, key, facts), 1));
            },
        );
        let announced = announce(alarms.inner, &format!("{name}: announce"), counts);
        // Stream starts and upstream events (lead-off, drops) pass on; ends leave with the
        // stream's last alarms.
        let passed = input.filter(|m| matches!(m.body, Body::Start { .. } | Body::Event(_)));
        passed.concat(announced)
    }
}

/// Per stream (on its worker): beats entering and leaving its window.
///
/// A beat leaves once the stream's clock is `window_ms` past it, but only when the window
/// keeps `history` beats that came at earlier dataflow times: differential shows the window
/// as it stands at the end of each time, and a replay at 100 000× real time brings minutes
/// of stream time in one, so a window must hold that whole batch and, before it, the beats
/// the rules look back on. The rules may thus see more than `window_ms` of beats, never
/// fewer.
fn windows<'scope>(
    input: MessageStream<'scope>,
    name: &str,
    window_ms: u64,
    history: usize,
) -> Stream<'scope, u64, Vec<Update>> {
    input.unary(
        Exchange::new(|m: &Message| m.route),
        &format!("{name}: window"),
        move |_, _| {
            let mut windows: HashMap<String, StreamWindow> = HashMap::new();
            move |input, output| {
                input.for_each(|cap, data| {
                    let time = *cap.least().expect("an input capability holds a time");
                    let mut later: Vec<Update> = Vec::new();
                    {
                        let mut session = output.session(&cap);
                        for Message { route, body } in data.drain(..) {
                            match body {
                                Body::Start { stream, meta } => {
                                    let value = |k| meta_value(&meta, k).map(str::to_owned);
                                    let key = StreamKey {
                                        patient: value("patient"),
                                        ward: value("ward"),
                                        stream: stream.clone(),
                                        route,
                                    };
                                    windows.entry(stream).or_insert_with(|| StreamWindow::new(key)).open += 1;
                                }
                                Body::Beat(beat) => {
                                    let window = windows.entry(beat.stream.clone()).or_insert_with(|| {
                                        StreamWindow::new(StreamKey {
                                            stream: beat.stream.clone(),
                                            route,
                                            patient: None,
                                            ward: None,
                                        })
                                    });
                                    let time_ms = (beat.sample as f64 * 1000.0 / beat.fs) as u64;
                                    let fact = WindowFact::beat(window.seq, &AlarmBeat::of(&beat));
                                    window.seq += 1;
                                    for old in window.push(time_ms, time, fact.clone(), window_ms, history) {
                                        session.give(((window.key.clone(), old), time, -1));
                                    }
                                    session.give(((window.key.clone(), fact), time, 1));
                                }
                                Body::End { stream } => {
                                    let now = close(&mut windows, stream, route, None, time, &mut later);
                                    session.give_iterator(now.into_iter());
                                }
                                Body::Abort { stream, reason } => {
                                    let now = close(&mut windows, stream, route, Some(reason), time, &mut later);
                                    session.give_iterator(now.into_iter());
                                }
                                _ => {}
                            }
                        }
                    }
                    if !later.is_empty() {
                        let next = cap.delayed(&(time + 1), 0);
                        output.session(&next).give_iterator(later.into_iter());
                    }
                });
            }
        },
    )
}

/// One of `stream`'s inputs ended (or it was aborted) at `time`: once all have, its end
/// enters the window now (returned) and everything leaves it one time later (`later`), after
/// the rules have seen the end. A stream never seen still ends, so that its end passes on.
fn close(
    windows: &mut HashMap<String, StreamWindow>,
    stream: String,
    route: u64,
    abort: Option<String>,
    time: u64,
    later: &mut Vec<Update>,
) -> Vec<Update> {
    let window = windows.entry(stream.clone()).or_insert_with(|| {
        StreamWindow::new(StreamKey {
            stream: stream.clone(),
            route,
            patient: None,
            ward: None,
        })
    });
    window.open = window.open.saturating_sub(1);
    if window.open > 0 && abort.is_none() {
        return Vec::new();
    }
    let Some(window) = windows.remove(&stream) else {
        return Vec::new();
    };
    let ended = WindowFact::Ended { abort };
    later.push(((window.key.clone(), ended.clone()), time + 1, -1));
    later.extend(
        window
            .beats
            .into_iter()
            .map(|(_, fact)| ((window.key.clone(), fact), time + 1, -1)),
    );
    vec![((window.key, ended), time, 1)]
}

impl StreamWindow {
    fn new(key: StreamKey) -> Self {
        StreamWindow {
            key,
            beats: VecDeque::new(),
            batch: (0, 0),
            seq: 0,
            open: 0,
        }
    }

    /// Adds a beat at stream time `time_ms` that entered at dataflow time `time`; returns
    /// the beats that leave (see [`windows`]): older than `window_ms`, from earlier times,
    /// and not among the `history` that must stay before this time's batch.
    fn push(&mut self, time_ms: u64, time: u64, fact: WindowFact, window_ms: u64, history: usize) -> Vec<WindowFact> {
        if self.batch.0 != time {
            self.batch = (time, 0);
        }
        let mut earlier = self.beats.len() - self.batch.1;
        let mut left = Vec::new();
        while earlier > history && self.beats.front().is_some_and(|(t, _)| t + window_ms <= time_ms) {
            left.extend(self.beats.pop_front().map(|(_, old)| old));
            earlier -= 1;
        }
        self.beats.push_back((time_ms, fact));
        self.batch.1 += 1;
        left
    }
}

/// Each stream's alarms, announced once as its windows change; the stream's end leaves
/// after its last alarms.
fn announce<'scope>(updates: AlarmUpdates<'scope>, name: &str, counts: Arc<Metrics>) -> MessageStream<'scope> {
    updates.unary(Pipeline, name, move |_, _| {
        let mut announcers: HashMap<String, AlarmAnnouncer> = HashMap::new();
        move |input, output| {
            input.for_each(|cap, data| {
                let mut session = output.session(&cap);
                data.sort_by_key(|(_, time, _)| *time);
                for ((key, window), _time, diff) in data.drain(..) {
                    if diff <= 0 {
                        continue; // the window as it was: its successor comes with it
                    }
                    let announcer = announcers.entry(key.stream.clone()).or_insert_with(|| {
                        AlarmAnnouncer::new(key.stream.clone(), key.patient.clone(), key.ward.clone())
                    });
                    let last_beat = window.last_beat.map(|(sample, fs)| (sample, f64::from_bits(fs)));
                    let events = announcer.window(&window.events(&key), last_beat);
                    counts.events.fetch_add(events.len() as u64, Ordering::Relaxed);
                    let route = key.route;
                    session.give_iterator(events.into_iter().map(|e| Message {
                        route,
                        body: Body::Event(e),
                    }));
                    if let Some(abort) = window.ended {
                        announcers.remove(&key.stream);
                        let stream = key.stream.clone();
                        let body = match abort {
                            Some(reason) => Body::Abort { stream, reason },
                            None => Body::End { stream },
                        };
                        session.give(Message { route, body });
                    }
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(seq: u64) -> WindowFact {
        WindowFact::Beat {
            seq,
            sample: seq,
            fs_bits: 1000f64.to_bits(),
            prediction: None,
        }
    }

    #[test]
    fn a_window_keeps_its_batch_and_the_history_before_it() {
        let key = StreamKey {
            stream: "s".into(),
            route: 0,
            patient: None,
            ward: None,
        };
        let mut window = StreamWindow::new(key);
        // A 1 s window, 2 beats of history; beats 1 s apart.
        let mut left = Vec::new();
        for seq in 0..5 {
            left.extend(window.push(seq * 1000, 0, beat(seq), 1000, 2));
        }
        assert!(left.is_empty(), "beats never leave at the time they entered");
        // At a later time, only the history before the new beat stays (and the new beat).
        let left = window.push(5000, 1, beat(5), 1000, 2);
        assert_eq!(left, [beat(0), beat(1), beat(2)]);
        assert_eq!(window.beats.len(), 3);
        // Within the window, beats stay whatever the history.
        let left = window.push(5500, 2, beat(6), 1000, 0);
        assert_eq!(left, [beat(3), beat(4)]);
    }
}
