//! Normalisation of a window of samples or of each lead of a beat: z-score or min-max.
//!
//! Statistics are computed in `f64` over the window's finite samples only. NaN and
//! infinite samples are left as they are (a NaN stays NaN, +∞ stays +∞) and do not spoil
//! the other samples; a window without any finite sample is left unchanged. A flat window
//! (standard deviation 0, or maximum = minimum) becomes all zeros, never NaN.

use std::str::FromStr;

use crate::types::Beat;

/// How to normalise a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Normalization {
    /// `(x - mean) / std`, with the population standard deviation (numpy's default,
    /// `ddof = 0`): mean 0 and standard deviation 1 afterwards.
    #[default]
    ZScore,
    /// `(x - min) / (max - min)`: the window spans `[0, 1]` afterwards.
    MinMax,
    /// Leaves the window unchanged.
    None,
}

/// An unknown normalisation name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown normalization {0:?}: expected \"zscore\", \"minmax\" or \"none\"")]
pub struct UnknownNormalization(pub String);

impl FromStr for Normalization {
    type Err = UnknownNormalization;

    /// Parses `zscore`, `minmax` or `none` (the names used in pipeline files).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zscore" => Ok(Normalization::ZScore),
            "minmax" => Ok(Normalization::MinMax),
            "none" => Ok(Normalization::None),
            other => Err(UnknownNormalization(other.to_string())),
        }
    }
}

/// Normalises `window` in place (see the module documentation for flat windows and
/// non-finite samples).
pub fn normalize(window: &mut [f32], kind: Normalization) {
    if kind == Normalization::None {
        return;
    }
    // The usual case, every sample finite, takes plain loops; the same sums in the same
    // order as the general case, so the results are identical.
    if window.iter().all(|v| v.is_finite()) {
        normalize_finite(window, kind);
        return;
    }
    let finite = || window.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
    let count = finite().count();
    if count == 0 {
        return;
    }
    let (offset, spread) = match kind {
        Normalization::None => return,
        Normalization::ZScore => {
            let mean = finite().sum::<f64>() / count as f64;
            let var = finite().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count as f64;
            (mean, var.sqrt())
        }
        Normalization::MinMax => {
            let (min, max) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            (min, max - min)
        }
    };
    for v in window.iter_mut().filter(|v| v.is_finite()) {
        *v = if spread > 0.0 {
            ((*v as f64 - offset) / spread) as f32
        } else {
            0.0
        };
    }
}

fn normalize_finite(window: &mut [f32], kind: Normalization) {
    if window.is_empty() {
        return;
    }
    let n = window.len() as f64;
    let (offset, spread) = match kind {
        Normalization::None => return,
        Normalization::ZScore => {
            let mean = window.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = window
                .iter()
                .map(|&v| (v as f64 - mean) * (v as f64 - mean))
                .sum::<f64>()
                / n;
            (mean, var.sqrt())
        }
        Normalization::MinMax => {
            let (min, max) = window.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v as f64), hi.max(v as f64))
            });
            (min, max - min)
        }
    };
    if spread > 0.0 {
        for v in window.iter_mut() {
            *v = ((*v as f64 - offset) / spread) as f32;
        }
    } else {
        window.fill(0.0);
    }
}

/// Normalises each lead of a beat on its own: the window is cut into blocks of
/// `before + 1 + after` samples (one per lead; a trailing partial block, which a
/// well-formed beat does not have, is normalised on its own too). The beat's template,
/// when it has one, is normalised the same way.
pub fn normalize_beat(beat: &mut Beat, kind: Normalization) {
    let block = beat.before + 1 + beat.after;
    for lead in beat.window.chunks_mut(block) {
        normalize(lead, kind);
    }
    for lead in beat.template.iter_mut().flat_map(|t| t.chunks_mut(block)) {
        normalize(lead, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_std(x: &[f32]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn zscore_gives_mean_0_std_1() {
        let mut x: Vec<f32> = (0..259).map(|i| (i as f32 * 0.1).sin() * 3.0 + 7.0).collect();
        normalize(&mut x, Normalization::ZScore);
        let (m, s) = mean_std(&x);
        assert!(m.abs() < 1e-6 && (s - 1.0).abs() < 1e-6, "{m} {s}");
    }

    #[test]
    fn minmax_spans_0_to_1() {
        let mut x = vec![2.0, -1.0, 5.0, 0.5];
        normalize(&mut x, Normalization::MinMax);
        assert_eq!(x, vec![0.5, 0.0, 1.0, 0.25]);
    }

    #[test]
    fn none_and_flat_and_empty() {
        let mut x = vec![1.0, 2.0];
        normalize(&mut x, Normalization::None);
        assert_eq!(x, vec![1.0, 2.0]);
        for kind in [Normalization::ZScore, Normalization::MinMax] {
            let mut flat = vec![3.3f32; 50];
            normalize(&mut flat, kind);
            assert!(flat.iter().all(|&v| v == 0.0));
            let mut empty: Vec<f32> = Vec::new();
            normalize(&mut empty, kind);
        }
    }

    #[test]
    fn non_finite_samples_stay_and_do_not_spoil_the_rest() {
        for kind in [Normalization::ZScore, Normalization::MinMax] {
            let mut x = vec![1.0, f32::NAN, 3.0, f32::INFINITY];
            normalize(&mut x, kind);
            assert!(x[1].is_nan() && x[3] == f32::INFINITY);
            assert!(x[0].is_finite() && x[2].is_finite() && x[0] < x[2]);
            let mut all_nan = vec![f32::NAN; 3];
            normalize(&mut all_nan, kind);
            assert!(all_nan.iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn beat_leads_are_normalised_separately() {
        let mut beat = Beat {
            stream: "r".into(),
            fs: 360.0,
            sample: 10,
            leads: vec!["MLII".into(), "V5".into()],
            before: 1,
            after: 2,
            window: vec![1.0, 2.0, 3.0, 4.0, 100.0, 100.0, 100.0, 100.0],
            template: None,
            rr_prev: None,
            rr_next: None,
            rr_local: None,
            rr_mean: None,
            rr_irregularity: None,
            symbol: None,
            prediction: None,
            arrival: None,
        };
        normalize_beat(&mut beat, Normalization::MinMax);
        assert_eq!(beat.window[..4], [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        assert_eq!(beat.window[4..], [0.0; 4]);
        let mut z = beat.clone();
        z.window = vec![1.0, 2.0, 3.0, 4.0, -10.0, 0.0, 10.0, 20.0];
        normalize_beat(&mut z, Normalization::ZScore);
        for lead in z.window.chunks(4) {
            let (m, s) = mean_std(lead);
            assert!(m.abs() < 1e-6 && (s - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!("zscore".parse(), Ok(Normalization::ZScore));
        assert_eq!("minmax".parse(), Ok(Normalization::MinMax));
        assert_eq!("none".parse(), Ok(Normalization::None));
        assert!("l2".parse::<Normalization>().is_err());
    }
}
