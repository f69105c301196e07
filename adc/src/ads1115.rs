//! The ADS1115: a 16-bit, 4-channel delta-sigma ADC on I²C, driven through the `ads1x1x`
//! crate.

use std::time::Duration;

use ads1x1x::channel::{SingleA0, SingleA1, SingleA2, SingleA3};
use ads1x1x::{mode, Ads1x1x, DataRate16Bit, FullScaleRange, ModeChangeError, TargetAddr};
use embedded_hal::i2c::I2c;

use crate::{AdcError, EcgAdc};

type Chip = ads1x1x::ic::Ads1115;
type Resolution = ads1x1x::ic::Resolution16Bit;

const DEVICE: &str = "ADS1115";

/// The full-scale ranges of the programmable gain amplifier, in volts (± this value).
pub const ADS1115_FULL_SCALES: [f32; 6] = [6.144, 4.096, 2.048, 1.024, 0.512, 0.256];

/// The conversion rates of the ADS1115, in samples per second.
pub const ADS1115_DATA_RATES: [u32; 8] = [8, 16, 32, 64, 128, 250, 475, 860];

/// Polls of the conversion-ready bit before a single-shot read gives up (at 400 kHz one poll
/// takes about 0.1 ms, and a conversion at 8 SPS 125 ms).
const MAX_POLLS: u32 = 5_000;

/// How the ADS1115 converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// The chip converts continuously at its data rate; each read fetches the latest
    /// conversion (one I²C transfer). The data rate must be at least the sampling rate.
    Continuous,
    /// Each read starts a conversion and polls until it is done (several transfers, and a
    /// conversion time of `1 / data_rate`), so a reading is taken exactly at its tick.
    SingleShot,
}

/// Settings of an ADS1115.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ads1115Config {
    /// I²C address: 0x48 (ADDR to GND, the default), 0x49 (VDD), 0x4A (SDA) or 0x4B (SCL).
    pub address: u8,
    /// Single-ended input channel, 0-3 (A0-A3), measured against GND. Default 0.
    pub channel: u8,
    /// Full-scale range of the PGA in volts, one of [`ADS1115_FULL_SCALES`]. Default 4.096,
    /// which covers the 0-3.3 V output of a front end powered at 3.3 V.
    pub full_scale_v: f32,
    /// Conversions per second, one of [`ADS1115_DATA_RATES`]. Default 860 (the fastest).
    pub data_rate: u32,
    /// Default [`Conversion::Continuous`].
    pub conversion: Conversion,
}

impl Default for Ads1115Config {
    fn default() -> Self {
        Ads1115Config {
            address: 0x48,
            channel: 0,
            full_scale_v: 4.096,
            data_rate: 860,
            conversion: Conversion::Continuous,
        }
    }
}

impl Ads1115Config {
    /// Checks the settings against what the chip offers.
    pub fn validate(&self) -> Result<(), AdcError> {
        target_addr(self.address)?;
        full_scale_range(self.full_scale_v)?;
        data_rate(self.data_rate)?;
        if self.channel > 3 {
            return Err(AdcError::Config(format!(
                "the ADS1115 has inputs 0-3 (A0-A3), not {}",
                self.channel
            )));
        }
        Ok(())
    }
}

fn target_addr(address: u8) -> Result<TargetAddr, AdcError> {
    Ok(match address {
        0x48 => TargetAddr::Gnd,
        0x49 => TargetAddr::Vdd,
        0x4A => TargetAddr::Sda,
        0x4B => TargetAddr::Scl,
        other => {
            return Err(AdcError::Config(format!(
                "the ADS1115's I2C address is 0x48-0x4B (set by its ADDR pin), not {other:#04x}"
            )))
        }
    })
}

fn full_scale_range(volts: f32) -> Result<FullScaleRange, AdcError> {
    let ranges = [
        FullScaleRange::Within6_144V,
        FullScaleRange::Within4_096V,
        FullScaleRange::Within2_048V,
        FullScaleRange::Within1_024V,
        FullScaleRange::Within0_512V,
        FullScaleRange::Within0_256V,
    ];
    ADS1115_FULL_SCALES
        .iter()
        .position(|&v| (v - volts).abs() < 1e-4)
        .map(|i| ranges[i])
        .ok_or_else(|| {
            AdcError::Config(format!(
                "the ADS1115's full-scale range is one of {ADS1115_FULL_SCALES:?} V, not {volts}"
            ))
        })
}

fn data_rate(sps: u32) -> Result<DataRate16Bit, AdcError> {
    let rates = [
        DataRate16Bit::Sps8,
        DataRate16Bit::Sps16,
        DataRate16Bit::Sps32,
        DataRate16Bit::Sps64,
        DataRate16Bit::Sps128,
        DataRate16Bit::Sps250,
        DataRate16Bit::Sps475,
        DataRate16Bit::Sps860,
    ];
    ADS1115_DATA_RATES
        .iter()
        .position(|&r| r == sps)
        .map(|i| rates[i])
        .ok_or_else(|| {
            AdcError::Config(format!(
                "the ADS1115's data rate is one of {ADS1115_DATA_RATES:?} SPS, not {sps}"
            ))
        })
}

enum Driver<I2C> {
    OneShot(Ads1x1x<I2C, Chip, Resolution, mode::OneShot>),
    Continuous(Ads1x1x<I2C, Chip, Resolution, mode::Continuous>),
}

/// An ADS1115 reading one single-ended input.
pub struct Ads1115<I2C> {
    driver: Driver<I2C>,
    config: Ads1115Config,
}

impl<I2C: I2c> Ads1115<I2C> {
    /// Configures the chip on `i2c`: full-scale range, data rate, and (in continuous mode)
    /// the input channel, after which conversions run. Fails on a setting the chip does not
    /// have, or when the chip does not answer.
    pub fn new(i2c: I2C, config: Ads1115Config) -> Result<Self, AdcError> {
        config.validate()?;
        let mut dev = Ads1x1x::new_ads1115(i2c, target_addr(config.address)?);
        dev.set_full_scale_range(full_scale_range(config.full_scale_v)?)
            .map_err(|e| AdcError::bus(DEVICE, "setting the full-scale range", e))?;
        dev.set_data_rate(data_rate(config.data_rate)?)
            .map_err(|e| AdcError::bus(DEVICE, "setting the data rate", e))?;
        let driver = match config.conversion {
            Conversion::SingleShot => Driver::OneShot(dev),
            Conversion::Continuous => {
                let mut dev = match dev.into_continuous() {
                    Ok(dev) => dev,
                    Err(ModeChangeError::I2C(e, _)) => {
                        return Err(AdcError::bus(DEVICE, "starting continuous conversion", e))
                    }
                };
                let selected = match config.channel {
                    0 => dev.select_channel(SingleA0),
                    1 => dev.select_channel(SingleA1),
                    2 => dev.select_channel(SingleA2),
                    _ => dev.select_channel(SingleA3),
                };
                selected.map_err(|e| AdcError::bus(DEVICE, "selecting the input channel", e))?;
                // The conversion under way when the channel changed still measures the old
                // input: let it and the first one on the new input finish.
                std::thread::sleep(Duration::from_secs_f64(2.0 / f64::from(config.data_rate)));
                Driver::Continuous(dev)
            }
        };
        Ok(Ads1115 { driver, config })
    }

    /// The settings it was made with.
    pub fn config(&self) -> &Ads1115Config {
        &self.config
    }

    /// Reads one conversion result as signed counts (-32768..=32767 over ± full scale).
    pub fn read_counts(&mut self) -> Result<i16, AdcError> {
        match &mut self.driver {
            Driver::Continuous(dev) => dev
                .read()
                .map_err(|e| AdcError::bus(DEVICE, "reading the conversion register", e)),
            Driver::OneShot(dev) => {
                for _ in 0..MAX_POLLS {
                    let result = match self.config.channel {
                        0 => dev.read(SingleA0),
                        1 => dev.read(SingleA1),
                        2 => dev.read(SingleA2),
                        _ => dev.read(SingleA3),
                    };
                    match result {
                        Ok(counts) => return Ok(counts),
                        Err(nb::Error::WouldBlock) => continue,
                        Err(nb::Error::Other(e)) => return Err(AdcError::bus(DEVICE, "single-shot conversion", e)),
                    }
                }
                Err(AdcError::Timeout {
                    device: DEVICE,
                    polls: MAX_POLLS,
                })
            }
        }
    }

    /// The voltage that `counts` stand for at this chip's full-scale range.
    pub fn counts_to_volts(&self, counts: i16) -> f32 {
        counts_to_volts(counts, self.config.full_scale_v)
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        match self.driver {
            Driver::OneShot(dev) => dev.destroy_ads1115(),
            Driver::Continuous(dev) => dev.destroy_ads1115(),
        }
    }
}

/// Volts for signed 16-bit counts at a full-scale range of ± `full_scale_v`: one count is
/// `full_scale_v / 32768` (125 µV at 4.096 V).
pub(crate) fn counts_to_volts(counts: i16, full_scale_v: f32) -> f32 {
    f32::from(counts) * full_scale_v / 32768.0
}

impl<I2C: I2c> EcgAdc for Ads1115<I2C> {
    fn read_volts(&mut self) -> Result<f32, AdcError> {
        let counts = self.read_counts()?;
        Ok(self.counts_to_volts(counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrontEnd;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    const ADDR: u8 = 0x48;
    const CONFIG: u8 = 0x01;
    const CONVERSION: u8 = 0x00;

    /// The config register from the datasheet's fields: OS | MUX | PGA | MODE | DR | comparator
    /// (disabled: COMP_QUE = 11).
    fn config_word(os: u16, mux: u16, pga: u16, single_shot: u16, dr: u16) -> [u8; 2] {
        let word = os << 15 | mux << 12 | pga << 9 | single_shot << 8 | dr << 5 | 0b11;
        word.to_be_bytes()
    }

    fn write_config(word: [u8; 2]) -> T {
        T::write(ADDR, vec![CONFIG, word[0], word[1]])
    }

    /// Setting up continuous conversion of A0 at ±4.096 V and 860 SPS.
    fn continuous_setup() -> Vec<T> {
        vec![
            // Power-on default 0x8583 with PGA = 001 (±4.096 V).
            write_config(config_word(1, 0b000, 0b001, 1, 0b100)),
            // DR = 111 (860 SPS).
            write_config(config_word(1, 0b000, 0b001, 1, 0b111)),
            // MODE = 0 (continuous).
            write_config(config_word(1, 0b000, 0b001, 0, 0b111)),
            // MUX = 100 (AIN0 against GND).
            write_config(config_word(1, 0b100, 0b001, 0, 0b111)),
        ]
    }

    #[test]
    fn continuous_conversion_registers_and_counts() {
        let mut expected = continuous_setup();
        for word in [[0x33, 0x90], [0x7F, 0xFF], [0x80, 0x00], [0xFF, 0xFF], [0x00, 0x00]] {
            expected.push(T::write_read(ADDR, vec![CONVERSION], word.to_vec()));
        }
        let mut adc = Ads1115::new(Mock::new(&expected), Ads1115Config::default()).unwrap();
        assert_eq!(adc.read_counts().unwrap(), 13200);
        assert_eq!(adc.read_counts().unwrap(), 32767);
        assert_eq!(adc.read_counts().unwrap(), -32768);
        assert_eq!(adc.read_counts().unwrap(), -1);
        assert_eq!(adc.read_volts().unwrap(), 0.0);
        adc.release().done();
    }

    #[test]
    fn counts_to_volts_and_millivolts() {
        let fe = FrontEnd::default();
        // 13200 counts × 125 µV = 1.65 V: the AD8232's resting level, 0 mV.
        let v = counts_to_volts(13200, 4.096);
        assert!((v - 1.65).abs() < 1e-6);
        assert!(fe.to_mv(v).abs() < 1e-4);
        // Full scale: 32767 counts = 4.096 × 32767/32768 V.
        let v = counts_to_volts(i16::MAX, 4.096);
        assert!((v - 4.095875).abs() < 1e-6);
        assert!((fe.to_mv(v) - 24.45875).abs() < 1e-3);
        // Negative full scale and a negative reading.
        assert_eq!(counts_to_volts(i16::MIN, 4.096), -4.096);
        assert_eq!(counts_to_volts(-8000, 4.096), -1.0);
        assert!((fe.to_mv(-1.0) + 26.5).abs() < 1e-3);
        // One count at each range.
        assert_eq!(counts_to_volts(1, 4.096), 125e-6);
        assert_eq!(counts_to_volts(1, 0.256), 7.8125e-6);
        assert_eq!(counts_to_volts(16384, 6.144), 3.072);
        // +1 mV at the electrodes: 1.75 V = 14000 counts.
        assert!((fe.to_mv(counts_to_volts(14000, 4.096)) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn gain_and_channel_select_the_register_fields() {
        let config = Ads1115Config {
            address: 0x4B,
            channel: 3,
            full_scale_v: 0.256,
            data_rate: 475,
            conversion: Conversion::Continuous,
        };
        let addr = 0x4B;
        let w = |word: [u8; 2]| T::write(addr, vec![CONFIG, word[0], word[1]]);
        let expected = [
            w(config_word(1, 0b000, 0b101, 1, 0b100)),
            w(config_word(1, 0b000, 0b101, 1, 0b110)),
            w(config_word(1, 0b000, 0b101, 0, 0b110)),
            w(config_word(1, 0b111, 0b101, 0, 0b110)),
            T::write_read(addr, vec![CONVERSION], vec![0x40, 0x00]),
        ];
        let mut adc = Ads1115::new(Mock::new(&expected), config).unwrap();
        // 16384 counts at ±0.256 V = 0.128 V.
        assert_eq!(adc.read_volts().unwrap(), 0.128);
        adc.release().done();
    }

    #[test]
    fn single_shot_starts_a_conversion_and_polls() {
        let config = Ads1115Config {
            conversion: Conversion::SingleShot,
            ..Ads1115Config::default()
        };
        let idle = config_word(1, 0b000, 0b001, 1, 0b111);
        let a0 = config_word(1, 0b100, 0b001, 1, 0b111);
        let a0_busy = config_word(0, 0b100, 0b001, 1, 0b111);
        let expected = [
            write_config(config_word(1, 0b000, 0b001, 1, 0b100)),
            write_config(idle),
            // Not busy: start a conversion on A0 (OS = 1 starts it).
            T::write_read(ADDR, vec![CONFIG], idle.to_vec()),
            write_config(a0),
            // Busy once, then done: read the result.
            T::write_read(ADDR, vec![CONFIG], a0_busy.to_vec()),
            T::write_read(ADDR, vec![CONFIG], a0.to_vec()),
            T::write_read(ADDR, vec![CONVERSION], vec![0xF0, 0x60]),
        ];
        let mut adc = Ads1115::new(Mock::new(&expected), config).unwrap();
        assert_eq!(adc.read_counts().unwrap(), -4000);
        adc.release().done();
    }

    #[test]
    fn bus_errors_and_bad_settings_are_reported() {
        let expected = [T::write(ADDR, vec![CONFIG, 0x83, 0x83]).with_error(embedded_hal::i2c::ErrorKind::Other)];
        let mut mock = Mock::new(&expected);
        let err = Ads1115::new(mock.clone(), Ads1115Config::default()).err().unwrap();
        assert!(
            err.to_string().contains("ADS1115: setting the full-scale range failed"),
            "{err}"
        );
        mock.done();

        for bad in [
            Ads1115Config {
                channel: 4,
                ..Ads1115Config::default()
            },
            Ads1115Config {
                address: 0x40,
                ..Ads1115Config::default()
            },
            Ads1115Config {
                full_scale_v: 3.3,
                ..Ads1115Config::default()
            },
            Ads1115Config {
                data_rate: 1000,
                ..Ads1115Config::default()
            },
        ] {
            let mut mock = Mock::new(&[]);
            assert!(matches!(Ads1115::new(mock.clone(), bad), Err(AdcError::Config(_))));
            mock.done();
        }
    }
}
