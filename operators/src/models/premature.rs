//! The premature-beat rule: a beat that the network calls normal (N) but that comes early
//! in an otherwise regular rhythm is called supraventricular (S).
//!
//! That is the textbook supraventricular premature beat: normal morphology, early. The
//! network sees the beat's timing as three numbers next to a pooled picture of the beat,
//! and across patients it learns their rhythms rather than prematurity (an early beat in
//! atrial fibrillation is N). The rule reads the timing directly, and the rhythm's
//! irregularity keeps it quiet in atrial fibrillation. Its two thresholds are chosen on the
//! validation part when the model is trained ([`super::decision`]) and kept in the model card.

use serde::{Deserialize, Serialize};

use crate::types::Beat;

/// Thresholds tried on the validation part for [`PrematureRule::max_rr_prev`].
pub const RR_PREV_GRID: [f64; 5] = [0.70, 0.75, 0.80, 0.85, 0.90];
/// Thresholds tried on the validation part for [`PrematureRule::max_irregularity`].
pub const IRREGULARITY_GRID: [f64; 6] = [0.02, 0.03, 0.05, 0.08, 0.12, 0.20];

/// A beat's timing as the rule reads it, both against the stream's long mean RR
/// ([`Beat::rr_mean`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BeatTiming {
    /// The previous RR interval over the long mean.
    pub rr_prev: f64,
    /// [`Beat::rr_irregularity`] over the long mean.
    pub irregularity: f64,
}

impl BeatTiming {
    /// `None` when the beat lacks any of the three intervals (the first beats of a stream,
    /// or a beats table written before `rr_irregularity` existed).
    pub fn of(beat: &Beat) -> Option<Self> {
        let mean = f64::from(beat.rr_mean.filter(|m| *m > 0.0)?);
        Some(BeatTiming {
            rr_prev: f64::from(beat.rr_prev?) / mean,
            irregularity: f64::from(beat.rr_irregularity?) / mean,
        })
    }
}

/// Calls a beat the network called N an S beat when it came early in a regular rhythm.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrematureRule {
    /// Early: the previous RR interval is below this share of the long mean.
    pub max_rr_prev: f64,
    /// Regular: the rhythm's irregularity is below this share of the long mean.
    pub max_irregularity: f64,
}

impl PrematureRule {
    /// Whether a beat with this timing is early in a regular rhythm (never without timing).
    pub fn fires(&self, timing: Option<BeatTiming>) -> bool {
        timing.is_some_and(|t| t.rr_prev < self.max_rr_prev && t.irregularity < self.max_irregularity)
    }

    /// The class of a beat the network put in class `predicted`: `classes.premature` when
    /// that was `classes.normal` and the rule fires, else `predicted`.
    pub fn apply(&self, predicted: usize, timing: Option<BeatTiming>, classes: RuleClasses) -> usize {
        if predicted == classes.normal && self.fires(timing) {
            classes.premature
        } else {
            predicted
        }
    }
}

/// Where N and S sit in a model's classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleClasses {
    pub normal: usize,
    pub premature: usize,
}

impl RuleClasses {
    /// `None` unless the classes have an `N` and an `S` (the AAMI label map).
    pub fn of<S: AsRef<str>>(classes: &[S]) -> Option<Self> {
        let position = |name: &str| classes.iter().position(|c| c.as_ref() == name);
        Some(RuleClasses {
            normal: position("N")?,
            premature: position("S")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N_S_V: RuleClasses = RuleClasses {
        normal: 0,
        premature: 1,
    };

    fn timing(rr_prev: f64, irregularity: f64) -> Option<BeatTiming> {
        Some(BeatTiming { rr_prev, irregularity })
    }

    #[test]
    fn fires_only_on_early_beats_in_a_regular_rhythm_the_network_called_normal() {
        let rule = PrematureRule {
            max_rr_prev: 0.8,
            max_irregularity: 0.05,
        };
        assert_eq!(rule.apply(0, timing(0.6, 0.01), N_S_V), 1);
        assert_eq!(rule.apply(0, timing(0.9, 0.01), N_S_V), 0, "not early");
        assert_eq!(rule.apply(0, timing(0.6, 0.30), N_S_V), 0, "irregular rhythm");
        assert_eq!(rule.apply(2, timing(0.6, 0.01), N_S_V), 2, "the network said V");
        assert_eq!(rule.apply(0, None, N_S_V), 0, "no timing");
    }

    #[test]
    fn timing_is_relative_to_the_long_mean_and_needs_all_three_intervals() {
        let beat = Beat {
            rr_prev: Some(0.5),
            rr_mean: Some(1.0),
            rr_irregularity: Some(0.25),
            ..Beat::default()
        };
        assert_eq!(BeatTiming::of(&beat), timing(0.5, 0.25));
        assert_eq!(
            BeatTiming::of(&Beat {
                rr_irregularity: None,
                ..beat.clone()
            }),
            None
        );
        assert_eq!(
            BeatTiming::of(&Beat {
                rr_mean: Some(0.0),
                ..beat
            }),
            None
        );
    }

    #[test]
    fn rule_classes_need_n_and_s() {
        let aami = ["N", "S", "V", "F", "Q"];
        assert_eq!(RuleClasses::of(&aami), Some(N_S_V));
        assert_eq!(RuleClasses::of(&["N", "V"]), None);
    }
}
