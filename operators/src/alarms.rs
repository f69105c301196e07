//! Bedside alarm rules over one stream's classified beats: a run of ventricular beats,
//! bradycardia, tachycardia, a pause, and a signal too poor to classify. Each rule is a
//! condition with a start and an end in stream time, reported as [`Event`]s.

use std::collections::VecDeque;

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
        let mut events = Vec::new();
        let at = beat.sample;
        // Pause: the gap since the previous beat.
        if let Some((last, _)) = self.last_beat {
            let rr = at.saturating_sub(last) as f64 / beat.fs;
            if rr > self.config.pause_s {
                events.push(self.event(beat, PAUSE, EventPhase::Instant, last, format!("no beat for {rr:.1} s")));
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
            let evidence = format!("heart rate {bpm:.0} bpm over {} beats", self.rr.len());
            self.condition(&mut events, beat, BRADYCARDIA, bpm < low, bpm >= low + h, &evidence);
            self.condition(&mut events, beat, TACHYCARDIA, bpm > high, bpm <= high - h, &evidence);
        }

        if let Some(prediction) = &beat.prediction {
            // Ventricular run: starts at the run_length-th consecutive V beat, ends at the
            // first beat of another class.
            let ventricular = self.config.ventricular.contains(&prediction.class);
            if ventricular {
                if self.ventricular_run.0 == 0 {
                    self.ventricular_run.1 = at;
                }
                self.ventricular_run.0 += 1;
            } else {
                self.ventricular_run.0 = 0;
            }
            let (run, from) = self.ventricular_run;
            let evidence = format!(
                "{run} consecutive {} beats from {:.2} s",
                prediction.class,
                from as f64 / beat.fs
            );
            let start = run >= self.config.run_length.max(1);
            self.condition(&mut events, beat, VENTRICULAR_RUN, start, !ventricular, &evidence);

            // Poor signal: too many beats the model is unsure of.
            let top = prediction.probabilities.iter().copied().fold(0.0f32, f32::max);
            if self.uncertain.len() == self.config.quality_beats.max(1) {
                self.uncertain.pop_front();
            }
            self.uncertain.push_back(top < self.config.min_probability);
            if self.uncertain.len() == self.config.quality_beats.max(1) {
                let share = self.uncertain.iter().filter(|u| **u).count() as f32 / self.uncertain.len() as f32;
                let evidence = format!(
                    "{:.0} % of the last {} beats classified with probability under {}",
                    share * 100.0,
                    self.uncertain.len(),
                    self.config.min_probability
                );
                let poor = share >= self.config.uncertain_share;
                self.condition(&mut events, beat, POOR_SIGNAL, poor, !poor, &evidence);
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
    fn condition(
        &mut self,
        events: &mut Vec<Event>,
        beat: &Beat,
        rule: &'static str,
        start: bool,
        end: bool,
        evidence: &str,
    ) {
        let position = self.active.iter().position(|(r, _)| *r == rule);
        match position {
            None if start => {
                self.active.push((rule, beat.sample));
                events.push(self.event(beat, rule, EventPhase::Start, beat.sample, evidence.to_owned()));
            }
            Some(i) if end => {
                self.active.remove(i);
                events.push(self.event(beat, rule, EventPhase::End, beat.sample, evidence.to_owned()));
            }
            _ => {}
        }
    }

    fn event(&self, beat: &Beat, rule: &str, phase: EventPhase, sample: u64, evidence: String) -> Event {
        Event {
            stream: beat.stream.clone(),
            kind: rule.to_owned(),
            phase,
            sample,
            fs: beat.fs,
            patient: self.patient.clone(),
            ward: self.ward.clone(),
            evidence,
        }
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
            symbol: None,
            prediction: Some(Prediction {
                model: "m".into(),
                version: "1".into(),
                class: class.into(),
                probabilities: vec![p, (1.0 - p) / 2.0, (1.0 - p) / 2.0],
                labels: Vec::new(),
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
}
