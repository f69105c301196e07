//! The sample clock: what time it is, and waiting for a tick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock that the acquisition paces itself by.
pub trait Clock {
    /// Time since the clock's own origin.
    fn now(&self) -> Duration;
    /// Returns at `t` (or at once when `t` has passed).
    fn sleep_until(&mut self, t: Duration);
}

/// The machine's monotonic clock. Sleeps in the kernel until shortly before the tick, then
/// spins for the rest (`spin`, 100 µs by default): Linux wakes a sleeping thread 50-100 µs
/// late, which is a third of a 360 Hz sample period.
#[derive(Clone, Debug)]
pub struct SystemClock {
    origin: Instant,
    spin: Duration,
}

impl SystemClock {
    /// A clock whose origin is now, spinning for the last 100 µs before a tick.
    pub fn new() -> Self {
        Self::with_spin(Duration::from_micros(100))
    }

    /// A clock that spins for the last `spin` before each tick (zero: never spins, for the
    /// least CPU at the price of late wake-ups).
    pub fn with_spin(spin: Duration) -> Self {
        SystemClock {
            origin: Instant::now(),
            spin,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep_until(&mut self, t: Duration) {
        let now = self.now();
        if t <= now {
            return;
        }
        let left = t - now;
        if left > self.spin {
            std::thread::sleep(left - self.spin);
        }
        while self.now() < t {
            std::hint::spin_loop();
        }
    }
}

/// A clock that only moves when told: `sleep_until` jumps to the time asked for, and
/// [`ManualClock::advance`] stands for time spent working (e.g. a slow bus read). Clones
/// share one time, so a test's fake ADC can advance the clock the acquisition reads.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(nanos(d), Ordering::SeqCst);
    }

    /// Sets the clock to `t` (never backwards).
    pub fn set(&self, t: Duration) {
        self.nanos.fetch_max(nanos(t), Ordering::SeqCst);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn sleep_until(&mut self, t: Duration) {
        self.set(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_jumps_and_is_shared() {
        let mut clock = ManualClock::new();
        let other = clock.clone();
        clock.sleep_until(Duration::from_millis(5));
        other.advance(Duration::from_millis(1));
        assert_eq!(clock.now(), Duration::from_millis(6));
        clock.sleep_until(Duration::from_millis(2));
        assert_eq!(other.now(), Duration::from_millis(6), "never goes backwards");
    }

    #[test]
    fn system_clock_wakes_at_the_tick() {
        let mut clock = SystemClock::new();
        let t = clock.now() + Duration::from_millis(3);
        clock.sleep_until(t);
        let late = clock.now() - t;
        assert!(clock.now() >= t);
        // Generous: the machine may be busy, but not by a second.
        assert!(late < Duration::from_secs(1), "{late:?}");
        // A time in the past returns at once.
        let before = clock.now();
        clock.sleep_until(Duration::ZERO);
        assert!(clock.now() - before < Duration::from_secs(1));
    }
}
