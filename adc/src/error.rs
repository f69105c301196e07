//! Errors of acquisition.

/// What went wrong while configuring or reading the hardware.
#[derive(Debug, thiserror::Error)]
pub enum AdcError {
    /// A setting that the chip or the acquisition cannot take (e.g. ADS1115 channel 5).
    #[error("{0}")]
    Config(String),
    /// A bus transfer failed (`device` says which chip, `operation` what was being done).
    #[error("{device}: {operation} failed: {detail}")]
    Bus {
        device: &'static str,
        operation: &'static str,
        detail: String,
    },
    /// A GPIO pin could not be read.
    #[error("lead-off pin {pin}: reading failed: {detail}")]
    Pin { pin: &'static str, detail: String },
    /// The chip never reported a finished conversion.
    #[error("{device}: no conversion finished after {polls} polls (is the chip powered?)")]
    Timeout { device: &'static str, polls: u32 },
    /// Opening a bus or pin of the machine failed (`what` names it, `hint` says what to check).
    #[error("opening {what}: {detail}. {hint}")]
    Open { what: String, detail: String, hint: String },
}

impl AdcError {
    pub(crate) fn bus(device: &'static str, operation: &'static str, error: impl std::fmt::Debug) -> Self {
        AdcError::Bus {
            device,
            operation,
            detail: format!("{error:?}"),
        }
    }
}
