//! The Raspberry Pi's own buses and pins, through `rppal` (feature `pi`).
//!
//! Each function opens one device of the machine and returns the generic types of this
//! crate. A failure names the bus or pin and says what to check: whether the interface is
//! enabled (`sudo raspi-config` → Interface Options), whether the user may open it (the
//! `i2c`, `spi` and `gpio` groups), and the wiring.

use std::io;

use rppal::{gpio, i2c, spi};

use crate::{AdcError, Ads1115, Ads1115Config, LeadOff, Mcp3008};

/// An ADS1115 on one of the Pi's I²C buses.
pub type PiAds1115 = Ads1115<i2c::I2c>;
/// An MCP3008 on one of the Pi's SPI buses.
pub type PiMcp3008 = Mcp3008<spi::SimpleHalSpiDevice>;
/// The AD8232's lead-off outputs on the Pi's GPIO.
pub type PiLeadOff = LeadOff<gpio::InputPin>;

const NOT_A_PI: &str = "rppal could not identify this machine as a Raspberry Pi: run ecgflow on the Pi itself";

/// Opens `/dev/i2c-<bus>` (bus 1 is the one on header pins 3 and 5) and configures the
/// ADS1115 on it.
pub fn open_ads1115(bus: u8, config: Ads1115Config) -> Result<PiAds1115, AdcError> {
    config.validate()?;
    let device = format!("/dev/i2c-{bus}");
    let i2c = i2c::I2c::with_bus(bus).map_err(|e| {
        let hint = match &e {
            i2c::Error::Io(io) => io_hint(
                io,
                &format!(
                    "{device} does not exist: enable I2C (`sudo raspi-config` → Interface Options → I2C, or \
                     `dtparam=i2c_arm=on` in /boot/firmware/config.txt) and reboot"
                ),
                "i2c",
            ),
            i2c::Error::UnknownModel => NOT_A_PI.to_owned(),
            _ => format!("check that {device} is an I2C bus"),
        };
        AdcError::Open {
            what: format!("I2C bus {bus} ({device})"),
            detail: e.to_string(),
            hint,
        }
    })?;
    Ads1115::new(i2c, config).map_err(|e| match e {
        AdcError::Bus { operation, detail, .. } => AdcError::Open {
            what: format!("the ADS1115 at {:#04x} on {device}", config.address),
            detail: format!("{operation} failed: {detail}"),
            hint: format!(
                "the chip did not answer: check its wiring (VDD to 3V3, GND to GND, SDA to GPIO2 = pin 3, SCL to \
                 GPIO3 = pin 5) and its ADDR pin (to GND for 0x48), and look for it with `i2cdetect -y {bus}`"
            ),
        },
        other => other,
    })
}

/// Opens `/dev/spidev<bus>.<cs>` in SPI mode 0 at `clock_hz` for an MCP3008 reading
/// `channel` against `vref` volts. (SPI has no acknowledge: a missing chip reads as 0 or
/// 1023 rather than failing; see docs/raspberry-pi.md for checking the wiring.)
pub fn open_mcp3008(bus: u8, cs: u8, clock_hz: u32, channel: u8, vref: f32) -> Result<PiMcp3008, AdcError> {
    let device = format!("/dev/spidev{bus}.{cs}");
    let spi_bus = match bus {
        0 => spi::Bus::Spi0,
        1 => spi::Bus::Spi1,
        2 => spi::Bus::Spi2,
        3 => spi::Bus::Spi3,
        4 => spi::Bus::Spi4,
        5 => spi::Bus::Spi5,
        6 => spi::Bus::Spi6,
        _ => {
            return Err(AdcError::Config(format!(
                "SPI bus {bus}: the Raspberry Pi has SPI buses 0-6"
            )))
        }
    };
    let select = [
        spi::SlaveSelect::Ss0,
        spi::SlaveSelect::Ss1,
        spi::SlaveSelect::Ss2,
        spi::SlaveSelect::Ss3,
        spi::SlaveSelect::Ss4,
        spi::SlaveSelect::Ss5,
        spi::SlaveSelect::Ss6,
        spi::SlaveSelect::Ss7,
        spi::SlaveSelect::Ss8,
        spi::SlaveSelect::Ss9,
        spi::SlaveSelect::Ss10,
        spi::SlaveSelect::Ss11,
        spi::SlaveSelect::Ss12,
        spi::SlaveSelect::Ss13,
        spi::SlaveSelect::Ss14,
        spi::SlaveSelect::Ss15,
    ];
    let select = *select
        .get(usize::from(cs))
        .ok_or_else(|| AdcError::Config(format!("SPI chip select {cs}: 0-15")))?;
    let bus_handle = spi::Spi::new(spi_bus, select, clock_hz, spi::Mode::Mode0).map_err(|e| {
        let hint = match &e {
            spi::Error::Io(io) => io_hint(
                io,
                &format!(
                    "{device} does not exist: enable SPI (`sudo raspi-config` → Interface Options → SPI, or \
                     `dtparam=spi=on` in /boot/firmware/config.txt) and reboot; SPI1 and up need their own \
                     overlays (e.g. `dtoverlay=spi1-1cs`)"
                ),
                "spi",
            ),
            spi::Error::ClockSpeedNotSupported(_) => {
                "choose a lower spi_clock_hz (1 MHz suits the MCP3008 at 3.3 V)".to_owned()
            }
            _ => format!("check that {device} is an SPI device"),
        };
        AdcError::Open {
            what: format!("SPI bus {bus} chip select {cs} ({device})"),
            detail: e.to_string(),
            hint,
        }
    })?;
    Mcp3008::new(spi::SimpleHalSpiDevice::new(bus_handle), channel, vref)
}

/// Opens the GPIO pins (BCM numbers) that the AD8232's LO+ and LO− outputs are wired to,
/// as inputs with the pull-down on (an unplugged wire reads as "leads on" rather than
/// floating). `None` for a pin that is not wired.
pub fn open_lead_off(plus: Option<u8>, minus: Option<u8>) -> Result<PiLeadOff, AdcError> {
    if plus.is_none() && minus.is_none() {
        return Ok(LeadOff::new(None, None));
    }
    let gpio = gpio::Gpio::new().map_err(|e| gpio_error("the GPIO controller".to_owned(), e))?;
    let open = |pin: Option<u8>, name: &str| -> Result<Option<gpio::InputPin>, AdcError> {
        pin.map(|n| {
            gpio.get(n)
                .map(|p| p.into_input_pulldown())
                .map_err(|e| gpio_error(format!("GPIO{n} for {name}"), e))
        })
        .transpose()
    };
    let plus = open(plus, "LO+")?;
    let minus = open(minus, "LO-")?;
    Ok(LeadOff::new(plus, minus))
}

fn gpio_error(what: String, e: gpio::Error) -> AdcError {
    let hint = match &e {
        gpio::Error::UnknownModel => NOT_A_PI.to_owned(),
        gpio::Error::PinUsed(_) => "another program (or another pin setting of this pipeline) holds the pin".to_owned(),
        gpio::Error::PinNotAvailable(_) => {
            "pins are numbered as GPIO (BCM) numbers, 0-27 on the 40-pin header, not header positions".to_owned()
        }
        gpio::Error::PermissionDenied(_) => {
            "add the user to the gpio group (`sudo usermod -aG gpio $USER`, then log in again)".to_owned()
        }
        _ => "check the GPIO setup".to_owned(),
    };
    AdcError::Open {
        what,
        detail: e.to_string(),
        hint,
    }
}

fn io_hint(e: &io::Error, missing: &str, group: &str) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => missing.to_owned(),
        io::ErrorKind::PermissionDenied => {
            format!("add the user to the {group} group (`sudo usermod -aG {group} $USER`, then log in again)")
        }
        _ => "check the interface's setup".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a machine without the buses (CI, a laptop) opening fails with a message that names
    /// the device and says what to do; it never panics. On a Pi with I2C enabled and nothing
    /// at 0x4B the chip is reported missing instead.
    #[test]
    fn failures_name_the_device_and_the_fix() {
        if std::path::Path::new("/dev/i2c-250").exists() {
            return;
        }
        let err = open_ads1115(250, Ads1115Config::default()).err().unwrap().to_string();
        assert!(err.starts_with("opening I2C bus 250 (/dev/i2c-250)"), "{err}");
        assert!(err.contains("enable I2C"), "{err}");

        let err = open_mcp3008(6, 15, 1_000_000, 0, 3.3).err().unwrap().to_string();
        assert!(err.contains("/dev/spidev6.15"), "{err}");

        assert!(matches!(
            open_mcp3008(9, 0, 1_000_000, 0, 3.3),
            Err(AdcError::Config(_))
        ));
        assert!(open_lead_off(None, None).is_ok());
        if !std::path::Path::new("/dev/gpiomem").exists() && !std::path::Path::new("/dev/gpiochip0").exists() {
            let err = open_lead_off(Some(17), None).err().unwrap().to_string();
            assert!(err.starts_with("opening the GPIO controller"), "{err}");
        }
    }
}
