//! The AD8232's lead-off detection outputs.
//!
//! In DC lead-off mode the AD8232 drives LO+ high when the electrode on +IN has come off and
//! LO− high when the one on −IN has; both are low while the electrodes are on. They are
//! push-pull logic outputs at the supply (3.3 V), so they connect straight to GPIO inputs.

use embedded_hal::digital::{ErrorType, InputPin};

use crate::AdcError;

/// The state of the electrodes, as the front end reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeadState {
    /// LO+ is high: the +IN electrode is off.
    pub plus_off: bool,
    /// LO− is high: the −IN electrode is off.
    pub minus_off: bool,
}

impl LeadState {
    /// Any electrode is off: the signal is not an ECG.
    pub fn any_off(&self) -> bool {
        self.plus_off || self.minus_off
    }

    /// Which outputs are high, in words (`"LO+ high"`, `"LO+ and LO- high"`).
    pub fn describe(&self) -> &'static str {
        match (self.plus_off, self.minus_off) {
            (true, true) => "LO+ and LO- high",
            (true, false) => "LO+ high",
            (false, true) => "LO- high",
            (false, false) => "leads on",
        }
    }
}

/// The LO+ and LO− pins; either may be absent (not wired), and then it never reports off.
pub struct LeadOff<P> {
    plus: Option<P>,
    minus: Option<P>,
}

impl<P: InputPin> LeadOff<P> {
    /// Reads LO+ from `plus` and LO− from `minus`, where wired.
    pub fn new(plus: Option<P>, minus: Option<P>) -> Self {
        LeadOff { plus, minus }
    }

    /// Whether any pin is wired.
    pub fn is_wired(&self) -> bool {
        self.plus.is_some() || self.minus.is_some()
    }

    /// Reads the pins.
    pub fn read(&mut self) -> Result<LeadState, AdcError> {
        Ok(LeadState {
            plus_off: read_pin(&mut self.plus, "LO+")?,
            minus_off: read_pin(&mut self.minus, "LO-")?,
        })
    }

    /// Gives the pins back.
    pub fn release(self) -> (Option<P>, Option<P>) {
        (self.plus, self.minus)
    }
}

impl LeadOff<NoPin> {
    /// No lead-off detection: the leads always read as on.
    pub fn not_wired() -> Self {
        LeadOff {
            plus: None,
            minus: None,
        }
    }
}

fn read_pin<P: InputPin>(pin: &mut Option<P>, name: &'static str) -> Result<bool, AdcError> {
    match pin {
        None => Ok(false),
        Some(p) => p.is_high().map_err(|e| AdcError::Pin {
            pin: name,
            detail: format!("{e:?}"),
        }),
    }
}

/// A pin that is not there (always low), for [`LeadOff::not_wired`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPin;

impl ErrorType for NoPin {
    type Error = core::convert::Infallible;
}

impl InputPin for NoPin {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        Ok(false)
    }
    fn is_low(&mut self) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};
    use embedded_hal_mock::eh1::MockError;

    #[test]
    fn high_means_off() {
        let mut plus = Mock::new(&[T::get(State::Low), T::get(State::High), T::get(State::High)]);
        let mut minus = Mock::new(&[T::get(State::Low), T::get(State::Low), T::get(State::High)]);
        let mut lo = LeadOff::new(Some(plus.clone()), Some(minus.clone()));
        assert!(lo.is_wired());
        assert_eq!(lo.read().unwrap(), LeadState::default());
        let one = lo.read().unwrap();
        assert_eq!((one.plus_off, one.minus_off, one.any_off()), (true, false, true));
        assert_eq!(one.describe(), "LO+ high");
        assert_eq!(lo.read().unwrap().describe(), "LO+ and LO- high");
        plus.done();
        minus.done();
    }

    #[test]
    fn a_missing_pin_is_never_off_and_errors_name_the_pin() {
        let mut minus = Mock::new(&[
            T::get(State::High),
            T::get(State::High).with_error(MockError::Io(std::io::ErrorKind::NotConnected)),
        ]);
        let mut lo = LeadOff::new(None, Some(minus.clone()));
        let state = lo.read().unwrap();
        assert_eq!((state.plus_off, state.minus_off), (false, true));
        let err = lo.read().unwrap_err();
        assert!(err.to_string().starts_with("lead-off pin LO-: reading failed"), "{err}");
        minus.done();

        let mut none = LeadOff::not_wired();
        assert!(!none.is_wired());
        assert!(!none.read().unwrap().any_off());
    }
}
