//! Measured faithfulness of feature attributions.
//!
//! - Deletion: replace the input's features by a baseline, most important first; a faithful
//!   explanation makes the class probability fall fast (a small area under the curve).
//! - Insertion: start from the baseline and put the input's features back, most important
//!   first; the probability should rise fast (a large area).
//!
//! Both are compared with the mean over random orders. With many features (the 64 patches
//! of an image) the curves may take several features per step. [`spearman`] compares two
//! explanations, for the model-randomisation check (attributions of the trained model
//! against those of a randomly initialised one should not agree).

use serde::Serialize;

use super::shap::{check_input, class_probabilities};
use super::{BatchClassifier, ExplainError, Features};
use crate::rng::SplitMix64;

/// Deletion and insertion curves of one input, for one class.
///
/// Deletion starts from the input and replaces features by `baseline` (`features.span()`
/// values) in a given order, recording the class probability before any removal and after
/// each step (`steps + 1` points; after step `k`, the first `k · M / steps` features of the
/// order, rounded down, are gone). Insertion starts from the baseline and puts the input's
/// features back in the same order (`steps + 1` points). Values after the span (RR
/// features) always stay the input's.
#[derive(Clone, Copy)]
pub struct DeletionTest<'a> {
    model: &'a dyn BatchClassifier,
    input: &'a [f32],
    baseline: &'a [f32],
    class: usize,
    features: &'a Features,
    steps: usize,
}

/// Mean deletion and insertion curves over random orders: the baseline a faithful
/// explanation must beat. It does not depend on the explanation, so one serves every method.
#[derive(Clone, Debug, Serialize)]
pub struct RandomCurves {
    pub deletion: Vec<f32>,
    pub insertion: Vec<f32>,
    /// Mean AUC over the orders (not the AUC of the mean curve, though they agree).
    pub deletion_auc: f32,
    pub insertion_auc: f32,
}

impl<'a> DeletionTest<'a> {
    /// Checks the sizes: `input` is one input of `model`, `baseline` covers the features'
    /// span, `steps` is between 1 and the number of features.
    pub fn new(
        model: &'a dyn BatchClassifier,
        input: &'a [f32],
        baseline: &'a [f32],
        class: usize,
        features: &'a Features,
        steps: usize,
    ) -> Result<Self, ExplainError> {
        let window = features.span();
        check_input(model, input, window)?;
        if baseline.len() != window {
            return Err(ExplainError::Invalid(format!(
                "baseline has {} values: need the features' {window}",
                baseline.len()
            )));
        }
        let m = features.len();
        if steps == 0 || steps > m {
            return Err(ExplainError::Invalid(format!(
                "steps = {steps}: need between 1 and the {m} features"
            )));
        }
        Ok(DeletionTest {
            model,
            input,
            baseline,
            class,
            features,
            steps,
        })
    }

    /// Deletion and insertion curves of one order of the features.
    pub fn curves(&self, order: &[usize]) -> Result<(Vec<f32>, Vec<f32>), ExplainError> {
        let mut curves = self.evaluate(&[order.to_vec()])?;
        Ok(curves.remove(0))
    }

    /// Mean curves over `orders` random orders, seeded by `seed`, from one batched
    /// evaluation.
    pub fn random(&self, orders: usize, seed: u64) -> Result<RandomCurves, ExplainError> {
        if orders == 0 {
            return Err(ExplainError::Invalid("random_orders = 0: need at least 1".to_string()));
        }
        let m = self.features.len();
        let mut rng = SplitMix64::new(seed);
        let orders: Vec<Vec<usize>> = (0..orders)
            .map(|_| {
                let mut order: Vec<usize> = (0..m).collect();
                // Fisher-Yates shuffle.
                for i in (1..m).rev() {
                    let j = ((rng.uniform() * (i + 1) as f64) as usize).min(i);
                    order.swap(i, j);
                }
                order
            })
            .collect();
        let curves = self.evaluate(&orders)?;
        let n = curves.len() as f32;
        let mut random = RandomCurves {
            deletion: vec![0.0; self.steps + 1],
            insertion: vec![0.0; self.steps + 1],
            deletion_auc: 0.0,
            insertion_auc: 0.0,
        };
        for (d, i) in &curves {
            random.deletion_auc += auc(d) / n;
            random.insertion_auc += auc(i) / n;
            for (r, v) in random.deletion.iter_mut().zip(d) {
                *r += v / n;
            }
            for (r, v) in random.insertion.iter_mut().zip(i) {
                *r += v / n;
            }
        }
        Ok(random)
    }

    /// Curves in the order of `values` (one per feature, most important first), with their
    /// AUCs against `random` (from [`DeletionTest::random`] on the same input).
    pub fn faithfulness(&self, values: &[f32], random: &RandomCurves) -> Result<Faithfulness, ExplainError> {
        let m = self.features.len();
        if values.len() != m {
            return Err(ExplainError::Invalid(format!(
                "feature values has {} values: need one per feature ({m})",
                values.len()
            )));
        }
        if random.deletion.len() != self.steps + 1 {
            return Err(ExplainError::Invalid(format!(
                "random curves of {} points: need {} (steps + 1)",
                random.deletion.len(),
                self.steps + 1
            )));
        }
        let (deletion, insertion) = self.curves(&most_important_first(values))?;
        Ok(Faithfulness {
            deletion_auc: auc(&deletion),
            insertion_auc: auc(&insertion),
            deletion,
            insertion,
            random_deletion: random.deletion.clone(),
            random_deletion_auc: random.deletion_auc,
            random_insertion_auc: random.insertion_auc,
        })
    }

    /// Deletion and insertion curves for each of `orders`, from one batched evaluation. The
    /// full input and the baseline, the ends of every curve, are evaluated once.
    fn evaluate(&self, orders: &[Vec<usize>]) -> Result<Vec<Curves>, ExplainError> {
        let m = self.features.len();
        for order in orders {
            let mut seen = vec![false; m];
            let permutation =
                order.len() == m && order.iter().all(|&i| i < m && !std::mem::replace(&mut seen[i], true));
            if !permutation {
                return Err(ExplainError::Invalid(format!(
                    "order {order:?}: need each of the {m} features once"
                )));
            }
        }
        // Rows: the input, the baseline, then per order the inner steps 1..steps of
        // deletion and then of insertion. Step k of deletion keeps all but the first
        // k·M/steps features of the order; step k of insertion keeps only those.
        let steps = self.steps;
        let inner = steps - 1;
        let mut present = vec![false; m];
        let rows = 2 + orders.len() * 2 * inner;
        let probs = class_probabilities(self.model, self.input, self.class, rows, |i, row| {
            if i == 0 {
                return;
            }
            let (inserting, order, k) = if i == 1 {
                (true, &orders[0], 0)
            } else {
                let j = i - 2;
                let order = &orders[j / (2 * inner)];
                (j % (2 * inner) >= inner, order, j % inner + 1)
            };
            present.fill(!inserting);
            for &f in &order[..k * m / steps] {
                present[f] = inserting;
            }
            self.features.compose(self.input, self.baseline, &present, row);
        })?;
        let (full, empty) = (probs[0], probs[1]);
        Ok((0..orders.len())
            .map(|o| {
                let c = &probs[2 + o * 2 * inner..2 + (o + 1) * 2 * inner];
                let mut deletion = vec![full];
                deletion.extend_from_slice(&c[..inner]);
                deletion.push(empty);
                let mut insertion = vec![empty];
                insertion.extend_from_slice(&c[inner..]);
                insertion.push(full);
                (deletion, insertion)
            })
            .collect())
    }
}

/// Area under `curve` by the trapezoidal rule, its points spread evenly over `[0, 1]`
/// (a single point counts as a constant curve; no points give 0).
pub fn auc(curve: &[f32]) -> f32 {
    match curve.len() {
        0 => 0.0,
        1 => curve[0],
        n => {
            let sum: f32 = curve.windows(2).map(|p| (p[0] + p[1]) / 2.0).sum();
            sum / (n - 1) as f32
        }
    }
}

/// Indices of `values` from the largest value to the smallest (ties in index order; NaN
/// counts as least important).
pub fn most_important_first(values: &[f32]) -> Vec<usize> {
    // -0.0 and 0.0 tie; NaN sorts with -∞.
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v + 0.0 };
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| key(values[b]).total_cmp(&key(values[a])).then(a.cmp(&b)));
    order
}

/// Deletion and insertion curves of an explanation, against random orders.
#[derive(Clone, Debug, Serialize)]
pub struct Faithfulness {
    /// Deletion curve in the explanation's order (most important first).
    pub deletion: Vec<f32>,
    /// Insertion curve in the explanation's order.
    pub insertion: Vec<f32>,
    /// Mean deletion curve over the random orders.
    pub random_deletion: Vec<f32>,
    pub deletion_auc: f32,
    pub insertion_auc: f32,
    /// Mean deletion AUC over random orders (a faithful explanation is below it).
    pub random_deletion_auc: f32,
    /// Mean insertion AUC over random orders (a faithful explanation is above it).
    pub random_insertion_auc: f32,
}

/// A deletion curve and an insertion curve.
type Curves = (Vec<f32>, Vec<f32>);

/// Spearman rank correlation of `a` and `b` (ties get their average rank). NaN when the
/// lengths differ, there are fewer than 2 values, a value is NaN, or one side is constant.
pub fn spearman(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.len() < 2 || a.iter().chain(b).any(|v| v.is_nan()) {
        return f32::NAN;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let mean = (n + 1.0) / 2.0; // the mean rank, ties or not
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - mean) * (y - mean);
        var_a += (x - mean) * (x - mean);
        var_b += (y - mean) * (y - mean);
    }
    if var_a == 0.0 || var_b == 0.0 {
        return f32::NAN;
    }
    (cov / (var_a * var_b).sqrt()) as f32
}

/// 1-based ranks, ties sharing their average rank.
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their mean:
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::super::shap::toy::{linear_effects, normals, Linear};
    use super::*;

    const WINDOW: usize = 48;
    const RR: usize = 3;

    fn setup() -> (Linear, Vec<f32>, Vec<f32>, Features) {
        let mut rng = SplitMix64::new(21);
        let model = Linear {
            w: normals(&mut rng, WINDOW + RR, 0.05),
        };
        let x = normals(&mut rng, WINDOW + RR, 1.0);
        let baseline = normals(&mut rng, WINDOW, 0.2);
        (model, x, baseline, Features::even(WINDOW, 12).unwrap())
    }

    #[test]
    fn curves_run_from_the_beat_to_the_baseline_and_back() {
        let (model, x, baseline, segments) = setup();
        let order: Vec<usize> = (0..12).rev().collect();
        let test = DeletionTest::new(&model, &x, &baseline, 0, &segments, 12).unwrap();
        let (deletion, insertion) = test.curves(&order).unwrap();
        assert_eq!((deletion.len(), insertion.len()), (13, 13));
        let fx = model.predict(&x).unwrap()[0][0];
        let mut at_baseline = baseline.clone();
        at_baseline.extend_from_slice(&x[WINDOW..]);
        let fb = model.predict(&at_baseline).unwrap()[0][0];
        assert!((deletion[0] - fx).abs() < 1e-6 && (deletion[12] - fb).abs() < 1e-6);
        assert!((insertion[0] - fb).abs() < 1e-6 && (insertion[12] - fx).abs() < 1e-6);
        // Removing the last segment first moves the output by that segment's effect.
        let effects = linear_effects(&model.w, &x, &baseline, &segments);
        assert!((deletion[0] - deletion[1] - effects[11]).abs() < 1e-5);
        assert!((insertion[1] - insertion[0] - effects[11]).abs() < 1e-5);
        // Every point of a curve in fewer steps is on the full curve: 3 segments per step.
        let coarse = DeletionTest::new(&model, &x, &baseline, 0, &segments, 4).unwrap();
        let (d4, i4) = coarse.curves(&order).unwrap();
        assert_eq!(d4.len(), 5);
        for k in 0..5 {
            assert!((d4[k] - deletion[3 * k]).abs() < 1e-6 && (i4[k] - insertion[3 * k]).abs() < 1e-6);
        }
        // One step: the input and the baseline.
        let one = DeletionTest::new(&model, &x, &baseline, 0, &segments, 1).unwrap();
        assert_eq!(
            one.curves(&order).unwrap(),
            (vec![deletion[0], deletion[12]], vec![insertion[0], insertion[12]])
        );
    }

    #[test]
    fn true_attributions_beat_random_orders() {
        let (model, x, baseline, segments) = setup();
        let effects = linear_effects(&model.w, &x, &baseline, &segments);
        let test = DeletionTest::new(&model, &x, &baseline, 0, &segments, 12).unwrap();
        let random = test.random(16, 1).unwrap();
        let f = test.faithfulness(&effects, &random).unwrap();
        assert!(f.deletion_auc < f.random_deletion_auc, "{f:?}");
        assert!(f.insertion_auc > f.random_insertion_auc, "{f:?}");
        assert_eq!(f.deletion_auc, auc(&f.deletion));
        assert_eq!(f.random_deletion, random.deletion);
        // The reversed explanation is the worst.
        let reversed: Vec<f32> = effects.iter().map(|v| -v).collect();
        let g = test.faithfulness(&reversed, &random).unwrap();
        assert!(g.deletion_auc > g.random_deletion_auc && g.insertion_auc < g.random_insertion_auc);
        // The random curves are seeded and are the means of their orders' curves.
        let again = test.random(16, 1).unwrap();
        assert_eq!(
            (again.deletion_auc, &again.insertion),
            (random.deletion_auc, &random.insertion)
        );
        assert!((auc(&random.deletion) - random.deletion_auc).abs() < 1e-5);
    }

    #[test]
    fn patches_are_deleted_whole() {
        // A 1 × 4 × 4 image in 2 × 2 patches; the model weighs only the top-left patch.
        let mut w = vec![0.0; 16];
        for i in [0, 1, 4, 5] {
            w[i] = 0.25;
        }
        let model = Linear { w };
        let x = vec![1.0; 16];
        let baseline = vec![0.0; 16];
        let patches = Features::patches(1, 4, 4, 2, 2).unwrap();
        let test = DeletionTest::new(&model, &x, &baseline, 0, &patches, 4).unwrap();
        let (deletion, insertion) = test.curves(&[0, 1, 2, 3]).unwrap();
        assert_eq!(deletion, vec![1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(insertion, vec![0.0, 1.0, 1.0, 1.0, 1.0]);
        let f = test
            .faithfulness(&[4.0, 1.0, 2.0, 3.0], &test.random(8, 3).unwrap())
            .unwrap();
        assert_eq!(f.deletion_auc, 0.125);
        assert!(f.random_deletion_auc > 0.125);
    }

    #[test]
    fn auc_of_a_constant_is_the_constant() {
        assert!((auc(&[0.7; 13]) - 0.7).abs() < 1e-6);
        assert_eq!(auc(&[0.4]), 0.4);
        assert_eq!(auc(&[]), 0.0);
        assert!((auc(&[0.0, 1.0]) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn most_important_first_sorts_descending_with_ties_by_index() {
        assert_eq!(
            most_important_first(&[0.1, 0.5, -0.2, 0.5, f32::NAN, 0.0, -0.0]),
            vec![1, 3, 0, 5, 6, 2, 4]
        );
    }

    #[test]
    fn spearman_of_same_and_reversed_orders() {
        let a = [0.3, 1.0, -2.0, 0.5, 4.0];
        let reversed: Vec<f32> = a.iter().map(|v| -v).collect();
        assert!((spearman(&a, &a) - 1.0).abs() < 1e-6);
        assert!((spearman(&a, &reversed) + 1.0).abs() < 1e-6);
        let tied = [1.0, 2.0, 2.0, 3.0];
        assert!((spearman(&tied, &tied) - 1.0).abs() < 1e-6);
        assert!((spearman(&tied, &[1.0, 3.0, 2.0, 4.0]) - 0.9486833).abs() < 1e-5);
        assert!(spearman(&a, &a[1..]).is_nan());
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn bad_sizes_are_clear_errors() {
        let (model, x, baseline, segments) = setup();
        let order: Vec<usize> = (0..12).collect();
        let new = |x, baseline, class, steps| DeletionTest::new(&model, x, baseline, class, &segments, steps);
        let err = |r: Result<DeletionTest, ExplainError>| r.err().unwrap().to_string();
        assert!(err(new(&x[1..], &baseline, 0, 12)).contains("input has"));
        assert!(err(new(&x, &baseline[1..], 0, 12)).contains("baseline"));
        assert!(err(new(&x, &baseline, 0, 0)).contains("steps"));
        assert!(err(new(&x, &baseline, 0, 13)).contains("steps"));
        let test = new(&x, &baseline, 0, 12).unwrap();
        let run = |order: &[usize]| test.curves(order).unwrap_err().to_string();
        assert!(run(&order[1..]).contains("order"));
        assert!(run(&[0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).contains("order"));
        assert!(run(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]).contains("order"));
        let wrong_class = new(&x, &baseline, 2, 12).unwrap();
        assert!(wrong_class
            .curves(&order)
            .unwrap_err()
            .to_string()
            .contains("class = 2"));
        let too_long = Features::even(WINDOW + RR + 1, 12).unwrap();
        let err = DeletionTest::new(&model, &x, &baseline, 0, &too_long, 12)
            .err()
            .unwrap();
        assert!(err.to_string().contains("features cover"));
        let random = test.random(4, 0).unwrap();
        let err = test.faithfulness(&[0.0; 11], &random).unwrap_err();
        assert!(err.to_string().contains("feature values"));
        assert!(test.random(0, 0).unwrap_err().to_string().contains("random_orders"));
        let coarse = new(&x, &baseline, 0, 6).unwrap();
        assert!(coarse
            .faithfulness(&[0.0; 12], &random)
            .unwrap_err()
            .to_string()
            .contains("points"));
    }
}
