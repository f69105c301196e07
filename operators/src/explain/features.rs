//! The features that SHAP, LIME and the deletion curves switch on and off: each feature is
//! a set of `[start, end)` ranges of input indices, and the features partition the first
//! `span` values of the input. Contiguous segments of a beat window ([`Features::even`]),
//! patches of an image ([`Features::patches`]) and lead × time segments of a multi-lead
//! record ([`Features::lead_segments`]) are all one type, so every method and the
//! faithfulness curves work on any of them.

use super::{ExplainError, FeatureValue};

/// Features partitioning `0..span`, each a set of index ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Every feature's ranges, feature after feature, each feature's in increasing order.
    ranges: Vec<(usize, usize)>,
    /// Feature `i` owns `ranges[bounds[i]..bounds[i + 1]]`.
    bounds: Vec<usize>,
    /// Values covered by the features.
    span: usize,
}

impl Features {
    /// Splits a `window` of samples into `count` contiguous segments whose lengths differ
    /// by at most one: the features of a beat.
    pub fn even(window: usize, count: usize) -> Result<Self, ExplainError> {
        if count == 0 || count > window {
            return Err(ExplainError::Invalid(format!(
                "segments = {count}: need between 1 and the window's {window} samples"
            )));
        }
        Ok(Self::lead_segments_unchecked(1, window, count))
    }

    /// A grid of `rows × cols` patches of a `channels × height × width` image (channel-major,
    /// then row-major, as the networks take it), each patch covering its pixels in every
    /// channel. Patch heights (widths) differ by at most one pixel; features are numbered
    /// row after row of patches.
    pub fn patches(
        channels: usize,
        height: usize,
        width: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Self, ExplainError> {
        if channels == 0 || height == 0 || width == 0 {
            return Err(ExplainError::Invalid(format!(
                "an image of {channels} × {height} × {width} values has no pixels"
            )));
        }
        if rows == 0 || rows > height || cols == 0 || cols > width {
            return Err(ExplainError::Invalid(format!(
                "patches = {rows}x{cols}: need between 1 and the image's {height} rows and {width} columns"
            )));
        }
        let mut features = Features::empty(channels * height * width);
        for r in 0..rows {
            for c in 0..cols {
                let (x0, x1) = (c * width / cols, (c + 1) * width / cols);
                for channel in 0..channels {
                    for y in r * height / rows..(r + 1) * height / rows {
                        let at = (channel * height + y) * width;
                        features.push_range(at + x0, at + x1);
                    }
                }
                features.bounds.push(features.ranges.len());
            }
        }
        Ok(features)
    }

    /// `per_lead` contiguous time segments of each of `leads` leads of `samples` values
    /// (lead after lead, as the networks take a record): `leads × per_lead` features,
    /// numbered lead after lead. Segment lengths differ by at most one sample.
    pub fn lead_segments(leads: usize, samples: usize, per_lead: usize) -> Result<Self, ExplainError> {
        if leads == 0 {
            return Err(ExplainError::Invalid("leads = 0: need at least 1".to_string()));
        }
        if per_lead == 0 || per_lead > samples {
            return Err(ExplainError::Invalid(format!(
                "segments = {per_lead} per lead: need between 1 and the lead's {samples} samples"
            )));
        }
        Ok(Self::lead_segments_unchecked(leads, samples, per_lead))
    }

    fn lead_segments_unchecked(leads: usize, samples: usize, per_lead: usize) -> Self {
        let mut features = Features::empty(leads * samples);
        for lead in 0..leads {
            for i in 0..per_lead {
                let at = lead * samples;
                features.push_range(at + i * samples / per_lead, at + (i + 1) * samples / per_lead);
                features.bounds.push(features.ranges.len());
            }
        }
        features
    }

    fn empty(span: usize) -> Self {
        Features {
            ranges: Vec::new(),
            bounds: vec![0],
            span,
        }
    }

    /// Appends a range to the feature being built, merged with its last range when they
    /// touch.
    fn push_range(&mut self, start: usize, end: usize) {
        let own = *self.bounds.last().expect("bounds start with 0");
        match self.ranges[own..].last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.ranges.push((start, end)),
        }
    }

    /// The index ranges of feature `i`, in increasing order.
    pub fn ranges(&self, i: usize) -> &[(usize, usize)] {
        &self.ranges[self.bounds[i]..self.bounds[i + 1]]
    }

    /// Values the features cover (they partition `0..span`): the beat window, the image's
    /// pixels, the record's samples.
    pub fn span(&self) -> usize {
        self.span
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies into `out` (one input of the model) the features of `input` that `present`
    /// keeps, and those of `fill` for the others. Values past the span (RR features) are
    /// left as `out` has them.
    pub fn compose(&self, input: &[f32], fill: &[f32], present: &[bool], out: &mut [f32]) {
        for (i, &keep) in present.iter().enumerate().take(self.len()) {
            let from = if keep { input } else { fill };
            for &(start, end) in self.ranges(i) {
                out[start..end].copy_from_slice(&from[start..end]);
            }
        }
    }

    /// Mean of `per_value` (one value per index of the span) over each feature.
    pub fn means(&self, per_value: &[f32]) -> Vec<f32> {
        (0..self.len())
            .map(|i| {
                let (sum, n) = self.ranges(i).iter().fold((0.0f32, 0usize), |(sum, n), &(s, e)| {
                    (sum + per_value[s..e].iter().sum::<f32>(), n + e - s)
                });
                sum / n as f32
            })
            .collect()
    }

    /// Each feature's ranges with its value from `values` (one per feature).
    pub fn values(&self, values: &[f32]) -> Vec<FeatureValue> {
        values
            .iter()
            .enumerate()
            .take(self.len())
            .map(|(i, &value)| FeatureValue {
                ranges: self.ranges(i).to_vec(),
                value,
            })
            .collect()
    }

    /// One value per index of the span: each feature's value repeated over its indices.
    pub fn spread(&self, values: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.span];
        for (i, &v) in values.iter().enumerate().take(self.len()) {
            for &(s, e) in self.ranges(i) {
                out[s..e].fill(v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every index of the span belongs to exactly one feature.
    fn assert_partition(f: &Features) {
        let mut owner = vec![usize::MAX; f.span()];
        for i in 0..f.len() {
            for &(s, e) in f.ranges(i) {
                assert!(s < e, "empty range in feature {i}");
                for o in &mut owner[s..e] {
                    assert_eq!(*o, usize::MAX, "index covered twice");
                    *o = i;
                }
            }
        }
        assert!(owner.iter().all(|&o| o != usize::MAX), "an index is not covered");
    }

    #[test]
    fn segments_cover_the_window_without_gaps() {
        let s = Features::even(259, 12).unwrap();
        assert_eq!((s.len(), s.span()), (12, 259));
        assert_eq!(s.ranges(0), &[(0, 21)]);
        assert_eq!(s.ranges(11)[0].1, 259);
        for i in 1..12 {
            assert_eq!(s.ranges(i - 1)[0].1, s.ranges(i)[0].0);
        }
        assert_partition(&s);
        assert!(Features::even(10, 11).is_err());
        assert!(Features::even(10, 0).is_err());
    }

    #[test]
    fn compose_takes_present_segments_from_the_beat() {
        let s = Features::even(4, 2).unwrap();
        let mut out = vec![0.0; 5];
        out[4] = 9.0;
        s.compose(&[1.0, 2.0, 3.0, 4.0], &[0.0; 4], &[false, true], &mut out);
        assert_eq!(out, vec![0.0, 0.0, 3.0, 4.0, 9.0]);
        assert_eq!(s.spread(&[1.0, 2.0]), vec![1.0, 1.0, 2.0, 2.0]);
        assert_eq!(s.means(&[1.0, 3.0, 2.0, 2.0]), vec![2.0, 2.0]);
    }

    #[test]
    fn patches_tile_the_image_in_every_channel() {
        // 2 channels of 5 × 7, cut into 2 × 3 patches.
        let p = Features::patches(2, 5, 7, 2, 3).unwrap();
        assert_eq!((p.len(), p.span()), (6, 70));
        assert_partition(&p);
        // Patch (0, 0): rows 0-1, columns 0-1, in both channels.
        assert_eq!(p.ranges(0), &[(0, 2), (7, 9), (35, 37), (42, 44)]);
        // Patch (1, 2): rows 2-4, columns 4-6.
        assert_eq!(
            p.ranges(5),
            &[(18, 21), (25, 28), (32, 35), (53, 56), (60, 63), (67, 70)]
        );
        // Whole rows of a single column merge into one range per channel.
        let rows = Features::patches(1, 4, 3, 2, 1).unwrap();
        assert_eq!((rows.ranges(0), rows.ranges(1)), (&[(0, 6)][..], &[(6, 12)][..]));

        let image: Vec<f32> = (1..=70).map(|v| v as f32).collect();
        let mut out = vec![-1.0; 70];
        p.compose(&image, &[0.0; 70], &[true, false, false, false, false, false], &mut out);
        let kept: Vec<usize> = (0..70).filter(|&i| out[i] != 0.0).collect();
        assert_eq!(kept, vec![0, 1, 7, 8, 35, 36, 42, 43]);
        let spread = p.spread(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!((spread[8], spread[44], spread[69]), (1.0, 2.0, 6.0));
        assert_eq!(p.means(&spread), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // Means weigh every pixel of the patch alike.
        let mut per_pixel = vec![0.0; 70];
        per_pixel[0] = 8.0;
        assert_eq!(p.means(&per_pixel)[0], 1.0);

        assert!(Features::patches(1, 4, 4, 5, 1).is_err());
        assert!(Features::patches(1, 4, 4, 1, 0).is_err());
        let err = Features::patches(0, 4, 4, 1, 1).unwrap_err();
        assert!(err.to_string().contains("no pixels"), "{err}");
    }

    #[test]
    fn lead_segments_cut_each_lead_alike() {
        let f = Features::lead_segments(3, 10, 4).unwrap();
        assert_eq!((f.len(), f.span()), (12, 30));
        assert_partition(&f);
        assert_eq!(f.ranges(0), &[(0, 2)]);
        assert_eq!(f.ranges(3), &[(7, 10)]);
        assert_eq!(f.ranges(4), &[(10, 12)]);
        assert_eq!(f.ranges(11), &[(27, 30)]);
        // One lead is a beat's even split.
        assert_eq!(
            Features::lead_segments(1, 259, 12).unwrap(),
            Features::even(259, 12).unwrap()
        );
        let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(f.means(&f.spread(&values)), values);
        assert!(Features::lead_segments(0, 10, 2).is_err());
        assert!(Features::lead_segments(2, 10, 11)
            .unwrap_err()
            .to_string()
            .contains("segments"));
    }
}
