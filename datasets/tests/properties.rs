//! Property tests: the header, signal, annotation and CSV parsers never panic on
//! random bytes or on random mutations of real files, and whatever annotation file
//! parses re-encodes to the same annotations.
//!
//! A tiny xorshift generator keeps the cases reproducible (no dependencies); a
//! failure prints the case's seed. About 20 000 cases per input kind.

use ecgflow_datasets::annotations::{encode_annotations, read_annotations_from, Annotation};
use ecgflow_datasets::csv::parse_csv;
use ecgflow_datasets::mitdb::LabelMap;
use ecgflow_datasets::ptbxl::{parse_database, parse_scp_codes, parse_statements};
use ecgflow_datasets::wfdb::{Header, RecordReader};
use std::path::{Path, PathBuf};

/// xorshift64* with a SplitMix64-scrambled seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

const CASES: u64 = 20_000;

/// Characters that matter to the header grammar, plus multi-byte UTF-8.
const HEADER_ALPHABET: &[&str] = &[
    "0",
    "1",
    "2",
    "9",
    " ",
    "\t",
    "\n",
    "\r",
    ".",
    "/",
    "x",
    ":",
    "+",
    "(",
    ")",
    "-",
    "#",
    "e",
    "a",
    "é",
    "€",
    "🫀",
    "212",
    "16",
    "61",
    "80",
    "310",
    "8",
    "24",
    "32",
    "360",
    "-0",
    "NaN",
    "inf",
    "65536",
    "4294967296",
    "99999999999999999999",
];

/// Real headers (MIT-BIH 100 and 114, PTB-XL 00001_lr, a multi-frequency example).
const HEADERS: &[&str] = &[
    "100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n# 69 M 1085 1629 x1\n# Aldomet, Inderal\n",
    "114 2 360 650000\n114.dat 212 200 11 1024 1015 -11371 0 V5\n114.dat 212 200 11 1024 1027 -13230 0 MLII\n",
    "00001_lr 12 100 1000\n00001_lr.dat 16 1000.0(0)/mV 16 0 -119 1508 0 I\n00001_lr.dat 16 1000.0(0)/mV 16 0 -55 723 0 II\n00001_lr.dat 16 1000.0(0)/mV 16 0 64 64758 0 III\n00001_lr.dat 16 1000.0(0)/mV 16 0 86 64423 0 AVR\n00001_lr.dat 16 1000.0(0)/mV 16 0 -91 1211 0 AVL\n00001_lr.dat 16 1000.0(0)/mV 16 0 4 7 0 AVF\n00001_lr.dat 16 1000.0(0)/mV 16 0 -69 63827 0 V1\n00001_lr.dat 16 1000.0(0)/mV 16 0 -31 6999 0 V2\n00001_lr.dat 16 1000.0(0)/mV 16 0 0 63759 0 V3\n00001_lr.dat 16 1000.0(0)/mV 16 0 -26 61447 0 V4\n00001_lr.dat 16 1000.0(0)/mV 16 0 -39 64979 0 V5\n00001_lr.dat 16 1000.0(0)/mV 16 0 -79 832 0 V6\n",
    "rec 3 360/720(12) 1000 12:00:00 01/02/2003\na.dat 212x4+2 100(-5)/uV 12 3 7 -1 0 ECG lead II\na.dat 212\nb.dat 310 0/mmHg\n",
];

/// Applies 1..=4 random edits (replace, insert, delete, duplicate a span) to `text`.
fn mutate_text(rng: &mut Rng, text: &str) -> String {
    let mut t: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(t.len() + 1);
        let piece: Vec<char> = HEADER_ALPHABET[rng.below(HEADER_ALPHABET.len())].chars().collect();
        match rng.below(4) {
            0 if at < t.len() => {
                t.splice(at..at + 1, piece);
            }
            1 => {
                t.splice(at..at, piece);
            }
            2 if at < t.len() => {
                let end = (at + 1 + rng.below(8)).min(t.len());
                t.drain(at..end);
            }
            _ => {
                let end = (at + rng.below(20)).min(t.len());
                let span: Vec<char> = t[at..end].to_vec();
                let to = rng.below(t.len() + 1);
                t.splice(to..to, span);
            }
        }
    }
    t.into_iter().collect()
}

fn temp_dir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ecgflow-props-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn header_parser_never_panics_on_random_bytes() {
    let mut rng = Rng::new(1);
    for case in 0..CASES {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                // Mostly header-like ASCII, sometimes any byte.
                if rng.below(4) == 0 {
                    rng.byte()
                } else {
                    b"0123456789 ./x:+()-#\n\tabc"[rng.below(25)]
                }
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        let r = std::panic::catch_unwind(|| Header::parse(&text, "g"));
        assert!(r.is_ok(), "case {case}: panic on {text:?}");
    }
}

#[test]
fn mutated_real_headers_never_panic_and_read_signals_safely() {
    let dir = temp_dir("hdr");
    let mut rng = Rng::new(2);
    let mut parsed = 0;
    let mut read = 0;
    for case in 0..CASES {
        let base = HEADERS[rng.below(HEADERS.len())];
        let text = mutate_text(&mut rng, base);
        let h = match std::panic::catch_unwind(|| Header::parse(&text, "m")) {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty());
                continue;
            }
            Err(_) => panic!("case {case}: panic parsing {text:?}"),
        };
        parsed += 1;
        // Header text written back parses again.
        let again = h.to_text();
        assert!(
            std::panic::catch_unwind(|| Header::parse(&again, "m")).is_ok(),
            "case {case}: panic re-parsing {again:?}"
        );
        // Every 8th parsed header: read random signal files through it.
        if parsed % 8 != 0 {
            continue;
        }
        for s in &h.signals {
            if s.file.contains(['/', '\\']) || s.file.starts_with('.') || s.file.is_empty() {
                continue;
            }
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            let _ = std::fs::write(dir.join(&s.file), bytes);
        }
        let chunk = 1 + rng.below(7);
        let outcome = std::panic::catch_unwind(|| -> usize {
            let Ok(mut r) = RecordReader::from_header(&dir, "m", h.clone()) else {
                return 0;
            };
            let mut n = 0;
            // At most 100 chunks: a header without a length on a short file ends soon.
            for _ in 0..100 {
                match r.read_chunk(chunk) {
                    Ok(Some(c)) => n += c.iter().map(Vec::len).sum::<usize>(),
                    _ => break,
                }
            }
            n
        });
        assert!(outcome.is_ok(), "case {case}: panic reading through {text:?}");
        read += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{parsed} of {CASES} mutated headers parsed; {read} used to read signal files");
    assert!(parsed > CASES as usize / 10, "mutations too destructive: {parsed}");
}

/// A real-looking annotation file: the first 2 000 bytes of MIT-BIH 232.atr when the
/// data is there (aux strings, a subtype), else one built here with SKIP, SUB, CHN,
/// NUM and AUX.
fn annotation_bases() -> Vec<Vec<u8>> {
    let mut anns = vec![Annotation::new(18, "+")];
    anns[0].aux = Some("(N".into());
    for i in 1..40u64 {
        let mut a = Annotation::new(18 + i * 290, ["N", "V", "A", "~"][(i % 4) as usize]);
        a.subtype = (i % 3) as i8 - 1;
        a.chan = (i / 10) as u8;
        a.num = (i / 13) as i8;
        anns.push(a);
    }
    let mut vt = Annotation::new(100_000, "+");
    vt.aux = Some("(VT".into());
    anns.push(vt);
    let mut bases = vec![encode_annotations(&anns, Path::new("built.atr")).unwrap()];
    let data = ecgflow_datasets::data_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
    for rec in ["232", "208"] {
        if let Ok(b) = std::fs::read(data.join("mitdb").join(format!("{rec}.atr"))) {
            bases.push(b[..b.len().min(2000)].to_vec());
        }
    }
    bases
}

/// Mutates an annotation byte stream: flipped bits, random words (often pseudo-codes
/// SKIP/NUM/SUB/CHN/AUX with random data), deletions, truncation.
fn mutate_bytes(rng: &mut Rng, b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if at < v.len() => v[at] ^= 1 << rng.below(8),
            1 => {
                let code = [59u16, 60, 61, 62, 63, rng.below(64) as u16][rng.below(6)];
                let w = (code << 10) | rng.below(1024) as u16;
                v.splice(at..at, w.to_le_bytes());
            }
            2 if at < v.len() => {
                let end = (at + 1 + rng.below(6)).min(v.len());
                v.drain(at..end);
            }
            3 => v.truncate(at),
            _ => {
                let n = rng.below(6);
                let junk: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                v.splice(at..at, junk);
            }
        }
    }
    v
}

/// Parses `bytes`; if that succeeds and the annotations can be written, writing
/// and re-reading them must give the same annotations.
fn check_annotations(case: u64, bytes: &[u8]) -> bool {
    let p = Path::new("fuzz.atr");
    let r = std::panic::catch_unwind(|| read_annotations_from(bytes, p));
    let anns = match r {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            assert!(e.to_string().contains("fuzz.atr"), "case {case}: {e}");
            return false;
        }
        Err(_) => panic!("case {case}: panic on {bytes:02x?}"),
    };
    if let Ok(enc) = encode_annotations(&anns, p) {
        let back = read_annotations_from(&enc[..], p).unwrap();
        assert_eq!(back, anns, "case {case}: round trip of {bytes:02x?}");
    }
    true
}

#[test]
fn annotation_parser_never_panics_on_random_bytes() {
    let mut rng = Rng::new(3);
    let mut ok = 0;
    for case in 0..CASES {
        let len = rng.below(120);
        let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        ok += check_annotations(case, &bytes) as usize;
    }
    println!("{ok} of {CASES} random byte strings parsed as annotations");
}

#[test]
fn mutated_real_annotation_files_never_panic_and_round_trip() {
    let bases = annotation_bases();
    let mut rng = Rng::new(4);
    let mut ok = 0;
    for case in 0..CASES {
        let base = &bases[rng.below(bases.len())];
        let bytes = mutate_bytes(&mut rng, base);
        ok += check_annotations(case, &bytes) as usize;
    }
    println!(
        "{ok} of {CASES} mutated annotation files parsed ({} bases)",
        bases.len()
    );
}

#[test]
fn csv_ptbxl_and_label_map_parsers_never_panic() {
    const ALPHABET: &[&str] = &[
        ",", "\"", "\n", "\r\n", "'", "{", "}", ":", " ", "1", "0.5", "NORM", "é", "🫀", "nan", "x",
    ];
    const DB: &str = "ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr\n\
1,15709.0,56.0,1,\"{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}\",3,records100/00000/00001_lr\n\
2,13243.0,19.0,0,\"{'NORM': 80.0, 'SBRAD': 0.0}\",2,records100/00000/00002_lr\n";
    const ST: &str = ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n\
NORM,normal ECG,1.0,,,NORM,NORM\nSR,sinus rhythm,,,1.0,,\n";
    let statements = parse_statements(ST, Path::new("s.csv")).unwrap();
    let mut rng = Rng::new(5);
    for case in 0..CASES {
        let mut t: Vec<char> = [DB, ST, "{'NORM': 100.0, 'SR': 0.0}", "N,N\nV,V\n"][(case % 4) as usize]
            .chars()
            .collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(t.len() + 1);
            let piece: Vec<char> = ALPHABET[rng.below(ALPHABET.len())].chars().collect();
            if rng.below(2) == 0 && at < t.len() {
                t.splice(at..at + 1, piece);
            } else {
                t.splice(at..at, piece);
            }
        }
        let text: String = t.into_iter().collect();
        let r = std::panic::catch_unwind(|| {
            let _ = parse_csv(&text);
            let _ = parse_database(&text, Path::new("db.csv"), &statements);
            let _ = parse_statements(&text, Path::new("s.csv"));
            let _ = parse_scp_codes(&text);
            let _ = LabelMap::parse(&text, "m");
        });
        assert!(r.is_ok(), "case {case}: panic on {text:?}");
    }
}
