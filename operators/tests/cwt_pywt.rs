//! The CWT matches PyWavelets' `pywt.cwt`, against values stored by
//! `tests/fixtures/make_cwt_fixtures.py` (no Python needed to run this test). The maps agree
//! to 2e-6 of each row's largest magnitude; the test allows 1e-5.

use ecgflow_operators::cwt::{study_scales, Cwt, Wavelet};
use ecgflow_operators::Beat;

const FIXTURE: &str = include_str!("fixtures/cwt_pywt.txt");

struct Case {
    name: String,
    wavelet: Wavelet,
    signal: Vec<f32>,
    scales: Vec<f64>,
    rows: Vec<(usize, Vec<f64>)>,
}

fn numbers<T: std::str::FromStr>(rest: &[&str]) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    rest.iter().map(|v| v.parse().unwrap()).collect()
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for line in FIXTURE.lines().filter(|l| !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["case", name, wavelet] => cases.push(Case {
                name: name.to_string(),
                wavelet: match *wavelet {
                    "mexh" => Wavelet::MexicanHat,
                    "morl" => Wavelet::Morlet,
                    other => panic!("unknown wavelet {other}"),
                },
                signal: Vec::new(),
                scales: Vec::new(),
                rows: Vec::new(),
            }),
            ["signal", rest @ ..] => cases.last_mut().unwrap().signal = numbers(rest),
            ["scales", rest @ ..] => cases.last_mut().unwrap().scales = numbers(rest),
            ["row", i, rest @ ..] => cases.last_mut().unwrap().rows.push((i.parse().unwrap(), numbers(rest))),
            _ => panic!("bad fixture line: {line}"),
        }
    }
    cases
}

#[test]
fn cwt_matches_pywt_to_1e5_relative() {
    let cases = cases();
    assert_eq!(cases.len(), 5);
    for case in &cases {
        let mut cwt = Cwt::new(case.wavelet, &case.scales, case.signal.len()).unwrap();
        let mut out = vec![f32::NAN; cwt.map_len()];
        cwt.transform(&case.signal, &mut out).unwrap();
        assert!(!case.rows.is_empty());
        for (i, want) in &case.rows {
            let n = case.signal.len();
            let got = &out[i * n..(i + 1) * n];
            // Relative to the row's largest magnitude (single coefficients near zero have
            // no meaningful relative error of their own).
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (t, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() <= 1e-5 * scale,
                    "{} scale {} t {t}: got {g}, pywt {w} (row max {scale})",
                    case.name,
                    case.scales[*i]
                );
            }
        }
    }
}

#[test]
fn study_map_is_38_by_259_and_batch_and_beat_agree_with_single() {
    let cases = cases();
    let study = &cases[0];
    assert_eq!(study.scales, study_scales());
    let mut cwt = Cwt::new(Wavelet::MexicanHat, &study_scales(), 259).unwrap();
    assert_eq!(cwt.map_len(), 38 * 259);

    let a = study.signal.clone();
    let b: Vec<f32> = a.iter().map(|v| -0.5 * v + 0.1).collect();
    let mut single = vec![0.0; 2 * cwt.map_len()];
    let (sa, sb) = single.split_at_mut(cwt.map_len());
    cwt.transform(&a, sa).unwrap();
    cwt.transform(&b, sb).unwrap();

    let both: Vec<f32> = a.iter().chain(&b).copied().collect();
    let mut batch = vec![0.0; 2 * cwt.map_len()];
    cwt.transform_batch(&both, &mut batch).unwrap();
    assert_eq!(batch, single);

    let beat = Beat {
        stream: "r".into(),
        fs: 360.0,
        sample: 1000,
        leads: vec!["MLII".into(), "V1".into()],
        before: 90,
        after: 168,
        window: both,
        template: None,
        rr_prev: None,
        rr_next: None,
        rr_local: None,
        rr_mean: None,
        rr_irregularity: None,
        symbol: None,
        prediction: None,
        arrival: None,
    };
    assert_eq!(cwt.transform_beat(&beat).unwrap(), single);

    let short = Beat { before: 89, ..beat };
    assert!(cwt.transform_beat(&short).is_err());
}

/// Release-mode throughput of the study's map (259-sample beats, 38 scales, one thread):
/// `cargo test --release -p ecgflow-operators --test cwt_pywt -- --ignored --nocapture`.
#[test]
#[ignore]
fn cwt_throughput() {
    let beat = &cases()[0].signal;
    for wavelet in [Wavelet::MexicanHat, Wavelet::Morlet] {
        let mut cwt = Cwt::new(wavelet, &study_scales(), 259).unwrap();
        let count = 4000;
        let beats: Vec<f32> = (0..count)
            .flat_map(|k| beat.iter().map(move |v| v * (1.0 + k as f32 * 1e-4)))
            .collect();
        let mut out = vec![0.0; count * cwt.map_len()];
        cwt.transform_batch(&beats[..259 * 100], &mut out[..100 * cwt.map_len()])
            .unwrap();
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t0 = std::time::Instant::now();
            cwt.transform_batch(&beats, &mut out).unwrap();
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "cwt {wavelet:?} 38 x 259 (fft_len {}): {:.0} beats/s (best of 5 runs of {count})",
            cwt.fft_len(),
            count as f64 / best
        );
    }
}
