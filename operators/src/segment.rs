//! Heartbeat segmentation: a fixed window of every lead around each detected R peak.

use std::collections::VecDeque;

use crate::running_median::RunningMedian;
use crate::types::{Annotation, Beat, Chunk};

/// Default history kept for late R peaks, in seconds of signal: covers the Pan-Tompkins
/// detector's delay bound (about 2.8 s, see
/// [`RPeakDetector::delay_samples`](crate::rpeaks::RPeakDetector::delay_samples)).
pub const DEFAULT_MAX_DELAY_S: f64 = 4.0;

/// A reference annotation is matched to a beat when it lies within this many seconds of
/// the R peak (the EC57 matching window).
pub const SYMBOL_TOLERANCE_S: f64 = 0.150;

/// Number of RR intervals averaged into [`Beat::rr_local`].
pub const RR_LOCAL_BEATS: usize = 10;

/// Number of RR intervals averaged into [`Beat::rr_mean`]: about four minutes at a normal
/// rate, long enough that a run of early beats barely moves it.
pub const RR_MEAN_BEATS: usize = 300;

/// Number of RR intervals whose successive differences give [`Beat::rr_irregularity`]:
/// enough to tell atrial fibrillation from a regular rhythm with a few ectopic beats.
pub const RR_IRREGULARITY_BEATS: usize = 16;

/// Number of recent beats whose median is [`Beat::template`].
pub const TEMPLATE_BEATS: usize = 32;

/// A beat enters the template unless it came early: its RR interval is shorter than this
/// share of the long mean (premature beats are the ectopic ones the template must not
/// resemble).
pub const TEMPLATE_MIN_RR: f32 = 0.9;

/// MIT-BIH beat annotation codes; other annotations (rhythm changes, noise, comments) are
/// never matched to beats.
const BEAT_SYMBOLS: &[&str] = &[
    "N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f", "Q", "?",
];

/// A peak waiting for its window, its successor or its annotations.
#[derive(Clone, Debug)]
struct Pending {
    sample: u64,
    rr_prev: Option<f32>,
    rr_local: Option<f32>,
    rr_mean: Option<f32>,
    rr_irregularity: Option<f32>,
    /// `None` until the next peak is known (or the stream ends).
    rr_next: Option<Option<f32>>,
    /// The lead-major window, copied once all its samples have arrived.
    window: Option<Vec<f32>>,
}

/// Cuts heartbeats out of a stream: for each R peak `p` in the chunks' `rpeaks`, the
/// samples `[p - before, p + after]` (inclusive) of every lead.
///
/// A beat is emitted once its window is complete, the next R peak is known (for
/// `rr_next`, unless [`Segmenter::without_waiting_for_next`]) and annotations up to 150 ms
/// after the peak have arrived; windows holding NaN samples (gaps) are dropped; at
/// [`Segmenter::finish`] the last beat is emitted with `rr_next = None`. Beats come out in
/// peak order. Beats whose window starts before the stream start, whose peak arrives
/// after its window start has left the history, or whose window the stream ends before
/// completing are counted in [`Segmenter::dropped`], never padded.
///
/// Memory is bounded: the sample history holds at most
/// `max(max_delay, after) + before` samples per lead beyond the chunk being processed,
/// plus the copied windows of the beats waiting for their successor (normally one), the
/// last [`RR_MEAN_BEATS`] RR intervals and, with [`Segmenter::with_template`], the windows
/// of the last [`TEMPLATE_BEATS`] beats. R peaks may arrive up to `max_delay` samples after the sample itself (a detector's
/// delay); later ones are dropped.
#[derive(Clone, Debug)]
pub struct Segmenter {
    before: usize,
    after: usize,
    max_delay: Option<u64>,
    /// Stream identity, taken from the first chunk.
    stream: String,
    fs: f64,
    leads: Vec<String>,
    /// History: per lead, samples `[buf_start, buf_start + len)`.
    buf_start: u64,
    buf: Vec<VecDeque<f32>>,
    stream_start: Option<u64>,
    annotations: VecDeque<Annotation>,
    pending: VecDeque<Pending>,
    last_peak: Option<u64>,
    /// The last [`RR_MEAN_BEATS`] RR intervals (the last [`RR_LOCAL_BEATS`] give
    /// `rr_local`) and their sum.
    rr_history: VecDeque<f32>,
    rr_sum: f64,
    /// The running median of the last [`TEMPLATE_BEATS`] beats that were not early; `None`
    /// unless templates were asked for.
    template_beats: Option<RunningMedian>,
    dropped: u64,
    /// Arrival time of the chunk being processed, passed on to the beats it completes.
    arrival: Option<std::time::Instant>,
    /// Hold each beat until the next R peak is known (for `rr_next`); off for live use.
    wait_for_next: bool,
}

impl Segmenter {
    /// `before`/`after` in samples (the study: 90 and 168, 259-sample windows at 360 Hz).
    /// Late R peaks are accepted up to [`DEFAULT_MAX_DELAY_S`] of signal; see
    /// [`Segmenter::with_max_delay`].
    pub fn new(before: usize, after: usize) -> Self {
        Segmenter {
            before,
            after,
            max_delay: None,
            stream: String::new(),
            fs: 0.0,
            leads: Vec::new(),
            buf_start: 0,
            buf: Vec::new(),
            stream_start: None,
            annotations: VecDeque::new(),
            pending: VecDeque::new(),
            last_peak: None,
            rr_history: VecDeque::new(),
            rr_sum: 0.0,
            template_beats: None,
            dropped: 0,
            arrival: None,
            wait_for_next: true,
        }
    }

    /// Emits each beat as soon as its window is complete, without waiting for the next R
    /// peak: `rr_next` is then always `None`. For live monitoring, where waiting for the
    /// next beat would delay every verdict by an RR interval.
    pub fn without_waiting_for_next(mut self) -> Self {
        self.wait_for_next = false;
        self
    }

    /// Gives each beat its [`Beat::template`] (off by default: it keeps the last
    /// [`TEMPLATE_BEATS`] windows and their running median).
    pub fn with_template(mut self) -> Self {
        self.template_beats = Some(RunningMedian::new(TEMPLATE_BEATS));
        self
    }

    /// Accepts R peaks up to `samples` samples after the sample itself (e.g. an R-peak
    /// detector's `delay_samples()`), keeping that much history.
    pub fn with_max_delay(mut self, samples: u64) -> Self {
        self.max_delay = Some(samples);
        self
    }

    /// Beats dropped so far (window before the stream start, peak too late, or stream
    /// ended before the window completed).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Takes a chunk (with detected `rpeaks`, ascending, and maybe reference
    /// `annotations`) and returns every beat now complete. Chunks must follow each other
    /// without gaps.
    pub fn process(&mut self, chunk: &Chunk) -> Vec<Beat> {
        self.arrival = chunk.arrival;
        if self.stream_start.is_none() {
            self.stream_start = Some(chunk.start);
            self.stream = chunk.stream.clone();
            self.fs = chunk.fs;
            self.leads = chunk.leads.clone();
            self.buf_start = chunk.start;
            self.buf = vec![VecDeque::new(); chunk.samples.len()];
            let default = (DEFAULT_MAX_DELAY_S * chunk.fs).ceil() as u64;
            self.max_delay.get_or_insert(default);
        }
        // Missing samples (a live source dropped them) are held as NaN, so that every
        // index stays in place; windows over them are dropped. A gap longer than the
        // history just restarts it.
        let gap = chunk.start.saturating_sub(self.buf_end());
        if gap > 0 {
            let history = self.before as u64 + self.after as u64 + self.max_delay.unwrap_or(0);
            if gap > history {
                self.buf.iter_mut().for_each(VecDeque::clear);
                self.buf_start = chunk.start;
                // Peaks still waiting for samples that will never come.
                let waiting = self.pending.len();
                self.pending.retain(|p| p.window.is_some());
                self.dropped += (waiting - self.pending.len()) as u64;
            } else {
                for buf in self.buf.iter_mut() {
                    buf.extend(std::iter::repeat_n(f32::NAN, gap as usize));
                }
            }
        }
        for (buf, lead) in self.buf.iter_mut().zip(&chunk.samples) {
            buf.extend(lead);
        }
        self.annotations.extend(
            chunk
                .annotations
                .iter()
                .filter(|a| BEAT_SYMBOLS.contains(&a.symbol.as_str()))
                .cloned(),
        );
        for &peak in &chunk.rpeaks {
            self.add_peak(peak);
        }
        self.fill_windows();
        let beats = self.emit(false);
        self.evict();
        beats
    }

    /// End of stream: emits the beats whose window is complete (the last one with
    /// `rr_next = None`); beats still waiting for samples are dropped and counted.
    pub fn finish(&mut self) -> Vec<Beat> {
        if let Some(last) = self.pending.back_mut() {
            last.rr_next.get_or_insert(None);
        }
        let beats = self.emit(true);
        self.dropped += self.pending.len() as u64;
        self.pending.clear();
        beats
    }

    /// One past the last sample received.
    fn buf_end(&self) -> u64 {
        self.buf_start + self.buf.first().map_or(0, |b| b.len() as u64)
    }

    fn add_peak(&mut self, peak: u64) {
        if self.last_peak.is_some_and(|last| peak <= last) {
            return; // Not ascending: already seen.
        }
        let rr_prev = self.last_peak.map(|last| ((peak - last) as f64 / self.fs) as f32);
        // Before this beat's own interval joins the history: the rhythm leading up to it.
        let rr_irregularity = irregularity(&self.rr_history);
        if let Some(rr) = rr_prev {
            if self.rr_history.len() == RR_MEAN_BEATS {
                self.rr_sum -= self.rr_history.pop_front().map_or(0.0, f64::from);
            }
            self.rr_history.push_back(rr);
            self.rr_sum += f64::from(rr);
            if let Some(prev) = self.pending.back_mut() {
                prev.rr_next.get_or_insert(Some(rr));
            }
        }
        self.last_peak = Some(peak);
        let recent = self.rr_history.len().min(RR_LOCAL_BEATS);
        let rr_local = (recent > 0)
            .then(|| self.rr_history.iter().skip(self.rr_history.len() - recent).sum::<f32>() / recent as f32);
        let rr_mean = (!self.rr_history.is_empty()).then(|| (self.rr_sum / self.rr_history.len() as f64) as f32);
        if peak < self.buf_start + self.before as u64 {
            self.dropped += 1; // Window before the stream start or already evicted.
            return;
        }
        self.pending.push_back(Pending {
            sample: peak,
            rr_prev,
            rr_local,
            rr_mean,
            rr_irregularity,
            rr_next: None,
            window: None,
        });
    }

    /// Copies the windows that are now complete.
    fn fill_windows(&mut self) {
        let end = self.buf_end();
        for p in self.pending.iter_mut().filter(|p| p.window.is_none()) {
            if p.sample + (self.after as u64) >= end {
                break; // Later peaks are not complete either.
            }
            let from = (p.sample - self.before as u64 - self.buf_start) as usize;
            let len = self.before + 1 + self.after;
            let mut window = Vec::with_capacity(len * self.buf.len());
            for lead in &self.buf {
                window.extend(lead.range(from..from + len));
            }
            p.window = Some(window);
        }
    }

    /// Emits the complete beats at the front of the queue, in peak order.
    fn emit(&mut self, at_end: bool) -> Vec<Beat> {
        let tolerance = (SYMBOL_TOLERANCE_S * self.fs).round() as u64;
        let end = self.buf_end();
        let mut beats = Vec::new();
        while let Some(p) = self.pending.front() {
            let annotated = at_end || p.sample + tolerance < end;
            let rr_next = match p.rr_next {
                Some(rr) => Some(rr),
                None if !self.wait_for_next => Some(None),
                None => None,
            };
            let (Some(rr_next), true, true) = (rr_next, p.window.is_some(), annotated) else {
                break;
            };
            let p = self.pending.pop_front().expect("front exists");
            // A window over a gap (leads off, dropped samples) is no beat to classify.
            if p.window.as_ref().is_some_and(|w| w.iter().any(|v| !v.is_finite())) {
                self.dropped += 1;
                continue;
            }
            let symbol = self
                .annotations
                .iter()
                .filter(|a| a.sample.abs_diff(p.sample) <= tolerance)
                .min_by_key(|a| a.sample.abs_diff(p.sample))
                .map(|a| a.symbol.clone());
            let window = p.window.expect("checked above");
            let early = match (p.rr_prev, p.rr_mean) {
                (Some(rr), Some(mean)) => rr < TEMPLATE_MIN_RR * mean,
                _ => false,
            };
            let template = self.template_beats.as_mut().map(|recent| {
                // The stream's first beat has only itself to go by.
                let template = recent.median().unwrap_or_else(|| window.clone());
                if !early {
                    recent.push(&window);
                }
                template
            });
            beats.push(Beat {
                stream: self.stream.clone(),
                fs: self.fs,
                sample: p.sample,
                leads: self.leads.clone(),
                before: self.before,
                after: self.after,
                window,
                template,
                rr_prev: p.rr_prev,
                rr_next,
                rr_local: p.rr_local,
                rr_mean: p.rr_mean,
                rr_irregularity: p.rr_irregularity,
                symbol,
                prediction: None,
                arrival: self.arrival,
            });
        }
        beats
    }

    /// Drops history no pending or future peak can need.
    fn evict(&mut self) {
        let end = self.buf_end();
        let reach = self.max_delay.unwrap_or(0).max(self.after as u64) + self.before as u64;
        let mut keep_from = end.saturating_sub(reach);
        if let Some(p) = self.pending.iter().find(|p| p.window.is_none()) {
            keep_from = keep_from.min(p.sample - self.before as u64);
        }
        let keep_from = keep_from.max(self.buf_start);
        let n = (keep_from - self.buf_start) as usize;
        for lead in &mut self.buf {
            lead.drain(..n);
        }
        self.buf_start = keep_from;
        let tolerance = (SYMBOL_TOLERANCE_S * self.fs).round() as u64;
        let oldest = self.pending.front().map_or(keep_from, |p| p.sample.min(keep_from));
        while self.annotations.front().is_some_and(|a| a.sample + tolerance < oldest) {
            self.annotations.pop_front();
        }
    }
}

/// [`Beat::rr_irregularity`] from the RR intervals before a beat (oldest first): the median
/// absolute difference between successive ones among the last [`RR_IRREGULARITY_BEATS`];
/// `None` with fewer than 4 intervals.
fn irregularity(history: &VecDeque<f32>) -> Option<f32> {
    let recent: Vec<f32> = history
        .iter()
        .skip(history.len().saturating_sub(RR_IRREGULARITY_BEATS))
        .copied()
        .collect();
    if recent.len() < 4 {
        return None;
    }
    let mut steps: Vec<f32> = recent.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    Some(median(&mut steps))
}

/// The median of non-empty `values` (reordered); with an even count, the mean of the two
/// middle values.
fn median(values: &mut [f32]) -> f32 {
    let mid = values.len() / 2;
    let even = values.len().is_multiple_of(2);
    let (lower, &mut upper, _) = values.select_nth_unstable_by(mid, f32::total_cmp);
    if even {
        (lower.iter().copied().fold(f32::NEG_INFINITY, f32::max) + upper) / 2.0
    } else {
        upper
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start: u64, len: usize, peaks: Vec<u64>) -> Chunk {
        let mut c = Chunk::new("s", 100.0, start, vec!["a".into()], vec![vec![0.5; len]]);
        c.rpeaks = peaks;
        c.annotations = c
            .rpeaks
            .iter()
            .map(|&p| Annotation {
                sample: p,
                symbol: "N".into(),
            })
            .collect();
        c
    }

    #[test]
    fn history_stays_bounded_over_a_long_stream() {
        let mut seg = Segmenter::new(30, 50).with_max_delay(250);
        let mut beats = 0;
        for k in 0..2000u64 {
            // Peaks every 80 samples, each reported 200 samples late.
            let start = k * 100;
            let peaks = (start.saturating_sub(200)..start + 100 - 200.min(start + 100))
                .filter(|p| p % 80 == 40)
                .collect();
            beats += seg.process(&chunk(start, 100, peaks)).len();
            assert!(seg.buf[0].len() <= 250 + 30 + 100, "history {}", seg.buf[0].len());
            assert!(seg.pending.len() <= 4);
            assert!(seg.annotations.len() <= 8);
        }
        beats += seg.finish().len();
        assert!(beats > 2400);
    }

    #[test]
    fn peaks_later_than_max_delay_are_dropped() {
        let mut seg = Segmenter::new(10, 10).with_max_delay(20);
        assert!(seg.process(&chunk(0, 100, vec![])).is_empty());
        assert!(seg.process(&chunk(100, 100, vec![50, 190])).is_empty());
        assert_eq!(seg.dropped(), 1, "50 - 10 is older than the history kept");
        assert!(seg.finish().is_empty(), "190 + 10 is past the end");
        assert_eq!(seg.dropped(), 2);
    }

    #[test]
    fn live_beats_leave_without_waiting_for_the_next_peak() {
        let mut seg = Segmenter::new(10, 20).without_waiting_for_next();
        let beats = seg.process(&chunk(0, 100, vec![50]));
        assert_eq!(beats.len(), 1, "the window ends at 70, within the chunk");
        assert_eq!(beats[0].rr_next, None);
        let mut waiting = Segmenter::new(10, 20);
        assert!(
            waiting.process(&chunk(0, 100, vec![50])).is_empty(),
            "waits for the next peak"
        );
    }

    #[test]
    fn gaps_keep_indices_and_drop_the_windows_over_them() {
        let mut seg = Segmenter::new(10, 10).without_waiting_for_next();
        assert!(seg.process(&chunk(0, 100, vec![])).is_empty());
        // Samples 100..150 were dropped; the peak at 145 has a window over the gap.
        let beats = seg.process(&chunk(150, 100, vec![145, 200]));
        assert_eq!(beats.len(), 1);
        assert_eq!(beats[0].sample, 200);
        assert!(
            beats[0].window.iter().all(|v| *v == 0.5),
            "the window is 190..=210, after the gap"
        );
        assert_eq!(seg.dropped(), 1);
        // A gap longer than the history restarts it; samples stay where they belong.
        let beats = seg.process(&chunk(10_000, 100, vec![10_050]));
        assert_eq!(beats.len(), 1);
        assert_eq!(beats[0].sample, 10_050);
    }

    #[test]
    fn the_long_mean_barely_moves_in_a_run_of_early_beats() {
        // 40 beats every 100 samples (1 s at 100 Hz), then 5 every 50.
        let fs = 100.0;
        let mut peaks: Vec<u64> = (1..=40).map(|k| k * 100).collect();
        peaks.extend((1..=5).map(|k| 4000 + k * 50));
        let mut seg = Segmenter::new(10, 10).without_waiting_for_next();
        let mut c = chunk(0, 5000, peaks);
        c.fs = fs;
        let beats = seg.process(&c);
        let last = beats.last().unwrap();
        assert_eq!(last.sample, 4250);
        assert_eq!(last.rr_prev, Some(0.5));
        let local = (5.0 * 1.0 + 5.0 * 0.5) / 10.0;
        assert!((last.rr_local.unwrap() - local).abs() < 1e-6, "the last 10 intervals");
        let mean = (39.0 * 1.0 + 5.0 * 0.5) / 44.0;
        assert!((last.rr_mean.unwrap() - mean).abs() < 1e-6, "all 44 intervals");
        assert_eq!(beats[0].rr_mean, None, "no interval before the first beat");
    }

    #[test]
    fn irregularity_is_high_in_an_irregular_rhythm_and_zero_in_a_regular_one() {
        // 20 beats 1 s apart, then 20 alternating 0.6 s and 1.0 s apart, at 100 Hz.
        let mut peaks: Vec<u64> = (1..=20).map(|k| k * 100).collect();
        for k in 0..20 {
            let last = *peaks.last().unwrap();
            peaks.push(last + if k % 2 == 0 { 60 } else { 100 });
        }
        let mut seg = Segmenter::new(10, 10).without_waiting_for_next();
        let mut c = chunk(0, 5000, peaks);
        c.fs = 100.0;
        let beats = seg.process(&c);
        assert_eq!(beats[3].rr_irregularity, None, "fewer than 4 intervals before it");
        assert_eq!(beats[19].rr_irregularity, Some(0.0), "18 regular intervals before it");
        let last = beats.last().unwrap().rr_irregularity.unwrap();
        assert!((last - 0.4).abs() < 1e-6, "every step 0.4 s: {last}");
        // Its own early interval does not count: the first early beat's rhythm was regular.
        assert_eq!(beats[20].rr_prev, Some(0.6));
        assert_eq!(beats[20].rr_irregularity, Some(0.0));
    }

    #[test]
    fn the_long_mean_forgets_intervals_older_than_its_span() {
        let mut seg = Segmenter::new(1, 1).without_waiting_for_next();
        // RR_MEAN_BEATS intervals of 10 samples, then as many of 20.
        let n = RR_MEAN_BEATS as u64;
        let mut peaks: Vec<u64> = (1..=n + 1).map(|k| k * 10).collect();
        peaks.extend((1..=n).map(|k| (n + 1) * 10 + k * 20));
        let end = peaks.last().unwrap() + 10;
        let mut c = chunk(0, end as usize, peaks);
        c.fs = 10.0;
        let beats = seg.process(&c);
        let last = beats.last().unwrap();
        assert!((last.rr_mean.unwrap() - 2.0).abs() < 1e-6, "{:?}", last.rr_mean);
    }

    #[test]
    fn the_template_is_the_median_of_recent_beats_that_were_not_early() {
        // Beats every 100 samples, except one early beat at 650; windows are all 0.5 but for
        // a bump of height k at beat k's peak.
        let peaks = [100u64, 200, 300, 400, 500, 600, 650, 800, 900];
        let mut samples = vec![0.5f32; 1000];
        for (k, &p) in peaks.iter().enumerate() {
            samples[p as usize] = k as f32;
        }
        let mut c = Chunk::new("s", 100.0, 0, vec!["a".into()], vec![samples]);
        c.rpeaks = peaks.to_vec();
        let mut seg = Segmenter::new(2, 2).without_waiting_for_next().with_template();
        let beats = seg.process(&c);
        assert_eq!(beats.len(), peaks.len());
        let plain = Segmenter::new(2, 2).without_waiting_for_next().process(&c);
        assert!(plain.iter().all(|b| b.template.is_none()), "templates only on request");
        assert_eq!(
            beats[0].template.as_ref(),
            Some(&beats[0].window),
            "the first beat is its own"
        );
        assert_eq!(beats[1].template.as_deref(), Some(&[0.5, 0.5, 0.0, 0.5, 0.5][..]));
        // Beat 3 sees beats 0, 1, 2: the median of 0, 1, 2 at the peak.
        assert_eq!(beats[3].template.as_ref().unwrap()[2], 1.0);
        // Beat 4 sees four beats: the mean of the two middle values, 1 and 2.
        assert_eq!(beats[4].template.as_ref().unwrap()[2], 1.5);
        // The early beat 6 (RR 0.5 s against a mean of about 0.92 s) is left out: beat 8
        // sees 0-5 and 7, whose median at the peak is 3 (3.5 with beat 6).
        assert_eq!(beats[8].template.as_ref().unwrap()[2], 3.0);
    }
}
