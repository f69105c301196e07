//! Parquet tables: beats, signal chunks and whole PTB-XL-style records (`ecgs`). The
//! schemas are documented in `docs/parquet.md`; keep the two in step.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use arrow_array::builder::{
    BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, UInt64Builder,
};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ecgflow_datasets::mitdb::LabelMap;
use ecgflow_datasets::ptbxl::SUPERCLASSES;
use ecgflow_operators::explain::Subject;
use ecgflow_operators::{Beat, Chunk, Tensor};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::atomic_file::AtomicFile;
use crate::message::{meta_value, Body};

/// Rows buffered before a record batch is handed to the Parquet writer.
const BATCH_ROWS: usize = 4096;

/// Builds the rows of one table kind from payloads.
pub trait Rows {
    fn schema(&self) -> SchemaRef;
    /// Adds the rows this payload makes (`meta` is its stream's metadata).
    fn push(&mut self, body: &Body, meta: &[(String, String)]) -> anyhow::Result<()>;
    /// Rows added since the last batch.
    fn pending(&self) -> usize;
    /// The rows added since the last batch, as a record batch.
    fn take_batch(&mut self) -> anyhow::Result<RecordBatch>;
}

/// One Parquet file being written: under a temporary name until [`ParquetTable::finish`].
pub struct ParquetTable {
    file: AtomicFile,
    writer: ArrowWriter<File>,
    rows: Box<dyn Rows>,
    row_group_size: usize,
    written: u64,
}

impl ParquetTable {
    pub fn create(path: &Path, rows: Box<dyn Rows>, row_group_size: usize) -> anyhow::Result<Self> {
        let (file, handle) = AtomicFile::create(path)?;
        let writer = arrow_writer(handle, rows.schema(), row_group_size, path)?;
        Ok(ParquetTable {
            file,
            writer,
            rows,
            row_group_size,
            written: 0,
        })
    }

    pub fn push(&mut self, body: &Body, meta: &[(String, String)]) -> anyhow::Result<()> {
        self.rows
            .push(body, meta)
            .with_context(|| self.file.path().display().to_string())?;
        if self.rows.pending() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows.pending() == 0 {
            return Ok(());
        }
        let batch = self.rows.take_batch()?;
        self.writer
            .write(&batch)
            .with_context(|| format!("writing {}", self.file.path().display()))?;
        self.written += batch.num_rows() as u64;
        Ok(())
    }

    /// Completes the file and gives it its final name, leaving out the rows of `drop_streams`
    /// (streams that failed after some of their rows were written). Returns the row count.
    pub fn finish(mut self, drop_streams: &HashSet<String>) -> anyhow::Result<u64> {
        self.flush()?;
        let path = self.file.path().to_owned();
        self.writer
            .close()
            .with_context(|| format!("closing {}", path.display()))?;
        if drop_streams.is_empty() {
            self.file.commit()?;
            return Ok(self.written);
        }
        // Rare path: copy the temporary file without the failed streams' rows.
        let source = File::open(self.file.tmp_path()).with_context(|| format!("reopening {}", path.display()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(source)?.build()?;
        let (file, handle) = AtomicFile::create_with_suffix(&path, ".filtered")?;
        let mut writer = arrow_writer(handle, self.rows.schema(), self.row_group_size, &path)?;
        let mut kept = 0;
        for batch in reader {
            let batch = batch?;
            let column = batch.column_by_name("record").context("table has no record column")?;
            let records = column
                .as_any()
                .downcast_ref::<StringArray>()
                .context("record column is not text")?;
            let keep: BooleanArray = records
                .iter()
                .map(|r| Some(!r.is_some_and(|r| drop_streams.contains(r))))
                .collect();
            let filtered = arrow_select::filter::filter_record_batch(&batch, &keep)?;
            kept += filtered.num_rows() as u64;
            writer.write(&filtered)?;
        }
        writer.close()?;
        file.commit()?;
        Ok(kept)
    }
}

fn arrow_writer(
    handle: File,
    schema: SchemaRef,
    row_group_size: usize,
    path: &Path,
) -> anyhow::Result<ArrowWriter<File>> {
    // The metadata also goes in Parquet's key/value metadata, for readers that ignore Arrow's.
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
    ArrowWriter::try_new(handle, schema, Some(props)).with_context(|| format!("creating {}", path.display()))
}

fn schema_with(fields: Vec<Field>, pairs: Vec<(&str, String)>) -> SchemaRef {
    let meta: HashMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Arc::new(Schema::new_with_metadata(fields, meta))
}

fn float_item() -> Field {
    Field::new("item", DataType::Float32, false)
}

/// `beats`: one row per beat. Columns: `record` (utf8), `patient` (utf8), `lead` (utf8,
/// the window's lead names, comma-separated), `sample` (uint64,
/// R-peak index), `symbol` (utf8, nullable: the reference annotation), `aami` (utf8,
/// nullable: N, S, V, F or Q), `label` (int32, nullable: class index in the chosen label
/// map), `rr_prev`, `rr_next`, `rr_local`, `rr_mean`, `rr_irregularity` (float32 seconds,
/// nullable), `window`
/// (fixed-size list of float32, lead-major, mV), `template` (the same, nullable: the
/// stream's typical beat before this one).
pub struct BeatRows {
    schema: SchemaRef,
    labels: LabelMap,
    aami: LabelMap,
    window_len: usize,
    fs: f64,
    record: StringBuilder,
    patient: StringBuilder,
    lead: StringBuilder,
    sample: UInt64Builder,
    symbol: StringBuilder,
    aami_col: StringBuilder,
    label: Int32Builder,
    rr_prev: Float32Builder,
    rr_next: Float32Builder,
    rr_local: Float32Builder,
    rr_mean: Float32Builder,
    rr_irregularity: Float32Builder,
    window: FixedSizeListBuilder<Float32Builder>,
    template: FixedSizeListBuilder<Float32Builder>,
    pending: usize,
}

impl BeatRows {
    /// A table fitted to `first` (window length, leads, rate), labelled with `labels`.
    pub fn new(first: &Beat, meta: &[(String, String)], labels: LabelMap) -> anyhow::Result<Self> {
        let window_len = first.window.len();
        let schema = schema_with(
            vec![
                Field::new("record", DataType::Utf8, false),
                Field::new("patient", DataType::Utf8, false),
                Field::new("lead", DataType::Utf8, false),
                Field::new("sample", DataType::UInt64, false),
                Field::new("symbol", DataType::Utf8, true),
                Field::new("aami", DataType::Utf8, true),
                Field::new("label", DataType::Int32, true),
                Field::new("rr_prev", DataType::Float32, true),
                Field::new("rr_next", DataType::Float32, true),
                Field::new("rr_local", DataType::Float32, true),
                Field::new("rr_mean", DataType::Float32, true),
                Field::new("rr_irregularity", DataType::Float32, true),
                Field::new(
                    "window",
                    DataType::FixedSizeList(Arc::new(float_item()), window_len as i32),
                    false,
                ),
                Field::new(
                    "template",
                    DataType::FixedSizeList(Arc::new(float_item()), window_len as i32),
                    true,
                ),
            ],
            vec![
                ("ecgflow.schema", "beats".to_owned()),
                ("ecgflow.fs", first.fs.to_string()),
                ("ecgflow.leads", first.leads.join(",")),
                ("ecgflow.before", first.before.to_string()),
                ("ecgflow.after", first.after.to_string()),
                ("ecgflow.units", "mV".to_owned()),
                (
                    "ecgflow.database",
                    meta_value(meta, "database").unwrap_or("unknown").to_owned(),
                ),
                ("ecgflow.label_map", labels.name().to_owned()),
                ("ecgflow.label_classes", labels.classes().join(",")),
            ],
        );
        Ok(BeatRows {
            schema,
            aami: LabelMap::builtin("aami")?,
            labels,
            window_len,
            fs: first.fs,
            record: StringBuilder::new(),
            patient: StringBuilder::new(),
            lead: StringBuilder::new(),
            sample: UInt64Builder::new(),
            symbol: StringBuilder::new(),
            aami_col: StringBuilder::new(),
            label: Int32Builder::new(),
            rr_prev: Float32Builder::new(),
            rr_next: Float32Builder::new(),
            rr_local: Float32Builder::new(),
            rr_mean: Float32Builder::new(),
            rr_irregularity: Float32Builder::new(),
            window: FixedSizeListBuilder::new(Float32Builder::new(), window_len as i32).with_field(float_item()),
            template: FixedSizeListBuilder::new(Float32Builder::new(), window_len as i32).with_field(float_item()),
            pending: 0,
        })
    }
}

impl Rows for BeatRows {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn push(&mut self, body: &Body, meta: &[(String, String)]) -> anyhow::Result<()> {
        let Body::Beat(beat) = body else {
            return Ok(());
        };
        if beat.window.len() != self.window_len || beat.fs != self.fs {
            bail!(
                "beat of stream {} at sample {} has a {}-sample window at {} Hz, but the file holds {}-sample windows at {} Hz",
                beat.stream,
                beat.sample,
                beat.window.len(),
                beat.fs,
                self.window_len,
                self.fs
            );
        }
        let symbol = beat.symbol.as_deref();
        self.record.append_value(&beat.stream);
        self.patient
            .append_value(meta_value(meta, "patient").unwrap_or(&beat.stream));
        self.lead.append_value(beat.leads.join(","));
        self.sample.append_value(beat.sample);
        self.symbol.append_option(symbol);
        let aami = symbol
            .and_then(|s| self.aami.class_of(s))
            .map(|c| self.aami.classes()[c].clone());
        self.aami_col.append_option(aami);
        self.label
            .append_option(symbol.and_then(|s| self.labels.class_of(s)).map(|c| c as i32));
        self.rr_prev.append_option(beat.rr_prev);
        self.rr_next.append_option(beat.rr_next);
        self.rr_local.append_option(beat.rr_local);
        self.rr_mean.append_option(beat.rr_mean);
        self.rr_irregularity.append_option(beat.rr_irregularity);
        self.window.values().append_slice(&beat.window);
        self.window.append(true);
        match beat.template.as_deref().filter(|t| t.len() == self.window_len) {
            Some(template) => self.template.values().append_slice(template),
            // A null list still holds its (ignored) values.
            None => self.template.values().append_value_n(0.0, self.window_len),
        }
        self.template.append(beat.template.is_some());
        self.pending += 1;
        Ok(())
    }

    fn pending(&self) -> usize {
        self.pending
    }

    fn take_batch(&mut self) -> anyhow::Result<RecordBatch> {
        self.pending = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.record.finish()),
            Arc::new(self.patient.finish()),
            Arc::new(self.lead.finish()),
            Arc::new(self.sample.finish()),
            Arc::new(self.symbol.finish()),
            Arc::new(self.aami_col.finish()),
            Arc::new(self.label.finish()),
            Arc::new(self.rr_prev.finish()),
            Arc::new(self.rr_next.finish()),
            Arc::new(self.rr_local.finish()),
            Arc::new(self.rr_mean.finish()),
            Arc::new(self.rr_irregularity.finish()),
            Arc::new(self.window.finish()),
            Arc::new(self.template.finish()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `signal`: one row per chunk and lead. Columns: `record` (utf8), `lead` (utf8), `start`
/// (uint64, index of the chunk's first sample), `fs` (float64, Hz), `samples` (list of
/// float32, mV), `rpeaks` (list of uint64: R peaks reported with this chunk, on the first
/// lead's row only).
pub struct SignalRows {
    schema: SchemaRef,
    record: StringBuilder,
    lead: StringBuilder,
    start: UInt64Builder,
    fs: Float64Builder,
    samples: ListBuilder<Float32Builder>,
    rpeaks: ListBuilder<UInt64Builder>,
    pending: usize,
}

impl SignalRows {
    pub fn new(meta: &[(String, String)]) -> Self {
        let peak_item = Field::new("item", DataType::UInt64, false);
        let schema = schema_with(
            vec![
                Field::new("record", DataType::Utf8, false),
                Field::new("lead", DataType::Utf8, false),
                Field::new("start", DataType::UInt64, false),
                Field::new("fs", DataType::Float64, false),
                Field::new("samples", DataType::List(Arc::new(float_item())), false),
                Field::new("rpeaks", DataType::List(Arc::new(peak_item.clone())), false),
            ],
            vec![
                ("ecgflow.schema", "signal".to_owned()),
                ("ecgflow.units", "mV".to_owned()),
                (
                    "ecgflow.database",
                    meta_value(meta, "database").unwrap_or("unknown").to_owned(),
                ),
            ],
        );
        SignalRows {
            schema,
            record: StringBuilder::new(),
            lead: StringBuilder::new(),
            start: UInt64Builder::new(),
            fs: Float64Builder::new(),
            samples: ListBuilder::new(Float32Builder::new()).with_field(float_item()),
            rpeaks: ListBuilder::new(UInt64Builder::new()).with_field(peak_item),
            pending: 0,
        }
    }
}

impl Rows for SignalRows {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn push(&mut self, body: &Body, _meta: &[(String, String)]) -> anyhow::Result<()> {
        let Body::Chunk(chunk) = body else {
            return Ok(());
        };
        for (i, (lead, samples)) in chunk.leads.iter().zip(&chunk.samples).enumerate() {
            self.record.append_value(&chunk.stream);
            self.lead.append_value(lead);
            self.start.append_value(chunk.start);
            self.fs.append_value(chunk.fs);
            self.samples.values().append_slice(samples);
            self.samples.append(true);
            if i == 0 {
                self.rpeaks.values().append_slice(&chunk.rpeaks);
            }
            self.rpeaks.append(true);
            self.pending += 1;
        }
        Ok(())
    }

    fn pending(&self) -> usize {
        self.pending
    }

    fn take_batch(&mut self) -> anyhow::Result<RecordBatch> {
        self.pending = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.record.finish()),
            Arc::new(self.lead.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.fs.finish()),
            Arc::new(self.samples.finish()),
            Arc::new(self.rpeaks.finish()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `ecgs`: one row per record (stream), for PTB-XL. Columns: `record` (utf8), `ecg_id`
/// (int64), `patient` (utf8), `fold` (int32), `age` (float32, nullable), `sex` (int32:
/// 0 male, 1 female, as PTB-XL), `NORM`, `MI`, `STTC`, `CD`, `HYP` (bool: diagnostic
/// superclasses), `signal` (fixed-size list of `leads` fixed-size lists of `samples`
/// float32, mV). Every record must have the leads and length of the first.
pub struct EcgRows {
    schema: SchemaRef,
    leads: Vec<String>,
    samples: usize,
    /// Each open stream's samples per lead, until it ends (streams may interleave).
    open: HashMap<String, Vec<Vec<f32>>>,
    record: StringBuilder,
    ecg_id: Int64Builder,
    patient: StringBuilder,
    fold: Int32Builder,
    age: Float32Builder,
    sex: Int32Builder,
    classes: Vec<BooleanBuilder>,
    signal: FixedSizeListBuilder<FixedSizeListBuilder<Float32Builder>>,
    pending: usize,
}

impl EcgRows {
    /// A table fitted to the first record: its leads and its length (`samples` per lead).
    pub fn new(first: &Chunk, samples: usize, meta: &[(String, String)]) -> Self {
        let n_leads = first.leads.len();
        let lead_type = DataType::FixedSizeList(Arc::new(float_item()), samples as i32);
        let lead_field = Field::new("item", lead_type, false);
        let mut fields = vec![
            Field::new("record", DataType::Utf8, false),
            Field::new("ecg_id", DataType::Int64, true),
            Field::new("patient", DataType::Utf8, false),
            Field::new("fold", DataType::Int32, true),
            Field::new("age", DataType::Float32, true),
            Field::new("sex", DataType::Int32, true),
        ];
        fields.extend(SUPERCLASSES.iter().map(|c| Field::new(*c, DataType::Boolean, true)));
        fields.push(Field::new(
            "signal",
            DataType::FixedSizeList(Arc::new(lead_field.clone()), n_leads as i32),
            false,
        ));
        let schema = schema_with(
            fields,
            vec![
                ("ecgflow.schema", "ecgs".to_owned()),
                ("ecgflow.fs", first.fs.to_string()),
                ("ecgflow.leads", first.leads.join(",")),
                ("ecgflow.samples", samples.to_string()),
                ("ecgflow.units", "mV".to_owned()),
                (
                    "ecgflow.database",
                    meta_value(meta, "database").unwrap_or("unknown").to_owned(),
                ),
            ],
        );
        let inner = FixedSizeListBuilder::new(Float32Builder::new(), samples as i32).with_field(float_item());
        EcgRows {
            schema,
            leads: first.leads.clone(),
            samples,
            open: HashMap::new(),
            record: StringBuilder::new(),
            ecg_id: Int64Builder::new(),
            patient: StringBuilder::new(),
            fold: Int32Builder::new(),
            age: Float32Builder::new(),
            sex: Int32Builder::new(),
            classes: SUPERCLASSES.iter().map(|_| BooleanBuilder::new()).collect(),
            signal: FixedSizeListBuilder::new(inner, n_leads as i32).with_field(lead_field),
            pending: 0,
        }
    }
}

impl Rows for EcgRows {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn push(&mut self, body: &Body, meta: &[(String, String)]) -> anyhow::Result<()> {
        match body {
            Body::Chunk(chunk) => {
                if chunk.leads != self.leads {
                    bail!(
                        "record {} has leads {:?}; the table holds {:?}",
                        chunk.stream,
                        chunk.leads,
                        self.leads
                    );
                }
                let buffers = self
                    .open
                    .entry(chunk.stream.clone())
                    .or_insert_with(|| vec![Vec::new(); chunk.leads.len()]);
                for (buffer, samples) in buffers.iter_mut().zip(&chunk.samples) {
                    buffer.extend_from_slice(samples);
                }
                Ok(())
            }
            Body::End { stream } => {
                let Some(buffers) = self.open.remove(stream) else {
                    return Ok(());
                };
                let record = stream;
                let len = buffers.first().map_or(0, Vec::len);
                if len != self.samples {
                    bail!(
                        "record {record} has {len} samples per lead; the table holds records of {}",
                        self.samples
                    );
                }
                let number = |key: &str| meta_value(meta, key).and_then(|v| v.parse::<f64>().ok());
                self.record.append_value(record);
                self.ecg_id.append_option(number("ecg_id").map(|v| v as i64));
                self.patient.append_value(meta_value(meta, "patient").unwrap_or(record));
                self.fold.append_option(number("fold").map(|v| v as i32));
                self.age.append_option(number("age").map(|v| v as f32));
                self.sex.append_option(number("sex").map(|v| v as i32));
                for (builder, class) in self.classes.iter_mut().zip(SUPERCLASSES) {
                    builder.append_option(meta_value(meta, class).map(|v| v == "1"));
                }
                for lead in &buffers {
                    self.signal.values().values().append_slice(lead);
                    self.signal.values().append(true);
                }
                self.signal.append(true);
                self.pending += 1;
                Ok(())
            }
            Body::Abort { stream, .. } => {
                self.open.remove(stream);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn pending(&self) -> usize {
        self.pending
    }

    fn take_batch(&mut self) -> anyhow::Result<RecordBatch> {
        self.pending = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.record.finish()),
            Arc::new(self.ecg_id.finish()),
            Arc::new(self.patient.finish()),
            Arc::new(self.fold.finish()),
            Arc::new(self.age.finish()),
            Arc::new(self.sex.finish()),
        ];
        columns.extend(self.classes.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        columns.push(Arc::new(self.signal.finish()));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `tensors`: one row per tensor. Columns: `record` (utf8), `sample` (uint64, nullable: the
/// beat's R peak), `symbol` (utf8, nullable), `data` (fixed-size list of float32, row-major).
/// The shape, the same for every row, is in the metadata `ecgflow.shape` (e.g. `1,38,259`).
pub struct TensorRows {
    schema: SchemaRef,
    shape: Vec<usize>,
    record: StringBuilder,
    sample: UInt64Builder,
    symbol: StringBuilder,
    data: FixedSizeListBuilder<Float32Builder>,
    pending: usize,
}

impl TensorRows {
    pub fn new(first: &Tensor, meta: &[(String, String)]) -> Self {
        let size = first.data.len();
        let shape: Vec<String> = first.shape.iter().map(usize::to_string).collect();
        let schema = schema_with(
            vec![
                Field::new("record", DataType::Utf8, false),
                Field::new("sample", DataType::UInt64, true),
                Field::new("symbol", DataType::Utf8, true),
                Field::new(
                    "data",
                    DataType::FixedSizeList(Arc::new(float_item()), size as i32),
                    false,
                ),
            ],
            vec![
                ("ecgflow.schema", "tensors".to_owned()),
                ("ecgflow.shape", shape.join(",")),
                (
                    "ecgflow.database",
                    meta_value(meta, "database").unwrap_or("unknown").to_owned(),
                ),
            ],
        );
        TensorRows {
            schema,
            shape: first.shape.clone(),
            record: StringBuilder::new(),
            sample: UInt64Builder::new(),
            symbol: StringBuilder::new(),
            data: FixedSizeListBuilder::new(Float32Builder::new(), size as i32).with_field(float_item()),
            pending: 0,
        }
    }
}

impl Rows for TensorRows {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn push(&mut self, body: &Body, _meta: &[(String, String)]) -> anyhow::Result<()> {
        let Body::Tensor(t) = body else { return Ok(()) };
        if t.shape != self.shape || t.data.len() != self.shape.iter().product::<usize>() {
            bail!(
                "tensor of stream {} has shape {:?}; the table holds {:?}",
                t.stream,
                t.shape,
                self.shape
            );
        }
        self.record.append_value(&t.stream);
        self.sample.append_option(t.sample);
        self.symbol.append_option(t.symbol.as_deref());
        self.data.values().append_slice(&t.data);
        self.data.append(true);
        self.pending += 1;
        Ok(())
    }

    fn pending(&self) -> usize {
        self.pending
    }

    fn take_batch(&mut self) -> anyhow::Result<RecordBatch> {
        self.pending = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.record.finish()),
            Arc::new(self.sample.finish()),
            Arc::new(self.symbol.finish()),
            Arc::new(self.data.finish()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Schema `explanations`, one row per explained beat or record: `record` (utf8), `sample`
/// (uint64, the R peak; null for a whole record), `symbol` (utf8, nullable), `model`,
/// `version` (utf8, nullable: the prediction's), `predicted`, `decided_by` (utf8, nullable), `method`
/// (utf8), `explained_class` (utf8), `probability` (float32), `base_value`, `fit_r2`
/// (float32, nullable), `window` (list of float32: the beat's first lead in mV, or the
/// record's network input, its image row after row or its leads one after the other) and
/// `attribution` (list of float32, one per value of `window`).
pub struct ExplanationRows {
    schema: SchemaRef,
    record: StringBuilder,
    sample: UInt64Builder,
    symbol: StringBuilder,
    model: StringBuilder,
    version: StringBuilder,
    predicted: StringBuilder,
    decided_by: StringBuilder,
    method: StringBuilder,
    class: StringBuilder,
    probability: Float32Builder,
    base_value: Float32Builder,
    fit_r2: Float32Builder,
    window: ListBuilder<Float32Builder>,
    attribution: ListBuilder<Float32Builder>,
    pending: usize,
}

impl ExplanationRows {
    pub fn new(meta: &[(String, String)]) -> Self {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let float = |name: &str, nullable: bool| Field::new(name, DataType::Float32, nullable);
        let list = |name: &str| Field::new(name, DataType::List(Arc::new(float_item())), false);
        let schema = schema_with(
            vec![
                text("record", false),
                Field::new("sample", DataType::UInt64, true),
                text("symbol", true),
                text("model", true),
                text("version", true),
                text("predicted", true),
                text("decided_by", true),
                text("method", false),
                text("explained_class", false),
                float("probability", false),
                float("base_value", true),
                float("fit_r2", true),
                list("window"),
                list("attribution"),
            ],
            vec![
                ("ecgflow.schema", "explanations".to_owned()),
                (
                    "ecgflow.database",
                    meta_value(meta, "database").unwrap_or("unknown").to_owned(),
                ),
            ],
        );
        let floats = || ListBuilder::new(Float32Builder::new()).with_field(float_item());
        ExplanationRows {
            schema,
            record: StringBuilder::new(),
            sample: UInt64Builder::new(),
            symbol: StringBuilder::new(),
            model: StringBuilder::new(),
            version: StringBuilder::new(),
            predicted: StringBuilder::new(),
            decided_by: StringBuilder::new(),
            method: StringBuilder::new(),
            class: StringBuilder::new(),
            probability: Float32Builder::new(),
            base_value: Float32Builder::new(),
            fit_r2: Float32Builder::new(),
            window: floats(),
            attribution: floats(),
            pending: 0,
        }
    }
}

impl Rows for ExplanationRows {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn push(&mut self, body: &Body, _meta: &[(String, String)]) -> anyhow::Result<()> {
        let Body::Explanation(e) = body else { return Ok(()) };
        let a = &e.attribution;
        let prediction = e.prediction();
        self.record.append_value(e.stream());
        let beat = e.beat();
        self.sample.append_option(beat.map(|b| b.sample));
        self.symbol.append_option(beat.and_then(|b| b.symbol.as_deref()));
        self.model.append_option(prediction.map(|p| &p.model));
        self.version.append_option(prediction.map(|p| &p.version));
        self.predicted.append_option(prediction.map(|p| &p.class));
        self.decided_by.append_option(prediction.map(|p| p.decided_by.name()));
        self.method.append_value(&a.method);
        self.class.append_value(&e.class_name);
        self.probability.append_value(a.probability);
        self.base_value.append_option(a.base_value);
        self.fit_r2.append_option(a.fit_r2);
        let window = match &e.subject {
            Subject::Beat(b) => &b.window[..(b.before + 1 + b.after).min(b.window.len())],
            Subject::Image(t) | Subject::Leads { tensor: t, .. } => &t.data[..],
        };
        self.window.values().append_slice(window);
        self.window.append(true);
        self.attribution.values().append_slice(&a.per_sample);
        self.attribution.append(true);
        self.pending += 1;
        Ok(())
    }

    fn pending(&self) -> usize {
        self.pending
    }

    fn take_batch(&mut self) -> anyhow::Result<RecordBatch> {
        self.pending = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.record.finish()),
            Arc::new(self.sample.finish()),
            Arc::new(self.symbol.finish()),
            Arc::new(self.model.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.predicted.finish()),
            Arc::new(self.decided_by.finish()),
            Arc::new(self.method.finish()),
            Arc::new(self.class.finish()),
            Arc::new(self.probability.finish()),
            Arc::new(self.base_value.finish()),
            Arc::new(self.fit_r2.finish()),
            Arc::new(self.window.finish()),
            Arc::new(self.attribution.finish()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
