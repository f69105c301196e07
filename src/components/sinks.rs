//! Sink component types. Files are written under a temporary name and renamed when
//! complete, so a crash never leaves a half-written file under the final name.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use ecgflow_operators::{Beat, Chunk};
use serde_json::json;

use super::fields::{Default as D, FieldSpec as F};
use super::{no_check, same_fs, Built, ComponentSpec, Output, PortKind, Sink, SinkWriter};
use crate::atomic_file::AtomicFile;
use crate::config::Role;
use crate::message::Body;
use crate::parquet_out::{BeatsWriter, SignalWriter};

pub static SPECS: &[ComponentSpec] = &[
    ComponentSpec {
        type_name: "console",
        role: Role::Sink,
        summary: "Prints a summary table at the end of the run: per stream, the chunks, samples, detected \
                  R peaks, reference annotations and beats that reached it.",
        accepts: &[PortKind::Signal, PortKind::Beats],
        output: Output::None,
        fields: &[F::boolean("per_stream", true, "print one line per stream (otherwise only the totals)")],
        check: no_check,
        output_fs: same_fs,
        build: |p| Ok(Built::Sink(Arc::new(ConsoleSink { per_stream: p.bool("per_stream") }))),
    },
    ComponentSpec {
        type_name: "jsonl",
        role: Role::Sink,
        summary: "Writes one JSON object per line: `{\"kind\":\"chunk\",...}` for signal chunks (stream, \
                  start, fs, leads, len, rpeaks, annotations), `{\"kind\":\"beat\",...}` for beats (stream, \
                  sample, fs, leads, before, after, symbol, rr_prev, rr_next, rr_local) and \
                  `{\"kind\":\"end\",\"stream\":...}` when a stream ends. Samples are included on request.",
        accepts: &[PortKind::Signal, PortKind::Beats],
        output: Output::None,
        fields: &[
            F::string("path", D::Required, "output file; parent directories are created"),
            F::boolean("include_samples", false, "include `samples` (chunks) and `window` (beats)"),
        ],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            Ok(Built::Sink(Arc::new(JsonlSink { path: PathBuf::from(p.str("path")), include_samples: p.bool("include_samples") })))
        },
    },
    ComponentSpec {
        type_name: "parquet",
        role: Role::Sink,
        summary: "Writes an Apache Parquet file (Snappy) readable by pyarrow, pandas, polars or DuckDB. \
                  Beats: one row per beat (schema `beats`); signal: one row per chunk and lead (schema \
                  `signal`). Schemas are documented in docs/parquet.md.",
        accepts: &[PortKind::Signal, PortKind::Beats],
        output: Output::None,
        fields: &[
            F::string("path", D::Required, "output file; parent directories are created"),
            F::int("row_group_size", 1, 10_000_000, D::Int(65_536), "rows per Parquet row group"),
        ],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            Ok(Built::Sink(Arc::new(ParquetSink { path: PathBuf::from(p.str("path")), row_group_size: p.usize("row_group_size") })))
        },
    },
    ComponentSpec {
        type_name: "null",
        role: Role::Sink,
        summary: "Discards its input (for benchmarks and dry runs).",
        accepts: &[
            PortKind::Signal,
            PortKind::Beats,
            PortKind::Tensors,
            PortKind::Predictions,
            PortKind::Explanations,
            PortKind::Events,
        ],
        output: Output::None,
        fields: &[],
        check: no_check,
        output_fs: same_fs,
        build: |_| Ok(Built::Sink(Arc::new(NullSink))),
    },
];

#[derive(Default)]
struct StreamCounts {
    chunks: u64,
    samples: u64,
    rpeaks: u64,
    annotations: u64,
    beats: u64,
}

struct ConsoleSink {
    per_stream: bool,
}

impl Sink for ConsoleSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        Ok(Box::new(ConsoleWriter {
            per_stream: self.per_stream,
            streams: BTreeMap::new(),
        }))
    }
}

struct ConsoleWriter {
    per_stream: bool,
    streams: BTreeMap<String, StreamCounts>,
}

impl SinkWriter for ConsoleWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        let counts = self.streams.entry(body.stream().to_owned()).or_default();
        match body {
            Body::Chunk(c) => {
                counts.chunks += 1;
                counts.samples += c.len() as u64;
                counts.rpeaks += c.rpeaks.len() as u64;
                counts.annotations += c.annotations.len() as u64;
            }
            Body::Beat(_) => counts.beats += 1,
            Body::End { .. } => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        let mut total = StreamCounts::default();
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{:<16} {:>8} {:>12} {:>8} {:>8} {:>8}",
            "stream", "chunks", "samples", "rpeaks", "annots", "beats"
        )?;
        let line = |out: &mut dyn Write, name: &str, c: &StreamCounts| {
            writeln!(
                out,
                "{:<16} {:>8} {:>12} {:>8} {:>8} {:>8}",
                name, c.chunks, c.samples, c.rpeaks, c.annotations, c.beats
            )
        };
        for (name, c) in &self.streams {
            if self.per_stream {
                line(&mut out, name, c)?;
            }
            total.chunks += c.chunks;
            total.samples += c.samples;
            total.rpeaks += c.rpeaks;
            total.annotations += c.annotations;
            total.beats += c.beats;
        }
        line(&mut out, &format!("total ({})", self.streams.len()), &total)?;
        Ok(None)
    }
}

struct JsonlSink {
    path: PathBuf,
    include_samples: bool,
}

impl Sink for JsonlSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        let (file, handle) = AtomicFile::create(&self.path)?;
        Ok(Box::new(JsonlWriter {
            file,
            out: BufWriter::new(handle),
            include_samples: self.include_samples,
            rows: 0,
        }))
    }
}

struct JsonlWriter {
    file: AtomicFile,
    out: BufWriter<File>,
    include_samples: bool,
    rows: u64,
}

/// The JSON object written for a chunk.
pub fn chunk_json(c: &Chunk, include_samples: bool) -> serde_json::Value {
    let mut v = json!({
        "kind": "chunk",
        "stream": c.stream,
        "start": c.start,
        "fs": c.fs,
        "leads": c.leads,
        "len": c.len(),
        "rpeaks": c.rpeaks,
        "annotations": c.annotations.iter().map(|a| json!({"sample": a.sample, "symbol": a.symbol})).collect::<Vec<_>>(),
    });
    if include_samples {
        v["samples"] = json!(c.samples);
    }
    v
}

/// An f32 as the f64 with the same shortest decimal form (0.8277778, not 0.8277778029441833).
fn short_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// The JSON object written for a beat.
pub fn beat_json(b: &Beat, include_samples: bool) -> serde_json::Value {
    let mut v = json!({
        "kind": "beat",
        "stream": b.stream,
        "sample": b.sample,
        "fs": b.fs,
        "leads": b.leads,
        "before": b.before,
        "after": b.after,
        "symbol": b.symbol,
        "rr_prev": b.rr_prev.map(short_f64),
        "rr_next": b.rr_next.map(short_f64),
        "rr_local": b.rr_local.map(short_f64),
    });
    if include_samples {
        v["window"] = json!(b.window);
    }
    v
}

impl SinkWriter for JsonlWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        let value = match body {
            Body::Chunk(c) => chunk_json(c, self.include_samples),
            Body::Beat(b) => beat_json(b, self.include_samples),
            Body::End { stream } => json!({"kind": "end", "stream": stream}),
        };
        serde_json::to_writer(&mut self.out, &value)?;
        self.out
            .write_all(b"\n")
            .with_context(|| format!("writing {}", self.file.path().display()))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        let JsonlWriter {
            file, out, rows, ..
        } = *self;
        let handle = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", file.path().display()))?;
        handle.sync_all()?;
        let line = format!("wrote {rows} lines to {}", file.path().display());
        file.commit()?;
        Ok(Some(line))
    }
}

struct ParquetSink {
    path: PathBuf,
    row_group_size: usize,
}

impl Sink for ParquetSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        Ok(Box::new(ParquetWriterState {
            path: self.path.clone(),
            row_group_size: self.row_group_size,
            writer: None,
        }))
    }
}

enum AnyParquet {
    Beats(BeatsWriter),
    Signal(SignalWriter),
}

/// Opens the writer on the first payload, whose kind decides the schema.
struct ParquetWriterState {
    path: PathBuf,
    row_group_size: usize,
    writer: Option<AnyParquet>,
}

impl SinkWriter for ParquetWriterState {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        match (body, &mut self.writer) {
            (Body::End { .. }, _) => Ok(()),
            (Body::Beat(b), None) => {
                let mut w = BeatsWriter::create(&self.path, b, self.row_group_size)?;
                w.push(b)?;
                self.writer = Some(AnyParquet::Beats(w));
                Ok(())
            }
            (Body::Chunk(c), None) => {
                let mut w = SignalWriter::create(&self.path, self.row_group_size)?;
                w.push(c)?;
                self.writer = Some(AnyParquet::Signal(w));
                Ok(())
            }
            (Body::Beat(b), Some(AnyParquet::Beats(w))) => w.push(b),
            (Body::Chunk(c), Some(AnyParquet::Signal(w))) => w.push(c),
            _ => bail!(
                "{}: a Parquet file holds either beats or signal chunks, not both",
                self.path.display()
            ),
        }
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        let rows = match self.writer {
            Some(AnyParquet::Beats(w)) => w.finish()?,
            Some(AnyParquet::Signal(w)) => w.finish()?,
            None => {
                return Ok(Some(format!(
                    "{}: nothing reached this sink; no file written",
                    self.path.display()
                )));
            }
        };
        Ok(Some(format!(
            "wrote {rows} rows to {}",
            self.path.display()
        )))
    }
}

struct NullSink;

impl Sink for NullSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        Ok(Box::new(NullSink))
    }
}

impl SinkWriter for NullSink {
    fn write(&mut self, _body: &Body) -> anyhow::Result<()> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}
