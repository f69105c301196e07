//! Tests of the 12-lead image renderer: geometry on synthetic signals, colours, grid,
//! errors, PNG export, and a real PTB-XL record when the data is present.

use std::path::{Path, PathBuf};

use ecgflow_operators::render::{to_png_bytes, write_png, Layout, RenderConfig, RenderError, Renderer, STANDARD_LEADS};
use ecgflow_operators::Chunk;

const W: usize = 224;
const H: usize = 224;

/// The 12 standard lead names and `n` zero samples per lead.
fn zeros(n: usize) -> (Vec<String>, Vec<Vec<f32>>) {
    let names = STANDARD_LEADS.iter().map(|s| s.to_string()).collect();
    (names, vec![vec![0.0; n]; 12])
}

fn render_default(names: &[String], samples: &[Vec<f32>], fs: f64) -> Vec<f32> {
    Renderer::new(RenderConfig::default())
        .unwrap()
        .render(names, samples, fs)
        .unwrap()
}

/// The baseline pixel row of cell row `r` of `rows` in an image `h` pixels tall.
fn baseline_row(r: usize, rows: usize, h: usize) -> usize {
    (r * h / rows + (r + 1) * h / rows) / 2
}

/// Pixels darker than mid-grey, as (x, y).
fn dark(img: &[f32], w: usize) -> Vec<(usize, usize)> {
    (0..img.len())
        .filter(|&i| img[i] < 0.5)
        .map(|i| (i % w, i / w))
        .collect()
}

/// A small deterministic ECG-like signal: a spike every `period` samples on a slow wave.
fn ecg_like(n: usize, fs: f64, lead: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f64 / fs;
            let phase = (t * 1.2).fract();
            let qrs = (-((phase - 0.3) / 0.015).powi(2)).exp() * (1.0 + 0.1 * lead as f64);
            let twave = 0.2 * (-((phase - 0.6) / 0.06).powi(2)).exp();
            (qrs + twave + 0.05 * (t * 2.0).sin()) as f32
        })
        .collect()
}

fn twelve_leads(n: usize, fs: f64) -> (Vec<String>, Vec<Vec<f32>>) {
    let names = STANDARD_LEADS.iter().map(|s| s.to_string()).collect();
    (names, (0..12).map(|k| ecg_like(n, fs, k)).collect())
}

#[test]
fn deterministic_pixels_and_png_bytes() {
    let (names, samples) = twelve_leads(5000, 500.0);
    let cfg = RenderConfig {
        grid: true,
        labels: true,
        ..RenderConfig::default()
    };
    let r = Renderer::new(cfg).unwrap();
    let a = r.render(&names, &samples, 500.0).unwrap();
    let b = Renderer::new(r.config().clone())
        .unwrap()
        .render(&names, &samples, 500.0)
        .unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(to_png_bytes(&a, W, H).unwrap(), to_png_bytes(&b, W, H).unwrap());
}

#[test]
fn image_size_and_range() {
    let (names, samples) = twelve_leads(1000, 100.0);
    for (w, h, layout) in [
        (224, 224, Layout::Clinical),
        (1024, 768, Layout::Clinical),
        (300, 600, Layout::Grid { rows: 6, cols: 2 }),
        (100, 240, Layout::Grid { rows: 12, cols: 1 }),
    ] {
        let cfg = RenderConfig {
            width: w,
            height: h,
            layout,
            grid: true,
            ..RenderConfig::default()
        };
        let img = Renderer::new(cfg).unwrap().render(&names, &samples, 100.0).unwrap();
        assert_eq!(img.len(), w * h);
        assert!(img.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn zero_signal_draws_flat_lines_on_the_baselines() {
    let (names, samples) = zeros(1000);
    let img = render_default(&names, &samples, 100.0);
    let rows: Vec<usize> = (0..3).map(|r| baseline_row(r, 3, H)).collect();
    assert_eq!(rows, vec![37, 111, 186]);
    for y in 0..H {
        for x in 0..W {
            let v = img[y * W + x];
            if rows.contains(&y) {
                assert_eq!(v, 0.0, "baseline pixel ({x}, {y}) should be black");
            } else {
                assert_eq!(v, 1.0, "pixel ({x}, {y}) should be white");
            }
        }
    }

    // 12 × 1: twelve lines, one per row, across the full width.
    let cfg = RenderConfig {
        width: 120,
        height: 240,
        layout: Layout::Grid { rows: 12, cols: 1 },
        ..RenderConfig::default()
    };
    let img = Renderer::new(cfg).unwrap().render(&names, &samples, 100.0).unwrap();
    let mut lines: Vec<usize> = dark(&img, 120).iter().map(|&(_, y)| y).collect();
    lines.dedup();
    let expected: Vec<usize> = (0..12).map(|r| baseline_row(r, 12, 240)).collect();
    assert_eq!(lines, expected);
    assert_eq!(dark(&img, 120).len(), 12 * 120);
}

#[test]
fn spike_appears_in_its_cell() {
    // V2 is row 1, column 2 of the clinical sheet (5.0 to 7.5 s); spike at 6.0 s.
    let (names, mut samples) = zeros(1000);
    samples[7][600] = 1.5;
    let img = render_default(&names, &samples, 100.0);
    let baselines: Vec<usize> = (0..3).map(|r| baseline_row(r, 3, H)).collect();
    let off: Vec<(usize, usize)> = dark(&img, W)
        .into_iter()
        .filter(|(_, y)| !baselines.contains(y))
        .collect();
    assert!(!off.is_empty());
    // Cell bounds: x in [112, 168), y in [74, 149).
    for &(x, y) in &off {
        assert!((112..168).contains(&x) && (74..149).contains(&y), "({x}, {y})");
        assert!(y < 111, "an upward spike is drawn above the baseline");
    }
    // Its tip: x = 112 + 1.0 s × 22.4 px/s, y = 111.5 − 1.5 mV × 74/4 px/mV.
    let tip_y = (111.5 - 1.5 * 74.0 / 4.0) as usize;
    assert!(img[tip_y * W + 134] < 0.5, "tip at (134, {tip_y})");

    // 12 × 1: V2 is row 7.
    let cfg = RenderConfig {
        width: 200,
        height: 480,
        layout: Layout::Grid { rows: 12, cols: 1 },
        ..RenderConfig::default()
    };
    let img = Renderer::new(cfg).unwrap().render(&names, &samples, 100.0).unwrap();
    let baselines: Vec<usize> = (0..12).map(|r| baseline_row(r, 12, 480)).collect();
    for (x, y) in dark(&img, 200) {
        if !baselines.contains(&y) {
            assert!((280..320).contains(&y) && (115..125).contains(&x), "({x}, {y})");
        }
    }
}

#[test]
fn a_large_value_is_clipped_at_its_cell() {
    let (names, mut samples) = zeros(1000);
    samples[0][100] = 50.0; // lead I, row 0, column 0
    samples[0][101] = f32::MAX;
    let img = render_default(&names, &samples, 100.0);
    let baselines: Vec<usize> = (0..3).map(|r| baseline_row(r, 3, H)).collect();
    let off: Vec<(usize, usize)> = dark(&img, W)
        .into_iter()
        .filter(|(_, y)| !baselines.contains(y))
        .collect();
    assert!(off.iter().any(|&(_, y)| y == 0), "the trace runs to the top edge");
    assert!(off.iter().all(|&(x, y)| x < 56 && y < 74));
}

#[test]
fn invert_flips_every_pixel() {
    let (names, samples) = twelve_leads(1000, 100.0);
    for grid in [false, true] {
        let cfg = RenderConfig {
            grid,
            ..RenderConfig::default()
        };
        let normal = Renderer::new(cfg.clone())
            .unwrap()
            .render(&names, &samples, 100.0)
            .unwrap();
        let inverted = Renderer::new(RenderConfig { invert: true, ..cfg })
            .unwrap()
            .render(&names, &samples, 100.0)
            .unwrap();
        assert!(normal.iter().zip(&inverted).all(|(a, b)| (a + b - 1.0).abs() < 1e-6));
        // Mostly paper: white in the normal image, black in the inverted one.
        let mean = inverted.iter().sum::<f32>() / inverted.len() as f32;
        assert!(mean < 0.2, "inverted mean {mean}");
    }
}

#[test]
fn grid_adds_faint_pixels_only_when_on() {
    let (names, samples) = zeros(1000);
    let faint = |img: &[f32]| img.iter().filter(|&&v| v > 0.5 && v < 1.0).count();
    let off = render_default(&names, &samples, 100.0);
    assert_eq!(faint(&off), 0);
    for (w, h) in [(224, 224), (1024, 768)] {
        let cfg = RenderConfig {
            width: w,
            height: h,
            grid: true,
            ..RenderConfig::default()
        };
        let on = Renderer::new(cfg).unwrap().render(&names, &samples, 100.0).unwrap();
        assert!(faint(&on) > w * h / 10, "{w} × {h}: {}", faint(&on));
        // Faint means faint: off the traces no pixel is darker than the 5 mm line ink.
        let baselines: Vec<usize> = (0..3).map(|r| baseline_row(r, 3, h)).collect();
        let bad: Vec<(usize, f32)> = on
            .iter()
            .enumerate()
            .filter(|&(i, &v)| !baselines.contains(&(i / w)) && v < 0.75)
            .map(|(i, &v)| (i, v))
            .take(5)
            .collect();
        assert!(bad.is_empty(), "{w} × {h}: {bad:?}");
        // The traces stay black.
        for r in 0..3 {
            let y = baseline_row(r, 3, h);
            assert!(on[y * w..(y + 1) * w - 1].iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn missing_lead_is_an_error_naming_it_and_names_ignore_case() {
    let (mut names, samples) = zeros(1000);
    names[8] = "X".into(); // V3
    let err = Renderer::new(RenderConfig::default())
        .unwrap()
        .render(&names, &samples, 100.0)
        .unwrap_err();
    assert!(matches!(&err, RenderError::MissingLead(l) if l == "V3"));
    assert!(err.to_string().contains("V3"));

    // PTB-XL's header names (AVR, AVL, AVF), in another order, plus an extra lead.
    let (names, samples) = twelve_leads(1000, 100.0);
    let mut upper: Vec<String> = names.iter().map(|s| s.to_uppercase()).collect();
    let mut shuffled = samples.clone();
    upper.reverse();
    shuffled.reverse();
    upper.push("extra".into());
    shuffled.push(vec![5.0; 1000]);
    let a = render_default(&names, &samples, 100.0);
    let b = render_default(&upper, &shuffled, 100.0);
    assert_eq!(a, b);
}

#[test]
fn nan_samples_leave_a_gap() {
    let (names, mut samples) = zeros(1000);
    // Lead I (row 0, column 0): NaN from 1.0 s to 1.5 s, +inf from 2.0 s to 2.2 s.
    for v in &mut samples[0][100..150] {
        *v = f32::NAN;
    }
    for v in &mut samples[0][200..220] {
        *v = f32::INFINITY;
    }
    // aVL (row 1, column 1): all NaN; V1 (row 0, column 2): one finite sample.
    samples[4] = vec![f32::NAN; 1000];
    samples[6] = vec![f32::NAN; 1000];
    samples[6][600] = 0.0;
    let img = render_default(&names, &samples, 100.0);
    let row = |y: usize| &img[y * W..(y + 1) * W];
    let r0 = row(37);
    let px = |t: f64| (t * 22.4) as usize;
    assert!(r0[px(0.5)] == 0.0 && r0[px(1.7)] == 0.0);
    assert!(r0[px(1.1)..px(1.4)].iter().all(|&v| v == 1.0), "gap");
    assert!(r0[px(1.99) - 1] == 0.0 && r0[px(2.25)] == 0.0);
    assert_eq!(r0[px(2.1)], 1.0, "gap where +inf");
    // aVL's cell (x in [56, 112), row 111) is blank; the rest of row 1 is drawn.
    let r1 = row(111);
    assert!(r1[56..112].iter().all(|&v| v == 1.0));
    assert!(r1[..56].iter().chain(&r1[112..]).all(|&v| v == 0.0));
    // V1's single sample is a dot at x = 112 + 1.0 s × 22.4 px/s.
    let dots: Vec<usize> = (112..168).filter(|&x| r0[x] < 1.0).collect();
    assert_eq!(dots, vec![133, 134]);
    assert!(r0[134] < 0.5 && r0[133] > 0.5);
}

#[test]
fn a_short_record_is_drawn_as_far_as_it_goes() {
    let (names, samples) = zeros(500); // 5 s of 10
    let img = render_default(&names, &samples, 100.0);
    for r in 0..3 {
        let y = baseline_row(r, 3, H);
        let row = &img[y * W..(y + 1) * W];
        assert!(row[..112].iter().all(|&v| v == 0.0));
        assert!(row[113..].iter().all(|&v| v == 1.0));
    }
    // A longer record draws only its first duration_s.
    let (names, long) = zeros(2000);
    let (_, exact) = zeros(1000);
    assert_eq!(
        render_default(&names, &long, 100.0),
        render_default(&names, &exact, 100.0)
    );
}

#[test]
fn render_chunks_equals_render_of_the_whole() {
    let (names, samples) = twelve_leads(5000, 500.0);
    let r = Renderer::new(RenderConfig::default()).unwrap();
    let whole = r.render(&names, &samples, 500.0).unwrap();
    let mut chunks = Vec::new();
    let mut start = 0;
    for len in [1usize, 999, 1700, 2300] {
        let part = samples.iter().map(|s| s[start..start + len].to_vec()).collect();
        chunks.push(Chunk::new("rec", 500.0, start as u64 + 42, names.clone(), part));
        start += len;
    }
    assert_eq!(r.render_chunks(&chunks).unwrap(), whole);

    chunks.remove(1);
    assert!(matches!(r.render_chunks(&chunks), Err(RenderError::Chunks(_))));
    assert!(matches!(r.render_chunks(&[]), Err(RenderError::Chunks(_))));
}

#[test]
fn bad_config_and_input_are_errors() {
    let bad = [
        RenderConfig {
            width: 0,
            ..RenderConfig::default()
        },
        RenderConfig {
            layout: Layout::Grid { rows: 5, cols: 2 },
            ..RenderConfig::default()
        },
        RenderConfig {
            mv_per_cell: f64::NAN,
            ..RenderConfig::default()
        },
        RenderConfig {
            line_width: 0.0,
            ..RenderConfig::default()
        },
        RenderConfig {
            duration_s: -1.0,
            ..RenderConfig::default()
        },
        RenderConfig {
            leads: vec![],
            ..RenderConfig::default()
        },
    ];
    for cfg in bad {
        assert!(matches!(Renderer::new(cfg), Err(RenderError::Config(_))));
    }
    let r = Renderer::new(RenderConfig::default()).unwrap();
    let (names, samples) = zeros(100);
    assert!(matches!(
        r.render(&names, &samples, 0.0),
        Err(RenderError::SampleRate(_))
    ));
    assert!(matches!(
        r.render(&names[..11], &samples, 100.0),
        Err(RenderError::LeadCount { .. })
    ));
    // Fewer leads than cells is fine: the limb leads alone in 6 × 1.
    let limb = RenderConfig {
        layout: Layout::Grid { rows: 6, cols: 1 },
        leads: STANDARD_LEADS[..6].iter().map(|s| s.to_string()).collect(),
        ..RenderConfig::default()
    };
    assert!(Renderer::new(limb).unwrap().render(&names, &samples, 100.0).is_ok());
}

#[test]
fn png_export_round_trips() {
    let (names, samples) = twelve_leads(1000, 100.0);
    let (w, h) = (300, 200);
    let cfg = RenderConfig {
        width: w,
        height: h,
        grid: true,
        ..RenderConfig::default()
    };
    let img = Renderer::new(cfg).unwrap().render(&names, &samples, 100.0).unwrap();
    let dir = std::env::temp_dir().join(format!("ecgflow-render-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ecg.png");
    write_png(&path, &img, w, h).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, to_png_bytes(&img, w, h).unwrap());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");

    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (w as u32, h as u32));
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let expected: Vec<u8> = img.iter().map(|v| (v * 255.0).round() as u8).collect();
    assert_eq!(&buf[..info.buffer_size()], &expected[..]);

    assert!(matches!(
        write_png(&path, &img, w, h + 1),
        Err(RenderError::PixelCount { .. })
    ));
    assert!(matches!(
        write_png(&dir.join("no/such/dir.png"), &img, w, h),
        Err(RenderError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn data_dir() -> PathBuf {
    std::env::var_os("ECGFLOW_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).to_path_buf())
}

#[test]
fn real_ptbxl_record_has_a_trace_in_every_cell() {
    use ecgflow_datasets::ptbxl::{self, Resolution};
    let dir = data_dir().join("ptbxl");
    if !dir.join("ptbxl_database.csv").exists() {
        println!("skipped: no PTB-XL data at {}", dir.display());
        return;
    }
    let records = ptbxl::load(&dir).unwrap();
    let r = Renderer::new(RenderConfig::default()).unwrap();
    for rec in records.iter().take(5) {
        let (header, samples) = rec.read_signal(&dir, Resolution::Low).unwrap();
        let names: Vec<&str> = header.signals.iter().map(|s| s.description.as_str()).collect();
        let img = r.render(&names, &samples, header.fs).unwrap();
        for row in 0..3 {
            for col in 0..4 {
                let (x0, x1) = (col * W / 4, (col + 1) * W / 4);
                let (y0, y1) = (row * H / 3, (row + 1) * H / 3);
                let inked = (x0..x1).filter(|&x| (y0..y1).any(|y| img[y * W + x] < 0.5)).count();
                assert!(
                    inked * 10 >= (x1 - x0) * 9,
                    "record {} cell ({row}, {col}): trace in {inked} of {} columns",
                    rec.ecg_id,
                    x1 - x0
                );
            }
        }
    }
}
