//! MIT-format WFDB annotation files (`.atr`, `.qrs`, ...): reading and writing.
//!
//! The format (PhysioNet *annot(5)*) is a stream of 16-bit little-endian words;
//! the top 6 bits are the annotation code `A`, the low 10 bits a datum `I`.
//! Codes 1..=49 are annotations whose `I` is the sample interval from the previous
//! annotation; the pseudo-codes SKIP (59, a 32-bit interval follows), NUM (60),
//! SUB (61), CHN (62) and AUX (63, `I` bytes of text follow, padded to even) modify
//! the interval or the fields of the annotation. `A = 0, I = 0` ends the file.
//! As in the WFDB library, `chan` and `num` carry over from one annotation to the
//! next until changed, while `subtype` and `aux` apply to one annotation only.

use crate::wfdb::write_atomic;
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Errors from reading or writing annotation files; each names the file and, where
/// relevant, the annotation at fault.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    /// An I/O error on a named file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The file is malformed.
    #[error("annotation file {path}: {message} (at byte {offset}, after {count} annotations)")]
    Format {
        /// The file.
        path: PathBuf,
        /// Byte offset where the problem was found.
        offset: usize,
        /// Annotations successfully read before it.
        count: usize,
        /// What is wrong.
        message: String,
    },
    /// An annotation that cannot be written.
    #[error("writing annotation file {path}: annotation {index} (sample {sample}, symbol {symbol:?}): {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// 0-based index of the annotation.
        index: usize,
        /// Its sample.
        sample: u64,
        /// Its symbol.
        symbol: String,
        /// What is wrong.
        message: String,
    },
}

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// Sample number (from the start of the record) the annotation refers to.
    pub sample: u64,
    /// Annotation mnemonic (e.g. `N`, `V`, `+`); codes without a standard
    /// mnemonic are written `[n]` as in the WFDB library.
    pub symbol: String,
    /// Annotation subtype (`subtyp`).
    pub subtype: i8,
    /// Signal number the annotation refers to (`chan`).
    pub chan: u8,
    /// Annotator-specific number (`num`).
    pub num: i8,
    /// Auxiliary text, e.g. a rhythm label such as `(AFIB` on a `+` annotation.
    pub aux: Option<String>,
}

impl Annotation {
    /// An annotation with the given sample and symbol and all other fields zero/empty.
    pub fn new(sample: u64, symbol: &str) -> Annotation {
        Annotation {
            sample,
            symbol: symbol.to_string(),
            subtype: 0,
            chan: 0,
            num: 0,
            aux: None,
        }
    }

    /// Whether this annotation marks a beat (see [`is_beat`]).
    pub fn is_beat(&self) -> bool {
        is_beat(&self.symbol)
    }
}

const SKIP: u16 = 59;
const NUM: u16 = 60;
const SUB: u16 = 61;
const CHN: u16 = 62;
const AUX: u16 = 63;
/// Largest annotation code (WFDB's ACMAX).
const ACMAX: u16 = 49;

/// The standard WFDB annotation codes (`ecgcodes.h`): `(code, mnemonic)`.
pub const CODES: &[(u8, &str)] = &[
    (1, "N"),
    (2, "L"),
    (3, "R"),
    (4, "a"),
    (5, "V"),
    (6, "F"),
    (7, "J"),
    (8, "A"),
    (9, "S"),
    (10, "E"),
    (11, "j"),
    (12, "/"),
    (13, "Q"),
    (14, "~"),
    (16, "|"),
    (18, "s"),
    (19, "T"),
    (20, "*"),
    (21, "D"),
    (22, "\""),
    (23, "="),
    (24, "p"),
    (25, "B"),
    (26, "^"),
    (27, "t"),
    (28, "+"),
    (29, "u"),
    (30, "?"),
    (31, "!"),
    (32, "["),
    (33, "]"),
    (34, "e"),
    (35, "n"),
    (36, "@"),
    (37, "x"),
    (38, "f"),
    (39, "("),
    (40, ")"),
    (41, "r"),
];

/// Codes the WFDB library counts as QRS complexes (its `isqrs` table): N L R a V F
/// J A S E j / Q (1-13), B (25), ? (30), ! (31), e (34), n (35), f (38), r (41).
const QRS_CODES: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 25, 30, 31, 34, 35, 38, 41];

/// The mnemonic of an annotation code: the standard one, or `[n]` for other codes
/// in 0..=49 (as WFDB's `annstr`).
pub fn symbol_of(code: u8) -> String {
    match CODES.iter().find(|(c, _)| *c == code) {
        Some((_, s)) => s.to_string(),
        None => format!("[{code}]"),
    }
}

/// The code of a mnemonic: a standard one, or `[n]` with n in 0..=49.
pub fn code_of(symbol: &str) -> Option<u8> {
    if let Some((c, _)) = CODES.iter().find(|(_, s)| *s == symbol) {
        return Some(*c);
    }
    let n: u8 = symbol.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?;
    (n as u16 <= ACMAX).then_some(n)
}

/// Whether `symbol` is a beat (QRS) annotation in the WFDB `isqrs` sense:
/// N L R a V F J A S E j / Q B ? ! e n f r.
pub fn is_beat(symbol: &str) -> bool {
    code_of(symbol).is_some_and(|c| QRS_CODES.contains(&c))
}

/// Reads an annotation file.
///
/// A leading `"` (NOTE) annotation at sample 0 whose aux text starts with
/// `## time resolution:` (written by some tools to record the sampling frequency)
/// is metadata, not an annotation, and is dropped, as the WFDB library does.
pub fn read_annotations(path: &Path) -> Result<Vec<Annotation>, AnnotationError> {
    let bytes = std::fs::read(path).map_err(|error| AnnotationError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_annotations(&bytes, path)
}

/// Reads annotations from any reader; `path` only names the source in errors.
pub fn read_annotations_from(mut r: impl Read, path: &Path) -> Result<Vec<Annotation>, AnnotationError> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).map_err(|error| AnnotationError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_annotations(&bytes, path)
}

fn parse_annotations(bytes: &[u8], path: &Path) -> Result<Vec<Annotation>, AnnotationError> {
    let mut out: Vec<Annotation> = Vec::new();
    let mut pos = 0usize;
    let mut time: i64 = 0;
    let (mut chan, mut num) = (0u8, 0i8);
    let err = |offset: usize, count: usize, message: String| AnnotationError::Format {
        path: path.to_path_buf(),
        offset,
        count,
        message,
    };
    let word = |pos: usize| -> Option<u16> { bytes.get(pos..pos + 2).map(|b| u16::from_le_bytes([b[0], b[1]])) };
    loop {
        let Some(w) = word(pos) else {
            if pos == bytes.len() {
                // No end marker: tolerated (some writers omit it), as in wfdb-python.
                break;
            }
            return Err(err(pos, out.len(), "file ends inside a 16-bit word".into()));
        };
        let (a, i) = (w >> 10, w & 0x3ff);
        let here = pos;
        pos += 2;
        match a {
            0 if i == 0 => break,
            SKIP => {
                let (Some(hi), Some(lo)) = (word(pos), word(pos + 2)) else {
                    return Err(err(here, out.len(), "file ends inside a SKIP interval".into()));
                };
                pos += 4;
                let skip = (((hi as u32) << 16) | lo as u32) as i32;
                time += skip as i64;
            }
            NUM | SUB | CHN | AUX => {
                let Some(last) = out.last_mut() else {
                    return Err(err(
                        here,
                        0,
                        format!("pseudo-annotation code {a} before any annotation"),
                    ));
                };
                match a {
                    NUM => {
                        num = i as u8 as i8;
                        last.num = num;
                    }
                    SUB => last.subtype = i as u8 as i8,
                    CHN => {
                        chan = i as u8;
                        last.chan = chan;
                    }
                    _ => {
                        let len = i as usize;
                        // The string and its padding byte (when `len` is odd) must be there.
                        let Some(text) = bytes.get(pos..pos + len + (len & 1)).map(|t| &t[..len]) else {
                            return Err(err(
                                here,
                                out.len(),
                                format!("file ends inside an AUX string of {len} bytes"),
                            ));
                        };
                        pos += len + (len & 1);
                        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                        last.aux = Some(String::from_utf8_lossy(&text[..end]).into_owned());
                    }
                }
            }
            50..=58 => {} // unassigned pseudo-codes: ignored, as the WFDB library does
            _ => {
                time += i as i64;
                if time < 0 {
                    return Err(err(here, out.len(), format!("annotation at negative sample {time}")));
                }
                out.push(Annotation {
                    sample: time as u64,
                    symbol: symbol_of(a as u8),
                    subtype: 0,
                    chan,
                    num,
                    aux: None,
                });
            }
        }
    }
    if let Some(first) = out.first() {
        if first.sample == 0
            && first.symbol == "\""
            && first
                .aux
                .as_deref()
                .is_some_and(|a| a.starts_with("## time resolution:"))
        {
            out.remove(0);
        }
    }
    Ok(out)
}

/// Encodes annotations in the MIT format (with the end marker).
pub fn encode_annotations(anns: &[Annotation], path: &Path) -> Result<Vec<u8>, AnnotationError> {
    let mut b: Vec<u8> = Vec::with_capacity(anns.len() * 2 + 2);
    let put = |b: &mut Vec<u8>, a: u16, i: u16| b.extend_from_slice(&((a << 10) | (i & 0x3ff)).to_le_bytes());
    let (mut time, mut chan, mut num) = (0u64, 0u8, 0i8);
    for (index, ann) in anns.iter().enumerate() {
        let werr = |message: String| AnnotationError::Write {
            path: path.to_path_buf(),
            index,
            sample: ann.sample,
            symbol: ann.symbol.clone(),
            message,
        };
        let code = code_of(&ann.symbol).ok_or_else(|| werr("unknown annotation symbol".into()))?;
        if code == 0 {
            return Err(werr("code 0 (NOTQRS) cannot be stored".into()));
        }
        if ann.sample < time {
            return Err(werr(format!(
                "annotations must be in non-decreasing sample order (previous sample {time})"
            )));
        }
        let mut delta = ann.sample - time;
        // Intervals over 1023 go in SKIP words (32-bit signed; chained when longer).
        while delta > 1023 {
            let skip = delta.min(i32::MAX as u64) as u32;
            put(&mut b, SKIP, 0);
            b.extend_from_slice(&((skip >> 16) as u16).to_le_bytes());
            b.extend_from_slice(&((skip & 0xffff) as u16).to_le_bytes());
            delta -= skip as u64;
        }
        put(&mut b, code as u16, delta as u16);
        time = ann.sample;
        if ann.subtype != 0 {
            put(&mut b, SUB, ann.subtype as i16 as u16); // 10-bit two's complement, as WFDB
        }
        if ann.chan != chan {
            put(&mut b, CHN, ann.chan as u16);
            chan = ann.chan;
        }
        if ann.num != num {
            put(&mut b, NUM, ann.num as i16 as u16);
            num = ann.num;
        }
        if let Some(aux) = &ann.aux {
            // As PhysioNet's files (and the WFDB library) do, the stored string
            // includes its NUL terminator; the total is padded to an even length.
            let bytes = aux.as_bytes();
            if bytes.len() > 254 {
                return Err(werr(format!("aux text of {} bytes exceeds 254", bytes.len())));
            }
            if bytes.contains(&0) {
                return Err(werr("aux text contains a NUL byte".into()));
            }
            put(&mut b, AUX, bytes.len() as u16 + 1);
            b.extend_from_slice(bytes);
            b.push(0);
            if bytes.len() % 2 == 0 {
                b.push(0);
            }
        }
    }
    b.extend_from_slice(&[0, 0]);
    Ok(b)
}

/// Writes annotations to `path` in the MIT format, readable by PhysioNet's tools
/// (`rdann`, `bxb`). The file is written under a temporary name in the same
/// directory and renamed into place, so a crash never leaves a half-written file
/// under the final name. Annotations must be sorted by sample.
pub fn write_annotations(path: &Path, anns: &[Annotation]) -> Result<(), AnnotationError> {
    let bytes = encode_annotations(anns, path)?;
    write_atomic(path, &bytes).map_err(|e| match e {
        crate::wfdb::WfdbError::Io { path, error } => AnnotationError::Io { path, error },
        other => AnnotationError::Io {
            path: path.to_path_buf(),
            error: io::Error::other(other.to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn ann(sample: u64, symbol: &str, subtype: i8, chan: u8, num: i8, aux: Option<&str>) -> Annotation {
        Annotation {
            sample,
            symbol: symbol.into(),
            subtype,
            chan,
            num,
            aux: aux.map(str::to_string),
        }
    }

    #[test]
    fn code_table_and_beats() {
        assert_eq!(CODES.len(), 39);
        for (code, sym) in [
            (1, "N"),
            (5, "V"),
            (8, "A"),
            (12, "/"),
            (14, "~"),
            (16, "|"),
            (22, "\""),
            (28, "+"),
            (38, "f"),
            (41, "r"),
        ] {
            assert_eq!(code_of(sym), Some(code));
            assert_eq!(symbol_of(code), sym);
        }
        assert_eq!(symbol_of(15), "[15]");
        assert_eq!(code_of("[15]"), Some(15));
        assert_eq!(code_of("[50]"), None);
        assert_eq!(code_of("X"), None);
        let beats: String = CODES.iter().filter(|(_, s)| is_beat(s)).map(|(_, s)| *s).collect();
        assert_eq!(beats, "NLRaVFJASEj/QB?!enfr");
        assert!(!is_beat("+") && !is_beat("~") && !is_beat("|") && !is_beat("x") && !is_beat(""));
    }

    #[test]
    fn round_trip_with_skip_aux_sub_chan_num() {
        let dir = TempDir::new("ann");
        let path = dir.path().join("r.qrs");
        let anns = vec![
            ann(0, "+", 0, 0, 0, Some("(N")),
            ann(18, "N", 0, 0, 0, None),
            ann(18, "V", -3, 1, 0, None),   // same sample, chan change, negative subtype
            ann(1041, "N", 0, 1, 0, None),  // delta 1023: no SKIP
            ann(2065, "A", 5, 1, -7, None), // delta 1024: SKIP, num change
            ann(2065 + 5_000_000_000 % (1 << 31), "+", 0, 0, -7, Some("(AFIB")),
            ann(3_000_000_000, "~", 0, 255, 127, Some("")),
            ann(3_000_000_001, "[17]", 0, 255, 127, Some("odd")),
            ann(3_000_000_001, "\"", 0, 255, 127, Some(&"x".repeat(254))),
            ann(1 << 40, "N", 0, 255, 127, None), // several chained SKIPs
        ];
        write_annotations(&path, &anns).unwrap();
        assert_eq!(read_annotations(&path).unwrap(), anns);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["r.qrs"], "no temporary file left behind");
        // Empty file round trip.
        write_annotations(&path, &[]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), vec![0, 0]);
        assert!(read_annotations(&path).unwrap().is_empty());
    }

    #[test]
    fn writer_rejects_bad_annotations() {
        let p = Path::new("x.atr");
        let e = encode_annotations(&[ann(5, "N", 0, 0, 0, None), ann(4, "N", 0, 0, 0, None)], p).unwrap_err();
        assert!(
            matches!(
                e,
                AnnotationError::Write {
                    index: 1,
                    sample: 4,
                    ..
                }
            ),
            "{e}"
        );
        assert!(encode_annotations(&[ann(5, "Z", 0, 0, 0, None)], p)
            .unwrap_err()
            .to_string()
            .contains("\"Z\""));
        assert!(encode_annotations(&[ann(5, "N", 0, 0, 0, Some(&"x".repeat(256)))], p).is_err());
        assert!(encode_annotations(&[ann(5, "[0]", 0, 0, 0, None)], p).is_err());
    }

    #[test]
    fn truncated_and_malformed_files_are_errors() {
        let p = Path::new("t.atr");
        let anns = vec![ann(10, "N", 0, 0, 0, None), ann(5000, "+", 0, 0, 0, Some("(VT"))];
        let bytes = encode_annotations(&anns, p).unwrap();
        // Every truncation either errors or yields a prefix; never panics.
        for cut in 0..bytes.len() {
            match parse_annotations(&bytes[..cut], p) {
                Ok(v) => assert!(anns.starts_with(&v[..v.len().min(anns.len())]) || v.len() <= 2),
                Err(e) => assert!(e.to_string().contains("t.atr"), "{e}"),
            }
        }
        assert!(parse_annotations(&bytes[..3], p).is_err());
        // Missing end marker is tolerated.
        assert_eq!(parse_annotations(&bytes[..bytes.len() - 2], p).unwrap(), anns);
        // AUX before any annotation.
        let e = parse_annotations(&[0x02, 0xfc, b'a', b'b'], p).unwrap_err();
        assert!(e.to_string().contains("before any annotation"), "{e}");
        // Negative SKIP past zero.
        let e = parse_annotations(&[0, 59 << 2, 0xff, 0xff, 0xf0, 0xff, 0x00, 0x04], p).unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
        // Random garbage never panics.
        let mut x: u32 = 99;
        for len in 0..400 {
            let g: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse_annotations(&g, p);
        }
    }

    #[test]
    fn time_resolution_note_is_dropped() {
        let p = Path::new("n.atr");
        let anns = vec![
            ann(0, "\"", 0, 0, 0, Some("## time resolution: 360")),
            ann(7, "N", 0, 0, 0, None),
        ];
        let bytes = encode_annotations(&anns, p).unwrap();
        assert_eq!(parse_annotations(&bytes, p).unwrap(), anns[1..]);
        assert_eq!(read_annotations_from(&bytes[..], p).unwrap().len(), 1);
    }
}
