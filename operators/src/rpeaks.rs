//! Streaming R-peak detection and beat-by-beat scoring.
//!
//! [`RPeakDetector`] runs the Pan-Tompkins (1985) QRS detector sample by sample, so the
//! peaks found are the same whatever the chunking of the stream, with a bounded, documented
//! delay ([`RPeakDetector::delay_samples`]). [`match_beats`] scores detections against
//! reference annotations as PhysioNet's `bxb` (ANSI/AAMI EC57) does.

use crate::filter::{Band, Sos, SosState};
use crate::types::Chunk;

/// R-peak detection method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RPeakMethod {
    /// Pan & Tompkins, "A real-time QRS detection algorithm", IEEE TBME 32(3), 1985.
    PanTompkins,
}

/// Why a detector could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RPeakError {
    /// The sampling rate cannot carry the 5-15 Hz QRS band.
    #[error("sampling rate fs = {0} Hz is not supported for R-peak detection: it must be finite and at least {MIN_FS} Hz")]
    SampleRate(f64),
}

/// Lowest sampling rate accepted, in Hz.
pub const MIN_FS: f64 = 50.0;

// Pan-Tompkins parameters, in seconds unless stated.
/// QRS pass band of the first stage, Hz (Butterworth order 2, causal).
const BAND_HZ: (f64, f64) = (5.0, 15.0);
/// Moving-window integration length.
const MWI_S: f64 = 0.150;
/// Refractory period: no two QRS complexes closer than this; also the half-width of the
/// neighbourhood over which an integrated-signal peak must be the maximum.
const REFRACTORY_S: f64 = 0.200;
/// A candidate closer than this to the previous QRS may be a T wave.
const T_WAVE_S: f64 = 0.360;
/// Learning phase at the start of the stream, where thresholds are initialised.
const LEARNING_S: f64 = 2.0;
/// Search-back looks back at most this far: it is triggered after
/// `min(1.66 × RR average 2, MAX_RR_S)` without a QRS and only considers candidates
/// at most this old. This bounds the detector's delay.
const MAX_RR_S: f64 = 2.5;
/// Search-back factor on RR average 2.
const SEARCH_BACK_RR: f64 = 1.66;
/// Half-width of the window where a peak is refined to the R-wave extremum.
const REFINE_S: f64 = 0.075;

/// A local maximum of the integrated signal, with what PT needs to classify it.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// Sample index of the integrated-signal peak.
    at: u64,
    /// Height of the integrated-signal peak (PEAKI).
    peak_i: f64,
    /// Largest magnitude of the band-passed signal in the QRS window (PEAKF).
    peak_f: f64,
    /// Largest magnitude of the derivative in the QRS window (for T-wave discrimination).
    slope: f64,
    /// The refined R-peak position in the input signal.
    r: u64,
}

/// Signal and noise levels and the thresholds derived from them (one set for the
/// integrated signal, one for the band-passed signal).
#[derive(Clone, Copy, Debug, Default)]
struct Levels {
    signal: f64,
    noise: f64,
}

impl Levels {
    /// THRESHOLD1 = NPK + 0.25 (SPK - NPK).
    fn threshold1(&self) -> f64 {
        self.noise + 0.25 * (self.signal - self.noise)
    }
    /// THRESHOLD2 = 0.5 THRESHOLD1, for search-back.
    fn threshold2(&self) -> f64 {
        0.5 * self.threshold1()
    }
}

/// A fixed-size ring of the latest samples of one intermediate signal, indexed by absolute
/// sample index; indices before the stream start read as 0.
#[derive(Clone, Debug)]
struct History {
    buf: Vec<f64>,
    mask: usize,
}

impl History {
    fn new(len: usize) -> Self {
        let n = len.next_power_of_two();
        History {
            buf: vec![0.0; n],
            mask: n - 1,
        }
    }
    fn set(&mut self, i: u64, v: f64) {
        self.buf[i as usize & self.mask] = v;
    }
    fn at(&self, i: i64) -> f64 {
        if i < 0 {
            0.0
        } else {
            self.buf[i as usize & self.mask]
        }
    }
}

/// Streaming R-peak detector over one lead of a stream.
///
/// Pan-Tompkins as published: band-pass 5-15 Hz, five-point derivative, squaring,
/// 150 ms moving-window integration; local maxima of the integrated signal at least
/// 200 ms apart are candidates; a candidate is a QRS when it exceeds THRESHOLD I1 on the
/// integrated signal and THRESHOLD F1 on the band-passed one, with signal/noise levels
/// updated as `0.125 peak + 0.875 level` (`0.25/0.75` for search-back). Thresholds start
/// from a 2 s learning phase (signal level a third of the maximum, noise level half the
/// mean). A candidate within 360 ms of the previous QRS whose largest slope is below half
/// that of the previous QRS is a T wave. When no QRS is found for 1.66 × RR average 2
/// (capped at 2.5 s), the largest candidate since the last QRS above the lower thresholds
/// (THRESHOLD2 = THRESHOLD1 / 2) is taken. RR average 2 is the mean of the last eight RR
/// intervals within 92-116 % of it.
///
/// Each QRS is reported at the extremum (largest absolute deviation from the local mean)
/// of the input signal within ±75 ms of the band-passed peak, corrected for the
/// band-pass group delay.
#[derive(Clone, Debug)]
pub struct RPeakDetector {
    fs: f64,
    lead: usize,
    bandpass: Sos,
    bp_state: Option<SosState>,
    /// Samples: window lengths and delays.
    mwi_len: u64,
    refractory: u64,
    t_wave: u64,
    learning: u64,
    max_rr: u64,
    refine: u64,
    bp_delay: u64,
    /// Histories of the input, band-passed, derivative and integrated signals.
    x: History,
    bp: History,
    deriv: History,
    mwi: History,
    mwi_sum: f64,
    /// Index of the first sample of the stream, and of the next sample.
    first: u64,
    n: u64,
    /// Learning phase: running statistics, and candidates waiting for thresholds.
    learned: bool,
    max_i: f64,
    sum_i: f64,
    max_f: f64,
    sum_f: f64,
    waiting: Vec<Candidate>,
    level_i: Levels,
    level_f: Levels,
    /// The last QRS, candidates since classified as noise (for search-back), and whether
    /// search-back has already looked at them.
    last_qrs: Option<Candidate>,
    noise: Vec<Candidate>,
    searched: bool,
    rr_recent: Vec<u64>,
    rr_regular: Vec<u64>,
    /// Peaks confirmed and not yet reported, and the last peak reported.
    out: Vec<u64>,
    last_r: Option<u64>,
    /// Stream identity, for the end-of-stream chunk.
    template: Option<Chunk>,
}

impl RPeakDetector {
    /// A detector for lead index `lead` of a stream sampled at `fs` Hz.
    pub fn new(method: RPeakMethod, fs: f64, lead: usize) -> Result<Self, RPeakError> {
        let RPeakMethod::PanTompkins = method;
        if !(fs.is_finite() && fs >= MIN_FS) {
            return Err(RPeakError::SampleRate(fs));
        }
        let bandpass = Sos::butterworth(2, Band::Bandpass(BAND_HZ.0, BAND_HZ.1), fs)
            .map_err(|_| RPeakError::SampleRate(fs))?;
        let samples = |s: f64| ((s * fs).round() as u64).max(1);
        let bp_delay = bandpass.group_delay(10.0, fs).round().max(0.0) as u64;
        let (mwi_len, refractory, refine) =
            (samples(MWI_S), samples(REFRACTORY_S), samples(REFINE_S));
        let history = (2 * refractory + mwi_len + bp_delay + 2 * refine + 8) as usize;
        Ok(RPeakDetector {
            fs,
            lead,
            bandpass,
            bp_state: None,
            mwi_len,
            refractory,
            t_wave: samples(T_WAVE_S),
            learning: samples(LEARNING_S),
            max_rr: samples(MAX_RR_S),
            refine,
            bp_delay,
            x: History::new(history),
            bp: History::new(history),
            deriv: History::new(history),
            mwi: History::new(history),
            mwi_sum: 0.0,
            first: 0,
            n: 0,
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
            searched: false,
            rr_recent: Vec::new(),
            rr_regular: Vec::new(),
            out: Vec::new(),
            last_r: None,
            template: None,
        })
    }

    /// The detector's delay bound D in samples: a peak at sample `t` is reported, at the
    /// latest, in the output of the chunk that contains sample `t + D` (or at
    /// [`RPeakDetector::finish`]). It is the 2.5 s search-back limit plus the 150 ms
    /// integration window, the band-pass group delay, the 75 ms refinement half-width and
    /// the derivative's 2 samples: about 2.8 s (995 samples at 360 Hz).
    pub fn delay_samples(&self) -> u64 {
        self.max_rr + self.mwi_len + 2 + self.bp_delay + self.refine
    }

    /// Runs the detector over the chunk's lead and returns the chunk itself with `rpeaks`
    /// set to the peaks newly confirmed while processing it (absolute sample indices,
    /// ascending, each reported once; they may lie before `chunk.start` because of the
    /// delay). Chunks must follow each other without gaps.
    ///
    /// # Panics
    /// If the chunk has samples but no lead `lead`.
    pub fn process(&mut self, mut chunk: Chunk) -> Vec<Chunk> {
        if !chunk.is_empty() {
            let signal = chunk.samples.get(self.lead).unwrap_or_else(|| {
                panic!(
                    "R-peak detector: lead {} requested but the chunk of stream {} has {} leads",
                    self.lead,
                    chunk.stream,
                    chunk.samples.len()
                )
            });
            if self.n == self.first {
                // No sample yet: the stream starts here.
                (self.first, self.n) = (chunk.start, chunk.start);
            }
            for &v in signal {
                self.push(v as f64, None);
            }
        }
        let template = self.template.get_or_insert_with(|| Chunk {
            annotations: Vec::new(),
            rpeaks: Vec::new(),
            ..Chunk::new(
                chunk.stream.clone(),
                chunk.fs,
                0,
                chunk.leads.clone(),
                vec![Vec::new(); chunk.samples.len()],
            )
        });
        template.start = chunk.end();
        chunk.rpeaks = std::mem::take(&mut self.out);
        vec![chunk]
    }

    /// End of stream: returns an empty chunk (start = end of stream, no samples, same
    /// stream, rate and leads) carrying the peaks not yet reported, if any chunk came.
    /// The stream's tail is flushed by holding its last value long enough for the last
    /// QRS to be classified; no peak at or past the end of the stream is reported.
    pub fn finish(&mut self) -> Vec<Chunk> {
        let Some(mut end) = self.template.take() else {
            return Vec::new();
        };
        let stream_end = self.n;
        let last = self.x.at(stream_end as i64 - 1);
        let flush = 2 * self.refractory + self.mwi_len + self.bp_delay + self.refine + 4;
        for _ in 0..flush {
            self.push(last, Some(stream_end));
        }
        if !self.learned {
            self.end_learning();
        }
        end.start = stream_end;
        end.rpeaks = std::mem::take(&mut self.out);
        vec![end]
    }

    /// Processes one input sample; `stream_end` is set while flushing past the end.
    fn push(&mut self, x: f64, stream_end: Option<u64>) {
        let n = self.n;
        let i = n as i64;
        let bandpass = &self.bandpass;
        let bp = self
            .bp_state
            .get_or_insert_with(|| SosState::steady(bandpass, x))
            .step(x);
        self.x.set(n, x);
        self.bp.set(n, bp);
        let d = (2.0 * bp + self.bp.at(i - 1) - self.bp.at(i - 3) - 2.0 * self.bp.at(i - 4))
            * self.fs
            / 8.0;
        self.deriv.set(n, d);
        self.mwi_sum += d * d - self.deriv.at(i - self.mwi_len as i64).powi(2);
        let mwi = self.mwi_sum.max(0.0) / self.mwi_len as f64;
        self.mwi.set(n, mwi);
        self.n += 1;

        if !self.learned {
            self.max_i = self.max_i.max(mwi);
            self.sum_i += mwi;
            self.max_f = self.max_f.max(bp.abs());
            self.sum_f += bp.abs();
        }
        if let Some(c) = self.candidate_at(i - self.refractory as i64, stream_end) {
            if self.learned {
                self.classify(c);
            } else {
                self.waiting.push(c);
            }
        }
        if !self.learned && self.n - self.first >= self.learning {
            self.end_learning();
        }
        if self.learned {
            self.search_back();
        }
    }

    /// The candidate centred at sample `c`, if the integrated signal peaks there: higher
    /// than the `refractory` samples before, at least as high as those after (all known
    /// now), and positive.
    fn candidate_at(&self, c: i64, stream_end: Option<u64>) -> Option<Candidate> {
        let now = self.n as i64 - 1;
        let first = self.first as i64;
        if c < first {
            return None;
        }
        let v = self.mwi.at(c);
        if v <= 0.0 || v <= self.mwi.at(c - 1) || v < self.mwi.at(c + 1) {
            return None;
        }
        let r = self.refractory as i64;
        let higher_before = ((c - r).max(first)..c).any(|j| self.mwi.at(j) >= v);
        let higher_after = (c + 1..=now).any(|j| self.mwi.at(j) > v);
        if higher_before || higher_after {
            return None;
        }
        // QRS window of the integrated peak: the integration window and the derivative's
        // two samples of delay.
        let from = (c - self.mwi_len as i64 - 2).max(first);
        let slope = (c - self.mwi_len as i64 + 1).max(first)..=c;
        let slope = slope.map(|j| self.deriv.at(j).abs()).fold(0.0, f64::max);
        let (mut pf, mut peak_f) = (c, 0.0);
        for j in from..=c {
            if self.bp.at(j).abs() > peak_f {
                (pf, peak_f) = (j, self.bp.at(j).abs());
            }
        }
        // Refine to the input's extremum around the band-passed peak, less its delay.
        let centre = (pf - self.bp_delay as i64).max(first);
        let last = stream_end.map_or(now, |e| e as i64 - 1);
        let lo = (centre - self.refine as i64).max(first).min(last);
        let hi = (centre + self.refine as i64).min(last);
        let mean = (lo..=hi).map(|j| self.x.at(j)).sum::<f64>() / (hi - lo + 1) as f64;
        let mut r = lo;
        for j in lo..=hi {
            if (self.x.at(j) - mean).abs() > (self.x.at(r) - mean).abs() {
                r = j;
            }
        }
        Some(Candidate {
            at: c as u64,
            peak_i: v,
            peak_f,
            slope,
            r: r as u64,
        })
    }

    /// Initialises the levels from the learning phase and classifies the candidates that
    /// waited for them.
    fn end_learning(&mut self) {
        let count = (self.n - self.first).max(1) as f64;
        self.level_i = Levels {
            signal: self.max_i / 3.0,
            noise: self.sum_i / count / 2.0,
        };
        self.level_f = Levels {
            signal: self.max_f / 3.0,
            noise: self.sum_f / count / 2.0,
        };
        self.learned = true;
        for c in std::mem::take(&mut self.waiting) {
            self.classify(c);
        }
    }

    /// Pan-Tompkins decision for a new candidate.
    fn classify(&mut self, c: Candidate) {
        let since_last = self.last_qrs.map(|q| (c.at.saturating_sub(q.at), q.slope));
        let refractory = since_last.is_some_and(|(dt, _)| dt < self.refractory);
        let t_wave =
            since_last.is_some_and(|(dt, slope)| dt < self.t_wave && c.slope < 0.5 * slope);
        let is_qrs = c.peak_i > self.level_i.threshold1()
            && c.peak_f > self.level_f.threshold1()
            && !refractory
            && !t_wave;
        if is_qrs {
            update(&mut self.level_i.signal, c.peak_i, 0.125);
            update(&mut self.level_f.signal, c.peak_f, 0.125);
            self.accept(c);
        } else {
            update(&mut self.level_i.noise, c.peak_i, 0.125);
            update(&mut self.level_f.noise, c.peak_f, 0.125);
            if !refractory {
                self.noise.push(c);
                self.searched = false;
            }
        }
    }

    /// Search-back: after too long without a QRS, the largest noise candidate above the
    /// lower thresholds since the last QRS is taken as one.
    fn search_back(&mut self) {
        let now = self.n - 1;
        // Candidates older than the look-back limit can no longer be reported in time.
        let oldest = now.saturating_sub(self.max_rr);
        self.noise.retain(|c| c.at >= oldest);
        let since = self.last_qrs.map_or(self.first, |q| q.at);
        let limit = match mean(&self.rr_regular) {
            Some(rr) => ((SEARCH_BACK_RR * rr) as u64).min(self.max_rr),
            None => self.max_rr,
        };
        if self.searched || now - since.min(now) <= limit {
            return;
        }
        self.searched = true;
        let (ti, tf) = (self.level_i.threshold2(), self.level_f.threshold2());
        let best = self
            .noise
            .iter()
            .filter(|c| c.peak_i > ti && c.peak_f > tf)
            .max_by(|a, b| a.peak_i.total_cmp(&b.peak_i))
            .copied();
        if let Some(c) = best {
            update(&mut self.level_i.signal, c.peak_i, 0.25);
            update(&mut self.level_f.signal, c.peak_f, 0.25);
            self.accept(c);
        }
    }

    /// Records a QRS: RR averages, report of its refined peak.
    fn accept(&mut self, c: Candidate) {
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
        self.searched = false;
        if self.last_r.is_none_or(|r| c.r > r) {
            self.out.push(c.r);
            self.last_r = Some(c.r);
        }
    }
}

fn update(level: &mut f64, peak: f64, weight: f64) {
    *level = weight * peak + (1.0 - weight) * *level;
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

/// Detects R peaks over a whole single-lead signal sampled at `fs` Hz (absolute sample
/// indices, ascending).
pub fn detect(method: RPeakMethod, signal: &[f32], fs: f64) -> Result<Vec<u64>, RPeakError> {
    let mut detector = RPeakDetector::new(method, fs, 0)?;
    let chunk = Chunk::new(
        "signal",
        fs,
        0,
        vec!["signal".into()],
        vec![signal.to_vec()],
    );
    let mut peaks: Vec<u64> = detector.process(chunk).remove(0).rpeaks;
    peaks.extend(detector.finish().into_iter().flat_map(|c| c.rpeaks));
    Ok(peaks)
}

/// Beat-by-beat comparison counts (ANSI/AAMI EC57).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatchCounts {
    /// Detected beats matched to a reference beat.
    pub tp: u64,
    /// Detected beats with no reference beat.
    pub fp: u64,
    /// Reference beats with no detected beat.
    pub fn_: u64,
}

impl MatchCounts {
    /// Sensitivity Se = TP / (TP + FN); NaN when there is no reference beat.
    pub fn sensitivity(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_) as f64
    }

    /// Positive predictivity +P = TP / (TP + FP); NaN when nothing was detected.
    pub fn positive_predictivity(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp) as f64
    }

    /// F1 = 2 TP / (2 TP + FP + FN); NaN when there are neither reference nor detected
    /// beats.
    pub fn f1(&self) -> f64 {
        2.0 * self.tp as f64 / (2 * self.tp + self.fp + self.fn_) as f64
    }
}

impl std::ops::AddAssign for MatchCounts {
    /// Adds up per-record counts into gross counts.
    fn add_assign(&mut self, o: MatchCounts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
}

/// Matches detected beats to reference beats one-to-one, in time order, as `bxb` does:
/// of the next reference and next detected beat, the earlier one is paired with the
/// other if they are at most `tolerance` samples apart and the later one's own successor
/// is not closer to it; otherwise the earlier one is unmatched. Both inputs must be
/// ascending. EC57 uses a 150 ms tolerance.
pub fn match_beats(reference: &[u64], detected: &[u64], tolerance: u64) -> MatchCounts {
    let mut counts = MatchCounts::default();
    let (mut i, mut j) = (0, 0);
    while i < reference.len() && j < detected.len() {
        let (r, d) = (reference[i], detected[j]);
        let dist = r.abs_diff(d);
        let better_ref = reference
            .get(i + 1)
            .is_some_and(|&r2| r2.abs_diff(d) < dist);
        let better_det = detected.get(j + 1).is_some_and(|&d2| d2.abs_diff(r) < dist);
        if dist <= tolerance && !(r <= d && better_ref) && !(d < r && better_det) {
            counts.tp += 1;
            i += 1;
            j += 1;
        } else if r <= d {
            counts.fn_ += 1;
            i += 1;
        } else {
            counts.fp += 1;
            j += 1;
        }
    }
    counts.fn_ += (reference.len() - i) as u64;
    counts.fp += (detected.len() - j) as u64;
    counts
}
