//! Live counters and latency histograms of a run, rendered in the Prometheus text format
//! (`GET /metrics` of `ecgflow serve`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 24] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// A cumulative latency histogram with fixed buckets.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// An upper bound of quantile `q` (0..1): the upper edge of the bucket it falls in, or
    /// infinity past the last bucket; `None` when nothing was observed.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(self.counts) {
            cumulative += n;
            if cumulative >= rank {
                return Some(*bound);
            }
        }
        Some(f64::INFINITY)
    }

    /// The mean observation.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(self.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let labels = labels.trim_end_matches(',');
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {}", self.sum);
        let _ = writeln!(out, "{name}_count{labels} {}", self.count);
    }
}

/// What a run counts as it goes, shared by every thread of the run.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Signal samples read by sources.
    pub samples: AtomicU64,
    /// Beats segmented (or read from beat tables).
    pub beats: AtomicU64,
    /// Beats classified by a model.
    pub predictions: AtomicU64,
    /// Samples dropped by live sources under `overflow = "drop_oldest"`.
    pub dropped_samples: AtomicU64,
    /// Alarms announced (starts, ends and instants).
    pub events: AtomicU64,
    /// Time spent in each transform per payload, by component name.
    stages: Mutex<BTreeMap<String, Histogram>>,
    /// From a chunk's arrival at the dataflow to the prediction of a beat whose window it
    /// completed.
    prediction_latency: Mutex<Histogram>,
}

impl Metrics {
    /// Records the time a stage took for one payload.
    pub fn observe_stage(&self, stage: &str, seconds: f64) {
        if let Ok(mut stages) = self.stages.lock() {
            match stages.get_mut(stage) {
                Some(h) => h.observe(seconds),
                None => {
                    let mut h = Histogram::default();
                    h.observe(seconds);
                    stages.insert(stage.to_owned(), h);
                }
            }
        }
    }

    /// Records the latency from a sample's arrival to its beat's prediction.
    pub fn observe_prediction_latency(&self, seconds: f64) {
        if let Ok(mut h) = self.prediction_latency.lock() {
            h.observe(seconds);
        }
    }

    /// A copy of the prediction-latency histogram.
    pub fn prediction_latency(&self) -> Histogram {
        self.prediction_latency.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "ecgflow_samples_total",
                "Signal samples read by sources.",
                &self.samples,
            ),
            ("ecgflow_beats_total", "Beats segmented or read.", &self.beats),
            (
                "ecgflow_predictions_total",
                "Beats classified by a model.",
                &self.predictions,
            ),
            (
                "ecgflow_dropped_samples_total",
                "Samples dropped by live sources (overflow = drop_oldest).",
                &self.dropped_samples,
            ),
            (
                "ecgflow_events_total",
                "Alarms announced (starts, ends and instants).",
                &self.events,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let name = "ecgflow_stage_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time a transform spent on one payload.\n# TYPE {name} histogram"
        );
        if let Ok(stages) = self.stages.lock() {
            for (stage, h) in stages.iter() {
                h.render(&mut out, name, &format!("stage=\"{}\",", stage.replace('"', "'")));
            }
        }
        let name = "ecgflow_prediction_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From the arrival of the chunk completing a beat's window to its prediction.\n# TYPE {name} histogram"
        );
        if let Ok(h) = self.prediction_latency.lock() {
            h.render(&mut out, name, "");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.99), None);
        for _ in 0..98 {
            h.observe(0.0015);
        }
        h.observe(0.03);
        h.observe(20.0);
        assert_eq!(h.quantile(0.5), Some(0.002));
        assert_eq!(h.quantile(0.99), Some(0.03));
        assert_eq!(h.quantile(1.0), Some(f64::INFINITY));
    }

    #[test]
    fn prometheus_text_has_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.samples.fetch_add(360, Ordering::Relaxed);
        m.observe_stage("transforms.clean", 0.0003);
        m.observe_prediction_latency(0.004);
        let text = m.render_prometheus();
        assert!(text.contains("ecgflow_samples_total 360"));
        assert!(text.contains("ecgflow_stage_seconds_bucket{stage=\"transforms.clean\",le=\"0.0005\"} 1"));
        assert!(text.contains("ecgflow_prediction_latency_seconds_bucket{le=\"0.002\"} 0"));
        assert!(text.contains("ecgflow_prediction_latency_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(text.contains("ecgflow_prediction_latency_seconds_count 1"));
    }
}
