//! MIT-BIH Arrhythmia Database adapter: named record sets, lead selection by name,
//! beat label maps.
//!
//! Label maps are data files (`datasets/labelmaps/*.csv`, embedded at build time):
//! rows `symbol,class`, `#` comments, an optional `symbol,class` header; classes
//! are numbered in order of first appearance. Built-in maps: `raw` (each beat
//! symbol its own class), `aami` (ANSI/AAMI EC57: N, S, V, F, Q) and `study6`
//! (the reference study's six classes: N, L, R, V, A, P = paced).

use crate::annotations::{read_annotations, Annotation, AnnotationError};
use crate::wfdb::{Header, RecordReader, WfdbError};
use std::path::{Path, PathBuf};

/// Errors of the MIT-BIH adapter.
#[derive(Debug, thiserror::Error)]
pub enum MitdbError {
    /// A record lacks the requested lead.
    #[error("record {record} has no lead {lead:?} (it has: {available})")]
    MissingLead {
        /// Record name.
        record: String,
        /// Requested lead.
        lead: String,
        /// Leads the record has.
        available: String,
    },
    /// A record list names an unknown record or set.
    #[error("record list {spec:?}: unknown record or set {item:?} (sets: all, DS1, DS2, nonpaced, paced; records: 100..234 of MIT-BIH)")]
    UnknownRecord {
        /// The whole list.
        spec: String,
        /// The offending item.
        item: String,
    },
    /// No built-in label map of that name.
    #[error("unknown label map {0:?} (built-in: raw, aami, study6)")]
    UnknownLabelMap(String),
    /// A label map file is malformed.
    #[error("label map {source_name}, line {line}: {message}")]
    LabelMap {
        /// The map's name or file.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Reading a label map file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A WFDB error.
    #[error(transparent)]
    Wfdb(#[from] WfdbError),
    /// An annotation error.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
}

/// The 48 records of the MIT-BIH Arrhythmia Database.
pub const ALL: [&str; 48] = [
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112", "113", "114", "115", "116",
    "117", "118", "119", "121", "122", "123", "124", "200", "201", "202", "203", "205", "207", "208", "209", "210",
    "212", "213", "214", "215", "217", "219", "220", "221", "222", "223", "228", "230", "231", "232", "233", "234",
];
/// De Chazal et al. (2004) inter-patient training set DS1 (22 records, no paced records).
pub const DS1: [&str; 22] = [
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203", "205", "207",
    "208", "209", "215", "220", "223", "230",
];
/// De Chazal et al. (2004) inter-patient test set DS2 (22 records, no paced records).
pub const DS2: [&str; 22] = [
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219", "221",
    "222", "228", "231", "232", "233", "234",
];
/// The paced records.
pub const PACED: [&str; 4] = ["102", "104", "107", "217"];

fn named_set(name: &str) -> Option<Vec<&'static str>> {
    match name.to_ascii_lowercase().as_str() {
        "all" => Some(ALL.to_vec()),
        "ds1" => Some(DS1.to_vec()),
        "ds2" => Some(DS2.to_vec()),
        "paced" => Some(PACED.to_vec()),
        "nonpaced" => Some(ALL.iter().copied().filter(|r| !PACED.contains(r)).collect()),
        _ => None,
    }
}

/// Expands a record list such as `"100,101,DS1"` into record names (in order of
/// first mention, without duplicates). Items are separated by commas or
/// whitespace; each is a record number of MIT-BIH or a set name (`all`, `DS1`,
/// `DS2`, `nonpaced`, `paced`; case-insensitive). An item prefixed with `-`
/// removes records: `"all,-paced"` equals `"nonpaced"`.
pub fn record_set(spec: &str) -> Result<Vec<String>, MitdbError> {
    let mut out: Vec<String> = Vec::new();
    let mut any = false;
    for item in spec
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        any = true;
        let (remove, name) = match item.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, item),
        };
        let recs = match named_set(name) {
            Some(v) => v,
            None => match ALL.iter().find(|&&r| r == name) {
                Some(&r) => vec![r],
                None => {
                    return Err(MitdbError::UnknownRecord {
                        spec: spec.to_string(),
                        item: item.to_string(),
                    })
                }
            },
        };
        for r in recs {
            if remove {
                out.retain(|x| x != r);
            } else if !out.iter().any(|x| x == r) {
                out.push(r.to_string());
            }
        }
    }
    if !any {
        return Err(MitdbError::UnknownRecord {
            spec: spec.to_string(),
            item: String::new(),
        });
    }
    Ok(out)
}

/// Index of the signal whose description is `lead` (e.g. `"MLII"`), or an error
/// naming the record and the leads it has.
pub fn lead_index(header: &Header, record: &str, lead: &str) -> Result<usize, MitdbError> {
    header.signal_index(lead).ok_or_else(|| MitdbError::MissingLead {
        record: record.to_string(),
        lead: lead.to_string(),
        available: header
            .signals
            .iter()
            .map(|s| s.description.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Opens record `record` in `dir` with only `lead` selected, for chunked reading.
pub fn open_lead(dir: &Path, record: &str, lead: &str) -> Result<RecordReader, MitdbError> {
    let mut r = RecordReader::open(dir, record)?;
    let i = lead_index(r.header(), record, lead)?;
    r.select(&[i])?;
    Ok(r)
}

/// Reads one lead of a record whole: `(sampling frequency, samples in mV)`.
pub fn read_lead(dir: &Path, record: &str, lead: &str) -> Result<(f64, Vec<f32>), MitdbError> {
    let mut r = open_lead(dir, record, lead)?;
    let fs = r.header().fs;
    let mut v = Vec::with_capacity(r.header().n_samples.unwrap_or(0).min(1 << 24) as usize);
    while let Some(c) = r.read_chunk(1 << 16)? {
        v.extend_from_slice(&c[0]);
    }
    Ok((fs, v))
}

/// Reads the reference annotations `dir/record.atr`.
pub fn read_reference(dir: &Path, record: &str) -> Result<Vec<Annotation>, MitdbError> {
    Ok(read_annotations(&dir.join(format!("{record}.atr")))?)
}

/// A labelled beat: its R-peak sample, its annotation symbol and its class index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledBeat {
    /// Sample of the beat annotation (the R peak).
    pub sample: u64,
    /// WFDB beat symbol.
    pub symbol: String,
    /// Class index in the label map.
    pub class: usize,
}

/// The beats of `anns` that `map` assigns a class (others are skipped).
pub fn labelled_beats(anns: &[Annotation], map: &LabelMap) -> Vec<LabelledBeat> {
    anns.iter()
        .filter(|a| a.is_beat())
        .filter_map(|a| {
            map.class_of(&a.symbol).map(|class| LabelledBeat {
                sample: a.sample,
                symbol: a.symbol.clone(),
                class,
            })
        })
        .collect()
}

/// Maps beat annotation symbols to classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    name: String,
    classes: Vec<String>,
    /// (symbol, class index), in file order.
    entries: Vec<(String, usize)>,
}

const BUILTIN: [(&str, &str); 3] = [
    ("raw", include_str!("../labelmaps/raw.csv")),
    ("aami", include_str!("../labelmaps/aami.csv")),
    ("study6", include_str!("../labelmaps/study6.csv")),
];

impl LabelMap {
    /// A built-in map: `raw`, `aami` or `study6`.
    pub fn builtin(name: &str) -> Result<LabelMap, MitdbError> {
        let (_, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| MitdbError::UnknownLabelMap(name.to_string()))?;
        LabelMap::parse(text, name)
    }

    /// Names of the built-in maps.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(n, _)| *n).collect()
    }

    /// Reads a map from a CSV file (`symbol,class` rows; see the module docs).
    pub fn from_file(path: &Path) -> Result<LabelMap, MitdbError> {
        let text = std::fs::read_to_string(path).map_err(|error| MitdbError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        LabelMap::parse(&text, &path.display().to_string())
    }

    /// Parses map text; `name` names the map in errors and in [`LabelMap::name`].
    pub fn parse(text: &str, name: &str) -> Result<LabelMap, MitdbError> {
        let mut classes: Vec<String> = Vec::new();
        let mut entries: Vec<(String, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| MitdbError::LabelMap {
                source_name: name.to_string(),
                line: i + 1,
                message,
            };
            let parts: Vec<&str> = line.split(',').map(str::trim).collect();
            if parts.len() != 2 || parts[0].is_empty() || parts[1].is_empty() {
                return Err(err(format!("expected `symbol,class`, found {line:?}")));
            }
            if parts == ["symbol", "class"] {
                continue;
            }
            let (sym, class) = (parts[0], parts[1]);
            if !crate::annotations::is_beat(sym) {
                return Err(err(format!("{sym:?} is not a WFDB beat symbol")));
            }
            if entries.iter().any(|(s, _)| s == sym) {
                return Err(err(format!("symbol {sym:?} is mapped twice")));
            }
            let ci = match classes.iter().position(|c| c == class) {
                Some(ci) => ci,
                None => {
                    classes.push(class.to_string());
                    classes.len() - 1
                }
            };
            entries.push((sym.to_string(), ci));
        }
        if classes.is_empty() {
            return Err(MitdbError::LabelMap {
                source_name: name.to_string(),
                line: 0,
                message: "no classes".into(),
            });
        }
        Ok(LabelMap {
            name: name.to_string(),
            classes,
            entries,
        })
    }

    /// The map's name (built-in name or file path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Class names, indexed by class number.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The class of a beat symbol, or `None` if the map leaves it out.
    pub fn class_of(&self, symbol: &str) -> Option<usize> {
        self.entries.iter().find(|(s, _)| s == symbol).map(|&(_, c)| c)
    }

    /// The symbols mapped to class `class`.
    pub fn symbols_of(&self, class: usize) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|&&(_, c)| c == class)
            .map(|(s, _)| s.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sets() {
        assert_eq!(record_set("all").unwrap().len(), 48);
        let ds1 = record_set("DS1").unwrap();
        let ds2 = record_set("ds2").unwrap();
        assert_eq!((ds1.len(), ds2.len()), (22, 22));
        assert!(ds1.iter().all(|r| !ds2.contains(r)));
        let nonpaced = record_set("nonpaced").unwrap();
        assert_eq!(nonpaced.len(), 44);
        assert_eq!(record_set("all,-paced").unwrap(), nonpaced);
        // DS1 + DS2 = non-paced records minus 110-less gaps: 44 records exactly.
        let mut both = record_set("DS1,DS2").unwrap();
        both.sort();
        assert_eq!(both, nonpaced);
        assert_eq!(record_set("100, 101 100,DS1").unwrap()[..3], ["100", "101", "106"]);
        let e = record_set("100,110").unwrap_err();
        assert!(e.to_string().contains("\"110\""), "{e}");
        assert!(record_set("").is_err());
        assert!(record_set("DS3").is_err());
    }

    #[test]
    fn lead_by_name() {
        let h114 = Header::parse(
            "114 2 360 650000\n114.dat 212 200 11 1024 1015 -11371 0 V5\n114.dat 212 200 11 1024 1027 -13230 0 MLII\n",
            "114",
        )
        .unwrap();
        assert_eq!(lead_index(&h114, "114", "MLII").unwrap(), 1);
        let h102 = Header::parse(
            "102 2 360 650000\n102.dat 212 200 11 1024 984 -28574 0 V5\n102.dat 212 200 11 1024 1025 13743 0 V2\n",
            "102",
        )
        .unwrap();
        let e = lead_index(&h102, "102", "MLII").unwrap_err();
        assert_eq!(e.to_string(), "record 102 has no lead \"MLII\" (it has: V5, V2)");
    }

    #[test]
    fn builtin_label_maps() {
        assert_eq!(LabelMap::builtin_names(), ["raw", "aami", "study6"]);
        let aami = LabelMap::builtin("aami").unwrap();
        assert_eq!(aami.classes(), ["N", "S", "V", "F", "Q"]);
        for (syms, class) in [("NLRej", 0), ("AaJS", 1), ("VE", 2), ("F", 3), ("/fQ", 4)] {
            for s in syms.chars() {
                assert_eq!(aami.class_of(&s.to_string()), Some(class), "{s}");
            }
        }
        assert_eq!(aami.class_of("+"), None);
        assert_eq!(aami.class_of("B"), None);
        assert_eq!(aami.symbols_of(1), ["A", "a", "J", "S"]);
        let s6 = LabelMap::builtin("study6").unwrap();
        assert_eq!(s6.classes(), ["N", "L", "R", "V", "A", "P"]);
        assert_eq!(s6.class_of("/"), Some(5));
        assert_eq!(s6.class_of("F"), None);
        let raw = LabelMap::builtin("raw").unwrap();
        assert_eq!(raw.classes().len(), 20);
        assert!(raw.classes().iter().all(|c| crate::annotations::is_beat(c)));
        assert!(LabelMap::builtin("nope").is_err());
    }

    #[test]
    fn label_map_errors_name_the_line() {
        let e = LabelMap::parse("# c\nN,N\nN,X\n", "m").unwrap_err();
        assert_eq!(e.to_string(), "label map m, line 3: symbol \"N\" is mapped twice");
        assert!(LabelMap::parse("N,N,N\n", "m")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(LabelMap::parse("+,R\n", "m")
            .unwrap_err()
            .to_string()
            .contains("not a WFDB beat"));
        assert!(LabelMap::parse("# nothing\n", "m").is_err());
        let m = LabelMap::parse("symbol,class\nV, ectopic\nN ,normal\n", "m").unwrap();
        assert_eq!(m.classes(), ["ectopic", "normal"]);
        let anns = vec![
            Annotation::new(1, "N"),
            Annotation::new(2, "+"),
            Annotation::new(3, "V"),
            Annotation::new(4, "A"),
        ];
        let b = labelled_beats(&anns, &m);
        assert_eq!(
            b.iter().map(|b| (b.sample, b.class)).collect::<Vec<_>>(),
            [(1, 1), (3, 0)]
        );
        assert!(matches!(
            LabelMap::from_file(Path::new("/nonexistent/x.csv")),
            Err(MitdbError::Io { .. })
        ));
    }
}
