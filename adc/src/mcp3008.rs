//! The MCP3008: a 10-bit, 8-channel successive-approximation ADC on SPI.
//!
//! The crates for it are written against embedded-hal 0.2, so this is a small driver of its
//! own: one conversion is one 3-byte full-duplex transfer (datasheet §6.1, "Using the
//! MCP3004/3008 with microcontroller SPI ports"):
//!
//! ```text
//! MOSI: 0000_0001  SGL D2 D1 D0 xxxx  xxxx_xxxx     start bit, single-ended, channel
//! MISO: xxxx_xxxx  xxxx x 0 B9 B8     B7 ... B0     null bit, then the 10-bit result
//! ```

use embedded_hal::spi::SpiDevice;

use crate::{AdcError, EcgAdc};

const DEVICE: &str = "MCP3008";

/// An MCP3008 reading one single-ended input against its reference voltage.
pub struct Mcp3008<SPI> {
    spi: SPI,
    channel: u8,
    vref: f32,
}

impl<SPI: SpiDevice> Mcp3008<SPI> {
    /// Reads `channel` (0-7, single-ended against AGND) with `vref` volts on the VREF pin
    /// (3.3 V when it is tied to the Pi's 3V3). The SPI device must be set to mode 0 (or 3)
    /// at no more than 1.35 MHz at 2.7 V / 3.6 MHz at 5 V.
    pub fn new(spi: SPI, channel: u8, vref: f32) -> Result<Self, AdcError> {
        if channel > 7 {
            return Err(AdcError::Config(format!(
                "the MCP3008 has inputs 0-7 (CH0-CH7), not {channel}"
            )));
        }
        if !(vref.is_finite() && vref > 0.0) {
            return Err(AdcError::Config(format!(
                "the MCP3008's reference voltage must be positive, got {vref}"
            )));
        }
        Ok(Mcp3008 { spi, channel, vref })
    }

    /// The bytes sent for one conversion of `channel`.
    pub fn command(channel: u8) -> [u8; 3] {
        [0x01, 0x80 | (channel & 0x07) << 4, 0x00]
    }

    /// Reads one conversion: 0..=1023 over 0..VREF.
    pub fn read_counts(&mut self) -> Result<u16, AdcError> {
        let command = Self::command(self.channel);
        let mut response = [0u8; 3];
        self.spi
            .transfer(&mut response, &command)
            .map_err(|e| AdcError::bus(DEVICE, "SPI transfer", e))?;
        Ok(decode(response))
    }

    /// Volts for `counts`: `counts × vref / 1024`.
    pub fn counts_to_volts(&self, counts: u16) -> f32 {
        f32::from(counts) * self.vref / 1024.0
    }

    /// Gives the SPI device back.
    pub fn release(self) -> SPI {
        self.spi
    }
}

/// The 10-bit result in the last two bytes of the response.
fn decode(response: [u8; 3]) -> u16 {
    u16::from(response[1] & 0x03) << 8 | u16::from(response[2])
}

impl<SPI: SpiDevice> EcgAdc for Mcp3008<SPI> {
    fn read_volts(&mut self) -> Result<f32, AdcError> {
        let counts = self.read_counts()?;
        Ok(self.counts_to_volts(counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrontEnd;
    use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};

    fn conversion(sent: [u8; 3], response: [u8; 3]) -> [T<u8>; 3] {
        [
            T::transaction_start(),
            T::transfer(sent.to_vec(), response.to_vec()),
            T::transaction_end(),
        ]
    }

    #[test]
    fn channel_0_transfer_and_decode() {
        let expected: Vec<T<u8>> = [
            // 0b10_0000_0000 = 512: half of VREF.
            conversion([0x01, 0x80, 0x00], [0xFF, 0xFA, 0x00]),
            // Full scale: 1023. Bits above B9 in the second byte are not data.
            conversion([0x01, 0x80, 0x00], [0x00, 0xFB, 0xFF]),
            // Zero.
            conversion([0x01, 0x80, 0x00], [0x00, 0x00, 0x00]),
        ]
        .concat();
        let mut adc = Mcp3008::new(Mock::new(&expected), 0, 3.3).unwrap();
        assert_eq!(adc.read_counts().unwrap(), 512);
        assert_eq!(adc.read_counts().unwrap(), 1023);
        assert_eq!(adc.read_volts().unwrap(), 0.0);
        adc.release().done();
    }

    #[test]
    fn channel_7_transfer_and_volts() {
        // SGL = 1, D2..D0 = 111: 0xF0.
        assert_eq!(Mcp3008::<Mock<u8>>::command(7), [0x01, 0xF0, 0x00]);
        assert_eq!(Mcp3008::<Mock<u8>>::command(3), [0x01, 0xB0, 0x00]);
        let expected = conversion([0x01, 0xF0, 0x00], [0x00, 0x02, 0x00]);
        let mut adc = Mcp3008::new(Mock::new(&expected), 7, 3.3).unwrap();
        let volts = adc.read_volts().unwrap();
        assert!((volts - 1.65).abs() < 1e-6, "{volts}");
        // 512 counts at 3.3 V is the AD8232's resting level: 0 mV at the electrodes.
        assert!(FrontEnd::default().to_mv(volts).abs() < 1e-4);
        assert!((adc.counts_to_volts(1023) - 3.3 * 1023.0 / 1024.0).abs() < 1e-6);
        // One count at 3.3 V and gain 100 is 32 µV at the electrodes.
        let step = FrontEnd::default().to_mv(adc.counts_to_volts(513)) - FrontEnd::default().to_mv(volts);
        assert!((step - 0.0322).abs() < 1e-3, "{step}");
        adc.release().done();
    }

    #[test]
    fn bad_settings_and_bus_errors() {
        for (channel, vref) in [(8, 3.3), (0, 0.0), (0, f32::NAN)] {
            let mut mock = Mock::<u8>::new(&[]);
            assert!(matches!(
                Mcp3008::new(mock.clone(), channel, vref),
                Err(AdcError::Config(_))
            ));
            mock.done();
        }

        struct Broken;
        impl embedded_hal::spi::ErrorType for Broken {
            type Error = embedded_hal::spi::ErrorKind;
        }
        impl SpiDevice for Broken {
            fn transaction(&mut self, _: &mut [embedded_hal::spi::Operation<'_, u8>]) -> Result<(), Self::Error> {
                Err(embedded_hal::spi::ErrorKind::Other)
            }
        }
        let err = Mcp3008::new(Broken, 0, 3.3).unwrap().read_volts().unwrap_err();
        assert_eq!(err.to_string(), "MCP3008: SPI transfer failed: Other");
    }
}
