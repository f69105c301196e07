//! Streaming R-peak detection and beat-by-beat scoring.
//!
//! [`RPeakDetector`] runs a QRS detector sample by sample, so the peaks found are the same
//! whatever the chunking of the stream, with a bounded, documented delay
//! ([`RPeakDetector::delay_samples`]). [`match_beats`] scores detections against reference
//! annotations as PhysioNet's `bxb` (ANSI/AAMI EC57) does.
//!
//! # Bad input
//! - **NaN or infinite samples** are a gap: the detector ends its current run there
//!   (reporting the peaks it holds, none at or after the gap), and at the next finite
//!   sample starts afresh: filters at rest on that sample's value, thresholds re-learnt
//!   over a new 2 s learning phase. Gap spans are reported by
//!   [`RPeakDetector::take_gaps`].
//! - **A chunk without the configured lead**, or a chunk that does not start where the
//!   previous one ended, never panics: the missing span is a gap, samples already seen
//!   are skipped, and the error is kept for [`RPeakDetector::take_errors`].
//! - **Flat line** (lead off): a constant signal has no slope, so no candidate and no
//!   peak; detection resumes with the signal.
//! - **Clipped signal**: saturated QRS complexes keep their slopes, and the peak is put
//!   on the clipped plateau.
//! - **Inverted QRS**: the features are rectified and the peak is refined to the largest
//!   deviation from the local mean, so polarity does not matter.
//! - **Sampling rates** from [`MIN_FS`] Hz up: all windows are in seconds.

mod consensus;
mod qrs;

use std::ops::Range;

use crate::filter::Sos;
use crate::types::Chunk;
use consensus::{Run, Setup};
use qrs::{Estimator, Rules};

/// R-peak detection method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RPeakMethod {
    /// Pan & Tompkins, "A real-time QRS detection algorithm", IEEE TBME 32(3), 1985:
    /// band-pass 5-15 Hz, derivative, squaring, 150 ms integration; thresholds on the
    /// integrated and the band-passed signal from exponential signal/noise levels,
    /// halved while the rhythm is irregular; search-back after 1.66 RR.
    PanTompkins,
    /// Hamilton & Tompkins, "Quantitative investigation of QRS detection rules using the
    /// MIT/BIH arrhythmia database", IEEE TBME 33(12), 1986: the Pan-Tompkins structure
    /// with the rules they found best: absolute value of the derivative integrated over
    /// 80 ms, signal and noise levels as the median of the last eight peaks, threshold
    /// at 0.3125 of the way from noise to signal, search-back after 1.5 RR.
    HamiltonTompkins,
    /// Consensus of [`RPeakMethod::PanTompkins`] and [`RPeakMethod::HamiltonTompkins`]
    /// run side by side on the same samples: a beat both report within 75 ms is kept (at
    /// the Hamilton-Tompkins position); a beat only one reports is kept if it is 200 ms
    /// or more after the last beat kept. Its delay is the longer of the two plus 75 ms
    /// (and one sample).
    Consensus,
}

impl RPeakMethod {
    /// Every method, in the order the evaluation reports them.
    pub const ALL: [RPeakMethod; 3] = [
        RPeakMethod::PanTompkins,
        RPeakMethod::HamiltonTompkins,
        RPeakMethod::Consensus,
    ];

    /// The method's name in pipeline files (`method = "..."`), snake_case.
    pub fn name(self) -> &'static str {
        match self {
            RPeakMethod::PanTompkins => "pan_tompkins",
            RPeakMethod::HamiltonTompkins => "hamilton_tompkins",
            RPeakMethod::Consensus => "consensus",
        }
    }

    /// The method called `name` (as [`RPeakMethod::name`] spells it), if any.
    pub fn from_name(name: &str) -> Option<RPeakMethod> {
        RPeakMethod::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The rules of the detector cores the method runs.
    fn cores(self) -> Vec<Rules> {
        match self {
            RPeakMethod::Consensus => vec![RPeakMethod::PanTompkins.rules(), RPeakMethod::HamiltonTompkins.rules()],
            m => vec![m.rules()],
        }
    }

    fn rules(self) -> Rules {
        match self {
            RPeakMethod::PanTompkins => Rules {
                band: (5.0, 15.0),
                squared: true,
                mwi_s: 0.150,
                filtered_threshold: true,
                estimator: Estimator::Ema,
                coefficient: 0.25,
                search_back_rr: 1.66,
                halve_irregular: true,
            },
            RPeakMethod::HamiltonTompkins | RPeakMethod::Consensus => Rules {
                band: (5.0, 15.0),
                squared: false,
                mwi_s: 0.080,
                filtered_threshold: false,
                estimator: Estimator::Median8,
                coefficient: 0.3125,
                search_back_rr: 1.5,
                halve_irregular: false,
            },
        }
    }
}

/// Why a detector could not be built, or what was wrong with its input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RPeakError {
    /// The sampling rate cannot carry the QRS band.
    #[error(
        "sampling rate fs = {0} Hz is not supported for R-peak detection: it must be finite and at least {MIN_FS} Hz"
    )]
    SampleRate(f64),
    /// A chunk did not carry the lead the detector reads; its span was treated as a gap.
    #[error("R-peak detector: lead {lead} requested but the chunk of stream {stream} at sample {start} has {leads} leads; its {len} samples are treated as a gap")]
    MissingLead {
        /// Stream key of the chunk.
        stream: String,
        /// The lead index the detector reads.
        lead: usize,
        /// How many leads the chunk had.
        leads: usize,
        /// The chunk's first sample.
        start: u64,
        /// The chunk's length.
        len: usize,
    },
    /// A chunk did not start where the previous one ended: a later start is a gap, an
    /// earlier one has its already-seen samples skipped.
    #[error("R-peak detector: stream {stream} expected a chunk starting at sample {expected}, got {start}")]
    Discontinuity {
        /// Stream key of the chunk.
        stream: String,
        /// Where the chunk should have started.
        expected: u64,
        /// Where it started.
        start: u64,
    },
}

/// Lowest sampling rate accepted, in Hz.
pub const MIN_FS: f64 = 50.0;

/// Streaming R-peak detector over one lead of a stream.
///
/// The single-detector methods follow Pan & Tompkins (1985) (the consensus runs two of
/// them, see [`RPeakMethod::Consensus`]): band-pass 5-15 Hz (Butterworth order 2,
/// causal), five-point derivative, rectification, moving-window integration (MWI); local
/// maxima of the MWI signal that are the largest within 200 ms on each side are
/// candidates. A candidate is a QRS when it exceeds the threshold between the signal and
/// noise levels (see [`RPeakMethod`] for each method's levels and thresholds) and is
/// neither within the 200 ms refractory period nor a T wave: within 360 ms of the
/// previous QRS with less than half its largest slope. Thresholds start from a 2 s
/// learning phase (signal level a third of the maximum, noise level half the mean). When
/// no QRS is found for the method's multiple of RR average 2 (capped at 2.5 s), the
/// largest candidate since the last QRS above half the threshold is taken (search-back).
/// RR average 2 is the mean of the last eight RR intervals within 92-116 % of it.
///
/// Each QRS is reported at the R wave of the input signal within ±75 ms of the
/// band-passed peak, corrected for the band-pass group delay: the top of the earliest
/// wave whose deviation from the local mean reaches 0.7 of the largest there (the
/// largest deviation alone put wide ventricular and paced complexes on their deep S
/// wave). See the [module documentation](self) for bad input.
#[derive(Clone, Debug)]
pub struct RPeakDetector {
    lead: usize,
    fs: f64,
    setup: Setup,
    bandpass: Sos,
    /// The run of finite samples in progress; `None` before the first sample and in gaps.
    run: Option<Run>,
    /// Index of the next sample expected; `None` before the first chunk.
    next: Option<u64>,
    /// Start of the gap in progress, and the gaps closed and not yet taken.
    gap_from: Option<u64>,
    gaps: Vec<Range<u64>>,
    errors: Vec<RPeakError>,
    /// Peaks confirmed and not yet reported.
    out: Vec<u64>,
    /// Stream identity, for the end-of-stream chunk.
    template: Option<Chunk>,
}

impl RPeakDetector {
    /// A detector for lead index `lead` of a stream sampled at `fs` Hz.
    pub fn new(method: RPeakMethod, fs: f64, lead: usize) -> Result<Self, RPeakError> {
        if !(fs.is_finite() && fs >= MIN_FS) {
            return Err(RPeakError::SampleRate(fs));
        }
        let cores = method.cores();
        // The cores of a consensus share the band.
        let bandpass = qrs::bandpass(&cores[0], fs).ok_or(RPeakError::SampleRate(fs))?;
        let setup = Setup::new(&cores, &bandpass, fs);
        Ok(RPeakDetector {
            lead,
            fs,
            setup,
            bandpass,
            run: None,
            next: None,
            gap_from: None,
            gaps: Vec::new(),
            errors: Vec::new(),
            out: Vec::new(),
            template: None,
        })
    }

    /// The detector's delay bound D in samples: a peak at sample `t` is reported, at the
    /// latest, in the output of the chunk that contains sample `t + D` (or at
    /// [`RPeakDetector::finish`]). It is the 2.5 s search-back limit plus the integration
    /// window, the band-pass group delay, the 75 ms refinement half-width and the
    /// derivative's 2 samples: about 2.8 s (995 samples at 360 Hz for Pan-Tompkins).
    pub fn delay_samples(&self) -> u64 {
        self.setup.delay()
    }

    /// Runs the detector over the chunk's lead and returns the chunk itself with `rpeaks`
    /// set to the peaks newly confirmed while processing it (absolute sample indices,
    /// ascending, each reported once; they may lie before `chunk.start` because of the
    /// delay). Chunks should follow each other without gaps; see the
    /// [module documentation](self) for what happens otherwise. Never panics: a chunk
    /// without the lead is treated as a gap and the error is kept for
    /// [`RPeakDetector::take_errors`].
    pub fn process(&mut self, mut chunk: Chunk) -> Vec<Chunk> {
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
        if !chunk.is_empty() {
            template.start = chunk.end();
            let expected = *self.next.get_or_insert(chunk.start);
            if chunk.start != expected {
                self.errors.push(RPeakError::Discontinuity {
                    stream: chunk.stream.clone(),
                    expected,
                    start: chunk.start,
                });
            }
            if chunk.start > expected {
                self.begin_gap(expected);
            }
            match chunk.samples.get(self.lead) {
                Some(signal) => {
                    let skip = (expected.saturating_sub(chunk.start) as usize).min(signal.len());
                    let from = chunk.start + skip as u64;
                    self.push_signal(&signal[skip..], from);
                }
                None => {
                    self.errors.push(RPeakError::MissingLead {
                        stream: chunk.stream.clone(),
                        lead: self.lead,
                        leads: chunk.samples.len(),
                        start: chunk.start,
                        len: chunk.len(),
                    });
                    self.begin_gap(expected.max(chunk.start));
                }
            }
            self.next = Some(chunk.end().max(expected));
        }
        chunk.rpeaks = std::mem::take(&mut self.out);
        vec![chunk]
    }

    /// End of stream: returns an empty chunk (start = end of stream, no samples, same
    /// stream, rate and leads) carrying the peaks not yet reported, if any chunk came.
    /// The stream's tail is flushed by holding its last value long enough for the last
    /// QRS to be classified; no peak at or past the end of the stream is reported. A gap
    /// still open is closed at the end of the stream.
    pub fn finish(&mut self) -> Vec<Chunk> {
        let Some(mut end) = self.template.take() else {
            return Vec::new();
        };
        let stream_end = self.next.unwrap_or(end.start);
        self.begin_gap(stream_end);
        if let Some(from) = self.gap_from.take() {
            if from < stream_end {
                self.gaps.push(from..stream_end);
            }
        }
        end.start = stream_end;
        end.rpeaks = std::mem::take(&mut self.out);
        vec![end]
    }

    /// The gaps (runs of NaN or infinite samples, missing leads or missing chunks) that
    /// have ended since the last call, as half-open sample ranges in stream order. A gap
    /// still in progress is reported once it ends (or at [`RPeakDetector::finish`]).
    pub fn take_gaps(&mut self) -> Vec<Range<u64>> {
        std::mem::take(&mut self.gaps)
    }

    /// The input errors met since the last call (missing lead, discontinuous chunks).
    pub fn take_errors(&mut self) -> Vec<RPeakError> {
        std::mem::take(&mut self.errors)
    }

    /// Feeds samples `from, from + 1, ...`: runs of finite samples go to the detector
    /// run, anything else is a gap.
    fn push_signal(&mut self, mut signal: &[f32], mut from: u64) {
        while !signal.is_empty() {
            // One pass to find the finite run, so that the hot loop has no check.
            let finite = signal.iter().position(|v| !v.is_finite()).unwrap_or(signal.len());
            if finite > 0 {
                let run = match &mut self.run {
                    Some(run) => run,
                    None => {
                        if let Some(gap) = self.gap_from.take() {
                            if gap < from {
                                self.gaps.push(gap..from);
                            }
                        }
                        let run = Run::new(&self.setup, &self.bandpass, self.fs, from, signal[0]);
                        self.run.insert(run)
                    }
                };
                run.push_slice(&signal[..finite], &mut self.out);
            }
            let bad = signal[finite..]
                .iter()
                .position(|v| v.is_finite())
                .unwrap_or(signal.len() - finite);
            if bad > 0 {
                self.begin_gap(from + finite as u64);
            }
            signal = &signal[finite + bad..];
            from += (finite + bad) as u64;
        }
    }

    /// A gap starts at sample `at` (no-op if one is in progress): the run in progress
    /// ends there and reports its remaining peaks.
    fn begin_gap(&mut self, at: u64) {
        if let Some(mut run) = self.run.take() {
            debug_assert_eq!(run.next(), at);
            run.finish(&mut self.out);
        }
        if self.gap_from.is_none() {
            self.gap_from = Some(at);
        }
    }
}

/// Detects R peaks over a whole single-lead signal sampled at `fs` Hz (absolute sample
/// indices, ascending). NaN or infinite samples are gaps, as in [`RPeakDetector`].
pub fn detect(method: RPeakMethod, signal: &[f32], fs: f64) -> Result<Vec<u64>, RPeakError> {
    let mut detector = RPeakDetector::new(method, fs, 0)?;
    detector.push_signal(signal, 0);
    detector.next = Some(signal.len() as u64);
    detector.template = Some(Chunk::new("signal", fs, 0, vec!["signal".into()], vec![Vec::new()]));
    let mut peaks = std::mem::take(&mut detector.out);
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
        let better_ref = reference.get(i + 1).is_some_and(|&r2| r2.abs_diff(d) < dist);
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
