//! 12-lead ECG images: the study's 224 × 224 grayscale picture of a 10-second record
//! (the input of Model 3), drawn like a paper ECG, and PNG export so a person can look
//! at it.
//!
//! # What is drawn
//!
//! - The image is split into a grid of equal cells (integer pixel bounds; when the size
//!   does not divide evenly the last row or column is up to one pixel larger). Leads fill
//!   the cells column by column in the order of [`RenderConfig::leads`]: with the
//!   standard order and [`Layout::Clinical`] that gives the clinical 3 × 4 sheet
//!   (I/aVR/V1/V4, II/aVL/V2/V5, III/aVF/V3/V6), with `Grid { rows: 6, cols: 2 }` the
//!   limb leads left and the chest leads right, with `Grid { rows: 12, cols: 1 }` one
//!   lead per row.
//! - Time: in [`Layout::Clinical`] column `c` of `cols` shows the slice
//!   `[c, c + 1) · duration_s / cols` of the record (2.5 s each by default), as on paper;
//!   in [`Layout::Grid`] every cell shows the whole `[0, duration_s)`. Time runs left to
//!   right across the cell's full width.
//! - Amplitude: each trace is centred vertically in its cell on its own baseline, the
//!   median of the finite samples drawn in that cell (robust to the QRS and to DC
//!   offsets); the cell's centre line is the middle pixel row. The gain is
//!   `cell height / mv_per_cell` pixels per mV, positive up. Whatever lies beyond the
//!   cell is clipped at the cell's edges: a trace never bleeds into a neighbouring cell.
//! - Traces are polylines through the samples (time of sample `i` is `i / fs` from the
//!   record's start), anti-aliased by distance-based coverage: a pixel whose centre lies
//!   at distance `d` from a segment gets ink `clamp(line_width / 2 + 0.5 - d, 0, 1)`;
//!   overlapping segments combine by maximum, so joints are not darker than lines.
//! - Non-finite samples (NaN, ±∞) are skipped: no segment touches them, leaving a gap in
//!   the trace; an isolated finite sample between two gaps is drawn as a dot.
//! - A record shorter than `duration_s` is drawn as far as it goes and the rest of its
//!   cells stays blank; samples beyond `duration_s` are ignored.
//! - Optional grid paper ([`RenderConfig::grid`]): faint lines every 1 mm and darker
//!   every 5 mm of a paper ECG at 25 mm/s and 10 mm/mV, i.e. every 0.04 s / 0.2 s and
//!   0.1 mV / 0.5 mV, scaled to each cell's time and amplitude scales (so the squares
//!   are square only when the two scales agree) and anchored at the cell's left edge and
//!   baseline. A family of lines closer than [`MIN_GRID_SPACING_PX`] pixels is left out
//!   (at 224 × 224 only the 5 mm lines are drawn).
//! - Optional lead labels ([`RenderConfig::labels`]) in a small built-in pixel font at
//!   each cell's top-left corner.
//! - Colours: black trace on white paper by default; [`RenderConfig::invert`] gives a
//!   white trace on black.
//!
//! Rendering is pure arithmetic over the inputs: the same input gives identical pixels
//! and identical PNG bytes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::types::Chunk;

/// The twelve standard leads in the order the default layouts use.
pub const STANDARD_LEADS: [&str; 12] = [
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
];

/// Ink of the 1 mm grid lines (0 = paper, 1 = trace).
pub const GRID_MINOR_INK: f32 = 0.10;

/// Ink of the 5 mm grid lines.
pub const GRID_MAJOR_INK: f32 = 0.22;

/// Grid lines closer together than this many pixels are not drawn.
pub const MIN_GRID_SPACING_PX: f64 = 3.0;

/// Largest accepted image width or height in pixels.
pub const MAX_SIDE: usize = 16_384;

/// Where the leads go in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// The clinical sheet: 3 rows × 4 columns, each column showing its quarter of the
    /// record (I/aVR/V1/V4 in the first row, II/aVL/V2/V5, III/aVF/V3/V6).
    Clinical,
    /// `rows × cols` cells filled column by column, each showing the whole record.
    Grid {
        /// Number of rows of cells.
        rows: usize,
        /// Number of columns of cells.
        cols: usize,
    },
}

impl Layout {
    /// Rows and columns of cells.
    pub fn rows_cols(&self) -> (usize, usize) {
        match *self {
            Layout::Clinical => (3, 4),
            Layout::Grid { rows, cols } => (rows, cols),
        }
    }
}

/// How to draw an image; see the [module documentation](self) for what each setting means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderConfig {
    /// Image width in pixels (default 224).
    pub width: usize,
    /// Image height in pixels (default 224).
    pub height: usize,
    /// Arrangement of the leads (default [`Layout::Clinical`]).
    pub layout: Layout,
    /// Leads to draw, in cell order (column by column); matched to the input's lead names
    /// without regard to ASCII case. Default [`STANDARD_LEADS`].
    pub leads: Vec<String>,
    /// Amplitude range spanned by a cell's height in mV; the gain is
    /// `cell height / mv_per_cell` pixels per mV. Default 4.0, i.e. ±2 mV about the
    /// baseline, which holds the whole excursion of 94 % of the 2.5 s lead slices of the
    /// first 600 PTB-XL records (5.0: 98 %, 6.0: 99 %; a paper sheet is about 5-6 mV per
    /// row).
    pub mv_per_cell: f64,
    /// Trace width in pixels (default 1.0).
    pub line_width: f32,
    /// Draw grid paper (default false).
    pub grid: bool,
    /// Draw lead names in the cells (default false).
    pub labels: bool,
    /// White trace on black instead of black on white (default false).
    pub invert: bool,
    /// Seconds of the record drawn (default 10).
    pub duration_s: f64,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            width: 224,
            height: 224,
            layout: Layout::Clinical,
            leads: STANDARD_LEADS.iter().map(|s| s.to_string()).collect(),
            mv_per_cell: 4.0,
            line_width: 1.0,
            grid: false,
            labels: false,
            invert: false,
            duration_s: 10.0,
        }
    }
}

/// Errors of rendering and PNG export.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A configuration value is out of range.
    #[error("render config: {0}")]
    Config(String),
    /// A configured lead is not among the input's leads.
    #[error("lead {0:?} is missing from the record")]
    MissingLead(String),
    /// The number of lead names and of sample vectors differ.
    #[error("{names} lead names but {series} sample vectors")]
    LeadCount {
        /// Number of lead names.
        names: usize,
        /// Number of sample vectors.
        series: usize,
    },
    /// The sampling rate is not a positive finite number.
    #[error("bad sampling rate {0} Hz")]
    SampleRate(f64),
    /// Chunks that cannot be joined into one record.
    #[error("chunks: {0}")]
    Chunks(String),
    /// A pixel buffer whose length is not `width × height`.
    #[error("{got} pixels for a {width} × {height} image")]
    PixelCount {
        /// Image width.
        width: usize,
        /// Image height.
        height: usize,
        /// Length of the buffer.
        got: usize,
    },
    /// PNG encoding failed.
    #[error("PNG encoding: {0}")]
    Png(String),
    /// An I/O error on a named file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
}

/// One cell: pixel bounds `[x0, x1) × [y0, y1)` and the time window it shows.
#[derive(Clone, Copy, Debug)]
struct Cell {
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
    t0: f64,
    t1: f64,
}

impl Cell {
    /// Pixels per second.
    fn px_per_s(&self) -> f64 {
        (self.x1 - self.x0) as f64 / (self.t1 - self.t0)
    }

    /// The baseline's y coordinate: the centre of the middle pixel row.
    fn y_centre(&self) -> f64 {
        ((self.y0 + self.y1) / 2) as f64 + 0.5
    }
}

/// Draws 12-lead (or any configured leads') ECG images; see the [module
/// documentation](self).
#[derive(Clone, Debug)]
pub struct Renderer {
    config: RenderConfig,
    rows: usize,
    cols: usize,
}

impl Renderer {
    /// A renderer after checking the configuration: sizes from 1 to [`MAX_SIDE`] with at
    /// least one pixel per cell, at least one lead and no more leads than cells, and
    /// positive finite `mv_per_cell`, `line_width` and `duration_s`.
    pub fn new(config: RenderConfig) -> Result<Self, RenderError> {
        let bad = |m: String| Err(RenderError::Config(m));
        let (rows, cols) = config.layout.rows_cols();
        if rows == 0 || cols == 0 {
            return bad(format!("layout needs at least one row and column, got {rows} × {cols}"));
        }
        if config.width < cols || config.height < rows {
            return bad(format!(
                "a {} × {} image is too small for {rows} × {cols} cells",
                config.width, config.height
            ));
        }
        if config.width > MAX_SIDE || config.height > MAX_SIDE {
            return bad(format!("width and height must be at most {MAX_SIDE}"));
        }
        if config.leads.is_empty() || config.leads.len() > rows * cols {
            return bad(format!("{} leads for {} cells", config.leads.len(), rows * cols));
        }
        if !(config.mv_per_cell.is_finite() && config.mv_per_cell > 0.0) {
            return bad(format!("mv_per_cell must be > 0, got {}", config.mv_per_cell));
        }
        if !(config.line_width.is_finite() && config.line_width > 0.0) {
            return bad(format!("line_width must be > 0, got {}", config.line_width));
        }
        if !(config.duration_s.is_finite() && config.duration_s > 0.0) {
            return bad(format!("duration_s must be > 0, got {}", config.duration_s));
        }
        Ok(Renderer { config, rows, cols })
    }

    /// The configuration.
    pub fn config(&self) -> &RenderConfig {
        &self.config
    }

    /// Renders a record: `leads[k]` names `samples[k]` (mV at `fs` Hz, sample 0 at time
    /// 0). Returns `height × width` values in `[0, 1]`, row-major, top row first
    /// (1 = white). Errors: a configured lead missing from `leads` (named), lead names and
    /// sample vectors of different counts, a bad `fs`. Leads may have different lengths;
    /// each is drawn as far as it goes.
    pub fn render<S: AsRef<str>>(&self, leads: &[S], samples: &[Vec<f32>], fs: f64) -> Result<Vec<f32>, RenderError> {
        if leads.len() != samples.len() {
            return Err(RenderError::LeadCount {
                names: leads.len(),
                series: samples.len(),
            });
        }
        if !(fs.is_finite() && fs > 0.0) {
            return Err(RenderError::SampleRate(fs));
        }
        let inputs = self
            .config
            .leads
            .iter()
            .map(|want| {
                leads
                    .iter()
                    .position(|have| have.as_ref().eq_ignore_ascii_case(want))
                    .ok_or_else(|| RenderError::MissingLead(want.clone()))
            })
            .collect::<Result<Vec<usize>, _>>()?;

        let (w, h) = (self.config.width, self.config.height);
        let mut ink = vec![0.0f32; w * h];
        for k in 0..self.config.leads.len() {
            let cell = self.cell(k);
            if self.config.grid {
                self.draw_grid(&mut ink, &cell);
            }
            self.draw_trace(&mut ink, &cell, &samples[inputs[k]], fs);
            if self.config.labels {
                draw_label(&mut ink, w, &cell, &self.config.leads[k]);
            }
        }
        if !self.config.invert {
            for v in &mut ink {
                *v = 1.0 - *v;
            }
        }
        Ok(ink)
    }

    /// Renders one stream's chunks, in order, as one record (its time 0 is the first
    /// chunk's start). The chunks must share stream, lead names and sampling rate and be
    /// contiguous (each starts where the previous ended).
    pub fn render_chunks(&self, chunks: &[Chunk]) -> Result<Vec<f32>, RenderError> {
        let first = chunks.first().ok_or_else(|| RenderError::Chunks("no chunks".into()))?;
        let mut samples = vec![Vec::new(); first.leads.len()];
        let mut next = first.start;
        for c in chunks {
            if c.stream != first.stream || c.leads != first.leads || c.fs != first.fs {
                return Err(RenderError::Chunks(format!(
                    "chunk at {} of stream {:?} differs in stream, leads or rate from the first",
                    c.start, c.stream
                )));
            }
            if c.start != next {
                return Err(RenderError::Chunks(format!(
                    "stream {:?}: chunk starts at {} but the previous ended at {next}",
                    c.stream, c.start
                )));
            }
            if c.samples.len() != first.leads.len() {
                return Err(RenderError::LeadCount {
                    names: first.leads.len(),
                    series: c.samples.len(),
                });
            }
            for (all, part) in samples.iter_mut().zip(&c.samples) {
                all.extend_from_slice(part);
            }
            next = c.end();
        }
        self.render(&first.leads, &samples, first.fs)
    }

    /// The cell of the `k`-th configured lead (column-major).
    fn cell(&self, k: usize) -> Cell {
        let (row, col) = (k % self.rows, k / self.rows);
        let (w, h) = (self.config.width, self.config.height);
        let d = self.config.duration_s;
        let (t0, t1) = match self.config.layout {
            Layout::Clinical => (
                d * col as f64 / self.cols as f64,
                d * (col + 1) as f64 / self.cols as f64,
            ),
            Layout::Grid { .. } => (0.0, d),
        };
        Cell {
            x0: col * w / self.cols,
            x1: (col + 1) * w / self.cols,
            y0: row * h / self.rows,
            y1: (row + 1) * h / self.rows,
            t0,
            t1,
        }
    }

    /// Pixels per mV in a cell.
    fn px_per_mv(&self, cell: &Cell) -> f64 {
        (cell.y1 - cell.y0) as f64 / self.config.mv_per_cell
    }

    /// Draws a cell's grid paper: 1 mm and 5 mm lines at 25 mm/s and 10 mm/mV.
    fn draw_grid(&self, ink: &mut [f32], cell: &Cell) {
        let w = self.config.width;
        let x_step = 0.04 * cell.px_per_s(); // 1 mm in time
        let y_step = 0.1 * self.px_per_mv(cell); // 1 mm in amplitude
        for (step, vertical) in [(x_step, true), (y_step, false)] {
            let draw_minor = step >= MIN_GRID_SPACING_PX;
            if 5.0 * step < MIN_GRID_SPACING_PX {
                continue;
            }
            // Lines at k steps from the anchor (left edge or baseline), both ways.
            let (anchor, lo, hi) = if vertical {
                (cell.x0 as f64 + 0.5, cell.x0 as f64, cell.x1 as f64)
            } else {
                (cell.y_centre(), cell.y0 as f64, cell.y1 as f64)
            };
            let k_min = ((lo - 0.5 - anchor) / step).ceil() as i64;
            let k_max = ((hi + 0.5 - anchor) / step).floor() as i64;
            for k in k_min..=k_max {
                let major = k % 5 == 0;
                if !major && !draw_minor {
                    continue;
                }
                let level = if major { GRID_MAJOR_INK } else { GRID_MINOR_INK };
                let p = anchor + k as f64 * step;
                // A one-pixel-wide line covering [p - 0.5, p + 0.5), box-filtered.
                let first = (p - 0.5).floor().max(lo) as usize;
                let last = (p + 0.5).ceil().min(hi) as usize;
                for i in first..last {
                    let cover = ((i + 1) as f64).min(p + 0.5) - (i as f64).max(p - 0.5);
                    if cover <= 0.0 {
                        continue;
                    }
                    let v = level * cover as f32;
                    if vertical {
                        for y in cell.y0..cell.y1 {
                            let px = &mut ink[y * w + i];
                            *px = px.max(v);
                        }
                    } else {
                        for px in &mut ink[i * w + cell.x0..i * w + cell.x1] {
                            *px = px.max(v);
                        }
                    }
                }
            }
        }
    }

    /// Draws one lead's samples that fall in the cell's time window.
    fn draw_trace(&self, ink: &mut [f32], cell: &Cell, x: &[f32], fs: f64) {
        let end = x.len().min((self.config.duration_s * fs).ceil() as usize);
        // Samples from the first at or after t0 to the first at or after t1 (inclusive,
        // so that the trace reaches the cell's right edge).
        let i0 = ((cell.t0 * fs).ceil() as usize).min(end);
        let i1 = ((cell.t1 * fs).ceil() as usize + 1).min(end);
        if i0 >= i1 {
            return;
        }
        let part = &x[i0..i1];
        let Some(base) = median_finite(part) else {
            return;
        };
        let (px_per_s, px_per_mv) = (cell.px_per_s(), self.px_per_mv(cell));
        let yc = cell.y_centre();
        let point = |j: usize| -> Option<(f64, f64)> {
            let v = part[j];
            v.is_finite().then(|| {
                let t = (i0 + j) as f64 / fs;
                (
                    cell.x0 as f64 + (t - cell.t0) * px_per_s,
                    yc - (v as f64 - base) * px_per_mv,
                )
            })
        };
        let half = self.config.line_width as f64 / 2.0;
        let w = self.config.width;
        let mut prev = None;
        for j in 0..part.len() {
            let here = point(j);
            match (prev, here) {
                (Some(a), Some(b)) => draw_segment(ink, w, cell, a, b, half),
                (None, Some(b)) => {
                    let next_finite = j + 1 < part.len() && part[j + 1].is_finite();
                    if !next_finite {
                        draw_segment(ink, w, cell, b, b, half); // isolated sample: a dot
                    }
                }
                _ => {}
            }
            prev = here;
        }
    }
}

/// Median of the finite values (upper median for an even count), `None` if there are none.
fn median_finite(x: &[f32]) -> Option<f64> {
    let mut v: Vec<f32> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    Some(*m as f64)
}

/// Draws the segment `a`–`b` of half-width `half` with distance-based coverage, clipped
/// to the cell; ink combines by maximum.
fn draw_segment(ink: &mut [f32], w: usize, cell: &Cell, a: (f64, f64), b: (f64, f64), half: f64) {
    let r = half + 0.5;
    let x_lo = (a.0.min(b.0) - r).floor().max(cell.x0 as f64);
    let x_hi = (a.0.max(b.0) + r).ceil().min(cell.x1 as f64);
    let y_lo = (a.1.min(b.1) - r).floor().max(cell.y0 as f64);
    let y_hi = (a.1.max(b.1) + r).ceil().min(cell.y1 as f64);
    if x_lo >= x_hi || y_lo >= y_hi {
        return;
    }
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    for y in y_lo as usize..y_hi as usize {
        let py = y as f64 + 0.5;
        for x in x_lo as usize..x_hi as usize {
            let px = x as f64 + 0.5;
            // Distance from the pixel centre to the nearest point of the segment.
            let t = if len2 > 0.0 {
                (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (ex, ey) = (px - (a.0 + t * dx), py - (a.1 + t * dy));
            let cover = (r - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0) as f32;
            let p = &mut ink[y * w + x];
            *p = p.max(cover);
        }
    }
}

/// A 3 × 5 pixel glyph, rows top to bottom, bit 2 = left column.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        'I' | 'i' => [0b111, 0b010, 0b010, 0b010, 0b111],
        'V' | 'v' => [0b101, 0b101, 0b101, 0b101, 0b010],
        'R' | 'r' => [0b110, 0b101, 0b110, 0b101, 0b101],
        'L' | 'l' => [0b100, 0b100, 0b100, 0b100, 0b111],
        'F' | 'f' => [0b111, 0b100, 0b110, 0b100, 0b100],
        'A' => [0b010, 0b101, 0b111, 0b101, 0b101],
        'a' => [0b000, 0b011, 0b101, 0b101, 0b011],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b110, 0b001, 0b010, 0b100, 0b111],
        '3' => [0b110, 0b001, 0b010, 0b001, 0b110],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b110, 0b001, 0b110],
        '6' => [0b011, 0b100, 0b111, 0b101, 0b111],
        _ => return None,
    })
}

/// Writes a lead name at the cell's top-left corner in the built-in font, scaled by an
/// integer factor that grows with the cell's height; unknown characters are left blank.
fn draw_label(ink: &mut [f32], w: usize, cell: &Cell, name: &str) {
    let s = ((cell.y1 - cell.y0) / 64).max(1);
    let mut x = cell.x0 + s;
    let y = cell.y0 + s;
    for c in name.chars() {
        if let Some(rows) = glyph(c) {
            for (gy, bits) in rows.iter().enumerate() {
                for gx in 0..3 {
                    if bits & (0b100 >> gx) == 0 {
                        continue;
                    }
                    for py in y + gy * s..y + (gy + 1) * s {
                        for px in x + gx * s..x + (gx + 1) * s {
                            if px < cell.x1 && py < cell.y1 {
                                ink[py * w + px] = 1.0;
                            }
                        }
                    }
                }
            }
        }
        x += 4 * s;
    }
}

/// Checks that a buffer holds `width × height` pixels.
fn check_pixels(pixels: &[f32], width: usize, height: usize) -> Result<(), RenderError> {
    if pixels.len() != width * height || width == 0 || height == 0 {
        return Err(RenderError::PixelCount {
            width,
            height,
            got: pixels.len(),
        });
    }
    Ok(())
}

/// Encodes `height × width` values in `[0, 1]` (row-major, clamped; NaN as 0) as an 8-bit
/// grayscale PNG.
pub fn to_png_bytes(pixels: &[f32], width: usize, height: usize) -> Result<Vec<u8>, RenderError> {
    check_pixels(pixels, width, height)?;
    let (wu, hu) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(RenderError::Png(format!("{width} × {height} is too large"))),
    };
    let bytes: Vec<u8> = pixels
        .iter()
        .map(|&v| {
            if v.is_nan() {
                0
            } else {
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            }
        })
        .collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, wu, hu);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let png_err = |e: png::EncodingError| RenderError::Png(e.to_string());
    let mut writer = enc.write_header().map_err(png_err)?;
    writer.write_image_data(&bytes).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(out)
}

/// Writes `height × width` values in `[0, 1]` as an 8-bit grayscale PNG file, first to a
/// temporary name beside `path` and then renamed, so that a reader never sees half a file.
pub fn write_png(path: &Path, pixels: &[f32], width: usize, height: usize) -> Result<(), RenderError> {
    let bytes = to_png_bytes(pixels, width, height)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |error| RenderError::Io { path: p, error }
    };
    std::fs::write(&tmp, &bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path)(e)
    })
}
