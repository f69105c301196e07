//! The premature-beat rule: a beat that the network calls normal (N) but that comes early
//! in an otherwise regular rhythm is called supraventricular (S).
//!
//! That is the textbook supraventricular premature beat: normal morphology, early. The
//! network sees the beat's timing as three numbers next to a pooled picture of the beat,
//! and across patients it learns their rhythms rather than prematurity (an early beat in
//! atrial fibrillation is N). The rule reads the timing directly, and the rhythm's
//! irregularity keeps it quiet in atrial fibrillation. Its two thresholds are chosen on the
//! validation part when the model is trained ([`choose`]) and kept in the model card.

use serde::{Deserialize, Serialize};

use crate::metrics::{ClassificationReport, ConfusionMatrix, MetricsError};
use crate::types::Beat;

/// Thresholds tried by [`choose`] for [`PrematureRule::max_rr_prev`].
pub const RR_PREV_GRID: [f64; 5] = [0.70, 0.75, 0.80, 0.85, 0.90];
/// Thresholds tried by [`choose`] for [`PrematureRule::max_irregularity`].
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

/// What [`choose`] found on the labelled beats it was given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RuleChoice {
    /// The rule with the best macro F1, or `None` when no rule beats the network alone.
    pub rule: Option<PrematureRule>,
    /// Macro F1 of the network alone, and with the chosen rule (the same without one).
    pub macro_f1_without: f64,
    pub macro_f1_with: f64,
}

/// Chooses the rule's thresholds (from [`RR_PREV_GRID`] × [`IRREGULARITY_GRID`]) with the
/// best macro F1 on labelled beats: `predicted` the network's classes, `truth` the
/// reference classes, `timings` each beat's timing. Meant for a validation part, never for
/// the test data. The first best in grid order wins a tie.
pub fn choose(
    class_names: &[String],
    rule_classes: RuleClasses,
    predicted: &[usize],
    truth: &[usize],
    timings: &[Option<BeatTiming>],
) -> Result<RuleChoice, MetricsError> {
    let macro_f1 = |rule: Option<&PrematureRule>| -> Result<f64, MetricsError> {
        let mut confusion = ConfusionMatrix::new(class_names.iter().cloned());
        for ((&p, &t), &timing) in predicted.iter().zip(truth).zip(timings) {
            let p = rule.map_or(p, |r| r.apply(p, timing, rule_classes));
            confusion.add(t, p)?;
        }
        Ok(ClassificationReport::from_confusion(&confusion).macro_avg.f1)
    };
    let without = macro_f1(None)?;
    let mut best = RuleChoice {
        rule: None,
        macro_f1_without: without,
        macro_f1_with: without,
    };
    for max_rr_prev in RR_PREV_GRID {
        for max_irregularity in IRREGULARITY_GRID {
            let rule = PrematureRule {
                max_rr_prev,
                max_irregularity,
            };
            let f1 = macro_f1(Some(&rule))?;
            if f1 > best.macro_f1_with {
                best.rule = Some(rule);
                best.macro_f1_with = f1;
            }
        }
    }
    Ok(best)
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

    #[test]
    fn choose_finds_thresholds_that_separate_early_s_beats_from_atrial_fibrillation() {
        let classes: Vec<String> = ["N", "S", "V"].iter().map(|c| c.to_string()).collect();
        // The network calls everything N except the V beats. S beats come at 0.72 of the
        // mean in a regular rhythm; early N beats at 0.6 in an irregular one (AF); normal
        // N beats on time.
        let mut predicted = Vec::new();
        let mut truth = Vec::new();
        let mut timings = Vec::new();
        let mut add = |p: usize, t: usize, timing: Option<BeatTiming>, n: usize| {
            for _ in 0..n {
                predicted.push(p);
                truth.push(t);
                timings.push(timing);
            }
        };
        add(0, 0, timing(1.0, 0.01), 500);
        add(0, 1, timing(0.72, 0.01), 40);
        add(0, 0, timing(0.6, 0.25), 60);
        add(2, 2, timing(0.6, 0.01), 30);
        let choice = choose(&classes, N_S_V, &predicted, &truth, &timings).unwrap();
        let rule = choice.rule.expect("a rule helps");
        assert!(rule.max_rr_prev > 0.72 && rule.max_irregularity < 0.25, "{rule:?}");
        assert!(
            (choice.macro_f1_with - 1.0).abs() < 1e-9,
            "every beat right: {choice:?}"
        );
        assert!(choice.macro_f1_without < choice.macro_f1_with);

        // S beats on time cannot be found by their timing: no rule.
        let timings: Vec<_> = truth.iter().map(|_| timing(1.0, 0.01)).collect();
        let choice = choose(&classes, N_S_V, &predicted, &truth, &timings).unwrap();
        assert_eq!(choice.rule, None);
        assert_eq!(choice.macro_f1_with, choice.macro_f1_without);
    }
}
