//! Transform component types: thin wrappers that give each operator of
//! `ecgflow-operators` a per-stream state in the engine.

use std::sync::Arc;

use anyhow::bail;
use ecgflow_operators::filter::{Bandpass, FilterMode};
use ecgflow_operators::quality::SignalCheck;
use ecgflow_operators::resample::Resampler;
use ecgflow_operators::rpeaks::{RPeakDetector, RPeakMethod};
use ecgflow_operators::segment::Segmenter;
use ecgflow_operators::Chunk;

use super::fields::{Default as D, FieldSpec as F};
use super::{
    no_check, same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Step, Transform, Upstream,
};
use crate::config::Role;
use crate::message::Body;

/// The `method` choices of `rpeaks`: every detector of `RPeakMethod` (a test keeps this in
/// step with `RPeakMethod::ALL`) and `reference`.
pub const RPEAK_METHODS: &[&str] = &["pan_tompkins", "hamilton_tompkins", "consensus", "reference"];

pub static SPECS: &[ComponentSpec] = &[
    ComponentSpec {
        type_name: "bandpass",
        role: Role::Transform,
        summary: "Butterworth band-pass filter applied to every lead. `causal` filters as samples arrive \
                  (live use); `zero_phase` filters forward and backward like scipy's sosfiltfilt, holding \
                  each stream until it ends (batch use).",
        accepts: &[PortKind::Signal],
        output: Output::Kind(PortKind::Signal),
        fields: &[
            F::positive(
                "low_hz",
                0.0,
                f64::INFINITY,
                D::Float(0.5),
                "lower cut-off frequency in Hz",
            ),
            F::positive(
                "high_hz",
                0.0,
                f64::INFINITY,
                D::Float(40.0),
                "upper cut-off frequency in Hz, below Nyquist",
            ),
            F::int(
                "order",
                1,
                10,
                D::Int(2),
                "Butterworth order of each edge (the band-pass has twice as many poles)",
            ),
            F::choice(
                "mode",
                &["causal", "zero_phase"],
                "causal",
                "causal (streaming) or zero_phase (forward-backward, batch)",
            ),
        ],
        check: check_bandpass,
        output_fs: same_fs,
        build: |p| {
            let mode = if p.str("mode") == "zero_phase" {
                FilterMode::ZeroPhase
            } else {
                FilterMode::Causal
            };
            let (low, high, order) = (p.f64("low_hz"), p.f64("high_hz"), p.usize("order"));
            chunk_transform(move |c| Ok(Bandpass::new(low, high, order, mode, c.fs, c.samples.len())?))
        },
    },
    ComponentSpec {
        type_name: "rpeaks",
        role: Role::Transform,
        summary: "Streaming R-peak detection on one lead. Passes the signal through and attaches the peaks \
                  it confirms to the chunks (reported with the detector's bounded delay).",
        accepts: &[PortKind::Signal],
        output: Output::Kind(PortKind::Signal),
        fields: &[
            F::choice(
                "method",
                RPEAK_METHODS,
                "pan_tompkins",
                "detection method; `reference` takes the stream's reference beat annotations as the peaks",
            ),
            F::int("lead", 0, 63, D::Int(0), "index of the lead to detect on"),
        ],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            let lead = p.usize("lead");
            // `reference` is the one name that is not a detector.
            let method = RPeakMethod::from_name(p.str("method"));
            chunk_transform(move |c| -> anyhow::Result<Box<dyn ChunkOperator>> {
                if lead >= c.samples.len() {
                    bail!(
                        "stream {} has {} lead(s); lead index {lead} does not exist",
                        c.stream,
                        c.samples.len()
                    );
                }
                Ok(match method {
                    Some(m) => Box::new(RPeakDetector::new(m, c.fs, lead)?),
                    None => Box::new(ReferencePeaks),
                })
            })
        },
    },
    ComponentSpec {
        type_name: "segment",
        role: Role::Transform,
        summary: "Cuts a fixed window around each detected R peak (all leads), with the RR intervals before \
                  and after, the local mean RR (last 10 intervals), the long mean RR (last 300) and, on \
                  request, the beat's template. Beats without a full window, or whose window holds NaN \
                  samples (leads off, dropped samples), are counted and dropped.",
        accepts: &[PortKind::Signal],
        output: Output::Kind(PortKind::Beats),
        fields: &[
            F::int("before", 0, 1_000_000, D::Int(90), "samples before the R peak"),
            F::int("after", 0, 1_000_000, D::Int(168), "samples after the R peak"),
            F::boolean(
                "wait_for_next",
                true,
                "hold each beat until the next R peak is known, for its `rr_next`; false for live monitoring, \
                 where a beat leaves as soon as its window is complete (`rr_next` empty)",
            ),
            F::boolean(
                "template",
                false,
                "give each beat its stream's template: the sample-by-sample median of the last 32 beats that \
                 were not early (RR ≥ 0.9 × the long mean), for models that compare a beat with the patient's \
                 usual one (a running median: about 9 µs per beat)",
            ),
        ],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            let (before, after) = (p.usize("before"), p.usize("after"));
            Ok(Built::Transform(Arc::new(SegmentTransform {
                before,
                after,
                wait_for_next: p.bool("wait_for_next"),
                template: p.bool("template"),
            })))
        },
    },
    ComponentSpec {
        type_name: "resample",
        role: Role::Transform,
        summary: "Resamples every lead to another rate (polyphase Kaiser windowed-sinc on the rational ratio of \
                  the two rates, e.g. 500 → 360 Hz is 18/25), streaming; annotation and R-peak positions are \
                  mapped to the new rate.",
        accepts: &[PortKind::Signal],
        output: Output::Kind(PortKind::Signal),
        fields: &[F::positive(
            "to_hz",
            0.0,
            100_000.0,
            D::Required,
            "the new sampling rate in Hz",
        )],
        check: no_check,
        output_fs: |p, _| Some(p.f64("to_hz")),
        build: |p| {
            let to_hz = p.f64("to_hz");
            chunk_transform(move |c| Ok(Resampler::new(c.fs, to_hz, c.samples.len())?))
        },
    },
    ComponentSpec {
        type_name: "signal_check",
        role: Role::Transform,
        summary: "Watches a live stream's first lead and passes its chunks on unchanged, adding events: \
                  `signal_gap` (start, end) over runs of missing samples (NaN: leads off, dropped or failed \
                  reads) and `flat_line` (start, end) when the lead stays within `flat_mv` peak to peak for \
                  `flat_s` seconds (a loose electrode, a saturated amplifier). The events travel with the \
                  stream to the sinks (and through an `alarms` step).",
        accepts: &[PortKind::Signal],
        output: Output::SameAsInput,
        fields: &[
            F::positive("flat_s", 0.0, 3600.0, D::Float(2.0), "seconds a flat stretch must last"),
            F::positive(
                "flat_mv",
                0.0,
                100.0,
                D::Float(0.02),
                "largest peak-to-peak amplitude of a flat stretch, in mV",
            ),
        ],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            let (flat_s, flat_mv) = (p.f64("flat_s"), p.f64("flat_mv") as f32);
            struct Check(f64, f32);
            impl Transform for Check {
                fn open(&self, first: &Body) -> anyhow::Result<Box<dyn Step>> {
                    let Body::Chunk(c) = first else {
                        bail!("expected signal chunks, got {}", kind_of(first));
                    };
                    Ok(Box::new(CheckStep {
                        check: SignalCheck::new(self.0, self.1, c.fs),
                        last: None,
                    }))
                }
            }
            Ok(Built::Transform(Arc::new(Check(flat_s, flat_mv))))
        },
    },
    ComponentSpec {
        type_name: "passthrough",
        role: Role::Transform,
        summary: "Forwards its input unchanged (for measuring the engine's own cost and for fan-in).",
        accepts: PortKind::ALL,
        output: Output::SameAsInput,
        fields: &[],
        check: no_check,
        output_fs: same_fs,
        build: |_| Ok(Built::Transform(Arc::new(PassThrough))),
    },
];

fn check_bandpass(p: &Params, up: &Upstream) -> Vec<FieldProblem> {
    let (low, high) = (p.f64("low_hz"), p.f64("high_hz"));
    let mut problems = Vec::new();
    if low >= high {
        problems.push((
            "low_hz".to_owned(),
            format!("{low} Hz must be below high_hz ({high} Hz)"),
        ));
    }
    if let Some(fs) = up.fs {
        if high >= fs / 2.0 {
            problems.push((
                "high_hz".to_owned(),
                format!(
                    "{high} Hz is not below the Nyquist frequency ({} Hz at fs = {fs} Hz)",
                    fs / 2.0
                ),
            ));
        }
    }
    problems
}

/// An operator that turns chunks into chunks, one instance per stream.
trait ChunkOperator {
    fn process(&mut self, chunk: Chunk) -> Vec<Chunk>;
    fn finish(&mut self) -> Vec<Chunk>;
}

impl ChunkOperator for Bandpass {
    fn process(&mut self, chunk: Chunk) -> Vec<Chunk> {
        Bandpass::process(self, chunk)
    }
    fn finish(&mut self) -> Vec<Chunk> {
        Bandpass::finish(self)
    }
}

impl ChunkOperator for Resampler {
    fn process(&mut self, chunk: Chunk) -> Vec<Chunk> {
        Resampler::process(self, chunk)
    }
    fn finish(&mut self) -> Vec<Chunk> {
        Resampler::finish(self)
    }
}

impl ChunkOperator for RPeakDetector {
    fn process(&mut self, chunk: Chunk) -> Vec<Chunk> {
        RPeakDetector::process(self, chunk)
    }
    fn finish(&mut self) -> Vec<Chunk> {
        RPeakDetector::finish(self)
    }
}

/// Builds a transform from a constructor called with each stream's first chunk.
fn chunk_transform<Op, F>(make: F) -> anyhow::Result<Built>
where
    Op: ChunkOperator + 'static,
    F: Fn(&Chunk) -> anyhow::Result<Op> + Send + Sync + 'static,
{
    struct Factory<F>(F);
    impl<Op, F> Transform for Factory<F>
    where
        Op: ChunkOperator + 'static,
        F: Fn(&Chunk) -> anyhow::Result<Op> + Send + Sync,
    {
        fn open(&self, first: &Body) -> anyhow::Result<Box<dyn Step>> {
            match first {
                Body::Chunk(c) => Ok(Box::new(ChunkStep((self.0)(c)?))),
                other => bail!("expected signal chunks, got {}", kind_of(other)),
            }
        }
    }
    Ok(Built::Transform(Arc::new(Factory(make))))
}

struct ChunkStep<Op>(Op);

impl<Op: ChunkOperator> Step for ChunkStep<Op> {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        match body {
            Body::Chunk(c) => out.extend(self.0.process(c).into_iter().map(Body::Chunk)),
            other => bail!("expected signal chunks, got {}", kind_of(&other)),
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        out.extend(self.0.finish().into_iter().map(Body::Chunk));
        Ok(())
    }
}

/// A `signal_check` step: the stream's chunks, with its gap and flat-line events.
struct CheckStep {
    check: SignalCheck,
    /// The last chunk's identity (without samples) and end, to close conditions at the end.
    last: Option<(Chunk, u64)>,
}

impl Step for CheckStep {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        let Body::Chunk(chunk) = body else {
            bail!("expected signal chunks, got {}", kind_of(&body));
        };
        out.extend(self.check.process(&chunk).into_iter().map(Body::Event));
        if self.last.is_none() {
            self.last = Some((Chunk::new(chunk.stream.clone(), chunk.fs, 0, Vec::new(), Vec::new()), 0));
        }
        if let Some((_, end)) = self.last.as_mut() {
            *end = chunk.end();
        }
        out.push(Body::Chunk(chunk));
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        if let Some((identity, end)) = self.last.take() {
            out.extend(self.check.finish(&identity, end).into_iter().map(Body::Event));
        }
        Ok(())
    }
}

pub(super) fn kind_of(body: &Body) -> &'static str {
    match body {
        Body::Chunk(_) => "a signal chunk",
        Body::Beat(_) => "a beat",
        Body::Tensor(_) => "a tensor",
        Body::Explanation(_) => "an explanation",
        Body::Event(_) => "an event",
        Body::Start { .. } | Body::End { .. } | Body::Abort { .. } => "a stream event",
    }
}

/// The `reference` method: the stream's own reference beat annotations become its R peaks
/// (for datasets whose beats are annotated, e.g. MIT-BIH `.atr`), with no delay.
struct ReferencePeaks;

impl ChunkOperator for ReferencePeaks {
    fn process(&mut self, mut chunk: Chunk) -> Vec<Chunk> {
        chunk.rpeaks = chunk.annotations.iter().map(|a| a.sample).collect();
        vec![chunk]
    }
    fn finish(&mut self) -> Vec<Chunk> {
        Vec::new()
    }
}

impl<T: ChunkOperator + ?Sized> ChunkOperator for Box<T> {
    fn process(&mut self, chunk: Chunk) -> Vec<Chunk> {
        (**self).process(chunk)
    }
    fn finish(&mut self) -> Vec<Chunk> {
        (**self).finish()
    }
}

struct SegmentTransform {
    before: usize,
    after: usize,
    wait_for_next: bool,
    template: bool,
}

impl Transform for SegmentTransform {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        let mut segmenter = Segmenter::new(self.before, self.after);
        if !self.wait_for_next {
            segmenter = segmenter.without_waiting_for_next();
        }
        if self.template {
            segmenter = segmenter.with_template();
        }
        Ok(Box::new(segmenter))
    }
}

impl Step for Segmenter {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        match body {
            Body::Chunk(c) => out.extend(Segmenter::process(self, &c).into_iter().map(Body::Beat)),
            other => bail!("expected signal chunks, got {}", kind_of(&other)),
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        out.extend(Segmenter::finish(self).into_iter().map(Body::Beat));
        Ok(())
    }
}

struct PassThrough;

impl Transform for PassThrough {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        Ok(Box::new(PassThrough))
    }
}

impl Step for PassThrough {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        out.push(body);
        Ok(())
    }
    fn finish(&mut self, _out: &mut Vec<Body>) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpeaks_method_choices_match_the_detectors() {
        let mut names: Vec<&str> = RPeakMethod::ALL.iter().map(|m| m.name()).collect();
        names.push("reference");
        assert_eq!(names, RPEAK_METHODS);
    }
}
