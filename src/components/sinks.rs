//! Sink component types. Files are written under a temporary name and renamed when
//! complete, so a crash never leaves a half-written file under the final name. A stream
//! that fails (`Abort`) is left out of every file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ecgflow_datasets::mitdb::LabelMap;
use ecgflow_operators::explain::{Explanation, Subject};
use ecgflow_operators::{Beat, Chunk, Event, Prediction, Tensor};
use serde_json::json;

use super::fields::{Default as D, FieldSpec as F};
use super::{
    no_check, same_fs, Built, ComponentSpec, FieldProblem, Output, Params, PortKind, Sink, SinkWriter, Upstream,
};
use crate::atomic_file::AtomicFile;
use crate::config::Role;
use crate::message::Body;
use crate::parquet_out::{BeatRows, EcgRows, ExplanationRows, ParquetTable, Rows, SignalRows, TensorRows};

pub static SPECS: &[ComponentSpec] = &[
    ComponentSpec {
        type_name: "console",
        role: Role::Sink,
        summary: "Prints a summary table at the end of the run: per stream, the chunks, samples, detected \
                  R peaks, reference annotations, beats, tensors, explanations and events that reached it.",
        accepts: &[
            PortKind::Signal,
            PortKind::Beats,
            PortKind::Tensors,
            PortKind::Explanations,
            PortKind::Events,
        ],
        output: Output::None,
        fields: &[F::boolean(
            "per_stream",
            true,
            "print one line per stream (otherwise only the totals)",
        )],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            Ok(Built::Sink(Arc::new(ConsoleSink {
                per_stream: p.bool("per_stream"),
            })))
        },
    },
    ComponentSpec {
        type_name: "jsonl",
        role: Role::Sink,
        summary: "Writes one JSON object per line: `{\"kind\":\"start\",\"stream\",\"meta\"}` when a stream \
                  begins, `{\"kind\":\"chunk\",...}` for signal chunks (stream, start, fs, leads, len, rpeaks, \
                  annotations), `{\"kind\":\"beat\",...}` for beats (stream, sample, fs, leads, before, after, \
                  symbol, rr_prev, rr_next, rr_local, rr_mean, rr_irregularity, and once classified prediction: \
                  model, version, class, probabilities, decided_by, and labels from multi-label models), `{\"kind\":\"tensor\",...}` for tensors (stream, \
                  sample, shape, symbol), `{\"kind\":\"explanation\",...}` for explained beats (the beat's \
                  keys, then method, explained_class, probability, base_value, fit_r2, attribution: one value \
                  per window sample, and segments for SHAP and LIME), `{\"kind\":\"event\",...}` for alarms and \
                  stream events (stream, event, phase: start|end|instant, sample, fs, time_s, patient, ward, \
                  evidence) and `{\"kind\":\"end\",\"stream\"}` when it ends. Samples (and tensor values) \
                  are included on request.",
        accepts: &[
            PortKind::Signal,
            PortKind::Beats,
            PortKind::Tensors,
            PortKind::Explanations,
            PortKind::Events,
        ],
        output: Output::None,
        fields: &[
            F::string("path", D::Required, "output file; parent directories are created"),
            F::boolean(
                "include_samples",
                false,
                "include `samples` (chunks) and `window` (beats)",
            ),
        ],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            Ok(Built::Sink(Arc::new(JsonlSink {
                path: PathBuf::from(p.str("path")),
                include_samples: p.bool("include_samples"),
            })))
        },
    },
    ComponentSpec {
        type_name: "parquet",
        role: Role::Sink,
        summary: "Writes Apache Parquet (Snappy), readable by pyarrow, pandas, polars or DuckDB; schemas in \
                  docs/parquet.md. `beats`: one row per beat, labelled with a label map; `signal`: one row \
                  per chunk and lead; `ecgs`: one row per record with its 12 × N signal and PTB-XL metadata; \
                  `tensors`: one row per tensor (scalograms, images); `explanations`: one row per explained \
                  beat, with its window and the attribution of each sample. \
                  With `per_stream = true`, `path` is a directory holding one file per stream, each complete \
                  when it appears: a run started again skips the streams already written (resume).",
        accepts: &[
            PortKind::Signal,
            PortKind::Beats,
            PortKind::Tensors,
            PortKind::Explanations,
        ],
        output: Output::None,
        fields: &[
            F::string(
                "path",
                D::Required,
                "output file, or directory with per_stream; parent directories are created",
            ),
            F::choice(
                "schema",
                &["auto", "beats", "signal", "ecgs", "tensors", "explanations"],
                "auto",
                "table layout; auto = the table named after what arrives (beats, signal, tensors, explanations)",
            ),
            F::string(
                "label_map",
                D::Str("aami"),
                "beats: label map for the `label` column (aami, study6, raw, or a CSV file of symbol,class)",
            ),
            F::boolean(
                "per_stream",
                false,
                "write one file per stream into the directory `path` (resumable)",
            ),
            F::int(
                "row_group_size",
                1,
                10_000_000,
                D::Int(65_536),
                "rows per Parquet row group",
            ),
        ],
        check: check_parquet,
        output_fs: same_fs,
        build: |p| {
            Ok(Built::Sink(Arc::new(ParquetSink {
                path: PathBuf::from(p.str("path")),
                schema: p.str("schema").to_owned(),
                labels: label_map(p.str("label_map"))?,
                per_stream: p.bool("per_stream"),
                row_group_size: p.usize("row_group_size"),
            })))
        },
    },
    ComponentSpec {
        type_name: "png",
        role: Role::Sink,
        summary: "Writes PNG pictures a person can look at. Tensors become 8-bit grayscale pictures: \
                  DIR/STREAM.png for a record's image, DIR/STREAM_SAMPLE.png for a beat's; a tensor's last two \
                  dimensions are the picture, several leads stacked vertically, values scaled to the \
                  picture's own min..max (`scale = \"minmax\"`, for scalograms) or taken as 0..1 (`\"unit\"`, \
                  for images). Explanations become DIR/STREAM_SAMPLE_METHOD.png: the beat (mV against ms \
                  from the R peak) over its attribution, red where it pushed towards the explained class and \
                  blue where it pushed away, titled with the true symbol, the class explained and its \
                  probability.",
        accepts: &[PortKind::Tensors, PortKind::Explanations],
        output: Output::None,
        fields: &[
            F::string("path", D::Required, "output directory"),
            F::choice("scale", &["minmax", "unit"], "minmax", "how values map to gray levels"),
            F::int(
                "max_per_stream",
                0,
                i64::MAX,
                D::Int(20),
                "pictures written per stream at most (0: all)",
            ),
        ],
        check: no_check,
        output_fs: same_fs,
        build: |p| {
            Ok(Built::Sink(Arc::new(PngSink {
                dir: PathBuf::from(p.str("path")),
                minmax: p.str("scale") == "minmax",
                max_per_stream: p.usize("max_per_stream"),
            })))
        },
    },
    ComponentSpec {
        type_name: "null",
        role: Role::Sink,
        summary: "Discards its input (for benchmarks and dry runs).",
        accepts: PortKind::ALL,
        output: Output::None,
        fields: &[],
        check: no_check,
        output_fs: same_fs,
        build: |_| Ok(Built::Sink(Arc::new(NullSink))),
    },
];

/// A built-in label map by name, or one read from a CSV file.
pub fn label_map(name: &str) -> anyhow::Result<LabelMap> {
    if LabelMap::builtin_names().contains(&name) {
        Ok(LabelMap::builtin(name)?)
    } else {
        Ok(LabelMap::from_file(Path::new(name))?)
    }
}

fn check_parquet(p: &Params, _: &Upstream) -> Vec<FieldProblem> {
    match label_map(p.str("label_map")) {
        Ok(_) => Vec::new(),
        Err(e) => vec![(
            "label_map".to_owned(),
            format!("{e:#} (built-in maps: {})", LabelMap::builtin_names().join(", ")),
        )],
    }
}

#[derive(Default)]
struct StreamCounts {
    chunks: u64,
    samples: u64,
    rpeaks: u64,
    annotations: u64,
    beats: u64,
    tensors: u64,
    explanations: u64,
    events: u64,
    failed: bool,
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
            Body::Tensor(_) => counts.tensors += 1,
            Body::Explanation(_) => counts.explanations += 1,
            Body::Event(_) => counts.events += 1,
            Body::Abort { .. } => counts.failed = true,
            Body::Start { .. } | Body::End { .. } => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        let mut total = StreamCounts::default();
        let mut out = std::io::stdout().lock();
        let line = |out: &mut dyn Write, name: &str, c: &StreamCounts| {
            let note = if c.failed { "  failed, left out" } else { "" };
            writeln!(
                out,
                "{:<16} {:>8} {:>12} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}{note}",
                name, c.chunks, c.samples, c.rpeaks, c.annotations, c.beats, c.tensors, c.explanations, c.events
            )
        };
        writeln!(
            out,
            "{:<16} {:>8} {:>12} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
            "stream", "chunks", "samples", "rpeaks", "annots", "beats", "tensors", "explained", "events"
        )?;
        for (name, c) in &self.streams {
            if self.per_stream {
                line(&mut out, name, c)?;
            }
            total.chunks += c.chunks;
            total.samples += c.samples;
            total.rpeaks += c.rpeaks;
            total.annotations += c.annotations;
            total.beats += c.beats;
            total.tensors += c.tensors;
            total.explanations += c.explanations;
            total.events += c.events;
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
            aborted: HashSet::new(),
        }))
    }
}

struct JsonlWriter {
    file: AtomicFile,
    out: BufWriter<File>,
    include_samples: bool,
    rows: u64,
    aborted: HashSet<String>,
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

/// The JSON object written for an explanation: the explained beat's or record tensor's own
/// keys (a signal record's also `leads` and `fs`), then the method, the class explained, its
/// probability and the attribution of each window sample or input value.
pub fn explanation_json(e: &Explanation, include_samples: bool) -> serde_json::Value {
    let a = &e.attribution;
    let mut v = match &e.subject {
        Subject::Beat(b) => beat_json(b, include_samples),
        Subject::Image(t) => tensor_json(t, include_samples),
        Subject::Leads { tensor, leads, fs } => {
            let mut v = tensor_json(tensor, include_samples);
            v["leads"] = json!(leads);
            v["fs"] = json!(fs);
            v
        }
    };
    v["kind"] = json!("explanation");
    v["method"] = json!(a.method);
    v["explained_class"] = json!(e.class_name);
    v["probability"] = json!(short_f64(a.probability));
    v["base_value"] = json!(a.base_value.map(short_f64));
    v["fit_r2"] = json!(a.fit_r2.map(short_f64));
    v["attribution"] = json!(a.per_sample.iter().map(|&x| short_f64(x)).collect::<Vec<_>>());
    if !a.features.is_empty() {
        // A beat's features are contiguous segments: one [start, end) range each; a record's
        // (image patches, lead segments) are `features`.
        let key = if e.beat().is_some() { "segments" } else { "features" };
        v[key] = json!(a
            .features
            .iter()
            .map(|f| match f.ranges[..] {
                [(start, end)] => json!({"start": start, "end": end, "value": short_f64(f.value)}),
                _ => json!({"ranges": f.ranges, "value": short_f64(f.value)}),
            })
            .collect::<Vec<_>>());
    }
    v
}

/// The JSON object written for a beat.
/// One event as JSON (`kind: event`); its own kind is `event`, e.g. `ventricular_run`.
pub fn event_json(e: &Event) -> serde_json::Value {
    json!({
        "kind": "event",
        "stream": e.stream,
        "event": e.kind,
        "phase": e.phase.name(),
        "sample": e.sample,
        "fs": e.fs,
        "time_s": short_f64(e.time_s() as f32),
        "patient": e.patient,
        "ward": e.ward,
        "evidence": e.evidence,
    })
}

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
        "rr_mean": b.rr_mean.map(short_f64),
        "rr_irregularity": b.rr_irregularity.map(short_f64),
    });
    if let Some(p) = &b.prediction {
        v["prediction"] = prediction_json(p);
    }
    if include_samples {
        v["window"] = json!(b.window);
    }
    v
}

/// The JSON object written for a tensor (with the prediction of a record model).
fn tensor_json(t: &Tensor, include_samples: bool) -> serde_json::Value {
    let mut v = json!({"kind": "tensor", "stream": t.stream, "sample": t.sample, "shape": t.shape, "symbol": t.symbol});
    if let Some(p) = &t.prediction {
        v["prediction"] = prediction_json(p);
    }
    if include_samples {
        v["data"] = json!(t.data);
    }
    v
}

/// A beat's or a record's prediction as JSON (`labels` only from multi-label models).
fn prediction_json(p: &Prediction) -> serde_json::Value {
    let mut v = json!({
        "model": p.model,
        "version": p.version,
        "class": p.class,
        "probabilities": p.probabilities.iter().map(|&x| short_f64(x)).collect::<Vec<_>>(),
        "decided_by": p.decided_by,
    });
    if !p.labels.is_empty() {
        v["labels"] = json!(p.labels);
    }
    v
}

impl SinkWriter for JsonlWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        let value = match body {
            Body::Chunk(c) => chunk_json(c, self.include_samples),
            Body::Beat(b) => beat_json(b, self.include_samples),
            Body::Explanation(e) => explanation_json(e, self.include_samples),
            Body::Event(e) => event_json(e),
            Body::Tensor(t) => tensor_json(t, self.include_samples),
            Body::Start { stream, meta } => {
                let meta: serde_json::Map<String, serde_json::Value> =
                    meta.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                json!({"kind": "start", "stream": stream, "meta": meta})
            }
            Body::End { stream } => json!({"kind": "end", "stream": stream}),
            Body::Abort { stream, .. } => {
                self.aborted.insert(stream.clone());
                return Ok(());
            }
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
            file,
            out,
            mut rows,
            aborted,
            ..
        } = *self;
        let path = file.path().to_owned();
        let handle = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        handle.sync_all()?;
        drop(handle);
        if aborted.is_empty() {
            file.commit()?;
        } else {
            // Rare path: copy the lines of the streams that did not fail.
            let (filtered, handle) = AtomicFile::create_with_suffix(&path, ".filtered")?;
            let mut w = BufWriter::new(handle);
            rows = 0;
            for line in BufReader::new(File::open(file.tmp_path())?).lines() {
                let line = line?;
                let value: serde_json::Value = serde_json::from_str(&line)?;
                if !value["stream"].as_str().is_some_and(|s| aborted.contains(s)) {
                    writeln!(w, "{line}")?;
                    rows += 1;
                }
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            filtered.commit()?;
        }
        Ok(Some(format!("wrote {rows} lines to {}", path.display())))
    }
}

#[derive(Clone)]
struct ParquetSink {
    path: PathBuf,
    schema: String,
    labels: LabelMap,
    per_stream: bool,
    row_group_size: usize,
}

impl Sink for ParquetSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        Ok(Box::new(ParquetWriter {
            sink: self.clone(),
            meta: HashMap::new(),
            single: None,
            per_stream: HashMap::new(),
            aborted: HashSet::new(),
            files: 0,
            rows: 0,
        }))
    }

    fn completed_streams(&self) -> anyhow::Result<Option<HashSet<String>>> {
        if !self.per_stream {
            return Ok(None);
        }
        let mut done = HashSet::new();
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "parquet") {
                    if let Some(stem) = path.file_stem() {
                        done.insert(stem.to_string_lossy().into_owned());
                    }
                }
            }
        }
        Ok(Some(done))
    }
}

/// Opens tables on the first payload, whose kind decides the schema (with `auto`).
struct ParquetWriter {
    sink: ParquetSink,
    meta: HashMap<String, Vec<(String, String)>>,
    /// The one file, in single-file mode.
    single: Option<ParquetTable>,
    /// One file per open stream, in per-stream mode.
    per_stream: HashMap<String, ParquetTable>,
    aborted: HashSet<String>,
    files: u64,
    rows: u64,
}

impl ParquetWriter {
    fn new_rows(&self, body: &Body, meta: &[(String, String)]) -> anyhow::Result<Option<Box<dyn Rows>>> {
        let path = self.sink.path.display();
        Ok(match (self.sink.schema.as_str(), body) {
            ("auto" | "beats", Body::Beat(b)) => Some(Box::new(BeatRows::new(b, meta, self.sink.labels.clone())?)),
            ("auto" | "signal", Body::Chunk(_)) => Some(Box::new(SignalRows::new(meta))),
            ("auto" | "tensors", Body::Tensor(t)) => Some(Box::new(TensorRows::new(t, meta))),
            ("auto" | "explanations", Body::Explanation(_)) => Some(Box::new(ExplanationRows::new(meta))),
            ("ecgs", Body::Chunk(c)) => {
                let samples = meta
                    .iter()
                    .find(|(k, _)| k == "samples")
                    .and_then(|(_, v)| v.parse().ok())
                    .with_context(|| {
                        format!("{path}: schema ecgs needs streams that state their length (the ptbxl source does)")
                    })?;
                Some(Box::new(EcgRows::new(c, samples, meta)))
            }
            (_, Body::Chunk(_) | Body::Beat(_) | Body::Tensor(_) | Body::Explanation(_)) => {
                bail!("{path}: schema {} cannot hold {}", self.sink.schema, body_kind(body))
            }
            _ => None,
        })
    }

    fn stream_path(&self, stream: &str) -> PathBuf {
        self.sink.path.join(format!("{stream}.parquet"))
    }
}

fn body_kind(body: &Body) -> &'static str {
    match body {
        Body::Beat(_) => "beats",
        Body::Tensor(_) => "tensors",
        Body::Explanation(_) => "explanations",
        _ => "signal chunks",
    }
}

impl SinkWriter for ParquetWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        let stream = body.stream();
        match body {
            // Events travel with their streams; they are kept by the jsonl sink, not here.
            Body::Event(_) => return Ok(()),
            Body::Start { meta, .. } => {
                self.meta.insert(stream.to_owned(), meta.clone());
                return Ok(());
            }
            Body::Abort { .. } => {
                self.aborted.insert(stream.to_owned());
                self.per_stream.remove(stream); // its temporary file goes with it
            }
            _ => {}
        }
        let meta = self.meta.get(stream).cloned().unwrap_or_default();
        if self.sink.per_stream {
            if !self.per_stream.contains_key(stream) {
                let Some(rows) = self.new_rows(body, &meta)? else {
                    return Ok(());
                };
                let table = ParquetTable::create(&self.stream_path(stream), rows, self.sink.row_group_size)?;
                self.per_stream.insert(stream.to_owned(), table);
            }
            let table = self.per_stream.get_mut(stream).expect("just inserted");
            table.push(body, &meta)?;
            if matches!(body, Body::End { .. }) {
                let table = self.per_stream.remove(stream).expect("present");
                self.rows += table.finish(&HashSet::new())?;
                self.files += 1;
                self.meta.remove(stream);
            }
        } else {
            if self.single.is_none() {
                let Some(rows) = self.new_rows(body, &meta)? else {
                    return Ok(());
                };
                self.single = Some(ParquetTable::create(&self.sink.path, rows, self.sink.row_group_size)?);
            }
            self.single.as_mut().expect("just created").push(body, &meta)?;
            if matches!(body, Body::End { .. } | Body::Abort { .. }) {
                self.meta.remove(stream);
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        let path = self.sink.path.display().to_string();
        if self.sink.per_stream {
            if let Some(open) = self.per_stream.keys().next() {
                bail!("{path}: stream {open} never ended");
            }
            return Ok(Some(format!(
                "wrote {} rows in {} file(s) under {path}",
                self.rows, self.files
            )));
        }
        match self.single {
            Some(table) => {
                let rows = table.finish(&self.aborted)?;
                Ok(Some(format!("wrote {rows} rows to {path}")))
            }
            None => Ok(Some(format!("{path}: nothing reached this sink; no file written"))),
        }
    }
}

#[derive(Clone)]
struct PngSink {
    dir: PathBuf,
    minmax: bool,
    max_per_stream: usize,
}

impl Sink for PngSink {
    fn open(&self) -> anyhow::Result<Box<dyn SinkWriter>> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        Ok(Box::new(PngWriter {
            sink: self.clone(),
            written: HashMap::new(),
            total: 0,
        }))
    }
}

struct PngWriter {
    sink: PngSink,
    written: HashMap<String, usize>,
    total: u64,
}

impl SinkWriter for PngWriter {
    fn write(&mut self, body: &Body) -> anyhow::Result<()> {
        let (Body::Tensor(_) | Body::Explanation(_)) = body else {
            return Ok(());
        };
        let count = self.written.entry(body.stream().to_owned()).or_default();
        if self.sink.max_per_stream > 0 && *count >= self.sink.max_per_stream {
            return Ok(());
        }
        *count += 1;
        self.total += 1;
        match body {
            Body::Tensor(t) => self.tensor_picture(t),
            Body::Explanation(e) => self.explanation_picture(e),
            _ => Ok(()),
        }
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Option<String>> {
        Ok(Some(format!(
            "wrote {} picture(s) to {}",
            self.total,
            self.sink.dir.display()
        )))
    }
}

impl PngWriter {
    fn explanation_picture(&self, e: &Explanation) -> anyhow::Result<()> {
        let name = match e.beat() {
            Some(b) => format!("{}_{}_{}.png", b.stream, b.sample, e.attribution.method),
            None => format!("{}_{}.png", e.stream(), e.attribution.method),
        };
        let path = self.sink.dir.join(name);
        ecgflow_operators::plot::explanation_picture(&path, e)?;
        Ok(())
    }

    fn tensor_picture(&self, t: &Tensor) -> anyhow::Result<()> {
        // Leading dimensions (e.g. leads) stack the pictures vertically.
        let width = match t.shape.as_slice() {
            [.., _, w] if *w > 0 => *w,
            _ => bail!("stream {}: a tensor of shape {:?} is not a picture", t.stream, t.shape),
        };
        let height = t.data.len() / width;
        let mut pixels = t.data.clone();
        if self.sink.minmax {
            let finite = pixels.iter().copied().filter(|v| v.is_finite());
            let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let span = if hi > lo { hi - lo } else { 1.0 };
            pixels.iter_mut().for_each(|v| *v = (*v - lo) / span);
        }
        let name = match t.sample {
            Some(sample) => format!("{}_{sample}.png", t.stream),
            None => format!("{}.png", t.stream),
        };
        ecgflow_operators::render::write_png(&self.sink.dir.join(name), &pixels, width, height)?;
        Ok(())
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
