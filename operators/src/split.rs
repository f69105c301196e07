//! Seeded splits of examples into parts (train / validation / test, or K folds), either
//! beat by beat or keeping every example of a group (patient) in the same part.

use std::collections::BTreeMap;

use crate::rng::SplitMix64;

/// The unit a split draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitBy {
    /// Each example on its own (the study's random split: a patient's beats end up on both
    /// sides, which flatters the figures).
    Example,
    /// Whole groups (patients): no patient is on both sides.
    Group,
}

/// Splits the examples `indices` (with their `groups`) into a held-out part of about
/// `fraction` of the examples and the rest: `(rest, held_out)`, both in ascending order.
pub fn holdout(
    indices: &[usize],
    groups: &[String],
    fraction: f64,
    by: SplitBy,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    if fraction <= 0.0 || indices.is_empty() {
        return (indices.to_vec(), Vec::new());
    }
    let folds = units(indices, groups, by, seed);
    let wanted = (fraction * indices.len() as f64).round() as usize;
    let (mut rest, mut held) = (Vec::new(), Vec::new());
    for unit in folds {
        if held.len() < wanted {
            held.extend(unit);
        } else {
            rest.extend(unit);
        }
    }
    rest.sort_unstable();
    held.sort_unstable();
    (rest, held)
}

/// Splits `indices` into `k` folds of about equal size (by examples or whole groups).
pub fn k_folds(indices: &[usize], groups: &[String], k: usize, by: SplitBy, seed: u64) -> Vec<Vec<usize>> {
    let k = k.max(1);
    let mut folds = vec![Vec::new(); k];
    // Largest units first, each into the currently smallest fold: balanced sizes even when
    // patients have very different numbers of beats.
    let mut units = units(indices, groups, by, seed);
    units.sort_by_key(|u| std::cmp::Reverse(u.len()));
    for unit in units {
        let smallest = (0..k).min_by_key(|&f| folds[f].len()).unwrap_or(0);
        folds[smallest].extend(unit);
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    folds
}

/// The units of a split (single examples or groups), in seeded random order.
fn units(indices: &[usize], groups: &[String], by: SplitBy, seed: u64) -> Vec<Vec<usize>> {
    let mut units: Vec<Vec<usize>> = match by {
        SplitBy::Example => indices.iter().map(|&i| vec![i]).collect(),
        SplitBy::Group => {
            let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for &i in indices {
                by_group.entry(groups[i].as_str()).or_default().push(i);
            }
            by_group.into_values().collect()
        }
    };
    let mut rng = SplitMix64::new(seed);
    for i in (1..units.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        units.swap(i, j);
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("p{}", i % 7)).collect()
    }

    #[test]
    fn holdout_by_example_takes_the_fraction() {
        let idx: Vec<usize> = (0..1000).collect();
        let (rest, held) = holdout(&idx, &groups(1000), 0.2, SplitBy::Example, 1);
        assert_eq!(held.len(), 200);
        assert_eq!(rest.len() + held.len(), 1000);
        assert!(held.iter().all(|i| rest.binary_search(i).is_err()));
    }

    #[test]
    fn holdout_by_group_keeps_patients_apart() {
        let idx: Vec<usize> = (0..700).collect();
        let g = groups(700);
        let (rest, held) = holdout(&idx, &g, 0.3, SplitBy::Group, 3);
        assert!(!held.is_empty() && !rest.is_empty());
        for &h in &held {
            assert!(rest.iter().all(|&r| g[r] != g[h]));
        }
    }

    #[test]
    fn folds_cover_everything_once() {
        let idx: Vec<usize> = (0..103).collect();
        let g = groups(103);
        for by in [SplitBy::Example, SplitBy::Group] {
            let folds = k_folds(&idx, &g, 5, by, 9);
            let mut all: Vec<usize> = folds.concat();
            all.sort_unstable();
            assert_eq!(all, idx);
        }
    }
}
