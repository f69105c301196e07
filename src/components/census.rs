//! The `census` transform: per patient and per ward, over a sliding window of stream time,
//! the count of each beat class, the heart rate and the alarms active, maintained
//! incrementally with differential dataflow as beats enter and leave the window.
//!
//! A per-stream operator turns each classified beat into a fact inserted into a
//! differential collection, and retracts it once the stream's clock (its latest beat) has
//! moved `window_s` past it; alarm starts and ends insert and retract alarm facts. Two
//! `reduce`s (by patient, by ward) keep each group's summary up to date; every new summary
//! leaves as a `census` event.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use differential_dataflow::AsCollection;
use ecgflow_operators::{Event, EventPhase};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Operator;
use timely::dataflow::Stream;

use super::fields::{Default as D, FieldSpec as F};
use super::{same_fs, Built, ComponentSpec, DataflowTransform, Output, PortKind, Step, Transform};
use crate::config::Role;
use crate::message::{meta_value, stream_hash, Body, Message, MessageStream};

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "census",
    role: Role::Transform,
    summary: "Per patient and per ward, over the last `window_s` seconds of stream time: the count of each \
              predicted beat class, the heart rate (from the RR intervals in the window) and the alarms \
              active (from an `alarms` step's events), maintained incrementally with differential dataflow \
              as beats enter and leave the window. Takes classified beats and, optionally, alarm events \
              (`inputs = [\"classify\", \"alarms\"]`); the patient and ward come from the stream's \
              metadata (`replay` and `adc` state them; otherwise the stream name and `ward`). Emits a \
              `census` event whenever a group's summary changes: `stream` is the patient's stream or the \
              ward, `sample` the stream time of its latest beat in milliseconds (`fs` = 1000), and \
              `evidence` reads e.g. `beats=71 N=69 V=2 hr=70.9 alarms=0 window_s=60`.",
    accepts: &[PortKind::Beats, PortKind::Events],
    output: Output::Kind(PortKind::Events),
    fields: &[
        F::positive(
            "window_s",
            0.0,
            86_400.0,
            D::Float(60.0),
            "sliding window of stream time, in seconds",
        ),
        F::string("ward", D::Str("ward"), "ward of streams whose metadata names none"),
    ],
    check: |_, _| Vec::new(),
    output_fs: same_fs,
    build: |p| {
        Ok(Built::Transform(Arc::new(Census {
            window_ms: (p.f64("window_s") * 1000.0).round() as u64,
            default_ward: p.str("ward").to_owned(),
        })))
    },
}];

/// What a group's window holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Fact {
    /// A beat of `stream` at `time_ms`, its predicted class and the RR interval before it.
    Beat {
        stream: String,
        time_ms: u64,
        class: String,
        rr_ms: Option<u32>,
    },
    /// An active alarm of `stream`.
    Alarm { stream: String, rule: String },
}

/// Which group a fact counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Scope {
    Patient,
    Ward,
}

struct Census {
    window_ms: u64,
    default_ward: String,
}

impl Transform for Census {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        anyhow::bail!("the census transform runs as its own dataflow")
    }
    fn dataflow(&self) -> Option<&dyn DataflowTransform> {
        Some(self)
    }
}

/// A stream's window: its patient and ward, and its beats still inside (time, fact).
#[derive(Default)]
struct StreamWindow {
    patient: String,
    ward: String,
    beats: VecDeque<(u64, Fact)>,
    /// Active alarms, to retract when the stream ends.
    alarms: Vec<Fact>,
    /// Inputs that started the stream and have not ended it yet: with beats and alarm
    /// events both coming in, the stream's window closes at its last input's end.
    open: usize,
}

type Update = ((Scope, String, Fact), u64, isize);

impl DataflowTransform for Census {
    fn build<'scope>(&self, input: MessageStream<'scope>, name: &str) -> MessageStream<'scope> {
        let window_ms = self.window_ms;
        let default_ward = self.default_ward.clone();
        // Per stream (on its worker): facts entering and leaving the window.
        let facts: Stream<'scope, u64, Vec<Update>> = input.unary(
            Exchange::new(|m: &Message| m.route),
            &format!("{name}: window"),
            move |_, _| {
                let mut windows: HashMap<String, StreamWindow> = HashMap::new();
                move |input, output| {
                    input.for_each(|cap, data| {
                        let time = *cap.least().expect("an input capability holds a time");
                        let mut session = output.session(&cap);
                        let mut give = |fact: Fact, window: &StreamWindow, diff: isize| {
                            session.give(((Scope::Patient, window.patient.clone(), fact.clone()), time, diff));
                            session.give(((Scope::Ward, window.ward.clone(), fact), time, diff));
                        };
                        for Message { body, .. } in data.drain(..) {
                            match body {
                                Body::Start { stream, meta } => {
                                    let window = windows.entry(stream.clone()).or_insert_with(|| StreamWindow {
                                        patient: meta_value(&meta, "patient").unwrap_or(&stream).to_owned(),
                                        ward: meta_value(&meta, "ward").unwrap_or(&default_ward).to_owned(),
                                        ..StreamWindow::default()
                                    });
                                    window.open += 1;
                                }
                                Body::Beat(beat) => {
                                    let Some(prediction) = &beat.prediction else { continue };
                                    let window = windows.entry(beat.stream.clone()).or_insert_with(|| StreamWindow {
                                        patient: beat.stream.clone(),
                                        ward: default_ward.clone(),
                                        ..StreamWindow::default()
                                    });
                                    let time_ms = (beat.sample as f64 * 1000.0 / beat.fs) as u64;
                                    let rr_ms = window.beats.back().map(|(t, _)| time_ms.saturating_sub(*t) as u32);
                                    let fact = Fact::Beat {
                                        stream: beat.stream.clone(),
                                        time_ms,
                                        class: prediction.class.clone(),
                                        rr_ms,
                                    };
                                    // The stream's clock moved: older beats leave the window.
                                    while let Some((t, _)) = window.beats.front() {
                                        if *t + window_ms > time_ms {
                                            break;
                                        }
                                        let (_, old) = window.beats.pop_front().expect("front exists");
                                        give(old, window, -1);
                                    }
                                    give(fact.clone(), window, 1);
                                    window.beats.push_back((time_ms, fact));
                                }
                                Body::Event(e) if e.phase != EventPhase::Instant && e.kind != "census" => {
                                    let Some(window) = windows.get_mut(&e.stream) else {
                                        continue;
                                    };
                                    let fact = Fact::Alarm {
                                        stream: e.stream.clone(),
                                        rule: e.kind.clone(),
                                    };
                                    let active = window.alarms.iter().position(|a| *a == fact);
                                    match (e.phase, active) {
                                        (EventPhase::Start, None) => {
                                            give(fact.clone(), window, 1);
                                            window.alarms.push(fact);
                                        }
                                        (EventPhase::End, Some(i)) => {
                                            window.alarms.remove(i);
                                            give(fact, window, -1);
                                        }
                                        _ => {}
                                    }
                                }
                                Body::End { stream } | Body::Abort { stream, .. } => {
                                    // The stream is gone: everything it put in leaves.
                                    let Some(window) = windows.get_mut(&stream) else {
                                        continue;
                                    };
                                    window.open = window.open.saturating_sub(1);
                                    if window.open > 0 {
                                        continue;
                                    }
                                    if let Some(mut window) = windows.remove(&stream) {
                                        let alarms = std::mem::take(&mut window.alarms);
                                        let beats = std::mem::take(&mut window.beats);
                                        for fact in alarms.into_iter().chain(beats.into_iter().map(|(_, f)| f)) {
                                            give(fact, &window, -1);
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    });
                }
            },
        );
        let summaries = facts
            .as_collection()
            .map(|(scope, group, fact)| ((scope, group), fact))
            .reduce(
                move |_key, facts: &[(&Fact, isize)], output: &mut Vec<(String, isize)>| {
                    output.push((summary(facts, window_ms), 1));
                },
            );
        // Each new summary leaves as an event; its retraction (the old summary) does not.
        let events: MessageStream<'scope> = summaries.inner.unary(Pipeline, &format!("{name}: events"), |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut session = output.session(&cap);
                    for (((scope, group), evidence), _time, diff) in data.drain(..) {
                        if diff <= 0 {
                            continue;
                        }
                        let latest = evidence
                            .split(' ')
                            .find_map(|w| w.strip_prefix("latest_ms="))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let event = Event {
                            stream: group.clone(),
                            kind: "census".to_owned(),
                            phase: EventPhase::Instant,
                            sample: latest,
                            fs: 1000.0,
                            patient: (scope == Scope::Patient).then(|| group.clone()),
                            ward: (scope == Scope::Ward).then(|| group.clone()),
                            evidence,
                        };
                        session.give(Message {
                            route: stream_hash(&group),
                            body: Body::Event(event),
                        });
                    }
                });
            }
        });
        events
    }
}

/// A group's summary: beats and their classes, heart rate, active alarms.
fn summary(facts: &[(&Fact, isize)], window_ms: u64) -> String {
    let mut classes: std::collections::BTreeMap<&str, isize> = std::collections::BTreeMap::new();
    let (mut beats, mut alarms, mut rr_sum, mut rr_n, mut latest) = (0isize, 0isize, 0u64, 0u64, 0u64);
    for (fact, n) in facts {
        match fact {
            Fact::Beat {
                class, rr_ms, time_ms, ..
            } => {
                beats += n;
                *classes.entry(class).or_default() += n;
                latest = latest.max(*time_ms);
                if let Some(rr) = rr_ms.filter(|rr| *rr > 0) {
                    rr_sum += u64::from(rr) * (*n).max(0) as u64;
                    rr_n += (*n).max(0) as u64;
                }
            }
            Fact::Alarm { .. } => alarms += n,
        }
    }
    let mut words = vec![format!("beats={beats}")];
    words.extend(classes.iter().map(|(c, n)| format!("{c}={n}")));
    if rr_n > 0 {
        words.push(format!("hr={:.1}", 60_000.0 * rr_n as f64 / rr_sum as f64));
    }
    words.push(format!("alarms={alarms}"));
    words.push(format!("window_s={}", window_ms as f64 / 1000.0));
    words.push(format!("latest_ms={latest}"));
    words.join(" ")
}
