//! Synthetic ECG: a streaming implementation of the dynamical model of McSharry, Clifford,
//! Tarassenko & Smith (2003), "A dynamical model for generating synthetic electrocardiogram
//! signals", IEEE Trans. Biomed. Eng. 50(3):289-294 (ECGSYN), with ectopic beats, noise and
//! the true R-peak positions, so that detectors can be scored without any dataset.
//!
//! # The model and how this implementation relates to ECGSYN
//!
//! ECGSYN moves a point around the unit limit cycle in the (x, y) plane with angular
//! velocity ω = 2π/RR(t) and drives the height z with one Gaussian attractor per wave
//! (P, Q, R, S, T) at angles θᵢ = (-70°, -15°, 0°, 15°, 100°):
//!
//! ```text
//! dz/dt = -Σᵢ aᵢ Δθᵢ exp(-Δθᵢ² / (2 bᵢ²)) - (z - z0(t)),   Δθᵢ = θ(t) - θᵢ
//! ```
//!
//! with aᵢ = (1.2, -5, 30, -7.5, 0.75) and bᵢ = (0.25, 0.1, 0.1, 0.1, 0.4). As in the
//! reference Matlab code, the widths are multiplied by `hrfact = sqrt(hr/60)` and the angles
//! by `(sqrt(hrfact), hrfact, 1, hrfact, sqrt(hrfact))`, where `hr` is the configured mean
//! heart rate. What is done differently, and why:
//!
//! - **Phase.** ECGSYN starts on the limit cycle, where it stays (α = 0), so θ(t) is just
//!   the integral of ω. Here θ is computed exactly per beat instead of integrating x and y:
//!   each beat is a set of Gaussian "events" in time, centred at `T + θᵢ/ω` with width
//!   `bᵢ/ω`, where `T` is the beat's R time. Waves before the R (P, Q) use the ω of the
//!   preceding RR interval and the others (R, S, T) the ω of the following one — in a run of
//!   normal beats this is exactly ECGSYN's piecewise-constant ω per RR interval (ECGSYN
//!   switches ω at the R angle). Each Gaussian is evaluated only within ±5 widths of its
//!   centre (ECGSYN truncates at θ = ±π instead, which leaves a small kink at high rates).
//!   This lets beats overlap or leave an isoelectric gap, which is what ectopic beats need.
//! - **Integration.** z is integrated with the classical RK4 at an internal rate that is an
//!   integer multiple of `fs`, chosen so that the step is at most half of the narrowest
//!   Gaussian width in time (ECGSYN: 512 Hz for 256 Hz output). Only the z equation is
//!   integrated; it needs two new evaluations of the Gaussian sum per step.
//! - **Scaling.** ECGSYN maps the minimum and maximum of z over the whole record to
//!   -0.4..1.2 mV, which cannot be streamed. Here a fixed affine map is computed once per
//!   configuration from a noise-free calibration run at the mean heart rate: the isoelectric
//!   level (before the P wave) maps to 0 mV and the calibration beat's min..max range spans
//!   1.6 mV, the ECGSYN range. The map depends on the configuration only, never on the seed.
//! - **Respiration.** ECGSYN lets the baseline z0 oscillate at the respiratory frequency.
//!   Because the z equation is linear, that is the same as adding the (low-pass filtered)
//!   oscillation to the output, which is what is done here, with the amplitude given
//!   directly in mV (`baseline_wander_mv`) and a slow random drift added (see below).
//!
//! # RR tachogram
//!
//! ECGSYN draws the RR series from a bimodal spectrum — Gaussians centred at 0.1 Hz (Mayer
//! waves, LF) and 0.25 Hz (respiratory sinus arrhythmia, HF) with standard deviation 0.01 Hz
//! and power ratio LF/HF — by an inverse FFT of the whole record, then rescales it to mean
//! `60/hr` and standard deviation `60·hrstd/hr²`. An inverse FFT over the record is a sum of
//! random-phase sinusoids at the FFT bins with amplitudes following the spectrum; here the
//! same process is built for unbounded durations as a sum of 12 random-phase sinusoids per
//! band whose frequencies are drawn from that band's Gaussian (a randomised spectral
//! representation: its expected spectrum is the ECGSYN spectrum), with equal amplitudes such
//! that the LF and HF variances are `rrstd²·r/(1+r)` and `rrstd²/(1+r)`. As in ECGSYN, each
//! RR interval takes the value of the tachogram at the time of the beat that starts it. RR is
//! clamped to `[max(rr-5σ, rr/2, 0.2 s), min(rr+5σ, 2rr)]`.
//!
//! # Ectopic beats
//!
//! With probability `ectopic_probability` per beat, a beat is a premature ventricular beat
//! (symbol `V`): it comes after a coupling interval of 0.6-0.7 (uniform) of the current RR,
//! has no P wave, a wide and taller R, a wide deep S and an inverted, wider T, and the next
//! normal beat follows a full compensatory pause (coupling + pause = 2 RR). Normal beats are
//! `N`.
//!
//! # True R peaks
//!
//! Every beat is annotated (`N` or `V`) at the sample nearest to the maximum of the
//! noise-free z near its R wave: the calibration run gives the offset of that maximum from
//! the R attractor and its height, and each beat's maximum is then located exactly as the
//! root of dz/dt = 0 by bisection, with the waves of its neighbours included (so early
//! beats landing on a T wave and RR changes are accounted for).
//!
//! # Noise (all added to the output, all in mV)
//!
//! - baseline wander: a 0.25 Hz respiratory sinusoid of amplitude `baseline_wander_mv`
//!   plus a slow drift (an AR(1) process with a 10 s time constant, knots every 0.5 s,
//!   linearly interpolated) of standard deviation `baseline_wander_mv / 2`;
//! - mains hum: a sinusoid of amplitude `mains_mv` at `mains_hz`;
//! - muscle (EMG) noise: white Gaussian noise of standard deviation `muscle_mv`.
//!
//! # Determinism
//!
//! Stream `index` is seeded from `(seed, index)`. Every random quantity (tachogram, ectopic
//! beats, first-beat phase, each noise) has its own generator derived from that seed, so
//! that switching a noise off leaves everything else unchanged. The output depends only on
//! the configuration, the seed and the stream index, never on the chunk sizes requested.

use std::collections::VecDeque;
use std::f64::consts::PI;

use crate::rng::SplitMix64;
use crate::types::{Annotation, Chunk};

const TWO_PI: f64 = 2.0 * PI;

/// The lead name of every chunk produced by [`SyntheticEcg`].
pub const LEAD: &str = "ECG";

/// Gaussian events are evaluated within this many widths of their centre.
const CUT: f64 = 5.0;
/// LF (Mayer wave) band centre of the tachogram, Hz (ECGSYN `flo`).
const LF_HZ: f64 = 0.1;
/// HF (respiratory sinus arrhythmia) band centre of the tachogram, Hz (ECGSYN `fhi`).
const HF_HZ: f64 = 0.25;
/// Standard deviation of both tachogram bands, Hz (ECGSYN `flostd`, `fhistd`).
const BAND_STD_HZ: f64 = 0.01;
/// Sinusoids per tachogram band.
const SINES_PER_BAND: usize = 12;
/// Respiratory frequency of the baseline wander, Hz.
const RESP_HZ: f64 = 0.25;
/// Knot spacing of the random baseline drift, seconds.
const DRIFT_KNOT_S: f64 = 0.5;
/// Time constant of the random baseline drift, seconds.
const DRIFT_TAU_S: f64 = 10.0;
/// Standard deviation of the drift relative to `baseline_wander_mv`.
const DRIFT_REL_STD: f64 = 0.5;
/// Coupling interval of an ectopic beat, as a fraction of the current RR.
const COUPLING_MIN: f64 = 0.6;
const COUPLING_MAX: f64 = 0.7;
/// Seconds simulated before sample 0 so that the output starts in steady state.
const WARMUP_S: f64 = 4.0;
/// Internal rate of the calibration run, Hz.
const CAL_RATE: f64 = 10_000.0;
/// Peak-to-peak range of the calibration beat in mV (ECGSYN: -0.4..1.2 mV).
const RANGE_MV: f64 = 1.6;

/// Error of a synthetic ECG configuration: names the bad field and its value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SyntheticError {
    /// A field of [`SyntheticConfig`] is out of range.
    #[error("synthetic ECG: invalid {field} = {value}: {reason}")]
    InvalidParameter {
        /// Field name, as in [`SyntheticConfig`].
        field: &'static str,
        /// The value given.
        value: f64,
        /// What the value must satisfy.
        reason: &'static str,
    },
}

/// Configuration of the synthetic ECG source (see the [module documentation](self)).
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Output sampling rate in Hz (default 360).
    pub fs: f64,
    /// Mean heart rate in beats per minute, 20..=250 (default 70).
    pub heart_rate: f64,
    /// Standard deviation of the heart rate in bpm (ECGSYN's `hrstd`, default 1).
    pub heart_rate_std: f64,
    /// Ratio of LF (0.1 Hz) to HF (0.25 Hz) power of the RR tachogram (default 0.5).
    pub lf_hf_ratio: f64,
    /// Seconds per stream (default 60); `f64::INFINITY` for an unbounded stream.
    pub duration_s: f64,
    /// Amplitude of the respiratory baseline wander in mV; the random drift added to it
    /// has half this standard deviation (default 0.05).
    pub baseline_wander_mv: f64,
    /// Amplitude of the mains hum sinusoid in mV (default 0).
    pub mains_mv: f64,
    /// Mains frequency in Hz, usually 50 or 60 (default 50).
    pub mains_hz: f64,
    /// Standard deviation of the white muscle (EMG) noise in mV (default 0.01).
    pub muscle_mv: f64,
    /// Probability that a beat is a premature ventricular beat `V` (default 0).
    pub ectopic_probability: f64,
    /// Seed of the whole source; stream `i` derives its own seed from `(seed, i)`
    /// (default 1).
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            fs: 360.0,
            heart_rate: 70.0,
            heart_rate_std: 1.0,
            lf_hf_ratio: 0.5,
            duration_s: 60.0,
            baseline_wander_mv: 0.05,
            mains_mv: 0.0,
            mains_hz: 50.0,
            muscle_mv: 0.01,
            ectopic_probability: 0.0,
            seed: 1,
        }
    }
}

fn invalid(field: &'static str, value: f64, reason: &'static str) -> SyntheticError {
    SyntheticError::InvalidParameter { field, value, reason }
}

impl SyntheticConfig {
    /// Checks every field; the error names the first bad field and its value.
    ///
    /// Rules: `fs` finite in (0, 100000]; `heart_rate` in 20..=250; `heart_rate_std` finite
    /// in 0..=`heart_rate`/4; `lf_hf_ratio` finite and >= 0; `duration_s` > 0 (may be
    /// infinite); noise amplitudes finite and >= 0; `mains_hz` finite and > 0, and below
    /// `fs`/2 when `mains_mv` > 0; `ectopic_probability` in [0, 1].
    pub fn validate(&self) -> Result<(), SyntheticError> {
        let c = self;
        if !(c.fs.is_finite() && c.fs > 0.0 && c.fs <= 100_000.0) {
            return Err(invalid("fs", c.fs, "must be finite, > 0 and <= 100000 Hz"));
        }
        if !(c.heart_rate >= 20.0 && c.heart_rate <= 250.0) {
            return Err(invalid("heart_rate", c.heart_rate, "must be in 20..=250 bpm"));
        }
        if !(c.heart_rate_std.is_finite() && c.heart_rate_std >= 0.0 && c.heart_rate_std <= c.heart_rate / 4.0) {
            return Err(invalid(
                "heart_rate_std",
                c.heart_rate_std,
                "must be finite, >= 0 and <= heart_rate / 4",
            ));
        }
        if !(c.lf_hf_ratio.is_finite() && c.lf_hf_ratio >= 0.0) {
            return Err(invalid("lf_hf_ratio", c.lf_hf_ratio, "must be finite and >= 0"));
        }
        if c.duration_s.is_nan() || c.duration_s <= 0.0 {
            return Err(invalid(
                "duration_s",
                c.duration_s,
                "must be > 0 (infinity for an unbounded stream)",
            ));
        }
        for (field, value) in [
            ("baseline_wander_mv", c.baseline_wander_mv),
            ("mains_mv", c.mains_mv),
            ("muscle_mv", c.muscle_mv),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(field, value, "must be finite and >= 0"));
            }
        }
        if !(c.mains_hz.is_finite() && c.mains_hz > 0.0) {
            return Err(invalid("mains_hz", c.mains_hz, "must be finite and > 0"));
        }
        if c.mains_mv > 0.0 && c.mains_hz >= c.fs / 2.0 {
            return Err(invalid(
                "mains_hz",
                c.mains_hz,
                "must be below fs / 2 when mains_mv > 0",
            ));
        }
        if !(c.ectopic_probability >= 0.0 && c.ectopic_probability <= 1.0) {
            return Err(invalid(
                "ectopic_probability",
                c.ectopic_probability,
                "must be in [0, 1]",
            ));
        }
        Ok(())
    }

    /// Samples per stream: `round(duration_s * fs)`, `u64::MAX` for an infinite duration.
    pub fn total_samples(&self) -> u64 {
        // `as` saturates: infinity gives u64::MAX.
        (self.duration_s * self.fs).round() as u64
    }
}

/// Beat class of a synthetic beat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Normal,
    Ventricular,
}

impl Kind {
    fn symbol(self) -> &'static str {
        match self {
            Kind::Normal => "N",
            Kind::Ventricular => "V",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Normal => 0,
            Kind::Ventricular => 1,
        }
    }
}

/// One Gaussian attractor, after the heart-rate adjustment: angle (rad), amplitude, width (rad).
#[derive(Clone, Copy, Debug)]
struct Wave {
    theta: f64,
    a: f64,
    b: f64,
}

/// The waves of both beat classes, adjusted for the mean heart rate as ECGSYN does.
#[derive(Clone, Debug)]
struct Morphology {
    waves: [Vec<Wave>; 2],
}

impl Morphology {
    fn new(heart_rate: f64) -> Self {
        let hrfact = (heart_rate / 60.0).sqrt();
        let hrfact2 = hrfact.sqrt();
        let wave = |deg: f64, angle_factor: f64, a: f64, b: f64| Wave {
            theta: deg.to_radians() * angle_factor,
            a,
            b: b * hrfact,
        };
        // ECGSYN P, Q, R, S, T with the Matlab ecgsyn.m angle factors.
        let normal = vec![
            wave(-70.0, hrfact2, 1.2, 0.25),
            wave(-15.0, hrfact, -5.0, 0.1),
            wave(0.0, 1.0, 30.0, 0.1),
            wave(15.0, hrfact, -7.5, 0.1),
            wave(100.0, hrfact2, 0.75, 0.4),
        ];
        // Premature ventricular beat: no P, no Q, a wide tall R, a wide deep S and a wide
        // inverted T (discordant), scaled with the heart rate like the normal waves.
        // The net area (Σ a·b³) is kept close to the normal beat's, so that the relaxation
        // term leaves no lasting baseline shift after an ectopic beat.
        let ventricular = vec![
            wave(0.0, 1.0, 5.0, 0.3),
            wave(45.0, hrfact, -3.0, 0.2),
            wave(115.0, hrfact2, -0.6, 0.4),
        ];
        Morphology {
            waves: [normal, ventricular],
        }
    }

    /// Longest extent of any wave before its beat's R time, in radians.
    fn max_extent_before(&self) -> f64 {
        self.waves
            .iter()
            .flatten()
            .map(|w| (CUT * w.b - w.theta).max(0.0))
            .fold(0.0, f64::max)
    }

    /// Narrowest Gaussian width, in radians.
    fn min_width(&self) -> f64 {
        self.waves.iter().flatten().map(|w| w.b).fold(f64::INFINITY, f64::min)
    }
}

/// One Gaussian term of dz/dt in time: `k1 * d * exp(k2 * d²)`, `d = t - tc`, active on
/// `[lo, hi)`.
#[derive(Clone, Copy, Debug)]
struct Event {
    lo: f64,
    hi: f64,
    tc: f64,
    k1: f64,
    k2: f64,
}

/// The z equation and its active Gaussian events.
#[derive(Clone, Debug)]
struct Core {
    z: f64,
    /// Sorted by `hi`, so that expired events leave from the front.
    events: VecDeque<Event>,
}

impl Core {
    fn new(z: f64) -> Self {
        Core {
            z,
            events: VecDeque::with_capacity(32),
        }
    }

    /// Adds the events of one beat with R time `t`.
    fn push_beat(&mut self, waves: &[Wave], t: f64, w_pre: f64, w_post: f64) {
        for w in waves {
            if w.a == 0.0 {
                continue;
            }
            let omega = if w.theta < 0.0 { w_pre } else { w_post };
            let tc = t + w.theta / omega;
            let half = CUT * w.b / omega;
            let e = Event {
                lo: tc - half,
                hi: tc + half,
                tc,
                k1: -w.a * omega,
                k2: -(omega * omega) / (2.0 * w.b * w.b),
            };
            let pos = self.events.iter().rposition(|x| x.hi <= e.hi).map_or(0, |p| p + 1);
            self.events.insert(pos, e);
        }
    }

    /// The Gaussian sum (the drive of dz/dt) at time `t`.
    #[inline]
    fn drive(&self, t: f64) -> f64 {
        let mut s = 0.0;
        for e in self.events.iter() {
            if t >= e.lo && t < e.hi {
                let d = t - e.tc;
                s += e.k1 * d * (e.k2 * d * d).exp();
            }
        }
        s
    }

    /// Drops the events that end at or before `t`.
    #[inline]
    fn expire(&mut self, t: f64) {
        while self.events.front().is_some_and(|e| e.hi <= t) {
            self.events.pop_front();
        }
    }

    /// One RK4 step of `dz/dt = F(t) - z` from `t` to `t + h`, given `f0 = F(t)`; returns
    /// `F(t + h)`.
    #[inline]
    fn step(&mut self, t: f64, h: f64, f0: f64) -> f64 {
        let fm = self.drive(t + 0.5 * h);
        let f1 = self.drive(t + h);
        let z = self.z;
        let k1 = f0 - z;
        let k2 = fm - (z + 0.5 * h * k1);
        let k3 = fm - (z + 0.5 * h * k2);
        let k4 = f1 - (z + h * k3);
        self.z = z + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
        f1
    }
}

/// Fixed output map and R-peak offsets, from a noise-free run at the mean heart rate.
#[derive(Clone, Copy, Debug)]
struct Calibration {
    z_iso: f64,
    scale: f64,
    /// Angle of the maximum of z relative to the beat's R time, per beat class.
    peak_theta: [f64; 2],
    /// z at that maximum, per beat class.
    peak_z: [f64; 2],
}

/// Index and parabolic refinement of the maximum of `z[lo..hi]`, as a fractional index.
fn refined_argmax(z: &[f64], lo: usize, hi: usize) -> f64 {
    let mut best = lo;
    for i in lo..hi {
        if z[i] > z[best] {
            best = i;
        }
    }
    if best == 0 || best + 1 >= z.len() {
        return best as f64;
    }
    let (a, b, c) = (z[best - 1], z[best], z[best + 1]);
    let den = a - 2.0 * b + c;
    if den < 0.0 {
        best as f64 + 0.5 * (a - c) / den
    } else {
        best as f64
    }
}

impl Calibration {
    fn new(morph: &Morphology, rr: f64) -> Self {
        let w = TWO_PI / rr;
        let h = 1.0 / CAL_RATE;
        // Beats N N N N V N N; beat 3 gives the scale, beat 4 the V peak.
        let kinds = [
            Kind::Normal,
            Kind::Normal,
            Kind::Normal,
            Kind::Normal,
            Kind::Ventricular,
            Kind::Normal,
            Kind::Normal,
        ];
        let coupling = 0.5 * (COUPLING_MIN + COUPLING_MAX);
        let mut times = Vec::with_capacity(kinds.len());
        let mut t = rr;
        for (i, k) in kinds.iter().enumerate() {
            times.push(t);
            t += match (k, kinds.get(i + 1)) {
                (_, Some(Kind::Ventricular)) => coupling * rr,
                (Kind::Ventricular, _) => (2.0 - coupling) * rr,
                _ => rr,
            };
        }
        let mut core = Core::new(0.0);
        for (k, &tb) in kinds.iter().zip(&times) {
            core.push_beat(&morph.waves[k.index()], tb, w, w);
        }
        let t_end = times[kinds.len() - 1] + 0.5 * rr;
        let n = (t_end * CAL_RATE).ceil() as usize;
        let mut z = Vec::with_capacity(n + 1);
        let mut f = core.drive(0.0);
        for i in 0..n {
            z.push(core.z);
            f = core.step(i as f64 * h, h, f);
        }
        z.push(core.z);
        let idx = |t: f64| ((t * CAL_RATE).round().max(0.0) as usize).min(n);

        let t3 = times[3];
        let beat = &z[idx(t3 - 0.5 * rr)..idx(t3 + 0.5 * rr)];
        let zmax = beat.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let zmin = beat.iter().copied().fold(f64::INFINITY, f64::min);
        let p = morph.waves[0][0];
        let t_iso = (t3 + (p.theta - 3.0 * p.b) / w).max(t3 - 0.5 * rr);
        let z_iso = z[idx(t_iso)];

        let peak = |tb: f64, half_rad: f64| {
            let pk = refined_argmax(&z, idx(tb - half_rad / w), idx(tb + half_rad / w) + 1);
            ((pk / CAL_RATE - tb) * w, z[(pk.round() as usize).min(n)])
        };
        let (n_theta, n_z) = peak(t3, 0.3);
        let (v_theta, v_z) = peak(times[4], 0.6);
        Calibration {
            z_iso,
            scale: RANGE_MV / (zmax - zmin),
            peak_theta: [n_theta, v_theta],
            peak_z: [n_z, v_z],
        }
    }
}

/// The RR tachogram: mean plus random-phase sinusoids in the LF and HF bands, clamped.
#[derive(Clone, Debug)]
struct Tachogram {
    mean: f64,
    lo: f64,
    hi: f64,
    /// (angular frequency, phase, amplitude)
    sines: Vec<(f64, f64, f64)>,
}

impl Tachogram {
    fn new(config: &SyntheticConfig, rng: &mut SplitMix64) -> Self {
        let mean = 60.0 / config.heart_rate;
        let std = 60.0 * config.heart_rate_std / (config.heart_rate * config.heart_rate);
        let r = config.lf_hf_ratio;
        let var = std * std;
        let mut sines = Vec::with_capacity(2 * SINES_PER_BAND);
        for (centre, band_var) in [(LF_HZ, var * r / (1.0 + r)), (HF_HZ, var / (1.0 + r))] {
            if band_var <= 0.0 {
                continue;
            }
            let amp = (2.0 * band_var / SINES_PER_BAND as f64).sqrt();
            for _ in 0..SINES_PER_BAND {
                let f = (centre + BAND_STD_HZ * rng.normal()).abs();
                let phase = TWO_PI * rng.uniform();
                sines.push((TWO_PI * f, phase, amp));
            }
        }
        Tachogram {
            mean,
            lo: (mean - 5.0 * std).max(0.5 * mean).max(0.2),
            hi: (mean + 5.0 * std).min(2.0 * mean),
            sines,
        }
    }

    fn rr_at(&self, t: f64) -> f64 {
        let x: f64 = self.sines.iter().map(|&(w, p, a)| a * (w * t + p).sin()).sum();
        (self.mean + x).clamp(self.lo, self.hi)
    }
}

/// A unit sinusoid advanced by rotation, one sample per call.
#[derive(Clone, Debug)]
struct Phasor {
    c: f64,
    s: f64,
    dc: f64,
    ds: f64,
}

impl Phasor {
    fn new(hz: f64, fs: f64, phase: f64) -> Self {
        let d = TWO_PI * hz / fs;
        Phasor {
            c: phase.cos(),
            s: phase.sin(),
            dc: d.cos(),
            ds: d.sin(),
        }
    }

    #[inline]
    fn next(&mut self) -> f64 {
        let v = self.s;
        let c = self.c * self.dc - self.s * self.ds;
        let s = self.s * self.dc + self.c * self.ds;
        let g = 1.5 - 0.5 * (c * c + s * s);
        self.c = c * g;
        self.s = s * g;
        v
    }
}

/// Slow random baseline drift: AR(1) knots, linearly interpolated.
#[derive(Clone, Debug)]
struct Drift {
    rng: SplitMix64,
    knot_len: u32,
    inv_len: f64,
    pos: u32,
    a: f64,
    b: f64,
    rho: f64,
    innovation: f64,
}

impl Drift {
    fn new(std: f64, fs: f64, mut rng: SplitMix64) -> Self {
        let knot_len = (DRIFT_KNOT_S * fs).round().max(1.0) as u32;
        let dt = knot_len as f64 / fs;
        let rho = (-dt / DRIFT_TAU_S).exp();
        let innovation = std * (1.0 - rho * rho).sqrt();
        let a = std * rng.normal();
        let b = rho * a + innovation * rng.normal();
        Drift {
            rng,
            knot_len,
            inv_len: 1.0 / knot_len as f64,
            pos: 0,
            a,
            b,
            rho,
            innovation,
        }
    }

    #[inline]
    fn next(&mut self) -> f64 {
        if self.pos == self.knot_len {
            self.pos = 0;
            self.a = self.b;
            self.b = self.rho * self.b + self.innovation * self.rng.normal();
        }
        let v = self.a + (self.b - self.a) * (self.pos as f64 * self.inv_len);
        self.pos += 1;
        v
    }
}

/// Additive noise, one value per output sample.
#[derive(Clone, Debug)]
struct Noise {
    resp_mv: f64,
    resp: Phasor,
    drift: Option<Drift>,
    mains_mv: f64,
    mains: Phasor,
    muscle_mv: f64,
    muscle: SplitMix64,
}

impl Noise {
    #[inline]
    fn next(&mut self) -> f64 {
        let mut v = 0.0;
        if self.resp_mv > 0.0 {
            v += self.resp_mv * self.resp.next();
        }
        if let Some(d) = self.drift.as_mut() {
            v += d.next();
        }
        if self.mains_mv > 0.0 {
            v += self.mains_mv * self.mains.next();
        }
        if self.muscle_mv > 0.0 {
            v += self.muscle_mv * self.muscle.normal();
        }
        v
    }
}

/// A seed derived from `(a, b)`.
fn mix(a: u64, b: u64) -> u64 {
    let x = SplitMix64::new(a).next_u64();
    SplitMix64::new(x ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// One stream of synthetic ECG (see the [module documentation](self)): a chunked,
/// seeded, deterministic source of samples in mV with the true R peaks as annotations.
#[derive(Clone, Debug)]
pub struct SyntheticEcg {
    stream: String,
    fs: f64,
    total: u64,
    next: u64,
    substeps: u32,
    h: f64,
    /// Current internal step; its time is `step * h` (sample n is step `n * substeps`).
    step: i64,
    core: Core,
    /// Drive `F` at the current step's time.
    f_now: f64,
    morph: Morphology,
    cal: Calibration,
    tach: Tachogram,
    ectopic_probability: f64,
    ectopic_rng: SplitMix64,
    /// Beats are scheduled while `last_t - horizon <= t` (no later beat acts before).
    horizon: f64,
    last_t: f64,
    last_kind: Kind,
    last_rr: f64,
    last_coupling: f64,
    /// The last scheduled beat, whose R peak is located once the next beat (which may
    /// overlap it) is scheduled: (R time, class, ω before, ω after).
    unresolved: Option<(f64, Kind, f64, f64)>,
    /// True R peaks located but not yet emitted: (sample, class).
    pending: VecDeque<(u64, Kind)>,
    noise: Noise,
}

impl SyntheticEcg {
    /// The stream key of stream `index`: `syn000`, `syn001`, ...
    pub fn stream_name(index: usize) -> String {
        format!("syn{index:03}")
    }

    /// Stream `index` of a multi-stream source, keyed [`SyntheticEcg::stream_name`]`(index)`.
    /// Fails when the configuration does not [validate](SyntheticConfig::validate).
    pub fn new(config: &SyntheticConfig, index: usize) -> Result<Self, SyntheticError> {
        Self::with_substeps(config, index, None)
    }

    /// As [`SyntheticEcg::new`], with the number of RK4 steps per output sample forced
    /// (tests of the integration accuracy).
    fn with_substeps(config: &SyntheticConfig, index: usize, substeps: Option<u32>) -> Result<Self, SyntheticError> {
        config.validate()?;
        let fs = config.fs;
        let seed = mix(config.seed, index as u64);
        let rng = |purpose: u64| SplitMix64::new(mix(seed, purpose));

        let morph = Morphology::new(config.heart_rate);
        let tach = Tachogram::new(config, &mut rng(1));
        let cal = Calibration::new(&morph, tach.mean);
        let w_min = TWO_PI / tach.hi;
        let w_max = TWO_PI / tach.lo;
        // Internal step at most half the narrowest Gaussian width in time.
        let needed_rate = 2.0 * w_max / morph.min_width();
        let substeps = substeps.unwrap_or_else(|| (needed_rate / fs).ceil().clamp(1.0, 1e6) as u32);
        let h = 1.0 / (fs * substeps as f64);
        let horizon = morph.max_extent_before() / w_min + 2.0 / fs;

        // First beat at a random phase before the warm-up, as a normal beat.
        let warm_samples = (WARMUP_S * fs).ceil() as i64;
        let step = -warm_samples * substeps as i64;
        let t0 = step as f64 * h;
        let first_t = t0 + horizon + rng(3).uniform() * tach.mean;
        let first_rr = tach.rr_at(first_t);
        let mut core = Core::new(cal.z_iso);
        let w = TWO_PI / first_rr;
        core.push_beat(&morph.waves[0], first_t, w, w);

        let resp_phase = TWO_PI * rng(4).uniform();
        let mains_phase = TWO_PI * rng(5).uniform();
        let drift_std = DRIFT_REL_STD * config.baseline_wander_mv;
        let noise = Noise {
            resp_mv: config.baseline_wander_mv,
            resp: Phasor::new(RESP_HZ, fs, resp_phase),
            drift: (drift_std > 0.0).then(|| Drift::new(drift_std, fs, rng(6))),
            mains_mv: config.mains_mv,
            mains: Phasor::new(config.mains_hz, fs, mains_phase),
            muscle_mv: config.muscle_mv,
            muscle: rng(7),
        };

        let mut ecg = SyntheticEcg {
            stream: Self::stream_name(index),
            fs,
            total: config.total_samples(),
            next: 0,
            substeps,
            h,
            step,
            core,
            f_now: 0.0,
            morph,
            cal,
            tach,
            ectopic_probability: config.ectopic_probability,
            ectopic_rng: rng(2),
            horizon,
            last_t: first_t,
            last_kind: Kind::Normal,
            last_rr: first_rr,
            last_coupling: 1.0,
            unresolved: None,
            pending: VecDeque::new(),
            noise,
        };
        ecg.schedule_until(t0);
        ecg.f_now = ecg.core.drive(t0);
        while ecg.step < 0 {
            ecg.advance();
        }
        Ok(ecg)
    }

    /// Schedules beats until none scheduled later can act at or before `t`.
    #[inline]
    fn schedule_until(&mut self, t: f64) {
        while self.last_t - self.horizon <= t {
            self.schedule_next();
        }
    }

    fn schedule_next(&mut self) {
        let ectopic = self.ectopic_probability > 0.0 && self.ectopic_rng.uniform() < self.ectopic_probability;
        let (interval, coupling) = if ectopic {
            let c = COUPLING_MIN + (COUPLING_MAX - COUPLING_MIN) * self.ectopic_rng.uniform();
            (c * self.last_rr, c)
        } else if self.last_kind == Kind::Ventricular {
            ((2.0 - self.last_coupling) * self.last_rr, 1.0)
        } else {
            (self.last_rr, 1.0)
        };
        let kind = if ectopic { Kind::Ventricular } else { Kind::Normal };
        let t = self.last_t + interval;
        let rr = self.tach.rr_at(t);
        let w_pre = TWO_PI / self.last_rr;
        let w_post = TWO_PI / rr;
        self.core.push_beat(&self.morph.waves[kind.index()], t, w_pre, w_post);
        if let Some((tp, kp, wp, wq)) = self.unresolved.take() {
            let sample = (self.peak_time(tp, kp, wp, wq) * self.fs).round();
            if sample >= 0.0 && (sample as u64) < self.total {
                self.pending.push_back((sample as u64, kp));
            }
        }
        self.unresolved = Some((t, kind, w_pre, w_post));
        self.last_t = t;
        self.last_kind = kind;
        self.last_rr = rr;
        self.last_coupling = coupling;
    }

    /// Time of the maximum of z near the R of a beat: the root of dz/dt = F(t) - z, with z
    /// taken as the calibrated peak value, bracketed around the calibrated estimate and
    /// found by bisection with the events of the neighbouring beats present (so overlaps
    /// and RR changes are accounted for). Falls back to the calibrated estimate.
    fn peak_time(&self, t: f64, kind: Kind, w_pre: f64, w_post: f64) -> f64 {
        let k = kind.index();
        let pk = self.cal.peak_theta[k];
        let estimate = t + pk / if pk < 0.0 { w_pre } else { w_post };
        let z_peak = self.cal.peak_z[k];
        let slope = |x: f64| self.core.drive(x) - z_peak;
        let r_width = self.morph.waves[k].iter().find(|w| w.theta == 0.0).map_or(0.1, |w| w.b);
        let sigma = r_width / w_pre.max(w_post);
        for span in [0.25, 0.5, 1.0] {
            let (mut lo, mut hi) = (estimate - span * sigma, estimate + span * sigma);
            if slope(lo) > 0.0 && slope(hi) < 0.0 {
                while hi - lo > 1e-7 {
                    let mid = 0.5 * (lo + hi);
                    if slope(mid) > 0.0 {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                return 0.5 * (lo + hi);
            }
        }
        estimate
    }

    /// Advances the model by one internal step.
    #[inline]
    fn advance(&mut self) {
        let t = self.step as f64 * self.h;
        let t1 = t + self.h;
        if self.last_t - self.horizon <= t1 {
            self.schedule_until(t1);
        }
        self.core.expire(t);
        self.f_now = self.core.step(t, self.h, self.f_now);
        self.step += 1;
    }

    /// Next chunk of at most `n` samples of lead `ECG` in mV, starting where the previous
    /// one ended, with `annotations` = the true R peaks (`N` or `V`) inside the chunk.
    /// Returns `None` once `duration_s` has been produced (and an empty chunk for `n == 0`
    /// before that).
    pub fn next_chunk(&mut self, n: usize) -> Option<Chunk> {
        if self.next >= self.total {
            return None;
        }
        let len = (n as u64).min(self.total - self.next) as usize;
        let start = self.next;
        let mut samples = Vec::with_capacity(len);
        let (scale, z_iso) = (self.cal.scale, self.cal.z_iso);
        for _ in 0..len {
            let v = scale * (self.core.z - z_iso) + self.noise.next();
            samples.push(v as f32);
            for _ in 0..self.substeps {
                self.advance();
            }
        }
        self.next += len as u64;
        let end = self.next;
        let mut chunk = Chunk::new(
            self.stream.clone(),
            self.fs,
            start,
            vec![LEAD.to_string()],
            vec![samples],
        );
        while let Some(&(sample, kind)) = self.pending.front() {
            if sample >= end {
                break;
            }
            self.pending.pop_front();
            chunk.annotations.push(Annotation {
                sample,
                symbol: kind.symbol().to_string(),
            });
        }
        Some(chunk)
    }

    /// Samples this stream produces in all: `round(duration_s * fs)` (`u64::MAX` when
    /// unbounded).
    pub fn total_samples(&self) -> u64 {
        self.total
    }

    /// Absolute index of the next sample [`SyntheticEcg::next_chunk`] will produce.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The stream key, e.g. `syn000`.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Sampling rate in Hz.
    pub fn fs(&self) -> f64 {
        self.fs
    }

    /// RK4 steps per output sample.
    pub fn substeps(&self) -> u32 {
        self.substeps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(config: &SyntheticConfig, index: usize, chunk: usize) -> (Vec<f32>, Vec<Annotation>) {
        let mut g = SyntheticEcg::new(config, index).unwrap();
        let mut x = Vec::new();
        let mut ann = Vec::new();
        let mut expect_start = 0;
        while let Some(c) = g.next_chunk(chunk) {
            assert_eq!(c.start, expect_start);
            assert_eq!(c.leads, vec!["ECG".to_string()]);
            assert!(c.len() <= chunk);
            for a in &c.annotations {
                assert!(
                    a.sample >= c.start && a.sample < c.end(),
                    "{a:?} {} {}",
                    c.start,
                    c.end()
                );
            }
            expect_start = c.end();
            x.extend_from_slice(&c.samples[0]);
            ann.extend(c.annotations);
        }
        assert_eq!(x.len() as u64, g.total_samples());
        (x, ann)
    }

    fn quiet(config: SyntheticConfig) -> SyntheticConfig {
        SyntheticConfig {
            baseline_wander_mv: 0.0,
            mains_mv: 0.0,
            muscle_mv: 0.0,
            ..config
        }
    }

    /// Amplitude of the sinusoid at `hz` in `x` (single-bin DFT).
    fn amplitude_at(x: &[f32], fs: f64, hz: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let p = TWO_PI * hz * i as f64 / fs;
            re += v as f64 * p.cos();
            im += v as f64 * p.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    fn rr_intervals(ann: &[Annotation], fs: f64) -> Vec<f64> {
        ann.windows(2)
            .map(|w| (w[1].sample - w[0].sample) as f64 / fs)
            .collect()
    }

    #[test]
    fn defaults_validate_and_names() {
        let c = SyntheticConfig::default();
        c.validate().unwrap();
        assert_eq!(c.total_samples(), 21_600);
        assert_eq!(SyntheticEcg::stream_name(0), "syn000");
        assert_eq!(SyntheticEcg::stream_name(12), "syn012");
        assert_eq!(SyntheticEcg::stream_name(1234), "syn1234");
        let g = SyntheticEcg::new(&c, 3).unwrap();
        assert_eq!(g.stream(), "syn003");
        assert_eq!(g.total_samples(), 21_600);
        let inf = SyntheticConfig {
            duration_s: f64::INFINITY,
            ..c
        };
        inf.validate().unwrap();
        assert_eq!(inf.total_samples(), u64::MAX);
    }

    #[test]
    fn validation_names_the_field() {
        let d = SyntheticConfig::default();
        let cases: Vec<(SyntheticConfig, &str)> = vec![
            (SyntheticConfig { fs: 0.0, ..d.clone() }, "fs"),
            (SyntheticConfig { fs: -5.0, ..d.clone() }, "fs"),
            (
                SyntheticConfig {
                    fs: f64::NAN,
                    ..d.clone()
                },
                "fs",
            ),
            (
                SyntheticConfig {
                    heart_rate: 10.0,
                    ..d.clone()
                },
                "heart_rate",
            ),
            (
                SyntheticConfig {
                    heart_rate: 251.0,
                    ..d.clone()
                },
                "heart_rate",
            ),
            (
                SyntheticConfig {
                    heart_rate_std: -1.0,
                    ..d.clone()
                },
                "heart_rate_std",
            ),
            (
                SyntheticConfig {
                    heart_rate_std: 30.0,
                    ..d.clone()
                },
                "heart_rate_std",
            ),
            (
                SyntheticConfig {
                    lf_hf_ratio: -0.1,
                    ..d.clone()
                },
                "lf_hf_ratio",
            ),
            (
                SyntheticConfig {
                    duration_s: 0.0,
                    ..d.clone()
                },
                "duration_s",
            ),
            (
                SyntheticConfig {
                    baseline_wander_mv: -1.0,
                    ..d.clone()
                },
                "baseline_wander_mv",
            ),
            (
                SyntheticConfig {
                    mains_mv: f64::INFINITY,
                    ..d.clone()
                },
                "mains_mv",
            ),
            (
                SyntheticConfig {
                    muscle_mv: -0.1,
                    ..d.clone()
                },
                "muscle_mv",
            ),
            (
                SyntheticConfig {
                    mains_hz: 0.0,
                    ..d.clone()
                },
                "mains_hz",
            ),
            (
                SyntheticConfig {
                    mains_hz: 200.0,
                    mains_mv: 0.1,
                    ..d.clone()
                },
                "mains_hz",
            ),
            (
                SyntheticConfig {
                    ectopic_probability: 1.5,
                    ..d.clone()
                },
                "ectopic_probability",
            ),
            (
                SyntheticConfig {
                    ectopic_probability: -0.1,
                    ..d.clone()
                },
                "ectopic_probability",
            ),
        ];
        for (c, field) in cases {
            let err = c.validate().unwrap_err();
            let SyntheticError::InvalidParameter { field: f, .. } = &err;
            assert_eq!(*f, field, "{err}");
            let msg = err.to_string();
            assert!(msg.contains(field), "{msg}");
            assert!(SyntheticEcg::new(&c, 0).is_err());
        }
        let msg = SyntheticConfig { heart_rate: 300.0, ..d }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("heart_rate") && msg.contains("300"), "{msg}");
    }

    #[test]
    fn identical_whatever_the_chunk_size() {
        let config = SyntheticConfig {
            duration_s: 20.0,
            ectopic_probability: 0.1,
            mains_mv: 0.02,
            ..SyntheticConfig::default()
        };
        let (x, ann) = collect(&config, 2, usize::MAX);
        assert!(ann.len() > 15);
        for chunk in [1, 37, 1000] {
            let (y, bnn) = collect(&config, 2, chunk);
            assert!(x == y, "samples differ with chunk size {chunk}");
            assert_eq!(ann, bnn, "annotations differ with chunk size {chunk}");
        }
        // Same config, seed and index: same output.
        let (y, bnn) = collect(&config, 2, 500);
        assert!(x == y && ann == bnn);
    }

    #[test]
    fn streams_and_seeds_differ() {
        let config = SyntheticConfig {
            duration_s: 10.0,
            ..SyntheticConfig::default()
        };
        let (a, _) = collect(&config, 0, 4096);
        let (b, _) = collect(&config, 1, 4096);
        let (c, _) = collect(&SyntheticConfig { seed: 2, ..config }, 0, 4096);
        assert!(a != b && a != c && b != c);
    }

    #[test]
    fn r_peaks_are_where_the_signal_peaks() {
        for (hr, fs, p) in [
            (70.0, 360.0, 0.15),
            (45.0, 250.0, 0.1),
            (140.0, 500.0, 0.1),
            (230.0, 1000.0, 0.2),
        ] {
            let config = quiet(SyntheticConfig {
                heart_rate: hr,
                fs,
                heart_rate_std: 3.0,
                duration_s: 60.0,
                ectopic_probability: p,
                ..SyntheticConfig::default()
            });
            let (x, ann) = collect(&config, 0, 1000);
            assert!(ann.iter().any(|a| a.symbol == "V"));
            let half = (0.040 * fs).round() as usize;
            for a in &ann {
                let s = a.sample as usize;
                let lo = s.saturating_sub(half);
                let hi = (s + half + 1).min(x.len());
                let argmax = (lo..hi).fold(lo, |m, i| if x[i] > x[m] { i } else { m });
                let off = argmax as i64 - s as i64;
                assert!(
                    off.abs() <= 1,
                    "hr {hr} fs {fs}: {} peak at {s}, argmax at {argmax}",
                    a.symbol
                );
            }
            // R peaks are about 1.2 mV above a baseline near 0 mV.
            let normal: Vec<f64> = ann
                .iter()
                .filter(|a| a.symbol == "N")
                .map(|a| x[a.sample as usize] as f64)
                .collect();
            let mean_r = normal.iter().sum::<f64>() / normal.len() as f64;
            assert!(mean_r > 0.8 && mean_r < 1.5, "mean R amplitude {mean_r}");
            let mut sorted: Vec<f32> = x.clone();
            sorted.sort_by(f32::total_cmp);
            let median = sorted[sorted.len() / 2];
            // (At very high rates there is no isoelectric segment left.)
            assert!(hr > 150.0 || median.abs() < 0.15, "median {median}");
        }
    }

    #[test]
    fn mean_rr_matches_heart_rate() {
        for hr in [40.0, 70.0, 120.0, 200.0] {
            let config = quiet(SyntheticConfig {
                heart_rate: hr,
                heart_rate_std: 2.0,
                duration_s: 120.0,
                ..SyntheticConfig::default()
            });
            let (_, ann) = collect(&config, 1, 10_000);
            assert!(ann.iter().all(|a| a.symbol == "N"));
            let rr = rr_intervals(&ann, config.fs);
            let mean = rr.iter().sum::<f64>() / rr.len() as f64;
            let want = 60.0 / hr;
            assert!((mean - want).abs() < 0.03 * want, "hr {hr}: mean RR {mean} vs {want}");
            // Some variability, as configured (RR std ~ 60 hrstd / hr²).
            let var = rr.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rr.len() as f64;
            let want_std = 60.0 * 2.0 / (hr * hr);
            assert!(
                var.sqrt() > 0.3 * want_std && var.sqrt() < 2.5 * want_std + 1.5 / config.fs,
                "hr {hr}: RR std {} vs {want_std}",
                var.sqrt()
            );
        }
    }

    #[test]
    fn ectopic_beats_rate_and_timing() {
        let config = quiet(SyntheticConfig {
            duration_s: 600.0,
            ectopic_probability: 0.1,
            ..SyntheticConfig::default()
        });
        let (_, ann) = collect(&config, 0, 100_000);
        let v = ann.iter().filter(|a| a.symbol == "V").count();
        let frac = v as f64 / ann.len() as f64;
        assert!(frac > 0.07 && frac < 0.13, "V fraction {frac}");
        assert!(ann.iter().all(|a| a.symbol == "N" || a.symbol == "V"));
        let rr = 60.0 / config.heart_rate;
        let fs = config.fs;
        // Isolated V between normal beats: early, then a compensatory pause.
        let mut checked = 0;
        for w in ann.windows(3) {
            if w[0].symbol == "N" && w[1].symbol == "V" && w[2].symbol == "N" {
                let before = (w[1].sample - w[0].sample) as f64 / fs;
                let after = (w[2].sample - w[1].sample) as f64 / fs;
                assert!(before > 0.55 * rr && before < 0.75 * rr, "coupling {before}");
                assert!(after > 1.2 * rr, "pause {after}");
                assert!(((before + after) / rr - 2.0).abs() < 0.1, "{before} + {after}");
                checked += 1;
            }
        }
        assert!(checked > 30);
        // None when the probability is 0, all V when it is 1.
        let none = quiet(SyntheticConfig {
            duration_s: 60.0,
            ..SyntheticConfig::default()
        });
        assert!(collect(&none, 0, 5000).1.iter().all(|a| a.symbol == "N"));
        let all = SyntheticConfig {
            ectopic_probability: 1.0,
            ..none
        };
        let (_, ann) = collect(&all, 0, 5000);
        assert!(ann.len() > 50 && ann.iter().all(|a| a.symbol == "V"));
    }

    /// Noise only: the noisy output minus the clean output of the same seed.
    fn noise_only(config: &SyntheticConfig) -> Vec<f32> {
        let (noisy, _) = collect(config, 0, 4096);
        let (clean, _) = collect(&quiet(config.clone()), 0, 4096);
        noisy.iter().zip(&clean).map(|(a, b)| a - b).collect()
    }

    #[test]
    fn noise_amplitudes_as_configured() {
        let base = quiet(SyntheticConfig {
            duration_s: 120.0,
            ..SyntheticConfig::default()
        });
        let fs = base.fs;
        // Mains at 60 Hz: a sinusoid of the configured amplitude, nothing at 50 Hz.
        let mains = noise_only(&SyntheticConfig {
            mains_mv: 0.1,
            mains_hz: 60.0,
            ..base.clone()
        });
        let a60 = amplitude_at(&mains, fs, 60.0);
        assert!((a60 - 0.1).abs() < 0.002, "mains amplitude {a60}");
        assert!(amplitude_at(&mains, fs, 50.0) < 0.002);
        // The mains line stands out in the full signal too.
        let (full, _) = collect(
            &SyntheticConfig {
                mains_mv: 0.1,
                mains_hz: 60.0,
                ..base.clone()
            },
            0,
            4096,
        );
        assert!(amplitude_at(&full, fs, 60.0) > 5.0 * amplitude_at(&full, fs, 57.3));

        // Muscle: white, standard deviation as configured.
        let muscle = noise_only(&SyntheticConfig {
            muscle_mv: 0.05,
            ..base.clone()
        });
        let mean = muscle.iter().map(|&v| v as f64).sum::<f64>() / muscle.len() as f64;
        let sd = (muscle.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / muscle.len() as f64).sqrt();
        assert!((sd - 0.05).abs() < 0.002, "muscle sd {sd}");
        let lag1 = muscle.windows(2).map(|w| w[0] as f64 * w[1] as f64).sum::<f64>() / muscle.len() as f64;
        assert!(lag1.abs() < 0.05 * sd * sd, "muscle noise not white");

        // Baseline wander: respiratory sinusoid of the configured amplitude plus drift.
        let wander = noise_only(&SyntheticConfig {
            baseline_wander_mv: 0.2,
            ..base.clone()
        });
        let a_resp = amplitude_at(&wander, fs, RESP_HZ);
        assert!((a_resp - 0.2).abs() < 0.04, "respiration amplitude {a_resp}");
        let max = wander.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.15 && max < 0.8, "wander max {max}");
        // Slow: nothing left at 5 Hz.
        assert!(amplitude_at(&wander, fs, 5.0) < 0.005);
    }

    #[test]
    fn rk4_step_is_accurate() {
        let config = quiet(SyntheticConfig {
            duration_s: 10.0,
            heart_rate: 150.0,
            ..SyntheticConfig::default()
        });
        let mut coarse = SyntheticEcg::new(&config, 0).unwrap();
        let mut fine = SyntheticEcg::with_substeps(&config, 0, Some(16)).unwrap();
        assert!(coarse.substeps() < 16);
        let a = coarse.next_chunk(usize::MAX).unwrap();
        let b = fine.next_chunk(usize::MAX).unwrap();
        assert_eq!(a.annotations, b.annotations);
        let err = a.samples[0]
            .iter()
            .zip(&b.samples[0])
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err < 0.005, "max difference {err} mV");
    }

    #[test]
    fn empty_request_and_end() {
        let config = SyntheticConfig {
            duration_s: 1.0,
            ..SyntheticConfig::default()
        };
        let mut g = SyntheticEcg::new(&config, 0).unwrap();
        assert_eq!(g.next_chunk(0).unwrap().len(), 0);
        assert_eq!(g.next_chunk(300).unwrap().len(), 300);
        let last = g.next_chunk(300).unwrap();
        assert_eq!((last.start, last.len()), (300, 60));
        assert_eq!(g.position(), 360);
        assert!(g.next_chunk(300).is_none());
        assert!(g.next_chunk(0).is_none());
    }

    /// `cargo test --release -p ecgflow-operators synthetic_throughput -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn synthetic_throughput() {
        let config = SyntheticConfig {
            duration_s: 1e8 / 360.0,
            ectopic_probability: 0.05,
            mains_mv: 0.02,
            ..SyntheticConfig::default()
        };
        let mut g = SyntheticEcg::new(&config, 0).unwrap();
        let t = std::time::Instant::now();
        let mut n = 0usize;
        let mut sum = 0.0f64;
        while let Some(c) = g.next_chunk(65_536) {
            n += c.len();
            sum += c.samples[0][0] as f64;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{n} samples in {s:.2} s: {:.1} M samples/s (substeps {}, check {sum})",
            n as f64 / s / 1e6,
            g.substeps()
        );
    }
}
