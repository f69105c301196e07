//! The QRS detector core shared by the methods: one uninterrupted run of finite samples,
//! from its first sample to its end. The public [`super::RPeakDetector`] starts a new core
//! after every gap.
//!
//! Both methods have the same structure (Pan & Tompkins 1985, Hamilton & Tompkins 1986):
//! band-pass, five-point derivative, rectification, moving-window integration (MWI), peak
//! picking with a 200 ms refractory period, adaptive thresholds between a signal and a
//! noise level, T-wave discrimination and search-back. They differ in the [`Rules`].

use crate::filter::{Band, Sos};

/// How a signal or noise level follows the peaks classified as such.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Estimator {
    /// Pan-Tompkins: `level = 0.125 peak + 0.875 level` (`0.25`/`0.75` in search-back).
    Ema,
    /// Hamilton-Tompkins: the median of the last eight peaks.
    Median8,
}

/// What distinguishes one method from another.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rules {
    /// Pass band of the first stage, Hz (Butterworth order 2, causal).
    pub band: (f64, f64),
    /// Rectify the derivative by squaring (PT) rather than by its absolute value.
    pub squared: bool,
    /// Moving-window integration length, s.
    pub mwi_s: f64,
    /// Also require the band-passed peak to exceed its own threshold (PT's second
    /// signal).
    pub filtered_threshold: bool,
    /// Signal and noise level estimator.
    pub estimator: Estimator,
    /// Detection threshold = noise + `coefficient` (signal - noise).
    pub coefficient: f64,
    /// Search back after this many times the mean RR interval without a QRS.
    pub search_back_rr: f64,
    /// Halve the thresholds while the rhythm is irregular (PT).
    pub halve_irregular: bool,
}

// Parameters common to the methods, in seconds.
/// Refractory period: no two QRS complexes closer than this; also the half-width of the
/// neighbourhood over which an MWI peak must be the maximum.
const REFRACTORY_S: f64 = 0.200;
/// A candidate closer than this to the previous QRS may be a T wave.
const T_WAVE_S: f64 = 0.360;
/// Learning phase at the start of a run, where thresholds are initialised.
pub(super) const LEARNING_S: f64 = 2.0;
/// Search-back is triggered after at most this long without a QRS and only considers
/// candidates at most this old. This bounds the detector's delay.
const MAX_RR_S: f64 = 2.5;
/// Half-width of the window where a peak is refined to the R-wave extremum.
const REFINE_S: f64 = 0.075;
/// A peak is refined to the earliest wave of the refinement window whose deviation from
/// the window's mean reaches this fraction of the largest deviation there. Taking the
/// largest deviation alone put wide ventricular and paced complexes on the deep wave
/// after the R wave, more than 150 ms from the reference (MIT-BIH 213, 104).
const REFINE_FIRST: f32 = 0.7;

/// A local maximum of the MWI signal, with what the rules need to classify it.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// Sample index of the MWI peak.
    at: u64,
    /// Height of the MWI peak (PEAKI).
    peak_i: f32,
    /// Largest magnitude of the band-passed signal in the QRS window (PEAKF).
    peak_f: f32,
    /// Largest magnitude of the derivative in the QRS window (for T-wave discrimination).
    slope: f32,
    /// The refined R-peak position in the input signal.
    r: u64,
}

/// A signal or noise level.
#[derive(Clone, Debug, Default)]
struct Level {
    value: f32,
    /// The last eight peaks, oldest first (median estimator only).
    recent: Vec<f32>,
}

impl Level {
    fn new(value: f32) -> Self {
        Level {
            value,
            recent: vec![value],
        }
    }

    fn update(&mut self, peak: f32, estimator: Estimator, search_back: bool) {
        match estimator {
            Estimator::Ema => {
                let w = if search_back { 0.25 } else { 0.125 };
                self.value = w * peak + (1.0 - w) * self.value;
            }
            Estimator::Median8 => {
                if self.recent.len() == 8 {
                    self.recent.remove(0);
                }
                self.recent.push(peak);
                let mut sorted = [0.0f32; 8];
                let sorted = &mut sorted[..self.recent.len()];
                sorted.copy_from_slice(&self.recent);
                sorted.sort_unstable_by(f32::total_cmp);
                let m = sorted.len();
                self.value = if m % 2 == 1 {
                    sorted[m / 2]
                } else {
                    0.5 * (sorted[m / 2 - 1] + sorted[m / 2])
                };
            }
        }
    }
}

/// Signal and noise levels of one feature, and the threshold between them.
#[derive(Clone, Debug, Default)]
struct Levels {
    signal: Level,
    noise: Level,
}

impl Levels {
    fn threshold(&self, coefficient: f64) -> f32 {
        let (s, n) = (self.signal.value, self.noise.value);
        n + coefficient as f32 * (s - n)
    }
}

/// Sample counts derived from the rules and the sampling rate.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timing {
    mwi_len: u64,
    refractory: u64,
    t_wave: u64,
    learning: u64,
    max_rr: u64,
    refine: u64,
    bp_delay: u64,
    /// Samples kept behind the newest one: the longest look-back of a candidate.
    history: usize,
    /// Zero samples placed before a run's first sample, so that the derivative and the
    /// integration window read the filters' rest (0) there without a branch.
    lead_in: usize,
}

impl Timing {
    pub fn new(rules: &Rules, bandpass: &Sos, fs: f64) -> Self {
        let samples = |s: f64| ((s * fs).round() as u64).max(1);
        let bp_delay = bandpass.group_delay(10.0, fs).round().max(0.0) as u64;
        let (mwi_len, refractory, refine) = (samples(rules.mwi_s), samples(REFRACTORY_S), samples(REFINE_S));
        Timing {
            mwi_len,
            refractory,
            t_wave: samples(T_WAVE_S),
            learning: samples(LEARNING_S),
            max_rr: samples(MAX_RR_S),
            refine,
            bp_delay,
            history: (2 * refractory + mwi_len + bp_delay + 2 * refine + 8) as usize,
            lead_in: mwi_len as usize + 4,
        }
    }

    /// The delay bound: a QRS at sample `t` is confirmed once sample `t + delay` is in.
    /// Search-back limit, integration window, band-pass delay, refinement half-width
    /// and the derivative's two samples.
    pub fn delay(&self) -> u64 {
        self.max_rr + self.mwi_len + 2 + self.bp_delay + self.refine
    }

    /// Samples pushed past the end of a run so that its last QRS is classified.
    fn flush(&self) -> u64 {
        2 * self.refractory + self.mwi_len + self.bp_delay + self.refine + 4
    }
}

/// Samples filtered per block before the detection logic walks over them: long enough to
/// amortise the per-block work, short enough to stay in L1 cache.
const BLOCK: usize = 1024;

/// The detector over one run of finite samples.
///
/// Samples are processed in blocks, in two stages. First a tight loop runs the
/// band-pass, derivative, rectification and integration over the block, with the filter
/// state in registers, appending to the traces. Then the detection logic walks over the
/// block only at the samples where something can happen (a local maximum of the MWI
/// signal, the end of learning, search-back), in the same order as a sample-by-sample
/// loop would, so the peaks do not depend on how the stream is cut into chunks.
#[derive(Clone, Debug)]
pub(super) struct Qrs {
    rules: Rules,
    t: Timing,
    fs: f32,
    bp_state: Biquads,
    /// The input, band-passed, derivative and MWI traces: `buf[pos(n)]` is sample `n`.
    /// They hold the last `history` samples at least, after `lead_in` rest samples
    /// before the run's first sample.
    x: Vec<f32>,
    bp: Vec<f32>,
    deriv: Vec<f32>,
    mwi: Vec<f32>,
    /// `base - lead_in` is the sample index of the traces' position 0 (kept shifted by
    /// `lead_in` so that it never goes below 0).
    base: u64,
    mwi_sum: f64,
    /// Index of the first sample of the run, and of the next sample.
    first: u64,
    n: u64,
    /// While flushing past the end of the run: the index of its end.
    run_end: Option<u64>,
    /// Local maxima of the MWI signal found in the current block (reused buffer).
    maxima: Vec<u64>,
    /// Learning phase: running statistics, and candidates waiting for thresholds.
    learned: bool,
    max_i: f32,
    sum_i: f64,
    max_f: f32,
    sum_f: f64,
    waiting: Vec<Candidate>,
    level_i: Levels,
    level_f: Levels,
    /// The last QRS, candidates since classified as noise (for search-back), and the
    /// sample at which search-back is next due.
    last_qrs: Option<Candidate>,
    noise: Vec<Candidate>,
    search_deadline: u64,
    search_at: u64,
    rr_recent: Vec<u64>,
    rr_regular: Vec<u64>,
    last_r: Option<u64>,
    /// The integrated (MWI) peak of each QRS reported, in the order of the peaks
    /// appended to `out`; drained by the owner.
    pub peaks: Vec<f32>,
}

impl Qrs {
    /// A run starting at absolute sample `first` with value `x0` (the filter starts in
    /// its steady state for `x0`, so a baseline offset gives no transient).
    pub fn new(rules: Rules, bandpass: &Sos, t: Timing, fs: f64, first: u64, x0: f32) -> Self {
        let trace = |fill: f32| {
            let mut v = Vec::with_capacity(t.lead_in + t.history + BLOCK);
            v.resize(t.lead_in, fill);
            v
        };
        Qrs {
            rules,
            t,
            fs: fs as f32,
            bp_state: Biquads::steady(bandpass, x0),
            x: trace(x0),
            bp: trace(0.0),
            deriv: trace(0.0),
            mwi: trace(0.0),
            base: first,
            mwi_sum: 0.0,
            first,
            n: first,
            run_end: None,
            maxima: Vec::new(),
            learned: false,
            max_i: 0.0,
            sum_i: 0.0,
            max_f: 0.0,
            sum_f: 0.0,
            waiting: Vec::new(),
            level_i: Levels::default(),
            level_f: Levels::default(),
            last_qrs: None,
            noise: Vec::new(),
            search_deadline: first + t.max_rr,
            search_at: first + t.max_rr,
            rr_recent: Vec::new(),
            rr_regular: Vec::new(),
            last_r: None,
            peaks: Vec::new(),
        }
    }

    /// Index of the next sample.
    pub fn next(&self) -> u64 {
        self.n
    }

    /// Position of sample `n` in the traces.
    #[inline(always)]
    fn pos(&self, n: u64) -> usize {
        (n + self.t.lead_in as u64 - self.base) as usize
    }

    /// Processes finite samples; confirmed R peaks are appended to `out`.
    pub fn push_slice(&mut self, mut xs: &[f32], out: &mut Vec<u64>) {
        while !xs.is_empty() {
            let len = xs.len().min(BLOCK);
            self.make_room(len);
            let n0 = self.n;
            if self.rules.squared {
                self.filter_block::<true>(&xs[..len]);
            } else {
                self.filter_block::<false>(&xs[..len]);
            }
            self.detect_block(n0, n0 + len as u64, out);
            xs = &xs[len..];
        }
    }

    /// End of the run at the next sample: holds the last value long enough for the last
    /// QRS to be classified; no peak at or past the end is reported.
    pub fn finish(&mut self, out: &mut Vec<u64>) {
        let end = self.n;
        if end == self.first {
            return;
        }
        let last = self.x[self.pos(end - 1)];
        self.run_end = Some(end);
        self.push_slice(&vec![last; self.t.flush() as usize], out);
        if !self.learned {
            self.end_learning(out);
        }
    }

    /// Drops the oldest samples of the traces, keeping `history`, if `len` more would
    /// not fit in their capacity (so the traces never reallocate).
    fn make_room(&mut self, len: usize) {
        let used = self.x.len();
        if used + len <= self.x.capacity() {
            return;
        }
        let drop = used - self.t.history;
        for v in [&mut self.x, &mut self.bp, &mut self.deriv, &mut self.mwi] {
            v.copy_within(drop.., 0);
            v.truncate(used - drop);
        }
        self.base += drop as u64;
    }

    /// Stage 1 over a block: band-pass, five-point derivative (PT), rectification
    /// (squared or absolute value) and moving-window integration, appended to the traces.
    fn filter_block<const SQUARED: bool>(&mut self, xs: &[f32]) {
        let rect = |d: f32| if SQUARED { d * d } else { d.abs() };
        let l = self.t.mwi_len as usize;
        // A multiplication rather than a division: the division was most of the loop.
        let inv_len = 1.0 / self.t.mwi_len as f64;
        let k = self.fs / 8.0;
        let mut bq = self.bp_state;
        let mut sum = self.mwi_sum;
        // The last four band-passed samples (the lead-in reads as the filter's rest, 0).
        let p = self.bp.len();
        let (mut b1, mut b2, mut b3, mut b4) = (self.bp[p - 1], self.bp[p - 2], self.bp[p - 3], self.bp[p - 4]);
        self.x.extend_from_slice(xs);
        // Sub-blocks of at most the integration length, so that the derivative leaving
        // the window is already in the trace and the loop can run over plain slices.
        for xs in xs.chunks(l) {
            let p = self.bp.len();
            self.bp.resize(p + xs.len(), 0.0);
            self.deriv.resize(p + xs.len(), 0.0);
            self.mwi.resize(p + xs.len(), 0.0);
            let (past, new) = self.deriv.split_at_mut(p);
            let leaving = &past[p - l..p - l + xs.len()];
            let samples = xs
                .iter()
                .zip(leaving)
                .zip(&mut self.bp[p..])
                .zip(new)
                .zip(&mut self.mwi[p..]);
            for ((((&x, &old), bp_out), d_out), mwi_out) in samples {
                let bp = bq.step(x);
                let d = (2.0 * bp + b1 - b3 - 2.0 * b4) * k;
                (b4, b3, b2, b1) = (b3, b2, b1, bp);
                // The running sum is kept in f64 so that it does not drift over hours.
                sum += rect(d) as f64 - rect(old) as f64;
                *bp_out = bp;
                *d_out = d;
                *mwi_out = (sum.max(0.0) * inv_len) as f32;
            }
        }
        self.bp_state = bq;
        self.mwi_sum = sum;
    }

    /// Stage 2 over samples `n0..n1`, already filtered: the learning statistics, then the
    /// candidates, end of learning and search-back at the samples where they fall, in
    /// the order a sample-by-sample loop takes them (at sample `n`: the candidate centred
    /// `refractory` samples back, then the end of learning, then search-back).
    fn detect_block(&mut self, n0: u64, n1: u64, out: &mut Vec<u64>) {
        let learn_end = self.first + self.t.learning - 1;
        if !self.learned && n0 <= learn_end {
            let (a, b) = (self.pos(n0), self.pos(n1.min(learn_end + 1)));
            for (&mwi, &bp) in self.mwi[a..b].iter().zip(&self.bp[a..b]) {
                self.max_i = self.max_i.max(mwi);
                self.sum_i += mwi as f64;
                self.max_f = self.max_f.max(bp.abs());
                self.sum_f += bp.abs() as f64;
            }
        }
        // A candidate is centred `refractory` samples back from the sample where it is
        // examined, once its neighbourhood is in; most samples are not local maxima.
        let refractory = self.t.refractory;
        let c0 = n0.saturating_sub(refractory).max(self.first + 1);
        let c1 = n1.saturating_sub(refractory);
        self.maxima.clear();
        if c0 < c1 {
            let (a, b) = (self.pos(c0), self.pos(c1));
            for (c, w) in (c0..).zip(self.mwi[a - 1..b + 1].windows(3)) {
                if w[1] > 0.0 && w[1] > w[0] && w[1] >= w[2] {
                    self.maxima.push(c);
                }
            }
        }
        let mut next_max = 0;
        let mut n = n0;
        while n < n1 {
            let due = if self.learned { self.search_at } else { learn_end };
            let candidate = self.maxima.get(next_max).map_or(u64::MAX, |&c| c + refractory);
            n = n.max(candidate.min(due));
            if n >= n1 {
                break;
            }
            self.n = n + 1;
            if candidate == n {
                next_max += 1;
                if let Some(c) = self.candidate_at(n - refractory) {
                    if self.learned {
                        self.classify(c, out);
                    } else {
                        self.waiting.push(c);
                    }
                }
            }
            if !self.learned && n >= learn_end {
                self.end_learning(out);
            }
            if self.learned && n >= self.search_at {
                self.search_back(out);
            }
            n += 1;
        }
        self.n = n1;
    }

    /// The candidate centred at sample `c`, a local maximum of the MWI signal, if it is
    /// higher than the `refractory` samples before and at least as high as those after
    /// (all known).
    fn candidate_at(&self, c: u64) -> Option<Candidate> {
        let now = self.n - 1;
        let first = self.first;
        let pos = |n: u64| self.pos(n);
        let v = self.mwi[pos(c)];
        let before = c.saturating_sub(self.t.refractory).max(first);
        // Nearest samples first: a small ripple is rejected after a few reads.
        let higher_after = self.mwi[pos(c) + 1..=pos(now)].iter().any(|&m| m > v);
        if higher_after || self.mwi[pos(before)..pos(c)].iter().rev().any(|&m| m >= v) {
            return None;
        }
        // QRS window of the MWI peak: the integration window and the derivative's two
        // samples of delay.
        let from = c.saturating_sub(self.t.mwi_len + 2).max(first);
        let slope_from = (c + 1).saturating_sub(self.t.mwi_len).max(first);
        let slope = self.deriv[pos(slope_from)..=pos(c)]
            .iter()
            .map(|d| d.abs())
            .fold(0.0, f32::max);
        let (mut pf, mut peak_f) = (c, 0.0);
        for (j, b) in (from..).zip(&self.bp[pos(from)..=pos(c)]) {
            if b.abs() > peak_f {
                (pf, peak_f) = (j, b.abs());
            }
        }
        // Refine to the input's extremum (largest deviation from the local mean) around
        // the band-passed peak less the band-pass delay: the R wave whatever its
        // polarity.
        let centre = pf.saturating_sub(self.t.bp_delay).max(first);
        let last = self.run_end.map_or(now, |e| e - 1);
        let lo = centre.saturating_sub(self.t.refine).max(first).min(last);
        let hi = (centre + self.t.refine).min(last);
        let xs = &self.x[pos(lo)..=pos(hi)];
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let mut r = 0;
        for (j, x) in xs.iter().enumerate() {
            if (x - mean).abs() > (xs[r] - mean).abs() {
                r = j;
            }
        }
        // The earliest wave that reaches REFINE_FIRST of the largest deviation, at its
        // top (the largest deviation of its lobe, where the deviation keeps its sign and
        // half that level, so that noise on the flank does not stop the climb): the R
        // wave rather than the deep S wave that follows it in ventricular and paced
        // beats.
        let floor = REFINE_FIRST * (xs[r] - mean).abs();
        if let Some(j) = xs.iter().position(|x| (x - mean).abs() >= floor) {
            let sign = (xs[j] - mean).signum();
            r = j;
            for (k, x) in xs.iter().enumerate().skip(j) {
                let d = (x - mean) * sign;
                if d < 0.5 * floor {
                    break;
                }
                if d > (xs[r] - mean) * sign {
                    r = k;
                }
            }
        }
        Some(Candidate {
            at: c,
            peak_i: v,
            peak_f,
            slope,
            r: lo + r as u64,
        })
    }

    /// Initialises the levels from the learning phase (signal a third of the maximum,
    /// noise half the mean) and classifies the candidates that waited for them.
    fn end_learning(&mut self, out: &mut Vec<u64>) {
        let count = (self.n - self.first).max(1) as f64;
        self.level_i = Levels {
            signal: Level::new(self.max_i / 3.0),
            noise: Level::new((self.sum_i / count / 2.0) as f32),
        };
        self.level_f = Levels {
            signal: Level::new(self.max_f / 3.0),
            noise: Level::new((self.sum_f / count / 2.0) as f32),
        };
        self.learned = true;
        for c in std::mem::take(&mut self.waiting) {
            self.classify(c, out);
        }
        self.schedule_search_back();
    }

    /// The decision for a new candidate.
    fn classify(&mut self, c: Candidate, out: &mut Vec<u64>) {
        let since_last = self.last_qrs.map(|q| (c.at.saturating_sub(q.at), q.slope));
        let refractory = since_last.is_some_and(|(dt, _)| dt < self.t.refractory);
        let t_wave = since_last.is_some_and(|(dt, slope)| dt < self.t.t_wave && c.slope < 0.5 * slope);
        // PT: with an irregular rhythm the thresholds are halved for sensitivity.
        let k = if self.rules.halve_irregular && self.irregular() {
            0.5
        } else {
            1.0
        };
        let coefficient = self.rules.coefficient;
        let above = c.peak_i > k * self.level_i.threshold(coefficient)
            && (!self.rules.filtered_threshold || c.peak_f > k * self.level_f.threshold(coefficient));
        let estimator = self.rules.estimator;
        if above && !refractory && !t_wave {
            self.level_i.signal.update(c.peak_i, estimator, false);
            self.level_f.signal.update(c.peak_f, estimator, false);
            self.accept(c, out);
        } else {
            self.level_i.noise.update(c.peak_i, estimator, false);
            self.level_f.noise.update(c.peak_f, estimator, false);
            if !refractory {
                self.noise.push(c);
                // A search-back that found nothing looks again with this candidate.
                self.search_at = self.search_at.min(self.search_deadline.max(self.n));
            }
        }
    }

    /// When search-back is next due: `search_back_rr` × RR average 2 (at most the
    /// look-back limit) after the last QRS, then again with each new noise candidate.
    fn schedule_search_back(&mut self) {
        let limit = match mean(&self.rr_regular) {
            Some(rr) => ((self.rules.search_back_rr * rr) as u64).min(self.t.max_rr),
            None => self.t.max_rr,
        };
        let since = self.last_qrs.map_or(self.first, |q| q.at);
        self.search_deadline = since + limit + 1;
        self.search_at = self.search_deadline.max(self.n);
    }

    /// Search-back: after too long without a QRS, the largest noise candidate above half
    /// the thresholds since the last QRS is taken as one.
    fn search_back(&mut self, out: &mut Vec<u64>) {
        let now = self.n - 1;
        // Candidates older than the look-back limit can no longer be reported in time.
        let oldest = now.saturating_sub(self.t.max_rr);
        self.noise.retain(|c| c.at >= oldest);
        let coefficient = self.rules.coefficient;
        let ti = 0.5 * self.level_i.threshold(coefficient);
        let tf = 0.5 * self.level_f.threshold(coefficient);
        let best = self
            .noise
            .iter()
            .filter(|c| c.peak_i > ti && (!self.rules.filtered_threshold || c.peak_f > tf))
            .max_by(|a, b| a.peak_i.total_cmp(&b.peak_i))
            .copied();
        match best {
            Some(c) => {
                let estimator = self.rules.estimator;
                self.level_i.signal.update(c.peak_i, estimator, true);
                self.level_f.signal.update(c.peak_f, estimator, true);
                self.accept(c, out);
            }
            None => {
                // Nothing to take: look again when a new noise candidate comes.
                self.search_at = u64::MAX;
            }
        }
    }

    /// PT's irregular heart rate: some of the last eight RR intervals lie outside
    /// 92-116 % of RR average 2.
    fn irregular(&self) -> bool {
        match mean(&self.rr_regular) {
            Some(avg) => self
                .rr_recent
                .iter()
                .any(|&rr| !(0.92 * avg..=1.16 * avg).contains(&(rr as f64))),
            None => false,
        }
    }

    /// Records a QRS: RR averages, report of its refined peak.
    fn accept(&mut self, c: Candidate, out: &mut Vec<u64>) {
        if let Some(q) = self.last_qrs {
            let rr = c.at.saturating_sub(q.at);
            push_last8(&mut self.rr_recent, rr);
            let regular = match mean(&self.rr_regular) {
                Some(avg) => (0.92 * avg..=1.16 * avg).contains(&(rr as f64)),
                None => true,
            };
            if regular {
                push_last8(&mut self.rr_regular, rr);
            } else if self.rr_regular.len() < 8 {
                // Until eight regular intervals are known, follow the recent rhythm
                // (PT: RR average 2 starts from RR average 1).
                self.rr_regular = self.rr_recent.clone();
            }
        }
        self.last_qrs = Some(c);
        self.noise.retain(|n| n.at > c.at);
        self.schedule_search_back();
        if self.last_r.is_none_or(|r| c.r > r) {
            out.push(c.r);
            self.peaks.push(c.peak_i);
            self.last_r = Some(c.r);
        }
    }
}

fn push_last8(v: &mut Vec<u64>, x: u64) {
    if v.len() == 8 {
        v.remove(0);
    }
    v.push(x);
}

fn mean(v: &[u64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<u64>() as f64 / v.len() as f64)
}

/// The band-pass as two second-order sections in f32, in direct form I: the
/// coefficients come from [`Sos`] in f64; f32 arithmetic is ample for a 5-15 Hz band at
/// the rates accepted and is what makes the hot loop fast. Direct form I is used because
/// its loop-carried dependency is one multiply and one subtraction per section (the
/// transposed form chains an add, a multiply and two more adds), which bounds the
/// samples per second a single core can filter.
#[derive(Clone, Copy, Debug)]
struct Biquads {
    /// Per section: b0, b1, b2, a1, a2 (a0 = 1).
    s: [[f32; 5]; 2],
    /// Per section: the last two inputs and outputs, x1, x2, y1, y2.
    z: [[f32; 4]; 2],
}

impl Biquads {
    /// Steady state for a constant input `x0`.
    fn steady(sos: &Sos, x0: f32) -> Self {
        let sections = sos.sections();
        assert_eq!(sections.len(), 2, "an order-2 band-pass has two sections");
        let mut b = Biquads {
            s: [[0.0; 5]; 2],
            z: [[0.0; 4]; 2],
        };
        let mut input = x0 as f64;
        for (k, c) in sections.iter().enumerate() {
            // Normalised so that a0 = 1, as scipy's sections are.
            let n = [c[0], c[1], c[2], c[4], c[5]].map(|v| v / c[3]);
            b.s[k] = n.map(|v| v as f32);
            let output = input * (n[0] + n[1] + n[2]) / (1.0 + n[3] + n[4]);
            b.z[k] = [input as f32, input as f32, output as f32, output as f32];
            input = output;
        }
        b
    }

    #[inline(always)]
    fn step(&mut self, x: f32) -> f32 {
        let mut cur = x;
        for (s, z) in self.s.iter().zip(self.z.iter_mut()) {
            let [x1, x2, y1, y2] = *z;
            // The term with y1, the only one on the loop-carried path, comes last.
            let y = (s[0] * cur + s[1] * x1 + s[2] * x2 - s[4] * y2) - s[3] * y1;
            *z = [cur, x1, y, y1];
            cur = y;
        }
        cur
    }
}

/// The band-pass of the rules at `fs`.
pub(super) fn bandpass(rules: &Rules, fs: f64) -> Option<Sos> {
    Sos::butterworth(2, Band::Bandpass(rules.band.0, rules.band.1), fs).ok()
}
