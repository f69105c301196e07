//! The `adc` source: ECG acquired on a Raspberry Pi through an AD8232-style front end and an
//! ADS1115 (I²C) or MCP3008 (SPI), paced by the Pi's own clock. The hardware is opened only
//! when the stream is opened (a run), never by `validate`, and only in a build with the
//! `pi` feature.

// Without the `pi` feature the reader is built and unit-tested but nothing opens it.
#![cfg_attr(not(feature = "pi"), allow(dead_code))]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ecgflow_adc::embedded_hal::digital::InputPin;
use ecgflow_adc::{
    AcqEvent, AcqEventKind, Acquisition, AcquisitionConfig, Ads1115Config, Clock, Conversion, EcgAdc, FrontEnd,
    ADS1115_DATA_RATES, ADS1115_FULL_SCALES,
};
use ecgflow_operators::{Chunk, Event, EventPhase};

use super::fields::{Default as D, FieldSpec as F};
use super::{Built, ComponentSpec, FieldProblem, Live, Output, Overflow, Params, PortKind, Source, StreamReader};
use crate::config::Role;
use crate::message::Body;

/// What `open` says in a build that cannot reach the hardware.
#[cfg(not(feature = "pi"))]
pub const NO_PI: &str = "this ecgflow was built without the `pi` feature: build it on the Raspberry Pi with \
                         `cargo build --release --features pi`";

/// The lead name of the single channel.
const LEAD: &str = "ECG";

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "adc",
    role: Role::Source,
    summary: "Live ECG from a Raspberry Pi: an AD8232-style front end read by an ADS1115 (I2C, 16 bit) or an \
              MCP3008 (SPI, 10 bit), one stream of one lead named ECG in mV at the electrodes \
              ((volts - offset_v) / front_end_gain * 1000). Reads are paced by the Pi's clock at `fs`; a \
              read that ends after the next tick was due skips the missed ticks (NaN samples) and emits an \
              `overrun` event (\"N sample ticks missed\"), so the sample index stays stream time. The \
              AD8232's LO+/LO- outputs on GPIO mark lead-off: NaN samples between `lead_off` start and end \
              events. `duration_s = 10` is the study's 10 s acquisition; 0 runs until stopped. Needs a build \
              with `--features pi` on the Pi (see docs/raspberry-pi.md); `validate` works anywhere.",
    accepts: &[],
    output: Output::Kind(PortKind::Signal),
    fields: &[
        F::choice("chip", &["ads1115", "mcp3008"], "ads1115", "the ADC: ads1115 (I2C) or mcp3008 (SPI)"),
        F::int("channel", 0, 7, D::Int(0), "ADC input the front end's OUTPUT is wired to: 0-3 (A0-A3) on the ADS1115, 0-7 (CH0-CH7) on the MCP3008"),
        F::positive("fs", 0.0, 10_000.0, D::Float(360.0), "sampling rate in Hz (360 as MIT-BIH and the study); at most data_rate on the ADS1115"),
        F::float("duration_s", 0.0, 31_536_000.0, D::Float(0.0), "seconds to acquire, then the stream ends (10: the study's 10 s acquisition); 0 acquires until stopped"),
        F::int("chunk_size", 1, 1_000_000, D::Int(36), "samples per emitted chunk (36 = 100 ms at 360 Hz: the latency a chunk adds)"),
        F::int("i2c_bus", 0, 255, D::Int(1), "ADS1115: I2C bus number, /dev/i2c-N (1 is header pins 3 and 5)"),
        F::int("i2c_address", 0x48, 0x4B, D::Int(0x48), "ADS1115: I2C address, 0x48 (72, ADDR to GND) to 0x4B (75, ADDR to SCL)"),
        F::positive("gain", 0.0, 6.144, D::Float(4.096), "ADS1115: full-scale range of the PGA in volts (± this): 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256; 4.096 covers a 3.3 V front end's 0-3.3 V"),
        F::int("data_rate", 8, 860, D::Int(860), "ADS1115: conversions per second: 8, 16, 32, 64, 128, 250, 475 or 860; at least fs"),
        F::choice("conversion", &["continuous", "single_shot"], "continuous", "ADS1115: continuous (each read fetches the latest conversion, one I2C transfer) or single_shot (each read starts a conversion at its tick and waits 1/data_rate for it)"),
        F::int("spi_bus", 0, 6, D::Int(0), "MCP3008: SPI bus, /dev/spidevBUS.CS (0 is header pins 19, 21, 23)"),
        F::int("spi_cs", 0, 15, D::Int(0), "MCP3008: chip select (0 = CE0, GPIO8 pin 24; 1 = CE1, GPIO7 pin 26)"),
        F::int("spi_clock_hz", 10_000, 3_600_000, D::Int(1_000_000), "MCP3008: SPI clock in Hz (the chip allows 1.35 MHz at 2.7 V, 3.6 MHz at 5 V)"),
        F::positive("vref", 0.0, 5.5, D::Float(3.3), "MCP3008: volts on its VREF pin (3.3 when tied to the Pi's 3V3)"),
        F::positive("front_end_gain", 0.0, 100_000.0, D::Float(100.0), "voltage gain of the front end from the electrodes to its output (100 on the usual AD8232 boards)"),
        F::float("offset_v", 0.0, 5.5, D::Float(1.65), "front-end output in volts for 0 mV at the electrodes (its reference, VCC/2 = 1.65 at 3.3 V)"),
        F::int("lo_plus_pin", 0, 27, D::Int(0), "GPIO (BCM) number the AD8232's LO+ output is wired to; 0: not wired (no lead-off detection on it)"),
        F::int("lo_minus_pin", 0, 27, D::Int(0), "GPIO (BCM) number the AD8232's LO- output is wired to; 0: not wired"),
        F::string("stream", D::Str("adc"), "stream name (a bedside or patient identifier)"),
        F::string("patient", D::Absent, "patient identifier, carried in the stream's metadata and on its events"),
        F::string("ward", D::Absent, "ward, carried in the stream's metadata and on its events"),
        F::choice("overflow", Overflow::CHOICES, "drop_oldest", "when the dataflow falls behind: drop_oldest drops the oldest queued chunk (counted), so acquisition keeps real time; block makes acquisition wait, and the ticks missed meanwhile become overrun events"),
        F::int("queue", 1, 1_000_000, D::Int(64), "chunks queued between the source and the dataflow (64 × 100 ms = 6.4 s at the defaults)"),
    ],
    check: check_adc,
    output_fs: |p, _| Some(p.f64("fs")),
    build: |p| Ok(Built::Source(Arc::new(AdcSource::from_params(p)?))),
}];

/// GPIO numbers the buses take on the 40-pin header.
const I2C1_PINS: &[(i64, &str)] = &[(2, "I2C1 SDA"), (3, "I2C1 SCL")];
const SPI0_PINS: &[(i64, &str)] = &[
    (7, "SPI0 CE1"),
    (8, "SPI0 CE0"),
    (9, "SPI0 MISO"),
    (10, "SPI0 MOSI"),
    (11, "SPI0 SCLK"),
];

fn check_adc(p: &Params, _: &super::Upstream) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| problems.push((field.to_owned(), message));
    let ads = p.str("chip") == "ads1115";
    let fs = p.f64("fs");
    if ads {
        if p.i64("channel") > 3 {
            problem(
                "channel",
                format!("{} is not an ADS1115 input (0-3, A0-A3)", p.i64("channel")),
            );
        }
        let gain = p.f64("gain");
        if !ADS1115_FULL_SCALES.iter().any(|&g| (f64::from(g) - gain).abs() < 1e-4) {
            problem(
                "gain",
                format!("{gain} is not an ADS1115 full-scale range (6.144, 4.096, 2.048, 1.024, 0.512 or 0.256)"),
            );
        }
        let rate = p.i64("data_rate");
        if !ADS1115_DATA_RATES.iter().any(|&r| i64::from(r) == rate) {
            problem(
                "data_rate",
                format!("{rate} is not an ADS1115 data rate (8, 16, 32, 64, 128, 250, 475 or 860)"),
            );
        } else if fs > rate as f64 {
            problem(
                "fs",
                format!("{fs} Hz is faster than the ADS1115 converts (data_rate = {rate}); at most 860 Hz"),
            );
        }
    }
    let duration = p.f64("duration_s");
    if duration > 0.0 && (duration * fs).round() < 1.0 {
        problem("duration_s", format!("{duration} s at {fs} Hz holds no sample"));
    }
    if p.str("stream").trim().is_empty() {
        problem("stream", "must not be empty".to_owned());
    }
    let bus_pins: &[(i64, &str)] = match (ads, p.i64("i2c_bus"), p.i64("spi_bus")) {
        (true, 1, _) => I2C1_PINS,
        (false, _, 0) => SPI0_PINS,
        _ => &[],
    };
    for field in ["lo_plus_pin", "lo_minus_pin"] {
        let pin = p.i64(field);
        if let Some((_, name)) = bus_pins.iter().find(|(n, _)| *n == pin) {
            problem(
                field,
                format!("GPIO{pin} is {name}, taken by the ADC's bus; wire LO+/LO- to free GPIOs"),
            );
        }
    }
    let (plus, minus) = (p.i64("lo_plus_pin"), p.i64("lo_minus_pin"));
    if plus != 0 && plus == minus {
        problem("lo_minus_pin", format!("LO+ and LO- cannot share GPIO{plus}"));
    }
    problems
}

/// Which ADC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chip {
    Ads1115,
    Mcp3008,
}

/// The `adc` source, configured (nothing opened yet).
pub struct AdcSource {
    chip: Chip,
    ads1115: Ads1115Config,
    i2c_bus: u8,
    channel: u8,
    spi_bus: u8,
    spi_cs: u8,
    spi_clock_hz: u32,
    vref: f32,
    front_end: FrontEnd,
    acquisition: AcquisitionConfig,
    lo_plus: Option<u8>,
    lo_minus: Option<u8>,
    stream: String,
    patient: Option<String>,
    ward: Option<String>,
    live: Live,
}

impl AdcSource {
    fn from_params(p: &Params) -> anyhow::Result<Self> {
        let chip = if p.str("chip") == "ads1115" {
            Chip::Ads1115
        } else {
            Chip::Mcp3008
        };
        let channel = u8::try_from(p.i64("channel"))?;
        let duration = p.f64("duration_s");
        let pin = |field: &str| u8::try_from(p.i64(field)).ok().filter(|&n| n != 0);
        let source = AdcSource {
            chip,
            ads1115: Ads1115Config {
                address: u8::try_from(p.i64("i2c_address"))?,
                channel,
                full_scale_v: p.f64("gain") as f32,
                data_rate: u32::try_from(p.i64("data_rate"))?,
                conversion: if p.str("conversion") == "single_shot" {
                    Conversion::SingleShot
                } else {
                    Conversion::Continuous
                },
            },
            i2c_bus: u8::try_from(p.i64("i2c_bus"))?,
            channel,
            spi_bus: u8::try_from(p.i64("spi_bus"))?,
            spi_cs: u8::try_from(p.i64("spi_cs"))?,
            spi_clock_hz: u32::try_from(p.i64("spi_clock_hz"))?,
            vref: p.f64("vref") as f32,
            front_end: FrontEnd {
                offset_v: p.f64("offset_v") as f32,
                gain: p.f64("front_end_gain") as f32,
            },
            acquisition: AcquisitionConfig {
                fs: p.f64("fs"),
                chunk: p.usize("chunk_size"),
                duration: (duration > 0.0).then(|| Duration::from_secs_f64(duration)),
                // A second of failed reads in a row ends the stream with the error.
                max_consecutive_errors: p.f64("fs").ceil() as u32,
            },
            lo_plus: pin("lo_plus_pin"),
            lo_minus: pin("lo_minus_pin"),
            stream: p.str("stream").to_owned(),
            patient: p.opt_str("patient").map(str::to_owned),
            ward: p.opt_str("ward").map(str::to_owned),
            live: Live {
                speed: None,
                overflow: Overflow::from_name(p.str("overflow")),
                capacity: p.usize("queue"),
            },
        };
        source.acquisition.validate()?;
        if chip == Chip::Ads1115 {
            source.ads1115.validate()?;
        }
        Ok(source)
    }

    /// What the stream's metadata says: patient (the stream name when none is given), ward,
    /// lead, and the device.
    fn meta(&self) -> Vec<(String, String)> {
        let device = match self.chip {
            Chip::Ads1115 => format!(
                "AD8232 via ADS1115 {:#04x} A{} on /dev/i2c-{}",
                self.ads1115.address, self.channel, self.i2c_bus
            ),
            Chip::Mcp3008 => format!(
                "AD8232 via MCP3008 CH{} on /dev/spidev{}.{}",
                self.channel, self.spi_bus, self.spi_cs
            ),
        };
        let mut meta = vec![(
            "patient".to_owned(),
            self.patient.clone().unwrap_or_else(|| self.stream.clone()),
        )];
        if let Some(ward) = &self.ward {
            meta.push(("ward".to_owned(), ward.clone()));
        }
        meta.push(("leads".to_owned(), LEAD.to_owned()));
        meta.push(("device".to_owned(), device));
        meta
    }

    /// Opens the buses and pins and starts nothing yet (the first tick is the first read).
    #[cfg(feature = "pi")]
    fn open_hardware(&self) -> anyhow::Result<Box<dyn StreamReader>> {
        use ecgflow_adc::pi;
        let adc: Box<dyn EcgAdc + Send> = match self.chip {
            Chip::Ads1115 => Box::new(pi::open_ads1115(self.i2c_bus, self.ads1115)?),
            Chip::Mcp3008 => Box::new(pi::open_mcp3008(
                self.spi_bus,
                self.spi_cs,
                self.spi_clock_hz,
                self.channel,
                self.vref,
            )?),
        };
        let lead_off = pi::open_lead_off(self.lo_plus, self.lo_minus)?;
        let acquisition = Acquisition::new(
            adc,
            lead_off,
            ecgflow_adc::SystemClock::new(),
            self.front_end,
            self.acquisition,
        )?;
        Ok(Box::new(AdcReader::new(acquisition, self)))
    }

    #[cfg(not(feature = "pi"))]
    fn open_hardware(&self) -> anyhow::Result<Box<dyn StreamReader>> {
        anyhow::bail!("{NO_PI}")
    }
}

impl Source for AdcSource {
    fn streams(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![self.stream.clone()])
    }

    fn total_samples(&self) -> Option<u64> {
        self.acquisition.total_samples()
    }

    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>> {
        anyhow::ensure!(index == 0, "the adc source has one stream");
        self.open_hardware()
    }

    fn live(&self) -> Option<Live> {
        Some(self.live)
    }
}

/// Turns an acquisition's blocks into chunks, each preceded by its events.
struct AdcReader<A, P, C> {
    acquisition: Acquisition<A, P, C>,
    stream: String,
    fs: f64,
    patient: Option<String>,
    ward: Option<String>,
    meta: Vec<(String, String)>,
    /// Where the current lead-off began, for the evidence of its end.
    lead_off_since: Option<u64>,
    pending: VecDeque<Body>,
}

impl<A: EcgAdc, P: InputPin, C: Clock> AdcReader<A, P, C> {
    fn new(acquisition: Acquisition<A, P, C>, source: &AdcSource) -> Self {
        AdcReader {
            fs: acquisition.config().fs,
            acquisition,
            stream: source.stream.clone(),
            patient: source.patient.clone(),
            ward: source.ward.clone(),
            meta: source.meta(),
            lead_off_since: None,
            pending: VecDeque::new(),
        }
    }

    fn event(&mut self, e: AcqEvent) -> Event {
        let (kind, phase, evidence) = match e.kind {
            AcqEventKind::LeadOffStart(state) => {
                self.lead_off_since = Some(e.sample);
                (
                    "lead_off",
                    EventPhase::Start,
                    format!("{}: an electrode is off", state.describe()),
                )
            }
            AcqEventKind::LeadOffEnd => {
                let since = self.lead_off_since.take().unwrap_or(e.sample);
                let secs = (e.sample - since) as f64 / self.fs;
                ("lead_off", EventPhase::End, format!("leads back on after {secs:.2} s"))
            }
            AcqEventKind::Overrun { missed } => (
                "overrun",
                EventPhase::Instant,
                if missed == 1 {
                    "1 sample tick missed".to_owned()
                } else {
                    format!("{missed} sample ticks missed")
                },
            ),
            AcqEventKind::ReadError(message) => ("adc_error", EventPhase::Instant, message),
        };
        Event {
            stream: self.stream.clone(),
            kind: kind.to_owned(),
            phase,
            sample: e.sample,
            fs: self.fs,
            patient: self.patient.clone(),
            ward: self.ward.clone(),
            evidence,
        }
    }
}

impl<A, P, C> StreamReader for AdcReader<A, P, C>
where
    A: EcgAdc + Send,
    P: InputPin + Send,
    C: Clock + Send,
{
    fn next(&mut self) -> anyhow::Result<Option<Body>> {
        if let Some(body) = self.pending.pop_front() {
            return Ok(Some(body));
        }
        let Some(block) = self
            .acquisition
            .next_block()
            .with_context(|| format!("acquiring stream {}", self.stream))?
        else {
            return Ok(None);
        };
        for e in block.events {
            let event = self.event(e);
            self.pending.push_back(Body::Event(event));
        }
        let chunk = Chunk::new(
            self.stream.clone(),
            self.fs,
            block.start,
            vec![LEAD.to_owned()],
            vec![block.samples],
        );
        self.pending.push_back(Body::Chunk(chunk));
        Ok(self.pending.pop_front())
    }

    fn meta(&self) -> Vec<(String, String)> {
        self.meta.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::fields::check_fields;
    use crate::components::Upstream;
    use ecgflow_adc::embedded_hal::digital::{ErrorType, InputPin};
    use ecgflow_adc::{AdcError, LeadOff, ManualClock};

    fn params(toml: &str) -> (Params, Vec<FieldProblem>) {
        let table: toml::Table = toml.parse().unwrap();
        let (p, mut problems) = check_fields(SPECS[0].fields, &table);
        if problems.is_empty() {
            problems = (SPECS[0].check)(&p, &Upstream::default());
        }
        (p, problems)
    }

    fn problem_fields(toml: &str) -> Vec<String> {
        params(toml).1.into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn defaults_are_valid_and_live() {
        let (p, problems) = params("");
        assert!(problems.is_empty(), "{problems:?}");
        let source = AdcSource::from_params(&p).unwrap();
        assert_eq!(source.streams().unwrap(), ["adc"]);
        assert_eq!(source.total_samples(), None, "continuous");
        assert_eq!(
            source.live(),
            Some(Live {
                speed: None,
                overflow: Overflow::DropOldest,
                capacity: 64
            })
        );
        assert_eq!((source.acquisition.fs, source.acquisition.chunk), (360.0, 36));
        assert_eq!(source.acquisition.max_consecutive_errors, 360, "one second");
        assert_eq!(source.ads1115, Ads1115Config::default());
        assert_eq!(source.front_end, FrontEnd::default());
        assert_eq!((source.lo_plus, source.lo_minus), (None, None));

        let (p, problems) = params(
            "duration_s = 10\noverflow = 'block'\nqueue = 8\nlo_plus_pin = 17\nlo_minus_pin = 27\nchip = 'mcp3008'",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let source = AdcSource::from_params(&p).unwrap();
        assert_eq!(source.total_samples(), Some(3600), "the study's 10 s acquisition");
        assert_eq!(source.live().unwrap().overflow, Overflow::Block);
        assert_eq!(source.live().unwrap().capacity, 8);
        assert_eq!((source.lo_plus, source.lo_minus), (Some(17), Some(27)));
    }

    #[test]
    fn settings_the_hardware_cannot_take_are_named() {
        assert_eq!(problem_fields("channel = 5"), ["channel"]);
        assert!(problem_fields("channel = 5\nchip = 'mcp3008'").is_empty());
        assert_eq!(problem_fields("channel = 8\nchip = 'mcp3008'"), ["channel"]);
        assert_eq!(problem_fields("gain = 3.3"), ["gain"]);
        assert_eq!(problem_fields("data_rate = 500"), ["data_rate"]);
        assert_eq!(problem_fields("fs = 1000"), ["fs"]);
        assert_eq!(problem_fields("fs = 500\ndata_rate = 475"), ["fs"]);
        assert!(problem_fields("fs = 1000\nchip = 'mcp3008'").is_empty());
        assert_eq!(problem_fields("duration_s = 0.001"), ["duration_s"]);
        assert_eq!(problem_fields("lo_plus_pin = 2"), ["lo_plus_pin"]);
        assert!(problem_fields("lo_plus_pin = 2\nchip = 'mcp3008'").is_empty());
        assert_eq!(problem_fields("lo_minus_pin = 10\nchip = 'mcp3008'"), ["lo_minus_pin"]);
        assert_eq!(problem_fields("lo_plus_pin = 17\nlo_minus_pin = 17"), ["lo_minus_pin"]);
        assert_eq!(problem_fields("i2c_address = 0x40"), ["i2c_address"]);
        assert_eq!(problem_fields("overflow = 'grow'"), ["overflow"]);
        assert_eq!(problem_fields("stream = ' '"), ["stream"]);
    }

    #[cfg(not(feature = "pi"))]
    #[test]
    fn without_the_pi_feature_open_says_how_to_build() {
        let (p, _) = params("");
        let source = AdcSource::from_params(&p).unwrap();
        let err = format!("{:#}", source.open(0).err().unwrap());
        assert!(err.contains(NO_PI), "{err}");
        assert!(err.contains("cargo build --release --features pi"), "{err}");
    }

    /// Reads 1.75 V (+1 mV) and takes `slow` of the clock's time on read 3.
    struct Fake(ManualClock, usize);
    impl EcgAdc for Fake {
        fn read_volts(&mut self) -> Result<f32, AdcError> {
            self.1 += 1;
            if self.1 == 4 {
                self.0.advance(Duration::from_nanos(2_777_778 * 5 / 2));
            }
            Ok(1.75)
        }
    }

    /// LO+ high on its reads 7-10.
    struct Pin(usize);
    impl ErrorType for Pin {
        type Error = core::convert::Infallible;
    }
    impl InputPin for Pin {
        fn is_high(&mut self) -> Result<bool, Self::Error> {
            self.0 += 1;
            Ok((7..=10).contains(&self.0))
        }
        fn is_low(&mut self) -> Result<bool, Self::Error> {
            self.is_high().map(|h| !h)
        }
    }

    #[test]
    fn chunks_carry_mv_and_events_come_before_their_chunk() {
        let (p, problems) = params("chunk_size = 6\nduration_s = 0.05\nstream = 'bed3'\npatient = 'p7'\nward = 'icu'");
        assert!(problems.is_empty(), "{problems:?}");
        let source = AdcSource::from_params(&p).unwrap();
        let clock = ManualClock::new();
        let acquisition = Acquisition::new(
            Fake(clock.clone(), 0),
            LeadOff::new(Some(Pin(0)), None),
            clock,
            source.front_end,
            source.acquisition,
        )
        .unwrap();
        let mut reader = AdcReader::new(acquisition, &source);
        assert_eq!(
            reader.meta(),
            [
                ("patient".to_owned(), "p7".to_owned()),
                ("ward".to_owned(), "icu".to_owned()),
                ("leads".to_owned(), "ECG".to_owned()),
                (
                    "device".to_owned(),
                    "AD8232 via ADS1115 0x48 A0 on /dev/i2c-1".to_owned()
                ),
            ]
        );
        let bodies: Vec<Body> = std::iter::from_fn(|| reader.next().unwrap()).collect();
        // 0.05 s at 360 Hz = 18 samples: 3 chunks of 6. Read 3 (tick 3) is slow: ticks 4 and 5
        // are missed; the pin is read on ticks 0-3 and 6-..: LO+ is high on ticks 8-11.
        let kinds: Vec<String> = bodies
            .iter()
            .map(|b| match b {
                Body::Chunk(c) => format!("chunk {}", c.start),
                Body::Event(e) => format!("{} {} {} {}", e.kind, e.phase.name(), e.sample, e.evidence),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "overrun instant 4 2 sample ticks missed",
                "chunk 0",
                "lead_off start 8 LO+ high: an electrode is off",
                "chunk 6",
                "lead_off end 12 leads back on after 0.01 s",
                "chunk 12",
            ]
        );
        let Body::Chunk(first) = &bodies[1] else { unreachable!() };
        assert_eq!(
            (first.stream.as_str(), first.fs, first.leads.as_slice()),
            ("bed3", 360.0, &["ECG".to_owned()][..])
        );
        assert!((first.samples[0][0] - 1.0).abs() < 1e-4, "1.75 V is +1 mV");
        let nan: Vec<bool> = first.samples[0].iter().map(|s| s.is_nan()).collect();
        assert_eq!(nan, [false, false, false, false, true, true]);
        let Body::Event(e) = &bodies[0] else { unreachable!() };
        assert_eq!(
            (e.patient.as_deref(), e.ward.as_deref(), e.fs),
            (Some("p7"), Some("icu"), 360.0)
        );
        assert!(reader.next().unwrap().is_none());
    }
}
