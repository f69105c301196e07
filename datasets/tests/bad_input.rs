//! Bad input (issue 3): each case gives an error that names the file and the
//! line or byte at fault, never a panic, and loses nothing that could be read.
//! The bad files are written into a temporary directory.

use ecgflow_datasets::annotations::{encode_annotations, read_annotations, Annotation, AnnotationError};
use ecgflow_datasets::mitdb;
use ecgflow_datasets::ptbxl::{self, PtbxlError, Resolution};
use ecgflow_datasets::wfdb::{write_record, Header, RecordReader, SignalSpec, WfdbError};
use std::path::{Path, PathBuf};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ecgflow-bad-input-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asserts that `message` contains every one of `needles`.
fn assert_names(message: &str, needles: &[&str]) {
    for n in needles {
        assert!(message.contains(n), "{n:?} missing from: {message}");
    }
}

/// Writes an MIT-BIH-like record `name` (format 212, MLII and V5, `n` samples) and
/// returns its header and digital samples.
fn mit_record(dir: &Path, name: &str, n: usize) -> (Header, Vec<Vec<i32>>) {
    let mut specs = Vec::new();
    for lead in ["MLII", "V5"] {
        let mut s = SignalSpec::new(&format!("{name}.dat"), 212, 200.0, "mV", lead);
        s.baseline = 1024;
        s.adc_zero = 1024;
        s.adc_resolution = 11;
        specs.push(s);
    }
    let h = Header {
        record: name.into(),
        fs: 360.0,
        counter_freq: None,
        base_counter: None,
        n_samples: None,
        base_time: None,
        base_date: None,
        signals: specs,
        comments: vec![],
    };
    let data: Vec<Vec<i32>> = (0..2)
        .map(|k| {
            (0..n as i32)
                .map(|i| 1024 + ((i * 37 + k * 500) % 1500) - 750)
                .collect()
        })
        .collect();
    let h = write_record(dir, &h, &data).unwrap();
    (h, data)
}

/// Reads a record in chunks of `n` frames: the frames delivered and the error, if any.
fn read_chunked(dir: &Path, rec: &str, n: usize) -> (Vec<Vec<f32>>, Option<WfdbError>) {
    let mut r = RecordReader::open(dir, rec).unwrap();
    let mut out = vec![Vec::new(); r.selected().len()];
    loop {
        match r.read_chunk(n) {
            Ok(Some(c)) => {
                for (o, c) in out.iter_mut().zip(c) {
                    o.extend(c);
                }
            }
            Ok(None) => return (out, None),
            Err(e) => {
                // After an error the reader is finished, it does not panic.
                assert!(matches!(r.read_chunk(n), Ok(None)));
                return (out, Some(e));
            }
        }
    }
}

#[test]
fn truncated_dat_names_file_and_byte_and_keeps_the_frames_before() {
    let dir = TempDir::new("trunc");
    let (h, data) = mit_record(dir.path(), "t1", 1000);
    let dat = dir.path().join("t1.dat");
    assert_eq!(std::fs::metadata(&dat).unwrap().len(), 3000);
    // 1000 bytes: 333 whole frames of 3 bytes and one stray byte.
    let bytes = std::fs::read(&dat).unwrap();
    std::fs::write(&dat, &bytes[..1000]).unwrap();
    let (sig, err) = read_chunked(dir.path(), "t1", 100);
    let e = err.expect("a truncation error");
    assert!(
        matches!(
            &e,
            WfdbError::Truncated {
                expected: 1000,
                found: 333,
                bytes: 1000,
                ..
            }
        ),
        "{e}"
    );
    assert_names(
        &e.to_string(),
        &["t1.dat", "record t1", "1000 samples", "333", "byte 1000"],
    );
    // Nothing lost: the 333 complete frames came before the error, all correct.
    for k in 0..2 {
        let want: Vec<f32> = data[k][..333].iter().map(|&d| h.signals[k].to_physical(d)).collect();
        assert_eq!(sig[k], want, "signal {k}");
    }
    // Whole-record reading reports the same error.
    let e = ecgflow_datasets::wfdb::read_record(dir.path(), "t1").unwrap_err();
    assert!(matches!(e, WfdbError::Truncated { found: 333, .. }), "{e}");
    // A file cut inside a frame of a record without a length: the whole frames,
    // then an error naming the file and its length.
    std::fs::write(
        dir.path().join("t1.hea"),
        "t1 2 360\nt1.dat 16 200 16 0 0\nt1.dat 16 200 16 0 0\n",
    )
    .unwrap();
    std::fs::write(&dat, &bytes[..10]).unwrap();
    let (sig, err) = read_chunked(dir.path(), "t1", 100);
    let e = err.expect("a partial-frame error");
    assert!(matches!(e, WfdbError::BadLength { .. }), "{e}");
    assert_names(&e.to_string(), &["t1.dat", "frame 2", "10 bytes"]);
    assert_eq!((sig[0].len(), sig[1].len()), (2, 2));
}

#[test]
fn checksum_mismatch_names_record_signal_and_file() {
    let dir = TempDir::new("cksum");
    let (h, _) = mit_record(dir.path(), "c1", 500);
    let dat = dir.path().join("c1.dat");
    let mut bytes = std::fs::read(&dat).unwrap();
    bytes[301] ^= 0x40; // high nibble of signal 1 (V5) in frame 100
    std::fs::write(&dat, &bytes).unwrap();
    let (sig, err) = read_chunked(dir.path(), "c1", 64);
    let e = err.expect("a checksum error");
    assert!(
        matches!(&e, WfdbError::Checksum { signal: 1, expected, .. } if Some(*expected) == h.signals[1].checksum),
        "{e}"
    );
    assert_names(
        &e.to_string(),
        &["record c1", "signal 1 (V5)", "c1.dat", "c1.hea", "checksum"],
    );
    // The data is all delivered before the verdict (which comes at the end).
    assert_eq!((sig[0].len(), sig[1].len()), (500, 500));
}

#[test]
fn header_with_missing_or_non_numeric_field_names_file_and_line() {
    let dir = TempDir::new("hdr");
    let sig = "h.dat 212 200 11 1024 995 -22131 0 MLII\n";
    for (text, needles) in [
        // Missing fields.
        (String::new(), vec!["no record line"]),
        (
            format!("h 2 360 650000\n{sig}"),
            vec!["line 1", "2 signals", "1 signal lines"],
        ),
        ("h 1 360 650000\nh.dat\n".to_string(), vec!["line 2", "format"]),
        // Non-numeric fields.
        (
            format!("h two 360\n{sig}"),
            vec!["line 1", "number of signals", "\"two\""],
        ),
        (
            format!("h 1 fast 650000\n{sig}"),
            vec!["line 1", "sampling frequency", "\"fast\""],
        ),
        (
            format!("h 1 360 many\n{sig}"),
            vec!["line 1", "number of samples", "\"many\""],
        ),
        (
            "# comment\nh 1 360 650000\nh.dat 212 2x0 11 1024 995 -22131 0 MLII\n".to_string(),
            vec!["line 3", "signal 0", "gain"],
        ),
        (
            "h 1 360 650000\nh.dat 212 200 11 zero 995 -22131 0 MLII\n".to_string(),
            vec!["line 2", "ADC zero", "\"zero\""],
        ),
        (
            "h 1 360 650000\nh.dat 212 200 11 1024 995 sum 0 MLII\n".to_string(),
            vec!["line 2", "checksum", "\"sum\""],
        ),
        (
            "h 2 360\nh.dat 212\n\nh.dat 16\n".to_string(),
            vec!["line 4", "share file"],
        ),
    ] {
        std::fs::write(dir.path().join("h.hea"), &text).unwrap();
        let e = Header::read(&dir.path().join("h.hea")).unwrap_err();
        assert!(matches!(e, WfdbError::Header { .. }), "{text:?}: {e}");
        let mut needles = needles;
        needles.push("h.hea");
        assert_names(&e.to_string(), &needles);
        // Opening the record reports the same error.
        let e2 = RecordReader::open(dir.path(), "h").unwrap_err();
        assert_eq!(e.to_string(), e2.to_string());
    }
}

#[test]
fn unknown_storage_format_names_record_signal_and_format() {
    let dir = TempDir::new("fmt");
    std::fs::write(
        dir.path().join("u.hea"),
        "u 2 360 10\nu.dat 212 200 11 1024 0 0 0 MLII\nv.dat 999 200 11 1024 0 0 0 V5\n",
    )
    .unwrap();
    // The header itself parses (the format is only a number to it) ...
    assert_eq!(Header::read(&dir.path().join("u.hea")).unwrap().signals[1].format, 999);
    // ... but the reader refuses it before touching any file.
    let e = RecordReader::open(dir.path(), "u").unwrap_err();
    assert!(matches!(e, WfdbError::Unsupported { signal: 1, .. }), "{e}");
    assert_names(
        &e.to_string(),
        &["record u", "signal 1 (V5)", "format 999", "u.hea", "supported: "],
    );
}

/// Annotations like PhysioNet's: a rhythm AUX string, beats, a SKIP, a subtype.
fn sample_annotations() -> Vec<Annotation> {
    let mut anns = vec![Annotation::new(18, "+")];
    anns[0].aux = Some("(N".into());
    for i in 1..10u64 {
        anns.push(Annotation::new(18 + i * 300, if i == 5 { "V" } else { "N" }));
    }
    let mut noise = Annotation::new(5_000, "~");
    noise.subtype = 1;
    anns.push(noise);
    anns.push(Annotation::new(6_500, "N")); // interval > 1023: a SKIP
    let mut vt = Annotation::new(6_600, "+");
    vt.aux = Some("(VT".into());
    anns.push(vt);
    anns
}

#[test]
fn annotation_file_cut_mid_record_names_file_and_byte() {
    let dir = TempDir::new("ann");
    let path = dir.path().join("a.atr");
    let anns = sample_annotations();
    let bytes = encode_annotations(&anns, &path).unwrap();
    // Cuts inside a 16-bit word, inside an AUX string, inside the SKIP interval.
    let skip_at = bytes
        .chunks_exact(2)
        .position(|w| u16::from_le_bytes([w[0], w[1]]) >> 10 == 59)
        .unwrap()
        * 2;
    let last_aux = bytes.len() - 2 - 4; // "(VT\0" before the end marker
    for (cut, what, count) in [
        (9, "inside a 16-bit word", 1),
        (7, "inside an AUX string", 1), // its padding byte is missing
        (skip_at + 3, "inside a SKIP", 10),
        (last_aux + 2, "inside an AUX string", 13),
    ] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = read_annotations(&path).unwrap_err();
        let AnnotationError::Format { offset, count: c, .. } = &e else {
            panic!("{e}")
        };
        assert!(*offset <= cut, "{e}");
        assert_eq!(*c, count, "{e}");
        assert_names(
            &e.to_string(),
            &["a.atr", what, "at byte", &format!("after {count} annotations")],
        );
    }
    // Every cut gives an error or a prefix of the annotations, never a panic.
    for cut in 0..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        match read_annotations(&path) {
            Ok(got) => {
                assert!(got.len() <= anns.len());
                for (g, a) in got.iter().zip(&anns) {
                    assert_eq!((g.sample, &g.symbol), (a.sample, &a.symbol), "cut {cut}");
                }
            }
            Err(e) => assert_names(&e.to_string(), &["a.atr", "at byte"]),
        }
    }
}

const STATEMENTS: &str = ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n\
NORM,normal ECG,1.0,,,NORM,NORM\n\
IMI,inferior myocardial infarction,1.0,,,MI,IMI\n\
SR,sinus rhythm,,,1.0,,\n";

/// A PTB-XL directory with `scp_statements.csv` and the given database text.
fn ptbxl_dir(tag: &str, database: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("scp_statements.csv"), STATEMENTS).unwrap();
    std::fs::write(dir.path().join("ptbxl_database.csv"), database).unwrap();
    dir
}

#[test]
fn ptbxl_csv_missing_a_needed_column_names_file_and_column() {
    for column in [
        "ecg_id",
        "patient_id",
        "age",
        "sex",
        "scp_codes",
        "strat_fold",
        "filename_lr",
    ] {
        let cols = [
            "ecg_id",
            "patient_id",
            "age",
            "sex",
            "scp_codes",
            "strat_fold",
            "filename_lr",
        ];
        let vals = [
            "1",
            "15709.0",
            "56.0",
            "1",
            "\"{'NORM': 100.0}\"",
            "3",
            "records100/00000/00001_lr",
        ];
        let keep: Vec<usize> = (0..cols.len()).filter(|&i| cols[i] != column).collect();
        let head: Vec<&str> = keep.iter().map(|&i| cols[i]).collect();
        let row: Vec<&str> = keep.iter().map(|&i| vals[i]).collect();
        let dir = ptbxl_dir("col", &format!("{}\n{}\n", head.join(","), row.join(",")));
        let e = ptbxl::load(dir.path()).unwrap_err();
        assert!(
            matches!(&e, PtbxlError::MissingColumn { column: c, .. } if c == column),
            "{e}"
        );
        assert_names(
            &e.to_string(),
            &["ptbxl_database.csv", "line 1", &format!("{column:?}")],
        );
    }
    // scp_statements.csv without its diagnostic_class column.
    let dir = ptbxl_dir("stcol", "ecg_id\n");
    std::fs::write(
        dir.path().join("scp_statements.csv"),
        ",description,diagnostic\nNORM,n,1.0\n",
    )
    .unwrap();
    let e = ptbxl::load(dir.path()).unwrap_err();
    assert_names(
        &e.to_string(),
        &["scp_statements.csv", "line 1", "\"diagnostic_class\""],
    );
}

#[test]
fn ptbxl_scp_codes_cell_that_does_not_parse_names_file_line_and_row() {
    let head = "ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr\n";
    let good = "1,15709.0,56.0,1,\"{'NORM': 100.0, 'SR': 0.0}\",3,records100/00000/00001_lr\n";
    for bad in [
        "\"{'NORM' 100.0}\"",
        "\"{'NORM': high}\"",
        "\"{'NORM: 100.0}\"",
        "NORM",
        "\"{NORM: 100.0}\"",
        "\"\"",
    ] {
        let db = format!("{head}{good}{good}7,42.0,60.0,0,{bad},5,records100/00000/00007_lr\n");
        let dir = ptbxl_dir("scp", &db);
        let e = ptbxl::load(dir.path()).unwrap_err();
        assert!(matches!(&e, PtbxlError::Field { line: 4, .. }), "{bad}: {e}");
        assert_names(
            &e.to_string(),
            &["ptbxl_database.csv", "line 4", "ecg_id 7", "scp_codes"],
        );
    }
}

#[test]
fn record_listed_but_absent_names_the_missing_file() {
    // MIT-BIH: RECORDS lists 100 and 101, only 100 is there.
    let dir = TempDir::new("absent");
    mit_record(dir.path(), "100", 50);
    std::fs::write(dir.path().join("RECORDS"), "100\n101\n").unwrap();
    let listed = std::fs::read_to_string(dir.path().join("RECORDS")).unwrap();
    let mut errors = Vec::new();
    for rec in listed.lines() {
        match RecordReader::open(dir.path(), rec) {
            Ok(mut r) => while r.read_chunk(1000).unwrap().is_some() {},
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(errors.len(), 1, "the present record reads, the absent one errs");
    assert!(matches!(&errors[0], WfdbError::Io { path, .. } if path.ends_with("101.hea")));
    assert_names(&errors[0].to_string(), &["101.hea"]);
    // A record of a named set (DS2 starts with 100, 103): 103 is absent.
    let ds2 = mitdb::record_set("DS2").unwrap();
    let e = mitdb::read_lead(dir.path(), &ds2[1], "MLII").unwrap_err();
    assert_names(&e.to_string(), &["103.hea"]);
    // Its reference annotations are absent too.
    let e = mitdb::read_reference(dir.path(), "100").unwrap_err();
    assert_names(&e.to_string(), &["100.atr"]);
    // The header is there but the signal file is not.
    std::fs::remove_file(dir.path().join("100.dat")).unwrap();
    let e = ecgflow_datasets::wfdb::read_record(dir.path(), "100").unwrap_err();
    assert!(
        matches!(&e, WfdbError::Io { path, .. } if path.ends_with("100.dat")),
        "{e}"
    );
    // The message holds the OS's reason, so the error chain (what `ecgflow` prints) must not
    // repeat it as a source.
    let reason = std::fs::File::open(dir.path().join("100.dat")).unwrap_err().to_string();
    let chain = error_chain(&e);
    assert_eq!(chain.matches(&reason).count(), 1, "{chain}");

    // PTB-XL: the database lists ecg_id 2, whose record files are absent.
    let head = "ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr\n";
    let db = format!("{head}2,13243.0,19.0,0,\"{{'NORM': 80.0}}\",2,records100/00000/00002_lr\n");
    let dir = ptbxl_dir("absent-ptbxl", &db);
    let recs = ptbxl::load(dir.path()).unwrap();
    let e = recs[0].read_signal(dir.path(), Resolution::Low).unwrap_err();
    assert!(matches!(e, PtbxlError::Wfdb { ecg_id: 2, .. }), "{e}");
    assert_names(&e.to_string(), &["ecg_id 2", "00002_lr.hea"]);
    let e = recs[0].read_signal(dir.path(), Resolution::High).unwrap_err();
    assert_names(&e.to_string(), &["ecg_id 2", "500 Hz"]);
}

/// The error and its sources, joined as `anyhow` prints them with `{:#}`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}
