//! LIME (Ribeiro et al. 2016) over [`Features`]: segments of a beat window, patches of an
//! image, lead × time segments of a record.
//!
//! Random perturbations switch features off (filling them from a [`Replacement`]); a
//! weighted ridge regression of the class probability on the on/off vectors, with samples
//! near the input weighted most, gives the attributions, and its weighted R² says how well a
//! linear model describes the classifier around the input.

use super::shap::{check_input, class_probabilities, solve};
use super::{Attribution, BatchClassifier, ExplainError, Features};
use crate::rng::SplitMix64;

/// What an "off" feature is filled with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replacement {
    /// 0 (mV, or black pixels): a segment becomes flat at the baseline.
    Zero,
    /// The input's own mean over the features' span: a flat line at the beat's level, a
    /// patch of the image's mean grey.
    BeatMean,
    /// The mean background input (given by the caller): the feature looks like an average
    /// beat or record.
    #[default]
    Background,
}

impl Replacement {
    /// Parses `zero`, `mean` or `background`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "zero" => Some(Replacement::Zero),
            "mean" => Some(Replacement::BeatMean),
            "background" => Some(Replacement::Background),
            _ => None,
        }
    }

    /// The name [`Replacement::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Replacement::Zero => "zero",
            Replacement::BeatMean => "mean",
            Replacement::Background => "background",
        }
    }
}

/// Settings of [`lime`].
#[derive(Clone, Debug, PartialEq)]
pub struct LimeSettings {
    /// Perturbed inputs evaluated, the unperturbed input included (at least 2).
    pub samples: usize,
    /// Width of the exponential kernel on the cosine distance to the input.
    pub kernel_width: f32,
    /// L2 penalty of the regression (the intercept is not penalised).
    pub ridge: f32,
    /// What an "off" feature is filled with.
    pub replacement: Replacement,
    /// Seed of the perturbations.
    pub seed: u64,
}

impl Default for LimeSettings {
    fn default() -> Self {
        LimeSettings {
            samples: 256,
            kernel_width: 0.25,
            ridge: 1.0,
            replacement: Replacement::Background,
            seed: 0,
        }
    }
}

/// LIME attributions of the probability of `class` for `input` to `features` (which cover
/// its first `features.span()` values). `background_mean` (`span` values, the mean
/// background input) is only read for [`Replacement::Background`]. Values after the span
/// (RR features) always stay the input's.
///
/// The attributions are the regression's coefficients, `base_value` its intercept (the
/// predicted probability with every feature off) and `fit_r2` its weighted R².
pub fn lime(
    model: &dyn BatchClassifier,
    input: &[f32],
    features: &Features,
    background_mean: &[f32],
    class: usize,
    settings: &LimeSettings,
) -> Result<Attribution, ExplainError> {
    let window = features.span();
    check_input(model, input, window)?;
    if settings.samples < 2 {
        return Err(ExplainError::Invalid(format!(
            "samples = {}: need at least 2 (the input and a perturbation)",
            settings.samples
        )));
    }
    if !(settings.kernel_width.is_finite() && settings.kernel_width > 0.0) {
        return Err(ExplainError::Invalid(format!(
            "kernel_width = {}: need a positive number",
            settings.kernel_width
        )));
    }
    if !(settings.ridge.is_finite() && settings.ridge >= 0.0) {
        return Err(ExplainError::Invalid(format!(
            "ridge = {}: need a number of 0 or more",
            settings.ridge
        )));
    }
    let m = features.len();
    let beat = &input[..window];
    let fill = match settings.replacement {
        Replacement::Zero => vec![0.0; window],
        Replacement::BeatMean => vec![beat.iter().sum::<f32>() / window as f32; window],
        Replacement::Background => {
            if background_mean.len() != window {
                return Err(ExplainError::Invalid(format!(
                    "background mean has {} values: need the features' {window} (replacement = background)",
                    background_mean.len()
                )));
            }
            background_mean.to_vec()
        }
    };

    // The input itself first, then each feature on with probability 1/2.
    let mut rng = SplitMix64::new(settings.seed);
    let masks: Vec<Vec<bool>> = (0..settings.samples)
        .map(|i| (0..m).map(|_| i == 0 || rng.uniform() < 0.5).collect())
        .collect();
    let probs = class_probabilities(model, input, class, masks.len(), |i, row| {
        features.compose(beat, &fill, &masks[i], row)
    })?;

    // Cosine distance to the all-on vector: 1 - k/(√k·√M) = 1 - √(k/M) with k features on
    // (1 for all off, as for a zero vector in scikit-learn).
    let width2 = (settings.kernel_width as f64).powi(2);
    let weights: Vec<f64> = masks
        .iter()
        .map(|mask| {
            let on = mask.iter().filter(|&&b| b).count();
            let d = 1.0 - (on as f64 / m as f64).sqrt();
            (-d * d / width2).exp()
        })
        .collect();
    let y: Vec<f64> = probs.iter().map(|&p| p as f64).collect();
    let fit = weighted_ridge(&masks, &y, &weights, settings.ridge as f64)?;

    let coefficients: Vec<f32> = fit.coefficients.iter().map(|&c| c as f32).collect();
    Ok(Attribution {
        method: "lime".to_string(),
        class,
        probability: probs[0],
        per_sample: features.spread(&coefficients),
        features: features.values(&coefficients),
        base_value: Some(fit.intercept as f32),
        fit_r2: Some(fit.r2 as f32),
    })
}

/// A fitted linear model.
struct Fit {
    coefficients: Vec<f64>,
    intercept: f64,
    r2: f64,
}

/// Weighted ridge regression of `y` on the masks with an unpenalised intercept: centring
/// on the weighted means takes the intercept out of the penalised system (as scikit-learn's
/// `Ridge` does).
fn weighted_ridge(masks: &[Vec<bool>], y: &[f64], weights: &[f64], ridge: f64) -> Result<Fit, ExplainError> {
    let m = masks[0].len();
    let x = |mask: &[bool], i: usize| if mask[i] { 1.0 } else { 0.0 };
    let weight_sum: f64 = weights.iter().sum();
    let y_mean = y.iter().zip(weights).map(|(y, w)| y * w).sum::<f64>() / weight_sum;
    let x_mean: Vec<f64> = (0..m)
        .map(|i| masks.iter().zip(weights).map(|(mk, w)| x(mk, i) * w).sum::<f64>() / weight_sum)
        .collect();

    let mut normal = vec![0.0; m * m];
    let mut rhs = vec![0.0; m];
    let mut centred = vec![0.0; m];
    for ((mask, &w), &yk) in masks.iter().zip(weights).zip(y) {
        for (i, c) in centred.iter_mut().enumerate() {
            *c = x(mask, i) - x_mean[i];
        }
        for i in 0..m {
            rhs[i] += w * centred[i] * (yk - y_mean);
            for j in 0..m {
                normal[i * m + j] += w * centred[i] * centred[j];
            }
        }
    }
    for i in 0..m {
        normal[i * m + i] += ridge;
    }
    let coefficients = solve(normal, rhs)
        .ok_or_else(|| ExplainError::Invalid("the LIME regression is singular: raise ridge or samples".to_string()))?;
    let intercept = y_mean - coefficients.iter().zip(&x_mean).map(|(c, m)| c * m).sum::<f64>();

    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for ((mask, &w), &yk) in masks.iter().zip(weights).zip(y) {
        let predicted = intercept + (0..m).map(|i| coefficients[i] * x(mask, i)).sum::<f64>();
        ss_res += w * (yk - predicted).powi(2);
        ss_tot += w * (yk - y_mean).powi(2);
    }
    // A constant output is described perfectly by a perfect fit, not at all otherwise
    // (scikit-learn's convention).
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    };
    Ok(Fit {
        coefficients,
        intercept,
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::super::shap::toy::{linear_effects, normals, Linear, Softmax};
    use super::*;

    const WINDOW: usize = 48;
    const RR: usize = 3;

    fn setup(seed: u64) -> (Linear, Vec<f32>, Vec<f32>) {
        let mut rng = SplitMix64::new(seed);
        let w = normals(&mut rng, WINDOW + RR, 0.05);
        let x = normals(&mut rng, WINDOW + RR, 1.0);
        let background_mean = normals(&mut rng, WINDOW, 0.5);
        (Linear { w }, x, background_mean)
    }

    fn exact(replacement: Replacement) -> LimeSettings {
        LimeSettings {
            ridge: 1e-6,
            replacement,
            seed: 9,
            ..LimeSettings::default()
        }
    }

    fn segments() -> Features {
        Features::even(WINDOW, 12).unwrap()
    }

    fn check(model: &Linear, x: &[f32], background_mean: &[f32], replacement: Replacement, fill: &[f32]) {
        let a = lime(model, x, &segments(), background_mean, 0, &exact(replacement)).unwrap();
        let expected = linear_effects(&model.w, x, fill, &segments());
        assert_eq!(a.method, "lime");
        assert_eq!(a.per_sample.len(), WINDOW);
        for (got, want) in a.features.iter().zip(&expected) {
            assert!(
                (got.value - want).abs() < 1e-4,
                "{replacement:?}: {} vs {want}",
                got.value
            );
        }
        assert!(a.fit_r2.unwrap() > 0.9999, "R² = {:?}", a.fit_r2);
        // With every segment off the beat is the fill: the intercept is that output.
        let mut filled = fill.to_vec();
        filled.extend_from_slice(&x[WINDOW..]);
        let all_off = model.predict(&filled).unwrap()[0][0];
        assert!((a.base_value.unwrap() - all_off).abs() < 1e-4);
        assert!((a.probability - model.predict(x).unwrap()[0][0]).abs() < 1e-6);
    }

    #[test]
    fn background_replacement_recovers_a_linear_model() {
        let (model, x, background_mean) = setup(1);
        check(&model, &x, &background_mean, Replacement::Background, &background_mean);
    }

    #[test]
    fn zero_and_mean_replacements_fill_what_they_say() {
        let (model, x, background_mean) = setup(2);
        check(&model, &x, &background_mean, Replacement::Zero, &[0.0; WINDOW]);
        let mean = x[..WINDOW].iter().sum::<f32>() / WINDOW as f32;
        // Neither reads the background mean.
        check(&model, &x, &[], Replacement::BeatMean, &[mean; WINDOW]);
        check(&model, &x, &[], Replacement::Zero, &[0.0; WINDOW]);
    }

    #[test]
    fn image_patches_recover_a_linear_model() {
        // A 6 × 8 image in 2 × 4 patches, off patches from the mean background image.
        let mut rng = SplitMix64::new(5);
        let model = Linear {
            w: normals(&mut rng, 48, 0.05),
        };
        let x = normals(&mut rng, 48, 1.0);
        let fill = normals(&mut rng, 48, 0.5);
        let patches = Features::patches(1, 6, 8, 2, 4).unwrap();
        let a = lime(&model, &x, &patches, &fill, 0, &exact(Replacement::Background)).unwrap();
        assert_eq!((a.features.len(), a.per_sample.len()), (8, 48));
        for (got, want) in a.features.iter().zip(linear_effects(&model.w, &x, &fill, &patches)) {
            assert!((got.value - want).abs() < 1e-4, "{} vs {want}", got.value);
        }
    }

    #[test]
    fn defaults_are_seeded_and_report_a_fit() {
        let mut rng = SplitMix64::new(3);
        let model = Softmax {
            w0: normals(&mut rng, WINDOW + RR, 0.3),
            w1: normals(&mut rng, WINDOW + RR, 0.3),
        };
        let x = normals(&mut rng, WINDOW + RR, 1.0);
        let background_mean = vec![0.0; WINDOW];
        let settings = LimeSettings::default();
        let a = lime(&model, &x, &segments(), &background_mean, 1, &settings).unwrap();
        let b = lime(&model, &x, &segments(), &background_mean, 1, &settings).unwrap();
        assert_eq!(a, b);
        let r2 = a.fit_r2.unwrap();
        assert!(r2.is_finite() && r2 <= 1.0);
        assert_eq!(a.class, 1);
    }

    #[test]
    fn replacement_names_round_trip() {
        for r in [Replacement::Zero, Replacement::BeatMean, Replacement::Background] {
            assert_eq!(Replacement::parse(r.name()), Some(r));
        }
        assert_eq!(Replacement::parse("noise"), None);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let (model, x, background_mean) = setup(4);
        let ok = LimeSettings::default();
        let message = |r: Result<Attribution, ExplainError>| r.unwrap_err().to_string();
        let too_long = Features::even(WINDOW + RR + 1, 12).unwrap();
        assert!(message(lime(&model, &x[1..], &segments(), &background_mean, 0, &ok)).contains("input has"));
        assert!(message(lime(&model, &x, &too_long, &background_mean, 0, &ok)).contains("features cover"));
        assert!(message(lime(&model, &x, &segments(), &background_mean[1..], 0, &ok)).contains("background mean"));
        assert!(message(lime(&model, &x, &segments(), &background_mean, 5, &ok)).contains("class = 5"));
        let cases = [
            (
                LimeSettings {
                    samples: 1,
                    ..ok.clone()
                },
                "samples",
            ),
            (
                LimeSettings {
                    kernel_width: 0.0,
                    ..ok.clone()
                },
                "kernel_width",
            ),
            (
                LimeSettings {
                    ridge: f32::NAN,
                    ..ok.clone()
                },
                "ridge",
            ),
        ];
        for (settings, name) in cases {
            assert!(message(lime(&model, &x, &segments(), &background_mean, 0, &settings)).contains(name));
        }
    }
}
