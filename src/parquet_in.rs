//! Reading `beats` Parquet tables (docs/parquet.md) back into beats: for the `parquet` source
//! and for `ecgflow eval beats`.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use ecgflow_operators::models::resecanet::{beat_input, BeatExtras};
use ecgflow_operators::rng::SplitMix64;
use ecgflow_operators::Beat;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// A beat read from a table, with the columns a beat does not carry itself.
#[derive(Clone, Debug)]
pub struct StoredBeat {
    pub patient: String,
    pub beat: Beat,
}

/// The beats of one or more `beats` files, grouped by record in file order.
#[derive(Debug, Default)]
pub struct BeatTable {
    /// Key/value metadata of the first file (`ecgflow.fs`, `ecgflow.label_map`, ...).
    pub meta: BTreeMap<String, String>,
    /// Records in the order they were first met, each with its beats.
    pub records: Vec<(String, Vec<StoredBeat>)>,
}

impl BeatTable {
    /// Total beats over all records.
    pub fn len(&self) -> usize {
        self.records.iter().map(|(_, b)| b.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The Parquet files `path` names: the file itself, or the `.parquet` files of a directory
/// in name order.
pub fn parquet_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        bail!("{}: no such file or directory", path.display());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading directory {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no .parquet files in this directory", path.display());
    }
    Ok(files)
}

/// Reads the beats of `path` (a file or a directory of files), keeping only the records in
/// `records` when given.
pub fn read_beats(path: &Path, records: Option<&HashSet<String>>) -> anyhow::Result<BeatTable> {
    let mut table = BeatTable::default();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for file in parquet_files(path)? {
        read_file(&file, records, &mut table, &mut index).with_context(|| file.display().to_string())?;
    }
    Ok(table)
}

fn read_file(
    file: &Path,
    records: Option<&HashSet<String>>,
    table: &mut BeatTable,
    index: &mut BTreeMap<String, usize>,
) -> anyhow::Result<()> {
    let handle = File::open(file)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(handle)?;
    let meta: BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|p| Some((p.key.clone(), p.value.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    match meta.get("ecgflow.schema").map(String::as_str) {
        Some("beats") => {}
        other => {
            bail!("not a beats table (ecgflow.schema = {other:?}); write one with a parquet sink of schema \"beats\"")
        }
    }
    let number = |key: &str| -> anyhow::Result<f64> {
        meta.get(key)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("metadata {key} is missing or not a number"))
    };
    let (fs, before, after) = (
        number("ecgflow.fs")?,
        number("ecgflow.before")?,
        number("ecgflow.after")?,
    );
    let leads: Vec<String> = meta
        .get("ecgflow.leads")
        .map(|l| l.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    if table.meta.is_empty() {
        table.meta = meta.clone();
    }
    for batch in builder.build()? {
        let batch = batch?;
        let rows = BeatColumns::of(&batch)?;
        for row in 0..batch.num_rows() {
            let record = rows.record.value(row);
            if records.is_some_and(|r| !r.contains(record)) {
                continue;
            }
            let window = rows.window.value(row);
            let window = window.as_primitive::<Float32Type>().values().to_vec();
            let optional =
                |col: Option<&arrow_array::Float32Array>| col.and_then(|c| (!c.is_null(row)).then(|| c.value(row)));
            let template = rows
                .template
                .filter(|t| !t.is_null(row))
                .map(|t| t.value(row).as_primitive::<Float32Type>().values().to_vec());
            let beat = Beat {
                stream: record.to_owned(),
                fs,
                sample: rows.sample.value(row),
                leads: if leads.is_empty() {
                    rows.lead.value(row).split(',').map(str::to_owned).collect()
                } else {
                    leads.clone()
                },
                before: before as usize,
                after: after as usize,
                window,
                template,
                rr_prev: optional(rows.rr_prev),
                rr_next: optional(rows.rr_next),
                rr_local: optional(rows.rr_local),
                rr_mean: optional(rows.rr_mean),
                rr_irregularity: optional(rows.rr_irregularity),
                symbol: (!rows.symbol.is_null(row)).then(|| rows.symbol.value(row).to_owned()),
                prediction: None,
                arrival: None,
            };
            let slot = *index.entry(record.to_owned()).or_insert_with(|| {
                table.records.push((record.to_owned(), Vec::new()));
                table.records.len() - 1
            });
            table.records[slot].1.push(StoredBeat {
                patient: rows.patient.value(row).to_owned(),
                beat,
            });
        }
    }
    Ok(())
}

/// The columns of a `beats` record batch, typed.
struct BeatColumns<'a> {
    record: &'a arrow_array::StringArray,
    patient: &'a arrow_array::StringArray,
    lead: &'a arrow_array::StringArray,
    sample: &'a arrow_array::UInt64Array,
    symbol: &'a arrow_array::StringArray,
    rr_prev: Option<&'a arrow_array::Float32Array>,
    rr_next: Option<&'a arrow_array::Float32Array>,
    rr_local: Option<&'a arrow_array::Float32Array>,
    rr_mean: Option<&'a arrow_array::Float32Array>,
    rr_irregularity: Option<&'a arrow_array::Float32Array>,
    window: &'a arrow_array::FixedSizeListArray,
    template: Option<&'a arrow_array::FixedSizeListArray>,
}

impl<'a> BeatColumns<'a> {
    fn of(batch: &'a RecordBatch) -> anyhow::Result<Self> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .with_context(|| format!("column {name:?} is missing"))
        };
        let string = |name: &str| -> anyhow::Result<&'a arrow_array::StringArray> {
            let col = batch
                .column_by_name(name)
                .with_context(|| format!("column {name:?} is missing"))?;
            col.as_string_opt::<i32>()
                .with_context(|| format!("column {name:?} is not utf8"))
        };
        let float = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Float32Type>())
        };
        Ok(BeatColumns {
            record: string("record")?,
            patient: string("patient")?,
            lead: string("lead")?,
            sample: column("sample")?
                .as_primitive_opt::<UInt64Type>()
                .context("column \"sample\" is not uint64")?,
            symbol: string("symbol")?,
            rr_prev: float("rr_prev"),
            rr_next: float("rr_next"),
            rr_local: float("rr_local"),
            rr_mean: float("rr_mean"),
            rr_irregularity: float("rr_irregularity"),
            window: column("window")?
                .as_fixed_size_list_opt()
                .context("column \"window\" is not a fixed-size list")?,
            template: batch
                .column_by_name("template")
                .and_then(|c| c.as_fixed_size_list_opt()),
        })
    }
}

/// `count` windows (`before + 1 + after` samples of the first lead each) drawn at random,
/// seeded, from the beats of `records` in the table at `path` whose window is
/// `(before, after)`: the background set of explanations.
pub fn background_windows(
    path: &Path,
    records: Option<&HashSet<String>>,
    (before, after): (usize, usize),
    count: usize,
    seed: u64,
) -> anyhow::Result<Vec<f32>> {
    let table = read_beats(path, records).with_context(|| format!("background {}", path.display()))?;
    let fitting: Vec<&Beat> = table
        .records
        .iter()
        .flat_map(|(_, b)| b.iter().map(|s| &s.beat))
        .filter(|b| (b.before, b.after) == (before, after))
        .collect();
    if fitting.is_empty() {
        bail!(
            "background {}: no beats of the chosen records with the model's {before} + 1 + {after} window",
            path.display()
        );
    }
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(count * (before + 1 + after));
    for _ in 0..count {
        let beat = fitting[(rng.next_u64() % fitting.len() as u64) as usize];
        out.extend(beat_input(beat, BeatExtras::default()));
    }
    Ok(out)
}
