//! Kernel SHAP (Lundberg & Lee 2017) over [`Features`]: segments of a beat window, patches of
//! an image, lead × time segments of a record.
//!
//! A coalition of features is valued by the model's class probability for the input with
//! the absent features taken from a background input, averaged over the background set. The
//! Shapley values are the weighted least-squares fit of the coalition values on the
//! coalitions' on/off vectors, with the Shapley kernel weights and the efficiency constraint
//! (the values sum to `f(x) - E[f]`) imposed exactly.
//!
//! This file also holds the small helpers that LIME and the faithfulness curves share:
//! input checks, batched evaluation of the model and a dense linear solver.

use super::{Attribution, BatchClassifier, ExplainError, Features};
use crate::rng::SplitMix64;

/// Most inputs sent to the model in one `predict` call, to bound the memory of a batch.
pub(super) const MAX_BATCH: usize = 4096;

/// Ridge added to the normal equations so that a rank-deficient sample still solves.
const RIDGE: f64 = 1e-9;

/// Settings of [`kernel_shap`].
#[derive(Clone, Debug, PartialEq)]
pub struct ShapSettings {
    /// Coalitions evaluated. Sampled coalitions come with their complements, so they are
    /// counted in pairs (an odd count is rounded up). When every coalition but the empty and
    /// the full one fits (`2^features - 2 <= coalitions`), all are enumerated with the exact
    /// Shapley kernel weights and the result is the exact Shapley values.
    pub coalitions: usize,
    /// Seed of the coalition sampling.
    pub seed: u64,
}

impl Default for ShapSettings {
    fn default() -> Self {
        ShapSettings {
            coalitions: 64,
            seed: 0,
        }
    }
}

/// Kernel SHAP attributions of the probability of `class` for `input` to `features`
/// (which cover its first `features.span()` values: the window, the image, the record).
///
/// `background` holds `n × span` values: background inputs (drawn from training data). An
/// absent feature takes its values from a background input, and a coalition's value is the
/// mean over the background inputs; values after the span (RR features) always stay the
/// input's. The attributions sum to `probability - base_value`, where `base_value` is the
/// mean output over the background.
pub fn kernel_shap(
    model: &dyn BatchClassifier,
    input: &[f32],
    features: &Features,
    background: &[f32],
    class: usize,
    settings: &ShapSettings,
) -> Result<Attribution, ExplainError> {
    let window = features.span();
    check_input(model, input, window)?;
    if background.is_empty() || !background.len().is_multiple_of(window) {
        return Err(ExplainError::Invalid(format!(
            "background has {} values: need one or more inputs of {window} values",
            background.len()
        )));
    }
    if settings.coalitions == 0 {
        return Err(ExplainError::Invalid("coalitions = 0: need at least 1".to_string()));
    }
    let m = features.len();
    let n_bg = background.len() / window;
    let (masks, weights) = coalitions(m, settings.coalitions, settings.seed);

    // Rows: the input itself, then for the empty coalition and each coalition in turn, one
    // row per background input.
    let none = vec![false; m];
    let rows = 1 + n_bg * (1 + masks.len());
    let probs = class_probabilities(model, input, class, rows, |i, row| {
        if i == 0 {
            return;
        }
        let (coalition, b) = ((i - 1) / n_bg, (i - 1) % n_bg);
        let present = if coalition == 0 { &none } else { &masks[coalition - 1] };
        features.compose(input, &background[b * window..(b + 1) * window], present, row);
    })?;

    let fx = probs[0] as f64;
    let mut values = probs[1..]
        .chunks(n_bg)
        .map(|group| group.iter().map(|&p| p as f64).sum::<f64>() / n_bg as f64);
    let base = values.next().unwrap_or(fx);
    let gains: Vec<f64> = values.map(|v| v - base).collect();
    let phi = constrained_fit(m, &masks, &weights, &gains, fx - base)?;

    let phi: Vec<f32> = phi.iter().map(|&v| v as f32).collect();
    Ok(Attribution {
        method: "shap".to_string(),
        class,
        probability: probs[0],
        per_sample: features.spread(&phi),
        features: features.values(&phi),
        base_value: Some(base as f32),
        fit_r2: None,
    })
}

/// The coalitions to evaluate (on/off per segment) and their regression weights.
fn coalitions(m: usize, budget: usize, seed: u64) -> (Vec<Vec<bool>>, Vec<f64>) {
    let mut masks = Vec::new();
    let mut weights = Vec::new();
    if m < 63 && (1u64 << m) - 2 <= budget as u64 {
        // Every coalition but the empty and the full one (their values are pinned by the
        // constraint), with the Shapley kernel weight of its size.
        for bits in 1..(1u64 << m) - 1 {
            let mask: Vec<bool> = (0..m).map(|i| (bits >> i) & 1 == 1).collect();
            let s = mask.iter().filter(|&&on| on).count();
            weights.push((m - 1) as f64 / (binomial(m, s) * (s * (m - s)) as f64));
            masks.push(mask);
        }
        return (masks, weights);
    }

    // Sizes drawn with probability ∝ (M-1)/(s(M-s)), the kernel's total weight per size, so
    // that the samples can carry equal weights.
    let size_weights: Vec<f64> = (1..m).map(|s| 1.0 / (s * (m - s)) as f64).collect();
    let total: f64 = size_weights.iter().sum();
    let mut rng = SplitMix64::new(seed);
    let mut order: Vec<usize> = (0..m).collect();
    for _ in 0..budget.div_ceil(2) {
        let mut u = rng.uniform() * total;
        let mut s = m - 1;
        for (k, &w) in size_weights.iter().enumerate() {
            if u < w {
                s = k + 1;
                break;
            }
            u -= w;
        }
        // A uniformly random subset of size s: the head of a partial Fisher-Yates shuffle.
        for i in 0..s {
            let j = i + ((rng.uniform() * (m - i) as f64) as usize).min(m - i - 1);
            order.swap(i, j);
        }
        let mut mask = vec![false; m];
        for &i in &order[..s] {
            mask[i] = true;
        }
        let complement = mask.iter().map(|&on| !on).collect();
        masks.push(mask);
        masks.push(complement);
        weights.extend([1.0, 1.0]);
    }
    (masks, weights)
}

/// `n choose k` in floating point.
fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Weighted least squares of `gains` (coalition value minus base) on the masks, under the
/// constraint that the coefficients sum to `total`. As the shap package does, the last
/// coefficient is eliminated (`φ_last = total - Σ others`), leaving an unconstrained fit.
fn constrained_fit(
    m: usize,
    masks: &[Vec<bool>],
    weights: &[f64],
    gains: &[f64],
    total: f64,
) -> Result<Vec<f64>, ExplainError> {
    if m == 1 {
        return Ok(vec![total]);
    }
    let n = m - 1;
    let weight_sum: f64 = weights.iter().sum();
    let mut normal = vec![0.0; n * n];
    let mut rhs = vec![0.0; n];
    let mut a = vec![0.0; n];
    for ((mask, &w), &y) in masks.iter().zip(weights).zip(gains) {
        // Weights normalised to sum 1 keep the ridge equally small whatever their scale.
        let w = w / weight_sum;
        let last = if mask[n] { 1.0 } else { 0.0 };
        for (a_i, &on) in a.iter_mut().zip(mask) {
            *a_i = if on { 1.0 } else { 0.0 } - last;
        }
        let b = y - last * total;
        for i in 0..n {
            rhs[i] += w * a[i] * b;
            for j in 0..n {
                normal[i * n + j] += w * a[i] * a[j];
            }
        }
    }
    for i in 0..n {
        normal[i * n + i] += RIDGE;
    }
    let mut phi = solve(normal, rhs).ok_or_else(|| {
        ExplainError::Invalid("the SHAP regression could not be solved (non-finite values?)".to_string())
    })?;
    phi.push(total - phi.iter().sum::<f64>());
    Ok(phi)
}

/// Checks that `input` is one input of `model` and that `window` (the features' span) fits
/// in it.
pub(super) fn check_input(model: &dyn BatchClassifier, input: &[f32], window: usize) -> Result<(), ExplainError> {
    let input_len = model.input_len();
    if input.len() != input_len {
        return Err(ExplainError::Invalid(format!(
            "input has {} values but the model takes {input_len}",
            input.len()
        )));
    }
    if window == 0 || window > input_len {
        return Err(ExplainError::Invalid(format!(
            "the features cover {window} values: need between 1 and the model's {input_len} input values"
        )));
    }
    Ok(())
}

/// The model's probability of `class` for `count` inputs, built by `fill(i, row)` on a copy
/// of `input` (so that whatever `fill` leaves alone stays the input's). Inputs go to the
/// model in batches of at most [`MAX_BATCH`], built one batch at a time.
pub(super) fn class_probabilities(
    model: &dyn BatchClassifier,
    input: &[f32],
    class: usize,
    count: usize,
    mut fill: impl FnMut(usize, &mut [f32]),
) -> Result<Vec<f32>, ExplainError> {
    let len = input.len();
    let mut probs = Vec::with_capacity(count);
    let mut batch = Vec::with_capacity(count.min(MAX_BATCH) * len);
    let mut first = 0;
    while first < count {
        let n = (count - first).min(MAX_BATCH);
        batch.clear();
        for i in first..first + n {
            let at = batch.len();
            batch.extend_from_slice(input);
            fill(i, &mut batch[at..at + len]);
        }
        let rows = model.predict(&batch)?;
        if rows.len() != n {
            return Err(ExplainError::Model(format!(
                "the model returned {} rows for {n} inputs",
                rows.len()
            )));
        }
        for row in rows {
            let p = *row.get(class).ok_or_else(|| {
                ExplainError::Invalid(format!("class = {class}: the model has only {} outputs", row.len()))
            })?;
            if !p.is_finite() {
                return Err(ExplainError::Model(format!("the model returned a probability of {p}")));
            }
            probs.push(p);
        }
        first += n;
    }
    Ok(probs)
}

/// Solves the dense `n × n` system `matrix · x = rhs` (row-major) by Gaussian elimination
/// with partial pivoting; `None` if it is singular or not finite.
pub(super) fn solve(mut matrix: Vec<f64>, mut rhs: Vec<f64>) -> Option<Vec<f64>> {
    let n = rhs.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&a, &b| matrix[a * n + col].abs().total_cmp(&matrix[b * n + col].abs()))?;
        let p = matrix[pivot * n + col];
        if !p.is_finite() || p.abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for j in 0..n {
                matrix.swap(col * n + j, pivot * n + j);
            }
            rhs.swap(col, pivot);
        }
        for row in col + 1..n {
            let factor = matrix[row * n + col] / p;
            if factor == 0.0 {
                continue;
            }
            for j in col..n {
                matrix[row * n + j] -= factor * matrix[col * n + j];
            }
            rhs[row] -= factor * rhs[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|j| matrix[row * n + j] * x[j]).sum();
        x[row] = (rhs[row] - tail) / matrix[row * n + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Toy models with known explanations, shared by the explanation tests.
#[cfg(test)]
pub(super) mod toy {
    use super::super::{BatchClassifier, ExplainError, Features};
    use crate::rng::SplitMix64;

    /// Outputs `[w·x, 1 - w·x]`: every explanation of class 0 is known exactly.
    pub struct Linear {
        pub w: Vec<f32>,
    }

    impl BatchClassifier for Linear {
        fn input_len(&self) -> usize {
            self.w.len()
        }

        fn predict(&self, inputs: &[f32]) -> Result<Vec<Vec<f32>>, ExplainError> {
            Ok(inputs
                .chunks(self.w.len())
                .map(|x| {
                    let p: f32 = x.iter().zip(&self.w).map(|(a, b)| a * b).sum();
                    vec![p, 1.0 - p]
                })
                .collect())
        }
    }

    /// Softmax of two linear logits: a non-linear model.
    pub struct Softmax {
        pub w0: Vec<f32>,
        pub w1: Vec<f32>,
    }

    impl BatchClassifier for Softmax {
        fn input_len(&self) -> usize {
            self.w0.len()
        }

        fn predict(&self, inputs: &[f32]) -> Result<Vec<Vec<f32>>, ExplainError> {
            Ok(inputs
                .chunks(self.w0.len())
                .map(|x| {
                    let z0: f32 = x.iter().zip(&self.w0).map(|(a, b)| a * b).sum();
                    let z1: f32 = x.iter().zip(&self.w1).map(|(a, b)| a * b).sum();
                    let p0 = 1.0 / (1.0 + (z1 - z0).exp());
                    vec![p0, 1.0 - p0]
                })
                .collect())
        }
    }

    /// `n` standard normal values times `scale`.
    pub fn normals(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| rng.normal() as f32 * scale).collect()
    }

    /// Σ_{j in feature} w_j (x_j - reference_j) for each feature.
    pub fn linear_effects(w: &[f32], x: &[f32], reference: &[f32], features: &Features) -> Vec<f32> {
        (0..features.len())
            .map(|i| {
                let ranges = features.ranges(i).iter();
                ranges
                    .flat_map(|&(s, e)| s..e)
                    .map(|j| w[j] * (x[j] - reference[j]))
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::toy::{linear_effects, normals, Linear, Softmax};
    use super::*;

    const WINDOW: usize = 48;
    const RR: usize = 3;

    fn setup(seed: u64, n_bg: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut rng = SplitMix64::new(seed);
        let w = normals(&mut rng, WINDOW + RR, 0.05);
        let x = normals(&mut rng, WINDOW + RR, 1.0);
        let background = normals(&mut rng, n_bg * WINDOW, 1.0);
        (w, x, background)
    }

    fn background_mean(background: &[f32]) -> Vec<f32> {
        super::super::mean_window(background, WINDOW)
    }

    fn settings(coalitions: usize, seed: u64) -> ShapSettings {
        ShapSettings { coalitions, seed }
    }

    fn check_linear(segments: usize, coalitions: usize) {
        let (w, x, background) = setup(7, 5);
        let model = Linear { w: w.clone() };
        let features = Features::even(WINDOW, segments).unwrap();
        let a = kernel_shap(&model, &x, &features, &background, 0, &settings(coalitions, 3)).unwrap();
        let expected = linear_effects(&w, &x, &background_mean(&background), &features);
        assert_eq!(a.method, "shap");
        assert_eq!(a.features.len(), segments);
        assert_eq!(a.per_sample.len(), WINDOW);
        for (got, want) in a.features.iter().zip(&expected) {
            assert!((got.value - want).abs() < 1e-4, "{} vs {want}", got.value);
        }
        let fx = model.predict(&x).unwrap()[0][0];
        assert!((a.probability - fx).abs() < 1e-6);
        let sum: f32 = a.features.iter().map(|s| s.value).sum();
        assert!((sum - (a.probability - a.base_value.unwrap())).abs() < 1e-5);
    }

    #[test]
    fn enumerated_coalitions_give_exact_values_on_a_linear_model() {
        check_linear(6, 62);
    }

    #[test]
    fn sampled_coalitions_give_exact_values_on_a_linear_model() {
        check_linear(12, 64);
    }

    #[test]
    fn attributions_sum_to_output_minus_base_on_a_nonlinear_model() {
        let mut rng = SplitMix64::new(11);
        let model = Softmax {
            w0: normals(&mut rng, WINDOW + RR, 0.3),
            w1: normals(&mut rng, WINDOW + RR, 0.3),
        };
        let x = normals(&mut rng, WINDOW + RR, 1.0);
        let background = normals(&mut rng, 4 * WINDOW, 1.0);
        for (segments, coalitions) in [(6, 62), (12, 64), (12, 7)] {
            let features = Features::even(WINDOW, segments).unwrap();
            let a = kernel_shap(&model, &x, &features, &background, 0, &settings(coalitions, 5)).unwrap();
            let sum: f32 = a.features.iter().map(|s| s.value).sum();
            let gap = a.probability - a.base_value.unwrap();
            assert!((sum - gap).abs() < 1e-5, "{sum} vs {gap}");
            // The base value is the mean output over the background beats.
            let mut inputs = Vec::new();
            for b in background.chunks(WINDOW) {
                inputs.extend_from_slice(b);
                inputs.extend_from_slice(&x[WINDOW..]);
            }
            let rows = model.predict(&inputs).unwrap();
            let base = rows.iter().map(|r| r[0]).sum::<f32>() / rows.len() as f32;
            assert!((a.base_value.unwrap() - base).abs() < 1e-6);
        }
    }

    #[test]
    fn image_patches_and_lead_segments_keep_the_sum_and_recover_a_linear_model() {
        // A 2-channel 6 × 8 image (96 values) in 3 × 4 patches, and the same values as 4
        // leads of 24 samples in 3 segments each: 12 features either way.
        let mut rng = SplitMix64::new(17);
        let len = 2 * 6 * 8;
        let x = normals(&mut rng, len, 1.0);
        let background = normals(&mut rng, 3 * len, 1.0);
        let nonlinear = Softmax {
            w0: normals(&mut rng, len, 0.3),
            w1: normals(&mut rng, len, 0.3),
        };
        let linear = Linear {
            w: normals(&mut rng, len, 0.05),
        };
        let mean = super::super::mean_window(&background, len);
        for features in [
            Features::patches(2, 6, 8, 3, 4).unwrap(),
            Features::lead_segments(4, 24, 3).unwrap(),
        ] {
            for coalitions in [64, 4094] {
                let a = kernel_shap(&nonlinear, &x, &features, &background, 0, &settings(coalitions, 2)).unwrap();
                assert_eq!((a.features.len(), a.per_sample.len()), (12, len));
                let sum: f32 = a.features.iter().map(|f| f.value).sum();
                let gap = a.probability - a.base_value.unwrap();
                assert!((sum - gap).abs() < 1e-5, "{sum} vs {gap}");
                for (mean, f) in features.means(&a.per_sample).iter().zip(&a.features) {
                    assert!((mean - f.value).abs() < 1e-6, "{mean} vs {}", f.value);
                }
            }
            // Enumerated coalitions (2^12 − 2 = 4094) recover a linear model exactly.
            let a = kernel_shap(&linear, &x, &features, &background, 0, &settings(4094, 0)).unwrap();
            let expected = linear_effects(&linear.w, &x, &mean, &features);
            for (got, want) in a.features.iter().zip(&expected) {
                assert!((got.value - want).abs() < 1e-4, "{} vs {want}", got.value);
            }
        }
    }

    #[test]
    fn enumeration_matches_the_shapley_formula_on_a_nonlinear_model() {
        let mut rng = SplitMix64::new(13);
        let model = Softmax {
            w0: normals(&mut rng, WINDOW + RR, 0.4),
            w1: normals(&mut rng, WINDOW + RR, 0.4),
        };
        let x = normals(&mut rng, WINDOW + RR, 1.0);
        let background = normals(&mut rng, 3 * WINDOW, 1.0);
        let m = 4;
        let features = Features::even(WINDOW, m).unwrap();
        // v(S) by brute force: the mean output over the background with S from the beat.
        let value = |bits: usize| {
            let present: Vec<bool> = (0..m).map(|i| (bits >> i) & 1 == 1).collect();
            let outputs: Vec<f64> = background
                .chunks(WINDOW)
                .map(|b| {
                    let mut row = x.clone();
                    features.compose(&x, b, &present, &mut row);
                    model.predict(&row).unwrap()[0][0] as f64
                })
                .collect();
            outputs.iter().sum::<f64>() / outputs.len() as f64
        };
        let factorial = |n: usize| (1..=n).product::<usize>() as f64;
        let a = kernel_shap(&model, &x, &features, &background, 0, &settings(14, 0)).unwrap();
        for i in 0..m {
            let mut phi = 0.0;
            for bits in (0..1usize << m).filter(|b| (b >> i) & 1 == 0) {
                let s = bits.count_ones() as usize;
                phi += factorial(s) * factorial(m - s - 1) / factorial(m) * (value(bits | 1 << i) - value(bits));
            }
            assert!(
                (a.features[i].value as f64 - phi).abs() < 1e-5,
                "{i}: {} vs {phi}",
                a.features[i].value
            );
        }
    }

    #[test]
    fn sampling_is_seeded() {
        let (w, x, background) = setup(2, 3);
        let model = Softmax {
            w0: w.clone(),
            w1: w.iter().rev().copied().collect(),
        };
        let features = Features::even(WINDOW, 12).unwrap();
        let settings = ShapSettings::default();
        let a = kernel_shap(&model, &x, &features, &background, 1, &settings).unwrap();
        let b = kernel_shap(&model, &x, &features, &background, 1, &settings).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_single_segment_gets_the_whole_gap() {
        let (w, x, background) = setup(4, 2);
        let model = Linear { w };
        let features = Features::even(WINDOW, 1).unwrap();
        let a = kernel_shap(&model, &x, &features, &background, 0, &ShapSettings::default()).unwrap();
        assert!((a.features[0].value - (a.probability - a.base_value.unwrap())).abs() < 1e-6);
    }

    #[test]
    fn bad_sizes_are_clear_errors() {
        let (w, x, background) = setup(1, 2);
        let model = Linear { w };
        let ok = ShapSettings::default();
        let features = Features::even(WINDOW, 12).unwrap();
        let too_long = Features::even(WINDOW + RR + 1, 12).unwrap();
        let message = |r: Result<Attribution, ExplainError>| r.unwrap_err().to_string();
        assert!(message(kernel_shap(&model, &x[1..], &features, &background, 0, &ok)).contains("input has"));
        assert!(message(kernel_shap(&model, &x, &too_long, &background, 0, &ok)).contains("features cover"));
        assert!(message(kernel_shap(&model, &x, &features, &[], 0, &ok)).contains("background"));
        assert!(message(kernel_shap(&model, &x, &features, &background[1..], 0, &ok)).contains("background"));
        assert!(message(kernel_shap(&model, &x, &features, &background, 2, &ok)).contains("class = 2"));
        let no_coalitions = ShapSettings { coalitions: 0, ..ok };
        assert!(message(kernel_shap(&model, &x, &features, &background, 0, &no_coalitions)).contains("coalitions"));
    }

    #[test]
    fn solve_handles_pivoting_and_singular_systems() {
        let x = solve(vec![0.0, 1.0, 2.0, 0.0], vec![3.0, 4.0]).unwrap();
        assert_eq!(x, vec![2.0, 3.0]);
        assert!(solve(vec![1.0, 2.0, 2.0, 4.0], vec![1.0, 2.0]).is_none());
    }
}
