//! WFDB records: header (`.hea`) parsing, streaming signal (`.dat`) reading and a
//! small writer.
//!
//! The header format follows PhysioNet's *header(5)* specification; the signal
//! formats follow *signal(5)*. Supported storage formats: 8, 16, 24, 32, 61, 80,
//! 212 and 310. Several signals may share one file (interleaved frames), and a
//! record may spread its signals over several files. Multi-segment records are
//! rejected with [`WfdbError::MultiSegment`].
//!
//! Reading is chunked: [`RecordReader::read_chunk`] decodes at most `n` frames at
//! a time, so a 24-hour record never has to be held in memory. When the last
//! frame has been read, each decoded signal's checksum (the 16-bit wrapping sum of
//! its digital samples) is compared with the header's. [`read_record`]
//! ([`RecordReader::read_to_end`]) reads a whole record into vectors allocated
//! once, and [`read_records`] reads many records on all cores; all three share one
//! decoder, which checksums, converts and stores each signal in a single pass over
//! blocks of the file.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// WFDB's default gain (ADC units per physical unit) when a header gives 0 or none.
pub const DEFAULT_GAIN: f64 = 200.0;
/// Most samples (per file) decoded by one `read_chunk` call; bounds memory use.
const MAX_CHUNK_SAMPLES: usize = 1 << 22;

/// WFDB's default sampling frequency when a header gives none.
pub const DEFAULT_FS: f64 = 250.0;

/// Errors from reading or writing WFDB records. Each names the file, record,
/// signal or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum WfdbError {
    /// An I/O error on a named file.
    #[error("{path}: {error}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The header text is malformed.
    #[error("header {record}.hea, line {line}: {message}")]
    Header {
        /// Record name.
        record: String,
        /// 1-based line number in the header file (0 when not tied to a line).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Multi-segment records are not supported.
    #[error(
        "record {record} is a multi-segment record ({segments} segments); only single-segment records are supported"
    )]
    MultiSegment {
        /// Record name.
        record: String,
        /// Number of segments the header declares.
        segments: u32,
    },
    /// A signal uses a storage format or feature this reader does not implement.
    #[error("record {record}, signal {signal} ({description}): {message}")]
    Unsupported {
        /// Record name.
        record: String,
        /// 0-based signal index.
        signal: usize,
        /// Signal description from the header.
        description: String,
        /// What is unsupported.
        message: String,
    },
    /// A signal file ended before the header's number of samples.
    #[error("record {record}: signal file {file} is truncated: header says {expected} samples per signal, file holds {found} (it ends at byte {bytes})")]
    Truncated {
        /// Record name.
        record: String,
        /// Signal file name.
        file: String,
        /// Samples per signal the header declares.
        expected: u64,
        /// Complete frames actually present.
        found: u64,
        /// Length of the file in bytes (where it ends).
        bytes: u64,
    },
    /// A signal file ended in the middle of a frame, or files of one record differ in length.
    #[error("record {record}: signal file {file}: {message}")]
    BadLength {
        /// Record name.
        record: String,
        /// Signal file name.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A signal's checksum does not match the header's.
    #[error("record {record}, signal {signal} ({description}) in {file}: checksum mismatch: header {record}.hea says {expected}, data gives {computed}")]
    Checksum {
        /// Record name.
        record: String,
        /// Signal file name.
        file: String,
        /// 0-based signal index.
        signal: usize,
        /// Signal description from the header.
        description: String,
        /// Checksum in the header.
        expected: i16,
        /// Checksum computed from the data.
        computed: i16,
    },
    /// A signal index or name that the record does not have.
    #[error("record {record}: no signal {signal} (the record has: {available})")]
    NoSuchSignal {
        /// Record name.
        record: String,
        /// Requested index or name.
        signal: String,
        /// Signals the record has (descriptions).
        available: String,
    },
    /// Invalid data given to the writer.
    #[error("writing record {record}: {message}")]
    Write {
        /// Record name.
        record: String,
        /// What is wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WfdbError + '_ {
    move |error| WfdbError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A parsed WFDB header (`.hea`) of a single-segment record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Record name as written in the header's record line.
    pub record: String,
    /// Sampling frequency in Hz (samples per signal per second, i.e. frames per second).
    pub fs: f64,
    /// Counter frequency (the part after `/` in `360/720`), if given.
    pub counter_freq: Option<f64>,
    /// Base counter value (in parentheses after the counter frequency), if given.
    pub base_counter: Option<f64>,
    /// Number of samples per signal (frames), if the header gives it (0 is stored as `None`).
    pub n_samples: Option<u64>,
    /// Base time `HH:MM:SS`, as written, if given.
    pub base_time: Option<String>,
    /// Base date `DD/MM/YYYY`, as written, if given.
    pub base_date: Option<String>,
    /// The signal specifications, in header order.
    pub signals: Vec<SignalSpec>,
    /// Comment lines (text after `#`, leading space trimmed), in order.
    pub comments: Vec<String>,
}

/// One signal line of a WFDB header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalSpec {
    /// Name of the file holding the samples, relative to the header's directory.
    pub file: String,
    /// Storage format (16, 212, 80, 61, ...).
    pub format: u16,
    /// Samples per frame (the `x` suffix of the format; 1 when absent).
    pub samples_per_frame: u32,
    /// Skew in frames (the `:` suffix of the format; 0 when absent).
    pub skew: u32,
    /// Byte offset of the first sample in the file (the `+` suffix; 0 when absent).
    pub byte_offset: u64,
    /// ADC gain in ADC units per physical unit, as written (0 means uncalibrated; see [`SignalSpec::effective_gain`]).
    pub gain: f64,
    /// Baseline: the ADC value that corresponds to 0 physical units (defaults to `adc_zero`).
    pub baseline: i32,
    /// Physical units (default `mV`).
    pub units: String,
    /// ADC resolution in bits (0 when not given).
    pub adc_resolution: u32,
    /// ADC value at the centre of the ADC's range.
    pub adc_zero: i32,
    /// Value of the first sample (used by difference formats; defaults to `adc_zero`).
    pub initial_value: i32,
    /// 16-bit checksum of all samples, if given.
    pub checksum: Option<i16>,
    /// Block size in bytes (0 when not given).
    pub block_size: u32,
    /// Signal description (e.g. the lead name `MLII`).
    pub description: String,
}

impl SignalSpec {
    /// A signal spec with WFDB defaults: baseline 0, ADC zero 0, 1 sample per frame,
    /// no checksum. Useful for writing records.
    pub fn new(file: &str, format: u16, gain: f64, units: &str, description: &str) -> SignalSpec {
        SignalSpec {
            file: file.to_string(),
            format,
            samples_per_frame: 1,
            skew: 0,
            byte_offset: 0,
            gain,
            baseline: 0,
            units: units.to_string(),
            adc_resolution: default_resolution(format),
            adc_zero: 0,
            initial_value: 0,
            checksum: None,
            block_size: 0,
            description: description.to_string(),
        }
    }

    /// The gain used for conversion: the header's, or [`DEFAULT_GAIN`] (200) when it is 0.
    pub fn effective_gain(&self) -> f64 {
        if self.gain == 0.0 {
            DEFAULT_GAIN
        } else {
            self.gain
        }
    }

    /// Converts a digital sample to physical units: `(adc - baseline) / gain`.
    pub fn to_physical(&self, adc: i32) -> f32 {
        ((adc as f64 - self.baseline as f64) / self.effective_gain()) as f32
    }
}

fn default_resolution(format: u16) -> u32 {
    match format {
        8 | 80 => 8,
        212 => 12,
        310 | 311 => 10,
        24 => 24,
        32 => 32,
        _ => 16,
    }
}

fn supported_format(format: u16) -> bool {
    matches!(format, 8 | 16 | 24 | 32 | 61 | 80 | 212 | 310)
}

/// The value a format reserves for an invalid (missing) sample, if any.
fn invalid_value(format: u16) -> Option<i32> {
    match format {
        16 | 61 => Some(-32768),
        80 => Some(-128),
        212 => Some(-2048),
        310 => Some(-512),
        24 => Some(-(1 << 23)),
        32 => Some(i32::MIN),
        _ => None,
    }
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str, record: &str, line: usize) -> Result<T, WfdbError> {
    s.parse::<T>().map_err(|_| WfdbError::Header {
        record: record.to_string(),
        line,
        message: format!("bad {what} {s:?}"),
    })
}

/// Parses a checksum field; WFDB writes it signed, some writers unsigned (0..65535).
fn parse_checksum(s: &str, record: &str, line: usize) -> Result<i16, WfdbError> {
    let v: i64 = parse_num(s, "checksum", record, line)?;
    if !(-32768..=65535).contains(&v) {
        return Err(WfdbError::Header {
            record: record.to_string(),
            line,
            message: format!("checksum {v} out of 16-bit range"),
        });
    }
    Ok(v.rem_euclid(65536) as u16 as i16)
}

impl Header {
    /// Reads and parses a header file. The record name used in error messages is the
    /// file stem (e.g. `100` for `100.hea`).
    pub fn read(path: &Path) -> Result<Header, WfdbError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let record = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Header::parse(&text, &record)
    }

    /// Parses header text. `record` names the record in error messages.
    pub fn parse(text: &str, record: &str) -> Result<Header, WfdbError> {
        let herr = |line: usize, message: String| WfdbError::Header {
            record: record.to_string(),
            line,
            message,
        };
        let mut comments = Vec::new();
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() {
                continue;
            }
            if let Some(c) = l.strip_prefix('#') {
                comments.push(c.strip_prefix(' ').unwrap_or(c).trim_end().to_string());
                continue;
            }
            lines.push((i + 1, l));
        }
        let Some(&(rline, rtext)) = lines.first() else {
            return Err(herr(0, "no record line".into()));
        };
        let mut f = rtext.split_whitespace();
        let name_field = f.next().unwrap_or_default();
        let name = match name_field.split_once('/') {
            Some((n, seg)) => {
                let segments: u32 = parse_num(seg, "number of segments", record, rline)?;
                return Err(WfdbError::MultiSegment {
                    record: if n.is_empty() {
                        record.to_string()
                    } else {
                        n.to_string()
                    },
                    segments,
                });
            }
            None => name_field.to_string(),
        };
        let n_sig: usize = match f.next() {
            Some(s) => parse_num(s, "number of signals", record, rline)?,
            None => 0,
        };
        let (mut fs, mut counter_freq, mut base_counter) = (DEFAULT_FS, None, None);
        if let Some(s) = f.next() {
            let (fpart, cpart) = match s.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (s, None),
            };
            fs = parse_num(fpart, "sampling frequency", record, rline)?;
            if !(fs.is_finite() && fs > 0.0) {
                return Err(herr(rline, format!("sampling frequency {fs} must be positive")));
            }
            if let Some(c) = cpart {
                let (cf, bc) = match c.split_once('(') {
                    Some((a, b)) => {
                        let b = b
                            .strip_suffix(')')
                            .ok_or_else(|| herr(rline, format!("unclosed base counter in {s:?}")))?;
                        (a, Some(b))
                    }
                    None => (c, None),
                };
                counter_freq = Some(parse_num(cf, "counter frequency", record, rline)?);
                if let Some(b) = bc {
                    base_counter = Some(parse_num(b, "base counter", record, rline)?);
                }
            }
        }
        let n_samples = match f.next() {
            Some(s) => Some(parse_num::<u64>(s, "number of samples", record, rline)?).filter(|&n| n > 0),
            None => None,
        };
        let base_time = f.next().map(str::to_string);
        let base_date = f.next().map(str::to_string);

        let sig_lines = &lines[1..];
        if sig_lines.len() < n_sig {
            return Err(herr(
                rline,
                format!(
                    "record line declares {n_sig} signals but {} signal lines follow",
                    sig_lines.len()
                ),
            ));
        }
        let mut signals = Vec::with_capacity(n_sig);
        for (k, &(ln, l)) in sig_lines.iter().take(n_sig).enumerate() {
            signals.push(parse_signal_line(l, k, record, ln)?);
        }
        // Signals sharing a file must agree on the format and sit together.
        for (i, s) in signals.iter().enumerate() {
            if let Some(first) = signals.iter().position(|t| t.file == s.file) {
                if signals[first].format != s.format {
                    return Err(herr(
                        sig_lines[i].0,
                        format!(
                            "signals {first} and {i} share file {} but have formats {} and {}",
                            s.file, signals[first].format, s.format
                        ),
                    ));
                }
            }
        }
        Ok(Header {
            record: name,
            fs,
            counter_freq,
            base_counter,
            n_samples,
            base_time,
            base_date,
            signals,
            comments,
        })
    }

    /// Index of the first signal whose description equals `name` (e.g. `"MLII"`).
    pub fn signal_index(&self, name: &str) -> Option<usize> {
        self.signals.iter().position(|s| s.description == name)
    }

    /// Duration of the record in seconds, if its length is known.
    pub fn duration_s(&self) -> Option<f64> {
        self.n_samples.map(|n| n as f64 / self.fs)
    }

    /// The header as WFDB header text (record line, signal lines, comments).
    ///
    /// A signal without a checksum but with a description or block size is written
    /// with checksum 0 (the field is positional), which a later read will verify.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let _ = write!(t, "{} {} {}", self.record, self.signals.len(), self.fs);
        if let Some(cf) = self.counter_freq {
            let _ = write!(t, "/{cf}");
            if let Some(bc) = self.base_counter {
                let _ = write!(t, "({bc})");
            }
        }
        if self.n_samples.is_some() || self.base_time.is_some() {
            let _ = write!(t, " {}", self.n_samples.unwrap_or(0));
        }
        if let Some(bt) = &self.base_time {
            let _ = write!(t, " {bt}");
            if let Some(bd) = &self.base_date {
                let _ = write!(t, " {bd}");
            }
        }
        t.push('\n');
        for s in &self.signals {
            let _ = write!(t, "{} {}", s.file, s.format);
            if s.samples_per_frame > 1 {
                let _ = write!(t, "x{}", s.samples_per_frame);
            }
            if s.skew > 0 {
                let _ = write!(t, ":{}", s.skew);
            }
            if s.byte_offset > 0 {
                let _ = write!(t, "+{}", s.byte_offset);
            }
            let _ = write!(
                t,
                " {}({})/{} {} {} {}",
                s.gain, s.baseline, s.units, s.adc_resolution, s.adc_zero, s.initial_value
            );
            // The checksum is positional: it can only be left out when nothing follows.
            if s.checksum.is_some() || s.block_size != 0 || !s.description.is_empty() {
                let _ = write!(t, " {} {}", s.checksum.unwrap_or(0), s.block_size);
            }
            if !s.description.is_empty() {
                let _ = write!(t, " {}", s.description);
            }
            t.push('\n');
        }
        for c in &self.comments {
            let _ = writeln!(t, "# {c}");
        }
        t
    }
}

fn parse_signal_line(l: &str, k: usize, record: &str, ln: usize) -> Result<SignalSpec, WfdbError> {
    let herr = |message: String| WfdbError::Header {
        record: record.to_string(),
        line: ln,
        message: format!("signal {k}: {message}"),
    };
    // Up to 9 whitespace-separated fields; the description is the rest of the line.
    let mut rest = l;
    let mut fields: Vec<&str> = Vec::with_capacity(9);
    while fields.len() < 8 {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let description = rest.trim().to_string();
    if fields.len() < 2 {
        return Err(herr("needs at least a file name and a format".into()));
    }
    let file = fields[0].to_string();
    // format[xspf][:skew][+offset]
    let fmt_field = fields[1];
    let digits_end = fmt_field.find(|c: char| !c.is_ascii_digit()).unwrap_or(fmt_field.len());
    let format: u16 = fmt_field[..digits_end]
        .parse()
        .map_err(|_| herr(format!("bad format {fmt_field:?}")))?;
    let (mut spf, mut skew, mut offset) = (1u32, 0u32, 0u64);
    let mut tail = &fmt_field[digits_end..];
    while let Some(tag) = tail.chars().next() {
        // `tag` may be any character (even multi-byte): slice after it, not after byte 1.
        let body = &tail[tag.len_utf8()..];
        let end = body.find(['x', ':', '+']).unwrap_or(body.len());
        let num = &body[..end];
        match tag {
            'x' => {
                spf = num
                    .parse()
                    .map_err(|_| herr(format!("bad samples per frame in {fmt_field:?}")))?
            }
            ':' => skew = num.parse().map_err(|_| herr(format!("bad skew in {fmt_field:?}")))?,
            '+' => {
                offset = num
                    .parse()
                    .map_err(|_| herr(format!("bad byte offset in {fmt_field:?}")))?
            }
            _ => return Err(herr(format!("bad format field {fmt_field:?}"))),
        }
        tail = &body[end..];
    }
    if spf == 0 {
        return Err(herr(format!("samples per frame must be at least 1 in {fmt_field:?}")));
    }
    // gain[(baseline)][/units]
    let (mut gain, mut baseline, mut units) = (0.0f64, None, "mV".to_string());
    if let Some(g) = fields.get(2) {
        let (gb, u) = match g.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (*g, None),
        };
        let (gs, bs) = match gb.split_once('(') {
            Some((a, b)) => (
                a,
                Some(
                    b.strip_suffix(')')
                        .ok_or_else(|| herr(format!("unclosed baseline in gain {g:?}")))?,
                ),
            ),
            None => (gb, None),
        };
        gain = gs.parse().map_err(|_| herr(format!("bad gain {g:?}")))?;
        if !gain.is_finite() {
            return Err(herr(format!("bad gain {g:?}")));
        }
        if let Some(b) = bs {
            baseline = Some(
                b.parse::<i32>()
                    .map_err(|_| herr(format!("bad baseline in gain {g:?}")))?,
            );
        }
        if let Some(u) = u {
            units = u.to_string();
        }
    }
    let num_field = |i: usize, what: &str| -> Result<Option<i64>, WfdbError> {
        match fields.get(i) {
            Some(s) => s
                .parse::<i64>()
                .map(Some)
                .map_err(|_| herr(format!("bad {what} {s:?}"))),
            None => Ok(None),
        }
    };
    let adc_resolution = num_field(3, "ADC resolution")?.unwrap_or(0);
    let adc_zero = num_field(4, "ADC zero")?.unwrap_or(0);
    let initial_value = num_field(5, "initial value")?.unwrap_or(adc_zero);
    let checksum = match fields.get(6) {
        Some(s) => Some(parse_checksum(s, record, ln)?),
        None => None,
    };
    let block_size = num_field(7, "block size")?.unwrap_or(0);
    let to_i32 = |v: i64, what: &str| i32::try_from(v).map_err(|_| herr(format!("{what} {v} out of range")));
    let to_u32 = |v: i64, what: &str| u32::try_from(v).map_err(|_| herr(format!("{what} {v} out of range")));
    let adc_zero = to_i32(adc_zero, "ADC zero")?;
    Ok(SignalSpec {
        file,
        format,
        samples_per_frame: spf,
        skew,
        byte_offset: offset,
        gain,
        baseline: baseline.unwrap_or(adc_zero),
        units,
        adc_resolution: to_u32(adc_resolution, "ADC resolution")?,
        adc_zero,
        initial_value: to_i32(initial_value, "initial value")?,
        checksum,
        block_size: to_u32(block_size, "block size")?,
        description,
    })
}

// ---------------------------------------------------------------------------
// Reading

mod decode;
use decode::{Column, FileDecoder, Phys};

/// One signal file of a record and the signals stored in it.
struct FileGroup {
    file: String,
    path: PathBuf,
    /// Header indices of the signals in this file, in frame order (consecutive).
    signals: Vec<usize>,
    /// Offset of each signal's first sample within a frame.
    offsets: Vec<usize>,
    /// Samples per frame of the whole file.
    frame_len: usize,
    decoder: Option<FileDecoder>,
    /// Whole frames the file holds, by its length when opened (sizes the output).
    frames_in_file: u64,
    /// Whether any selected signal is in this file.
    active: bool,
}

/// Streams the signals of a single-segment WFDB record in chunks.
///
/// ```no_run
/// # use ecgflow_datasets::wfdb::RecordReader;
/// # use std::path::Path;
/// let mut r = RecordReader::open(Path::new("data/mitdb"), "100")?;
/// let mlii = r.header().signal_index("MLII").unwrap();
/// r.select(&[mlii])?;
/// while let Some(chunk) = r.read_chunk(4096)? {
///     let lead = &chunk[0]; // physical units (mV)
///     # let _ = lead;
/// }
/// # Ok::<(), ecgflow_datasets::wfdb::WfdbError>(())
/// ```
///
/// Files are decoded in blocks of about 128 KiB (straight from a memory mapping
/// of the file when it is larger than that), and each signal is checksummed,
/// converted to physical units and stored in one pass over a block, so chunked
/// reading costs little more than [`read_to_end`](Self::read_to_end) (which
/// [`read_record`] uses) once chunks hold a few thousand frames. To read many
/// records one after another, [`read_to_end_into`](Self::read_to_end_into) reuses
/// the output vectors.
pub struct RecordReader {
    record: String,
    header: Header,
    groups: Vec<FileGroup>,
    /// For each header signal: (group index, position in group).
    place: Vec<(usize, usize)>,
    selected: Vec<usize>,
    /// For each header signal: whether it is selected.
    wanted: Vec<bool>,
    /// For each selected header signal (once reading started): its conversion.
    phys: Vec<Option<Phys>>,
    frames_read: u64,
    sums: Vec<i32>,
    started: bool,
    done: bool,
    /// An error found while reading the last chunk, returned by the next call after
    /// the complete frames before it have been handed out.
    deferred: Option<WfdbError>,
}

impl std::fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("record", &self.record)
            .field("selected", &self.selected)
            .field("frames_read", &self.frames_read)
            .finish()
    }
}

impl RecordReader {
    /// Opens record `record` in `dir`: reads `dir/record.hea` and prepares to read
    /// its signal files. All signals are selected.
    pub fn open(dir: &Path, record: &str) -> Result<Self, WfdbError> {
        let header = Header::read(&dir.join(format!("{record}.hea")))?;
        Self::from_header(dir, record, header)
    }

    /// Prepares to read a record whose header is already parsed; signal files are
    /// looked up in `dir`.
    pub fn from_header(dir: &Path, record: &str, header: Header) -> Result<Self, WfdbError> {
        let mut groups: Vec<FileGroup> = Vec::new();
        let mut place = Vec::with_capacity(header.signals.len());
        for (i, s) in header.signals.iter().enumerate() {
            let unsupported = |message: String| WfdbError::Unsupported {
                record: record.to_string(),
                signal: i,
                description: s.description.clone(),
                message,
            };
            if !supported_format(s.format) {
                return Err(unsupported(format!("storage format {} (in header {record}.hea) is not supported (supported: 8, 16, 24, 32, 61, 80, 212, 310)", s.format)));
            }
            if s.skew != 0 {
                return Err(unsupported(format!("skew {} is not supported", s.skew)));
            }
            let gi = match groups.iter().position(|g| g.file == s.file) {
                Some(gi) => gi,
                None => {
                    if s.file == "~" || s.file == "-" {
                        return Err(unsupported(format!(
                            "signal file {:?} (null or standard input) is not supported",
                            s.file
                        )));
                    }
                    groups.push(FileGroup {
                        file: s.file.clone(),
                        path: dir.join(&s.file),
                        signals: Vec::new(),
                        offsets: Vec::new(),
                        frame_len: 0,
                        decoder: None,
                        frames_in_file: 0,
                        active: false,
                    });
                    groups.len() - 1
                }
            };
            let g = &mut groups[gi];
            if g.signals.last().is_some_and(|&last| last + 1 != i) {
                return Err(unsupported(format!(
                    "signals stored in file {} are not consecutive in the header",
                    s.file
                )));
            }
            place.push((gi, g.signals.len()));
            g.signals.push(i);
            g.offsets.push(g.frame_len);
            g.frame_len += s.samples_per_frame as usize;
            if g.frame_len > MAX_CHUNK_SAMPLES {
                return Err(unsupported(format!(
                    "file {} has more than {MAX_CHUNK_SAMPLES} samples per frame",
                    s.file
                )));
            }
        }
        let n = header.signals.len();
        let mut r = RecordReader {
            record: record.to_string(),
            header,
            groups,
            place,
            selected: Vec::new(),
            wanted: vec![false; n],
            phys: vec![None; n],
            frames_read: 0,
            sums: vec![0; n],
            started: false,
            done: false,
            deferred: None,
        };
        r.set_selection((0..n).collect());
        Ok(r)
    }

    /// The record's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The selected signals (header indices), in output order.
    pub fn selected(&self) -> &[usize] {
        &self.selected
    }

    /// Frames (samples per signal) read so far.
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// Selects the signals (header indices) that [`read_chunk`](Self::read_chunk)
    /// returns, in that order. Files holding no selected signal are not read at all
    /// (so their checksums are not verified). Must be called before the first read.
    pub fn select(&mut self, signals: &[usize]) -> Result<(), WfdbError> {
        if let Some(&bad) = signals.iter().find(|&&s| s >= self.header.signals.len()) {
            return Err(self.no_such_signal(bad.to_string()));
        }
        if self.started {
            return Err(WfdbError::Write {
                record: self.record.clone(),
                message: "select() called after reading started".into(),
            });
        }
        self.set_selection(signals.to_vec());
        Ok(())
    }

    /// Selects signals by description (e.g. `["MLII", "V5"]`); see [`select`](Self::select).
    pub fn select_by_name(&mut self, names: &[&str]) -> Result<(), WfdbError> {
        let idx = names
            .iter()
            .map(|n| {
                self.header
                    .signal_index(n)
                    .ok_or_else(|| self.no_such_signal(format!("{n:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.select(&idx)
    }

    fn no_such_signal(&self, signal: String) -> WfdbError {
        WfdbError::NoSuchSignal {
            record: self.record.clone(),
            signal,
            available: self
                .header
                .signals
                .iter()
                .map(|s| s.description.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn set_selection(&mut self, sel: Vec<usize>) {
        for g in &mut self.groups {
            g.active = false;
        }
        self.wanted.iter_mut().for_each(|w| *w = false);
        for &s in &sel {
            self.groups[self.place[s].0].active = true;
            self.wanted[s] = true;
        }
        self.selected = sel;
    }

    /// Opens the files holding selected signals and prepares the conversions.
    fn start(&mut self) -> Result<(), WfdbError> {
        if self.started {
            return Ok(());
        }
        for g in self.groups.iter_mut().filter(|g| g.active) {
            let first = &self.header.signals[g.signals[0]];
            let f = File::open(&g.path).map_err(io_err(&g.path))?;
            let len = f.metadata().map_err(io_err(&g.path))?.len();
            let bytes = len.saturating_sub(first.byte_offset);
            g.frames_in_file = decode::samples_in(first.format, bytes) / g.frame_len as u64;
            let prev = g
                .signals
                .iter()
                .flat_map(|&s| {
                    let sp = &self.header.signals[s];
                    std::iter::repeat_n(sp.initial_value, sp.samples_per_frame as usize)
                })
                .collect();
            g.decoder = Some(
                FileDecoder::new(first.format, g.frame_len, f, first.byte_offset, len, prev)
                    .map_err(io_err(&g.path))?,
            );
        }
        for (s, spec) in self.header.signals.iter().enumerate() {
            if self.wanted[s] {
                self.phys[s] = Some(Phys::new(spec));
            }
        }
        self.started = true;
        Ok(())
    }

    /// Output vectors for `want` frames, one per header signal: empty, with room for
    /// the frames (at most those the files hold) for the selected signals. Their
    /// memory is taken from `reuse` (in selection order, as
    /// [`take_selected`](Self::take_selected) returns them) where it has a vector.
    fn outputs(&self, want: usize, reuse: &mut [Vec<f32>]) -> Vec<Vec<f32>> {
        let in_files = self
            .groups
            .iter()
            .filter(|g| g.active)
            .map(|g| g.frames_in_file.saturating_sub(self.frames_read))
            .min()
            .unwrap_or(0);
        let frames = (want as u64).min(in_files) as usize;
        let mut outs = vec![Vec::new(); self.header.signals.len()];
        for (i, &s) in self.selected.iter().enumerate() {
            if self.selected[..i].contains(&s) {
                continue; // a repeat: `take_selected` copies the first
            }
            let mut v = reuse.get_mut(i).map(std::mem::take).unwrap_or_default();
            v.clear();
            v.reserve_exact(frames * self.header.signals[s].samples_per_frame as usize);
            outs[s] = v;
        }
        outs
    }

    /// Moves the selected signals of `outs` (indexed by header signal) into `res`,
    /// one vector per selected signal, in selection order (a repeated signal is
    /// copied into its vector).
    fn take_selected(&self, mut outs: Vec<Vec<f32>>, res: &mut Vec<Vec<f32>>) {
        res.resize_with(self.selected.len(), Vec::new);
        for (i, &s) in self.selected.iter().enumerate() {
            match self.selected[..i].iter().position(|&t| t == s) {
                Some(j) => {
                    let (first, rest) = res.split_at_mut(i);
                    rest[0].clone_from(&first[j]);
                }
                None => res[i] = std::mem::take(&mut outs[s]),
            }
        }
    }

    /// Reads up to `n` frames (fewer when `n` exceeds about 2^22 samples per file,
    /// to bound memory) and returns, for each selected signal, its samples in
    /// physical units (`(adc - baseline) / gain`; invalid-sample markers become NaN).
    /// A signal with `k` samples per frame gets `k` samples per frame. Returns
    /// `Ok(None)` once the record is exhausted.
    ///
    /// When the last frame is read, each decoded signal's checksum is verified
    /// against the header and a mismatch is returned as [`WfdbError::Checksum`].
    /// A file that ends before the header's sample count gives [`WfdbError::Truncated`]
    /// (and one that ends inside a frame [`WfdbError::BadLength`]). Nothing readable
    /// is lost: the complete frames before the damage (or, for a checksum mismatch,
    /// the last chunk) are returned first and the error by the next call.
    pub fn read_chunk(&mut self, n: usize) -> Result<Option<Vec<Vec<f32>>>, WfdbError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if self.done || self.selected.is_empty() {
            self.done = true;
            return Ok(None);
        }
        self.start()?;
        let max_frame = self
            .groups
            .iter()
            .filter(|g| g.active)
            .map(|g| g.frame_len)
            .max()
            .unwrap_or(1);
        let mut want = n.min((MAX_CHUNK_SAMPLES / max_frame).max(1)) as u64;
        if let Some(total) = self.header.n_samples {
            want = want.min(total - self.frames_read);
        }
        let mut outs = self.outputs(want as usize, &mut []);
        match self.step(want as usize, &mut outs)? {
            Some(_) => {
                let mut res = Vec::with_capacity(self.selected.len());
                self.take_selected(outs, &mut res);
                Ok(Some(res))
            }
            None => Ok(None),
        }
    }

    /// Reads all the frames not read yet, at once, and returns each selected
    /// signal in physical units, as [`read_chunk`](Self::read_chunk) would in
    /// pieces. Any error (a checksum mismatch, a truncated file) is returned instead
    /// of the data. The output vectors are allocated once, at their final size.
    pub fn read_to_end(&mut self) -> Result<Vec<Vec<f32>>, WfdbError> {
        let mut out = Vec::new();
        self.read_to_end_into(&mut out)?;
        Ok(out)
    }

    /// [`read_to_end`](Self::read_to_end) into `out`, reusing its vectors' memory:
    /// `out` gets one vector per selected signal, the `i`-th made of `out[i]`'s
    /// memory where there was one (cleared, grown if needed). Reading many records
    /// one after another into the same `out` saves the page faults of fresh output
    /// memory for each record (the larger part of the time of reading MIT-BIH
    /// whole). On error the contents of `out` are unspecified.
    pub fn read_to_end_into(&mut self, out: &mut Vec<Vec<f32>>) -> Result<(), WfdbError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let reading = !self.done && !self.selected.is_empty();
        let mut want = 0;
        if reading {
            self.start()?;
            want = match self.header.n_samples {
                Some(total) => usize::try_from(total - self.frames_read).unwrap_or(usize::MAX),
                None => usize::MAX,
            };
        }
        let mut outs = self.outputs(want, out);
        let result = if reading { self.step(want, &mut outs) } else { Ok(None) };
        // The vectors go back to `out` even on error, so that their memory is kept.
        self.take_selected(outs, out);
        result?;
        self.done = true;
        match self.deferred.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Decodes up to `want` frames of every file holding a selected signal: appends
    /// the selected signals to `outs` (indexed by header signal) and adds every
    /// decoded signal to its checksum; then checks lengths and, at the end of the
    /// record, the checksums. Returns the frames delivered (`None` at the end), or
    /// an error to return at once; an error found after some frames is deferred.
    fn step(&mut self, want: usize, outs: &mut [Vec<f32>]) -> Result<Option<usize>, WfdbError> {
        // Complete frames decoded per active file; a truncated file or a partial
        // final frame is an error, deferred until the complete frames before it
        // have been returned, so that nothing valid is lost.
        let mut got_frames: Vec<usize> = Vec::new();
        let mut error: Option<WfdbError> = None;
        for g in self.groups.iter_mut().filter(|g| g.active) {
            let first = g.signals[0];
            let range = first..first + g.signals.len();
            let mut cols: Vec<Column<'_>> = self.sums[range.clone()]
                .iter_mut()
                .zip(&mut outs[range.clone()])
                .zip(&self.phys[range])
                .enumerate()
                .map(|(k, ((sum, out), phys))| Column {
                    pos: g.offsets[k],
                    spf: self.header.signals[first + k].samples_per_frame as usize,
                    sum,
                    out: phys.as_ref().map(|p| (out, p)),
                })
                .collect();
            let dec = g.decoder.as_mut().expect("opened");
            let got = dec.decode(want, &mut cols).map_err(io_err(&g.path))?;
            got_frames.push(got.frames);
            let file_len = || std::fs::metadata(&g.path).map_or(0, |m| m.len());
            if got.partial != 0 {
                error.get_or_insert_with(|| WfdbError::BadLength {
                    record: self.record.clone(),
                    file: g.file.clone(),
                    message: format!(
                        "file ends inside frame {} (a partial frame of {} samples; the file has {} bytes)",
                        self.frames_read + got.frames as u64,
                        got.partial,
                        file_len()
                    ),
                });
            } else if got.frames < want {
                if let Some(total) = self.header.n_samples {
                    error.get_or_insert_with(|| WfdbError::Truncated {
                        record: self.record.clone(),
                        file: g.file.clone(),
                        expected: total,
                        found: self.frames_read + got.frames as u64,
                        bytes: file_len(),
                    });
                }
            }
        }
        if error.is_none() && got_frames.windows(2).any(|w| w[0] != w[1]) {
            let k = got_frames.windows(2).position(|w| w[0] != w[1]).unwrap() + 1;
            let g = self.groups.iter().filter(|g| g.active).nth(k).expect("active");
            self.done = true;
            return Err(WfdbError::BadLength {
                record: self.record.clone(),
                file: g.file.clone(),
                message: "signal files of the record hold different numbers of samples".into(),
            });
        }
        let frames = got_frames.iter().copied().min().unwrap_or(0);
        if let Some(e) = error {
            self.done = true;
            if frames == 0 {
                return Err(e);
            }
            self.deferred = Some(e);
            // Files that got further than the shortest give only the common frames.
            for (s, o) in outs.iter_mut().enumerate() {
                o.truncate(frames * self.header.signals[s].samples_per_frame as usize);
            }
        }
        self.frames_read += frames as u64;
        let finished = match self.header.n_samples {
            Some(total) => self.frames_read >= total,
            None => frames < want,
        };
        if finished && self.deferred.is_none() {
            self.done = true;
            // The last frames are handed out before a checksum error, too.
            if let Err(e) = self.verify_checksums() {
                if frames == 0 {
                    return Err(e);
                }
                self.deferred = Some(e);
            }
        }
        if frames == 0 && finished {
            return Ok(None);
        }
        Ok(Some(frames))
    }

    fn verify_checksums(&self) -> Result<(), WfdbError> {
        for g in self.groups.iter().filter(|g| g.active) {
            for &s in &g.signals {
                let spec = &self.header.signals[s];
                if let Some(expected) = spec.checksum {
                    let computed = self.sums[s] as i16;
                    if computed != expected {
                        return Err(WfdbError::Checksum {
                            record: self.record.clone(),
                            file: g.file.clone(),
                            signal: s,
                            description: spec.description.clone(),
                            expected,
                            computed,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// A record read whole: its header and each signal in physical units.
pub type WholeRecord = (Header, Vec<Vec<f32>>);

/// Reads a whole record: its header and every signal in physical units
/// ([`RecordReader::read_to_end`]: one pass over the files, output allocated once).
pub fn read_record(dir: &Path, record: &str) -> Result<WholeRecord, WfdbError> {
    let mut r = RecordReader::open(dir, record)?;
    let sig = r.read_to_end()?;
    Ok((r.header, sig))
}

/// Reads many whole records (as [`read_record`]) on all available cores, one
/// record per thread at a time; the results are in the order of `records`. On
/// failure, the error of the first failing record in that order (records after
/// it may not have been read).
pub fn read_records<S: AsRef<str> + Sync>(dir: &Path, records: &[S]) -> Result<Vec<WholeRecord>, WfdbError> {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(records.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let first_error = AtomicUsize::new(usize::MAX);
    let mut results: Vec<Option<Result<WholeRecord, WfdbError>>> = (0..records.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        // Indices are handed out in order, so every record before a
                        // failing one is read.
                        let i = next.fetch_add(1, Relaxed);
                        if i >= records.len() || i > first_error.load(Relaxed) {
                            return mine;
                        }
                        let r = read_record(dir, records[i].as_ref());
                        if r.is_err() {
                            first_error.fetch_min(i, Relaxed);
                        }
                        mine.push((i, r));
                    }
                })
            })
            .collect();
        for w in workers {
            let mine = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (i, r) in mine {
                results[i] = Some(r);
            }
        }
    });
    let mut out = Vec::with_capacity(records.len());
    for r in results {
        match r {
            Some(r) => out.push(r?),
            None => unreachable!("every record before the first failure is read"),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Writing

/// Writes a record: one signal file per distinct `SignalSpec::file` (signals of one
/// file interleaved, in header order) and `dir/<header.record>.hea`.
///
/// `digital[i]` holds signal `i`'s ADC values. Supported formats: 16, 61, 80, 212
/// (and 1 sample per frame, no skew or byte offset). The returned header is the one
/// written: `n_samples`, `checksum` and `initial_value` are filled in from the data.
/// Each file is written under a temporary name and renamed into place.
pub fn write_record(dir: &Path, header: &Header, digital: &[Vec<i32>]) -> Result<Header, WfdbError> {
    let record = header.record.clone();
    let werr = |message: String| WfdbError::Write {
        record: record.clone(),
        message,
    };
    if digital.len() != header.signals.len() {
        return Err(werr(format!(
            "{} signal specs but {} sample vectors",
            header.signals.len(),
            digital.len()
        )));
    }
    let n = digital.first().map_or(0, Vec::len);
    let mut h = header.clone();
    h.n_samples = Some(n as u64);
    for (i, (s, d)) in h.signals.iter_mut().zip(digital).enumerate() {
        if d.len() != n {
            return Err(werr(format!("signal {i} has {} samples, signal 0 has {n}", d.len())));
        }
        if !matches!(s.format, 16 | 61 | 80 | 212) {
            return Err(werr(format!(
                "signal {i}: the writer supports formats 16, 61, 80 and 212, not {}",
                s.format
            )));
        }
        if s.samples_per_frame != 1 || s.skew != 0 || s.byte_offset != 0 {
            return Err(werr(format!(
                "signal {i}: the writer needs 1 sample per frame, no skew and no byte offset"
            )));
        }
        let (lo, hi) = match s.format {
            16 | 61 => (-32768, 32767),
            80 => (-128, 127),
            _ => (-2048, 2047),
        };
        if let Some((j, v)) = d.iter().enumerate().find(|(_, &v)| v < lo || v > hi) {
            return Err(werr(format!(
                "signal {i}, sample {j}: value {v} does not fit format {}",
                s.format
            )));
        }
        s.checksum = Some(d.iter().fold(0i32, |a, &v| a.wrapping_add(v)) as i16);
        s.initial_value = d.first().copied().unwrap_or(s.adc_zero);
    }
    let mut files: Vec<&str> = Vec::new();
    for s in &h.signals {
        if !files.contains(&s.file.as_str()) {
            files.push(&s.file);
        }
    }
    for file in files {
        let idx: Vec<usize> = (0..h.signals.len()).filter(|&i| h.signals[i].file == file).collect();
        let format = h.signals[idx[0]].format;
        if idx.iter().any(|&i| h.signals[i].format != format) {
            return Err(werr(format!("signals in file {file} have different formats")));
        }
        let mut bytes = Vec::with_capacity(n * idx.len() * 2);
        let mut pending: Option<i32> = None;
        let columns: Vec<&[i32]> = idx.iter().map(|&i| digital[i].as_slice()).collect();
        for t in 0..n {
            for col in &columns {
                let v = col[t];
                match format {
                    16 => bytes.extend_from_slice(&(v as i16).to_le_bytes()),
                    61 => bytes.extend_from_slice(&(v as i16).to_be_bytes()),
                    80 => bytes.push((v + 128) as u8),
                    _ => match pending.take() {
                        None => pending = Some(v),
                        Some(a) => {
                            bytes.push((a & 0xff) as u8);
                            bytes.push((((a >> 8) & 0x0f) | (((v >> 8) & 0x0f) << 4)) as u8);
                            bytes.push((v & 0xff) as u8);
                        }
                    },
                }
            }
        }
        if let Some(a) = pending {
            bytes.push((a & 0xff) as u8);
            bytes.push(((a >> 8) & 0x0f) as u8);
        }
        write_atomic(&dir.join(file), &bytes)?;
    }
    write_atomic(&dir.join(format!("{}.hea", h.record)), h.to_text().as_bytes())?;
    Ok(h)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, then
/// renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WfdbError> {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        w.write_all(bytes)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    const H100: &str = "100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n# 69 M 1085 1629 x1\n# Aldomet, Inderal\n";

    #[test]
    fn parses_mitdb_header() {
        let h = Header::parse(H100, "100").unwrap();
        assert_eq!(h.record, "100");
        assert_eq!(h.fs, 360.0);
        assert_eq!(h.n_samples, Some(650_000));
        assert_eq!(h.signals.len(), 2);
        let s = &h.signals[0];
        assert_eq!(
            (s.file.as_str(), s.format, s.gain, s.adc_resolution, s.adc_zero),
            ("100.dat", 212, 200.0, 11, 1024)
        );
        assert_eq!(
            (s.initial_value, s.checksum, s.block_size, s.baseline),
            (995, Some(-22131), 0, 1024)
        );
        assert_eq!(s.description, "MLII");
        assert_eq!(s.units, "mV");
        assert_eq!(h.comments, vec!["69 M 1085 1629 x1", "Aldomet, Inderal"]);
        assert_eq!(h.signal_index("V5"), Some(1));
        assert_eq!(h.signal_index("II"), None);
        assert!((h.duration_s().unwrap() - 650_000.0 / 360.0).abs() < 1e-9);
    }

    #[test]
    fn parses_ptbxl_header_with_unsigned_checksum_and_baseline() {
        let t = "00001_lr 12 100 1000\n00001_lr.dat 16 1000.0(0)/mV 16 0 -119 64758 0 III\n00001_lr.dat 16 1000.0(0)/mV 16 0 -55 723 0 II\n";
        let err = Header::parse(t, "00001_lr").unwrap_err();
        assert!(err.to_string().contains("12 signals"), "{err}");
        let t = t.replacen(" 12 ", " 2 ", 1);
        let h = Header::parse(&t, "00001_lr").unwrap();
        let s = &h.signals[0];
        assert_eq!((s.gain, s.baseline, s.units.as_str()), (1000.0, 0, "mV"));
        assert_eq!(s.checksum, Some((64758u32 as u16) as i16));
        assert_eq!(s.initial_value, -119);
    }

    #[test]
    fn parses_optional_forms() {
        let t = "rec 3 360/720(12) 1000 12:00:00 01/02/2003\r\n\
                 # comment before signals\r\n\
                 a.dat 212x4:2+512 100(-5)/uV 12 3 7 -1 0 ECG lead II\r\n\
                 a.dat 212\r\n\
                 b.dat 16 0/mmHg\r\n";
        let h = Header::parse(t, "rec").unwrap();
        assert_eq!((h.fs, h.counter_freq, h.base_counter), (360.0, Some(720.0), Some(12.0)));
        assert_eq!(h.base_time.as_deref(), Some("12:00:00"));
        assert_eq!(h.base_date.as_deref(), Some("01/02/2003"));
        let s = &h.signals[0];
        assert_eq!((s.samples_per_frame, s.skew, s.byte_offset), (4, 2, 512));
        assert_eq!(
            (s.gain, s.baseline, s.units.as_str(), s.adc_zero, s.initial_value),
            (100.0, -5, "uV", 3, 7)
        );
        assert_eq!(s.description, "ECG lead II");
        let d = &h.signals[1];
        assert_eq!(
            (
                d.gain,
                d.effective_gain(),
                d.baseline,
                d.checksum,
                d.description.as_str()
            ),
            (0.0, 200.0, 0, None, "")
        );
        assert_eq!(
            (h.signals[2].units.as_str(), h.signals[2].effective_gain()),
            ("mmHg", 200.0)
        );
        assert_eq!(h.comments, vec!["comment before signals"]);
        // Record line alone: defaults.
        let h = Header::parse("x", "x").unwrap();
        assert_eq!((h.fs, h.n_samples, h.signals.len()), (DEFAULT_FS, None, 0));
    }

    #[test]
    fn rejects_bad_headers_with_named_errors() {
        let e = Header::parse("multi/3 2 360 1000\n", "multi").unwrap_err();
        assert!(
            matches!(&e, WfdbError::MultiSegment { record, segments: 3 } if record == "multi"),
            "{e}"
        );
        assert!(e.to_string().contains("multi-segment"));
        for (text, needle) in [
            ("", "no record line"),
            ("r two 360", "number of signals"),
            ("r 1 abc", "sampling frequency"),
            ("r 1 -5", "must be positive"),
            ("r 1 360 12x", "number of samples"),
            ("r 1 360\nf.dat", "file name and a format"),
            ("r 1 360\nf.dat 16q", "format"),
            ("r 1 360\nf.dat 16 20(x", "baseline"),
            ("r 1 360\nf.dat 16 abc", "gain"),
            ("r 1 360\nf.dat 16 200 12 0 0 99999", "checksum"),
            ("r 1 360\nf.dat 16x0", "samples per frame"),
            ("r 2 360\nf.dat 16\nf.dat 212", "share file"),
        ] {
            let e = Header::parse(text, "r").unwrap_err();
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
            assert!(e.to_string().contains('r'));
        }
    }

    #[test]
    fn header_parser_never_panics_on_garbage() {
        let mut x: u64 = 0x1234_5678;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..(x % 60) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(b"0123456789 ./x:+()-#\nabc\t"[(x % 25) as usize] as char);
            }
            let _ = Header::parse(&s, "g");
        }
    }

    fn header(record: &str, specs: Vec<SignalSpec>) -> Header {
        Header {
            record: record.into(),
            fs: 360.0,
            counter_freq: None,
            base_counter: None,
            n_samples: None,
            base_time: None,
            base_date: None,
            signals: specs,
            comments: vec!["made by a test".into()],
        }
    }

    fn read_all_chunked(dir: &Path, rec: &str, n: usize) -> Result<Vec<Vec<f32>>, WfdbError> {
        let mut r = RecordReader::open(dir, rec)?;
        let mut out = vec![Vec::new(); r.selected().len()];
        while let Some(c) = r.read_chunk(n)? {
            for (o, c) in out.iter_mut().zip(c) {
                o.extend(c);
            }
        }
        assert_eq!(r.read_chunk(n)?, None);
        Ok(out)
    }

    #[test]
    fn write_read_round_trip_all_writable_formats() {
        let dir = TempDir::new("rt");
        for (fmt, lo, hi) in [
            (212u16, -2047, 2047),
            (16, -32767, 32767),
            (61, -32767, 32767),
            (80, -127, 127),
        ] {
            let rec = format!("r{fmt}");
            let mut specs = Vec::new();
            let mut data = Vec::new();
            // 3 signals x 7 samples: an odd total, exercising 212's 2-byte tail.
            for k in 0..3 {
                let mut s = SignalSpec::new(&format!("{rec}.dat"), fmt, 100.0 + k as f64, "mV", &format!("S{k}"));
                s.baseline = k * 3;
                specs.push(s);
                data.push(
                    (0..7)
                        .map(|i| [lo, hi, 0, -1, 1, lo / 3, hi / 2][(i + k as usize) % 7])
                        .collect::<Vec<i32>>(),
                );
            }
            let h = write_record(dir.path(), &header(&rec, specs), &data).unwrap();
            assert_eq!(h.n_samples, Some(7));
            let reread = Header::read(&dir.path().join(format!("{rec}.hea"))).unwrap();
            assert_eq!(reread, h);
            let (_, sig) = read_record(dir.path(), &rec).unwrap();
            for k in 0..3 {
                let want: Vec<f32> = data[k].iter().map(|&v| h.signals[k].to_physical(v)).collect();
                assert_eq!(sig[k], want, "format {fmt} signal {k}");
            }
            for n in [1, 2, 3, 5, 100] {
                assert_eq!(
                    read_all_chunked(dir.path(), &rec, n).unwrap(),
                    sig,
                    "format {fmt} chunk {n}"
                );
            }
        }
    }

    #[test]
    fn two_files_selection_and_names() {
        let dir = TempDir::new("sel");
        let specs = vec![
            SignalSpec::new("a.dat", 212, 200.0, "mV", "MLII"),
            SignalSpec::new("a.dat", 212, 200.0, "mV", "V5"),
            SignalSpec::new("b.dat", 16, 1000.0, "mV", "ABP"),
        ];
        let data: Vec<Vec<i32>> = (0..3)
            .map(|k| (0..1001).map(|i| (i * 7 + k * 100) % 4000 - 2000).collect())
            .collect();
        write_record(dir.path(), &header("two", specs), &data).unwrap();
        let mut r = RecordReader::open(dir.path(), "two").unwrap();
        r.select_by_name(&["ABP", "MLII"]).unwrap();
        assert_eq!(r.selected(), &[2, 0]);
        let c = r.read_chunk(10).unwrap().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0][3], data[2][3] as f32 / 1000.0);
        assert_eq!(c[1][3], data[0][3] as f32 / 200.0);
        assert!(r.select(&[1]).is_err(), "select after reading started");
        let e = RecordReader::open(dir.path(), "two")
            .unwrap()
            .select_by_name(&["II"])
            .unwrap_err();
        assert!(
            e.to_string().contains("MLII, V5, ABP") && e.to_string().contains("two"),
            "{e}"
        );
        assert!(RecordReader::open(dir.path(), "two").unwrap().select(&[3]).is_err());
        // Only b.dat is read when only ABP is selected: a.dat may even be missing.
        std::fs::remove_file(dir.path().join("a.dat")).unwrap();
        let mut r = RecordReader::open(dir.path(), "two").unwrap();
        r.select(&[2]).unwrap();
        assert_eq!(r.read_chunk(5000).unwrap().unwrap()[0].len(), 1001);
        assert_eq!(r.read_chunk(5000).unwrap(), None);
        assert_eq!(r.frames_read(), 1001);
        let e = read_record(dir.path(), "two").unwrap_err();
        assert!(
            matches!(&e, WfdbError::Io { path, .. } if path.ends_with("a.dat")),
            "{e}"
        );
        // Empty selection reads nothing.
        let mut r = RecordReader::open(dir.path(), "two").unwrap();
        r.select(&[]).unwrap();
        assert_eq!(r.read_chunk(10).unwrap(), None);
    }

    #[test]
    fn checksum_mismatch_names_record_and_signal() {
        let dir = TempDir::new("ck");
        let specs = vec![
            SignalSpec::new("c.dat", 16, 200.0, "mV", "I"),
            SignalSpec::new("c.dat", 16, 200.0, "mV", "II"),
        ];
        let data = vec![vec![1, 2, 3, 30000, 30000], vec![-5, 6, 7, 8, 9]];
        let mut h = write_record(dir.path(), &header("ck", specs), &data).unwrap();
        assert_eq!(h.signals[0].checksum, Some((60006i32) as i16));
        read_record(dir.path(), "ck").unwrap();
        h.signals[1].checksum = Some(h.signals[1].checksum.unwrap().wrapping_add(1));
        std::fs::write(dir.path().join("ck.hea"), h.to_text()).unwrap();
        let e = read_record(dir.path(), "ck").unwrap_err();
        assert!(
            matches!(&e, WfdbError::Checksum { record, signal: 1, description, .. } if record == "ck" && description == "II"),
            "{e}"
        );
        // Chunked: the data comes until the end (the last frame included), then the error.
        let mut r = RecordReader::open(dir.path(), "ck").unwrap();
        assert_eq!(r.read_chunk(4).unwrap().unwrap()[1].len(), 4);
        assert_eq!(r.read_chunk(4).unwrap().unwrap()[1], vec![9.0 / 200.0]);
        assert!(matches!(r.read_chunk(4), Err(WfdbError::Checksum { signal: 1, .. })));
        assert_eq!(r.read_chunk(4).unwrap(), None);
        // Corrupting a data byte is caught too.
        h.signals[1].checksum = Some(h.signals[1].checksum.unwrap().wrapping_sub(1));
        std::fs::write(dir.path().join("ck.hea"), h.to_text()).unwrap();
        let mut bytes = std::fs::read(dir.path().join("c.dat")).unwrap();
        bytes[0] ^= 0x10;
        std::fs::write(dir.path().join("c.dat"), &bytes).unwrap();
        assert!(matches!(
            read_record(dir.path(), "ck").unwrap_err(),
            WfdbError::Checksum { signal: 0, .. }
        ));
    }

    #[test]
    fn truncated_and_partial_files_are_errors() {
        let dir = TempDir::new("tr");
        let specs = vec![
            SignalSpec::new("t.dat", 212, 200.0, "mV", "I"),
            SignalSpec::new("t.dat", 212, 200.0, "mV", "II"),
        ];
        let data = vec![(0..100).collect::<Vec<i32>>(), (0..100).map(|v| -v).collect()];
        let h = write_record(dir.path(), &header("tr", specs), &data).unwrap();
        let path = dir.path().join("t.dat");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 300);
        std::fs::write(&path, &bytes[..150]).unwrap();
        let e = read_record(dir.path(), "tr").unwrap_err();
        assert!(
            matches!(&e, WfdbError::Truncated { record, file, expected: 100, found: 50, bytes: 150 } if record == "tr" && file == "t.dat"),
            "{e}"
        );
        // Unknown length: a file ending inside a frame is an error, a whole frame count is fine.
        let mut h2 = h.clone();
        h2.n_samples = None;
        for s in &mut h2.signals {
            s.checksum = None;
            s.description.clear();
        }
        std::fs::write(dir.path().join("tr.hea"), h2.to_text()).unwrap();
        std::fs::write(&path, &bytes[..151]).unwrap();
        let (_, sig) = read_record(dir.path(), "tr").unwrap();
        assert_eq!(sig[0].len(), 50);
        let mut h3 = h2.clone();
        for s in &mut h3.signals {
            s.format = 16;
        }
        std::fs::write(dir.path().join("tr.hea"), h3.to_text()).unwrap();
        std::fs::write(&path, &bytes[..6]).unwrap();
        let e = read_record(dir.path(), "tr").unwrap_err();
        assert!(
            matches!(&e, WfdbError::BadLength { .. }) && e.to_string().contains("t.dat"),
            "{e}"
        );
        std::fs::write(&path, []).unwrap();
        assert_eq!(read_record(dir.path(), "tr").unwrap().1, vec![Vec::<f32>::new(); 2]);
    }

    /// A record of 2 signals in format 212 (MIT-BIH's layout) and 3 in format 16 in
    /// a second file, longer than the reader's 128 KiB blocks, with invalid-sample
    /// markers, a non-integer gain and baselines; and the values expected of it.
    fn two_file_record(dir: &Path, rec: &str, n: usize) -> (Header, Vec<Vec<u32>>) {
        let mut specs = vec![
            SignalSpec::new(&format!("{rec}a.dat"), 212, 200.0, "mV", "MLII"),
            SignalSpec::new(&format!("{rec}a.dat"), 212, 0.0, "mV", "V5"),
            SignalSpec::new(&format!("{rec}b.dat"), 16, 1000.0, "mV", "I"),
            SignalSpec::new(&format!("{rec}b.dat"), 16, 12.3, "mV", "II"),
            SignalSpec::new(&format!("{rec}b.dat"), 16, 400.0, "uV", "III"),
        ];
        specs[0].baseline = 1024;
        specs[1].baseline = -7;
        specs[3].baseline = 300;
        let mut x: u64 = 0x9e37_79b9;
        let data: Vec<Vec<i32>> = specs
            .iter()
            .map(|s| {
                let (lo, span) = if s.format == 212 {
                    (-2048, 4096)
                } else {
                    (-32768, 65536)
                };
                (0..n)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Every 1000th sample the invalid marker (the lowest value).
                        if i % 1000 == 999 {
                            lo
                        } else {
                            lo + (x % span as u64) as i32
                        }
                    })
                    .collect()
            })
            .collect();
        let h = write_record(dir, &header(rec, specs), &data).unwrap();
        let want = h
            .signals
            .iter()
            .zip(&data)
            .map(|(s, d)| {
                d.iter()
                    .map(|&v| {
                        if Some(v) == invalid_value(s.format) {
                            f32::NAN.to_bits()
                        } else {
                            s.to_physical(v).to_bits()
                        }
                    })
                    .collect()
            })
            .collect();
        (h, want)
    }

    fn bits(sig: &[Vec<f32>]) -> Vec<Vec<u32>> {
        sig.iter().map(|v| v.iter().map(|x| x.to_bits()).collect()).collect()
    }

    #[test]
    fn whole_chunked_and_selected_reads_agree_across_blocks() {
        let dir = TempDir::new("blocks");
        let n = 100_003; // 300 009 bytes of format 212: three blocks, a partial pair at the end
        let (_, want) = two_file_record(dir.path(), "big", n);
        let (_, sig) = read_record(dir.path(), "big").unwrap();
        assert_eq!(bits(&sig), want);
        for chunk in [1, 4095, 65536, 1 << 20] {
            assert_eq!(
                bits(&read_all_chunked(dir.path(), "big", chunk).unwrap()),
                want,
                "chunk {chunk}"
            );
        }
        // Selections: one signal of the 212 pair (checksummed but not converted), a
        // reversed pair, a repeated signal, only the second file.
        for sel in [vec![1], vec![0], vec![1, 0], vec![0, 0, 4], vec![3], vec![4, 2]] {
            let expect: Vec<Vec<u32>> = sel.iter().map(|&s| want[s].clone()).collect();
            for chunk in [7777, usize::MAX] {
                let mut r = RecordReader::open(dir.path(), "big").unwrap();
                r.select(&sel).unwrap();
                let mut got = vec![Vec::new(); sel.len()];
                while let Some(c) = r.read_chunk(chunk).unwrap() {
                    for (g, c) in got.iter_mut().zip(c) {
                        g.extend(c);
                    }
                }
                assert_eq!(bits(&got), expect, "selection {sel:?}, chunk {chunk}");
            }
            let mut r = RecordReader::open(dir.path(), "big").unwrap();
            r.select(&sel).unwrap();
            assert_eq!(bits(&r.read_to_end().unwrap()), expect, "selection {sel:?}, whole");
            assert_eq!(r.read_chunk(10).unwrap(), None);
        }
        // `read_to_end_into` gives the same, in the vectors it is handed (more of
        // them than needed, holding old values), reusing their memory.
        let mut out = vec![vec![1.0f32; 10]; 7];
        for (k, sel) in [vec![0, 1, 2, 3, 4], vec![1, 0], vec![0, 0, 4]].iter().enumerate() {
            let mut r = RecordReader::open(dir.path(), "big").unwrap();
            r.select(sel).unwrap();
            let first = out[0].as_ptr();
            r.read_to_end_into(&mut out).unwrap();
            let expect: Vec<Vec<u32>> = sel.iter().map(|&s| want[s].clone()).collect();
            assert_eq!(bits(&out), expect, "selection {sel:?}, into");
            if k > 0 {
                // Large enough since the first read: the same memory.
                assert_eq!(out[0].as_ptr(), first, "selection {sel:?}");
            }
            r.read_to_end_into(&mut out).unwrap();
            assert_eq!(out, vec![Vec::<f32>::new(); sel.len()], "after the end");
        }
        // Some chunks, then the rest at once.
        let mut r = RecordReader::open(dir.path(), "big").unwrap();
        let mut got = r.read_chunk(777).unwrap().unwrap();
        got.extend(r.read_chunk(0).unwrap().unwrap());
        for (g, rest) in got.iter_mut().zip(r.read_to_end().unwrap()) {
            g.extend(rest);
        }
        got.truncate(5);
        assert_eq!(bits(&got), want);
        assert_eq!(r.frames_read(), n as u64);
        assert_eq!(r.read_to_end().unwrap(), vec![Vec::<f32>::new(); 5]);
        // A corrupted sample far into the file is caught by the whole-record read.
        let path = dir.path().join("biga.dat");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[200_001] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let e = read_record(dir.path(), "big").unwrap_err();
        assert!(
            matches!(&e, WfdbError::Checksum { record, .. } if record == "big"),
            "{e}"
        );
        // A truncated second file: the whole-record read reports it.
        bytes[200_001] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        read_record(dir.path(), "big").unwrap();
        let path = dir.path().join("bigb.dat");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..6 * 5000]).unwrap();
        let e = read_record(dir.path(), "big").unwrap_err();
        assert!(
            matches!(&e, WfdbError::Truncated { file, found: 5000, .. } if file == "bigb.dat"),
            "{e}"
        );
    }

    #[test]
    fn read_records_keeps_order_and_reports_the_first_failure() {
        let dir = TempDir::new("many");
        let names: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
        let mut want = Vec::new();
        for (i, name) in names.iter().enumerate() {
            want.push(two_file_record(dir.path(), name, 1000 + 37 * i).1);
        }
        let all = read_records(dir.path(), &names).unwrap();
        assert_eq!(all.len(), 5);
        for (i, ((h, sig), w)) in all.iter().zip(&want).enumerate() {
            assert_eq!(h.record, names[i]);
            assert_eq!(&bits(sig), w, "record {i}");
        }
        assert!(read_records::<&str>(dir.path(), &[]).unwrap().is_empty());
        std::fs::remove_file(dir.path().join("m3b.dat")).unwrap();
        std::fs::write(dir.path().join("m1a.dat"), [0u8; 6]).unwrap();
        let e = read_records(dir.path(), &names).unwrap_err();
        assert!(
            matches!(&e, WfdbError::Truncated { record, .. } if record == "m1"),
            "{e}"
        );
    }

    fn raw_record(dir: &Path, rec: &str, sig_lines: &str, n_sig: usize, n: u64, bytes: &[u8]) -> Vec<Vec<f32>> {
        std::fs::write(
            dir.join(format!("{rec}.hea")),
            format!("{rec} {n_sig} 100 {n}\n{sig_lines}"),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{rec}.dat")), bytes).unwrap();
        read_record(dir, rec).unwrap().1
    }

    #[test]
    fn decodes_formats_8_24_32_310_and_spf_offset_invalid() {
        let dir = TempDir::new("fmt");
        let d = dir.path();
        // Format 8: first differences from the initial value, per signal.
        let s = raw_record(
            d,
            "f8",
            "f8.dat 8 1 8 0 10 -91 0 A\nf8.dat 8 1 8 0 -3 -11 0 B\n",
            2,
            3,
            &[1, 0xff, 2, 0xff, 0x80, 3],
        );
        assert_eq!(s, vec![vec![11.0, 13.0, -115.0], vec![-4.0, -5.0, -2.0]]);
        // Format 24 and 32: little-endian signed.
        let s = raw_record(d, "f24", "f24.dat 24 1\n", 1, 2, &[0xff, 0xff, 0xff, 0x01, 0x00, 0x80]);
        assert_eq!(s, vec![vec![-1.0, -8388607.0]]);
        let s = raw_record(d, "f32", "f32.dat 32 1\n", 1, 1, &(-70000i32).to_le_bytes());
        assert_eq!(s, vec![vec![-70000.0]]);
        // Format 310: three 10-bit samples in two little-endian words.
        let enc = |v: [i32; 3]| {
            let u = v.map(|x| (x & 0x3ff) as u16);
            let w0 = (u[0] << 1) | ((u[2] & 0x1f) << 11);
            let w1 = (u[1] << 1) | ((u[2] >> 5) << 11);
            [w0.to_le_bytes(), w1.to_le_bytes()].concat()
        };
        let mut b = enc([-511, 511, -2]);
        b.extend(enc([100, -100, 300]));
        let s = raw_record(d, "f310", "f310.dat 310 1\n", 1, 5, &b);
        assert_eq!(s, vec![vec![-511.0, 511.0, -2.0, 100.0, -100.0]]);
        let lines = "f3.dat 310 1\nf3.dat 310 1\nf3.dat 310 1\n";
        let s = raw_record(d, "f3", lines, 3, 2, &b);
        assert_eq!(s, vec![vec![-511.0, 100.0], vec![511.0, -100.0], vec![-2.0, 300.0]]);
        // Samples per frame 2 for the first signal, byte offset 4, invalid marker -> NaN.
        let mut b = vec![9u8; 4];
        for v in [1i16, 2, 10, 3, 4, 20, 5, -32768, 30] {
            b.extend(v.to_le_bytes());
        }
        let s = raw_record(
            d,
            "spf",
            "spf.dat 16x2+4 1\nspf.dat 16+4 2(4)/mV 16 0 0 60 0 X\n",
            2,
            3,
            &b,
        );
        assert_eq!(s[0][..5], [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(s[0][5].is_nan());
        assert_eq!(s[1], vec![3.0, 8.0, 13.0]);
        // Unsupported format and skew are named errors.
        std::fs::write(d.join("u.hea"), "u 1 100 1\nu.dat 311 1 10 0 0 0 0 ECG\n").unwrap();
        let e = RecordReader::open(d, "u").unwrap_err();
        assert!(e.to_string().contains("311") && e.to_string().contains("ECG"), "{e}");
        std::fs::write(d.join("u.hea"), "u 1 100 1\nu.dat 16:3 1\n").unwrap();
        assert!(RecordReader::open(d, "u").unwrap_err().to_string().contains("skew"));
        assert!(matches!(
            RecordReader::open(d, "missing").unwrap_err(),
            WfdbError::Io { .. }
        ));
    }

    #[test]
    fn hostile_sizes_give_errors_not_aborts() {
        let dir = TempDir::new("huge");
        let d = dir.path();
        std::fs::write(d.join("h.dat"), [1u8, 0, 2, 0]).unwrap();
        // A header claiming an absurd length: a Truncated error, no giant allocation.
        std::fs::write(d.join("h.hea"), "h 1 100 18446744073709551615\nh.dat 16 1\n").unwrap();
        let e = read_record(d, "h").unwrap_err();
        assert!(matches!(e, WfdbError::Truncated { found: 2, .. }), "{e}");
        // Unknown length, a huge chunk request.
        std::fs::write(d.join("h.hea"), "h 1 100\nh.dat 16 1\n").unwrap();
        let mut r = RecordReader::open(d, "h").unwrap();
        assert_eq!(r.read_chunk(usize::MAX).unwrap().unwrap(), vec![vec![1.0, 2.0]]);
        assert_eq!(r.read_chunk(usize::MAX).unwrap(), None);
        // Absurd samples per frame.
        std::fs::write(d.join("h.hea"), "h 1 100\nh.dat 16x4000000000 1\n").unwrap();
        let e = RecordReader::open(d, "h").unwrap_err();
        assert!(e.to_string().contains("samples per frame"), "{e}");
        // A chunk of 0 frames is an empty chunk, not the end.
        std::fs::write(d.join("h.hea"), "h 1 100 2\nh.dat 16 1\n").unwrap();
        let mut r = RecordReader::open(d, "h").unwrap();
        assert_eq!(r.read_chunk(0).unwrap().unwrap(), vec![Vec::<f32>::new()]);
        assert_eq!(r.read_chunk(5).unwrap().unwrap()[0].len(), 2);
    }

    #[test]
    fn writer_rejects_bad_input() {
        let dir = TempDir::new("wbad");
        let h = header("w", vec![SignalSpec::new("w.dat", 212, 200.0, "mV", "I")]);
        assert!(write_record(dir.path(), &h, &[vec![5000]])
            .unwrap_err()
            .to_string()
            .contains("does not fit"));
        assert!(write_record(dir.path(), &h, &[]).is_err());
        let h = header("w", vec![SignalSpec::new("w.dat", 310, 200.0, "mV", "I")]);
        assert!(write_record(dir.path(), &h, &[vec![1]]).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.is_empty(), "nothing written on error");
    }
}
