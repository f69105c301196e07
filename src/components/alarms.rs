//! The `alarms` transform: bedside alarm rules over each stream's classified beats (see
//! `ecgflow_operators::alarms`), emitted as events with a start and an end.

use std::sync::Arc;

use anyhow::bail;
use ecgflow_operators::alarms::{AlarmConfig, AlarmRules};

use super::fields::{Default as D, FieldSpec as F};
use super::transforms::kind_of;
use super::{same_fs, Built, ComponentSpec, Output, Params, PortKind, Step, Transform};
use crate::config::Role;
use crate::message::{meta_value, Body};

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
              dropped samples) on; alarms still active when a stream ends end there.",
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
    ],
    check: |p, _| {
        if p.f64("bradycardia_bpm") >= p.f64("tachycardia_bpm") {
            return vec![("bradycardia_bpm".to_owned(), "must be below tachycardia_bpm".to_owned())];
        }
        Vec::new()
    },
    output_fs: same_fs,
    build: |p| Ok(Built::Transform(Arc::new(AlarmsTransform(config(p))))),
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

struct AlarmsTransform(AlarmConfig);

impl Transform for AlarmsTransform {
    fn open(&self, first: &Body) -> anyhow::Result<Box<dyn Step>> {
        Ok(Box::new(AlarmsStep {
            rules: AlarmRules::new(self.0.clone(), None, None),
            stream: first.stream().to_owned(),
        }))
    }
    fn takes_events(&self) -> bool {
        true
    }
}

struct AlarmsStep {
    rules: AlarmRules,
    stream: String,
}

impl Step for AlarmsStep {
    fn start(&mut self, meta: &[(String, String)]) {
        let value = |key| meta_value(meta, key).map(str::to_owned);
        self.rules.identify(value("patient"), value("ward"));
    }

    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        match body {
            Body::Beat(beat) => out.extend(self.rules.beat(&beat).into_iter().map(Body::Event)),
            Body::Event(_) => out.push(body),
            other => bail!("expected classified beats, got {}", kind_of(&other)),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        if let Some((sample, fs)) = self.rules.last_beat() {
            out.extend(self.rules.finish(&self.stream, sample, fs).into_iter().map(Body::Event));
        }
        Ok(())
    }
}
