//! One run of finite samples through the detector of a method: a single QRS detector
//! core, or the consensus of two (Pan-Tompkins and Hamilton-Tompkins) fed the same
//! samples.
//!
//! # Consensus rule
//! Each core reports its beats with the height of its integrated (MWI) peak. The beats
//! are merged in time order once neither core can still report a beat that would pair
//! with them (the cores' delay bound plus the pairing window):
//! - a Pan-Tompkins and a Hamilton-Tompkins beat at most [`AGREE_S`] apart are one
//!   **agreed** beat, kept at the Hamilton-Tompkins position;
//! - a beat only one core reports is kept when it is at least the 200 ms refractory
//!   period (Pan-Tompkins') after the last beat kept.
//!
//! So the consensus is the union of the two detectors without duplicates. It has no
//! parameter of its own: an earlier version also required a lone beat's integrated peak to
//! reach a fraction of the recent agreed beats', but every fraction that kept the figures
//! was low enough to reject almost nothing, so the rule was dropped rather than tuned.

use std::collections::VecDeque;

use crate::filter::Sos;

use super::qrs::{Qrs, Rules, Timing};

/// Two beats of the two cores at most this far apart are the same beat.
pub(super) const AGREE_S: f64 = 0.075;
/// No two beats kept closer than this.
const REFRACTORY_S: f64 = 0.200;

/// What a detector runs: its cores' rules and timings.
#[derive(Clone, Debug)]
pub(super) struct Setup {
    pub cores: Vec<(Rules, Timing)>,
    /// Pairing window and refractory period, samples (consensus only).
    agree: u64,
    refractory: u64,
}

impl Setup {
    pub fn new(rules: &[Rules], bandpass: &Sos, fs: f64) -> Self {
        Setup {
            cores: rules.iter().map(|r| (*r, Timing::new(r, bandpass, fs))).collect(),
            agree: (AGREE_S * fs).round() as u64,
            refractory: (REFRACTORY_S * fs).round() as u64,
        }
    }

    /// The delay bound: the longest core delay, plus the pairing window for a consensus.
    pub fn delay(&self) -> u64 {
        let core = self.cores.iter().map(|(_, t)| t.delay()).max().unwrap_or(0);
        if self.cores.len() > 1 {
            core + self.agree + 1
        } else {
            core
        }
    }
}

/// One run of finite samples.
#[derive(Clone, Debug)]
pub(super) struct Run {
    cores: Vec<Qrs>,
    /// Per core: beats reported and not yet merged, (sample, integrated peak).
    pending: Vec<VecDeque<(u64, f32)>>,
    /// Scratch output of a core.
    scratch: Vec<u64>,
    core_delay: u64,
    agree: u64,
    refractory: u64,
    last: Option<u64>,
}

impl Run {
    pub fn new(setup: &Setup, bandpass: &Sos, fs: f64, first: u64, x0: f32) -> Self {
        let cores: Vec<Qrs> = setup
            .cores
            .iter()
            .map(|(r, t)| Qrs::new(*r, bandpass, *t, fs, first, x0))
            .collect();
        let n = cores.len();
        Run {
            cores,
            pending: vec![VecDeque::new(); n],
            scratch: Vec::new(),
            core_delay: setup.cores.iter().map(|(_, t)| t.delay()).max().unwrap_or(0),
            agree: setup.agree,
            refractory: setup.refractory,
            last: None,
        }
    }

    /// Index of the next sample.
    pub fn next(&self) -> u64 {
        self.cores[0].next()
    }

    /// Processes finite samples; confirmed R peaks are appended to `out`.
    pub fn push_slice(&mut self, xs: &[f32], out: &mut Vec<u64>) {
        if self.cores.len() == 1 {
            self.cores[0].push_slice(xs, out);
            self.cores[0].peaks.clear();
            return;
        }
        self.run_cores(|core, scratch| core.push_slice(xs, scratch));
        // Every beat a core may still report lies after `next - 1 - core_delay`.
        let settled = self.next().saturating_sub(self.core_delay + 1);
        self.merge(Some(settled), out);
    }

    /// End of the run: every beat is settled.
    pub fn finish(&mut self, out: &mut Vec<u64>) {
        if self.cores.len() == 1 {
            self.cores[0].finish(out);
            self.cores[0].peaks.clear();
            return;
        }
        self.run_cores(|core, scratch| core.finish(scratch));
        self.merge(None, out);
    }

    fn run_cores(&mut self, mut f: impl FnMut(&mut Qrs, &mut Vec<u64>)) {
        for (core, pending) in self.cores.iter_mut().zip(&mut self.pending) {
            self.scratch.clear();
            f(core, &mut self.scratch);
            debug_assert_eq!(self.scratch.len(), core.peaks.len());
            pending.extend(self.scratch.iter().copied().zip(core.peaks.drain(..)));
        }
    }

    /// Merges the pending beats of the two cores (0: Pan-Tompkins, 1: Hamilton-Tompkins)
    /// that no later beat can pair with: those before `settled - agree` (all of them when
    /// `settled` is `None`).
    fn merge(&mut self, settled: Option<u64>, out: &mut Vec<u64>) {
        loop {
            let front = [self.pending[0].front().copied(), self.pending[1].front().copied()];
            let earliest = match front {
                [Some(a), Some(b)] => a.0.min(b.0),
                [Some(a), None] => a.0,
                [None, Some(b)] => b.0,
                [None, None] => return,
            };
            if settled.is_some_and(|s| earliest + self.agree >= s) {
                return;
            }
            match front {
                [Some(a), Some(b)] if a.0.abs_diff(b.0) <= self.agree => {
                    self.pending[0].pop_front();
                    self.pending[1].pop_front();
                    self.emit(b.0, out);
                }
                _ => {
                    let k = if front[0].is_some_and(|a| a.0 == earliest) {
                        0
                    } else {
                        1
                    };
                    let (at, _) = self.pending[k].pop_front().expect("front");
                    if self.last.is_none_or(|l| at >= l + self.refractory) {
                        self.emit(at, out);
                    }
                }
            }
        }
    }

    fn emit(&mut self, at: u64, out: &mut Vec<u64>) {
        if self.last.is_none_or(|l| at > l) {
            out.push(at);
            self.last = Some(at);
        }
    }
}
