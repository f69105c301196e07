//! ECG acquisition on a Raspberry Pi: an AD8232-style analogue front end read by an ADS1115
//! (I²C, 16 bit) or an MCP3008 (SPI, 10 bit), the front end's lead-off outputs read on GPIO,
//! and a sample clock that paces the reads at the configured rate.
//!
//! Everything here is written against the [`embedded_hal`] 1.0 traits, so the logic is
//! built and tested on any machine with mock buses. The Raspberry Pi's own buses (via
//! `rppal`) are behind the `pi` cargo feature, in the `pi` module.
//!
//! The pieces:
//! - [`EcgAdc`]: one reading in volts at the ADC input, implemented by [`Ads1115`] (through the
//!   `ads1x1x` driver) and [`Mcp3008`] (a 3-byte SPI transfer).
//! - [`FrontEnd`]: volts at the ADC input back to millivolts at the electrodes
//!   (`(volts - offset_v) / gain * 1000`; AD8232 defaults: offset 1.65 V, gain 100).
//! - [`LeadOff`]: the AD8232's LO+ and LO− outputs (high = that electrode is off).
//! - [`Clock`]: [`SystemClock`] for the real thing, [`ManualClock`] for tests.
//! - [`Acquisition`]: paces the reads at `fs`, timestamps them, counts overruns, marks
//!   lead-off, and hands out [`Block`]s of samples with their [`AcqEvent`]s; continuous or a
//!   fixed duration (the study's 10 s acquisition).
//!
//! ```
//! use std::time::Duration;
//! use ecgflow_adc::{Acquisition, AcquisitionConfig, EcgAdc, AdcError, FrontEnd, LeadOff, ManualClock};
//!
//! /// A stand-in ADC that always reads the AD8232's resting level.
//! struct Flat;
//! impl EcgAdc for Flat {
//!     fn read_volts(&mut self) -> Result<f32, AdcError> {
//!         Ok(1.65)
//!     }
//! }
//!
//! let config = AcquisitionConfig {
//!     duration: Some(Duration::from_secs(10)), // the study's 10 s acquisition
//!     ..AcquisitionConfig::default()             // 360 Hz, blocks of 36 samples
//! };
//! let mut acq = Acquisition::new(Flat, LeadOff::not_wired(), ManualClock::new(), FrontEnd::default(), config).unwrap();
//! let mut n = 0;
//! while let Some(block) = acq.next_block().unwrap() {
//!     n += block.samples.len();
//! }
//! assert_eq!(n, 3600);
//! ```

mod acquisition;
mod ads1115;
mod clock;
mod error;
mod front_end;
mod lead_off;
mod mcp3008;
#[cfg(feature = "pi")]
pub mod pi;

pub use acquisition::{AcqEvent, AcqEventKind, Acquisition, AcquisitionConfig, Block, Stats};
pub use ads1115::{Ads1115, Ads1115Config, Conversion, ADS1115_DATA_RATES, ADS1115_FULL_SCALES};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::AdcError;
pub use front_end::FrontEnd;
pub use lead_off::{LeadOff, LeadState, NoPin};
pub use mcp3008::Mcp3008;

/// The embedded-hal version the drivers are written against, for callers that implement
/// its traits (e.g. a pin of their own for [`LeadOff`]).
pub use embedded_hal;

/// An analogue-to-digital converter that reads the front end's output.
pub trait EcgAdc {
    /// Takes one reading: the voltage at the ADC input, in volts.
    fn read_volts(&mut self) -> Result<f32, AdcError>;
}

impl<T: EcgAdc + ?Sized> EcgAdc for Box<T> {
    fn read_volts(&mut self) -> Result<f32, AdcError> {
        (**self).read_volts()
    }
}

impl<T: EcgAdc + ?Sized> EcgAdc for &mut T {
    fn read_volts(&mut self) -> Result<f32, AdcError> {
        (**self).read_volts()
    }
}
