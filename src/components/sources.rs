//! Source component types.

use std::sync::Arc;

use anyhow::Context;
use std::path::PathBuf;

use ecgflow_datasets::annotations::{is_beat, read_annotations};
use ecgflow_datasets::mitdb::record_set;
use ecgflow_datasets::wfdb::{Header, RecordReader};
use ecgflow_operators::synthetic::{SyntheticConfig, SyntheticEcg};
use ecgflow_operators::{Annotation, Chunk};

use super::fields::{Default as D, FieldSpec as F};
use super::{
    no_check, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Source, StreamReader,
    Upstream,
};
use crate::config::Role;

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
    ],
    check: no_check,
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
];

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
    })))
}

/// The `synthetic` source.
pub struct SyntheticSource {
    pub config: SyntheticConfig,
    pub streams: usize,
    pub chunk_size: usize,
}

impl Source for SyntheticSource {
    fn streams(&self) -> anyhow::Result<Vec<String>> {
        Ok((0..self.streams).map(SyntheticEcg::stream_name).collect())
    }

    fn total_samples(&self) -> Option<u64> {
        let per_stream = (self.config.duration_s * self.config.fs).round() as u64;
        Some(per_stream * self.streams as u64)
    }

    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>> {
        let ecg = SyntheticEcg::new(&self.config, index)
            .with_context(|| format!("synthetic stream {index}"))?;
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
    fn next_chunk(&mut self) -> anyhow::Result<Option<Chunk>> {
        Ok(self.ecg.next_chunk(self.chunk_size))
    }
}

fn check_wfdb(p: &Params, _: &Upstream) -> Vec<FieldProblem> {
    let source = WfdbSource::from_params(p);
    if !source.path.is_dir() {
        return vec![(
            "path".to_owned(),
            format!(
                "{} is not a directory (is ECGFLOW_DATA set?)",
                source.path.display()
            ),
        )];
    }
    let records = match source.records() {
        Ok(r) if r.is_empty() => {
            return vec![("records".to_owned(), "selects no record".to_owned())]
        }
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
            chunk_size: p.usize("chunk_size"),
        }
    }

    /// The record names, from the RECORDS file for `all` when there is one.
    fn records(&self) -> anyhow::Result<Vec<String>> {
        let listing = self.path.join("RECORDS");
        if self.records.trim() == "all" && listing.is_file() {
            let text = std::fs::read_to_string(&listing)
                .with_context(|| format!("reading {}", listing.display()))?;
            return Ok(text.split_whitespace().map(str::to_owned).collect());
        }
        Ok(record_set(&self.records)?)
    }
}

impl Source for WfdbSource {
    fn streams(&self) -> anyhow::Result<Vec<String>> {
        self.records()
    }

    fn total_samples(&self) -> Option<u64> {
        let mut total = 0;
        for record in self.records().ok()? {
            total += Header::read(&self.path.join(format!("{record}.hea")))
                .ok()?
                .n_samples?;
        }
        Some(total)
    }

    fn open(&self, index: usize) -> anyhow::Result<Box<dyn StreamReader>> {
        let records = self.records()?;
        let record = records.get(index).context("no such record")?.clone();
        let mut reader = RecordReader::open(&self.path, &record)?;
        if !self.leads.is_empty() {
            let names: Vec<&str> = self.leads.iter().map(String::as_str).collect();
            reader.select_by_name(&names)?;
        }
        let header = reader.header();
        let leads = reader
            .selected()
            .iter()
            .map(|&i| header.signals[i].description.clone())
            .collect();
        let fs = header.fs;
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
        Ok(Box::new(WfdbReader {
            record,
            reader,
            fs,
            leads,
            annotations,
            next_annotation: 0,
            position: 0,
            chunk_size: self.chunk_size,
        }))
    }
}

struct WfdbReader {
    record: String,
    reader: RecordReader,
    fs: f64,
    leads: Vec<String>,
    annotations: Vec<Annotation>,
    next_annotation: usize,
    position: u64,
    chunk_size: usize,
}

impl StreamReader for WfdbReader {
    fn next_chunk(&mut self) -> anyhow::Result<Option<Chunk>> {
        let Some(samples) = self.reader.read_chunk(self.chunk_size)? else {
            return Ok(None);
        };
        let mut chunk = Chunk::new(
            self.record.clone(),
            self.fs,
            self.position,
            self.leads.clone(),
            samples,
        );
        let end = chunk.end();
        while let Some(a) = self
            .annotations
            .get(self.next_annotation)
            .filter(|a| a.sample < end)
        {
            chunk.annotations.push(a.clone());
            self.next_annotation += 1;
        }
        self.position = end;
        Ok(Some(chunk))
    }
}
