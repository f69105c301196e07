//! Paced acquisition: one reading per tick of the sample clock, in blocks.

use std::time::Duration;

use embedded_hal::digital::InputPin;

use crate::{AdcError, Clock, EcgAdc, FrontEnd, LeadOff, LeadState};

/// How an acquisition runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AcquisitionConfig {
    /// Sampling rate in Hz. Default 360 (MIT-BIH's, and the study's).
    pub fs: f64,
    /// Sample slots per [`Block`]. Default 36 (100 ms at 360 Hz).
    pub chunk: usize,
    /// `Some(d)`: stop after `round(d × fs)` sample slots (the study's 10 s acquisition is
    /// `Some(10 s)`, 3600 samples at 360 Hz). `None` (the default): run until dropped.
    pub duration: Option<Duration>,
    /// Failed ADC reads in a row that are tolerated (each becomes a NaN sample) before the
    /// acquisition fails. Default 360 (one second at 360 Hz).
    pub max_consecutive_errors: u32,
}

impl Default for AcquisitionConfig {
    fn default() -> Self {
        AcquisitionConfig {
            fs: 360.0,
            chunk: 36,
            duration: None,
            max_consecutive_errors: 360,
        }
    }
}

impl AcquisitionConfig {
    /// The number of sample slots, for a fixed duration.
    pub fn total_samples(&self) -> Option<u64> {
        self.duration.map(|d| (d.as_secs_f64() * self.fs).round() as u64)
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), AdcError> {
        if !(self.fs.is_finite() && self.fs > 0.0) {
            return Err(AdcError::Config(format!(
                "the sampling rate must be a positive number of Hz, got {}",
                self.fs
            )));
        }
        if self.chunk == 0 {
            return Err(AdcError::Config("a block must hold at least one sample".to_owned()));
        }
        if self.total_samples() == Some(0) {
            return Err(AdcError::Config(format!(
                "an acquisition of {:?} at {} Hz holds no sample",
                self.duration.unwrap_or_default(),
                self.fs
            )));
        }
        Ok(())
    }
}

/// Samples of consecutive ticks, with what happened during them.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Index of the first sample (tick) since the start of the acquisition.
    pub start: u64,
    /// Millivolts at the electrodes, one per tick. NaN where there is no ECG: the leads
    /// were off, the tick was missed (overrun) or the read failed; an event says which.
    pub samples: Vec<f32>,
    /// For each sample, the time since the acquisition's first tick at which it was read
    /// (after waking for its tick); for a missed tick, the time the tick was due.
    pub timestamps: Vec<Duration>,
    /// Events whose sample lies in this block, in order.
    pub events: Vec<AcqEvent>,
}

/// Something that happened at a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct AcqEvent {
    /// The sample index (tick) it happened at.
    pub sample: u64,
    pub kind: AcqEventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum AcqEventKind {
    /// An electrode came off (which, in the state): samples are NaN from here.
    LeadOffStart(LeadState),
    /// The electrodes are back on: samples are ECG again from here.
    LeadOffEnd,
    /// The read before this tick finished after it was due (or the caller came back late):
    /// `missed` ticks from this sample on were skipped, and their samples are NaN. The clock
    /// skips ahead to the next tick still in the future rather than reading in a burst.
    Overrun { missed: u64 },
    /// The ADC read failed (the message says why); the sample is NaN. Reported on the first
    /// failure of a run of failures.
    ReadError(String),
}

/// Counters since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sample slots handed out (every tick, read or not).
    pub samples: u64,
    /// Successful ADC reads.
    pub reads: u64,
    /// Overrun events.
    pub overruns: u64,
    /// Ticks skipped by overruns.
    pub missed_ticks: u64,
    /// Samples taken while a lead was off.
    pub lead_off_samples: u64,
    /// Failed ADC reads.
    pub read_errors: u64,
    /// The latest any read started after its tick was due.
    pub max_late: Duration,
}

/// Reads `adc` once per tick of `clock` at `fs`, turning volts into millivolts at the
/// electrodes through `front_end`, with the electrodes' state from `lead_off`.
///
/// Sample `k` is due `k / fs` after the first tick (taken when [`Acquisition::next_block`]
/// is first called), so the sample index is stream time and never drifts. While a lead is
/// off the sample is NaN (the ADC is not read) and an [`AcqEventKind::LeadOffStart`] /
/// [`AcqEventKind::LeadOffEnd`] pair marks the span.
pub struct Acquisition<A, P, C> {
    adc: A,
    lead_off: LeadOff<P>,
    clock: C,
    front_end: FrontEnd,
    config: AcquisitionConfig,
    period_ns: f64,
    total: Option<u64>,
    /// Clock time of tick 0, once started.
    origin: Option<Duration>,
    /// The next sample slot to fill.
    next: u64,
    /// Slots from `next` on already known to be missed.
    missed_pending: u64,
    leads_off: bool,
    consecutive_errors: u32,
    stats: Stats,
}

impl<A: EcgAdc, P: InputPin, C: Clock> Acquisition<A, P, C> {
    /// An acquisition that starts at the first [`Acquisition::next_block`].
    pub fn new(
        adc: A,
        lead_off: LeadOff<P>,
        clock: C,
        front_end: FrontEnd,
        config: AcquisitionConfig,
    ) -> Result<Self, AdcError> {
        config.validate()?;
        front_end.validate()?;
        Ok(Acquisition {
            adc,
            lead_off,
            clock,
            front_end,
            config,
            period_ns: 1e9 / config.fs,
            total: config.total_samples(),
            origin: None,
            next: 0,
            missed_pending: 0,
            leads_off: false,
            consecutive_errors: 0,
            stats: Stats::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &AcquisitionConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether every sample of a fixed-duration acquisition has been handed out.
    pub fn is_finished(&self) -> bool {
        self.total.is_some_and(|t| self.next >= t)
    }

    /// When tick `k` is due, from the first tick.
    pub fn tick_time(&self, k: u64) -> Duration {
        Duration::from_nanos((k as f64 * self.period_ns).round() as u64)
    }

    /// The first tick due at or after `t` (from the first tick).
    fn first_tick_from(&self, t: Duration) -> u64 {
        let mut k = (t.as_nanos() as f64 / self.period_ns).ceil() as u64;
        while self.tick_time(k) < t {
            k += 1;
        }
        while k > 0 && self.tick_time(k - 1) >= t {
            k -= 1;
        }
        k
    }

    /// Waits for and reads the next `chunk` ticks (fewer at the end of a fixed-duration
    /// acquisition); `None` once it is over. Fails when a pin cannot be read, or when the
    /// ADC has failed more than `max_consecutive_errors` reads in a row.
    pub fn next_block(&mut self) -> Result<Option<Block>, AdcError> {
        if self.is_finished() {
            return Ok(None);
        }
        let origin = *self.origin.get_or_insert_with(|| self.clock.now());
        let end = self.next.saturating_add(self.config.chunk as u64);
        let end = self.total.map_or(end, |t| end.min(t));
        let n = (end - self.next) as usize;
        let mut block = Block {
            start: self.next,
            samples: Vec::with_capacity(n),
            timestamps: Vec::with_capacity(n),
            events: Vec::new(),
        };
        while self.next < end {
            let k = self.next;
            let due = self.tick_time(k);
            if self.missed_pending == 0 {
                // A tick whose time has passed before we could wait for it is missed: skip to
                // the next one still ahead rather than catching up in a burst.
                let now = self.clock.now().saturating_sub(origin);
                if now > due {
                    let resume = self.first_tick_from(now);
                    let resume = self.total.map_or(resume, |t| resume.min(t));
                    let missed = resume - k;
                    self.missed_pending = missed;
                    self.stats.overruns += 1;
                    self.stats.missed_ticks += missed;
                    block.events.push(AcqEvent {
                        sample: k,
                        kind: AcqEventKind::Overrun { missed },
                    });
                }
            }
            if self.missed_pending > 0 {
                self.missed_pending -= 1;
                block.samples.push(f32::NAN);
                block.timestamps.push(due);
            } else {
                self.clock.sleep_until(origin + due);
                let at = self.clock.now().saturating_sub(origin);
                self.stats.max_late = self.stats.max_late.max(at.saturating_sub(due));
                let sample = self.read(k, &mut block.events)?;
                block.samples.push(sample);
                block.timestamps.push(at);
            }
            self.next += 1;
            self.stats.samples += 1;
        }
        Ok(Some(block))
    }

    /// One tick's reading: the electrodes' state, then (when they are on) the ADC.
    fn read(&mut self, k: u64, events: &mut Vec<AcqEvent>) -> Result<f32, AdcError> {
        let state = self.lead_off.read()?;
        if state.any_off() {
            if !self.leads_off {
                self.leads_off = true;
                events.push(AcqEvent {
                    sample: k,
                    kind: AcqEventKind::LeadOffStart(state),
                });
            }
            self.stats.lead_off_samples += 1;
            return Ok(f32::NAN);
        }
        if self.leads_off {
            self.leads_off = false;
            events.push(AcqEvent {
                sample: k,
                kind: AcqEventKind::LeadOffEnd,
            });
        }
        match self.adc.read_volts() {
            Ok(volts) => {
                self.consecutive_errors = 0;
                self.stats.reads += 1;
                Ok(self.front_end.to_mv(volts))
            }
            Err(e) => {
                self.consecutive_errors += 1;
                self.stats.read_errors += 1;
                if self.consecutive_errors > self.config.max_consecutive_errors {
                    return Err(e);
                }
                if self.consecutive_errors == 1 {
                    events.push(AcqEvent {
                        sample: k,
                        kind: AcqEventKind::ReadError(e.to_string()),
                    });
                }
                Ok(f32::NAN)
            }
        }
    }

    /// Gives the parts back.
    pub fn release(self) -> (A, LeadOff<P>, C) {
        (self.adc, self.lead_off, self.clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LeadOff, ManualClock, Mcp3008, NoPin};
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinT};
    use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as SpiT};

    /// A fake ADC: reading `i` gives `volts[i % len]`, fails where `fail` says, and takes
    /// `cost(i)` of the shared clock's time.
    struct Fake {
        clock: ManualClock,
        volts: Vec<f32>,
        slow: Vec<(usize, Duration)>,
        fail: Vec<usize>,
        reads: usize,
    }

    impl Fake {
        fn new(clock: &ManualClock) -> Self {
            Fake {
                clock: clock.clone(),
                volts: vec![1.65, 1.75, 1.55],
                slow: Vec::new(),
                fail: Vec::new(),
                reads: 0,
            }
        }
    }

    impl EcgAdc for Fake {
        fn read_volts(&mut self) -> Result<f32, AdcError> {
            let i = self.reads;
            self.reads += 1;
            if let Some((_, d)) = self.slow.iter().find(|(j, _)| *j == i) {
                self.clock.advance(*d);
            }
            if self.fail.contains(&i) {
                return Err(AdcError::Bus {
                    device: "fake",
                    operation: "read",
                    detail: "Other".to_owned(),
                });
            }
            Ok(self.volts[i % self.volts.len()])
        }
    }

    fn config(chunk: usize, duration: Option<Duration>) -> AcquisitionConfig {
        AcquisitionConfig {
            chunk,
            duration,
            ..AcquisitionConfig::default()
        }
    }

    fn tick(k: u64) -> Duration {
        Duration::from_nanos((k as f64 * 1e9 / 360.0).round() as u64)
    }

    fn all(acq: &mut Acquisition<Fake, NoPin, ManualClock>) -> Vec<Block> {
        std::iter::from_fn(|| acq.next_block().unwrap()).collect()
    }

    #[test]
    fn n_ticks_give_n_samples_at_their_times() {
        let clock = ManualClock::new();
        clock.set(Duration::from_secs(5)); // the clock's origin is not the acquisition's
        let fake = Fake::new(&clock);
        let mut acq = Acquisition::new(
            fake,
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            config(36, None),
        )
        .unwrap();
        let mut samples = Vec::new();
        let mut times = Vec::new();
        for b in 0..3u64 {
            let block = acq.next_block().unwrap().unwrap();
            assert_eq!(block.start, 36 * b);
            assert_eq!(block.samples.len(), 36);
            assert!(block.events.is_empty());
            samples.extend(block.samples);
            times.extend(block.timestamps);
        }
        assert_eq!(samples.len(), 108);
        for (k, t) in times.iter().enumerate() {
            assert_eq!(*t, tick(k as u64), "sample {k}");
        }
        // 1/360 s apart: 2777778 ns, then 2777777 ns (rounded from the start, no drift).
        assert_eq!(times[1], Duration::from_nanos(2_777_778));
        assert_eq!(times[107], Duration::from_nanos(297_222_222));
        for (k, s) in samples.iter().enumerate() {
            let want = [0.0, 1.0, -1.0][k % 3];
            assert!((s - want).abs() < 1e-4, "sample {k}: {s}");
        }
        assert_eq!(clock.now(), Duration::from_secs(5) + tick(107));
        let stats = acq.stats();
        assert_eq!(
            (stats.samples, stats.reads, stats.overruns, stats.missed_ticks),
            (108, 108, 0, 0)
        );
        assert_eq!(stats.max_late, Duration::ZERO);
        assert!(!acq.is_finished());
    }

    #[test]
    fn a_slow_read_skips_ticks_and_counts_them() {
        let clock = ManualClock::new();
        let period = tick(1);
        let mut fake = Fake::new(&clock);
        fake.volts = vec![1.75];
        fake.slow = vec![
            // Read 5 (tick 5) takes 2.5 periods: ticks 6 and 7 have passed when it returns.
            (5, period * 5 / 2),
            // Read 10 (tick 12) takes 0.9 of a period: in time.
            (10, period * 9 / 10),
            // Read 11 (tick 13) ends exactly when tick 14 is due: still in time.
            (11, tick(14) - tick(13)),
        ];
        let mut acq = Acquisition::new(
            fake,
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            config(20, None),
        )
        .unwrap();
        let block = acq.next_block().unwrap().unwrap();
        assert_eq!(
            block.events,
            vec![AcqEvent {
                sample: 6,
                kind: AcqEventKind::Overrun { missed: 2 }
            }]
        );
        for (k, s) in block.samples.iter().enumerate() {
            assert_eq!(s.is_nan(), k == 6 || k == 7, "sample {k}: {s}");
        }
        // The missed ticks carry the time they were due; the reads after them are on time.
        assert_eq!(block.timestamps[6], tick(6));
        assert_eq!(block.timestamps[7], tick(7));
        assert_eq!(block.timestamps[8], tick(8));
        assert_eq!(block.timestamps[19], tick(19));
        let stats = acq.stats();
        assert_eq!(
            (stats.samples, stats.reads, stats.overruns, stats.missed_ticks),
            (20, 18, 1, 2)
        );
        let (fake, _, _) = acq.release();
        assert_eq!(fake.reads, 18);
    }

    #[test]
    fn a_late_caller_gets_the_gap_as_missed_ticks() {
        let clock = ManualClock::new();
        let fake = Fake::new(&clock);
        let mut acq = Acquisition::new(
            fake,
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            config(36, None),
        )
        .unwrap();
        acq.next_block().unwrap().unwrap();
        // Downstream held us for a second after the read of tick 35.
        clock.advance(Duration::from_secs(1));
        let mut blocks = Vec::new();
        for _ in 0..11 {
            blocks.push(acq.next_block().unwrap().unwrap());
        }
        // tick(35) + 1 s = tick(395): ticks 36..=394 were missed, 395 is read.
        assert_eq!(
            blocks[0].events,
            vec![AcqEvent {
                sample: 36,
                kind: AcqEventKind::Overrun { missed: 359 }
            }]
        );
        let samples: Vec<f32> = blocks.iter().flat_map(|b| b.samples.clone()).collect();
        assert_eq!(samples.len(), 396);
        assert!(samples[..359].iter().all(|s| s.is_nan()));
        assert!(samples[359..].iter().all(|s| !s.is_nan()));
        assert!(blocks[1..].iter().all(|b| b.events.is_empty()));
        assert_eq!(acq.stats().missed_ticks, 359);
    }

    #[test]
    fn ten_second_mode_stops_after_3600_samples() {
        let clock = ManualClock::new();
        let mut acq = Acquisition::new(
            Fake::new(&clock),
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            config(36, Some(Duration::from_secs(10))),
        )
        .unwrap();
        assert_eq!(acq.config().total_samples(), Some(3600));
        let blocks = all(&mut acq);
        assert_eq!(blocks.len(), 100);
        assert_eq!(blocks.iter().map(|b| b.samples.len()).sum::<usize>(), 3600);
        assert_eq!(blocks[99].start, 3564);
        assert_eq!(*blocks[99].timestamps.last().unwrap(), tick(3599));
        assert!(acq.is_finished());
        assert!(acq.next_block().unwrap().is_none(), "stays finished");
        assert_eq!(acq.stats().reads, 3600);
        assert_eq!(clock.now(), tick(3599), "no wait after the last sample");

        // Blocks that do not divide the duration: the last is short.
        let clock = ManualClock::new();
        let mut acq = Acquisition::new(
            Fake::new(&clock),
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            config(1000, Some(Duration::from_secs(10))),
        )
        .unwrap();
        let sizes: Vec<usize> = all(&mut acq).iter().map(|b| b.samples.len()).collect();
        assert_eq!(sizes, [1000, 1000, 1000, 600]);
    }

    #[test]
    fn an_overrun_at_the_end_does_not_run_past_the_duration() {
        let clock = ManualClock::new();
        let mut fake = Fake::new(&clock);
        fake.slow = vec![(3595, Duration::from_secs(1))];
        let mut acq = Acquisition::new(
            fake,
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            config(36, Some(Duration::from_secs(10))),
        )
        .unwrap();
        let blocks = all(&mut acq);
        assert_eq!(blocks.iter().map(|b| b.samples.len()).sum::<usize>(), 3600);
        let last = blocks.last().unwrap();
        assert_eq!(
            last.events,
            vec![AcqEvent {
                sample: 3596,
                kind: AcqEventKind::Overrun { missed: 4 }
            }]
        );
        assert!(last.samples[32..].iter().all(|s| s.is_nan()));
    }

    #[test]
    fn lead_off_makes_nan_and_start_end_events_without_reading_the_adc() {
        // Ten ticks: LO+ high on ticks 3-6; LO- high on tick 5 as well.
        let plus: Vec<PinT> = (0..10)
            .map(|k| PinT::get(if (3..=6).contains(&k) { State::High } else { State::Low }))
            .collect();
        let minus: Vec<PinT> = (0..10)
            .map(|k| PinT::get(if k == 5 { State::High } else { State::Low }))
            .collect();
        let (mut plus, mut minus) = (PinMock::new(&plus), PinMock::new(&minus));
        // The MCP3008 is read only on the six ticks with the leads on: 512 counts (0 mV),
        // then 543 counts (+1 mV at the electrodes, rounded to the 3.2 mV step).
        let mut spi_expected = Vec::new();
        for response in [[0, 2, 0], [0, 2, 0], [0, 2, 0], [0, 2, 31], [0, 2, 31], [0, 2, 31]] {
            spi_expected.extend([
                SpiT::transaction_start(),
                SpiT::transfer(vec![0x01, 0x80, 0x00], response.to_vec()),
                SpiT::transaction_end(),
            ]);
        }
        let mut spi = SpiMock::new(&spi_expected);
        let adc = Mcp3008::new(spi.clone(), 0, 3.3).unwrap();
        let clock = ManualClock::new();
        let mut acq = Acquisition::new(
            adc,
            LeadOff::new(Some(plus.clone()), Some(minus.clone())),
            clock,
            FrontEnd::default(),
            config(10, None),
        )
        .unwrap();
        let block = acq.next_block().unwrap().unwrap();
        let off: Vec<bool> = block.samples.iter().map(|s| s.is_nan()).collect();
        assert_eq!(off, [false, false, false, true, true, true, true, false, false, false]);
        assert_eq!(block.samples[0], 0.0);
        assert!((block.samples[9] - 0.9990).abs() < 1e-3, "{}", block.samples[9]);
        assert_eq!(
            block.events,
            vec![
                AcqEvent {
                    sample: 3,
                    kind: AcqEventKind::LeadOffStart(LeadState {
                        plus_off: true,
                        minus_off: false
                    })
                },
                AcqEvent {
                    sample: 7,
                    kind: AcqEventKind::LeadOffEnd
                },
            ]
        );
        assert_eq!(acq.stats().lead_off_samples, 4);
        assert_eq!(acq.stats().reads, 6);
        plus.done();
        minus.done();
        spi.done();
    }

    #[test]
    fn failed_reads_are_nan_until_too_many_in_a_row() {
        let clock = ManualClock::new();
        let mut fake = Fake::new(&clock);
        fake.fail = vec![2, 3, 7];
        let mut acq = Acquisition::new(
            fake,
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            config(10, None),
        )
        .unwrap();
        let block = acq.next_block().unwrap().unwrap();
        let nan: Vec<u64> = (0..10).filter(|&k| block.samples[k as usize].is_nan()).collect();
        assert_eq!(nan, [2, 3, 7]);
        let at: Vec<u64> = block.events.iter().map(|e| e.sample).collect();
        assert_eq!(at, [2, 7], "one event per run of failures");
        match &block.events[0].kind {
            AcqEventKind::ReadError(m) => assert_eq!(m, "fake: read failed: Other"),
            other => panic!("{other:?}"),
        }
        assert_eq!(acq.stats().read_errors, 3);

        let mut fake = Fake::new(&clock);
        fake.fail = (0..100).collect();
        let mut acq = Acquisition::new(
            fake,
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            AcquisitionConfig {
                max_consecutive_errors: 3,
                ..config(10, None)
            },
        )
        .unwrap();
        let err = acq.next_block().unwrap_err();
        assert!(err.to_string().contains("fake: read failed"), "{err}");
        assert_eq!(acq.release().0.reads, 4);
    }

    #[test]
    fn bad_settings_are_refused() {
        let clock = ManualClock::new();
        for bad in [
            AcquisitionConfig {
                fs: 0.0,
                ..AcquisitionConfig::default()
            },
            AcquisitionConfig {
                fs: f64::NAN,
                ..AcquisitionConfig::default()
            },
            config(0, None),
            config(36, Some(Duration::from_micros(100))),
        ] {
            let r = Acquisition::new(
                Fake::new(&clock),
                LeadOff::not_wired(),
                clock.clone(),
                FrontEnd::default(),
                bad,
            );
            assert!(matches!(r, Err(AdcError::Config(_))), "{bad:?}");
        }
        let r = Acquisition::new(
            Fake::new(&clock),
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd {
                offset_v: 1.65,
                gain: -1.0,
            },
            AcquisitionConfig::default(),
        );
        assert!(r.is_err());
    }

    #[test]
    fn other_rates_tick_at_their_period() {
        let clock = ManualClock::new();
        let mut acq = Acquisition::new(
            Fake::new(&clock),
            LeadOff::not_wired(),
            clock.clone(),
            FrontEnd::default(),
            AcquisitionConfig {
                fs: 250.0,
                chunk: 25,
                duration: Some(Duration::from_secs(2)),
                ..AcquisitionConfig::default()
            },
        )
        .unwrap();
        let blocks = all(&mut acq);
        assert_eq!(blocks.len(), 20);
        assert_eq!(blocks[1].timestamps[0], Duration::from_millis(100));
        assert_eq!(*blocks[19].timestamps.last().unwrap(), Duration::from_millis(1996));
    }
}
