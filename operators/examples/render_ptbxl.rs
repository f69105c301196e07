//! Renders a few PTB-XL records to PNG for people to look at, and times rendering.
//!
//! ```text
//! cargo run --release -p ecgflow-operators --example render_ptbxl -- OUT_DIR [N_RECORDS]
//! ```
//!
//! Reads `$ECGFLOW_DATA/ptbxl` (default `../shared/data/ptbxl` beside the workspace) and
//! writes, for each of the first `N_RECORDS` (default 4) records, `<ecg_id>_224.png` (the
//! default 224 × 224 model input), `<ecg_id>_224_paper.png` (with grid paper and labels),
//! `<ecg_id>_1024x768.png` (a large paper-like sheet) and `<ecg_id>_6x2.png`
//! (`Grid { rows: 6, cols: 2 }`, 10 s per lead). Then prints the mean time per render of
//! the default configuration over all loaded records, at 100 Hz and, resampled by linear
//! interpolation, at 500 Hz.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ecgflow_datasets::ptbxl::{self, Resolution};
use ecgflow_operators::render::{write_png, Layout, RenderConfig, Renderer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: render_ptbxl OUT_DIR [N_RECORDS]")?);
    let n: usize = args.next().map_or(Ok(4), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;
    let fallback = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"));
    let dir = ecgflow_datasets::data_dir(fallback).join("ptbxl");
    let records = ptbxl::load(&dir)?;

    let configs = [
        ("224", RenderConfig::default()),
        (
            "224_paper",
            RenderConfig {
                grid: true,
                labels: true,
                ..RenderConfig::default()
            },
        ),
        (
            "1024x768",
            RenderConfig {
                width: 1024,
                height: 768,
                mv_per_cell: 6.0,
                line_width: 1.6,
                grid: true,
                labels: true,
                ..RenderConfig::default()
            },
        ),
        (
            "6x2",
            RenderConfig {
                width: 768,
                height: 1024,
                layout: Layout::Grid { rows: 6, cols: 2 },
                mv_per_cell: 5.0,
                line_width: 1.4,
                grid: true,
                labels: true,
                ..RenderConfig::default()
            },
        ),
    ];

    let mut signals = Vec::new();
    for rec in records.iter().take(n.max(1)) {
        let (header, samples) = rec.read_signal(&dir, Resolution::Low)?;
        let names: Vec<String> = header.signals.iter().map(|s| s.description.clone()).collect();
        for (tag, cfg) in &configs {
            let (w, h) = (cfg.width, cfg.height);
            let img = Renderer::new(cfg.clone())?.render(&names, &samples, header.fs)?;
            let path = out.join(format!("{:05}_{tag}.png", rec.ecg_id));
            write_png(&path, &img, w, h)?;
            println!(
                "{} ({}): {}",
                rec.ecg_id,
                rec.superclass_names().join(","),
                path.display()
            );
        }
        signals.push((names, samples, header.fs));
    }

    let renderer = Renderer::new(RenderConfig::default())?;
    for up in [1usize, 5] {
        let data: Vec<_> = signals
            .iter()
            .map(|(names, s, fs)| {
                (
                    names,
                    s.iter().map(|x| upsample(x, up)).collect::<Vec<_>>(),
                    fs * up as f64,
                )
            })
            .collect();
        let reps = 200 / data.len().max(1) + 1;
        let start = Instant::now();
        let mut sum = 0.0f64;
        for _ in 0..reps {
            for (names, s, fs) in &data {
                sum += renderer.render(names, s, *fs)?[0] as f64;
            }
        }
        let per = start.elapsed().as_secs_f64() / (reps * data.len()) as f64;
        println!(
            "default 224 × 224 render at {} Hz: {:.3} ms per record ({} renders; checksum {sum})",
            100 * up,
            per * 1e3,
            reps * data.len()
        );
    }
    Ok(())
}

/// Linear interpolation to `factor` times the rate.
fn upsample(x: &[f32], factor: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() * factor);
    for (i, &a) in x.iter().enumerate() {
        let b = *x.get(i + 1).unwrap_or(&a);
        for k in 0..factor {
            out.push(a + (b - a) * k as f32 / factor as f32);
        }
    }
    out
}
