//! Sampling-rate conversion between any two rates (e.g. 500 → 360, 100 → 360, 360 → 250 Hz)
//! by a streaming polyphase windowed-sinc filter.
//!
//! # Approach
//!
//! Both rates are rounded to whole hertz and their ratio reduced by their gcd to
//! `up / down` (500 → 360 Hz is 18 / 25). Output sample `m` lies at input time
//! `τ = m · down / up` (in input samples) and is
//! `y[m] = Σ_i x[i] · g(τ - i)`, where `g` is a Kaiser-windowed sinc low-pass:
//!
//! - cut-off (−6 dB) at 0.9 × the lower of the two Nyquist frequencies, transition band
//!   from 0.8 to 1.0 × that Nyquist frequency ([`PASSBAND_FRACTION`]);
//! - Kaiser window designed for [`STOPBAND_DB`] (80 dB) of attenuation, hence a ripple
//!   below 0.001 dB in the pass band: everything above the new Nyquist frequency is
//!   attenuated by at least 80 dB before it can alias (downsampling), and spectral images
//!   of the input likewise (upsampling);
//! - `τ`'s fractional part takes only `up` values, so the filter is tabulated once as
//!   `up` phases of `2 · half` taps (a polyphase filter bank), each phase normalised to a
//!   DC gain of exactly 1 (a constant signal stays exactly constant).
//!
//! The filter is centred on `τ`, so the output timeline is delay-compensated: output sample
//! `m` is the signal at time `m / to_hz` exactly, and an annotation at input sample `s`
//! belongs at output sample `round(s · up / down)`. The price of the linear phase is
//! latency: output `m` is emitted once input sample `floor(τ) + half` has arrived
//! ([`Resampler::delay_samples`]). Feeding a stream in chunks of any size gives exactly
//! the same output as feeding it whole.
//!
//! Before the first sample and after the last, the signal is extended with its first and
//! last value (not zeros), so a DC offset gives no edge transient. The output has
//! `ceil(n · up / down)` samples for `n` input samples (every `m` with `τ < n`), i.e.
//! `round(n · to / from)` or one more.
//!
//! Non-integer rates are approximated by their rounding in the ratio (an error below
//! 0.5 Hz per rate); output chunks carry `fs = to_hz` as given.

use crate::types::{Annotation, Chunk};

/// Why a resampler could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResampleError {
    /// A sampling rate is not a finite number between 1 Hz and 10¹² Hz.
    #[error("{name} = {value} Hz must be finite and between 1 Hz and 1e12 Hz")]
    Rate {
        /// `from_hz` or `to_hz`.
        name: &'static str,
        /// The rejected rate.
        value: f64,
    },
    /// The reduced ratio needs more than [`MAX_RATIO_TERM`] phases or input steps.
    #[error(
        "resampling {from_hz} Hz to {to_hz} Hz reduces to {up}/{down}: \
         both terms must be at most {max} (choose rates with a larger common divisor)",
        max = MAX_RATIO_TERM
    )]
    Ratio {
        /// Input rate in Hz.
        from_hz: f64,
        /// Output rate in Hz.
        to_hz: f64,
        /// Upsampling factor (numerator).
        up: u64,
        /// Downsampling factor (denominator).
        down: u64,
    },
    /// `n_leads` is zero.
    #[error("n_leads = 0: a resampler needs at least one lead")]
    Leads,
}

/// Stop-band attenuation of the anti-aliasing / anti-imaging filter, in dB.
pub const STOPBAND_DB: f64 = 80.0;

/// The pass band ends at this fraction of the lower Nyquist frequency; the stop band
/// starts at the lower Nyquist frequency.
pub const PASSBAND_FRACTION: f64 = 0.8;

/// Largest numerator or denominator of the reduced rate ratio. The filter table holds
/// about `50 · max(up, down)` coefficients.
pub const MAX_RATIO_TERM: u64 = 10_000;

/// A streaming sampling-rate converter for every lead of one stream (see the module
/// documentation for the method).
#[derive(Clone, Debug)]
pub struct Resampler {
    to_hz: f64,
    up: u64,
    down: u64,
    /// Taps on each side of `τ`; a phase has `2 * half` taps.
    half: usize,
    /// `up` phases of `2 * half` taps each; tap `k` of phase `p` weighs input
    /// `floor(τ) - half + 1 + k`.
    coefs: Vec<f32>,
    n_leads: usize,
    stream: Option<StreamState>,
}

/// What a resampler holds about the stream in progress.
#[derive(Clone, Debug)]
struct StreamState {
    name: String,
    leads: Vec<String>,
    /// Recent input per lead, from absolute input index `history_start` on (with the
    /// first sample repeated before the stream's start).
    history: Vec<Vec<f32>>,
    history_start: i64,
    /// Absolute index one past the last input sample received.
    input_end: i64,
    /// Next output sample to emit (absolute, output rate).
    next_out: u64,
    annotations: Vec<Annotation>,
    rpeaks: Vec<u64>,
}

impl Resampler {
    /// A resampler from `from_hz` to `to_hz` for `n_leads` leads. Chunks with fewer
    /// leads hold the missing leads at their last value; extra leads are dropped.
    pub fn new(from_hz: f64, to_hz: f64, n_leads: usize) -> Result<Self, ResampleError> {
        let from = rounded_rate("from_hz", from_hz)?;
        let to = rounded_rate("to_hz", to_hz)?;
        if n_leads == 0 {
            return Err(ResampleError::Leads);
        }
        let g = gcd(from, to);
        let (up, down) = (to / g, from / g);
        if up > MAX_RATIO_TERM || down > MAX_RATIO_TERM {
            return Err(ResampleError::Ratio {
                from_hz,
                to_hz,
                up,
                down,
            });
        }

        // Frequencies in cycles per input sample.
        let nyquist = 0.5 * (up as f64 / down as f64).min(1.0);
        let cutoff = nyquist * (1.0 + PASSBAND_FRACTION) / 2.0;
        let transition = nyquist * (1.0 - PASSBAND_FRACTION);
        // Kaiser's formulas for the window length and shape.
        let length = (STOPBAND_DB - 7.95) / (2.285 * 2.0 * std::f64::consts::PI * transition);
        let width = length / 2.0;
        let beta = 0.1102 * (STOPBAND_DB - 8.7);
        let half = width.ceil() as usize;
        let kernel = |u: f64| {
            if u.abs() >= width {
                return 0.0;
            }
            let x = 2.0 * cutoff * u;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let r = u / width;
            2.0 * cutoff * sinc * bessel_i0(beta * (1.0 - r * r).sqrt()) / bessel_i0(beta)
        };
        let mut coefs = Vec::with_capacity(up as usize * 2 * half);
        for p in 0..up {
            let frac = p as f64 / up as f64;
            let taps: Vec<f64> = (0..2 * half)
                .map(|k| kernel(frac + half as f64 - 1.0 - k as f64))
                .collect();
            let sum: f64 = taps.iter().sum();
            coefs.extend(taps.iter().map(|t| (t / sum) as f32));
        }
        Ok(Resampler {
            to_hz,
            up,
            down,
            half,
            coefs,
            n_leads,
            stream: None,
        })
    }

    /// The output rate in Hz, as given to [`Resampler::new`].
    pub fn to_hz(&self) -> f64 {
        self.to_hz
    }

    /// The reduced ratio `(up, down)`: output rate / input rate = up / down.
    pub fn ratio(&self) -> (u64, u64) {
        (self.up, self.down)
    }

    /// Latency in output samples: output sample `m` is emitted once the input has reached
    /// the time of output sample `m + delay_samples()` (at most). The timeline itself is
    /// not delayed (see the module documentation).
    pub fn delay_samples(&self) -> usize {
        (self.half as u64 * self.up).div_ceil(self.down) as usize
    }

    /// Filter taps per output sample and lead (the cost of one output sample).
    pub fn taps_per_output(&self) -> usize {
        2 * self.half
    }

    /// Takes the next chunk of the stream; returns the output samples that are now
    /// complete (zero or one chunk). Chunks are taken as contiguous: the first non-empty
    /// chunk's `start` anchors the stream (empty chunks before it are ignored), later
    /// `start`s are not checked. Output chunks carry
    /// `fs = to_hz`, `start` in output samples, the annotations mapped to
    /// `round(sample · up / down)` and lying before the chunk's end, and the R peaks mapped
    /// the same way.
    pub fn process(&mut self, chunk: Chunk) -> Vec<Chunk> {
        if self.stream.is_none() {
            if chunk.is_empty() {
                return Vec::new();
            }
            self.stream = Some(self.start_stream(&chunk));
        }
        let (up, down) = (self.up, self.down);
        let Some(state) = self.stream.as_mut() else {
            return Vec::new();
        };
        let n = chunk.len();
        for (l, history) in state.history.iter_mut().enumerate() {
            let lead = chunk.samples.get(l).map_or(&[][..], |v| &v[..v.len().min(n)]);
            history.extend_from_slice(lead);
            let last = history.last().copied().unwrap_or(0.0);
            history.resize(history.len() + n - lead.len(), last);
        }
        state.input_end += n as i64;
        state
            .annotations
            .extend(chunk.annotations.into_iter().map(|a| Annotation {
                sample: map_index(a.sample, up, down),
                symbol: a.symbol,
            }));
        state
            .rpeaks
            .extend(chunk.rpeaks.iter().map(|&s| map_index(s, up, down)));
        self.emit(false).into_iter().collect()
    }

    /// End of stream: pads the input with its last value, returns the remaining output
    /// samples (every output sample whose time lies before the end of the input) with
    /// every annotation and R peak not yet passed on, and resets the resampler for a new
    /// stream.
    pub fn finish(&mut self) -> Vec<Chunk> {
        let half = self.half;
        let Some(state) = self.stream.as_mut() else {
            return Vec::new();
        };
        for history in state.history.iter_mut() {
            let last = history.last().copied().unwrap_or(0.0);
            history.resize(history.len() + half, last);
        }
        let out = self.emit(true);
        self.stream = None;
        out.into_iter().collect()
    }

    fn start_stream(&self, first: &Chunk) -> StreamState {
        let start = first.start as i64;
        let history = (0..self.n_leads)
            .map(|l| {
                let x0 = first.samples.get(l).and_then(|v| v.first()).copied();
                vec![x0.unwrap_or(0.0); self.half]
            })
            .collect();
        let leads = (0..self.n_leads)
            .map(|l| first.leads.get(l).cloned().unwrap_or_else(|| format!("lead{l}")))
            .collect();
        StreamState {
            name: first.stream.clone(),
            leads,
            history,
            history_start: start - self.half as i64,
            input_end: start,
            // First output at or after the first input sample: ceil(start · up / down).
            next_out: (first.start as u128 * self.up as u128).div_ceil(self.down as u128) as u64,
            annotations: Vec::new(),
            rpeaks: Vec::new(),
        }
    }

    /// Computes every output sample whose inputs are available (at the end of the
    /// stream: every one before the input's end) into one chunk.
    fn emit(&mut self, at_end: bool) -> Option<Chunk> {
        let (up, down, half) = (self.up, self.down, self.half);
        let taps = 2 * half;
        let state = self.stream.as_mut()?;
        let first = state.next_out;
        let mut samples = vec![Vec::new(); state.history.len()];
        loop {
            let pos = state.next_out as u128 * down as u128;
            let base = (pos / up as u128) as i64;
            let phase = (pos % up as u128) as usize;
            let ready = if at_end {
                pos < state.input_end as u128 * up as u128
            } else {
                base + (half as i64) < state.input_end
            };
            if !ready {
                break;
            }
            let from = (base - half as i64 + 1 - state.history_start) as usize;
            let coefs = &self.coefs[phase * taps..(phase + 1) * taps];
            for (out, history) in samples.iter_mut().zip(&state.history) {
                let window = &history[from..from + taps];
                out.push(window.iter().zip(coefs).map(|(x, c)| x * c).sum());
            }
            state.next_out += 1;
        }
        // Drop history no output needs any more.
        let keep_from = (state.next_out as u128 * down as u128 / up as u128) as i64 - half as i64 + 1;
        let drop = (keep_from - state.history_start).max(0) as usize;
        for history in state.history.iter_mut() {
            history.drain(..drop.min(history.len()));
        }
        state.history_start += drop as i64;

        let end = state.next_out;
        if end == first && !at_end {
            return None;
        }
        let (annotations, later) = std::mem::take(&mut state.annotations)
            .into_iter()
            .partition(|a| at_end || a.sample < end);
        state.annotations = later;
        let mut chunk = Chunk::new(state.name.clone(), self.to_hz, first, state.leads.clone(), samples);
        chunk.annotations = annotations;
        chunk.rpeaks = std::mem::take(&mut state.rpeaks);
        if at_end && chunk.is_empty() && chunk.annotations.is_empty() && chunk.rpeaks.is_empty() {
            return None;
        }
        Some(chunk)
    }
}

/// Resamples a whole single-lead signal from `from_hz` to `to_hz` (a [`Resampler`] fed
/// the signal as one chunk, then finished). The filter delay is compensated: sample `m`
/// of the result is the signal at time `m / to_hz`; the result has `ceil(n · up / down)`
/// samples.
pub fn resample(signal: &[f32], from_hz: f64, to_hz: f64) -> Result<Vec<f32>, ResampleError> {
    let mut resampler = Resampler::new(from_hz, to_hz, 1)?;
    let chunk = Chunk::new("", from_hz, 0, vec!["x".into()], vec![signal.to_vec()]);
    let mut out = Vec::new();
    for c in resampler.process(chunk).into_iter().chain(resampler.finish()) {
        out.extend(c.samples.into_iter().next().unwrap_or_default());
    }
    Ok(out)
}

/// `round(sample · up / down)` in integers (halves round up).
fn map_index(sample: u64, up: u64, down: u64) -> u64 {
    ((2 * sample as u128 * up as u128 + down as u128) / (2 * down as u128)) as u64
}

fn rounded_rate(name: &'static str, value: f64) -> Result<u64, ResampleError> {
    if (1.0..1e12).contains(&value) {
        Ok(value.round() as u64)
    } else {
        Err(ResampleError::Rate { name, value })
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for
/// the window's arguments, at most about 8).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}
