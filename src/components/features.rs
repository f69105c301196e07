//! Transforms that shape beats and records for models: normalisation, augmentation, CWT
//! scalograms and 12-lead images.

use std::sync::Arc;

use anyhow::{bail, Context};
use ecgflow_datasets::mitdb::LabelMap;
use ecgflow_operators::augment::{Augmentation, Augmenter, Fill};
use ecgflow_operators::cwt::{Cwt, Wavelet};
use ecgflow_operators::normalize::{normalize_beat, Normalization};
use ecgflow_operators::render::{Layout, RenderConfig, Renderer};
use ecgflow_operators::smote::{Smote, Target};
use ecgflow_operators::{Beat, Chunk, Tensor};

use super::fields::{Default as D, FieldSpec as F};
use super::{no_check, same_fs, Built, ComponentSpec, Output, Params, PortKind, Step, Transform};
use crate::config::Role;
use crate::message::{stream_hash, Body};

pub static SPECS: &[ComponentSpec] = &[
    ComponentSpec {
        type_name: "normalize",
        role: Role::Transform,
        summary: "Normalises each beat window, each lead separately: `zscore` (mean 0, standard deviation 1) \
                  or `minmax` (into [0, 1]). Flat windows become zeros, never NaN.",
        accepts: &[PortKind::Beats],
        output: Output::Kind(PortKind::Beats),
        fields: &[F::choice("method", &["zscore", "minmax"], "zscore", "normalisation")],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            let kind = if p.str("method") == "minmax" {
                Normalization::MinMax
            } else {
                Normalization::ZScore
            };
            Ok(Built::Transform(Arc::new(BeatMap(move || {
                Ok(move |beat: &mut Beat| {
                    normalize_beat(beat, kind);
                    Ok(())
                })
            }))))
        },
    },
    ComponentSpec {
        type_name: "augment",
        role: Role::Transform,
        summary: "Random changes to beats for training, stacked in this order: amplitude scaling, baseline \
                  wander, Gaussian noise, time shift, random erasing. A step is off when its size is 0 (or \
                  the scale range is 1..1). Seeded: each stream draws from a generator seeded by `seed` and \
                  its name, so runs are reproducible whatever the number of workers.",
        accepts: &[PortKind::Beats],
        output: Output::Kind(PortKind::Beats),
        fields: &[
            F::float("scale_min", 0.0, 100.0, D::Float(1.0), "smallest amplitude factor"),
            F::float("scale_max", 0.0, 100.0, D::Float(1.0), "largest amplitude factor"),
            F::float(
                "wander_mv",
                0.0,
                100.0,
                D::Float(0.0),
                "baseline wander amplitude in mV",
            ),
            F::positive("wander_hz", 0.0, 10.0, D::Float(0.3), "baseline wander frequency in Hz"),
            F::float(
                "noise_mv",
                0.0,
                100.0,
                D::Float(0.0),
                "Gaussian noise standard deviation in mV",
            ),
            F::int(
                "max_shift",
                0,
                100_000,
                D::Int(0),
                "largest time shift in samples (edges repeat)",
            ),
            F::int(
                "erase",
                0,
                100_000,
                D::Int(0),
                "length in samples of a span set to zero at random",
            ),
            F::int("seed", 0, i64::MAX, D::Int(1), "random seed"),
        ],
        check: |p, _| {
            if p.f64("scale_min") > p.f64("scale_max") {
                vec![(
                    "scale_min".to_owned(),
                    format!("{} is above scale_max ({})", p.f64("scale_min"), p.f64("scale_max")),
                )]
            } else {
                Vec::new()
            }
        },
        output_fs: same_fs,
        build: build_augment,
    },
    ComponentSpec {
        type_name: "smote",
        role: Role::Transform,
        summary: "SMOTE (Chawla et al. 2002) over all beats of all streams, for training pipelines only: \
                  holds every beat until the input ends, then emits them followed by synthetic beats of the \
                  minority classes (each on the segment between a beat and one of its k nearest neighbours of \
                  the same class, in window space), as stream `smote`. Classes come from the label map; beats \
                  without a class pass through untouched. A synthetic beat's symbol is its class's first \
                  symbol in the map; its RR intervals are empty.",
        accepts: &[PortKind::Beats],
        output: Output::Kind(PortKind::Beats),
        fields: &[
            F::string(
                "label_map",
                D::Str("aami"),
                "classes: aami, study6, raw, or a CSV file of symbol,class",
            ),
            F::int("k", 1, 1000, D::Int(5), "nearest neighbours"),
            F::positive(
                "ratio",
                0.0,
                1.0,
                D::Float(1.0),
                "each class is raised to ratio × the majority class's count",
            ),
            F::int("seed", 0, i64::MAX, D::Int(1), "random seed"),
        ],
        check: |p, _| match super::sinks::label_map(p.str("label_map")) {
            Ok(_) => Vec::new(),
            Err(e) => vec![("label_map".to_owned(), format!("{e:#}"))],
        },
        output_fs: same_fs,
        build: |p| {
            let smote = Smote {
                k: p.usize("k"),
                target: Target::Ratio(p.f64("ratio")),
                seed: p.i64("seed") as u64,
            };
            Ok(Built::Transform(Arc::new(SmoteTransform {
                labels: super::sinks::label_map(p.str("label_map"))?,
                smote,
            })))
        },
    },
    ComponentSpec {
        type_name: "cwt",
        role: Role::Transform,
        summary: "Continuous wavelet transform of each beat (as PyWavelets' `cwt`, FFT plans made once): a \
                  scalogram tensor of shape [leads, scales, window]. The study's map is the Mexican hat at \
                  scales 1-38 over 259 samples.",
        accepts: &[PortKind::Beats],
        output: Output::Kind(PortKind::Tensors),
        fields: &[
            F::choice(
                "wavelet",
                &["mexican_hat", "morlet"],
                "mexican_hat",
                "mother wavelet (PyWavelets' mexh or morl)",
            ),
            F::string(
                "scales",
                D::Str("1-38"),
                "scales: a range of whole numbers \"1-38\" or a list \"1,2,4.5,8\"",
            ),
        ],
        check: |p, _| match parse_scales(p.str("scales")) {
            Ok(_) => Vec::new(),
            Err(e) => vec![("scales".to_owned(), e.to_string())],
        },
        output_fs: same_fs,
        build: |p| {
            let wavelet = if p.str("wavelet") == "morlet" {
                Wavelet::Morlet
            } else {
                Wavelet::MexicanHat
            };
            let scales = parse_scales(p.str("scales"))?;
            Ok(Built::Transform(Arc::new(CwtTransform { wavelet, scales })))
        },
    },
    ComponentSpec {
        type_name: "render",
        role: Role::Transform,
        summary: "Renders each record (stream) as a grayscale image of its leads on a grid, as the study's \
                  224 × 224 input of 12-lead PTB-XL ECGs: anti-aliased traces, optional ECG paper, values in \
                  [0, 1] (black trace on white unless inverted). Emitted as one tensor [height, width] when \
                  the stream ends.",
        accepts: &[PortKind::Signal],
        output: Output::Kind(PortKind::Tensors),
        fields: &[
            F::int("width", 8, 16_384, D::Int(224), "image width in pixels"),
            F::int("height", 8, 16_384, D::Int(224), "image height in pixels"),
            F::string(
                "layout",
                D::Str("clinical"),
                "clinical (3 × 4, 2.5 s per column) or ROWSxCOLS, e.g. 6x2, 12x1 (whole record per cell)",
            ),
            F::string(
                "leads",
                D::Str("I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6"),
                "leads in cell order (column by column), matched without regard to case",
            ),
            F::positive(
                "mv_per_cell",
                0.0,
                1000.0,
                D::Float(4.0),
                "mV spanned by a cell's height",
            ),
            F::positive("line_width", 0.0, 100.0, D::Float(1.0), "trace width in pixels"),
            F::boolean("grid", false, "draw ECG paper (1 mm / 5 mm at 25 mm/s, 10 mm/mV)"),
            F::boolean("invert", false, "white trace on black"),
            F::positive(
                "duration_s",
                0.0,
                3600.0,
                D::Float(10.0),
                "seconds of each record drawn",
            ),
        ],
        check: |p, _| match render_config(p).and_then(|c| Ok(Renderer::new(c)?)) {
            Ok(_) => Vec::new(),
            Err(e) => vec![("layout".to_owned(), format!("{e:#}"))],
        },
        output_fs: same_fs,
        build: |p| {
            let renderer = Arc::new(Renderer::new(render_config(p)?)?);
            Ok(Built::Transform(Arc::new(RenderTransform { renderer })))
        },
    },
];

/// A per-stream step that changes each beat in place.
struct BeatMap<M>(M);

impl<M, F> Transform for BeatMap<M>
where
    M: Fn() -> anyhow::Result<F> + Send + Sync,
    F: FnMut(&mut Beat) -> anyhow::Result<()> + 'static,
{
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        Ok(Box::new(BeatStep((self.0)()?)))
    }
}

struct BeatStep<F>(F);

impl<F: FnMut(&mut Beat) -> anyhow::Result<()>> Step for BeatStep<F> {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        match body {
            Body::Beat(mut beat) => {
                (self.0)(&mut beat)?;
                out.push(Body::Beat(beat));
                Ok(())
            }
            _ => bail!("expected beats"),
        }
    }
    fn finish(&mut self, _out: &mut Vec<Body>) -> anyhow::Result<()> {
        Ok(())
    }
}

fn build_augment(p: &Params) -> anyhow::Result<Built> {
    let mut steps = Vec::new();
    let (scale_min, scale_max) = (p.f64("scale_min") as f32, p.f64("scale_max") as f32);
    if scale_min != 1.0 || scale_max != 1.0 {
        steps.push(Augmentation::AmplitudeScale {
            min: scale_min,
            max: scale_max,
        });
    }
    let wander = p.f64("wander_mv") as f32;
    let wander_hz = p.f64("wander_hz") as f32;
    let noise = p.f64("noise_mv") as f32;
    if noise > 0.0 {
        steps.push(Augmentation::GaussianNoise {
            std: noise,
            relative: false,
        });
    }
    let max_shift = p.usize("max_shift");
    if max_shift > 0 {
        steps.push(Augmentation::TimeShift { max_shift });
    }
    let erase = p.usize("erase");
    if erase > 0 {
        steps.push(Augmentation::Erase {
            length: erase,
            fill: Fill::Zero,
        });
    }
    let seed = p.i64("seed") as u64;
    let wander_at = usize::from(scale_min != 1.0 || scale_max != 1.0);
    Ok(Built::Transform(Arc::new(AugmentTransform {
        steps,
        wander,
        wander_hz,
        wander_at,
        seed,
    })))
}

struct AugmentTransform {
    steps: Vec<Augmentation>,
    wander: f32,
    wander_hz: f32,
    /// Where wander goes in `steps`: right after amplitude scaling.
    wander_at: usize,
    seed: u64,
}

impl Transform for AugmentTransform {
    fn open(&self, first: &Body) -> anyhow::Result<Box<dyn Step>> {
        let Body::Beat(beat) = first else {
            bail!("expected beats")
        };
        let mut steps = self.steps.clone();
        if self.wander > 0.0 {
            // Wander needs the sampling rate, known from the stream's first beat.
            let wander = Augmentation::BaselineWander {
                amplitude: self.wander,
                frequency_hz: self.wander_hz,
                fs: beat.fs as f32,
            };
            steps.insert(self.wander_at, wander);
        }
        let seed = self.seed ^ stream_hash(&beat.stream);
        let mut augmenter = Augmenter::try_new(steps, seed)?;
        Ok(Box::new(BeatStep(move |beat: &mut Beat| {
            let len = beat.before + beat.after + 1;
            for lead in beat.window.chunks_mut(len) {
                augmenter.apply(lead);
            }
            Ok(())
        })))
    }
}

/// Reads `"1-38"` (whole numbers) or `"1,2,4.5"`.
pub fn parse_scales(spec: &str) -> anyhow::Result<Vec<f64>> {
    let spec = spec.trim();
    if let Some((a, b)) = spec.split_once('-') {
        let (a, b): (u32, u32) = (a.trim().parse()?, b.trim().parse()?);
        if a == 0 || a > b {
            bail!("bad scale range {spec:?}: expected e.g. \"1-38\"");
        }
        return Ok((a..=b).map(f64::from).collect());
    }
    let scales = spec
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .with_context(|| format!("bad scale {s:?} in {spec:?}"))
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    if scales.is_empty() || scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        bail!("scales must be positive numbers, got {spec:?}");
    }
    Ok(scales)
}

struct CwtTransform {
    wavelet: Wavelet,
    scales: Vec<f64>,
}

impl Transform for CwtTransform {
    fn open(&self, first: &Body) -> anyhow::Result<Box<dyn Step>> {
        let Body::Beat(beat) = first else {
            bail!("expected beats")
        };
        let len = beat.before + beat.after + 1;
        Ok(Box::new(CwtStep {
            cwt: Cwt::new(self.wavelet, &self.scales, len)?,
            scales: self.scales.len(),
            len,
        }))
    }
}

struct CwtStep {
    cwt: Cwt,
    scales: usize,
    len: usize,
}

impl Step for CwtStep {
    fn process(&mut self, body: Body, out: &mut Vec<Body>) -> anyhow::Result<()> {
        let Body::Beat(beat) = body else {
            bail!("expected beats")
        };
        if beat.before + beat.after + 1 != self.len {
            bail!(
                "beat at sample {} has a {}-sample window; this stream's are {}",
                beat.sample,
                beat.before + beat.after + 1,
                self.len
            );
        }
        let data = self.cwt.transform_beat(&beat)?;
        out.push(Body::Tensor(Tensor {
            stream: beat.stream,
            sample: Some(beat.sample),
            shape: vec![beat.leads.len(), self.scales, self.len],
            data,
            symbol: beat.symbol,
            prediction: None,
        }));
        Ok(())
    }
    fn finish(&mut self, _out: &mut Vec<Body>) -> anyhow::Result<()> {
        Ok(())
    }
}

fn render_config(p: &Params) -> anyhow::Result<RenderConfig> {
    let layout = match p.str("layout") {
        "clinical" => Layout::Clinical,
        other => {
            let parsed = other
                .split_once('x')
                .and_then(|(r, c)| Some((r.trim().parse().ok()?, c.trim().parse().ok()?)));
            match parsed {
                Some((rows, cols)) => Layout::Grid { rows, cols },
                None => bail!("layout {other:?} is not \"clinical\" or ROWSxCOLS such as 6x2"),
            }
        }
    };
    Ok(RenderConfig {
        width: p.usize("width"),
        height: p.usize("height"),
        layout,
        leads: p.str("leads").split(',').map(|l| l.trim().to_owned()).collect(),
        mv_per_cell: p.f64("mv_per_cell"),
        line_width: p.f64("line_width") as f32,
        grid: p.bool("grid"),
        labels: false,
        invert: p.bool("invert"),
        duration_s: p.f64("duration_s"),
    })
}

struct RenderTransform {
    renderer: Arc<Renderer>,
}

impl Transform for RenderTransform {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        Ok(Box::new(RenderStep {
            renderer: self.renderer.clone(),
            chunks: Vec::new(),
        }))
    }
}

/// Holds a record's chunks until it ends (a record is short: 10 s of 12 leads).
struct RenderStep {
    renderer: Arc<Renderer>,
    chunks: Vec<Chunk>,
}

impl Step for RenderStep {
    fn process(&mut self, body: Body, _out: &mut Vec<Body>) -> anyhow::Result<()> {
        let Body::Chunk(chunk) = body else {
            bail!("expected signal chunks")
        };
        let needed = (self.renderer.config().duration_s * chunk.fs).ceil() as u64;
        if chunk.start < needed {
            self.chunks.push(chunk);
        }
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        let Some(first) = self.chunks.first() else {
            return Ok(());
        };
        let stream = first.stream.clone();
        let pixels = self.renderer.render_chunks(&self.chunks)?;
        let config = self.renderer.config();
        out.push(Body::Tensor(Tensor {
            stream,
            sample: None,
            shape: vec![config.height, config.width],
            data: pixels,
            symbol: None,
            prediction: None,
        }));
        self.chunks.clear();
        Ok(())
    }
}

struct SmoteTransform {
    labels: LabelMap,
    smote: Smote,
}

impl Transform for SmoteTransform {
    fn open(&self, _first: &Body) -> anyhow::Result<Box<dyn Step>> {
        Ok(Box::new(SmoteStep {
            labels: self.labels.clone(),
            smote: self.smote.clone(),
            held: Vec::new(),
        }))
    }
    fn global(&self) -> bool {
        true
    }
}

/// Holds everything until the input ends, so that streams keep their order of events.
struct SmoteStep {
    labels: LabelMap,
    smote: Smote,
    held: Vec<Body>,
}

/// The stream that synthetic beats belong to.
pub const SMOTE_STREAM: &str = "smote";

impl Step for SmoteStep {
    fn process(&mut self, body: Body, _out: &mut Vec<Body>) -> anyhow::Result<()> {
        if let Body::Abort { stream, .. } = &body {
            let stream = stream.clone();
            self.held
                .retain(|b| b.stream() != stream || matches!(b, Body::Start { .. }));
        }
        self.held.push(body);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Body>) -> anyhow::Result<()> {
        let beats: Vec<&Beat> = self
            .held
            .iter()
            .filter_map(|b| if let Body::Beat(b) = b { Some(b) } else { None })
            .collect();
        let labelled: Vec<(&Beat, usize)> = beats
            .iter()
            .filter_map(|b| Some((*b, self.labels.class_of(b.symbol.as_deref()?)?)))
            .collect();
        let mut synthetic = Vec::new();
        if let Some((first, _)) = labelled.first() {
            let dim = first.window.len();
            if labelled.iter().any(|(b, _)| b.window.len() != dim) {
                bail!("SMOTE needs beats of one window length");
            }
            let features: Vec<f32> = labelled.iter().flat_map(|(b, _)| b.window.iter().copied()).collect();
            let labels: Vec<usize> = labelled.iter().map(|(_, c)| *c).collect();
            let (all, all_labels) = self.smote.resample(&features, dim, &labels)?;
            for (i, (window, class)) in all.chunks(dim).zip(&all_labels).enumerate().skip(labelled.len()) {
                let symbol = self.labels.symbols_of(*class).first().map(|s| (*s).to_owned());
                synthetic.push(Body::Beat(Beat {
                    stream: SMOTE_STREAM.to_owned(),
                    fs: first.fs,
                    sample: (i - labelled.len()) as u64,
                    leads: first.leads.clone(),
                    before: first.before,
                    after: first.after,
                    window: window.to_vec(),
                    template: None,
                    rr_prev: None,
                    rr_next: None,
                    rr_local: None,
                    rr_mean: None,
                    rr_irregularity: None,
                    symbol,
                    prediction: None,
                    arrival: None,
                }));
            }
        }
        out.append(&mut self.held);
        if !synthetic.is_empty() {
            let meta = vec![("database".to_owned(), "smote".to_owned())];
            out.push(Body::Start {
                stream: SMOTE_STREAM.to_owned(),
                meta,
            });
            out.append(&mut synthetic);
            out.push(Body::End {
                stream: SMOTE_STREAM.to_owned(),
            });
        }
        Ok(())
    }
}
