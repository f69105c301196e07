//! Measured faithfulness of segment attributions.
//!
//! - Deletion: replace the beat's segments by a baseline, most important first; a faithful
//!   explanation makes the class probability fall fast (a small area under the curve).
//! - Insertion: start from the baseline and put the beat's segments back, most important
//!   first; the probability should rise fast (a large area).
//!
//! Both are compared with the mean over random orders. [`spearman`] compares two
//! explanations, for the model-randomisation check (attributions of the trained model
//! against those of a randomly initialised one should not agree).

use serde::Serialize;

use super::shap::{check_input, class_probabilities};
use super::{BatchClassifier, ExplainError, Segments};
use crate::rng::SplitMix64;

/// Deletion and insertion curves of one order of segments.
///
/// Deletion starts from the beat and replaces segments by `baseline` (`window` values) in
/// `order`, recording the class probability before any removal and after each (M + 1
/// points). Insertion starts from the baseline and puts the beat's segments back in `order`
/// (M + 1 points). Values after the window (RR features) always stay the input's.
pub fn deletion_insertion(
    model: &dyn BatchClassifier,
    input: &[f32],
    window: usize,
    baseline: &[f32],
    class: usize,
    segments: &Segments,
    order: &[usize],
) -> Result<(Vec<f32>, Vec<f32>), ExplainError> {
    let mut curves = curves(model, input, window, baseline, class, segments, &[order.to_vec()])?;
    Ok(curves.remove(0))
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

/// Deletion and insertion curves of `input` in the order of `segment_values` (one per
/// segment, most important first), and their AUCs against the mean over `random_orders`
/// random orders (seeded by `seed`). All curves are evaluated in one batch.
#[allow(clippy::too_many_arguments)] // mirrors deletion_insertion plus the explanation and the random orders
pub fn faithfulness(
    model: &dyn BatchClassifier,
    input: &[f32],
    window: usize,
    baseline: &[f32],
    class: usize,
    segments: &Segments,
    segment_values: &[f32],
    random_orders: usize,
    seed: u64,
) -> Result<Faithfulness, ExplainError> {
    let m = segments.len();
    if segment_values.len() != m {
        return Err(ExplainError::Invalid(format!(
            "segment values has {} values: need one per segment ({m})",
            segment_values.len()
        )));
    }
    if random_orders == 0 {
        return Err(ExplainError::Invalid("random_orders = 0: need at least 1".to_string()));
    }
    let mut rng = SplitMix64::new(seed);
    let mut orders = vec![most_important_first(segment_values)];
    for _ in 0..random_orders {
        let mut order: Vec<usize> = (0..m).collect();
        // Fisher-Yates shuffle.
        for i in (1..m).rev() {
            let j = ((rng.uniform() * (i + 1) as f64) as usize).min(i);
            order.swap(i, j);
        }
        orders.push(order);
    }
    let mut curves = curves(model, input, window, baseline, class, segments, &orders)?.into_iter();
    let (deletion, insertion) = curves.next().unwrap_or_default();
    let (mut random_deletion, mut random_insertion) = (0.0, 0.0);
    let mut random_curve = vec![0.0; deletion.len()];
    for (d, i) in curves {
        random_deletion += auc(&d) / random_orders as f32;
        random_insertion += auc(&i) / random_orders as f32;
        for (r, v) in random_curve.iter_mut().zip(&d) {
            *r += v / random_orders as f32;
        }
    }
    Ok(Faithfulness {
        deletion_auc: auc(&deletion),
        insertion_auc: auc(&insertion),
        deletion,
        insertion,
        random_deletion: random_curve,
        random_deletion_auc: random_deletion,
        random_insertion_auc: random_insertion,
    })
}

/// A deletion curve and an insertion curve.
type Curves = (Vec<f32>, Vec<f32>);

/// Deletion and insertion curves for each of `orders`, from one batched evaluation.
fn curves(
    model: &dyn BatchClassifier,
    input: &[f32],
    window: usize,
    baseline: &[f32],
    class: usize,
    segments: &Segments,
    orders: &[Vec<usize>],
) -> Result<Vec<Curves>, ExplainError> {
    check_input(model, input, window)?;
    if baseline.len() != window {
        return Err(ExplainError::Invalid(format!(
            "baseline has {} values: need the window's {window}",
            baseline.len()
        )));
    }
    let m = segments.len();
    let covered = segments.ranges().last().map_or(0, |r| r.1);
    if m == 0 || covered != window {
        return Err(ExplainError::Invalid(format!(
            "segments cover {covered} samples: need the window's {window}"
        )));
    }
    for order in orders {
        let mut seen = vec![false; m];
        let permutation = order.len() == m && order.iter().all(|&i| i < m && !std::mem::replace(&mut seen[i], true));
        if !permutation {
            return Err(ExplainError::Invalid(format!(
                "order {order:?}: need each of the {m} segments once"
            )));
        }
    }

    // Per order: M + 1 deletion steps, then M + 1 insertion steps. Step k of deletion keeps
    // all but the first k segments of the order; step k of insertion keeps only those.
    let steps = m + 1;
    let beat = &input[..window];
    let mut present = vec![false; m];
    let probs = class_probabilities(model, input, class, orders.len() * 2 * steps, |i, row| {
        let order = &orders[i / (2 * steps)];
        let (inserting, k) = ((i % (2 * steps)) >= steps, i % steps);
        present.fill(!inserting);
        for &s in &order[..k] {
            present[s] = inserting;
        }
        segments.compose(beat, baseline, &present, row);
    })?;
    Ok(probs
        .chunks(2 * steps)
        .map(|c| (c[..steps].to_vec(), c[steps..].to_vec()))
        .collect())
}

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

    fn setup() -> (Linear, Vec<f32>, Vec<f32>, Segments) {
        let mut rng = SplitMix64::new(21);
        let model = Linear {
            w: normals(&mut rng, WINDOW + RR, 0.05),
        };
        let x = normals(&mut rng, WINDOW + RR, 1.0);
        let baseline = normals(&mut rng, WINDOW, 0.2);
        (model, x, baseline, Segments::even(WINDOW, 12).unwrap())
    }

    #[test]
    fn curves_run_from_the_beat_to_the_baseline_and_back() {
        let (model, x, baseline, segments) = setup();
        let order: Vec<usize> = (0..12).rev().collect();
        let (deletion, insertion) = deletion_insertion(&model, &x, WINDOW, &baseline, 0, &segments, &order).unwrap();
        assert_eq!((deletion.len(), insertion.len()), (13, 13));
        let fx = model.predict(&x).unwrap()[0][0];
        let mut at_baseline = baseline.clone();
        at_baseline.extend_from_slice(&x[WINDOW..]);
        let fb = model.predict(&at_baseline).unwrap()[0][0];
        assert!((deletion[0] - fx).abs() < 1e-6 && (deletion[12] - fb).abs() < 1e-6);
        assert!((insertion[0] - fb).abs() < 1e-6 && (insertion[12] - fx).abs() < 1e-6);
        // Removing the last segment first moves the output by that segment's effect.
        let effects = linear_effects(&model.w, &x, &baseline, segments.ranges());
        assert!((deletion[0] - deletion[1] - effects[11]).abs() < 1e-5);
        assert!((insertion[1] - insertion[0] - effects[11]).abs() < 1e-5);
    }

    #[test]
    fn true_attributions_beat_random_orders() {
        let (model, x, baseline, segments) = setup();
        let effects = linear_effects(&model.w, &x, &baseline, segments.ranges());
        let f = faithfulness(&model, &x, WINDOW, &baseline, 0, &segments, &effects, 16, 1).unwrap();
        assert!(f.deletion_auc < f.random_deletion_auc, "{f:?}");
        assert!(f.insertion_auc > f.random_insertion_auc, "{f:?}");
        assert_eq!(f.deletion_auc, auc(&f.deletion));
        // The reversed explanation is the worst.
        let reversed: Vec<f32> = effects.iter().map(|v| -v).collect();
        let g = faithfulness(&model, &x, WINDOW, &baseline, 0, &segments, &reversed, 16, 1).unwrap();
        assert!(g.deletion_auc > g.random_deletion_auc && g.insertion_auc < g.random_insertion_auc);
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
        let run = |x: &[f32], baseline: &[f32], class: usize, order: &[usize]| {
            deletion_insertion(&model, x, WINDOW, baseline, class, &segments, order)
                .unwrap_err()
                .to_string()
        };
        assert!(run(&x[1..], &baseline, 0, &order).contains("input has"));
        assert!(run(&x, &baseline[1..], 0, &order).contains("baseline"));
        assert!(run(&x, &baseline, 2, &order).contains("class = 2"));
        assert!(run(&x, &baseline, 0, &order[1..]).contains("order"));
        assert!(run(&x, &baseline, 0, &[0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).contains("order"));
        assert!(run(&x, &baseline, 0, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]).contains("order"));
        let other = Segments::even(WINDOW - 1, 12).unwrap();
        let err = deletion_insertion(&model, &x, WINDOW, &baseline, 0, &other, &order).unwrap_err();
        assert!(err.to_string().contains("segments cover"));
        let values = vec![0.0; 11];
        let err = faithfulness(&model, &x, WINDOW, &baseline, 0, &segments, &values, 4, 0).unwrap_err();
        assert!(err.to_string().contains("segment values"));
        let err = faithfulness(&model, &x, WINDOW, &baseline, 0, &segments, &[0.0; 12], 0, 0).unwrap_err();
        assert!(err.to_string().contains("random_orders"));
    }
}
