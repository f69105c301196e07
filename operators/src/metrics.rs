//! Evaluation metrics for classifiers: confusion matrices and per-class reports for
//! single-label models (MIT-BIH beats), ROC AUC and thresholded metrics for multi-label
//! models (PTB-XL superclasses), bootstrap confidence intervals, and mean ± std over the
//! folds of a cross-validation. Every report is plain data with `serde` derives so that
//! it goes into JSON under the field names documented here.
//!
//! # Conventions
//!
//! - **No NaN.** A ratio whose denominator is zero is 0, like scikit-learn's
//!   `zero_division=0`: the precision of a class that is never predicted, the recall of a
//!   class with no support, the specificity when every sample is of the class. F1 is
//!   `2·TP / (2·TP + FP + FN)`, the harmonic mean of precision and recall, and 0 when
//!   `TP = 0`. So every number in a report is finite and serialises as a JSON number.
//! - **Macro averages** are unweighted means over the classes that occur in the truth or
//!   in the predictions (scikit-learn's label set when no `labels` are given): a class
//!   neither present nor predicted says nothing about the model and would drag every
//!   average towards 0. **Weighted averages** weight each class by its support.
//! - **Scores** that are NaN are left out of ROC computations; ±∞ are ordinary scores.
//!   A sample is predicted positive when `score >= threshold` (so NaN is negative).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// Why a metric could not be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("class index {index} is out of range for {classes} classes")]
    ClassOutOfRange { index: usize, classes: usize },
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("a cross-validation summary needs at least one report")]
    NoReports,
    #[error("fold {fold} has classes {found:?}, fold 0 has {expected:?}")]
    ClassesDiffer {
        fold: usize,
        expected: Vec<String>,
        found: Vec<String>,
    },
}

/// `num / den`, or 0 when `den` is 0 (see the module's conventions).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// One-vs-rest counts of a single class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinaryCounts {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
}

impl BinaryCounts {
    /// TP / (TP + FP), the positive predictive value (+P).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// TP / (TP + FN), the sensitivity (Se).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// TN / (TN + FP).
    pub fn specificity(&self) -> f64 {
        ratio(self.tn, self.tn + self.fp)
    }

    /// 2·TP / (2·TP + FP + FN).
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// Number of samples whose truth is the class.
    pub fn support(&self) -> u64 {
        self.tp + self.fn_
    }

    /// Number of samples predicted as the class.
    pub fn predicted(&self) -> u64 {
        self.tp + self.fp
    }

    /// Whether the class occurs in the truth or in the predictions, i.e. whether it
    /// takes part in macro averages.
    pub fn observed(&self) -> bool {
        self.support() + self.predicted() > 0
    }
}

/// Counts of (truth, prediction) pairs: `counts[truth][pred]`, rows are the truth and
/// columns the prediction, both indexed like `classes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub classes: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An all-zero matrix over `classes`.
    pub fn new<S: Into<String>>(classes: impl IntoIterator<Item = S>) -> Self {
        let classes: Vec<String> = classes.into_iter().map(Into::into).collect();
        let k = classes.len();
        ConfusionMatrix {
            classes,
            counts: vec![vec![0; k]; k],
        }
    }

    /// Counts one sample of class `truth` predicted as `pred` (class indices).
    pub fn add(&mut self, truth: usize, pred: usize) -> Result<(), MetricsError> {
        let k = self.classes.len();
        for index in [truth, pred] {
            if index >= k {
                return Err(MetricsError::ClassOutOfRange { index, classes: k });
            }
        }
        let cell = self.counts.get_mut(truth).and_then(|row| row.get_mut(pred));
        *cell.ok_or_else(|| MetricsError::Shape(format!("counts is not {k} × {k}")))? += 1;
        Ok(())
    }

    /// A matrix over `classes` counting every `(truth, pred)` pair.
    pub fn from_pairs<S: Into<String>>(
        classes: impl IntoIterator<Item = S>,
        pairs: impl IntoIterator<Item = (usize, usize)>,
    ) -> Result<Self, MetricsError> {
        let mut cm = Self::new(classes);
        for (truth, pred) in pairs {
            cm.add(truth, pred)?;
        }
        Ok(cm)
    }

    /// Adds another matrix over the same classes (to pool the folds of a
    /// cross-validation).
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<(), MetricsError> {
        if other.classes != self.classes {
            return Err(MetricsError::Shape(format!(
                "cannot merge a matrix over {:?} into one over {:?}",
                other.classes, self.classes
            )));
        }
        for (row, other_row) in self.counts.iter_mut().zip(&other.counts) {
            for (c, o) in row.iter_mut().zip(other_row) {
                *c += o;
            }
        }
        Ok(())
    }

    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Fraction of samples on the diagonal (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        let correct = (0..self.classes.len()).map(|k| self.cell(k, k)).sum();
        ratio(correct, self.total())
    }

    /// Cohen's kappa: the agreement of truth and prediction beyond what their class
    /// frequencies give by chance, (p_o - p_e) / (1 - p_e) with p_o the accuracy and p_e the
    /// sum over classes of the product of the truth's and the prediction's shares. 0 for an
    /// empty matrix, and when chance alone agrees fully (p_e = 1).
    pub fn kappa(&self) -> f64 {
        let total = self.total() as f64;
        if total == 0.0 {
            return 0.0;
        }
        let expected: f64 = (0..self.classes.len())
            .map(|k| {
                let b = self.binary(k);
                (b.support() as f64 / total) * (b.predicted() as f64 / total)
            })
            .sum();
        if expected >= 1.0 {
            0.0
        } else {
            (self.accuracy() - expected) / (1.0 - expected)
        }
    }

    /// One-vs-rest counts of class `k`.
    pub fn binary(&self, k: usize) -> BinaryCounts {
        let tp = self.cell(k, k);
        let support: u64 = self.counts.get(k).map_or(0, |row| row.iter().sum());
        let predicted: u64 = self.counts.iter().map(|row| row.get(k).copied().unwrap_or(0)).sum();
        let fn_ = support - tp;
        let fp = predicted - tp;
        BinaryCounts {
            tp,
            fp,
            fn_,
            tn: self.total() - tp - fp - fn_,
        }
    }

    /// `counts[truth][pred]`, 0 outside a (deserialised, possibly ragged) matrix.
    fn cell(&self, truth: usize, pred: usize) -> u64 {
        self.counts.get(truth).and_then(|r| r.get(pred)).copied().unwrap_or(0)
    }
}

/// Metrics of one class of a [`ClassificationReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    /// Sensitivity.
    pub recall: f64,
    pub specificity: f64,
    pub f1: f64,
    /// Samples whose truth is this class.
    pub support: u64,
    /// Samples predicted as this class.
    pub predicted: u64,
}

impl ClassMetrics {
    /// Whether the class occurs in the truth or in the predictions (see
    /// [`BinaryCounts::observed`]).
    pub fn observed(&self) -> bool {
        self.support + self.predicted > 0
    }
}

/// Averages of the per-class metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    pub precision: f64,
    pub recall: f64,
    pub specificity: f64,
    pub f1: f64,
}

/// ANSI/AAMI EC57 beat-class statistics: sensitivity Se = TP / (TP + FN) and positive
/// predictivity +P = TP / (TP + FP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ec57 {
    pub se: f64,
    pub ppv: f64,
}

/// The AAMI classes EC57 reports Se and +P for.
pub const EC57_CLASSES: [&str; 2] = ["S", "V"];

/// Everything about a single-label classifier on one test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    pub accuracy: f64,
    pub per_class: Vec<ClassMetrics>,
    /// Mean over the classes present in the truth or the predictions.
    pub macro_avg: Averages,
    /// Mean weighted by support.
    pub weighted_avg: Averages,
    /// Se and +P of the classes named "S" and "V" where the class list has them.
    pub ec57: BTreeMap<String, Ec57>,
    /// Cohen's kappa over all classes ([`ConfusionMatrix::kappa`]).
    #[serde(default)]
    pub kappa: f64,
    /// The jκ index of Mondéjar-Guerra et al. (2019), κ / 2 + (Se_S + +P_S + Se_V + +P_V) / 8,
    /// where the classes have S and V.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jk: Option<f64>,
    pub confusion: ConfusionMatrix,
}

impl ClassificationReport {
    pub fn from_confusion(confusion: &ConfusionMatrix) -> Self {
        let counts: Vec<BinaryCounts> = (0..confusion.classes.len()).map(|k| confusion.binary(k)).collect();
        let per_class: Vec<ClassMetrics> = confusion
            .classes
            .iter()
            .zip(&counts)
            .map(|(class, b)| ClassMetrics {
                class: class.clone(),
                precision: b.precision(),
                recall: b.recall(),
                specificity: b.specificity(),
                f1: b.f1(),
                support: b.support(),
                predicted: b.predicted(),
            })
            .collect();
        let macro_avg = averages(&per_class, |c| if c.observed() { 1.0 } else { 0.0 });
        let weighted_avg = averages(&per_class, |c| c.support as f64);
        let ec57 = per_class
            .iter()
            .filter(|c| EC57_CLASSES.contains(&c.class.as_str()))
            .map(|c| {
                let stats = Ec57 {
                    se: c.recall,
                    ppv: c.precision,
                };
                (c.class.clone(), stats)
            })
            .collect();
        let kappa = confusion.kappa();
        let jk = jk_index(kappa, &ec57);
        ClassificationReport {
            accuracy: confusion.accuracy(),
            per_class,
            macro_avg,
            weighted_avg,
            ec57,
            kappa,
            jk,
            confusion: confusion.clone(),
        }
    }
}

/// The jκ index of Mondéjar-Guerra et al. (2019), made for the inter-patient MIT-BIH
/// protocol: κ / 2 + (Se_S + +P_S + Se_V + +P_V) / 8, between -0.5 and 1. It weighs the
/// agreement over all classes (Cohen's kappa) as much as the EC57 statistics of S and V
/// beats together. `None` without both S and V.
fn jk_index(kappa: f64, ec57: &BTreeMap<String, Ec57>) -> Option<f64> {
    let (s, v) = (ec57.get("S")?, ec57.get("V")?);
    Some(kappa / 2.0 + (s.se + s.ppv + v.se + v.ppv) / 8.0)
}

/// Weighted means of the per-class metrics (all 0 when the weights sum to 0).
fn averages(per_class: &[ClassMetrics], weight: impl Fn(&ClassMetrics) -> f64) -> Averages {
    let total: f64 = per_class.iter().map(&weight).sum();
    let mean = |field: fn(&ClassMetrics) -> f64| {
        if total == 0.0 {
            0.0
        } else {
            per_class.iter().map(|c| weight(c) * field(c)).sum::<f64>() / total
        }
    };
    Averages {
        precision: mean(|c| c.precision),
        recall: mean(|c| c.recall),
        specificity: mean(|c| c.specificity),
        f1: mean(|c| c.f1),
    }
}

/// Samples sharing one score: how many are positive and negative.
struct TieGroup {
    score: f32,
    pos: u64,
    neg: u64,
}

/// The samples with a non-NaN score grouped by equal score, highest score first; `None`
/// when the lengths differ.
fn tie_groups(scores: &[f32], positives: &[bool]) -> Option<Vec<TieGroup>> {
    if scores.len() != positives.len() {
        return None;
    }
    let mut pairs: Vec<(f32, bool)> = scores
        .iter()
        .copied()
        .zip(positives.iter().copied())
        .filter(|(s, _)| !s.is_nan())
        .collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut groups: Vec<TieGroup> = Vec::new();
    for (score, positive) in pairs {
        // `==` rather than the sort's total order, so that -0.0 and 0.0 tie.
        let group = match groups.last_mut() {
            Some(g) if g.score == score => g,
            _ => {
                groups.push(TieGroup { score, pos: 0, neg: 0 });
                groups.last_mut().expect("just pushed")
            }
        };
        if positive {
            group.pos += 1;
        } else {
            group.neg += 1;
        }
    }
    Some(groups)
}

/// Area under the ROC curve: the probability that a random positive scores above a
/// random negative, ties counting one half (the Mann-Whitney U statistic with average
/// ranks, divided by positives × negatives), computed exactly in integers. NaN scores
/// are left out. `None` when there are no positives or no negatives, or the lengths
/// differ.
pub fn roc_auc(scores: &[f32], positives: &[bool]) -> Option<f64> {
    let groups = tie_groups(scores, positives)?;
    let (mut pos_above, mut twice_u) = (0u128, 0u128);
    for g in &groups {
        // Each negative of the group is beaten by every positive above it and ties with
        // the positives of its own group.
        twice_u += g.neg as u128 * (2 * pos_above + g.pos as u128);
        pos_above += g.pos as u128;
    }
    let neg: u128 = groups.iter().map(|g| g.neg as u128).sum();
    if pos_above == 0 || neg == 0 {
        return None;
    }
    Some(twice_u as f64 / (2 * pos_above * neg) as f64)
}

/// The ROC curve as (false positive rate, true positive rate) points from (0, 0) to
/// (1, 1), one point per distinct score (a group of tied scores is one diagonal step, so
/// the trapezoidal area under the points equals [`roc_auc`]). Empty when there are no
/// positives or no negatives, or the lengths differ.
pub fn roc_curve(scores: &[f32], positives: &[bool]) -> Vec<(f64, f64)> {
    let Some(groups) = tie_groups(scores, positives) else {
        return Vec::new();
    };
    let pos: u64 = groups.iter().map(|g| g.pos).sum();
    let neg: u64 = groups.iter().map(|g| g.neg).sum();
    if pos == 0 || neg == 0 {
        return Vec::new();
    }
    let (mut tp, mut fp) = (0, 0);
    let mut curve = vec![(0.0, 0.0)];
    for g in &groups {
        tp += g.pos;
        fp += g.neg;
        curve.push((ratio(fp, neg), ratio(tp, pos)));
    }
    curve
}

/// Column `k` of an n × K table.
fn column<T: Copy>(rows: &[Vec<T>], k: usize) -> Vec<T> {
    rows.iter().map(|r| r[k]).collect()
}

/// Checks that `scores` and `truth` are both n × `k`.
fn check_table(scores: &[Vec<f32>], truth: &[Vec<bool>], k: usize) -> Result<(), MetricsError> {
    if scores.len() != truth.len() {
        return Err(MetricsError::Shape(format!(
            "{} rows of scores but {} rows of truth",
            scores.len(),
            truth.len()
        )));
    }
    for (i, (s, t)) in scores.iter().zip(truth).enumerate() {
        if s.len() != k || t.len() != k {
            return Err(MetricsError::Shape(format!(
                "row {i} has {} scores and {} labels, expected {k}",
                s.len(),
                t.len()
            )));
        }
    }
    Ok(())
}

/// Metrics of one label of a [`MultiLabelReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelMetrics {
    pub class: String,
    /// ROC AUC; `null` when the label has no positives or no negatives.
    pub auc: Option<f64>,
    pub precision: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub f1: f64,
    /// Samples with the label.
    pub support: u64,
    /// Decision threshold: predicted positive when `score >= threshold`.
    pub threshold: f32,
}

/// Everything about a multi-label classifier (independent sigmoid outputs) on one test
/// set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelReport {
    pub per_class: Vec<LabelMetrics>,
    /// Mean AUC over the labels whose AUC is defined.
    pub macro_auc: Option<f64>,
    /// AUC of all (sample, label) pairs pooled.
    pub micro_auc: Option<f64>,
    /// Mean F1 over the labels present in the truth or the predictions.
    pub macro_f1: f64,
}

impl MultiLabelReport {
    /// Scores and truth are n × K (one row per sample), `classes` and `thresholds` have
    /// K entries.
    pub fn new<S: AsRef<str>>(
        classes: &[S],
        scores: &[Vec<f32>],
        truth: &[Vec<bool>],
        thresholds: &[f32],
    ) -> Result<Self, MetricsError> {
        let k = classes.len();
        check_table(scores, truth, k)?;
        if thresholds.len() != k {
            return Err(MetricsError::Shape(format!(
                "{} thresholds for {k} classes",
                thresholds.len()
            )));
        }
        let mut per_class = Vec::with_capacity(k);
        let mut observed_f1 = Vec::new();
        for (j, (class, &threshold)) in classes.iter().zip(thresholds).enumerate() {
            let (s, t) = (column(scores, j), column(truth, j));
            let mut b = BinaryCounts::default();
            for (&score, &positive) in s.iter().zip(&t) {
                match (positive, score >= threshold) {
                    (true, true) => b.tp += 1,
                    (true, false) => b.fn_ += 1,
                    (false, true) => b.fp += 1,
                    (false, false) => b.tn += 1,
                }
            }
            if b.observed() {
                observed_f1.push(b.f1());
            }
            per_class.push(LabelMetrics {
                class: class.as_ref().to_string(),
                auc: roc_auc(&s, &t),
                precision: b.precision(),
                sensitivity: b.recall(),
                specificity: b.specificity(),
                f1: b.f1(),
                support: b.support(),
                threshold,
            });
        }
        let aucs: Vec<f64> = per_class.iter().filter_map(|c| c.auc).collect();
        let macro_auc = (!aucs.is_empty()).then(|| mean_std(&aucs).0);
        let flat_scores: Vec<f32> = scores.iter().flatten().copied().collect();
        let flat_truth: Vec<bool> = truth.iter().flatten().copied().collect();
        Ok(MultiLabelReport {
            per_class,
            macro_auc,
            micro_auc: roc_auc(&flat_scores, &flat_truth),
            macro_f1: mean_std(&observed_f1).0,
        })
    }
}

/// Threshold used for a label whose best F1 is undefined (no positives, or no scores).
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// Per label, the threshold maximising F1 on these scores (meant for a validation fold,
/// whose thresholds are then applied to the test fold). The threshold is one of the
/// observed scores (predict positive when `score >= threshold`); among equally good
/// thresholds the highest is taken. Labels without positives get [`DEFAULT_THRESHOLD`].
/// K is the length of the first row.
pub fn best_f1_thresholds(scores: &[Vec<f32>], truth: &[Vec<bool>]) -> Result<Vec<f32>, MetricsError> {
    let k = scores.first().map_or(0, Vec::len);
    check_table(scores, truth, k)?;
    let best = |j: usize| {
        let groups = tie_groups(&column(scores, j), &column(truth, j)).expect("equal lengths");
        let pos: u64 = groups.iter().map(|g| g.pos).sum();
        let (mut tp, mut fp) = (0, 0);
        let (mut best_f1, mut best_t) = (0.0, DEFAULT_THRESHOLD);
        for g in &groups {
            tp += g.pos;
            fp += g.neg;
            let f1 = ratio(2 * tp, 2 * tp + fp + (pos - tp));
            if f1 > best_f1 {
                (best_f1, best_t) = (f1, g.score);
            }
        }
        best_t
    };
    Ok((0..k).map(best).collect())
}

/// The 2.5 and 97.5 percentiles (linear interpolation) of `statistic` over `n_boot`
/// resamples, each `n_samples` indices drawn uniformly with replacement from
/// `0..n_samples` by a [`SplitMix64`] seeded with `seed`. Resamples where the statistic is
/// `None` or not finite (say, no positive drawn for an AUC) are skipped. `None` when no
/// resample gives a value.
pub fn bootstrap_ci(
    n_samples: usize,
    n_boot: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> Option<f64>,
) -> Option<(f64, f64)> {
    if n_samples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut indices = vec![0; n_samples];
    let mut values = Vec::with_capacity(n_boot);
    for _ in 0..n_boot {
        for i in indices.iter_mut() {
            *i = ((rng.uniform() * n_samples as f64) as usize).min(n_samples - 1);
        }
        values.extend(statistic(&indices).filter(|v| v.is_finite()));
    }
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some((percentile(&values, 0.025), percentile(&values, 0.975)))
}

/// Percentile `p` in [0, 1] of sorted, non-empty values, interpolating linearly between
/// neighbours (NumPy's default).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Mean and sample standard deviation (divided by n - 1); the std is 0 for one value,
/// and both are 0 for none.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// A metric's mean and sample standard deviation over folds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    pub fn of(values: &[f64]) -> Self {
        let (mean, std) = mean_std(values);
        MeanStd { mean, std }
    }

    /// Mean ± std of one field over some items.
    fn over<T>(items: &[T], field: impl Fn(&T) -> f64) -> Self {
        Self::of(&items.iter().map(field).collect::<Vec<_>>())
    }
}

/// [`Averages`] over folds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AveragesSummary {
    pub precision: MeanStd,
    pub recall: MeanStd,
    pub specificity: MeanStd,
    pub f1: MeanStd,
}

impl AveragesSummary {
    fn over(averages: &[&Averages]) -> Self {
        AveragesSummary {
            precision: MeanStd::over(averages, |a| a.precision),
            recall: MeanStd::over(averages, |a| a.recall),
            specificity: MeanStd::over(averages, |a| a.specificity),
            f1: MeanStd::over(averages, |a| a.f1),
        }
    }
}

/// One class's metrics over the folds where it is present in the truth or the
/// predictions (a fold without the class has no information about it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    pub class: String,
    /// Number of folds summarised.
    pub folds: usize,
    pub precision: MeanStd,
    pub recall: MeanStd,
    pub specificity: MeanStd,
    pub f1: MeanStd,
    pub support: MeanStd,
}

/// [`Ec57`] over folds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ec57Summary {
    pub se: MeanStd,
    pub ppv: MeanStd,
}

/// K-fold cross-validation: each field of the folds' [`ClassificationReport`]s as mean ±
/// std, and the confusion matrix of all folds pooled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrossValidationSummary {
    pub folds: usize,
    pub accuracy: MeanStd,
    /// `macro_avg.f1` is the macro F1 over folds.
    pub macro_avg: AveragesSummary,
    pub weighted_avg: AveragesSummary,
    pub per_class: Vec<ClassSummary>,
    pub ec57: BTreeMap<String, Ec57Summary>,
    pub kappa: MeanStd,
    /// Where the classes have S and V.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jk: Option<MeanStd>,
    pub pooled: ConfusionMatrix,
}

impl CrossValidationSummary {
    /// Summarises fold reports that share one class list.
    pub fn from_reports(reports: &[ClassificationReport]) -> Result<Self, MetricsError> {
        let first = reports.first().ok_or(MetricsError::NoReports)?;
        let mut pooled = ConfusionMatrix::new(first.confusion.classes.clone());
        for (fold, r) in reports.iter().enumerate() {
            if r.confusion.classes != first.confusion.classes || r.per_class.len() != first.per_class.len() {
                return Err(MetricsError::ClassesDiffer {
                    fold,
                    expected: first.confusion.classes.clone(),
                    found: r.confusion.classes.clone(),
                });
            }
            pooled.merge(&r.confusion)?;
        }
        let per_class: Vec<ClassSummary> = first
            .per_class
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let folds: Vec<&ClassMetrics> = reports
                    .iter()
                    .map(|r| &r.per_class[k])
                    .filter(|m| m.observed())
                    .collect();
                ClassSummary {
                    class: c.class.clone(),
                    folds: folds.len(),
                    precision: MeanStd::over(&folds, |m| m.precision),
                    recall: MeanStd::over(&folds, |m| m.recall),
                    specificity: MeanStd::over(&folds, |m| m.specificity),
                    f1: MeanStd::over(&folds, |m| m.f1),
                    support: MeanStd::over(&folds, |m| m.support as f64),
                }
            })
            .collect();
        let ec57 = per_class
            .iter()
            .filter(|c| first.ec57.contains_key(&c.class))
            .map(|c| {
                let stats = Ec57Summary {
                    se: c.recall,
                    ppv: c.precision,
                };
                (c.class.clone(), stats)
            })
            .collect();
        let macro_avgs: Vec<&Averages> = reports.iter().map(|r| &r.macro_avg).collect();
        let weighted_avgs: Vec<&Averages> = reports.iter().map(|r| &r.weighted_avg).collect();
        Ok(CrossValidationSummary {
            folds: reports.len(),
            accuracy: MeanStd::over(reports, |r| r.accuracy),
            macro_avg: AveragesSummary::over(&macro_avgs),
            weighted_avg: AveragesSummary::over(&weighted_avgs),
            per_class,
            ec57,
            kappa: MeanStd::over(reports, |r| r.kappa),
            jk: first.jk.map(|_| MeanStd::over(reports, |r| r.jk.unwrap_or(0.0))),
            pooled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// Truth A: 2 right, 1 as B, 1 as C; truth B: 1 as A, 2 right; C is predicted once
    /// but never true; D neither.
    fn four_class() -> ConfusionMatrix {
        let pairs = [(0, 0), (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 1)];
        ConfusionMatrix::from_pairs(["A", "B", "C", "D"], pairs).unwrap()
    }

    #[test]
    fn confusion_matrix_counts() {
        let cm = four_class();
        assert_eq!(cm.counts[0], [2, 1, 1, 0]);
        assert_eq!(cm.counts[1], [1, 2, 0, 0]);
        assert_eq!(cm.total(), 7);
        close(cm.accuracy(), 4.0 / 7.0);
        assert_eq!(
            cm.binary(0),
            BinaryCounts {
                tp: 2,
                fp: 1,
                fn_: 2,
                tn: 2
            }
        );
        let mut bad = cm.clone();
        assert_eq!(
            bad.add(4, 0),
            Err(MetricsError::ClassOutOfRange { index: 4, classes: 4 })
        );
        assert_eq!(bad, cm);
        close(ConfusionMatrix::new(["x"]).accuracy(), 0.0);
    }

    #[test]
    fn report_with_zero_support_classes() {
        let r = ClassificationReport::from_confusion(&four_class());
        close(r.accuracy, 4.0 / 7.0);
        let [a, b, c, d] = &r.per_class[..] else { panic!() };
        close(a.precision, 2.0 / 3.0);
        close(a.recall, 0.5);
        close(a.specificity, 2.0 / 3.0);
        close(a.f1, 4.0 / 7.0);
        assert_eq!((a.support, a.predicted), (4, 3));
        close(b.precision, 2.0 / 3.0);
        close(b.recall, 2.0 / 3.0);
        close(b.specificity, 3.0 / 4.0);
        close(b.f1, 2.0 / 3.0);
        // C: predicted once, never true: precision 0/1, recall 0/0 := 0.
        close(c.precision, 0.0);
        close(c.recall, 0.0);
        close(c.specificity, 6.0 / 7.0);
        close(c.f1, 0.0);
        assert_eq!((c.support, c.predicted), (0, 1));
        // D: nothing at all, every sample a true negative; left out of the macro average.
        assert_eq!((d.precision, d.recall, d.specificity, d.f1), (0.0, 0.0, 1.0, 0.0));
        close(r.macro_avg.precision, 4.0 / 9.0);
        close(r.macro_avg.recall, 7.0 / 18.0);
        close(r.macro_avg.specificity, (2.0 / 3.0 + 3.0 / 4.0 + 6.0 / 7.0) / 3.0);
        close(r.macro_avg.f1, (4.0 / 7.0 + 2.0 / 3.0) / 3.0);
        close(r.weighted_avg.precision, 2.0 / 3.0);
        close(r.weighted_avg.recall, 4.0 / 7.0);
        close(r.weighted_avg.f1, 30.0 / 49.0);
        assert!(r.ec57.is_empty());
    }

    #[test]
    fn binary_report_and_ec57() {
        let mut cm = ConfusionMatrix::new(["N", "V"]);
        cm.counts = vec![vec![50, 5], vec![10, 35]];
        let r = ClassificationReport::from_confusion(&cm);
        close(r.accuracy, 0.85);
        let v = &r.per_class[1];
        close(v.recall, 7.0 / 9.0);
        close(v.precision, 0.875);
        close(v.specificity, 10.0 / 11.0);
        close(v.f1, 14.0 / 17.0);
        let n = &r.per_class[0];
        close(n.precision, 5.0 / 6.0);
        close(n.recall, 10.0 / 11.0);
        close(n.f1, 20.0 / 23.0);
        assert_eq!(r.ec57.keys().collect::<Vec<_>>(), ["V"]);
        close(r.ec57["V"].se, 7.0 / 9.0);
        close(r.ec57["V"].ppv, 0.875);
        // p_o = 0.85; p_e = 0.55 · 0.60 + 0.45 · 0.40 = 0.51.
        close(r.kappa, (0.85 - 0.51) / (1.0 - 0.51));
        assert_eq!(r.jk, None, "no S class");
    }

    #[test]
    fn kappa_and_jk_index_by_hand() {
        // Truth N: 8 right, 1 as S, 1 as V; truth S: 2 right, 2 as N; truth V: 3 right, 1 as S.
        let mut cm = ConfusionMatrix::new(["N", "S", "V"]);
        cm.counts = vec![vec![8, 1, 1], vec![2, 2, 0], vec![0, 1, 3]];
        let r = ClassificationReport::from_confusion(&cm);
        // 18 beats, 13 right; truth shares 10, 4, 4; prediction shares 10, 4, 4.
        let expected = (100.0 + 16.0 + 16.0) / 324.0;
        let kappa = (13.0 / 18.0 - expected) / (1.0 - expected);
        close(r.kappa, kappa);
        // S: Se 2/4, +P 2/4; V: Se 3/4, +P 3/4.
        close(r.jk.unwrap(), kappa / 2.0 + (0.5 + 0.5 + 0.75 + 0.75) / 8.0);
        // Chance-level and perfect agreement, and one class that chance alone agrees on.
        let kappa_of = |pairs: &[(usize, usize)]| {
            ConfusionMatrix::from_pairs(["N", "V"], pairs.iter().copied())
                .unwrap()
                .kappa()
        };
        close(kappa_of(&[(0, 0), (0, 1), (1, 0), (1, 1)]), 0.0);
        close(kappa_of(&[(0, 0), (1, 1)]), 1.0);
        close(kappa_of(&[(0, 0), (0, 0)]), 0.0);
    }

    #[test]
    fn empty_report_is_finite() {
        let r = ClassificationReport::from_confusion(&ConfusionMatrix::new(["N", "S", "V"]));
        let a = &r.macro_avg;
        for x in [r.accuracy, a.precision, a.recall, a.specificity, a.f1] {
            assert_eq!(x, 0.0);
        }
        assert_eq!(r.ec57.len(), 2);
    }

    #[test]
    fn auc_with_ties() {
        close(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap(),
            0.75,
        );
        // The positive at 0.5 ties the negative at 0.5: one half.
        close(
            roc_auc(&[0.2, 0.5, 0.5, 0.9], &[false, true, false, true]).unwrap(),
            0.875,
        );
        close(roc_auc(&[0.5; 4], &[true, false, true, false]).unwrap(), 0.5);
        close(roc_auc(&[0.0, -0.0], &[true, false]).unwrap(), 0.5);
        // NaN scores are left out.
        close(roc_auc(&[0.1, f32::NAN, 0.9], &[false, false, true]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[0.1, 0.2], &[false, false]), None);
        assert_eq!(roc_auc(&[0.1], &[true, false]), None);
    }

    #[test]
    fn roc_curve_steps_over_ties() {
        let curve = roc_curve(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert_eq!(curve, [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let (scores, truth) = ([0.2, 0.5, 0.5, 0.9], [false, true, false, true]);
        let curve = roc_curve(&scores, &truth);
        assert_eq!(curve, [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let area: f64 = curve
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        close(area, roc_auc(&scores, &truth).unwrap());
        assert!(roc_curve(&[0.3], &[true]).is_empty());
    }

    /// Two labels over four samples; label 0 has AUC 3/4, label 1 has AUC 1, and the
    /// pooled pairs give 11 of 15.
    fn multi_label() -> (Vec<Vec<f32>>, Vec<Vec<bool>>) {
        let scores = vec![vec![0.9, 0.2], vec![0.8, 0.7], vec![0.3, 0.6], vec![0.1, 0.4]];
        let truth = vec![
            vec![true, false],
            vec![false, true],
            vec![true, false],
            vec![false, false],
        ];
        (scores, truth)
    }

    #[test]
    fn multi_label_report() {
        let (scores, truth) = multi_label();
        let r = MultiLabelReport::new(&["MI", "HYP"], &scores, &truth, &[0.5, 0.5]).unwrap();
        close(r.per_class[0].auc.unwrap(), 0.75);
        close(r.per_class[1].auc.unwrap(), 1.0);
        close(r.macro_auc.unwrap(), 0.875);
        close(r.micro_auc.unwrap(), 11.0 / 15.0);
        let (mi, hyp) = (&r.per_class[0], &r.per_class[1]);
        close(mi.sensitivity, 0.5);
        close(mi.specificity, 0.5);
        close(mi.f1, 0.5);
        assert_eq!((mi.support, hyp.support), (2, 1));
        close(hyp.sensitivity, 1.0);
        close(hyp.specificity, 2.0 / 3.0);
        close(hyp.f1, 2.0 / 3.0);
        close(r.macro_f1, 7.0 / 12.0);
        assert!(matches!(
            MultiLabelReport::new(&["MI"], &scores, &truth, &[0.5]),
            Err(MetricsError::Shape(_))
        ));
    }

    #[test]
    fn best_thresholds_maximise_f1() {
        let (scores, truth) = multi_label();
        assert_eq!(best_f1_thresholds(&scores, &truth).unwrap(), [0.3, 0.7]);
        let none = vec![vec![false, false]; 4];
        assert_eq!(best_f1_thresholds(&scores, &none).unwrap(), [DEFAULT_THRESHOLD; 2]);
        assert!(best_f1_thresholds(&[], &[]).unwrap().is_empty());
    }

    #[test]
    fn bootstrap_ci_brackets_the_estimate() {
        let values: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64).collect();
        let mean = |idx: &[usize]| Some(idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64);
        let all: Vec<usize> = (0..values.len()).collect();
        let point = mean(&all).unwrap();
        let (lo, hi) = bootstrap_ci(values.len(), 500, 7, mean).unwrap();
        assert!(lo < point && point < hi, "{lo} {point} {hi}");
        assert!(hi - lo < 20.0);
        assert_eq!(bootstrap_ci(values.len(), 500, 7, mean), Some((lo, hi)));
        assert_eq!(bootstrap_ci(10, 50, 1, |_| None), None);
        assert_eq!(bootstrap_ci(0, 50, 1, mean), None);
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        close(m, 2.5);
        close(s, (5.0f64 / 3.0).sqrt());
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
        assert_eq!(mean_std(&[]), (0.0, 0.0));
        close(percentile(&[1.0, 2.0, 3.0], 0.25), 1.5);
    }

    #[test]
    fn cross_validation_summary() {
        let fold = |counts: Vec<Vec<u64>>| {
            let mut cm = ConfusionMatrix::new(["N", "S", "V"]);
            cm.counts = counts;
            ClassificationReport::from_confusion(&cm)
        };
        // S is absent from the second fold and so summarised over the first only.
        let a = fold(vec![vec![8, 1, 1], vec![1, 3, 0], vec![0, 0, 6]]);
        let b = fold(vec![vec![9, 0, 1], vec![0, 0, 0], vec![2, 0, 8]]);
        let cv = CrossValidationSummary::from_reports(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(cv.folds, 2);
        close(cv.accuracy.mean, (a.accuracy + b.accuracy) / 2.0);
        close(cv.accuracy.std, (a.accuracy - b.accuracy).abs() / 2f64.sqrt());
        close(cv.macro_avg.f1.mean, (a.macro_avg.f1 + b.macro_avg.f1) / 2.0);
        let s = &cv.per_class[1];
        assert_eq!(s.folds, 1);
        close(s.recall.mean, 0.75);
        assert_eq!(s.recall.std, 0.0);
        close(cv.ec57["V"].se.mean, (1.0 + 0.8) / 2.0);
        assert_eq!(cv.pooled.counts[2], [2, 0, 14]);
        assert_eq!(CrossValidationSummary::from_reports(&[]), Err(MetricsError::NoReports));
        let other = ClassificationReport::from_confusion(&ConfusionMatrix::new(["N"]));
        assert!(matches!(
            CrossValidationSummary::from_reports(&[a, other]),
            Err(MetricsError::ClassesDiffer { fold: 1, .. })
        ));
    }
}
