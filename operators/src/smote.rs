//! SMOTE, the Synthetic Minority Over-sampling TEchnique (Chawla et al., 2002), for
//! balancing the training set of a beat classifier. Only ever apply it to training data.
//!
//! For each class below its target count, synthetic samples are drawn on segments between
//! an original sample and one of its `k` nearest neighbours (Euclidean distance) within
//! the same class: pick a sample uniformly, one of its `k` neighbours uniformly and a gap
//! `t` uniformly in `[0, 1)`; the new sample is `x + t (neighbour - x)` (as
//! imbalanced-learn's `SMOTE` draws them). Classes are processed in ascending label order
//! from one [`SplitMix64`] generator seeded with [`Smote::seed`].
//!
//! Special cases: a class with `n ≤ k` samples uses `k = n - 1` neighbours; a class with a
//! single sample has no segment, so that sample is duplicated; a label with no samples is
//! skipped (under [`Target::Counts`] asking for samples of it is an error). SMOTE never
//! removes samples: a class already at or above its target is left as it is.
//!
//! # Cost
//!
//! Neighbours are searched by brute force, only within the classes that need synthetic
//! samples: `O(n_c² · dim)` time and `O(n_c · k)` memory for a class of `n_c` samples
//! (one row of distances at a time, never the `n_c × n_c` matrix). On MIT-BIH beats
//! (~100 000 × 259, majority class N) the minority classes have at most a few thousand
//! samples each; the majority class is never searched. Measured (release, one core of a
//! shared 2-core machine, `tests/smote_cost.rs`): a 7 000 × 259 class (about MIT-BIH's V
//! beats) oversampled to 14 000 takes 2.8 s, almost all of it the 7 000² distances.

use std::collections::BTreeMap;

use crate::rng::SplitMix64;

/// How many samples each class should have after resampling.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Every class up to the majority class's count.
    Balance,
    /// Per class label `c`, at least `counts[c]` samples.
    Counts(Vec<usize>),
    /// Every class up to `round(ratio × majority count)` samples (imbalanced-learn's
    /// float `sampling_strategy`); `ratio` must be positive and finite.
    Ratio(f64),
}

/// Why SMOTE could not run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SmoteError {
    /// The feature dimension is zero.
    #[error("dim = 0: each sample needs at least one feature")]
    Dimension,
    /// The flat feature buffer is not a whole number of samples.
    #[error("features has {len} values, not a multiple of dim = {dim}")]
    FeatureLength {
        /// Values in `features`.
        len: usize,
        /// Features per sample.
        dim: usize,
    },
    /// There are not as many labels as samples.
    #[error("labels has {labels} entries for {samples} samples")]
    LabelCount {
        /// Samples in `features`.
        samples: usize,
        /// Entries in `labels`.
        labels: usize,
    },
    /// `k` is zero.
    #[error("k = 0: SMOTE needs at least one neighbour")]
    K,
    /// [`Target::Counts`] has no entry for a label that occurs.
    #[error("target counts has {given} entries but label {label} occurs")]
    Counts {
        /// Entries in the counts.
        given: usize,
        /// The label without an entry.
        label: usize,
    },
    /// [`Target::Ratio`] is not positive and finite.
    #[error("target ratio = {0} must be positive and finite")]
    Ratio(f64),
    /// [`Target::Counts`] asks for samples of a label that has none to interpolate from.
    #[error("target counts asks for {target} samples of label {label}, which has no samples")]
    EmptyClass {
        /// The label.
        label: usize,
        /// The requested count.
        target: usize,
    },
    /// A feature is NaN or infinite (distances would be meaningless).
    #[error("features of sample {sample} (feature {feature}) are not finite")]
    NonFinite {
        /// Sample index.
        sample: usize,
        /// Feature index within the sample.
        feature: usize,
    },
}

/// SMOTE settings (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Smote {
    /// Nearest neighbours per sample (5 in Chawla et al. and imbalanced-learn).
    pub k: usize,
    /// Target count per class.
    pub target: Target,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for Smote {
    /// `k = 5`, [`Target::Balance`], seed 0.
    fn default() -> Self {
        Smote {
            k: 5,
            target: Target::Balance,
            seed: 0,
        }
    }
}

impl Smote {
    /// Oversamples `features` (`labels.len()` samples of `dim` values each, sample after
    /// sample) to the target counts. Returns the original samples followed by the
    /// synthetic ones (by ascending label), with their labels.
    pub fn resample(
        &self,
        features: &[f32],
        dim: usize,
        labels: &[usize],
    ) -> Result<(Vec<f32>, Vec<usize>), SmoteError> {
        if dim == 0 {
            return Err(SmoteError::Dimension);
        }
        if !features.len().is_multiple_of(dim) {
            return Err(SmoteError::FeatureLength {
                len: features.len(),
                dim,
            });
        }
        let samples = features.len() / dim;
        if labels.len() != samples {
            return Err(SmoteError::LabelCount {
                samples,
                labels: labels.len(),
            });
        }
        if self.k == 0 {
            return Err(SmoteError::K);
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(SmoteError::NonFinite {
                sample: i / dim,
                feature: i % dim,
            });
        }
        let mut classes: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &label) in labels.iter().enumerate() {
            classes.entry(label).or_default().push(i);
        }
        let targets = self.targets(&classes)?;

        let mut out_features = features.to_vec();
        let mut out_labels = labels.to_vec();
        let mut rng = SplitMix64::new(self.seed);
        let row = |i: usize| &features[i * dim..(i + 1) * dim];
        for (&label, members) in &classes {
            let target = targets.get(&label).copied().unwrap_or(0);
            let needed = target.saturating_sub(members.len());
            if needed == 0 {
                continue;
            }
            let k = self.k.min(members.len() - 1);
            let neighbours = nearest_neighbours(features, dim, members, k);
            for _ in 0..needed {
                let i = pick(&mut rng, members.len());
                let base = row(members[i]);
                if k == 0 {
                    out_features.extend_from_slice(base);
                } else {
                    let other = row(members[neighbours[i * k + pick(&mut rng, k)]]);
                    let gap = rng.uniform() as f32;
                    out_features.extend(base.iter().zip(other).map(|(a, b)| a + gap * (b - a)));
                }
                out_labels.push(label);
            }
        }
        Ok((out_features, out_labels))
    }

    /// Target count per occurring label.
    fn targets(&self, classes: &BTreeMap<usize, Vec<usize>>) -> Result<BTreeMap<usize, usize>, SmoteError> {
        let majority = classes.values().map(Vec::len).max().unwrap_or(0);
        let uniform = |count: usize| classes.keys().map(|&c| (c, count)).collect();
        match &self.target {
            Target::Balance => Ok(uniform(majority)),
            Target::Ratio(r) => {
                if !(*r > 0.0 && r.is_finite()) {
                    return Err(SmoteError::Ratio(*r));
                }
                Ok(uniform((r * majority as f64).round() as usize))
            }
            Target::Counts(counts) => {
                if let Some((label, target)) = counts
                    .iter()
                    .enumerate()
                    .find(|&(c, &t)| t > 0 && !classes.contains_key(&c))
                {
                    return Err(SmoteError::EmptyClass { label, target: *target });
                }
                classes
                    .keys()
                    .map(|&label| match counts.get(label) {
                        Some(&t) => Ok((label, t)),
                        None => Err(SmoteError::Counts {
                            given: counts.len(),
                            label,
                        }),
                    })
                    .collect()
            }
        }
    }
}

/// Uniform index in `0..n` (`n ≥ 1`).
fn pick(rng: &mut SplitMix64, n: usize) -> usize {
    ((rng.uniform() * n as f64) as usize).min(n - 1)
}

/// The `k` nearest neighbours (positions in `members`, nearest first, ties to the lower
/// position) of each member among the other members: `members.len() × k` entries.
fn nearest_neighbours(features: &[f32], dim: usize, members: &[usize], k: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(members.len() * k);
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (i, &a) in members.iter().enumerate() {
        let xa = &features[a * dim..(a + 1) * dim];
        best.clear();
        for (j, &b) in members.iter().enumerate() {
            if i == j {
                continue;
            }
            let xb = &features[b * dim..(b + 1) * dim];
            let d = squared_distance(xa, xb);
            if best.len() == k && d >= best[k - 1].0 {
                continue;
            }
            let at = best.partition_point(|&(e, _)| e <= d);
            best.insert(at, (d, j));
            best.truncate(k);
        }
        out.extend(best.iter().map(|&(_, j)| j));
    }
    out
}

/// `Σ (a - b)²`, in eight independent partial sums so that the compiler vectorises it.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(p, q)| (p - q) * (p - q))
        .sum();
    for (pa, pb) in ca.zip(cb) {
        for ((l, p), q) in lanes.iter_mut().zip(pa).zip(pb) {
            *l += (p - q) * (p - q);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Class 0: 30 samples, class 1: 6, class 2: 3, class 3: 1 (dim 4).
    fn data() -> (Vec<f32>, Vec<usize>) {
        let mut rng = SplitMix64::new(11);
        let mut f = Vec::new();
        let mut l = Vec::new();
        for (class, n) in [(0usize, 30), (1, 6), (2, 3), (3, 1)] {
            for _ in 0..n {
                f.extend((0..4).map(|d| (class * 10 + d) as f32 + rng.normal() as f32));
                l.push(class);
            }
        }
        (f, l)
    }

    fn counts(labels: &[usize]) -> Vec<usize> {
        let mut c = vec![0; 4];
        for &l in labels {
            c[l] += 1;
        }
        c
    }

    #[test]
    fn balance_reaches_the_majority_and_keeps_originals_first() {
        let (f, l) = data();
        let (g, m) = Smote::default().resample(&f, 4, &l).unwrap();
        assert_eq!(counts(&m), vec![30; 4]);
        assert_eq!(g.len(), m.len() * 4);
        assert_eq!(&g[..f.len()], &f[..]);
        assert_eq!(&m[..l.len()], &l[..]);
        // The single-sample class is duplicated.
        let single = &f[39 * 4..40 * 4];
        for (x, &label) in g.chunks(4).zip(&m).skip(l.len()) {
            if label == 3 {
                assert_eq!(x, single);
            }
        }
    }

    #[test]
    fn synthetic_samples_lie_on_segments_between_same_class_samples() {
        let (f, l) = data();
        let smote = Smote {
            k: 3,
            ..Smote::default()
        };
        let (g, m) = smote.resample(&f, 4, &l).unwrap();
        let row = |i: usize| &f[i * 4..(i + 1) * 4];
        for (s, &label) in g.chunks(4).zip(&m).skip(l.len()) {
            let same: Vec<usize> = (0..l.len()).filter(|&i| l[i] == label).collect();
            let on_segment = same.iter().any(|&a| {
                same.iter().any(|&b| {
                    let (xa, xb) = (row(a), row(b));
                    // s = a + t (b - a), t ∈ [0, 1], on every coordinate.
                    let t = (0..4)
                        .map(|d| (xb[d] - xa[d], s[d] - xa[d]))
                        .find(|(db, _)| db.abs() > 1e-3)
                        .map_or(0.0, |(db, ds)| ds / db);
                    (-1e-5..=1.0 + 1e-5).contains(&t)
                        && (0..4).all(|d| (xa[d] + t * (xb[d] - xa[d]) - s[d]).abs() < 1e-4)
                })
            });
            assert!(on_segment, "synthetic {s:?} of class {label}");
        }
    }

    #[test]
    fn neighbours_are_the_nearest() {
        let f = [0.0, 10.0, 1.0, 3.0, 2.5];
        let nn = nearest_neighbours(&f, 1, &[0, 1, 2, 3, 4], 2);
        assert_eq!(&nn[..2], &[2, 4]); // 0: nearest 1.0, then 2.5
        assert_eq!(&nn[2..4], &[3, 4]); // 10: nearest 3.0, then 2.5
        assert_eq!(&nn[6..8], &[4, 2]); // 3: nearest 2.5, then 1.0
    }

    #[test]
    fn squared_distance_matches_the_plain_sum() {
        for dim in [1, 7, 8, 19, 259] {
            let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.3).sin()).collect();
            let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.7).cos()).collect();
            let plain: f64 = a.iter().zip(&b).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
            assert!((squared_distance(&a, &b) as f64 - plain).abs() < 1e-4 * plain.max(1.0));
        }
    }

    #[test]
    fn counts_and_ratio_targets() {
        let (f, l) = data();
        let counts_target = Smote {
            target: Target::Counts(vec![10, 12, 5, 4]),
            ..Smote::default()
        };
        let (_, m) = counts_target.resample(&f, 4, &l).unwrap();
        assert_eq!(counts(&m), vec![30, 12, 5, 4], "never removes samples");
        let ratio = Smote {
            target: Target::Ratio(0.5),
            ..Smote::default()
        };
        let (_, m) = ratio.resample(&f, 4, &l).unwrap();
        assert_eq!(counts(&m), vec![30, 15, 15, 15]);
    }

    #[test]
    fn deterministic_per_seed() {
        let (f, l) = data();
        let a = Smote::default().resample(&f, 4, &l).unwrap();
        assert_eq!(a, Smote::default().resample(&f, 4, &l).unwrap());
        let other = Smote {
            seed: 1,
            ..Smote::default()
        };
        assert_ne!(a, other.resample(&f, 4, &l).unwrap());
    }

    #[test]
    fn errors_name_the_problem() {
        let (f, l) = data();
        let s = Smote::default();
        assert_eq!(s.resample(&f, 0, &l), Err(SmoteError::Dimension));
        assert_eq!(
            s.resample(&f, 3, &l),
            Err(SmoteError::FeatureLength { len: 160, dim: 3 })
        );
        assert_eq!(
            s.resample(&f, 4, &l[1..]),
            Err(SmoteError::LabelCount {
                samples: 40,
                labels: 39
            })
        );
        let k0 = Smote {
            k: 0,
            ..Smote::default()
        };
        assert_eq!(k0.resample(&f, 4, &l), Err(SmoteError::K));
        let short = Smote {
            target: Target::Counts(vec![1, 2]),
            ..Smote::default()
        };
        assert_eq!(
            short.resample(&f, 4, &l),
            Err(SmoteError::Counts { given: 2, label: 2 })
        );
        let empty = Smote {
            target: Target::Counts(vec![1, 2, 3, 4, 5]),
            ..Smote::default()
        };
        assert_eq!(
            empty.resample(&f, 4, &l),
            Err(SmoteError::EmptyClass { label: 4, target: 5 })
        );
        for r in [0.0, -1.0, f64::NAN] {
            let bad = Smote {
                target: Target::Ratio(r),
                ..Smote::default()
            };
            assert!(matches!(bad.resample(&f, 4, &l), Err(SmoteError::Ratio(_))));
        }
        let mut nan = f.clone();
        nan[9] = f32::NAN;
        assert_eq!(
            s.resample(&nan, 4, &l),
            Err(SmoteError::NonFinite { sample: 2, feature: 1 })
        );
        assert_eq!(s.resample(&[], 4, &[]), Ok((vec![], vec![])));
    }
}
