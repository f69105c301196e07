//! Continuous wavelet transform (CWT) of beats into scalograms, the input of the study's
//! second model (38 scales × 259 samples, Mexican-hat wavelet).
//!
//! The definitions follow PyWavelets' `pywt.cwt(data, scales, wavelet)` exactly, so that
//! maps agree with it to float precision (checked against stored pywt values in
//! `tests/fixtures/`):
//!
//! 1. the mother wavelet ψ is sampled at 4096 points on `[-8, 8]` (`pywt.cwt`'s default `precision=12`)
//!    and integrated by a cumulative sum: `int_psi = cumsum(ψ) * step`;
//! 2. for a scale `s`, the integrated wavelet is resampled by nearest-lower index,
//!    `int_psi[floor(k / (s * step))]` for `k = 0, 1, ..., ceil(16 s + 1) - 1`, and
//!    reversed;
//! 3. the signal is convolved with it (full convolution), differenced, multiplied by
//!    `-sqrt(s)` and the middle `len` samples are kept (`floor(d)` dropped at the front,
//!    `d = (len(diff) - len) / 2`).
//!
//! Steps 2-3 are one linear filter per scale, so [`Cwt::new`] folds them (the difference,
//! the `-sqrt(s)` factor, the trimming offset and the FFT's `1/N`) into one kernel
//! spectrum per scale, computed once in `f64`. A transform is then one forward FFT of the
//! zero-padded signal and one inverse FFT per *pair* of scales: both kernels are real, so
//! the spectrum of `k_a + i k_b` times the signal's spectrum transforms back to
//! `x * k_a + i (x * k_b)`, the two rows in the real and imaginary parts. The FFT length is
//! the smallest 2-3-5-smooth size at least the longest kernel's linear-convolution span,
//! so the circular convolution equals pywt's linear one on the kept samples.
//!
//! Both wavelets are pywt's real-valued ones, so maps are real: [`Wavelet::MexicanHat`]
//! is pywt's `'mexh'` and [`Wavelet::Morlet`] its `'morl'` (`exp(-x²/2) cos(5x)`, the real
//! Morlet; no magnitude of a complex Morlet is taken).

use std::f64::consts::PI;
use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::types::Beat;

/// Why a transform could not be built or run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CwtError {
    /// No scales were given.
    #[error("scales must not be empty")]
    NoScales,
    /// A scale is not a positive finite number (or so small that pywt rejects it too).
    #[error("scales[{index}] = {value} must be positive and finite")]
    Scale {
        /// Position in the list of scales.
        index: usize,
        /// The rejected scale.
        value: f64,
    },
    /// The signal length given to [`Cwt::new`] is zero.
    #[error("signal length len = 0: the transform needs at least one sample")]
    EmptySignal,
    /// A signal, beat lead or output buffer has the wrong number of samples.
    #[error("{what} has {got} samples, expected {expected}")]
    Length {
        /// Which buffer: `signal`, `out`, `signals`, `beat window`, ...
        what: &'static str,
        /// Number of samples given.
        got: usize,
        /// Number of samples expected.
        expected: usize,
    },
    /// A batch of signals is not a whole number of `len`-sample signals.
    #[error("signals has {got} samples, not a multiple of the signal length len = {len}")]
    Batch {
        /// Number of samples given.
        got: usize,
        /// Samples per signal.
        len: usize,
    },
}

/// Mother wavelet, as PyWavelets defines it (both are real-valued).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wavelet {
    /// Mexican hat (Ricker), pywt's `'mexh'`:
    /// `ψ(x) = 2 / (sqrt(3) π^¼) (1 - x²) exp(-x²/2)`.
    MexicanHat,
    /// Real Morlet, pywt's `'morl'`: `ψ(x) = exp(-x²/2) cos(5x)`.
    Morlet,
}

impl Wavelet {
    /// The wavelet's name in PyWavelets (`"mexh"`, `"morl"`).
    pub fn pywt_name(self) -> &'static str {
        match self {
            Wavelet::MexicanHat => "mexh",
            Wavelet::Morlet => "morl",
        }
    }

    /// The mother wavelet at `x`.
    pub fn psi(self, x: f64) -> f64 {
        match self {
            Wavelet::MexicanHat => 2.0 / (3f64.sqrt() * PI.powf(0.25)) * (1.0 - x * x) * (-x * x / 2.0).exp(),
            Wavelet::Morlet => (-x * x / 2.0).exp() * (5.0 * x).cos(),
        }
    }
}

/// The study's scales: 1, 2, ..., 38 (a 38 × 259 map of a 259-sample beat).
pub fn study_scales() -> Vec<f64> {
    (1..=38).map(f64::from).collect()
}

/// Points at which pywt samples the mother wavelet (`2^precision`, `pywt.cwt`'s default `precision = 12`).
const WAVELET_POINTS: usize = 4096;
/// pywt's support of both wavelets: `[-8, 8]`.
const WAVELET_BOUND: f64 = 8.0;

/// A CWT for signals of one length and one list of scales, holding the FFT plans, the
/// kernel spectra and the scratch buffers, so that a transform allocates nothing.
///
/// Maps are row-major `scales × len` (`out[i * len + t]` is scale `i` at sample `t`), in
/// the order the scales were given.
pub struct Cwt {
    wavelet: Wavelet,
    scales: Vec<f64>,
    len: usize,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    /// One spectrum per pair of scales (2p, 2p+1): FFT of `k_2p + i k_2p+1`, scaled by 1/N.
    kernels: Vec<Vec<Complex<f32>>>,
    signal_spectrum: Vec<Complex<f32>>,
    work: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl std::fmt::Debug for Cwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cwt")
            .field("wavelet", &self.wavelet)
            .field("scales", &self.scales)
            .field("len", &self.len)
            .field("fft_len", &self.fft_len())
            .finish()
    }
}

impl Cwt {
    /// A transform of `len`-sample signals at `scales` (in samples, as pywt's `scales`)
    /// with `wavelet`. Costs a few FFTs per scale; build it once and reuse it.
    pub fn new(wavelet: Wavelet, scales: &[f64], len: usize) -> Result<Self, CwtError> {
        if scales.is_empty() {
            return Err(CwtError::NoScales);
        }
        if len == 0 {
            return Err(CwtError::EmptySignal);
        }
        let int_psi = integrated_wavelet(wavelet);
        let filters = scales
            .iter()
            .enumerate()
            .map(|(index, &value)| ScaleFilter::new(&int_psi, value).ok_or(CwtError::Scale { index, value }))
            .collect::<Result<Vec<_>, _>>()?;
        let fft_len = next_fast_len(filters.iter().map(|f| f.min_fft_len(len)).max().unwrap_or(1));

        let mut planner64 = FftPlanner::<f64>::new();
        let forward64 = planner64.plan_fft_forward(fft_len);
        let kernels = filters
            .chunks(2)
            .map(|pair| {
                let mut buf = vec![Complex::new(0.0f64, 0.0); fft_len];
                for (part, filter) in pair.iter().enumerate() {
                    filter.add_circular(&mut buf, part == 1);
                }
                forward64.process(&mut buf);
                buf.iter()
                    .map(|c| Complex::new(c.re as f32, c.im as f32) / fft_len as f32)
                    .collect()
            })
            .collect();

        let mut planner = FftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(fft_len);
        let inverse = planner.plan_fft_inverse(fft_len);
        let scratch_len = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        Ok(Cwt {
            wavelet,
            scales: scales.to_vec(),
            len,
            forward,
            inverse,
            kernels,
            signal_spectrum: vec![Complex::new(0.0, 0.0); fft_len],
            work: vec![Complex::new(0.0, 0.0); fft_len],
            scratch: vec![Complex::new(0.0, 0.0); scratch_len],
        })
    }

    /// The wavelet.
    pub fn wavelet(&self) -> Wavelet {
        self.wavelet
    }

    /// The scales, in output row order.
    pub fn scales(&self) -> &[f64] {
        &self.scales
    }

    /// Samples per signal.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: [`Cwt::new`] rejects an empty signal length.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Coefficients per map: `scales().len() * len()`.
    pub fn map_len(&self) -> usize {
        self.scales.len() * self.len
    }

    /// The FFT length used (2-3-5-smooth, at least `len` plus about half the longest
    /// kernel).
    pub fn fft_len(&self) -> usize {
        self.work.len()
    }

    /// Writes the map of `signal` (`len()` samples) into `out` (`map_len()` values,
    /// row-major `scales × len`). Allocates nothing. A NaN or infinite sample makes the
    /// whole map non-finite (every output mixes every input through the FFT).
    pub fn transform(&mut self, signal: &[f32], out: &mut [f32]) -> Result<(), CwtError> {
        self.check("signal", signal.len(), self.len)?;
        self.check("out", out.len(), self.map_len())?;
        let len = self.len;
        for (s, &x) in self.signal_spectrum.iter_mut().zip(signal) {
            *s = Complex::new(x, 0.0);
        }
        self.signal_spectrum[len..].fill(Complex::new(0.0, 0.0));
        self.forward
            .process_with_scratch(&mut self.signal_spectrum, &mut self.scratch);

        for (kernel, rows) in self.kernels.iter().zip(out.chunks_mut(2 * len)) {
            for ((w, &x), &k) in self.work.iter_mut().zip(&self.signal_spectrum).zip(kernel) {
                *w = x * k;
            }
            self.inverse.process_with_scratch(&mut self.work, &mut self.scratch);
            let (first, second) = rows.split_at_mut(len);
            for (a, w) in first.iter_mut().zip(&self.work) {
                *a = w.re;
            }
            for (b, w) in second.iter_mut().zip(&self.work) {
                *b = w.im;
            }
        }
        Ok(())
    }

    /// Maps of many signals at once: `signals` holds `count * len()` samples (signal after
    /// signal), `out` receives `count * map_len()` values (map after map).
    pub fn transform_batch(&mut self, signals: &[f32], out: &mut [f32]) -> Result<(), CwtError> {
        if !signals.len().is_multiple_of(self.len) {
            return Err(CwtError::Batch {
                got: signals.len(),
                len: self.len,
            });
        }
        let count = signals.len() / self.len;
        self.check("out", out.len(), count * self.map_len())?;
        let map_len = self.map_len();
        for (signal, map) in signals.chunks(self.len).zip(out.chunks_mut(map_len)) {
            self.transform(signal, map)?;
        }
        Ok(())
    }

    /// Maps of every lead of a beat, lead after lead (`leads × scales × len`). The beat's
    /// window length `before + 1 + after` must equal `len()`, and the window must hold a
    /// whole number of such blocks.
    pub fn transform_beat(&mut self, beat: &Beat) -> Result<Vec<f32>, CwtError> {
        let block = beat.before + 1 + beat.after;
        self.check("beat window (before + 1 + after)", block, self.len)?;
        let mut out = vec![0.0; beat.window.len() / self.len * self.map_len()];
        self.transform_batch(&beat.window, &mut out)?;
        Ok(out)
    }

    fn check(&self, what: &'static str, got: usize, expected: usize) -> Result<(), CwtError> {
        if got == expected {
            Ok(())
        } else {
            Err(CwtError::Length { what, got, expected })
        }
    }
}

/// pywt's `integrate_wavelet(wavelet, precision=12)`: the wavelet sampled as
/// `numpy.linspace(-8, 8, 4096)`, cumulatively summed and multiplied by the step.
/// Returns the integral and the step `x[1] - x[0]` as numpy computes it.
fn integrated_wavelet(wavelet: Wavelet) -> (Vec<f64>, f64) {
    let n = WAVELET_POINTS;
    let delta = 2.0 * WAVELET_BOUND / (n - 1) as f64;
    let x = |i: usize| {
        if i == n - 1 {
            WAVELET_BOUND
        } else {
            i as f64 * delta - WAVELET_BOUND
        }
    };
    let step = x(1) - x(0);
    let mut sum = 0.0;
    let int_psi = (0..n)
        .map(|i| {
            sum += wavelet.psi(x(i));
            sum * step
        })
        .collect();
    (int_psi, step)
}

/// The linear filter pywt applies for one scale: `coef[t] = (x * g)[t + offset]`, with
/// `g` the differenced, reversed, resampled integrated wavelet times `-sqrt(scale)`.
struct ScaleFilter {
    /// Taps `g[0..=L]`.
    taps: Vec<f64>,
    /// Index of the linear convolution that lands on output sample 0.
    offset: usize,
}

impl ScaleFilter {
    /// `None` when the scale is not positive and finite (or too small for pywt).
    fn new((int_psi, step): &(Vec<f64>, f64), scale: f64) -> Option<Self> {
        if !(scale > 0.0 && scale.is_finite()) {
            return None;
        }
        // numpy.arange(scale * (x[-1] - x[0]) + 1) has ceil(stop) elements.
        let count = (scale * 2.0 * WAVELET_BOUND + 1.0).ceil() as usize;
        let mut resampled: Vec<f64> = (0..count)
            .map(|k| (k as f64 / (scale * step)) as usize)
            .filter(|&j| j < int_psi.len())
            .map(|j| int_psi[j])
            .collect();
        resampled.reverse();
        let l = resampled.len();
        if l < 2 {
            return None; // pywt: "Selected scale too small."
        }
        // diff(conv(x, w))[k] = (x * g)[k + 1] with g = w * [1, -1].
        let gain = -scale.sqrt();
        let taps = (0..=l)
            .map(|m| {
                let cur = resampled.get(m).copied().unwrap_or(0.0);
                let prev = if m == 0 { 0.0 } else { resampled[m - 1] };
                gain * (cur - prev)
            })
            .collect();
        // pywt keeps diff[floor(d) .. floor(d) + len] with d = (l - 2) / 2.
        Some(ScaleFilter {
            taps,
            offset: (l - 2) / 2 + 1,
        })
    }

    /// Smallest circular-convolution length for which the kept samples equal the linear
    /// convolution: no wrapped tap may land on an output sample.
    fn min_fft_len(&self, len: usize) -> usize {
        let span = self.taps.len(); // L + 1
        (self.offset + len).max(span + len - 1 - self.offset)
    }

    /// Adds the taps, rotated left by `offset` (so that output sample `t` is circular index
    /// `t`), to `buf`'s real (or imaginary) parts.
    fn add_circular(&self, buf: &mut [Complex<f64>], imaginary: bool) {
        let n = buf.len();
        for (m, &g) in self.taps.iter().enumerate() {
            let slot = &mut buf[(m + n - self.offset % n) % n];
            if imaginary {
                slot.im += g;
            } else {
                slot.re += g;
            }
        }
    }
}

/// Smallest integer ≥ `n` whose only prime factors are 2, 3 and 5 (rustfft has fast
/// butterflies for these).
fn next_fast_len(n: usize) -> usize {
    let mut m = n.max(1);
    loop {
        let mut r = m;
        for p in [2, 3, 5] {
            while r.is_multiple_of(p) {
                r /= p;
            }
        }
        if r == 1 {
            return m;
        }
        m += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_fast_len_is_smooth_and_minimal() {
        assert_eq!(next_fast_len(1), 1);
        assert_eq!(next_fast_len(7), 8);
        assert_eq!(next_fast_len(564), 576);
        assert_eq!(next_fast_len(601), 625);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert_eq!(Cwt::new(Wavelet::MexicanHat, &[], 10).unwrap_err(), CwtError::NoScales);
        assert_eq!(
            Cwt::new(Wavelet::MexicanHat, &[1.0], 0).unwrap_err(),
            CwtError::EmptySignal
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = Cwt::new(Wavelet::Morlet, &[1.0, bad], 10).unwrap_err();
            assert!(matches!(err, CwtError::Scale { index: 1, .. }), "{err}");
        }
        let mut cwt = Cwt::new(Wavelet::MexicanHat, &[1.0, 2.0], 10).unwrap();
        let mut out = vec![0.0; 20];
        assert!(cwt.transform(&[0.0; 9], &mut out).is_err());
        assert!(cwt.transform(&[0.0; 10], &mut out[..19]).is_err());
        assert!(cwt.transform_batch(&[0.0; 15], &mut out).is_err());
    }

    /// A direct time-domain evaluation of pywt's algorithm agrees with the FFT path, for
    /// odd and even scale counts and kernels longer than the signal.
    #[test]
    fn fft_path_matches_direct_convolution() {
        let x: Vec<f32> = (0..37).map(|i| ((i * i) as f32 * 0.37).sin()).collect();
        for wavelet in [Wavelet::MexicanHat, Wavelet::Morlet] {
            let scales = [0.7, 1.0, 3.0, 9.5, 30.0];
            let mut cwt = Cwt::new(wavelet, &scales, x.len()).unwrap();
            let mut out = vec![0.0; cwt.map_len()];
            cwt.transform(&x, &mut out).unwrap();
            let int_psi = integrated_wavelet(wavelet);
            for (i, &s) in scales.iter().enumerate() {
                let f = ScaleFilter::new(&int_psi, s).unwrap();
                for t in 0..x.len() {
                    let k = t + f.offset;
                    let direct: f64 = (0..x.len())
                        .filter(|&j| k >= j && k - j < f.taps.len())
                        .map(|j| x[j] as f64 * f.taps[k - j])
                        .sum();
                    let got = out[i * x.len() + t] as f64;
                    assert!(
                        (got - direct).abs() < 1e-4,
                        "{wavelet:?} s={s} t={t}: {got} vs {direct}"
                    );
                }
            }
        }
    }
}
