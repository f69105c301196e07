//! Bedside alarm rules over one stream's classified beats: a run of ventricular beats,
//! bradycardia, tachycardia, a pause, and a signal too poor to classify. Each rule is a
//! condition with a start and an end in stream time, reported as [`Event`]s.
//!
//! [`AlarmRules`] follows a stream beat by beat. The same rules also run over a sliding
//! window of the stream's recent beats (the engine keeps that window in differential
//! dataflow): [`AlarmAnnouncer`] then turns what each new window shows into each alarm's
//! start and end, once, however many windows show it.

use std::collections::{BTreeMap, VecDeque};

use crate::types::{Beat, Event, EventPhase};

/// Thresholds of the rules. The defaults are the usual bedside-monitor limits.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmConfig {
    /// Consecutive ventricular beats that make a run (3: the shortest ventricular
    /// tachycardia by the usual definition).
    pub run_length: usize,
    /// Predicted classes that count as ventricular (AAMI `V`).
    pub ventricular: Vec<String>,
    /// Heart rate below this (bpm) is bradycardia.
    pub bradycardia_bpm: f64,
    /// Heart rate above this (bpm) is tachycardia.
    pub tachycardia_bpm: f64,
    /// The heart rate is the mean over this many recent RR intervals.
    pub rate_beats: usize,
    /// A rate alarm ends only once the rate is this many bpm back inside its limit, so
    /// that a rate hovering at the limit does not chatter.
    pub hysteresis_bpm: f64,
    /// No beat for longer than this (seconds) is a pause.
    pub pause_s: f64,
    /// A beat whose most probable class has less probability than this is uncertain.
    pub min_probability: f32,
    /// Poor signal: at least this share of the recent beats are uncertain.
    pub uncertain_share: f32,
    /// Beats over which the uncertain share is measured.
    pub quality_beats: usize,
}

impl AlarmConfig {
    /// The beats before a beat that its rules look at: a window of beats must hold as many
    /// before the first beat it is to judge as the beat-by-beat rules would have seen.
    pub fn history_beats(&self) -> usize {
        (self.rate_beats + 1).max(self.quality_beats).max(self.run_length)
    }
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            run_length: 3,
            ventricular: vec!["V".to_owned()],
            bradycardia_bpm: 40.0,
            tachycardia_bpm: 150.0,
            rate_beats: 8,
            hysteresis_bpm: 5.0,
            pause_s: 3.0,
            min_probability: 0.5,
            uncertain_share: 0.5,
            quality_beats: 10,
        }
    }
}

/// The rules' names, as [`Event::kind`].
pub const VENTRICULAR_RUN: &str = "ventricular_run";
pub const BRADYCARDIA: &str = "bradycardia";
pub const TACHYCARDIA: &str = "tachycardia";
pub const PAUSE: &str = "pause";
pub const POOR_SIGNAL: &str = "poor_signal";

/// What the rules need of a beat.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmBeat {
    /// Sample of the R peak, in stream time.
    pub sample: u64,
    pub fs: f64,
    /// The predicted class and its probability; `None` for a beat not classified.
    pub prediction: Option<(String, f32)>,
}

impl AlarmBeat {
    pub fn of(beat: &Beat) -> Self {
        AlarmBeat {
            sample: beat.sample,
            fs: beat.fs,
            prediction: beat.prediction.as_ref().map(|p| {
                let top = p.probabilities.iter().copied().fold(0.0f32, f32::max);
                (p.class.clone(), top)
            }),
        }
    }
}

/// The alarm state of one stream, fed its beats in order.
#[derive(Clone, Debug)]
pub struct AlarmRules {
    config: AlarmConfig,
    patient: Option<String>,
    ward: Option<String>,
    last_beat: Option<(u64, f64)>,
    /// Consecutive ventricular beats so far, and the sample of the first.
    ventricular_run: (usize, u64),
    rr: VecDeque<f64>,
    uncertain: VecDeque<bool>,
    /// Active conditions: rule and the sample where it started.
    active: Vec<(&'static str, u64)>,
}

impl AlarmRules {
    pub fn new(config: AlarmConfig, patient: Option<String>, ward: Option<String>) -> Self {
        AlarmRules {
            config,
            patient,
            ward,
            last_beat: None,
            ventricular_run: (0, 0),
            rr: VecDeque::new(),
            uncertain: VecDeque::new(),
            active: Vec::new(),
        }
    }

    /// Takes the next classified beat of the stream; returns the alarms it starts or ends.
    /// Beats without a prediction count for the rate and pause rules only.
    pub fn beat(&mut self, beat: &Beat) -> Vec<Event> {
        self.observe(&beat.stream, &AlarmBeat::of(beat))
    }

    /// [`AlarmRules::beat`] for the beat of `stream` that `beat` summarises.
    pub fn observe(&mut self, stream: &str, beat: &AlarmBeat) -> Vec<Event> {
        let mut events = Vec::new();
        let at = beat.sample;
        // Pause: the gap since the previous beat.
        if let Some((last, _)) = self.last_beat {
            let rr = at.saturating_sub(last) as f64 / beat.fs;
            if rr > self.config.pause_s {
                let evidence = format!("no beat for {rr:.1} s");
                events.push(self.event(stream, beat.fs, PAUSE, EventPhase::Instant, last, evidence));
            }
            if self.rr.len() == self.config.rate_beats.max(1) {
                self.rr.pop_front();
            }
            self.rr.push_back(rr);
        }
        self.last_beat = Some((at, beat.fs));

        // Rate: the mean RR over the recent beats, once there are enough of them.
        if self.rr.len() >= self.config.rate_beats.max(1) {
            let bpm = 60.0 / (self.rr.iter().sum::<f64>() / self.rr.len() as f64);
            let (low, high, h) = (
                self.config.bradycardia_bpm,
                self.config.tachycardia_bpm,
                self.config.hysteresis_bpm,
            );
            let n = self.rr.len();
            let evidence = || format!("heart rate {bpm:.0} bpm over {n} beats");
            self.condition(
                &mut events,
                stream,
                beat,
                BRADYCARDIA,
                bpm < low,
                bpm >= low + h,
                evidence,
            );
            self.condition(
                &mut events,
                stream,
                beat,
                TACHYCARDIA,
                bpm > high,
                bpm <= high - h,
                evidence,
            );
        }

        if let Some((class, top)) = &beat.prediction {
            // Ventricular run: starts at the run_length-th consecutive V beat, ends at the
            // first beat of another class.
            let ventricular = self.config.ventricular.contains(class);
            if ventricular {
                if self.ventricular_run.0 == 0 {
                    self.ventricular_run.1 = at;
                }
                self.ventricular_run.0 += 1;
            } else {
                self.ventricular_run.0 = 0;
            }
            let (run, from) = self.ventricular_run;
            let evidence = || format!("{run} consecutive {class} beats from {:.2} s", from as f64 / beat.fs);
            let start = run >= self.config.run_length.max(1);
            self.condition(
                &mut events,
                stream,
                beat,
                VENTRICULAR_RUN,
                start,
                !ventricular,
                evidence,
            );

            // Poor signal: too many beats the model is unsure of.
            if self.uncertain.len() == self.config.quality_beats.max(1) {
                self.uncertain.pop_front();
            }
            self.uncertain.push_back(*top < self.config.min_probability);
            if self.uncertain.len() == self.config.quality_beats.max(1) {
                let (n, min) = (self.uncertain.len(), self.config.min_probability);
                let share = self.uncertain.iter().filter(|u| **u).count() as f32 / n as f32;
                let evidence = || {
                    format!(
                        "{:.0} % of the last {n} beats classified with probability under {min}",
                        share * 100.0
                    )
                };
                let poor = share >= self.config.uncertain_share;
                self.condition(&mut events, stream, beat, POOR_SIGNAL, poor, !poor, evidence);
            }
        }
        events
    }

    /// The stream ended at `sample`: every active alarm ends there.
    pub fn finish(&mut self, stream: &str, sample: u64, fs: f64) -> Vec<Event> {
        std::mem::take(&mut self.active)
            .into_iter()
            .map(|(rule, from)| Event {
                stream: stream.to_owned(),
                kind: rule.to_owned(),
                phase: EventPhase::End,
                sample,
                fs,
                patient: self.patient.clone(),
                ward: self.ward.clone(),
                evidence: format!("stream ended; active since {:.2} s", from as f64 / fs),
            })
            .collect()
    }

    /// Names the patient and ward carried on the events from now on.
    pub fn identify(&mut self, patient: Option<String>, ward: Option<String>) {
        self.patient = patient;
        self.ward = ward;
    }

    /// The rules active now, with the sample each started at.
    pub fn active(&self) -> &[(&'static str, u64)] {
        &self.active
    }

    /// The sample of the last beat seen and the sampling rate.
    pub fn last_beat(&self) -> Option<(u64, f64)> {
        self.last_beat
    }

    /// Starts `rule` when `start` holds and it is not active; ends it when `end` holds.
    /// The evidence is written only for an event (the rules may run over a whole window
    /// for every new beat).
    #[allow(clippy::too_many_arguments)]
    fn condition(
        &mut self,
        events: &mut Vec<Event>,
        stream: &str,
        beat: &AlarmBeat,
        rule: &'static str,
        start: bool,
        end: bool,
        evidence: impl Fn() -> String,
    ) {
        let position = self.active.iter().position(|(r, _)| *r == rule);
        let phase = match position {
            None if start => {
                self.active.push((rule, beat.sample));
                EventPhase::Start
            }
            Some(i) if end => {
                self.active.remove(i);
                EventPhase::End
            }
            _ => return,
        };
        events.push(self.event(stream, beat.fs, rule, phase, beat.sample, evidence()));
    }

    fn event(&self, stream: &str, fs: f64, rule: &str, phase: EventPhase, sample: u64, evidence: String) -> Event {
        Event {
            stream: stream.to_owned(),
            kind: rule.to_owned(),
            phase,
            sample,
            fs,
            patient: self.patient.clone(),
            ward: self.ward.clone(),
            evidence,
        }
    }
}

/// What an [`AlarmAnnouncer`] has announced of one rule.
#[derive(Clone, Debug, Default)]
struct Announced {
    /// The sample the rule's alarm started at, while it is active.
    active_since: Option<u64>,
    /// The sample of the last end announced.
    last_end: Option<u64>,
    /// The sample of the last instant event announced.
    last_instant: Option<u64>,
}

/// Turns the alarms that successive windows of one stream show into each alarm's start and
/// end, announced once.
///
/// Each window is a stream's recent beats; running [`AlarmRules`] over it gives the
/// alarms of that stretch, in order. Consecutive windows overlap, so an alarm shows in many
/// of them, and one cut by a window's first beat shows with a later start: an alarm is new
/// only when it starts after the rule's last end. An active alarm that a window no longer
/// shows active (its trigger left the window, say a rate alarm still within its hysteresis
/// band) ends at that window's last beat.
#[derive(Clone, Debug)]
pub struct AlarmAnnouncer {
    stream: String,
    patient: Option<String>,
    ward: Option<String>,
    rules: BTreeMap<String, Announced>,
}

impl AlarmAnnouncer {
    /// For the stream `stream`, of `patient` in `ward`.
    pub fn new(stream: String, patient: Option<String>, ward: Option<String>) -> Self {
        AlarmAnnouncer {
            stream,
            patient,
            ward,
            rules: BTreeMap::new(),
        }
    }

    /// Takes the events that the rules gave over the stream's current window, in stream
    /// order (with the ends of [`AlarmRules::finish`] when the stream has ended), and the
    /// window's last beat (sample, fs); returns the starts and ends not announced before.
    pub fn window(&mut self, events: &[Event], last_beat: Option<(u64, f64)>) -> Vec<Event> {
        let mut announce = Vec::new();
        // Each rule's alarms in this window: (start, end); an instant is its own start and end.
        let mut shown: BTreeMap<&str, Vec<(&Event, Option<&Event>)>> = BTreeMap::new();
        for e in events {
            let alarms = shown.entry(e.kind.as_str()).or_default();
            match e.phase {
                EventPhase::Start | EventPhase::Instant => alarms.push((e, None)),
                EventPhase::End => match alarms.last_mut() {
                    Some((start, end @ None)) if start.phase == EventPhase::Start => *end = Some(e),
                    _ => {} // an end whose start the window no longer holds: nothing new
                },
            }
        }
        for (rule, alarms) in &shown {
            let state = self.rules.entry((*rule).to_owned()).or_default();
            let after_last_end = |sample: u64, state: &Announced| state.last_end.is_none_or(|end| sample > end);
            for (start, end) in alarms {
                if start.phase == EventPhase::Instant {
                    if state.last_instant.is_none_or(|last| start.sample > last) {
                        state.last_instant = Some(start.sample);
                        announce.push((*start).clone());
                    }
                    continue;
                }
                match (end, state.active_since) {
                    // Announced already.
                    (Some(end), _) if !after_last_end(end.sample, state) => {}
                    // The active alarm has ended.
                    (Some(end), Some(since)) if end.sample >= since => {
                        state.active_since = None;
                        state.last_end = Some(end.sample);
                        announce.push((*end).clone());
                    }
                    // Started and ended since the last window.
                    (Some(end), None) if after_last_end(start.sample, state) => {
                        state.last_end = Some(end.sample);
                        announce.push((*start).clone());
                        announce.push((*end).clone());
                    }
                    (None, None) if after_last_end(start.sample, state) => {
                        state.active_since = Some(start.sample);
                        announce.push((*start).clone());
                    }
                    _ => {}
                }
            }
        }
        // Active alarms this window no longer shows active.
        for (rule, state) in &mut self.rules {
            let Some(since) = state.active_since else { continue };
            let still = shown
                .get(rule.as_str())
                .and_then(|alarms| alarms.last())
                .is_some_and(|(start, end)| start.phase == EventPhase::Start && end.is_none());
            let Some((sample, fs)) = last_beat.filter(|_| !still) else {
                continue;
            };
            state.active_since = None;
            state.last_end = Some(sample);
            announce.push(Event {
                stream: self.stream.clone(),
                kind: rule.clone(),
                phase: EventPhase::End,
                sample,
                fs,
                patient: self.patient.clone(),
                ward: self.ward.clone(),
                evidence: format!(
                    "no longer shown by the window (active since {:.2} s)",
                    since as f64 / fs
                ),
            });
        }
        announce.sort_by_key(|e| e.sample);
        announce
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Prediction;

    fn beat(sample: u64, class: &str, p: f32) -> Beat {
        Beat {
            stream: "s".into(),
            fs: 100.0,
            sample,
            leads: vec!["a".into()],
            before: 0,
            after: 0,
            window: vec![0.0],
            template: None,
            rr_prev: None,
            rr_next: None,
            rr_local: None,
            rr_mean: None,
            rr_irregularity: None,
            symbol: None,
            prediction: Some(Prediction {
                model: "m".into(),
                version: "1".into(),
                class: class.into(),
                probabilities: vec![p, (1.0 - p) / 2.0, (1.0 - p) / 2.0],
                labels: Vec::new(),
                decided_by: Default::default(),
            }),
            arrival: None,
        }
    }

    fn kinds(events: &[Event]) -> Vec<(String, EventPhase, u64)> {
        events.iter().map(|e| (e.kind.clone(), e.phase, e.sample)).collect()
    }

    #[test]
    fn a_run_starts_at_its_third_ventricular_beat_and_ends_at_the_next_normal_one() {
        let mut rules = AlarmRules::new(AlarmConfig::default(), None, None);
        let classes = ["N", "V", "V", "N", "V", "V", "V", "V", "N", "N"];
        let mut events = Vec::new();
        for (i, c) in classes.iter().enumerate() {
            events.extend(rules.beat(&beat(i as u64 * 80, c, 0.9)));
        }
        assert_eq!(
            kinds(&events),
            [
                (VENTRICULAR_RUN.to_owned(), EventPhase::Start, 480),
                (VENTRICULAR_RUN.to_owned(), EventPhase::End, 640),
            ],
            "two V beats are no run; the run of four starts at its third beat (6 × 80)"
        );
        assert!(events[0].evidence.contains("from 3.20 s"), "{}", events[0].evidence);
    }

    #[test]
    fn rates_and_pauses() {
        let mut rules = AlarmRules::new(AlarmConfig::default(), Some("p".into()), Some("w".into()));
        let mut events = Vec::new();
        let mut t = 0;
        // 60 bpm, a 4 s pause, then 30 bpm (2 s apart at 100 Hz), then 200 bpm (30 samples).
        for rr in [100; 10].into_iter().chain([400]).chain([200; 10]).chain([30; 20]) {
            t += rr;
            events.extend(rules.beat(&beat(t, "N", 0.9)));
        }
        let got: Vec<(String, EventPhase)> = events.iter().map(|e| (e.kind.clone(), e.phase)).collect();
        let want = [
            (PAUSE, EventPhase::Instant),
            (BRADYCARDIA, EventPhase::Start),
            (BRADYCARDIA, EventPhase::End),
            (TACHYCARDIA, EventPhase::Start),
        ];
        assert_eq!(got, want.map(|(k, p)| (k.to_owned(), p)));
        assert_eq!(events[0].patient.as_deref(), Some("p"));
        assert_eq!(events[0].sample, 1000, "a pause is reported from its last beat");
        let ended = rules.finish("s", t + 10, 100.0);
        assert_eq!(kinds(&ended), [(TACHYCARDIA.to_owned(), EventPhase::End, t + 10)]);
        assert!(rules.active().is_empty());
    }

    #[test]
    fn uncertain_beats_mean_poor_signal() {
        let mut rules = AlarmRules::new(AlarmConfig::default(), None, None);
        let mut events = Vec::new();
        for i in 0..30u64 {
            let p = if (10..20).contains(&i) { 0.3 } else { 0.95 };
            events.extend(rules.beat(&beat(i * 80, "N", p)));
        }
        let got: Vec<(String, EventPhase)> = events.iter().map(|e| (e.kind.clone(), e.phase)).collect();
        assert_eq!(
            got,
            [
                (POOR_SIGNAL.to_owned(), EventPhase::Start),
                (POOR_SIGNAL.to_owned(), EventPhase::End)
            ]
        );
    }

    /// Runs the rules over sliding windows of `window` samples, re-evaluated after every
    /// `stride` beats (the batch), and announces what each window shows. As in the engine, a
    /// window holds its whole batch and the rules' history before it.
    fn windowed(beats: &[Beat], window: u64, stride: usize) -> Vec<Event> {
        let mut announcer = AlarmAnnouncer::new("s".into(), None, None);
        let mut out = Vec::new();
        let mut evaluate = |upto: usize, ended: bool| {
            let last = beats[upto - 1].sample;
            let batch = upto.saturating_sub(stride + AlarmConfig::default().history_beats());
            let mut rules = AlarmRules::new(AlarmConfig::default(), None, None);
            let mut events = Vec::new();
            for (_, b) in beats[..upto]
                .iter()
                .enumerate()
                .filter(|(i, b)| b.sample + window > last || *i >= batch)
            {
                events.extend(rules.beat(b));
            }
            if ended {
                events.extend(rules.finish("s", last, 100.0));
            }
            out.extend(announcer.window(&events, Some((last, 100.0))));
        };
        for upto in (stride..=beats.len()).step_by(stride) {
            evaluate(upto, false);
        }
        evaluate(beats.len(), true);
        out
    }

    fn sequential(beats: &[Beat]) -> Vec<Event> {
        let mut rules = AlarmRules::new(AlarmConfig::default(), None, None);
        let mut events: Vec<Event> = beats.iter().flat_map(|b| rules.beat(b)).collect();
        events.extend(rules.finish("s", beats.last().expect("beats").sample, 100.0));
        events
    }

    /// Runs of V, a pause, uncertain beats, slow and fast stretches: every rule fires.
    fn eventful_stream() -> Vec<Beat> {
        let mut beats = Vec::new();
        let mut t = 0;
        for i in 0..400u64 {
            let rr = match i {
                100..=115 => 200, // 30 bpm
                150 => 400,       // a 4 s pause
                200..=240 => 30,  // 200 bpm
                _ => 80,
            };
            t += rr;
            let class = if matches!(i % 37, 5..=8) || (300..=310).contains(&i) {
                "V"
            } else {
                "N"
            };
            let p = if (330..=345).contains(&i) { 0.3 } else { 0.95 };
            beats.push(beat(t, class, p));
        }
        beats
    }

    #[test]
    fn windows_announce_what_the_beat_by_beat_rules_report() {
        let beats = eventful_stream();
        let want = kinds(&sequential(&beats));
        for rule in [VENTRICULAR_RUN, BRADYCARDIA, TACHYCARDIA, PAUSE, POOR_SIGNAL] {
            assert!(want.iter().any(|(k, _, _)| k == rule), "{rule} never fires: {want:?}");
        }
        // A 60 s window (6000 samples at 100 Hz), re-evaluated after every beat or after
        // batches of beats as a fast replay delivers them, each window holding its batch.
        for stride in [1, 7, 50] {
            let got = kinds(&windowed(&beats, 6000, stride));
            assert_eq!(got, want, "stride {stride}");
        }
    }

    #[test]
    fn an_alarm_its_window_no_longer_shows_ends_at_the_last_beat() {
        // 36 bpm (bradycardia), then 42 bpm: inside the 5 bpm hysteresis band, so the rules
        // keep the alarm; once the slow beats have left a 30 s window it shows no alarm.
        let mut beats = Vec::new();
        let mut t = 0;
        for i in 0..60 {
            t += if i < 12 { 167 } else { 143 };
            beats.push(beat(t, "N", 0.95));
        }
        let seq = kinds(&sequential(&beats));
        assert_eq!(seq.len(), 2, "one bradycardia, ended by the stream's end: {seq:?}");
        let got = windowed(&beats, 3000, 1);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].phase, got[1].phase), (EventPhase::Start, EventPhase::End));
        assert!(got[1].sample < beats.last().expect("beats").sample);
        assert!(got[1].evidence.contains("no longer shown"), "{}", got[1].evidence);
    }
}
