//! PTB-XL adapter: `ptbxl_database.csv` read by column name, `scp_codes` parsed and
//! joined with `scp_statements.csv` into the five diagnostic superclasses, and the
//! 12-lead signals read through the WFDB reader.
//!
//! Superclasses follow the PTB-XL paper's convention: every key of `scp_codes` whose
//! row in `scp_statements.csv` has `diagnostic == 1` contributes its
//! `diagnostic_class`, with no likelihood threshold.

use crate::csv::{parse_csv, CsvError};
use crate::wfdb::{Header, RecordReader, WfdbError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The five diagnostic superclasses, in the order of [`PtbxlRecord::superclasses`].
pub const SUPERCLASSES: [&str; 5] = ["NORM", "MI", "STTC", "CD", "HYP"];

/// Errors of the PTB-XL adapter; each names the file, row (ecg_id) and column at fault.
#[derive(Debug, thiserror::Error)]
pub enum PtbxlError {
    /// An I/O error on a named file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A CSV syntax error.
    #[error("{path}: {error}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV error.
        error: CsvError,
    },
    /// A required column is missing.
    #[error("{path}, line 1 (header row): missing column {column:?}")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
    },
    /// A field that cannot be parsed.
    #[error("{path}, line {line} (ecg_id {ecg_id}), column {column}: {message}")]
    Field {
        /// The file.
        path: PathBuf,
        /// 1-based line where the row starts.
        line: usize,
        /// The row's ecg_id as written.
        ecg_id: String,
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A record has no 500 Hz file name (the subset lacks `filename_hr`).
    #[error("ecg_id {ecg_id}: no {resolution} file name in the database")]
    NoFile {
        /// The record.
        ecg_id: u32,
        /// Which resolution.
        resolution: &'static str,
    },
    /// A WFDB error reading a record's signal.
    #[error("ecg_id {ecg_id}: {error}")]
    Wfdb {
        /// The record.
        ecg_id: u32,
        /// The WFDB error.
        error: WfdbError,
    },
}

/// One row of `ptbxl_database.csv` with its diagnostic superclasses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PtbxlRecord {
    /// ECG identifier.
    pub ecg_id: u32,
    /// Patient identifier (stored as a float in the CSV, e.g. `15709.0`).
    pub patient_id: u32,
    /// Age in years, if given (PTB-XL writes 300 for ages above 89).
    pub age: Option<f32>,
    /// Sex as coded by PTB-XL: 0 male, 1 female.
    pub sex: u8,
    /// SCP-ECG statements with their likelihoods (0-100), in file order.
    pub scp_codes: Vec<(String, f32)>,
    /// Stratified fold, 1..=10 (10 is the standard test fold).
    pub strat_fold: u8,
    /// Path of the 100 Hz record relative to the dataset directory, without extension.
    pub filename_lr: String,
    /// Path of the 500 Hz record, if the database lists it.
    pub filename_hr: Option<String>,
    /// Multi-hot superclasses in the order of [`SUPERCLASSES`].
    pub superclasses: [bool; 5],
}

/// Sampling rate variant of a PTB-XL record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// 100 Hz (`records100/`, `filename_lr`).
    Low,
    /// 500 Hz (`records500/`, `filename_hr`).
    High,
}

impl PtbxlRecord {
    /// Names of the superclasses this record has.
    pub fn superclass_names(&self) -> Vec<&'static str> {
        SUPERCLASSES
            .iter()
            .zip(self.superclasses)
            .filter(|(_, b)| *b)
            .map(|(n, _)| *n)
            .collect()
    }

    /// The record's file name (relative path without extension) at a resolution.
    pub fn filename(&self, res: Resolution) -> Result<&str, PtbxlError> {
        match res {
            Resolution::Low => Ok(&self.filename_lr),
            Resolution::High => self.filename_hr.as_deref().ok_or(PtbxlError::NoFile {
                ecg_id: self.ecg_id,
                resolution: "500 Hz (filename_hr)",
            }),
        }
    }

    /// Opens the record's WFDB signal (12 leads, format 16) for chunked reading;
    /// `dir` is the dataset directory holding `records100/` and `ptbxl_database.csv`.
    pub fn open_signal(&self, dir: &Path, res: Resolution) -> Result<RecordReader, PtbxlError> {
        let rel = Path::new(self.filename(res)?);
        let wrap = |error| PtbxlError::Wfdb {
            ecg_id: self.ecg_id,
            error,
        };
        let rdir = dir.join(rel.parent().unwrap_or(Path::new("")));
        let name = rel
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        RecordReader::open(&rdir, &name).map_err(wrap)
    }

    /// Reads the record's whole signal: the header and one vector per lead in mV.
    pub fn read_signal(&self, dir: &Path, res: Resolution) -> Result<(Header, Vec<Vec<f32>>), PtbxlError> {
        let mut r = self.open_signal(dir, res)?;
        let mut out = vec![Vec::new(); r.header().signals.len()];
        let wrap = |error| PtbxlError::Wfdb {
            ecg_id: self.ecg_id,
            error,
        };
        while let Some(c) = r.read_chunk(1 << 14).map_err(wrap)? {
            for (o, c) in out.iter_mut().zip(c) {
                o.extend_from_slice(&c);
            }
        }
        Ok((r.header().clone(), out))
    }
}

/// Keeps the records whose `strat_fold` is in `folds`.
pub fn filter_folds(records: &[PtbxlRecord], folds: &[u8]) -> Vec<PtbxlRecord> {
    records
        .iter()
        .filter(|r| folds.contains(&r.strat_fold))
        .cloned()
        .collect()
}

/// Loads `dir/ptbxl_database.csv` joined with `dir/scp_statements.csv`.
pub fn load(dir: &Path) -> Result<Vec<PtbxlRecord>, PtbxlError> {
    let statements = read_statements(&dir.join("scp_statements.csv"))?;
    read_database(&dir.join("ptbxl_database.csv"), &statements)
}

fn read_text(path: &Path) -> Result<String, PtbxlError> {
    std::fs::read_to_string(path).map_err(|error| PtbxlError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads `scp_statements.csv` into a map from SCP code to its `diagnostic_class`,
/// keeping only rows whose `diagnostic` column is 1.
pub fn read_statements(path: &Path) -> Result<HashMap<String, String>, PtbxlError> {
    parse_statements(&read_text(path)?, path)
}

/// Parses `scp_statements.csv` text; see [`read_statements`].
pub fn parse_statements(text: &str, path: &Path) -> Result<HashMap<String, String>, PtbxlError> {
    let rows = parse_csv(text).map_err(|error| PtbxlError::Csv {
        path: path.to_path_buf(),
        error,
    })?;
    let Some((_, header)) = rows.first() else {
        return Err(PtbxlError::MissingColumn {
            path: path.to_path_buf(),
            column: "diagnostic".into(),
        });
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| PtbxlError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
            })
    };
    let (diag, class) = (col("diagnostic")?, col("diagnostic_class")?);
    let mut out = HashMap::new();
    for (line, row) in &rows[1..] {
        let code = row.first().map(|s| s.trim()).unwrap_or_default();
        let get = |i: usize| row.get(i).map(|s| s.trim()).unwrap_or_default();
        let d = get(diag);
        let is_diag = match d {
            "" => false,
            s => {
                s.parse::<f64>().map_err(|_| PtbxlError::Field {
                    path: path.to_path_buf(),
                    line: *line,
                    ecg_id: code.to_string(),
                    column: "diagnostic".into(),
                    message: format!("not a number: {s:?}"),
                })? == 1.0
            }
        };
        if is_diag && !code.is_empty() && !get(class).is_empty() {
            out.insert(code.to_string(), get(class).to_string());
        }
    }
    Ok(out)
}

/// Reads `ptbxl_database.csv` (official full file or a subset with at least the
/// columns ecg_id, patient_id, age, sex, scp_codes, strat_fold, filename_lr),
/// joining `scp_codes` with `statements` (from [`read_statements`]).
pub fn read_database(path: &Path, statements: &HashMap<String, String>) -> Result<Vec<PtbxlRecord>, PtbxlError> {
    parse_database(&read_text(path)?, path, statements)
}

/// Parses `ptbxl_database.csv` text; see [`read_database`].
pub fn parse_database(
    text: &str,
    path: &Path,
    statements: &HashMap<String, String>,
) -> Result<Vec<PtbxlRecord>, PtbxlError> {
    let rows = parse_csv(text).map_err(|error| PtbxlError::Csv {
        path: path.to_path_buf(),
        error,
    })?;
    let header: &[String] = rows.first().map(|(_, h)| h.as_slice()).unwrap_or(&[]);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| PtbxlError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
            })
    };
    let c_id = col("ecg_id")?;
    let c_pat = col("patient_id")?;
    let c_age = col("age")?;
    let c_sex = col("sex")?;
    let c_scp = col("scp_codes")?;
    let c_fold = col("strat_fold")?;
    let c_lr = col("filename_lr")?;
    let c_hr = col("filename_hr").ok();
    let mut out = Vec::with_capacity(rows.len().saturating_sub(1));
    for (line, row) in rows.iter().skip(1) {
        if row.len() == 1 && row[0].trim().is_empty() {
            continue;
        }
        let id_text = row.get(c_id).map(String::as_str).unwrap_or("");
        let ferr = |column: &str, message: String| PtbxlError::Field {
            path: path.to_path_buf(),
            line: *line,
            ecg_id: id_text.to_string(),
            column: column.to_string(),
            message,
        };
        if row.len() != header.len() {
            return Err(ferr(
                "*",
                format!("row has {} fields, header has {}", row.len(), header.len()),
            ));
        }
        let num = |c: usize, name: &str| -> Result<Option<f64>, PtbxlError> {
            let s = row[c].trim();
            if s.is_empty() || s.eq_ignore_ascii_case("nan") {
                return Ok(None);
            }
            s.parse::<f64>()
                .map(Some)
                .map_err(|_| ferr(name, format!("not a number: {s:?}")))
        };
        let int = |c: usize, name: &str, max: f64| -> Result<f64, PtbxlError> {
            let v = num(c, name)?.ok_or_else(|| ferr(name, "empty".into()))?;
            if v.fract() != 0.0 || v < 0.0 || v > max {
                return Err(ferr(name, format!("{v} is not an integer in 0..={max}")));
            }
            Ok(v)
        };
        let ecg_id = int(c_id, "ecg_id", u32::MAX as f64)? as u32;
        let patient_id = int(c_pat, "patient_id", u32::MAX as f64)? as u32;
        let age = num(c_age, "age")?.map(|a| a as f32);
        let sex = int(c_sex, "sex", 1.0)? as u8;
        let strat_fold = int(c_fold, "strat_fold", 10.0)? as u8;
        let scp_codes = parse_scp_codes(&row[c_scp]).map_err(|m| ferr("scp_codes", m))?;
        let mut superclasses = [false; 5];
        for (code, _) in &scp_codes {
            if let Some(class) = statements.get(code) {
                if let Some(k) = SUPERCLASSES.iter().position(|s| s == class) {
                    superclasses[k] = true;
                }
            }
        }
        let filename_lr = row[c_lr].trim().to_string();
        if filename_lr.is_empty() {
            return Err(ferr("filename_lr", "empty".into()));
        }
        let filename_hr = c_hr.map(|c| row[c].trim().to_string()).filter(|s| !s.is_empty());
        out.push(PtbxlRecord {
            ecg_id,
            patient_id,
            age,
            sex,
            scp_codes,
            strat_fold,
            filename_lr,
            filename_hr,
            superclasses,
        });
    }
    Ok(out)
}

/// Parses a Python dict literal of SCP codes and likelihoods, e.g.
/// `{'NORM': 100.0, 'SR': 0.0}` (single or double quotes; `{}` is empty).
pub fn parse_scp_codes(s: &str) -> Result<Vec<(String, f32)>, String> {
    let t = s.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .ok_or_else(|| format!("not a dict literal: {s:?}"))?;
    let mut out = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let q = rest
            .chars()
            .next()
            .filter(|&c| c == '\'' || c == '"')
            .ok_or_else(|| format!("expected a quoted key at {rest:?}"))?;
        let end = rest[1..]
            .find(q)
            .ok_or_else(|| format!("unterminated key at {rest:?}"))?
            + 1;
        let key = rest[1..end].to_string();
        rest = rest[end + 1..].trim_start();
        rest = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("expected ':' after key {key:?}"))?
            .trim_start();
        let vend = rest.find(',').unwrap_or(rest.len());
        let vtext = rest[..vend].trim();
        let v: f32 = vtext
            .parse()
            .map_err(|_| format!("bad likelihood {vtext:?} for key {key:?}"))?;
        out.push((key, v));
        rest = rest[vend..].strip_prefix(',').unwrap_or(&rest[vend..]).trim_start();
    }
    Ok(out)
}

/// Counts of each superclass (in [`SUPERCLASSES`] order) and of records with none.
pub fn superclass_counts(records: &[PtbxlRecord]) -> ([usize; 5], usize) {
    let mut c = [0usize; 5];
    let mut none = 0;
    for r in records {
        for (k, &b) in r.superclasses.iter().enumerate() {
            c[k] += b as usize;
        }
        none += (!r.superclasses.iter().any(|&b| b)) as usize;
    }
    (c, none)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATEMENTS: &str = ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n\
NDT,\"non-diagnostic T abnormalities, long\",1.0,1.0,,STTC,STTC\n\
NORM,normal ECG,1.0,,,NORM,NORM\n\
IMI,inferior myocardial infarction,1.0,,,MI,IMI\n\
LVH,left ventricular hypertrophy,1.0,,,HYP,LVH\n\
SR,sinus rhythm,,,1.0,,\n";

    #[test]
    fn scp_codes_literal() {
        assert_eq!(
            parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}").unwrap(),
            vec![("NORM".into(), 100.0), ("SR".into(), 0.0)]
        );
        assert_eq!(parse_scp_codes("{}").unwrap(), vec![]);
        assert_eq!(
            parse_scp_codes(" {\"IMI\": 35.5} ").unwrap(),
            vec![("IMI".into(), 35.5)]
        );
        for bad in ["", "NORM", "{'NORM' 100}", "{'NORM': x}", "{'NORM: 1}", "{NORM: 1}"] {
            assert!(parse_scp_codes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn full_official_layout_and_superclasses() {
        let p = Path::new("s.csv");
        let st = parse_statements(STATEMENTS, p).unwrap();
        assert_eq!(st.len(), 4);
        assert_eq!(st["NDT"], "STTC");
        assert!(!st.contains_key("SR"));
        // The official column layout, with a quoted report containing commas and quotes.
        let db = "ecg_id,patient_id,age,sex,height,weight,nurse,site,device,recording_date,report,scp_codes,heart_axis,infarction_stadium1,infarction_stadium2,validated_by,second_opinion,initial_autogenerated_report,validated_by_human,baseline_drift,static_noise,burst_noise,electrodes_problems,extra_beats,pacemaker,strat_fold,filename_lr,filename_hr\n\
1,15709.0,56.0,1,,63.0,2.0,0.0,CS-12   E,1984-11-09 09:17:34,\"sinusrhythmus, \"\"periphere\"\" niederspannung\",\"{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}\",,,,,False,False,True,,,,,,,3,records100/00000/00001_lr,records500/00000/00001_hr\n\
2,13243.0,,0,,70.0,2.0,0.0,CS-12   E,1984-11-14 12:55:37,x,\"{'IMI': 15.0, 'LVH': 50.0, 'NDT': 0.0}\",,,,,False,False,True,,,,,,,10,records100/00000/00002_lr,records500/00000/00002_hr\n\
3,1.0,300.0,1,,,,,,,,{},,,,,,,,,,,,,,9,records100/00000/00003_lr,\n";
        let recs = parse_database(db, Path::new("db.csv"), &st).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].superclasses, [true, false, false, false, false]);
        assert_eq!(recs[0].superclass_names(), ["NORM"]);
        assert_eq!(
            (
                recs[0].ecg_id,
                recs[0].patient_id,
                recs[0].age,
                recs[0].sex,
                recs[0].strat_fold
            ),
            (1, 15709, Some(56.0), 1, 3)
        );
        assert_eq!(recs[0].filename(Resolution::High).unwrap(), "records500/00000/00001_hr");
        assert_eq!(recs[1].superclasses, [false, true, true, false, true]);
        assert_eq!(recs[1].age, None);
        assert_eq!(recs[2].superclasses, [false; 5]);
        assert!(recs[2].filename(Resolution::High).is_err());
        assert_eq!(superclass_counts(&recs), ([1, 1, 1, 0, 1], 1));
        assert_eq!(filter_folds(&recs, &[9, 10]).len(), 2);
    }

    #[test]
    fn bad_rows_name_file_row_and_column() {
        let st = parse_statements(STATEMENTS, Path::new("s.csv")).unwrap();
        let head = "ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr\n";
        let e = parse_database(
            &format!("{head}7,1.0,50,1,\"{{'NORM' 1}}\",3,r/7\n"),
            Path::new("db.csv"),
            &st,
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("db.csv") && m.contains("ecg_id 7") && m.contains("scp_codes"),
            "{m}"
        );
        let e = parse_database(&format!("{head}8,1.0,50,2,{{}},3,r/8\n"), Path::new("db.csv"), &st).unwrap_err();
        assert!(e.to_string().contains("sex"), "{e}");
        let e = parse_database(&format!("{head}9,1.0,50,1,{{}},3\n"), Path::new("db.csv"), &st).unwrap_err();
        assert!(e.to_string().contains("fields"), "{e}");
        let e = parse_database("ecg_id,age\n1,2\n", Path::new("db.csv"), &st).unwrap_err();
        assert!(e.to_string().contains("patient_id"), "{e}");
        let e = parse_database(&format!("{head}9,1.0,50,1,\"{{}}\n"), Path::new("db.csv"), &st).unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
        assert!(matches!(load(Path::new("/nonexistent")), Err(PtbxlError::Io { .. })));
    }
}
