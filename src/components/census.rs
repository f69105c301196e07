//! The `census` transform: per patient and per ward, over a sliding window of stream time,
//! the count of each beat class, the heart rate and the alarms active, maintained
//! incrementally with differential dataflow as beats enter and leave the window.
//!
//! A per-stream operator turns each classified beat into a fact inserted into a
//! differential collection, and retracts it once the stream's clock (its latest beat) has
//! moved `window_s` past it; alarm starts and ends insert and retract alarm facts. A
//! `reduce` keeps each patient's tally up to date, a second sums the patients' tallies per
//! ward; every new tally leaves as a `census` event.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use differential_dataflow::AsCollection;
use ecgflow_operators::{Event, EventPhase};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::{Concat, Operator};
use timely::dataflow::Stream;

use super::fields::{Default as D, FieldSpec as F};
use super::{same_fs, Built, ComponentSpec, DataflowTransform, Output, PortKind, Step, Transform};
use crate::config::Role;
use crate::message::{meta_value, stream_hash, Body, Message, MessageStream};
use crate::metrics::Metrics;

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

/// A fact of a (ward, patient) group, at a time, inserted (+1) or retracted (-1).
type Update = (((String, String), Fact), u64, isize);

impl DataflowTransform for Census {
    fn build<'scope>(&self, input: MessageStream<'scope>, name: &str, _counts: Arc<Metrics>) -> MessageStream<'scope> {
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
                            session.give((((window.ward.clone(), window.patient.clone()), fact), time, diff));
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
        // Each patient's window reduced to a tally, then each ward's patients' tallies summed:
        // a change costs the patient's window and the ward's patients, not the ward's beats.
        let patients =
            facts
                .as_collection()
                .reduce(|_key, facts: &[(&Fact, isize)], output: &mut Vec<(Tally, isize)>| {
                    output.push((Tally::of(facts), 1));
                });
        let wards = patients.clone().map(|((ward, _patient), tally)| (ward, tally)).reduce(
            |_ward, tallies: &[(&Tally, isize)], output: &mut Vec<(Tally, isize)>| {
                output.push((Tally::sum(tallies), 1));
            },
        );
        let patient_events = census_events(
            patients.inner,
            &format!("{name}: patient events"),
            window_ms,
            |((_ward, patient), tally)| (patient, tally, true),
        );
        let ward_events = census_events(
            wards.inner,
            &format!("{name}: ward events"),
            window_ms,
            |(ward, tally)| (ward, tally, false),
        );
        patient_events.concat(ward_events)
    }
}

/// Changes of the tallies keyed by `K`, as differential leaves them.
type TallyUpdates<'scope, K> = Stream<'scope, u64, Vec<((K, Tally), u64, isize)>>;

/// Each new summary of `updates` leaves as a `census` event (its retraction, the old
/// summary, does not). `group` gives the group's name, its tally, and whether it is a
/// patient (else a ward).
fn census_events<'scope, K: 'static>(
    updates: TallyUpdates<'scope, K>,
    name: &str,
    window_ms: u64,
    group: impl Fn((K, Tally)) -> (String, Tally, bool) + 'static,
) -> MessageStream<'scope> {
    updates.unary(Pipeline, name, move |_, _| {
        move |input, output| {
            input.for_each(|cap, data| {
                let mut session = output.session(&cap);
                for (update, _time, diff) in data.drain(..) {
                    if diff <= 0 {
                        continue;
                    }
                    let (name, tally, is_patient) = group(update);
                    let event = Event {
                        stream: name.clone(),
                        kind: "census".to_owned(),
                        phase: EventPhase::Instant,
                        sample: tally.latest_ms,
                        fs: 1000.0,
                        patient: is_patient.then(|| name.clone()),
                        ward: (!is_patient).then(|| name.clone()),
                        evidence: tally.evidence(window_ms),
                    };
                    session.give(Message {
                        route: stream_hash(&name),
                        body: Body::Event(event),
                    });
                }
            });
        }
    })
}

/// What a group's window holds, summed.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Tally {
    beats: i64,
    /// Beats of each predicted class.
    classes: BTreeMap<String, i64>,
    /// RR intervals in the window: their sum (ms) and count.
    rr_sum_ms: u64,
    rr_n: u64,
    alarms: i64,
    /// Stream time of the latest beat, in ms.
    latest_ms: u64,
}

impl Tally {
    /// The tally of a patient's facts.
    fn of(facts: &[(&Fact, isize)]) -> Tally {
        let mut t = Tally::default();
        for (fact, n) in facts {
            let n = *n as i64;
            match fact {
                Fact::Beat {
                    class, rr_ms, time_ms, ..
                } => {
                    t.beats += n;
                    *t.classes.entry(class.clone()).or_default() += n;
                    t.latest_ms = t.latest_ms.max(*time_ms);
                    if let Some(rr) = rr_ms.filter(|rr| *rr > 0) {
                        t.rr_sum_ms += u64::from(rr) * n.max(0) as u64;
                        t.rr_n += n.max(0) as u64;
                    }
                }
                Fact::Alarm { .. } => t.alarms += n,
            }
        }
        t
    }

    /// The sum of patients' tallies (a ward's).
    fn sum(tallies: &[(&Tally, isize)]) -> Tally {
        let mut t = Tally::default();
        for (p, n) in tallies {
            let n = *n as i64;
            t.beats += p.beats * n;
            for (class, count) in &p.classes {
                *t.classes.entry(class.clone()).or_default() += count * n;
            }
            t.rr_sum_ms += p.rr_sum_ms * n.max(0) as u64;
            t.rr_n += p.rr_n * n.max(0) as u64;
            t.alarms += p.alarms * n;
            t.latest_ms = t.latest_ms.max(p.latest_ms);
        }
        t
    }

    /// As an event's evidence: `beats=71 N=69 V=2 hr=70.9 alarms=0 window_s=60 latest_ms=...`.
    fn evidence(&self, window_ms: u64) -> String {
        let mut words = vec![format!("beats={}", self.beats)];
        words.extend(self.classes.iter().map(|(c, n)| format!("{c}={n}")));
        if self.rr_n > 0 {
            words.push(format!("hr={:.1}", 60_000.0 * self.rr_n as f64 / self.rr_sum_ms as f64));
        }
        words.push(format!("alarms={}", self.alarms));
        words.push(format!("window_s={}", window_ms as f64 / 1000.0));
        words.push(format!("latest_ms={}", self.latest_ms));
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(stream: &str, time_ms: u64, class: &str, rr_ms: Option<u32>) -> Fact {
        Fact::Beat {
            stream: stream.into(),
            time_ms,
            class: class.into(),
            rr_ms,
        }
    }

    #[test]
    fn a_ward_tally_is_the_sum_of_its_patients() {
        let a = [
            (beat("a", 1000, "N", None), 1),
            (beat("a", 1800, "V", Some(800)), 1),
            (
                Fact::Alarm {
                    stream: "a".into(),
                    rule: "pause".into(),
                },
                1,
            ),
        ];
        let b = [(beat("b", 500, "N", None), 1), (beat("b", 1100, "N", Some(600)), 1)];
        fn refs(facts: &[(Fact, isize)]) -> Vec<(&Fact, isize)> {
            facts.iter().map(|(f, n)| (f, *n)).collect()
        }
        let (ta, tb) = (Tally::of(&refs(&a)), Tally::of(&refs(&b)));
        assert_eq!(
            ta.evidence(60_000),
            "beats=2 N=1 V=1 hr=75.0 alarms=1 window_s=60 latest_ms=1800"
        );
        let ward = Tally::sum(&[(&ta, 1), (&tb, 1)]);
        let all: Vec<(Fact, isize)> = a.iter().chain(&b).cloned().collect();
        assert_eq!(ward, Tally::of(&refs(&all)));
        assert_eq!(
            ward.evidence(60_000),
            "beats=4 N=3 V=1 hr=85.7 alarms=1 window_s=60 latest_ms=1800"
        );
    }
}
