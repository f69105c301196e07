//! What a beat model decides after its network: per-class minimum probabilities and the
//! premature-beat rule ([`super::premature`]), both chosen on the validation part when the
//! model is trained and kept in its card ([`ModelCard::class_of`] applies them).
//!
//! The network's most probable class is not always the best call: class weights in the
//! loss make rare classes cheap to call, so a class such as V may be called on beats the
//! network is unsure of. A minimum probability trades a little of that class's sensitivity
//! for its positive predictivity, and the validation part says whether the trade pays.
//! Whether it pays is measured by a [`DecisionMetric`]: macro F1, or the jκ index of the
//! inter-patient literature.

use std::collections::BTreeMap;

use serde::Serialize;

use super::premature::{PrematureRule, RuleClasses, IRREGULARITY_GRID, RR_PREV_GRID};
use super::{BeatTiming, ModelCard};
use crate::metrics::{ClassificationReport, ConfusionMatrix, MetricsError, EC57_CLASSES};

/// Minimum probabilities tried for each class asked for.
pub const MIN_PROBABILITY_GRID: [f64; 8] = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98];

/// Labelled beats with the network's class probabilities: what the choice is made on.
pub struct Scored<'a> {
    pub probabilities: &'a [Vec<f32>],
    pub truth: &'a [usize],
    pub timings: &'a [Option<BeatTiming>],
}

impl Scored<'_> {
    /// The classification report of the decisions of `card` on these beats.
    pub fn report(&self, card: &ModelCard) -> Result<ClassificationReport, MetricsError> {
        let mut confusion = ConfusionMatrix::new(card.classes.iter().cloned());
        for ((p, &truth), &timing) in self.probabilities.iter().zip(self.truth).zip(self.timings) {
            confusion.add(truth, card.class_of(p, timing))?;
        }
        Ok(ClassificationReport::from_confusion(&confusion))
    }

    /// `metric` of the decisions of `card` on these beats.
    pub fn score(&self, card: &ModelCard, metric: DecisionMetric) -> Result<f64, MetricsError> {
        metric.of(&self.report(card)?)
    }
}

/// What the decisions are chosen to maximise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMetric {
    /// Macro F1 over the classes the beats have (a class with no beats here has no F1 to
    /// speak of; the reports' macro average would count it as 0 as soon as one beat is
    /// called that class, and punish a threshold for where the beats it turns away land).
    #[default]
    MacroF1,
    /// The jκ index (Mondéjar-Guerra et al. 2019, the report's `jk`): Cohen's kappa over
    /// all classes, half the weight, and the EC57 Se and +P of S and V beats, the other
    /// half. Classes without an EC57 statistic (F, Q) count only through kappa. Needs
    /// classes S and V.
    Jk,
}

impl DecisionMetric {
    /// The names [`DecisionMetric::parse`] takes, as the pipeline field spells them.
    pub const NAMES: [&'static str; 2] = ["macro_f1", "jk"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "macro_f1" => Some(DecisionMetric::MacroF1),
            "jk" => Some(DecisionMetric::Jk),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DecisionMetric::MacroF1 => "macro F1",
            DecisionMetric::Jk => "jκ index",
        }
    }

    /// Why this metric cannot score a model over `classes`, if it cannot.
    pub fn problem(self, classes: &[String]) -> Option<String> {
        let lacks_ec57 = EC57_CLASSES.iter().any(|&c| !classes.iter().any(|k| k == c));
        (self == DecisionMetric::Jk && lacks_ec57).then(|| {
            format!(
                "the jκ index needs classes S and V, the classes are {}",
                classes.join(", ")
            )
        })
    }

    fn of(self, report: &ClassificationReport) -> Result<f64, MetricsError> {
        match self {
            DecisionMetric::MacroF1 => {
                let present: Vec<f64> = report
                    .per_class
                    .iter()
                    .filter(|c| c.support > 0)
                    .map(|c| c.f1)
                    .collect();
                Ok(present.iter().sum::<f64>() / present.len().max(1) as f64)
            }
            DecisionMetric::Jk => report
                .jk
                .ok_or_else(|| MetricsError::Shape(self.problem(&report.confusion.classes).unwrap_or_default())),
        }
    }
}

/// What [`choose`] kept, and its metric before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionChoice {
    /// The part of the data it was chosen on (`"validation"`, or `"out-of-fold"`: each
    /// beat scored by a network that did not train on its patient).
    pub part: &'static str,
    pub min_probability: BTreeMap<String, f64>,
    pub premature_rule: Option<PrematureRule>,
    /// What was maximised, and its value on the part without and with the decisions.
    pub metric: DecisionMetric,
    pub network_alone: f64,
    pub with_decisions: f64,
}

/// Rounds of [`choose`]'s search at most.
const MAX_ROUNDS: usize = 5;

/// Chooses, on `scored` beats, a minimum probability for each class in `threshold_classes`
/// (from none and [`MIN_PROBABILITY_GRID`]) and, when `premature_rule` and the classes have N
/// and S, the premature-beat rule (none, or thresholds from its grids), for the best
/// `metric`. The search goes one setting at a time, the others held, and repeats
/// until a round changes nothing (at most five rounds, `MAX_ROUNDS`); a setting changes only where the
/// metric rises, so on a tie the earlier (starting with none) stays. `card` ends with what
/// was chosen. Meant for a validation part (`part` names it), never for test data.
pub fn choose(
    part: &'static str,
    card: &mut ModelCard,
    threshold_classes: &[String],
    premature_rule: bool,
    metric: DecisionMetric,
    scored: &Scored,
) -> Result<DecisionChoice, MetricsError> {
    card.min_probability.clear();
    card.premature_rule = None;
    let alone = scored.score(card, metric)?;
    let mut best = alone;
    let rules: Vec<PrematureRule> = if premature_rule && RuleClasses::of(&card.classes).is_some() {
        RR_PREV_GRID
            .iter()
            .flat_map(|&max_rr_prev| {
                IRREGULARITY_GRID.iter().map(move |&max_irregularity| PrematureRule {
                    max_rr_prev,
                    max_irregularity,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    for _ in 0..MAX_ROUNDS {
        let mut changed = false;
        for class in threshold_classes {
            for min in MIN_PROBABILITY_GRID.map(Some).into_iter().chain([None]) {
                changed |= keep_if_better(card, scored, metric, &mut best, min, |card, min| match min {
                    Some(min) => card.min_probability.insert(class.clone(), min),
                    None => card.min_probability.remove(class),
                })?;
            }
        }
        for rule in rules.iter().copied().map(Some).chain([None]) {
            changed |= keep_if_better(card, scored, metric, &mut best, rule, |card, rule| {
                std::mem::replace(&mut card.premature_rule, rule)
            })?;
        }
        if !changed {
            break;
        }
    }
    Ok(DecisionChoice {
        part,
        min_probability: card.min_probability.clone(),
        premature_rule: card.premature_rule,
        metric,
        network_alone: alone,
        with_decisions: best,
    })
}

/// What `card` decides after its network, in words (`None` when it decides nothing).
pub fn describe(card: &ModelCard) -> Option<String> {
    let mut kept: Vec<String> = card
        .min_probability
        .iter()
        .map(|(class, min)| format!("{class} only at probability ≥ {min:.2}"))
        .collect();
    if let Some(rule) = card.premature_rule {
        kept.push(format!(
            "the premature-beat rule (previous RR < {:.2} × the long mean, irregularity < {:.2} ×)",
            rule.max_rr_prev, rule.max_irregularity
        ));
    }
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// Sets `value` in `card` with `set` (which returns the value it replaced) and keeps it when
/// `metric` rises above `best`, which it then becomes; else puts the old value back.
fn keep_if_better<T>(
    card: &mut ModelCard,
    scored: &Scored,
    metric: DecisionMetric,
    best: &mut f64,
    value: T,
    mut set: impl FnMut(&mut ModelCard, T) -> T,
) -> Result<bool, MetricsError> {
    let before = set(card, value);
    let score = scored.score(card, metric)?;
    if score > *best {
        *best = score;
        Ok(true)
    } else {
        set(card, before);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::DecisionMetric::{Jk, MacroF1};
    use super::*;
    use crate::models::{test_card, Architecture, ResEcaNetConfig};

    fn card() -> ModelCard {
        let mut card = test_card(Architecture::Resecanet(ResEcaNetConfig::study(3)));
        card.classes = vec!["N".into(), "S".into(), "V".into()];
        card
    }

    fn timing(rr_prev: f64, irregularity: f64) -> Option<BeatTiming> {
        Some(BeatTiming { rr_prev, irregularity })
    }

    /// `n` beats of class `truth` with these probabilities and this timing.
    struct Beats {
        probabilities: Vec<Vec<f32>>,
        truth: Vec<usize>,
        timings: Vec<Option<BeatTiming>>,
    }

    impl Beats {
        fn new() -> Self {
            Beats {
                probabilities: Vec::new(),
                truth: Vec::new(),
                timings: Vec::new(),
            }
        }
        fn add(&mut self, n: usize, truth: usize, p: [f32; 3], timing: Option<BeatTiming>) {
            for _ in 0..n {
                self.probabilities.push(p.to_vec());
                self.truth.push(truth);
                self.timings.push(timing);
            }
        }
        fn scored(&self) -> Scored<'_> {
            Scored {
                probabilities: &self.probabilities,
                truth: &self.truth,
                timings: &self.timings,
            }
        }
    }

    #[test]
    fn a_minimum_probability_stops_unsure_calls_of_a_class() {
        let mut beats = Beats::new();
        beats.add(500, 0, [0.9, 0.05, 0.05], timing(1.0, 0.01));
        beats.add(50, 2, [0.02, 0.02, 0.96], timing(0.7, 0.01));
        // Normal beats the network calls V, unsure.
        beats.add(40, 0, [0.35, 0.0, 0.65], timing(1.0, 0.01));
        let mut card = card();
        let v = ["V".to_owned()];
        let choice = choose("validation", &mut card, &v, false, MacroF1, &beats.scored()).unwrap();
        let min = card.min_probability["V"];
        assert!(min > 0.65 && min <= 0.96, "{choice:?}");
        assert!((choice.with_decisions - 1.0).abs() < 1e-9, "{choice:?}");
        assert!(choice.network_alone < 1.0);
        assert_eq!(
            card.class_of(&[0.35, 0.0, 0.65], None),
            0,
            "the next most probable class"
        );
        assert_eq!(card.class_of(&[0.02, 0.02, 0.96], None), 2);
        assert_eq!(describe(&card), Some(format!("V only at probability ≥ {min:.2}")));
    }

    #[test]
    fn the_premature_rule_separates_early_s_beats_from_atrial_fibrillation() {
        let mut beats = Beats::new();
        // The network calls every non-V beat N. S beats come at 0.72 of the mean in a
        // regular rhythm; early N beats at 0.6 in an irregular one (AF).
        beats.add(500, 0, [0.9, 0.05, 0.05], timing(1.0, 0.01));
        beats.add(40, 1, [0.9, 0.05, 0.05], timing(0.72, 0.01));
        beats.add(60, 0, [0.9, 0.05, 0.05], timing(0.6, 0.25));
        beats.add(30, 2, [0.05, 0.05, 0.9], timing(0.6, 0.01));
        let mut card = card();
        let choice = choose("validation", &mut card, &[], true, MacroF1, &beats.scored()).unwrap();
        let rule = card.premature_rule.expect("a rule helps");
        assert!(rule.max_rr_prev > 0.72 && rule.max_irregularity < 0.25, "{rule:?}");
        assert!((choice.with_decisions - 1.0).abs() < 1e-9, "{choice:?}");
        assert_eq!(choice.premature_rule, Some(rule));
    }

    #[test]
    fn the_jk_index_trades_a_class_without_ec57_statistics_for_v_beats() {
        let mut card = test_card(Architecture::Resecanet(ResEcaNetConfig::study(4)));
        card.classes = ["N", "S", "V", "F"].map(String::from).to_vec();
        let (mut probabilities, mut truth) = (Vec::new(), Vec::new());
        // Sure N, S and V beats; then 20 V and 20 F beats the network cannot tell apart and
        // calls F.
        for (n, class, p) in [
            (500, 0, [0.96, 0.02, 0.01, 0.01]),
            (30, 1, [0.02, 0.96, 0.01, 0.01]),
            (100, 2, [0.01, 0.01, 0.96, 0.02]),
            (20, 2, [0.0, 0.0, 0.45, 0.55]),
            (20, 3, [0.0, 0.0, 0.45, 0.55]),
        ] {
            probabilities.extend(std::iter::repeat_n(p.to_vec(), n));
            truth.extend(std::iter::repeat_n(class, n));
        }
        let timings = vec![None; truth.len()];
        let scored = Scored {
            probabilities: &probabilities,
            truth: &truth,
            timings: &timings,
        };
        let f = ["F".to_owned()];
        // Macro F1 keeps F's 20 right calls (F1 0.5); the jκ index prefers V's sensitivity.
        let by_f1 = choose("out-of-fold", &mut card, &f, false, MacroF1, &scored).unwrap();
        assert!(by_f1.min_probability.is_empty(), "{by_f1:?}");
        let by_jk = choose("out-of-fold", &mut card, &f, false, Jk, &scored).unwrap();
        assert!(by_jk.min_probability["F"] > 0.55, "{by_jk:?}");
        assert!(by_jk.with_decisions > by_jk.network_alone);
        let report = scored.report(&card).unwrap();
        assert_eq!(report.ec57["V"].se, 1.0);
        assert_eq!(report.jk, Some(by_jk.with_decisions));
        assert_eq!(by_jk.metric, Jk);
    }

    #[test]
    fn the_jk_index_needs_s_and_v() {
        let classes = ["N", "V"].map(String::from);
        assert!(Jk.problem(&classes).unwrap().contains("S and V"));
        assert_eq!(MacroF1.problem(&classes), None);
        assert_eq!(Jk.problem(&card().classes), None);
    }

    #[test]
    fn nothing_is_kept_where_nothing_helps() {
        let mut beats = Beats::new();
        beats.add(500, 0, [0.9, 0.05, 0.05], timing(1.0, 0.01));
        // S beats on time cannot be found by their timing; every V call is sure.
        beats.add(40, 1, [0.9, 0.05, 0.05], timing(1.0, 0.01));
        beats.add(30, 2, [0.01, 0.0, 0.99], timing(0.6, 0.01));
        let mut card = card();
        card.premature_rule = Some(PrematureRule {
            max_rr_prev: 0.8,
            max_irregularity: 0.1,
        });
        let v = ["V".to_owned()];
        let choice = choose("validation", &mut card, &v, true, MacroF1, &beats.scored()).unwrap();
        assert_eq!(card.premature_rule, None, "an earlier rule does not survive");
        assert!(card.min_probability.is_empty());
        assert_eq!(describe(&card), None);
        assert_eq!(choice.with_decisions, choice.network_alone);
    }
}
