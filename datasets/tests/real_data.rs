//! Tests on the real MIT-BIH and PTB-XL data under `$ECGFLOW_DATA` (default
//! `../shared/data` beside the workspace). Each test prints a note and passes when
//! the data is absent.

use ecgflow_datasets::annotations::{encode_annotations, is_beat, read_annotations};
use ecgflow_datasets::mitdb::{self, LabelMap};
use ecgflow_datasets::ptbxl::{self, Resolution, SUPERCLASSES};
use ecgflow_datasets::wfdb::{read_record, Header, RecordReader};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn data(sub: &str) -> Option<PathBuf> {
    let base = ecgflow_datasets::data_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")));
    let d = base.join(sub);
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!("note: {} not found (set ECGFLOW_DATA); skipping", d.display());
        None
    }
}

#[test]
fn mitdb_100_signal_and_checksums() {
    let Some(dir) = data("mitdb") else { return };
    let t = Instant::now();
    let (h, sig) = read_record(&dir, "100").unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read 100 whole: {} x {} samples in {:.3} s = {:.1} M samples/s",
        sig.len(),
        sig[0].len(),
        secs,
        (sig.len() * sig[0].len()) as f64 / secs / 1e6
    );
    assert_eq!(h.fs, 360.0);
    assert_eq!(sig.len(), 2);
    assert!(sig.iter().all(|s| s.len() == 650_000));
    // First samples as rdsamp prints them: MLII -0.145 mV, V5 -0.065 mV.
    assert_eq!(sig[0][0], -0.145);
    assert_eq!(sig[1][0], -0.065);
    // Chunked reading of MLII alone, odd chunk size, matches the whole read.
    let mut r = mitdb::open_lead(&dir, "100", "MLII").unwrap();
    let mut mlii = Vec::new();
    while let Some(c) = r.read_chunk(7777).unwrap() {
        assert!(c[0].len() <= 7777);
        mlii.extend(c.into_iter().next().unwrap());
    }
    assert_eq!(mlii, sig[0]);
}

#[test]
fn mitdb_all_headers_leads_and_checksums() {
    let Some(dir) = data("mitdb") else { return };
    let records = mitdb::record_set("all").unwrap();
    let t = Instant::now();
    let mut samples = 0usize;
    for rec in &records {
        let h = Header::read(&dir.join(format!("{rec}.hea"))).unwrap();
        assert_eq!((h.signals.len(), h.fs, h.n_samples), (2, 360.0, Some(650_000)), "{rec}");
        assert!(h.signals.iter().all(|s| s.format == 212 && s.checksum.is_some()));
        match rec.as_str() {
            "102" | "104" => {
                let e = mitdb::lead_index(&h, rec, "MLII").unwrap_err().to_string();
                assert!(e.contains(rec.as_str()) && e.contains("V5"), "{e}");
            }
            "114" => assert_eq!(mitdb::lead_index(&h, rec, "MLII").unwrap(), 1),
            _ => assert_eq!(mitdb::lead_index(&h, rec, "MLII").unwrap(), 0, "{rec}"),
        }
        // Reading every sample verifies both checksums at the end.
        let mut r = RecordReader::open(&dir, rec).unwrap();
        while let Some(c) = r.read_chunk(1 << 16).unwrap() {
            samples += c[0].len() + c[1].len();
        }
    }
    println!(
        "48 MIT-BIH records, {samples} samples, checksums verified in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(samples, 48 * 2 * 650_000);
    let e = mitdb::read_lead(&dir, "104", "MLII").unwrap_err().to_string();
    assert_eq!(e, "record 104 has no lead \"MLII\" (it has: V5, V2)");
}

#[test]
fn mitdb_100_annotations() {
    let Some(dir) = data("mitdb") else { return };
    let anns = read_annotations(&dir.join("100.atr")).unwrap();
    assert_eq!(anns.len(), 2274);
    assert_eq!(
        (anns[0].sample, anns[0].symbol.as_str(), anns[0].aux.as_deref()),
        (18, "+", Some("(N"))
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in anns.iter().filter(|a| a.is_beat()) {
        *counts.entry(a.symbol.as_str()).or_default() += 1;
    }
    assert_eq!(counts.values().sum::<usize>(), 2273);
    assert_eq!((counts["N"], counts["A"], counts["V"]), (2239, 33, 1));
}

#[test]
fn mitdb_annotations_reencode_byte_identical_and_class_counts() {
    let Some(dir) = data("mitdb") else { return };
    let aami = LabelMap::builtin("aami").unwrap();
    let mut symbols: BTreeMap<String, usize> = BTreeMap::new();
    let mut classes = vec![0usize; aami.classes().len()];
    let mut rhythms: BTreeMap<String, usize> = BTreeMap::new();
    let mut identical = 0;
    for rec in mitdb::record_set("all").unwrap() {
        let path = dir.join(format!("{rec}.atr"));
        let anns = read_annotations(&path).unwrap();
        let original = std::fs::read(&path).unwrap();
        let ours = encode_annotations(&anns, &path).unwrap();
        // Our writer reproduces PhysioNet's files byte for byte, except that a few
        // files store some AUX strings without the NUL terminator our writer adds.
        if ours == original {
            identical += 1;
        } else {
            assert_eq!(ours, aux_with_nul(&original), "{rec}.atr");
        }
        assert_eq!(
            ecgflow_datasets::annotations::read_annotations_from(&ours[..], &path).unwrap(),
            anns
        );
        for a in &anns {
            if is_beat(&a.symbol) {
                *symbols.entry(a.symbol.clone()).or_default() += 1;
            }
            if let Some(aux) = a.aux.as_deref().filter(|_| a.symbol == "+") {
                *rhythms.entry(aux.to_string()).or_default() += 1;
            }
        }
        for b in mitdb::labelled_beats(&anns, &aami) {
            classes[b.class] += 1;
        }
    }
    println!("beat symbols over 48 records: {symbols:?}");
    println!("rhythm labels: {rhythms:?}");
    println!("AAMI classes {:?}: {classes:?}", aami.classes());
    println!("{identical} of 48 .atr files re-encode byte-identical; the rest differ only in AUX terminators");
    assert!(identical >= 40);
    // The MIT-BIH directory's table of beat totals.
    let expect = [
        ("N", 75052),
        ("L", 8075),
        ("R", 7259),
        ("A", 2546),
        ("a", 150),
        ("J", 83),
        ("S", 2),
        ("V", 7130),
        ("F", 803),
        ("!", 472),
        ("e", 16),
        ("j", 229),
        ("E", 106),
        ("/", 7028),
        ("f", 982),
        ("Q", 33),
    ];
    assert_eq!(symbols.len(), expect.len());
    for (s, n) in expect {
        assert_eq!(symbols[s], n, "{s}");
    }
    assert!(rhythms.contains_key("(VT") && rhythms.contains_key("(AFIB"));
}

#[test]
fn ptbxl_subset() {
    let Some(dir) = data("ptbxl") else { return };
    let t = Instant::now();
    let recs = ptbxl::load(&dir).unwrap();
    println!(
        "loaded {} PTB-XL rows in {:.3} s",
        recs.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(recs.len(), 1732);
    assert!(recs.iter().all(|r| (1..=9).contains(&r.strat_fold)));
    assert!(recs.iter().all(|r| r.ecg_id <= 1999 && r.filename_hr.is_none()));
    let (counts, none) = ptbxl::superclass_counts(&recs);
    for (name, c) in SUPERCLASSES.iter().zip(counts) {
        println!("{name:5} {c}");
    }
    println!("none  {none}");
    assert!(counts[0] > counts[1] && counts.iter().all(|&c| c > 0));
    let first = &recs[0];
    assert_eq!(
        (first.ecg_id, first.patient_id, first.sex, first.strat_fold),
        (1, 15709, 1, 3)
    );
    assert_eq!(first.superclass_names(), ["NORM"]);
    assert_eq!(
        ptbxl::filter_folds(&recs, &[9]).len() + ptbxl::filter_folds(&recs, &[1, 2, 3, 4, 5, 6, 7, 8]).len(),
        1732
    );
    // Every record's 12-lead signal reads and passes its checksums.
    let t = Instant::now();
    for r in &recs {
        let (h, sig) = r.read_signal(&dir, Resolution::Low).unwrap();
        assert_eq!((h.fs, sig.len()), (100.0, 12), "ecg_id {}", r.ecg_id);
        assert!(sig.iter().all(|s| s.len() == 1000), "ecg_id {}", r.ecg_id);
    }
    println!(
        "read {} 12-lead records in {:.2} s",
        recs.len(),
        t.elapsed().as_secs_f64()
    );
    let (h, sig) = first.read_signal(&dir, Resolution::Low).unwrap();
    let names: Vec<&str> = h.signals.iter().map(|s| s.description.as_str()).collect();
    assert_eq!(
        names,
        ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    );
    assert_eq!(sig[0][0], -0.119);
}

/// Rewrites an MIT annotation byte stream so that every AUX string carries a NUL
/// terminator (the convention of our writer and of most PhysioNet files).
fn aux_with_nul(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut i = 0;
    while i + 1 < bytes.len() {
        let w = u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let (a, n) = (w >> 10, (w & 0x3ff) as usize);
        i += 2;
        match a {
            59 => {
                out.extend_from_slice(&bytes[i - 2..i + 4]);
                i += 4;
            }
            63 => {
                let text = &bytes[i..i + n];
                let end = text.iter().position(|&b| b == 0).unwrap_or(n);
                out.extend_from_slice(&((63u16 << 10) | (end as u16 + 1)).to_le_bytes());
                out.extend_from_slice(&text[..end]);
                out.push(0);
                if end % 2 == 0 {
                    out.push(0);
                }
                i += n + (n & 1);
            }
            _ => out.extend_from_slice(&w.to_le_bytes()),
        }
    }
    out
}
