//! Small PNG charts for evaluation reports (training curves, ROC curves, confusion
//! matrices), drawn pixel by pixel into an 8-bit RGB image with an embedded 5 × 7 bitmap
//! font, so that a report needs no plotting library, no system fonts and no display.
//!
//! Charts are meant to be looked at, not measured: lines are 2 pixels wide and not
//! anti-aliased. Non-finite points are skipped and an empty chart still draws its axes,
//! so bad data gives a poor chart rather than a panic. Lower-case letters are drawn with
//! the upper-case glyphs; characters without a glyph are drawn as `?`.

use std::path::{Path, PathBuf};

use crate::metrics::ConfusionMatrix;

/// Why a chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("cannot write chart {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("cannot encode chart {path}: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("chart {path} would be {width} × {height} pixels, more than {MAX_SIDE} a side")]
    TooLarge { path: PathBuf, width: usize, height: usize },
}

/// A named polyline of a [`line_chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A curve of a [`roc_chart`]: name, (false positive rate, true positive rate) points as
/// from [`crate::metrics::roc_curve`], and AUC.
pub type RocCurve = (String, Vec<(f64, f64)>, f64);

/// Size of the images drawn by [`line_chart`] and [`roc_chart`].
pub const CHART_WIDTH: usize = 900;
pub const CHART_HEIGHT: usize = 560;

/// Largest side of any chart (a confusion matrix grows with its classes).
pub const MAX_SIDE: usize = 8192;

type Rgb = [u8; 3];

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [30, 30, 30];
const GRID: Rgb = [228, 228, 228];
const DIAGONAL: Rgb = [150, 150, 150];
/// Darkest heat-map colour (a fraction of 1), matplotlib's "Blues".
const HEAT: Rgb = [8, 48, 107];

/// Series colours (the Tableau 10 palette), reused cyclically.
const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Glyphs are scaled by this factor so that text is readable at report size.
const SCALE: usize = 2;
/// Height of a line of text in pixels.
const TEXT_H: usize = 7 * SCALE;
/// Horizontal distance between glyphs (5 columns and one of spacing).
const ADVANCE: usize = 6 * SCALE;
/// Longest legend entry or axis class name, in characters; longer ones are cut.
const MAX_LABEL_CHARS: usize = 24;

/// A 5 × 7 glyph, rows top to bottom, bit 4 = leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        ' ' => [0; 7],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '±' => [0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x1F],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '*' => [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00],
        '\'' => [0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // '?'
    }
}

/// Width in pixels of `s` drawn with [`Canvas::text`].
fn text_width(s: &str) -> usize {
    (s.chars().count() * ADVANCE).saturating_sub(SCALE)
}

/// `s` cut to at most `max` characters.
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A pixel rectangle `[x0, x1) × [y0, y1)`.
#[derive(Clone, Copy, Debug)]
struct Rect {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

/// An RGB image being drawn; every write outside the image is ignored.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<Rgb>,
}

impl Canvas {
    /// A white canvas, or an error naming `path` when it would be unreasonably large.
    fn new(path: &Path, width: usize, height: usize) -> Result<Self, PlotError> {
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(PlotError::TooLarge {
                path: path.to_path_buf(),
                width,
                height,
            });
        }
        Ok(Canvas {
            width,
            height,
            pixels: vec![WHITE; width * height],
        })
    }

    fn set(&mut self, x: i64, y: i64, colour: Rgb) {
        if (0..self.width as i64).contains(&x) && (0..self.height as i64).contains(&y) {
            self.pixels[y as usize * self.width + x as usize] = colour;
        }
    }

    fn fill(&mut self, r: Rect, colour: Rgb) {
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                self.set(x as i64, y as i64, colour);
            }
        }
    }

    /// A straight line `thickness` pixels wide between two points, clipped to `clip`;
    /// `dashed` leaves out every other 6 pixels.
    fn line(&mut self, a: (f64, f64), b: (f64, f64), colour: Rgb, thickness: usize, clip: Rect, dashed: bool) {
        let Some((a, b)) = clip_segment(a, b, clip) else {
            return;
        };
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let steps = (dx.abs().max(dy.abs()) * 2.0).ceil() as usize;
        let half = (thickness / 2) as i64;
        for i in 0..=steps {
            let t = if steps == 0 { 0.0 } else { i as f64 / steps as f64 };
            if dashed && (t * dx.hypot(dy) / 6.0) as usize % 2 == 1 {
                continue;
            }
            let (x, y) = ((a.0 + t * dx).round() as i64, (a.1 + t * dy).round() as i64);
            for oy in 0..thickness as i64 {
                for ox in 0..thickness as i64 {
                    self.set(x + ox - half, y + oy - half, colour);
                }
            }
        }
    }

    /// Draws `s` with its top-left corner at (x, y), or, when `vertical`, reading upwards
    /// with its bottom-left corner at (x, y).
    fn text(&mut self, s: &str, x: i64, y: i64, colour: Rgb, vertical: bool) {
        for (i, c) in s.chars().enumerate() {
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) == 0 {
                        continue;
                    }
                    for sy in 0..SCALE {
                        for sx in 0..SCALE {
                            // (u, v): along the text and down the glyph.
                            let u = (i * ADVANCE + col * SCALE + sx) as i64;
                            let v = (row * SCALE + sy) as i64;
                            if vertical {
                                self.set(x + v, y - u, colour);
                            } else {
                                self.set(x + u, y + v, colour);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Draws `s` horizontally centred on `cx` with its top at `y`.
    fn text_centred(&mut self, s: &str, cx: usize, y: usize, colour: Rgb) {
        let x = cx as i64 - text_width(s) as i64 / 2;
        self.text(s, x, y as i64, colour, false);
    }

    /// Encodes the canvas as an 8-bit RGB PNG and writes it to `path`; returns the
    /// image's (width, height).
    fn save(&self, path: &Path) -> Result<(usize, usize), PlotError> {
        let encode_err = |e: png::EncodingError| PlotError::Encode {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(encode_err)?;
        writer
            .write_image_data(self.pixels.as_flattened())
            .map_err(encode_err)?;
        writer.finish().map_err(encode_err)?;
        std::fs::write(path, &bytes).map_err(|error| PlotError::Write {
            path: path.to_path_buf(),
            error,
        })?;
        Ok((self.width, self.height))
    }
}

/// The part of segment a–b inside `r` (Liang-Barsky), `None` when it misses `r` or an
/// end is not finite.
fn clip_segment(a: (f64, f64), b: (f64, f64), r: Rect) -> Option<((f64, f64), (f64, f64))> {
    if ![a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    let bounds = [
        (-dx, a.0 - r.x0 as f64),
        (dx, (r.x1 - 1) as f64 - a.0),
        (-dy, a.1 - r.y0 as f64),
        (dy, (r.y1 - 1) as f64 - a.1),
    ];
    for (p, q) in bounds {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else if p < 0.0 {
            t0 = t0.max(q / p);
        } else {
            t1 = t1.min(q / p);
        }
    }
    (t0 <= t1).then_some(((a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy)))
}

/// An axis: its data range, tick positions and the decimals their labels need.
#[derive(Clone, Debug, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    decimals: usize,
}

impl Axis {
    /// Ticks every `step` over `[lo, hi]`, both multiples of `step`; the axis reaches 2 %
    /// further each way so that data on the outer ticks is not hidden by the frame.
    fn stepped(lo: f64, hi: f64, step: f64) -> Self {
        let n = ((hi - lo) / step).round() as usize;
        let pad = 0.02 * (hi - lo);
        Axis {
            lo: lo - pad,
            hi: hi + pad,
            ticks: (0..=n).map(|i| lo + i as f64 * step).collect(),
            decimals: (-step.log10().floor()).clamp(0.0, 6.0) as usize,
        }
    }

    /// A range covering the finite `values`, widened to a "nice" step (1, 2 or 5 times a
    /// power of ten) giving about five intervals; [0, 1] when there are no values.
    fn fit(values: impl Iterator<Item = f64>) -> Self {
        let (mut lo, mut hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        } else if lo == hi {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo, hi) = (lo - pad, hi + pad);
        }
        let rough = (hi - lo) / 5.0;
        let magnitude = 10f64.powf(rough.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|&s| s >= rough)
            .unwrap_or(10.0 * magnitude);
        let (nice_lo, nice_hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        if !(step > 0.0 && nice_lo.is_finite() && nice_hi.is_finite()) {
            // Values near the ends of f64's range: fall back to a plain axis.
            return Axis::stepped(0.0, 1.0, 0.2);
        }
        Axis::stepped(nice_lo, nice_hi, step)
    }

    /// The label of tick `t`.
    fn label(&self, t: f64) -> String {
        // Avoid printing "-0.0" for a tick that is zero up to rounding.
        let t = if t.abs() < 1e-9 * (self.hi - self.lo) { 0.0 } else { t };
        format!("{t:.*}", self.decimals)
    }

    /// Position of `v` between pixel coordinates `p0` (at `lo`) and `p1` (at `hi`).
    fn map(&self, v: f64, p0: f64, p1: f64) -> f64 {
        p0 + (v - self.lo) / (self.hi - self.lo) * (p1 - p0)
    }
}

/// What [`draw_xy`] draws: labelled axes, optional diagonal and named polylines.
struct XyChart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x: Axis,
    y: Axis,
    diagonal: bool,
    /// Legend text and finite points of each line.
    lines: Vec<(String, Vec<(f64, f64)>)>,
    /// Vertical bands `[x0, x1)` shaded behind the lines (attribution heat).
    bands: Vec<(f64, f64, Rgb)>,
}

/// Draws an [`XyChart`] of [`CHART_WIDTH`] × [`CHART_HEIGHT`] and writes it to `path`.
fn draw_xy(path: &Path, chart: &XyChart) -> Result<(usize, usize), PlotError> {
    let (w, h) = (CHART_WIDTH, CHART_HEIGHT);
    let mut c = Canvas::new(path, w, h)?;
    let y_labels: Vec<String> = chart.y.ticks.iter().map(|&t| chart.y.label(t)).collect();
    // Capped so that absurdly long tick labels cannot squeeze the plot away.
    let y_label_w = y_labels.iter().map(|s| text_width(s)).max().unwrap_or(0).min(w / 4);
    let legend_w = chart
        .lines
        .iter()
        .map(|(name, _)| 36 + text_width(name))
        .max()
        .map_or(0, |lw| lw + 20);
    let plot = Rect {
        x0: 12 + TEXT_H + 14 + y_label_w + 8,
        y0: 44,
        x1: w - 16 - legend_w,
        y1: h - (8 + TEXT_H + 14 + TEXT_H + 12),
    };
    let to_px = |(x, y): (f64, f64)| {
        let px = chart.x.map(x, plot.x0 as f64, (plot.x1 - 1) as f64);
        let py = chart.y.map(y, (plot.y1 - 1) as f64, plot.y0 as f64);
        (px, py)
    };
    let whole = Rect {
        x0: 0,
        y0: 0,
        x1: w,
        y1: h,
    };

    c.text_centred(chart.title, w / 2, 14, INK);
    for &(x0, x1, colour) in &chart.bands {
        let (a, _) = to_px((x0, chart.y.lo));
        let (b, _) = to_px((x1, chart.y.lo));
        let (a, b) = (
            a.min(b).round().max(plot.x0 as f64),
            a.max(b).round().min(plot.x1 as f64),
        );
        if b > a {
            let band = Rect {
                x0: a as usize,
                y0: plot.y0,
                x1: b as usize,
                y1: plot.y1,
            };
            c.fill(band, colour);
        }
    }
    for &t in &chart.x.ticks {
        let (px, _) = to_px((t, chart.y.lo));
        c.line((px, plot.y0 as f64), (px, plot.y1 as f64), GRID, 1, plot, false);
        c.line((px, plot.y1 as f64), (px, (plot.y1 + 4) as f64), INK, 1, whole, false);
        c.text_centred(&chart.x.label(t), px.round() as usize, plot.y1 + 8, INK);
    }
    for (&t, label) in chart.y.ticks.iter().zip(&y_labels) {
        let (_, py) = to_px((chart.x.lo, t));
        c.line((plot.x0 as f64, py), (plot.x1 as f64, py), GRID, 1, plot, false);
        c.line(((plot.x0 - 5) as f64, py), (plot.x0 as f64, py), INK, 1, whole, false);
        let x = (plot.x0 - 8 - text_width(label)) as i64;
        c.text(label, x, py.round() as i64 - TEXT_H as i64 / 2, INK, false);
    }
    c.text_centred(chart.x_label, (plot.x0 + plot.x1) / 2, h - 12 - TEXT_H, INK);
    let y_mid = ((plot.y0 + plot.y1) / 2 + text_width(chart.y_label) / 2) as i64;
    c.text(chart.y_label, 12, y_mid, INK, true);
    if chart.diagonal {
        let lo = chart.x.lo.max(chart.y.lo);
        let hi = chart.x.hi.min(chart.y.hi);
        c.line(to_px((lo, lo)), to_px((hi, hi)), DIAGONAL, 1, plot, true);
    }

    for (i, (name, points)) in chart.lines.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let px: Vec<(f64, f64)> = points.iter().map(|&p| to_px(p)).collect();
        if let [single] = px[..] {
            // A lone point would otherwise be invisible.
            c.line(single, single, colour, 6, plot, false);
        }
        for pair in px.windows(2) {
            c.line(pair[0], pair[1], colour, 2, plot, false);
        }
        let lx = plot.x1 + 20;
        let ly = plot.y0 + i * (TEXT_H + 10);
        let mid = (ly + TEXT_H / 2) as f64;
        c.line((lx as f64, mid), ((lx + 28) as f64, mid), colour, 3, whole, false);
        c.text(name, (lx + 36) as i64, ly as i64, INK, false);
    }

    // The frame last, over grid lines and data.
    let (x0, y0, x1, y1) = (
        plot.x0 as f64,
        plot.y0 as f64,
        (plot.x1 - 1) as f64,
        (plot.y1 - 1) as f64,
    );
    for (a, b) in [
        ((x0, y0), (x1, y0)),
        ((x1, y0), (x1, y1)),
        ((x1, y1), (x0, y1)),
        ((x0, y1), (x0, y0)),
    ] {
        c.line(a, b, INK, 1, whole, false);
    }
    c.save(path)
}

/// The finite points of a series.
fn finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// A line chart (say, loss and accuracy per epoch) of [`CHART_WIDTH`] ×
/// [`CHART_HEIGHT`] pixels with axes fitted to the data, a legend and a title; returns
/// the image's (width, height).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(usize, usize), PlotError> {
    let lines: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| (truncate(&s.name, MAX_LABEL_CHARS), finite(&s.points)))
        .collect();
    let all = || lines.iter().flat_map(|(_, p)| p.iter());
    let chart = XyChart {
        title,
        x_label,
        y_label,
        x: Axis::fit(all().map(|p| p.0)),
        y: Axis::fit(all().map(|p| p.1)),
        diagonal: false,
        lines,
        bands: Vec::new(),
    };
    draw_xy(path, &chart)
}

/// Ticks every 100 ms (50 ms for short windows) tightly around the beat's time span: a
/// "nice" fitted axis would leave a fifth of the picture empty on each side.
fn time_axis(points: &[(f64, f64)]) -> Axis {
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    if !lo.is_finite() || !hi.is_finite() || lo >= hi {
        return Axis::fit(points.iter().map(|p| p.0));
    }
    let step = if hi - lo > 400.0 { 100.0 } else { 50.0 };
    Axis::stepped((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

/// Light red for the most positive attribution, light blue for the most negative.
const POSITIVE: Rgb = [239, 59, 44];
const NEGATIVE: Rgb = [49, 130, 189];

/// An explanation's picture at `path`, titled with the method, the class explained and its
/// probability: a beat (ms from the R peak, mV) over its attribution ([`attribution_chart`],
/// the title also naming the stream, the beat's sample and true symbol), a record's image
/// under its heat map ([`image_attribution_chart`]), or a record's leads coloured by their
/// attribution ([`leads_attribution_chart`]).
pub fn explanation_picture(path: &Path, e: &crate::explain::Explanation) -> Result<(usize, usize), PlotError> {
    use crate::explain::Subject;
    let a = &e.attribution;
    let attribution: Vec<f64> = a.per_sample.iter().map(|&v| f64::from(v)).collect();
    let record_title = |stream: &str| {
        format!(
            "record {stream}: {} {} {:.0}%",
            a.method,
            e.class_name,
            100.0 * a.probability
        )
    };
    let b = match &e.subject {
        Subject::Beat(b) => b,
        Subject::Image(t) => {
            let size = match t.shape[..] {
                [height, width] => (width, height),
                _ => (t.data.len(), 1),
            };
            return image_attribution_chart(path, &record_title(&t.stream), &t.data, size, &attribution);
        }
        Subject::Leads { tensor, leads, fs } => {
            return leads_attribution_chart(
                path,
                &record_title(&tensor.stream),
                leads,
                *fs,
                &tensor.data,
                &attribution,
            );
        }
    };
    let ms = 1000.0 / b.fs;
    let beat: Vec<(f64, f64)> = b
        .window
        .iter()
        .take(b.before + 1 + b.after)
        .enumerate()
        .map(|(i, &v)| ((i as f64 - b.before as f64) * ms, f64::from(v)))
        .collect();
    let title = format!(
        "{} beat {} ({}): {} {} {:.0}%",
        b.stream,
        b.sample,
        b.symbol.as_deref().unwrap_or("?"),
        a.method,
        e.class_name,
        100.0 * a.probability
    );
    attribution_chart(path, &title, &beat, &attribution)
}

/// A beat (time in ms, amplitude in mV) drawn over its attribution: each sample's band is
/// shaded red for a positive attribution and blue for a negative one, in proportion to
/// its size relative to the largest. Returns the image's (width, height).
pub fn attribution_chart(
    path: &Path,
    title: &str,
    beat: &[(f64, f64)],
    attribution: &[f64],
) -> Result<(usize, usize), PlotError> {
    let points = finite(beat);
    let largest = largest_magnitude(attribution);
    let half_step = if beat.len() > 1 {
        (beat[beat.len() - 1].0 - beat[0].0) / (beat.len() - 1) as f64 / 2.0
    } else {
        0.5
    };
    let bands = beat
        .iter()
        .zip(attribution)
        .filter(|((x, _), a)| x.is_finite() && a.is_finite() && largest > 0.0)
        // Kept light (at most 70 % of the colour) so the beat stays readable on top.
        .map(|(&(x, _), &a)| (x - half_step, x + half_step, tint(WHITE, a, largest, 0.7)))
        .collect();
    let chart = XyChart {
        title,
        x_label: "time from R peak (ms)",
        y_label: "mV",
        x: time_axis(&points),
        y: Axis::fit(points.iter().map(|p| p.1)),
        diagonal: false,
        lines: vec![("beat".to_owned(), points)],
        bands,
    };
    draw_xy(path, &chart)
}

/// The largest finite |value| of `attribution` (0 when there is none).
fn largest_magnitude(attribution: &[f64]) -> f64 {
    attribution
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
}

/// `base` tinted red (positive `a`) or blue (negative) by `strength · |a| / largest`.
fn tint(base: Rgb, a: f64, largest: f64, strength: f64) -> Rgb {
    if !(a.is_finite() && largest > 0.0) {
        return base;
    }
    let end = if a >= 0.0 { POSITIVE } else { NEGATIVE };
    lerp(base, end, strength * a.abs() / largest)
}

/// The legend line under a record's attribution picture.
fn attribution_legend(largest: f64) -> String {
    let largest = if (1e-3..1e4).contains(&largest) || largest == 0.0 {
        format!("{largest:.4}")
    } else {
        format!("{largest:.2e}")
    };
    format!("red: towards the class, blue: away (strongest {largest})")
}

/// A grayscale image (`height × width` values in [0, 1], row-major, 1 = white, as
/// [`crate::render`] draws ECGs) under its attribution (one value per pixel) as a
/// semi-transparent heat map: red where the pixel pushed towards the class, blue where it
/// pushed away, more opaque the larger the value relative to the largest. The image is
/// enlarged by a whole factor to about 600 pixels a side, with the title above and a legend
/// below. Returns the picture's (width, height).
pub fn image_attribution_chart(
    path: &Path,
    title: &str,
    pixels: &[f32],
    (width, height): (usize, usize),
    attribution: &[f64],
) -> Result<(usize, usize), PlotError> {
    let scale = 600usize.div_ceil(width.max(1)).max(1);
    let largest = largest_magnitude(attribution);
    let legend = attribution_legend(largest);
    let margin = 16;
    let (image_w, image_h) = (width * scale, height * scale);
    let w = (image_w + 2 * margin).max(text_width(title).max(text_width(&legend)) + 2 * margin);
    let top = 14 + TEXT_H + 14;
    let h = top + image_h + 12 + TEXT_H + 14;
    let mut c = Canvas::new(path, w, h)?;
    c.text_centred(title, w / 2, 14, INK);
    let x0 = (w - image_w) / 2;
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            let grey = pixels.get(i).copied().unwrap_or(1.0);
            let grey = if grey.is_finite() { grey.clamp(0.0, 1.0) } else { 1.0 };
            let g = (grey * 255.0).round() as u8;
            // At most 60 % opaque, so the trace under the strongest heat stays visible.
            let a = attribution.get(i).copied().unwrap_or(0.0);
            let colour = tint([g; 3], a, largest, 0.6);
            let r = Rect {
                x0: x0 + x * scale,
                y0: top + y * scale,
                x1: x0 + (x + 1) * scale,
                y1: top + (y + 1) * scale,
            };
            c.fill(r, colour);
        }
    }
    c.text_centred(&legend, w / 2, top + image_h + 12, INK);
    c.save(path)
}

/// Leads of a record (`signal` holds `leads.len()` leads of equal length one after the
/// other, mV at `fs` Hz) drawn as traces one above the other, each sample's stretch of
/// trace coloured by its attribution (`attribution`, one value per value of `signal`): grey
/// where it is near 0, red where the lead pushed towards the class, blue where it pushed
/// away. Each lead sits on its median with a gain of 3 mV per row, clipped to its row;
/// seconds are marked below. Returns the picture's (width, height).
pub fn leads_attribution_chart(
    path: &Path,
    title: &str,
    leads: &[String],
    fs: f64,
    signal: &[f32],
    attribution: &[f64],
) -> Result<(usize, usize), PlotError> {
    const ROW: usize = 56;
    const MV_PER_ROW: f64 = 3.0;
    const TRACE: Rgb = [170, 170, 170];
    let n = leads.len().max(1);
    let samples = signal.len() / n;
    let largest = largest_magnitude(attribution);
    let legend = attribution_legend(largest);
    let w = CHART_WIDTH;
    let names_w = leads.iter().map(|l| text_width(&truncate(l, 6))).max().unwrap_or(0);
    let plot = Rect {
        x0: 16 + names_w + 12,
        y0: 14 + TEXT_H + 14,
        x1: w - 16,
        y1: 14 + TEXT_H + 14 + leads.len() * ROW,
    };
    let h = plot.y1 + 8 + TEXT_H + 12 + TEXT_H + 14;
    let mut c = Canvas::new(path, w, h)?;
    c.text_centred(title, w / 2, 14, INK);
    let seconds = samples as f64 / fs;
    let x_of = |i: f64| plot.x0 as f64 + i / samples.max(1) as f64 * (plot.x1 - plot.x0 - 1) as f64;
    if seconds.is_finite() && seconds > 0.0 {
        for t in 0..=seconds.floor() as usize {
            let x = x_of(t as f64 * fs);
            c.line((x, plot.y0 as f64), (x, plot.y1 as f64), GRID, 1, plot, false);
            c.text_centred(&t.to_string(), x.round() as usize, plot.y1 + 8, INK);
        }
    }
    for (k, name) in leads.iter().enumerate() {
        let lead = &signal[k * samples..(k + 1) * samples];
        let row = Rect {
            x0: plot.x0,
            y0: plot.y0 + k * ROW,
            x1: plot.x1,
            y1: plot.y0 + (k + 1) * ROW,
        };
        let mut finite: Vec<f32> = lead.iter().copied().filter(|v| v.is_finite()).collect();
        finite.sort_by(f32::total_cmp);
        let median = finite.get(finite.len() / 2).map_or(0.0, |&m| f64::from(m));
        let centre = (row.y0 + row.y1) as f64 / 2.0;
        let y_of = |v: f32| centre - (f64::from(v) - median) * ROW as f64 / MV_PER_ROW;
        c.line((row.x0 as f64, centre), (row.x1 as f64, centre), GRID, 1, row, false);
        let label_y = (centre.round() as usize).saturating_sub(TEXT_H / 2);
        c.text(&truncate(name, 6), 16, label_y as i64, INK, false);
        for i in 1..samples {
            let a = attribution.get(k * samples + i - 1).copied().unwrap_or(0.0);
            let colour = tint(TRACE, a, largest, 1.0);
            let from = (x_of((i - 1) as f64), y_of(lead[i - 1]));
            c.line(from, (x_of(i as f64), y_of(lead[i])), colour, 2, row, false);
        }
    }
    c.text_centred(&format!("time (s). {legend}"), w / 2, plot.y1 + 8 + TEXT_H + 10, INK);
    c.save(path)
}

/// ROC curves (false positive rate, true positive rate) on the unit square with the
/// chance diagonal, each named in the legend with its AUC. Returns the image's (width,
/// height).
pub fn roc_chart(path: &Path, title: &str, curves: &[RocCurve]) -> Result<(usize, usize), PlotError> {
    let lines = curves
        .iter()
        .map(|(name, points, auc)| {
            let auc = if auc.is_finite() {
                format!("{auc:.3}")
            } else {
                "n/a".into()
            };
            let name = truncate(name, MAX_LABEL_CHARS - 12);
            (format!("{name} (AUC {auc})"), finite(points))
        })
        .collect();
    let chart = XyChart {
        title,
        x_label: "false positive rate",
        y_label: "true positive rate",
        x: Axis::stepped(0.0, 1.0, 0.2),
        y: Axis::stepped(0.0, 1.0, 0.2),
        diagonal: true,
        lines,
        bands: Vec::new(),
    };
    draw_xy(path, &chart)
}

/// `a` to `b` by `t` in [0, 1].
fn lerp(a: Rgb, b: Rgb, t: f64) -> Rgb {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    std::array::from_fn(|i| (a[i] as f64 + (b[i] as f64 - a[i] as f64) * t).round() as u8)
}

/// A heat map of a confusion matrix: each cell shaded by its share of the row (the
/// truth), showing the count and that share in per cent, class names on both axes.
/// Returns the image's (width, height), which grows with the number of classes.
pub fn confusion_chart(path: &Path, title: &str, cm: &ConfusionMatrix) -> Result<(usize, usize), PlotError> {
    let k = cm.classes.len();
    let count = |t: usize, p: usize| cm.counts.get(t).and_then(|r| r.get(p)).copied().unwrap_or(0);
    let widest_count = (0..k * k).map(|i| text_width(&count(i / k, i % k).to_string())).max();
    let cell = widest_count.unwrap_or(0).max(text_width("100%")) + 16;
    let row_names: Vec<String> = cm.classes.iter().map(|s| truncate(s, MAX_LABEL_CHARS)).collect();
    let col_names: Vec<String> = cm.classes.iter().map(|s| truncate(s, cell / ADVANCE)).collect();
    let names_w = row_names.iter().map(|s| text_width(s)).max().unwrap_or(0);
    let (x0, y0) = (12 + TEXT_H + 14 + names_w + 10, 48);
    let side = k * cell;
    let w = (x0 + side + 20).max(text_width(title) + 24).max(240);
    let h = y0 + side + 8 + TEXT_H + 14 + TEXT_H + 16;
    let mut c = Canvas::new(path, w, h)?;

    c.text_centred(title, w / 2, 14, INK);
    c.fill(
        Rect {
            x0: x0 - 1,
            y0: y0 - 1,
            x1: x0 + side + 1,
            y1: y0 + side + 1,
        },
        GRID,
    );
    for (t, name) in row_names.iter().enumerate() {
        let row_total: u64 = (0..k).map(|p| count(t, p)).sum();
        for p in 0..k {
            let n = count(t, p);
            let share = if row_total == 0 {
                0.0
            } else {
                n as f64 / row_total as f64
            };
            let (cx, cy) = (x0 + p * cell, y0 + t * cell);
            let r = Rect {
                x0: cx + 1,
                y0: cy + 1,
                x1: cx + cell - 1,
                y1: cy + cell - 1,
            };
            c.fill(r, lerp(WHITE, HEAT, share));
            let ink = if share > 0.5 { WHITE } else { INK };
            let top = cy + cell / 2 - TEXT_H - 2;
            c.text_centred(&n.to_string(), cx + cell / 2, top, ink);
            c.text_centred(&format!("{:.0}%", share * 100.0), cx + cell / 2, top + TEXT_H + 4, ink);
        }
        let y = (y0 + t * cell + cell / 2 - TEXT_H / 2) as i64;
        c.text(name, (x0 - 10 - text_width(name)) as i64, y, INK, false);
    }
    for (p, name) in col_names.iter().enumerate() {
        c.text_centred(name, x0 + p * cell + cell / 2, y0 + side + 8, INK);
    }
    c.text_centred("predicted", x0 + side / 2, y0 + side + 8 + TEXT_H + 14, INK);
    c.text("truth", 12, (y0 + side / 2 + text_width("truth") / 2) as i64, INK, true);
    c.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A fresh directory for one test's output, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("ecgflow-plot-{}-{test}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TestDir(dir)
        }

        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Decodes an RGB PNG, checks its size and returns how many distinct colours it has.
    fn distinct_colours(path: &Path, size: (usize, usize)) -> usize {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut reader = png::Decoder::new(file).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width as usize, info.height as usize), size);
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf[..info.buffer_size()].chunks(3).collect::<HashSet<_>>().len()
    }

    #[test]
    fn line_chart_of_training_curves() {
        let dir = TestDir::new("line");
        let path = dir.join("curves.png");
        let epochs = |f: fn(f64) -> f64| (1..=20).map(|e| (e as f64, f(e as f64))).collect::<Vec<_>>();
        let mut loss = epochs(|e| 1.5 / e);
        loss[4].1 = f64::NAN;
        let series = [
            Series {
                name: "train loss".into(),
                points: loss,
            },
            Series {
                name: "val accuracy".into(),
                points: epochs(|e| 1.0 - 0.5 / e),
            },
            Series {
                name: "one point".into(),
                points: vec![(10.0, 0.5)],
            },
        ];
        let size = line_chart(&path, "Training (fold 1)", "epoch", "value", &series).unwrap();
        assert_eq!(size, (CHART_WIDTH, CHART_HEIGHT));
        // White, ink, grid and three series colours at least.
        assert!(distinct_colours(&path, size) >= 6);
    }

    #[test]
    fn empty_and_degenerate_charts_render_axes() {
        let dir = TestDir::new("empty");
        let size = line_chart(&dir.join("none.png"), "Nothing", "x", "y", &[]).unwrap();
        assert!(distinct_colours(&dir.join("none.png"), size) >= 3);
        let nan = [Series {
            name: "nan".into(),
            points: vec![(f64::NAN, 1.0), (2.0, f64::INFINITY)],
        }];
        let size = line_chart(&dir.join("nan.png"), "NaN", "x", "y", &nan).unwrap();
        assert!(distinct_colours(&dir.join("nan.png"), size) >= 3);
        let huge = [Series {
            name: "huge".into(),
            points: vec![(-f64::MAX, 0.0), (f64::MAX, 1.0)],
        }];
        line_chart(&dir.join("huge.png"), "Huge", "x", "y", &huge).unwrap();
        let cm = ConfusionMatrix::new(Vec::<String>::new());
        let size = confusion_chart(&dir.join("cm.png"), "Empty", &cm).unwrap();
        assert!(distinct_colours(&dir.join("cm.png"), size) >= 2);
    }

    #[test]
    fn roc_chart_with_diagonal() {
        let dir = TestDir::new("roc");
        let path = dir.join("roc.png");
        let (scores, truth) = ([0.1, 0.4, 0.35, 0.8, 0.6, 0.2], [false, false, true, true, true, false]);
        let curve = crate::metrics::roc_curve(&scores, &truth);
        let auc = crate::metrics::roc_auc(&scores, &truth).unwrap();
        let curves = [
            ("NORM".to_string(), curve, auc),
            ("MI".to_string(), vec![(0.0, 0.0), (1.0, 1.0)], f64::NAN),
        ];
        let size = roc_chart(&path, "ROC, test fold", &curves).unwrap();
        assert_eq!(size, (CHART_WIDTH, CHART_HEIGHT));
        assert!(distinct_colours(&path, size) >= 5);
    }

    #[test]
    fn attribution_chart_shades_the_beat() {
        let dir = TestDir::new("attribution");
        let beat: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64 * 2.8 - 90.0, (i as f64 / 10.0).sin()))
            .collect();
        let attribution: Vec<f64> = (0..100).map(|i| (i as f64 - 50.0) / 50.0).collect();
        let path = dir.join("a.png");
        let size = attribution_chart(&path, "beat 1 of 100: V", &beat, &attribution).unwrap();
        // Red and blue shades of many strengths, besides ink and grid.
        assert!(distinct_colours(&path, size) > 40);
        let flat = dir.join("flat.png");
        let size = attribution_chart(&flat, "all zero", &beat, &[0.0; 100]).unwrap();
        assert!(distinct_colours(&flat, size) < 40);
    }

    #[test]
    fn record_attribution_pictures_tint_the_image_and_the_leads() {
        let dir = TestDir::new("record-attribution");
        // A white 20 × 30 image with a black line, heat on the left half.
        let (w, h) = (30, 20);
        let mut pixels = vec![1.0f32; w * h];
        pixels[10 * w..11 * w].fill(0.0);
        let attribution: Vec<f64> = (0..w * h)
            .map(|i| if i % w < 15 { (i % w) as f64 } else { 0.0 })
            .collect();
        let path = dir.join("image.png");
        let size = image_attribution_chart(&path, "gradcam: MI 80%", &pixels, (w, h), &attribution).unwrap();
        assert!(size.0 >= 600 && size.1 > 400, "{size:?}");
        assert!(distinct_colours(&path, size) > 15);
        let flat = dir.join("flat.png");
        let size = image_attribution_chart(&flat, "none", &pixels, (w, h), &vec![0.0; w * h]).unwrap();
        assert!(distinct_colours(&flat, size) < 8);

        let leads: Vec<String> = ["I", "II", "V1"].iter().map(|s| s.to_string()).collect();
        let signal: Vec<f32> = (0..3 * 500).map(|i| (i as f32 / 20.0).sin()).collect();
        let attribution: Vec<f64> = (0..3 * 500).map(|i| ((i % 500) as f64 - 250.0) / 250.0).collect();
        let path = dir.join("leads.png");
        let size = leads_attribution_chart(&path, "shap: NORM 90%", &leads, 100.0, &signal, &attribution).unwrap();
        assert_eq!(size.0, CHART_WIDTH);
        assert!(distinct_colours(&path, size) > 30);
    }

    #[test]
    fn confusion_chart_heat_map() {
        let dir = TestDir::new("confusion");
        let path = dir.join("cm.png");
        let pairs = [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 0), (2, 2), (2, 2), (0, 3)];
        let cm = ConfusionMatrix::from_pairs(["N", "S", "V", "Q"], pairs).unwrap();
        let size = confusion_chart(&path, "Confusion matrix", &cm).unwrap();
        // White, ink, grid and several shades of blue.
        assert!(distinct_colours(&path, size) >= 5);
    }

    #[test]
    fn write_error_names_the_path() {
        let dir = TestDir::new("error");
        let path = dir.join("missing").join("x.png");
        match line_chart(&path, "t", "x", "y", &[]) {
            Err(PlotError::Write { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nice_axes() {
        let ends = |a: &Axis| (a.ticks[0], *a.ticks.last().unwrap());
        let a = Axis::fit([0.03, 0.93].into_iter());
        assert_eq!((ends(&a), a.ticks.len(), a.decimals), ((0.0, 1.0), 6, 1));
        assert!(a.lo < 0.0 && a.hi > 1.0);
        assert_eq!(a.label(a.ticks[1]), "0.2");
        let a = Axis::fit([1.0, 20.0].into_iter());
        assert_eq!((ends(&a), a.decimals), ((0.0, 20.0), 0));
        assert_eq!(a.label(20.0), "20");
        let a = Axis::fit([5.0].into_iter());
        assert!(a.ticks[0] < 5.0 && *a.ticks.last().unwrap() > 5.0);
        assert_eq!(Axis::fit(std::iter::empty()), Axis::stepped(0.0, 1.0, 0.2));
        assert_eq!(Axis::fit([f64::NAN].into_iter()), Axis::stepped(0.0, 1.0, 0.2));
    }

    #[test]
    fn font_covers_report_text() {
        let unknown = glyph('\u{1F600}');
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz.,-+%()/:_=±* ".chars() {
            assert_ne!(glyph(c), unknown, "{c:?}");
        }
        assert_eq!(glyph('q'), glyph('Q'));
    }
}
