//! The sample-by-sample median of the last few equal-length windows, kept up to date as
//! windows come and go (a beat's template: the median of the patient's recent beats).
//! Each position keeps its values sorted, so a window costs a binary search and a short
//! shift per position, rather than a selection over every held window at every position
//! (which took most of the time of converting MIT-BIH to beats with templates).

use std::collections::VecDeque;

/// The sample-by-sample median of the last `capacity` windows pushed.
#[derive(Clone, Debug)]
pub struct RunningMedian {
    capacity: usize,
    /// The windows held, oldest first: the values to take out when each leaves.
    windows: VecDeque<Vec<f32>>,
    /// Position `i`'s values, ascending by [`f32::total_cmp`], in
    /// `sorted[i * capacity..i * capacity + windows.len()]`.
    sorted: Vec<f32>,
}

impl RunningMedian {
    /// Holds up to `capacity` windows (at least one).
    pub fn new(capacity: usize) -> Self {
        RunningMedian {
            capacity: capacity.max(1),
            windows: VecDeque::new(),
            sorted: Vec::new(),
        }
    }

    /// The number of windows held.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no window is held.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Adds `window`, dropping the oldest one when `capacity` are held. A window of another
    /// length than those held replaces them all.
    pub fn push(&mut self, window: &[f32]) {
        let cap = self.capacity;
        if self.windows.front().is_some_and(|w| w.len() != window.len()) {
            self.windows.clear();
        }
        if self.windows.is_empty() {
            self.sorted.clear();
            self.sorted.resize(window.len() * cap, 0.0);
        }
        let mut held = self.windows.len();
        let leaving = if held == cap { self.windows.pop_front() } else { None };
        // The leaving window's vector, if any, takes the new values.
        let mut slot = match leaving {
            Some(mut oldest) => {
                for (column, &v) in self.sorted.chunks_exact_mut(cap).zip(&oldest) {
                    // `v` is held, so the first value not below it is `v` itself.
                    let at = column[..held].partition_point(|x| x.total_cmp(&v).is_lt());
                    column.copy_within(at + 1..held, at);
                }
                held -= 1;
                oldest.clear();
                oldest
            }
            None => Vec::with_capacity(window.len()),
        };
        for (column, &v) in self.sorted.chunks_exact_mut(cap).zip(window) {
            let at = column[..held].partition_point(|x| x.total_cmp(&v).is_le());
            column.copy_within(at..held, at + 1);
            column[at] = v;
        }
        slot.extend_from_slice(window);
        self.windows.push_back(slot);
    }

    /// The median at each position of the windows held (with an even number, the mean of
    /// the two middle values); `None` when none is held.
    pub fn median(&self) -> Option<Vec<f32>> {
        let held = self.windows.len();
        if held == 0 {
            return None;
        }
        let mid = held / 2;
        let of = |column: &[f32]| {
            if held % 2 == 1 {
                column[mid]
            } else {
                (column[mid - 1] + column[mid]) / 2.0
            }
        };
        Some(self.sorted.chunks_exact(self.capacity).map(of).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The median of each position by sorting: what [`RunningMedian`] must give.
    fn sorted_median(windows: &[Vec<f32>]) -> Vec<f32> {
        (0..windows[0].len())
            .map(|i| {
                let mut column: Vec<f32> = windows.iter().map(|w| w[i]).collect();
                column.sort_by(f32::total_cmp);
                let mid = column.len() / 2;
                if column.len() % 2 == 1 {
                    column[mid]
                } else {
                    (column[mid - 1] + column[mid]) / 2.0
                }
            })
            .collect()
    }

    #[test]
    fn gives_the_median_of_the_last_windows_exactly() {
        let mut rng = SplitMix64::new(3);
        let mut running = RunningMedian::new(5);
        let mut pushed: Vec<Vec<f32>> = Vec::new();
        assert_eq!(running.median(), None);
        for n in 0..40 {
            // Few distinct values, so that ties and equal values leaving are exercised.
            let window: Vec<f32> = (0..7).map(|_| ((rng.next_u64() % 6) as f32 - 2.0) * 0.5).collect();
            running.push(&window);
            pushed.push(window);
            let last = &pushed[pushed.len().saturating_sub(5)..];
            assert_eq!(running.len(), last.len(), "after {} windows", n + 1);
            assert_eq!(running.median(), Some(sorted_median(last)), "after {} windows", n + 1);
        }
    }

    #[test]
    fn a_window_of_another_length_starts_afresh() {
        let mut running = RunningMedian::new(3);
        running.push(&[1.0, 2.0]);
        running.push(&[3.0, 4.0]);
        running.push(&[5.0, 6.0, 7.0]);
        assert_eq!(running.len(), 1);
        assert_eq!(running.median(), Some(vec![5.0, 6.0, 7.0]));
    }
}
