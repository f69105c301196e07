//! Source component types.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context;
use std::path::{Path, PathBuf};

use ecgflow_datasets::annotations::{is_beat, read_annotations};
use ecgflow_datasets::mitdb::record_set;
use ecgflow_datasets::ptbxl::{self, PtbxlRecord, Resolution, SUPERCLASSES};
use ecgflow_datasets::wfdb::{Header, RecordReader};
use ecgflow_operators::synthetic::{SyntheticConfig, SyntheticEcg, SyntheticError};
use ecgflow_operators::{Annotation, Beat, Chunk};

use super::fields::{Default as D, FieldSpec as F};
use super::{
    Built, ComponentSpec, FieldProblem, Live, Output, Overflow, Params, PortKind, Source, StreamReader, Upstream,
};
use crate::config::Role;
use crate::message::Body;
use crate::parquet_in::{read_beats, BeatTable};

pub static SPECS: &[ComponentSpec] = &[ComponentSpec {
    type_name: "synthetic",
    role: Role::Source,
    summary: "Synthetic ECG from the dynamical model of McSharry et al. 2003 (ECGSYN), one lead named \
              ECG in mV, with heart-rate variability, noise and optional ectopic beats. Attaches the \
              true R-peak positions (symbols N and V) as reference annotations. Seeded and deterministic.",
    accepts: &[],
    output: Output::Kind(PortKind::Signal),
    fields: &[
        F::int("streams", 1, 100_000, D::Int(1), "number of independent streams (patients), named syn000, syn001, ..."),
        F::positive("duration_s", 0.0, 31_536_000.0, D::Float(60.0), "seconds of signal per stream"),
        F::positive("fs", 0.0, 100_000.0, D::Float(360.0), "sampling rate in Hz"),
        F::float("heart_rate", 20.0, 250.0, D::Float(70.0), "mean heart rate in beats per minute"),
        F::float("heart_rate_std", 0.0, 50.0, D::Float(1.0), "standard deviation of the heart rate in bpm"),
        F::positive("lf_hf_ratio", 0.0, 100.0, D::Float(0.5), "LF/HF power ratio of the RR tachogram"),
        F::float("baseline_wander_mv", 0.0, 100.0, D::Float(0.05), "baseline wander amplitude in mV"),
        F::float("mains_mv", 0.0, 100.0, D::Float(0.0), "mains hum amplitude in mV"),
        F::positive("mains_hz", 0.0, 1000.0, D::Float(50.0), "mains frequency in Hz (50 or 60)"),
        F::float("muscle_mv", 0.0, 100.0, D::Float(0.01), "muscle (EMG) noise standard deviation in mV"),
        F::float("ectopic_probability", 0.0, 1.0, D::Float(0.0), "probability that a beat is a premature ventricular beat (V)"),
        F::int("seed", 0, i64::MAX, D::Int(1), "random seed; the same seed gives the same signal"),
        F::int("chunk_size", 1, 10_000_000, D::Int(360), "samples per emitted chunk"),
        OPTIONAL_SPEED,
        OVERFLOW,
        QUEUE,
    ],
    check: |p, _| match synthetic_config(p).validate() {
        Ok(()) => Vec::new(),
        Err(SyntheticError::InvalidParameter { field, value, reason }) => vec![(field.to_owned(), format!("{value} {reason}"))],
    },
    output_fs: |p, _| Some(p.f64("fs")),
    build: build_synthetic,
},
ComponentSpec {
    type_name: "wfdb",
    role: Role::Source,
    summary: "WFDB records (e.g. MIT-BIH) read in chunks, one stream per record, in physical units, \
              with each signal's checksum verified at the end of the record. Leads are chosen by their \
              name in the header. Beat annotations from the annotation file are attached to the stream \
              as reference annotations (non-beat annotations are left out).",
    accepts: &[],
    output: Output::Kind(PortKind::Signal),
    fields: &[
        F::string("path", D::Required, "directory holding the records (.hea/.dat files)"),
        F::string("records", D::Str("all"), "records: names and MIT-BIH sets, e.g. \"100,101\", \"DS1\", \"all,-paced\"; \"all\" reads the directory's RECORDS file when it has one"),
        F::string("lead", D::Str("MLII"), "lead name(s) as in the header, comma-separated, or \"all\""),
        F::choice(
            "missing_lead",
            &["fail", "first"],
            "fail",
            "a record without the lead fails (`fail`) or uses its first lead (`first`, e.g. MIT-BIH 102 and 104)",
        ),
        F::string("annotations", D::Str("atr"), "annotation file extension to attach (\"\" for none)"),
        F::int("chunk_size", 1, 10_000_000, D::Int(3600), "samples per emitted chunk"),
    ],
    check: check_wfdb,
    output_fs: |p, _| {
        let source = WfdbSource::from_params(p);
        let first = source.records().ok()?.into_iter().next()?;
        Header::read(&source.path.join(format!("{first}.hea"))).ok().map(|h| h.fs)
    },
    build: |p| Ok(Built::Source(Arc::new(WfdbSource::from_params(p)))),
},
ComponentSpec {
    type_name: "replay",
    role: Role::Source,
    summary: "WFDB records (e.g. MIT-BIH) played as live streams, all at once, at real time or a speed \
              factor, in small chunks, with their reference beat annotations attached for checking. Each \
              record can be played several times as separate patients (`copies`) and the streams spread \
              over wards. When the dataflow falls behind, `overflow` decides: `block` loses nothing, \
              `drop_oldest` drops the oldest queued chunk and reports a `dropped` event (every sample counted).",
    accepts: &[],
    output: Output::Kind(PortKind::Signal),
    fields: &[
        F::string("path", D::Required, "directory holding the records (.hea/.dat files)"),
        F::string("records", D::Str("all"), "records: names and MIT-BIH sets, e.g. \"100,101\", \"DS2\", \"all,-paced\""),
        F::string("lead", D::Str("MLII"), "lead name(s) as in the header, comma-separated, or \"all\""),
        F::choice(
            "missing_lead",
            &["fail", "first"],
            "first",
            "a record without the lead fails (`fail`) or uses its first lead (`first`)",
        ),
        F::string("annotations", D::Str("atr"), "annotation file extension to attach (\"\" for none)"),
        F::int("chunk_size", 1, 10_000_000, D::Int(36), "samples per chunk (36 = 100 ms at 360 Hz)"),
        F::float("duration_s", 0.0, 31_536_000.0, D::Float(0.0), "play only the first seconds of each record (0: all of it)"),
        SPEED,
        F::int("copies", 1, 10_000, D::Int(1), "play each record this many times, as separate patients named RECORD, RECORD-c1, RECORD-c2, ..."),
        F::int("wards", 1, 10_000, D::Int(1), "spread the streams over this many wards (ward-1, ward-2, ...), in turn"),
        OVERFLOW,
        QUEUE,
    ],
    check: check_wfdb,
    output_fs: |p, _| {
        let source = WfdbSource::from_params(p);
        let first = source.records().ok()?.into_iter().next()?;
        Header::read(&source.path.join(format!("{first}.hea"))).ok().map(|h| h.fs)
    },
    build: |p| {
        Ok(Built::Source(Arc::new(ReplaySource {
            wfdb: WfdbSource::from_params(p),
            copies: p.usize("copies"),
            wards: p.usize("wards"),
            duration_s: p.f64("duration_s"),
            live: live_from_params(p),
        })))
    },
},
ComponentSpec {
    type_name: "ptbxl",
    role: Role::Source,
    summary: "PTB-XL records (12 leads, 10 s, in mV), one stream per ECG named by its ecg_id, read from a \
              directory in the PTB-XL layout (ptbxl_database.csv, scp_statements.csv, records100/, \
              records500/). Each stream carries ecg_id, patient, fold, age, sex and the five diagnostic \
              superclasses (NORM, MI, STTC, CD, HYP) as metadata, for the `ecgs` Parquet schema.",
    accepts: &[],
    output: Output::Kind(PortKind::Signal),
    fields: &[
        F::string("path", D::Required, "the PTB-XL directory"),
        F::string("folds", D::Str("all"), "strat_fold values to read, e.g. \"1-8\", \"9\", \"1,2,3\" or \"all\""),
        F::choice("sampling_rate", &["100", "500"], "100", "records100 (100 Hz) or records500 (500 Hz)"),
        F::int("limit", 0, i64::MAX, D::Int(0), "read at most this many records (0: all), for quick runs"),
        F::int("chunk_size", 1, 10_000_000, D::Int(1000), "samples per emitted chunk"),
    ],
    check: |p, _| match PtbxlSource::from_params(p) {
        Err(e) => vec![("folds".to_owned(), format!("{e:#}"))],
        Ok(source) => match source.records() {
            Ok(_) => Vec::new(),
            Err(e) => vec![("path".to_owned(), format!("{e:#}"))],
        },
    },
    output_fs: |p, _| Some(if p.str("sampling_rate") == "500" { 500.0 } else { 100.0 }),
    build: |p| Ok(Built::Source(Arc::new(PtbxlSource::from_params(p)?))),
},
ComponentSpec {
    type_name: "parquet",
    role: Role::Source,
    summary: "Beats read back from a `beats` Parquet table (a file, or a directory of per-record files \
              written by the parquet sink): one stream per record, each beat with its window, annotation \
              symbol and RR intervals; the stream carries the patient and the source database as \
              metadata. The start of training and evaluation pipelines.",
    accepts: &[],
    output: Output::Kind(PortKind::Beats),
    fields: &[
        F::string("path", D::Required, "a beats Parquet file or a directory of them"),
        F::string("records", D::Str("all"), "records to read: \"all\" (every record in the table), names, or MIT-BIH sets such as \"DS1\" or \"all,-paced\""),
        OPTIONAL_SPEED,
        OVERFLOW,
        QUEUE,
    ],
    check: |p, _| {
        let path = Path::new(p.str("path"));
        let mut problems = Vec::new();
        if let Err(e) = crate::parquet_in::parquet_files(path) {
            problems.push(("path".to_owned(), format!("{e:#}")));
        }
        if let Err(e) = beat_records(p.str("records")) {
            problems.push(("records".to_owned(), format!("{e:#}")));
        }
        problems
    },
    output_fs: |_, _| None,
    build: |p| {
        Ok(Built::Source(Arc::new(ParquetSource {
            path: PathBuf::from(p.str("path")),
            records: beat_records(p.str("records"))?,
            table: std::sync::OnceLock::new(),
            live: live_from_params(p),
        })))
    },
},
];

/// The `speed` field of live sources.
const SPEED: F = F::positive(
    "speed",
    0.0,
    1_000_000.0,
    D::Float(1.0),
    "multiple of real time (1 = real time, 1000 = a day in under 90 s)",
);
/// The `speed` field of sources that are read as fast as possible unless asked to play live.
const OPTIONAL_SPEED: F = F::float(
    "speed",
    0.0,
    1_000_000.0,
    D::Float(0.0),
    "play the streams live at this multiple of real time, all at once (1 = real time); 0 = as fast as the dataflow takes them, one after the other",
);
/// The `overflow` field of live sources.
const OVERFLOW: F = F::choice(
    "overflow",
    Overflow::CHOICES,
    "block",
    "when the dataflow falls behind: `block` makes the source wait (nothing lost), `drop_oldest` drops the oldest queued chunk (counted, reported as a `dropped` event)",
);
/// The `queue` field of live sources.
const QUEUE: F = F::int(
    "queue",
    1,
    1_000_000,
    D::Int(64),
    "chunks queued per stream between the source and the dataflow",
);

/// How a paced source runs, from its `speed`, `overflow` and `queue` fields; `None` when
/// `speed` is 0 (not paced: a dataset read as fast as the dataflow takes it).
fn live_from_params(p: &Params) -> Option<Live> {
    let speed = p.f64("speed");
    (speed > 0.0).then(|| Live {
        speed: Some(speed),
        overflow: Overflow::from_name(p.str("overflow")),
        capacity: p.usize("queue"),
    })
}

fn synthetic_config(p: &Params) -> SyntheticConfig {
    SyntheticConfig {
        fs: p.f64("fs"),
        heart_rate: p.f64("heart_rate"),
        heart_rate_std: p.f64("heart_rate_std"),
        lf_hf_ratio: p.f64("lf_hf_ratio"),
        duration_s: p.f64("duration_s"),
        baseline_wander_mv: p.f64("baseline_wander_mv"),
        mains_mv: p.f64("mains_mv"),
        mains_hz: p.f64("mains_hz"),
        muscle_mv: p.f64("muscle_mv"),
        ectopic_probability: p.f64("ectopic_probability"),
        seed: p.i64("seed") as u64,
    }
}

fn build_synthetic(p: &Params) -> anyhow::Result<Built> {
    let config = synthetic_config(p);
    config.validate()?;
    Ok(Built::Source(Arc::new(SyntheticSource {
        config,
        streams: p.usize("streams"),
        chunk_size: p.usize("chunk_size"),
        live: live_from_params(p),
    })))
}

/// The `synthetic` source.
pub struct SyntheticSource {
    pub config: SyntheticConfig,
    pub streams: usize,
    pub chunk_size: usize,
    /// Played live when paced (`speed` > 0).
    pub live: Option<Live>,
}

impl Source for SyntheticSource {
    fn streams(&self) -> anyhow::Result<Vec<String>> {
        Ok((0..self.streams).map(SyntheticEcg::stream_name).collect())
    }

    fn total_samples(&self) -> Option<u64> {
        let per_stream = (self.config.duration_s * self.config.fs).round() as u64;
        Some(per_stream * self.streams as u64)
    }

    fn live(&self) -> Option<Live> {
        self.live
    }

    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>> {
        let ecg = SyntheticEcg::new(&self.config, index).with_context(|| format!("synthetic stream {index}"))?;
        Ok(Box::new(SyntheticReader {
            ecg,
            chunk_size: self.chunk_size,
        }))
    }
}

struct SyntheticReader {
    ecg: SyntheticEcg,
    chunk_size: usize,
}

impl StreamReader for SyntheticReader {
    fn next(&mut self) -> anyhow::Result<Option<Body>> {
        Ok(self.ecg.next_chunk(self.chunk_size).map(Body::Chunk))
    }
}

fn check_wfdb(p: &Params, _: &Upstream) -> Vec<FieldProblem> {
    let source = WfdbSource::from_params(p);
    if !source.path.is_dir() {
        return vec![(
            "path".to_owned(),
            format!("{} is not a directory (is ECGFLOW_DATA set?)", source.path.display()),
        )];
    }
    let records = match source.records() {
        Ok(r) if r.is_empty() => return vec![("records".to_owned(), "selects no record".to_owned())],
        Ok(r) => r,
        Err(e) => return vec![("records".to_owned(), format!("{e:#}"))],
    };
    let missing: Vec<&String> = records
        .iter()
        .filter(|r| !source.path.join(format!("{r}.hea")).is_file())
        .collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(|s| s.as_str()).collect();
        return vec![(
            "records".to_owned(),
            format!(
                "{} record(s) not found in {}: {}",
                missing.len(),
                source.path.display(),
                shown.join(", ")
            ),
        )];
    }
    Vec::new()
}

/// The `wfdb` source.
pub struct WfdbSource {
    pub path: PathBuf,
    pub records: String,
    /// Lead names, or empty for every lead.
    pub leads: Vec<String>,
    pub annotations: Option<String>,
    /// Read the first lead of records that lack the named one(s).
    pub first_lead_if_missing: bool,
    pub chunk_size: usize,
}

impl WfdbSource {
    fn from_params(p: &Params) -> Self {
        let lead = p.str("lead");
        WfdbSource {
            path: PathBuf::from(p.str("path")),
            records: p.str("records").to_owned(),
            leads: if lead == "all" {
                Vec::new()
            } else {
                lead.split(',').map(|l| l.trim().to_owned()).collect()
            },
            annotations: Some(p.str("annotations").to_owned()).filter(|a| !a.is_empty()),
            first_lead_if_missing: p.str("missing_lead") == "first",
            chunk_size: p.usize("chunk_size"),
        }
    }

    /// The record names, from the RECORDS file for `all` when there is one.
    fn records(&self) -> anyhow::Result<Vec<String>> {
        record_list(&self.path, &self.records)
    }
}

/// The records `spec` names in the WFDB directory `dir`: names and MIT-BIH sets (see
/// `ecgflow_datasets::mitdb::record_set`), where `all` reads the directory's RECORDS file
/// when it has one.
pub fn record_list(dir: &Path, spec: &str) -> anyhow::Result<Vec<String>> {
    let listing = dir.join("RECORDS");
    if spec.trim() == "all" && listing.is_file() {
        let text = std::fs::read_to_string(&listing).with_context(|| format!("reading {}", listing.display()))?;
        return Ok(text.split_whitespace().map(str::to_owned).collect());
    }
    Ok(record_set(spec)?)
}

impl Source for WfdbSource {
    fn streams(&self) -> anyhow::Result<Vec<String>> {
        self.records()
    }

    fn total_samples(&self) -> Option<u64> {
        let mut total = 0;
        for record in self.records().ok()? {
            total += Header::read(&self.path.join(format!("{record}.hea"))).ok()?.n_samples?;
        }
        Some(total)
    }

    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>> {
        let records = self.records()?;
        let record = records.get(index).context("no such record")?.clone();
        let mut reader = RecordReader::open(&self.path, &record)?;
        if !self.leads.is_empty() {
            let names: Vec<&str> = self.leads.iter().map(String::as_str).collect();
            let has_all = names.iter().all(|n| reader.header().signal_index(n).is_some());
            if has_all || !self.first_lead_if_missing {
                reader.select_by_name(&names)?;
            } else {
                reader.select(&[0])?;
            }
        }
        let (leads, fs) = selected_leads(&reader);
        let annotations = match &self.annotations {
            Some(ext) => {
                let path = self.path.join(format!("{record}.{ext}"));
                read_annotations(&path)?
                    .into_iter()
                    .filter(|a| is_beat(&a.symbol))
                    .map(|a| Annotation {
                        sample: a.sample,
                        symbol: a.symbol,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let database = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // MIT-BIH records 201 and 202 come from the same patient.
        let patient = if database == "mitdb" && record == "202" {
            "201".to_owned()
        } else {
            record.clone()
        };
        let meta = vec![
            ("database".to_owned(), database),
            ("patient".to_owned(), patient),
            ("leads".to_owned(), leads.join(",")),
        ];
        Ok(Box::new(RecordStream::new(
            record,
            reader,
            fs,
            leads,
            annotations,
            meta,
            self.chunk_size,
        )))
    }
}

/// The `replay` source: WFDB records played live, each possibly several times.
pub struct ReplaySource {
    wfdb: WfdbSource,
    copies: usize,
    wards: usize,
    /// Seconds of each record played (0: all).
    duration_s: f64,
    live: Option<Live>,
}

impl Source for ReplaySource {
    fn streams(&self) -> anyhow::Result<Vec<String>> {
        let records = self.wfdb.records()?;
        Ok((0..self.copies)
            .flat_map(|copy| {
                records.iter().map(move |r| match copy {
                    0 => r.clone(),
                    _ => format!("{r}-c{copy}"),
                })
            })
            .collect())
    }

    fn total_samples(&self) -> Option<u64> {
        self.wfdb.total_samples().map(|n| n * self.copies as u64)
    }

    fn live(&self) -> Option<Live> {
        self.live
    }

    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>> {
        let records = self.wfdb.records()?.len();
        let name = self.streams()?.swap_remove(index);
        let inner = self.wfdb.open(index % records)?;
        let mut meta = inner.meta();
        // Each copy is a patient of its own, in its ward.
        meta.retain(|(k, _)| k != "patient");
        meta.push(("patient".to_owned(), name.clone()));
        meta.push(("ward".to_owned(), format!("ward-{}", index % self.wards + 1)));
        let limit = (self.duration_s > 0.0).then_some(self.duration_s);
        Ok(Box::new(ReplayStream {
            inner,
            name,
            meta,
            limit,
        }))
    }
}

/// A record's stream under the name of its copy.
struct ReplayStream {
    inner: Box<dyn StreamReader>,
    name: String,
    meta: Vec<(String, String)>,
    /// Seconds to play, when not the whole record.
    limit: Option<f64>,
}

impl StreamReader for ReplayStream {
    fn meta(&self) -> Vec<(String, String)> {
        self.meta.clone()
    }

    fn next(&mut self) -> anyhow::Result<Option<Body>> {
        Ok(match self.inner.next()? {
            Some(Body::Chunk(mut c)) => {
                c.stream.clone_from(&self.name);
                if let Some(limit) = self.limit {
                    let end = (limit * c.fs).round() as u64;
                    if c.start >= end {
                        return Ok(None);
                    }
                    let keep = (end - c.start).min(c.len() as u64) as usize;
                    c.samples.iter_mut().for_each(|lead| lead.truncate(keep));
                    c.annotations.retain(|a| a.sample < end);
                }
                Some(Body::Chunk(c))
            }
            other => other,
        })
    }
}

/// Reads a WFDB record as one stream, attaching its reference annotations to the chunks.
struct RecordStream {
    record: String,
    reader: RecordReader,
    fs: f64,
    leads: Vec<String>,
    annotations: Vec<Annotation>,
    next_annotation: usize,
    meta: Vec<(String, String)>,
    position: u64,
    chunk_size: usize,
}

impl RecordStream {
    fn new(
        record: String,
        reader: RecordReader,
        fs: f64,
        leads: Vec<String>,
        annotations: Vec<Annotation>,
        meta: Vec<(String, String)>,
        chunk_size: usize,
    ) -> Self {
        RecordStream {
            record,
            reader,
            fs,
            leads,
            annotations,
            next_annotation: 0,
            meta,
            position: 0,
            chunk_size,
        }
    }
}

impl StreamReader for RecordStream {
    fn meta(&self) -> Vec<(String, String)> {
        self.meta.clone()
    }

    fn next(&mut self) -> anyhow::Result<Option<Body>> {
        let Some(samples) = self.reader.read_chunk(self.chunk_size)? else {
            return Ok(None);
        };
        let mut chunk = Chunk::new(self.record.clone(), self.fs, self.position, self.leads.clone(), samples);
        let end = chunk.end();
        while let Some(a) = self.annotations.get(self.next_annotation).filter(|a| a.sample < end) {
            chunk.annotations.push(a.clone());
            self.next_annotation += 1;
        }
        self.position = end;
        Ok(Some(Body::Chunk(chunk)))
    }
}

/// Reads `"1-8"`, `"9"`, `"1,3,5"` or `"all"` as a set of folds.
pub fn parse_folds(spec: &str) -> anyhow::Result<Vec<u8>> {
    if spec.trim() == "all" {
        return Ok((1..=10).collect());
    }
    let mut folds = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || anyhow::anyhow!("bad fold list {spec:?}: expected e.g. \"1-8\", \"9\" or \"1,2,3\"");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u8, u8) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b {
                    return Err(bad());
                }
                folds.extend(a..=b);
            }
            None => folds.push(part.parse().map_err(|_| bad())?),
        }
    }
    if folds.is_empty() {
        anyhow::bail!("the fold list {spec:?} selects no fold");
    }
    Ok(folds)
}

/// The `ptbxl` source.
pub struct PtbxlSource {
    pub path: PathBuf,
    pub folds: Vec<u8>,
    pub resolution: Resolution,
    pub limit: usize,
    pub chunk_size: usize,
    /// The chosen rows of the database, read once.
    chosen: std::sync::OnceLock<Vec<PtbxlRecord>>,
}

impl PtbxlSource {
    fn from_params(p: &Params) -> anyhow::Result<Self> {
        Ok(PtbxlSource {
            path: PathBuf::from(p.str("path")),
            folds: parse_folds(p.str("folds"))?,
            resolution: if p.str("sampling_rate") == "500" {
                Resolution::High
            } else {
                Resolution::Low
            },
            limit: p.usize("limit"),
            chunk_size: p.usize("chunk_size"),
            chosen: std::sync::OnceLock::new(),
        })
    }

    fn records(&self) -> anyhow::Result<&[PtbxlRecord]> {
        if let Some(chosen) = self.chosen.get() {
            return Ok(chosen);
        }
        let all = ptbxl::load(&self.path).with_context(|| format!("reading PTB-XL from {}", self.path.display()))?;
        let mut chosen = ptbxl::filter_folds(&all, &self.folds);
        if self.limit > 0 {
            chosen.truncate(self.limit);
        }
        Ok(self.chosen.get_or_init(|| chosen))
    }
}

/// A PTB-XL stream's name: its ecg_id, zero-padded as in the file names.
fn ptbxl_stream(record: &PtbxlRecord) -> String {
    format!("{:05}", record.ecg_id)
}

impl Source for PtbxlSource {
    fn streams(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.records()?.iter().map(ptbxl_stream).collect())
    }

    fn total_samples(&self) -> Option<u64> {
        let per_record = if self.resolution == Resolution::High {
            5000
        } else {
            1000
        };
        Some(self.records().ok()?.len() as u64 * per_record)
    }

    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>> {
        let record = self.records()?.get(index).context("no such record")?.clone();
        let reader = record.open_signal(&self.path, self.resolution)?;
        let (leads, fs) = selected_leads(&reader);
        let samples = reader.header().n_samples.unwrap_or(0);
        let mut meta = vec![
            ("database".to_owned(), "ptbxl".to_owned()),
            ("ecg_id".to_owned(), record.ecg_id.to_string()),
            ("patient".to_owned(), record.patient_id.to_string()),
            ("fold".to_owned(), record.strat_fold.to_string()),
            ("sex".to_owned(), record.sex.to_string()),
            ("samples".to_owned(), samples.to_string()),
        ];
        if let Some(age) = record.age {
            meta.push(("age".to_owned(), age.to_string()));
        }
        for (class, on) in SUPERCLASSES.iter().zip(record.superclasses) {
            meta.push(((*class).to_owned(), if on { "1" } else { "0" }.to_owned()));
        }
        let stream = ptbxl_stream(&record);
        Ok(Box::new(RecordStream::new(
            stream,
            reader,
            fs,
            leads,
            Vec::new(),
            meta,
            self.chunk_size,
        )))
    }
}

/// The names of a reader's selected leads, and its sampling rate.
fn selected_leads(reader: &RecordReader) -> (Vec<String>, f64) {
    let header = reader.header();
    let leads = reader
        .selected()
        .iter()
        .map(|&i| header.signals[i].description.clone())
        .collect();
    (leads, header.fs)
}

/// The record filter of a beats source: `None` for every record in the table.
pub fn beat_records(spec: &str) -> anyhow::Result<Option<HashSet<String>>> {
    if spec.trim() == "all" {
        return Ok(None);
    }
    Ok(Some(record_set(spec)?.into_iter().collect()))
}

/// Beats from a `beats` Parquet table, one stream per record.
struct ParquetSource {
    path: PathBuf,
    records: Option<HashSet<String>>,
    /// The table, read once by the first worker that asks.
    table: std::sync::OnceLock<Result<BeatTable, String>>,
    /// Played live when paced (`speed` > 0): each beat when its window has ended.
    live: Option<Live>,
}

impl ParquetSource {
    fn table(&self) -> anyhow::Result<&BeatTable> {
        self.table
            .get_or_init(|| read_beats(&self.path, self.records.as_ref()).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

impl Source for ParquetSource {
    fn streams(&self) -> anyhow::Result<Vec<String>> {
        let table = self.table()?;
        if table.records.is_empty() {
            anyhow::bail!("{}: no beats of the selected records", self.path.display());
        }
        Ok(table.records.iter().map(|(r, _)| r.clone()).collect())
    }

    fn total_samples(&self) -> Option<u64> {
        self.table().ok().map(|t| t.len() as u64)
    }

    fn live(&self) -> Option<Live> {
        self.live
    }

    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>> {
        let table = self.table()?;
        let (record, beats) = table.records.get(index).context("no such record")?;
        let mut meta = vec![(
            "patient".to_owned(),
            beats.first().map_or(record.clone(), |b| b.patient.clone()),
        )];
        if let Some(db) = table.meta.get("ecgflow.database") {
            meta.push(("database".to_owned(), db.clone()));
        }
        Ok(Box::new(BeatReader {
            beats: beats.iter().map(|b| b.beat.clone()).collect::<Vec<_>>().into_iter(),
            meta,
        }))
    }
}

struct BeatReader {
    beats: std::vec::IntoIter<Beat>,
    meta: Vec<(String, String)>,
}

impl StreamReader for BeatReader {
    fn meta(&self) -> Vec<(String, String)> {
        self.meta.clone()
    }

    fn next(&mut self) -> anyhow::Result<Option<Body>> {
        Ok(self.beats.next().map(Body::Beat))
    }
}
