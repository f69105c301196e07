//! Contiguous segments of a beat window: the features that SHAP and LIME switch on and off.

use super::ExplainError;

/// `count` contiguous, near-equal `[start, end)` ranges covering `0..window`.
#[derive(Clone, Debug, PartialEq)]
pub struct Segments {
    ranges: Vec<(usize, usize)>,
}

impl Segments {
    /// Splits `window` samples into `count` segments whose lengths differ by at most one.
    pub fn even(window: usize, count: usize) -> Result<Self, ExplainError> {
        if count == 0 || count > window {
            return Err(ExplainError::Invalid(format!(
                "segments = {count}: need between 1 and the window's {window} samples"
            )));
        }
        let ranges = (0..count)
            .map(|i| (i * window / count, (i + 1) * window / count))
            .collect();
        Ok(Segments { ranges })
    }

    /// The `[start, end)` ranges in order.
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Copies into `out` (one input of the model) the segments of `beat` that `present`
    /// keeps, and those of `fill` for the others. Values past the window (RR features) are
    /// left as `out` has them.
    pub fn compose(&self, beat: &[f32], fill: &[f32], present: &[bool], out: &mut [f32]) {
        for (&(start, end), &keep) in self.ranges.iter().zip(present) {
            let from = if keep { beat } else { fill };
            out[start..end].copy_from_slice(&from[start..end]);
        }
    }

    /// Mean of `per_sample` over each segment.
    pub fn means(&self, per_sample: &[f32]) -> Vec<f32> {
        self.ranges
            .iter()
            .map(|&(s, e)| per_sample[s..e].iter().sum::<f32>() / (e - s) as f32)
            .collect()
    }

    /// One value per sample: each segment's value repeated over its samples.
    pub fn spread(&self, values: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.ranges.last().map_or(0, |r| r.1)];
        for (&(s, e), &v) in self.ranges.iter().zip(values) {
            out[s..e].fill(v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_window_without_gaps() {
        let s = Segments::even(259, 12).unwrap();
        assert_eq!(s.len(), 12);
        assert_eq!(s.ranges()[0].0, 0);
        assert_eq!(s.ranges()[11].1, 259);
        for w in s.ranges().windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        assert!(Segments::even(10, 11).is_err());
        assert!(Segments::even(10, 0).is_err());
    }

    #[test]
    fn compose_takes_present_segments_from_the_beat() {
        let s = Segments::even(4, 2).unwrap();
        let mut out = vec![0.0; 5];
        out[4] = 9.0;
        s.compose(&[1.0, 2.0, 3.0, 4.0], &[0.0; 4], &[false, true], &mut out);
        assert_eq!(out, vec![0.0, 0.0, 3.0, 4.0, 9.0]);
        assert_eq!(s.spread(&[1.0, 2.0]), vec![1.0, 1.0, 2.0, 2.0]);
        assert_eq!(s.means(&[1.0, 3.0, 2.0, 2.0]), vec![2.0, 2.0]);
    }
}
