//! Parquet files of beats and of signal chunks. The schemas are documented in
//! `docs/parquet.md`; keep the two in step.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use arrow_array::builder::{
    FixedSizeListBuilder, Float32Builder, Float64Builder, ListBuilder, StringBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ecgflow_operators::{Beat, Chunk};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::atomic_file::AtomicFile;

/// Rows buffered before a record batch is handed to the Parquet writer.
const BATCH_ROWS: usize = 4096;

fn open_writer(
    path: &Path,
    schema: SchemaRef,
    row_group_size: usize,
) -> anyhow::Result<(AtomicFile, ArrowWriter<File>)> {
    let (file, handle) = AtomicFile::create(path)?;
    // Also as Parquet key/value metadata, for readers that ignore the Arrow schema.
    let kv = schema
        .metadata()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_size))
        .build();
    let writer = ArrowWriter::try_new(handle, schema, Some(props))
        .with_context(|| format!("creating {}", path.display()))?;
    Ok((file, writer))
}

fn metadata(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Writes beats, one row per beat: `stream` (utf8), `sample` (uint64, R-peak index),
/// `symbol` (utf8, nullable), `rr_prev`, `rr_next`, `rr_local` (float64 seconds, nullable),
/// `window` (fixed-size list of float32, lead-major, mV). Key/value metadata:
/// `ecgflow.schema` = `beats`, `ecgflow.fs`, `ecgflow.leads`, `ecgflow.before`, `ecgflow.after`.
pub struct BeatsWriter {
    file: AtomicFile,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    window_len: usize,
    fs: f64,
    stream: StringBuilder,
    sample: UInt64Builder,
    symbol: StringBuilder,
    rr_prev: Float64Builder,
    rr_next: Float64Builder,
    rr_local: Float64Builder,
    window: FixedSizeListBuilder<Float32Builder>,
    buffered: usize,
    rows: u64,
}

impl BeatsWriter {
    /// Creates the file with a schema fitted to `first` (window length, leads, rate).
    pub fn create(path: &Path, first: &Beat, row_group_size: usize) -> anyhow::Result<Self> {
        let window_len = first.window.len();
        let item = Field::new("item", DataType::Float32, false);
        let meta = metadata(&[
            ("ecgflow.schema", "beats".to_owned()),
            ("ecgflow.fs", first.fs.to_string()),
            ("ecgflow.leads", first.leads.join(",")),
            ("ecgflow.before", first.before.to_string()),
            ("ecgflow.after", first.after.to_string()),
            ("ecgflow.units", "mV".to_owned()),
        ]);
        let schema = Arc::new(Schema::new_with_metadata(
            vec![
                Field::new("stream", DataType::Utf8, false),
                Field::new("sample", DataType::UInt64, false),
                Field::new("symbol", DataType::Utf8, true),
                Field::new("rr_prev", DataType::Float64, true),
                Field::new("rr_next", DataType::Float64, true),
                Field::new("rr_local", DataType::Float64, true),
                Field::new(
                    "window",
                    DataType::FixedSizeList(Arc::new(item.clone()), window_len as i32),
                    false,
                ),
            ],
            meta,
        ));
        let (file, writer) = open_writer(path, schema.clone(), row_group_size)?;
        Ok(BeatsWriter {
            file,
            writer,
            schema,
            window_len,
            fs: first.fs,
            stream: StringBuilder::new(),
            sample: UInt64Builder::new(),
            symbol: StringBuilder::new(),
            rr_prev: Float64Builder::new(),
            rr_next: Float64Builder::new(),
            rr_local: Float64Builder::new(),
            window: FixedSizeListBuilder::new(Float32Builder::new(), window_len as i32)
                .with_field(item),
            buffered: 0,
            rows: 0,
        })
    }

    pub fn push(&mut self, beat: &Beat) -> anyhow::Result<()> {
        if beat.window.len() != self.window_len || beat.fs != self.fs {
            bail!(
                "{}: beat of stream {} at sample {} has a {}-sample window at {} Hz, but the file holds {}-sample windows at {} Hz",
                self.file.path().display(),
                beat.stream,
                beat.sample,
                beat.window.len(),
                beat.fs,
                self.window_len,
                self.fs
            );
        }
        self.stream.append_value(&beat.stream);
        self.sample.append_value(beat.sample);
        self.symbol.append_option(beat.symbol.as_deref());
        self.rr_prev.append_option(beat.rr_prev.map(f64::from));
        self.rr_next.append_option(beat.rr_next.map(f64::from));
        self.rr_local.append_option(beat.rr_local.map(f64::from));
        self.window.values().append_slice(&beat.window);
        self.window.append(true);
        self.buffered += 1;
        if self.buffered >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.stream.finish()),
            Arc::new(self.sample.finish()),
            Arc::new(self.symbol.finish()),
            Arc::new(self.rr_prev.finish()),
            Arc::new(self.rr_next.finish()),
            Arc::new(self.rr_local.finish()),
            Arc::new(self.window.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer
            .write(&batch)
            .with_context(|| format!("writing {}", self.file.path().display()))?;
        self.rows += self.buffered as u64;
        self.buffered = 0;
        Ok(())
    }

    /// Completes the file and moves it to its final name; returns the number of rows.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        self.flush()?;
        self.writer
            .close()
            .with_context(|| format!("closing {}", self.file.path().display()))?;
        self.file.commit()?;
        Ok(self.rows)
    }
}

/// Writes signal chunks, one row per chunk and lead: `stream` (utf8), `lead` (utf8),
/// `start` (uint64, index of the first sample), `fs` (float64, Hz), `samples` (list of
/// float32, mV), `rpeaks` (list of uint64, detected R peaks reported with this chunk; on the
/// first lead's row only). Key/value metadata: `ecgflow.schema` = `signal`.
pub struct SignalWriter {
    file: AtomicFile,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    stream: StringBuilder,
    lead: StringBuilder,
    start: UInt64Builder,
    fs: Float64Builder,
    samples: ListBuilder<Float32Builder>,
    rpeaks: ListBuilder<UInt64Builder>,
    buffered: usize,
    rows: u64,
}

impl SignalWriter {
    pub fn create(path: &Path, row_group_size: usize) -> anyhow::Result<Self> {
        let sample_item = Field::new("item", DataType::Float32, false);
        let peak_item = Field::new("item", DataType::UInt64, false);
        let meta = metadata(&[
            ("ecgflow.schema", "signal".to_owned()),
            ("ecgflow.units", "mV".to_owned()),
        ]);
        let schema = Arc::new(Schema::new_with_metadata(
            vec![
                Field::new("stream", DataType::Utf8, false),
                Field::new("lead", DataType::Utf8, false),
                Field::new("start", DataType::UInt64, false),
                Field::new("fs", DataType::Float64, false),
                Field::new(
                    "samples",
                    DataType::List(Arc::new(sample_item.clone())),
                    false,
                ),
                Field::new("rpeaks", DataType::List(Arc::new(peak_item.clone())), false),
            ],
            meta,
        ));
        let (file, writer) = open_writer(path, schema.clone(), row_group_size)?;
        Ok(SignalWriter {
            file,
            writer,
            schema,
            stream: StringBuilder::new(),
            lead: StringBuilder::new(),
            start: UInt64Builder::new(),
            fs: Float64Builder::new(),
            samples: ListBuilder::new(Float32Builder::new()).with_field(sample_item),
            rpeaks: ListBuilder::new(UInt64Builder::new()).with_field(peak_item),
            buffered: 0,
            rows: 0,
        })
    }

    pub fn push(&mut self, chunk: &Chunk) -> anyhow::Result<()> {
        for (i, (lead, samples)) in chunk.leads.iter().zip(&chunk.samples).enumerate() {
            self.stream.append_value(&chunk.stream);
            self.lead.append_value(lead);
            self.start.append_value(chunk.start);
            self.fs.append_value(chunk.fs);
            self.samples.values().append_slice(samples);
            self.samples.append(true);
            if i == 0 {
                self.rpeaks.values().append_slice(&chunk.rpeaks);
            }
            self.rpeaks.append(true);
            self.buffered += 1;
        }
        if self.buffered >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.stream.finish()),
            Arc::new(self.lead.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.fs.finish()),
            Arc::new(self.samples.finish()),
            Arc::new(self.rpeaks.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer
            .write(&batch)
            .with_context(|| format!("writing {}", self.file.path().display()))?;
        self.rows += self.buffered as u64;
        self.buffered = 0;
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<u64> {
        self.flush()?;
        self.writer
            .close()
            .with_context(|| format!("closing {}", self.file.path().display()))?;
        self.file.commit()?;
        Ok(self.rows)
    }
}
