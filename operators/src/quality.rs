//! Signal checks on a live stream: runs of missing samples (NaN: leads off, dropped or
//! failed reads) and flat lines (a lead whose amplitude barely moves: a loose electrode, a
//! saturated amplifier), each reported as a condition with a start and an end.

use crate::types::{Chunk, Event, EventPhase};

/// The names of the conditions, as [`Event::kind`].
pub const SIGNAL_GAP: &str = "signal_gap";
pub const FLAT_LINE: &str = "flat_line";

/// Watches the first lead of one stream.
#[derive(Clone, Debug)]
pub struct SignalCheck {
    /// Samples a flat stretch must last to be a flat line.
    flat_samples: u64,
    /// Largest peak-to-peak amplitude (mV) of a flat stretch.
    flat_mv: f32,
    /// The current gap's first sample.
    gap_from: Option<u64>,
    /// The current flat stretch: first sample, min and max.
    flat_from: u64,
    flat_range: Option<(f32, f32)>,
    flat_reported: bool,
}

impl SignalCheck {
    /// A flat line is `flat_s` seconds (at `fs`) within `flat_mv` peak to peak.
    pub fn new(flat_s: f64, flat_mv: f32, fs: f64) -> Self {
        SignalCheck {
            flat_samples: (flat_s * fs).round().max(1.0) as u64,
            flat_mv,
            gap_from: None,
            flat_from: 0,
            flat_range: None,
            flat_reported: false,
        }
    }

    /// Looks at a chunk; returns the conditions it starts or ends.
    pub fn process(&mut self, chunk: &Chunk) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(lead) = chunk.samples.first() else {
            return events;
        };
        for (i, &x) in lead.iter().enumerate() {
            let at = chunk.start + i as u64;
            if !x.is_finite() {
                if self.gap_from.is_none() {
                    self.gap_from = Some(at);
                    events.push(event(
                        chunk,
                        SIGNAL_GAP,
                        EventPhase::Start,
                        at,
                        "samples missing (NaN)".to_owned(),
                    ));
                }
                self.end_flat(chunk, at, &mut events);
                continue;
            }
            if let Some(from) = self.gap_from.take() {
                let seconds = (at - from) as f64 / chunk.fs;
                events.push(event(
                    chunk,
                    SIGNAL_GAP,
                    EventPhase::End,
                    at,
                    format!("{seconds:.2} s without signal"),
                ));
            }
            let (lo, hi) = self.flat_range.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x)));
            if hi - lo > self.flat_mv {
                self.end_flat(chunk, at, &mut events);
                self.flat_from = at;
                self.flat_range = Some((x, x));
            } else {
                if self.flat_range.is_none() {
                    self.flat_from = at;
                }
                self.flat_range = Some((lo, hi));
                if !self.flat_reported && at + 1 - self.flat_from >= self.flat_samples {
                    self.flat_reported = true;
                    let evidence = format!(
                        "{:.1} s within {:.3} mV peak to peak",
                        (at + 1 - self.flat_from) as f64 / chunk.fs,
                        hi - lo
                    );
                    events.push(event(chunk, FLAT_LINE, EventPhase::Start, self.flat_from, evidence));
                }
            }
        }
        events
    }

    /// The end of the stream at `end`: open conditions end there.
    pub fn finish(&mut self, chunk_like: &Chunk, end: u64) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(from) = self.gap_from.take() {
            let seconds = (end - from) as f64 / chunk_like.fs;
            events.push(event(
                chunk_like,
                SIGNAL_GAP,
                EventPhase::End,
                end,
                format!("{seconds:.2} s without signal"),
            ));
        }
        self.end_flat(chunk_like, end, &mut events);
        events
    }

    fn end_flat(&mut self, chunk: &Chunk, at: u64, events: &mut Vec<Event>) {
        if self.flat_reported {
            let seconds = (at - self.flat_from) as f64 / chunk.fs;
            events.push(event(
                chunk,
                FLAT_LINE,
                EventPhase::End,
                at,
                format!("flat for {seconds:.1} s"),
            ));
        }
        self.flat_reported = false;
        self.flat_range = None;
    }
}

fn event(chunk: &Chunk, kind: &str, phase: EventPhase, sample: u64, evidence: String) -> Event {
    Event {
        stream: chunk.stream.clone(),
        kind: kind.to_owned(),
        phase,
        sample,
        fs: chunk.fs,
        patient: None,
        ward: None,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start: u64, samples: Vec<f32>) -> Chunk {
        Chunk::new("s", 100.0, start, vec!["a".into()], vec![samples])
    }

    fn kinds(events: &[Event]) -> Vec<(&str, EventPhase, u64)> {
        events.iter().map(|e| (e.kind.as_str(), e.phase, e.sample)).collect()
    }

    #[test]
    fn gaps_and_flat_lines_start_and_end_across_chunks() {
        let mut check = SignalCheck::new(1.0, 0.05, 100.0);
        let wave = |n: usize, from: usize| (from..from + n).map(|i| (i as f32 * 0.3).sin()).collect::<Vec<f32>>();
        let mut events = check.process(&chunk(0, wave(100, 0)));
        assert!(events.is_empty(), "{events:?}");
        let mut gap = vec![f32::NAN; 30];
        gap.extend(wave(70, 130));
        events.extend(check.process(&chunk(100, gap)));
        // 1.5 s of a flat 0.2 mV, split over two chunks, then the wave again.
        events.extend(check.process(&chunk(200, vec![0.2; 80])));
        let mut tail = vec![0.21; 70];
        tail.extend(wave(30, 0));
        events.extend(check.process(&chunk(280, tail)));
        assert_eq!(
            kinds(&events),
            [
                (SIGNAL_GAP, EventPhase::Start, 100),
                (SIGNAL_GAP, EventPhase::End, 130),
                (FLAT_LINE, EventPhase::Start, 200),
                (FLAT_LINE, EventPhase::End, 350),
            ]
        );
        assert!(events[1].evidence.contains("0.30 s"));
    }

    #[test]
    fn open_conditions_end_with_the_stream() {
        let mut check = SignalCheck::new(0.5, 0.05, 100.0);
        let c = chunk(0, vec![0.0; 60]);
        assert_eq!(kinds(&check.process(&c)), [(FLAT_LINE, EventPhase::Start, 0)]);
        assert_eq!(kinds(&check.finish(&c, 60)), [(FLAT_LINE, EventPhase::End, 60)]);
    }
}
