//! The analogue front end: from volts at the ADC input back to millivolts at the electrodes.

/// An AD8232-style front end: a single-supply instrumentation amplifier whose output sits at
/// a reference level (`offset_v`, mid-supply) and swings with the ECG amplified by `gain`.
///
/// A reading of `v` volts at the ADC is `(v - offset_v) / gain * 1000` mV at the electrodes.
/// The defaults are the usual AD8232 breakout board (e.g. SparkFun's) powered at 3.3 V:
/// reference 1.65 V (VCC/2) and an overall gain of 100.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrontEnd {
    /// Output level for 0 mV at the electrodes, in volts. Default 1.65 (VCC/2 at 3.3 V).
    pub offset_v: f32,
    /// Overall voltage gain from the electrodes to the output. Default 100.
    pub gain: f32,
}

impl Default for FrontEnd {
    fn default() -> Self {
        FrontEnd {
            offset_v: 1.65,
            gain: 100.0,
        }
    }
}

impl FrontEnd {
    /// Millivolts at the electrodes for `volts` at the ADC input.
    pub fn to_mv(&self, volts: f32) -> f32 {
        (volts - self.offset_v) / self.gain * 1000.0
    }

    /// Checks that the gain is usable.
    pub fn validate(&self) -> Result<(), crate::AdcError> {
        if !(self.gain.is_finite() && self.gain > 0.0) {
            return Err(crate::AdcError::Config(format!(
                "front-end gain must be a positive number, got {}",
                self.gain
            )));
        }
        if !self.offset_v.is_finite() {
            return Err(crate::AdcError::Config(format!(
                "front-end offset must be a number, got {}",
                self.offset_v
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mid_supply_is_zero_and_gain_divides() {
        let fe = FrontEnd::default();
        assert_eq!(fe.to_mv(1.65), 0.0);
        // +100 mV at the output is +1 mV at the electrodes.
        assert!((fe.to_mv(1.75) - 1.0).abs() < 1e-5);
        assert!((fe.to_mv(1.55) + 1.0).abs() < 1e-5);
        let custom = FrontEnd {
            offset_v: 1.5,
            gain: 1100.0,
        };
        assert!((custom.to_mv(2.6) - 1.0).abs() < 1e-5);
        assert!(FrontEnd {
            offset_v: 1.0,
            gain: 0.0
        }
        .validate()
        .is_err());
        assert!(fe.validate().is_ok());
    }
}
