//! The filter design and filtering match scipy.signal, against values stored by
//! `tests/fixtures/make_filter_fixtures.py` (no Python needed to run this test).

use ecgflow_operators::filter::{Band, Sos};

const FIXTURE: &str = include_str!("fixtures/filter_scipy.txt");

/// Same formula as `test_signal` in the fixture script.
fn test_signal(n: usize, fs: f64) -> Vec<f64> {
    use std::f64::consts::PI;
    (0..n)
        .map(|i| {
            let i = i as f64;
            let t = i / fs;
            0.8 + (2.0 * PI * 1.3 * t).sin()
                + 0.5 * (2.0 * PI * 17.0 * t + 0.3).sin()
                + 0.2 * (2.0 * PI * 60.0 * t).sin()
                + 0.1 * (0.7 * i * i).sin()
        })
        .collect()
}

/// Every element within `rel` of the reference, relative to the reference's largest
/// magnitude (elements near zero have no meaningful relative error of their own).
fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}[{i}]: got {g}, scipy {w} (scale {scale})"
        );
    }
}

fn numbers(rest: &[&str]) -> Vec<f64> {
    rest.iter().map(|v| v.parse().unwrap()).collect()
}

#[test]
fn butterworth_notch_sosfilt_and_filtfilt_match_scipy() {
    let mut designs = 0;
    let mut current: Option<(String, Sos, f64, Vec<[f64; 6]>)> = None;
    let mut x = Vec::new();
    let check_sos = |cur: &Option<(String, Sos, f64, Vec<[f64; 6]>)>| {
        if let Some((name, sos, _, want)) = cur {
            assert_eq!(sos.sections().len(), want.len(), "{name}: sections");
            for (k, (g, w)) in sos.sections().iter().zip(want).enumerate() {
                assert_close(&format!("{name} sos[{k}]"), g, w, 1e-9);
            }
        }
    };
    for line in FIXTURE.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[0] {
            "design" => {
                check_sos(&current);
                let name = fields[1].to_string();
                let order: usize = fields[3].parse().unwrap();
                let [f1, f2, fs, q] = [4, 5, 6, 7].map(|i| fields[i].parse::<f64>().unwrap());
                let sos = match fields[2] {
                    "bandpass" => Sos::butterworth(order, Band::Bandpass(f1, f2), fs),
                    "bandstop" => Sos::butterworth(order, Band::Bandstop(f1, f2), fs),
                    "lowpass" => Sos::butterworth(order, Band::Lowpass(f1), fs),
                    "highpass" => Sos::butterworth(order, Band::Highpass(f1), fs),
                    "notch" => Sos::notch(f1, q, fs),
                    other => panic!("unknown kind {other}"),
                }
                .unwrap();
                current = Some((name, sos, fs, Vec::new()));
                designs += 1;
            }
            "sos" => {
                let v = numbers(&fields[1..]);
                current.as_mut().unwrap().3.push(v.try_into().unwrap());
            }
            "signal" => {
                let (_, _, fs, _) = current.as_ref().unwrap();
                x = test_signal(fields[1].parse().unwrap(), *fs);
            }
            "sosfilt_zi" => {
                let (name, sos, _, _) = current.as_ref().unwrap();
                let mut state = ecgflow_operators::filter::SosState::steady(sos, x[0]);
                let got: Vec<f64> = x.iter().map(|&v| state.step(v)).collect();
                assert_close(
                    &format!("{name} sosfilt n={}", x.len()),
                    &got,
                    &numbers(&fields[1..]),
                    1e-6,
                );
            }
            "filtfilt" => {
                let (name, sos, _, _) = current.as_ref().unwrap();
                let got = sos.filtfilt(&x);
                assert_close(
                    &format!("{name} filtfilt n={}", x.len()),
                    &got,
                    &numbers(&fields[1..]),
                    1e-6,
                );
            }
            other => panic!("unknown fixture line {other}"),
        }
    }
    check_sos(&current);
    assert_eq!(designs, 11);
}
