//! Seeded, stackable data augmentation for beats / signal windows and for images
//! (row-major `f32` buffers of `width × height` pixels).
//!
//! An [`Augmenter`] applies its steps in order, each with fresh random parameters drawn
//! from its own [`SplitMix64`] generator: the same seed and the same sequence of calls
//! give the same outputs on every platform. Steps that only make sense for the other kind
//! of data are skipped (and draw no random numbers): signal steps ([`Augmentation::BaselineWander`],
//! [`Augmentation::TimeShift`], [`Augmentation::Erase`]) leave images alone, image steps
//! ([`Augmentation::EraseRect`], [`Augmentation::Affine`],
//! [`Augmentation::BrightnessContrast`]) leave signals alone; pixel-wise steps
//! ([`Augmentation::GaussianNoise`], [`Augmentation::AmplitudeScale`]) and
//! [`Augmentation::Sometimes`] apply to both.
//!
//! Samples are in physical units (mV) for signals; images are typically in `[0, 1]`, but
//! no step clamps its output.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// What an erased span holds afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fill {
    /// Zeros.
    Zero,
    /// The mean of the window before erasing.
    Mean,
}

/// One augmentation step; random parameters are drawn anew at every application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Augmentation {
    /// Adds white Gaussian noise of standard deviation `std`: in the data's units (mV)
    /// when `relative` is false, as a fraction of the window's (image's) own standard
    /// deviation when it is true. Signals and images.
    GaussianNoise {
        /// Noise standard deviation (absolute or relative).
        std: f32,
        /// Whether `std` is relative to the data's standard deviation.
        relative: bool,
    },
    /// Multiplies every sample by one factor drawn uniformly from `[min, max]`.
    /// Signals and images.
    AmplitudeScale {
        /// Smallest factor.
        min: f32,
        /// Largest factor.
        max: f32,
    },
    /// Adds a low-frequency sinusoid `a · sin(2π f t + φ)` with `a` uniform in
    /// `[0, amplitude]` and `φ` uniform in `[0, 2π)`, `t = i / fs`. Signals only.
    BaselineWander {
        /// Largest amplitude, in the data's units (mV).
        amplitude: f32,
        /// Frequency `f` of the wander in Hz (respiration: 0.1-0.5 Hz).
        frequency_hz: f32,
        /// Sampling rate of the window in Hz.
        fs: f32,
    },
    /// Shifts the window by `s` samples, `s` uniform in `[-max_shift, max_shift]`
    /// (positive: later): `out[i] = x[clamp(i - s, 0, n - 1)]`, so the samples shifted in
    /// at an edge repeat the edge value (no step is introduced). Signals only.
    TimeShift {
        /// Largest shift in samples.
        max_shift: usize,
    },
    /// Random erasing: sets a contiguous span of `length` samples (the whole window if it
    /// is shorter) at a uniformly random position to `fill`. Signals only.
    Erase {
        /// Span length in samples.
        length: usize,
        /// What the span holds afterwards.
        fill: Fill,
    },
    /// Random erasing of an image: a `width × height` rectangle (clipped to the image) at
    /// a uniformly random position is set to `value`. Images only.
    EraseRect {
        /// Rectangle width in pixels.
        width: usize,
        /// Rectangle height in pixels.
        height: usize,
        /// Pixel value inside the rectangle.
        value: f32,
    },
    /// A small random affine change of an image about its centre: rotation uniform in
    /// `±max_rotation_deg`, scale uniform in `[min_scale, max_scale]`, translation uniform
    /// in `±max_translate` pixels on each axis; bilinear sampling, `fill` outside the
    /// source image. Images only.
    Affine {
        /// Largest rotation in degrees (either direction).
        max_rotation_deg: f32,
        /// Smallest zoom factor (1 = unchanged).
        min_scale: f32,
        /// Largest zoom factor.
        max_scale: f32,
        /// Largest translation in pixels, per axis.
        max_translate: f32,
        /// Value of pixels that map outside the source image.
        fill: f32,
    },
    /// Brightness and contrast: `p' = (p - mean) · c + mean + b`, `c` uniform in
    /// `[1 - max_contrast, 1 + max_contrast]`, `b` uniform in
    /// `[-max_brightness, max_brightness]`, `mean` the image's mean. Images only.
    BrightnessContrast {
        /// Largest brightness offset in pixel units.
        max_brightness: f32,
        /// Largest relative contrast change.
        max_contrast: f32,
    },
    /// Applies `step` with probability `probability` (one uniform draw, then the step's
    /// own draws if it applies).
    Sometimes {
        /// Probability in `[0, 1]`.
        probability: f64,
        /// The step applied.
        step: Box<Augmentation>,
    },
}

/// An augmentation parameter out of range (see [`Augmentation::validate`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{step}.{field} = {value} {reason}")]
pub struct AugmentError {
    /// The step's variant name, e.g. `GaussianNoise`.
    pub step: &'static str,
    /// The field, e.g. `std`.
    pub field: &'static str,
    /// The rejected value.
    pub value: f64,
    /// What it must be.
    pub reason: &'static str,
}

impl Augmentation {
    /// Checks the parameters: finite, non-negative amplitudes and ranges with `min ≤ max`,
    /// a positive sampling rate, a probability in `[0, 1]`. The [`Augmenter`] does not
    /// check them; out-of-range values give meaningless (but never panicking) results.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let check = |step, field, value: f64, ok: bool, reason| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(AugmentError {
                    step,
                    field,
                    value,
                    reason,
                })
            }
        };
        let non_negative = "must be finite and at least 0";
        match self {
            Augmentation::GaussianNoise { std, .. } => {
                check("GaussianNoise", "std", *std as f64, *std >= 0.0, non_negative)
            }
            Augmentation::AmplitudeScale { min, max } => {
                check("AmplitudeScale", "min", *min as f64, true, "must be finite")?;
                check(
                    "AmplitudeScale",
                    "max",
                    *max as f64,
                    max >= min,
                    "must be finite and at least min",
                )
            }
            Augmentation::BaselineWander {
                amplitude,
                frequency_hz,
                fs,
            } => {
                check(
                    "BaselineWander",
                    "amplitude",
                    *amplitude as f64,
                    *amplitude >= 0.0,
                    non_negative,
                )?;
                check(
                    "BaselineWander",
                    "frequency_hz",
                    *frequency_hz as f64,
                    *frequency_hz >= 0.0,
                    non_negative,
                )?;
                check(
                    "BaselineWander",
                    "fs",
                    *fs as f64,
                    *fs > 0.0,
                    "must be finite and above 0",
                )
            }
            Augmentation::TimeShift { .. } | Augmentation::Erase { .. } | Augmentation::EraseRect { .. } => Ok(()),
            Augmentation::Affine {
                max_rotation_deg,
                min_scale,
                max_scale,
                max_translate,
                fill,
            } => {
                check(
                    "Affine",
                    "max_rotation_deg",
                    *max_rotation_deg as f64,
                    *max_rotation_deg >= 0.0,
                    non_negative,
                )?;
                check(
                    "Affine",
                    "min_scale",
                    *min_scale as f64,
                    *min_scale > 0.0,
                    "must be finite and above 0",
                )?;
                check(
                    "Affine",
                    "max_scale",
                    *max_scale as f64,
                    max_scale >= min_scale,
                    "must be finite and at least min_scale",
                )?;
                check(
                    "Affine",
                    "max_translate",
                    *max_translate as f64,
                    *max_translate >= 0.0,
                    non_negative,
                )?;
                check("Affine", "fill", *fill as f64, true, "must be finite")
            }
            Augmentation::BrightnessContrast {
                max_brightness,
                max_contrast,
            } => {
                check(
                    "BrightnessContrast",
                    "max_brightness",
                    *max_brightness as f64,
                    *max_brightness >= 0.0,
                    non_negative,
                )?;
                check(
                    "BrightnessContrast",
                    "max_contrast",
                    *max_contrast as f64,
                    *max_contrast >= 0.0,
                    non_negative,
                )
            }
            Augmentation::Sometimes { probability, step } => {
                check(
                    "Sometimes",
                    "probability",
                    *probability,
                    (0.0..=1.0).contains(probability),
                    "must be between 0 and 1",
                )?;
                step.validate()
            }
        }
    }
}

/// Applies a stack of [`Augmentation`]s with seeded randomness.
#[derive(Clone, Debug)]
pub struct Augmenter {
    steps: Vec<Augmentation>,
    rng: SplitMix64,
    scratch: Vec<f32>,
}

impl Augmenter {
    /// Steps applied in order; `seed` fixes every random draw. Parameters are not checked
    /// (see [`Augmenter::try_new`]).
    pub fn new(steps: Vec<Augmentation>, seed: u64) -> Self {
        Augmenter {
            steps,
            rng: SplitMix64::new(seed),
            scratch: Vec::new(),
        }
    }

    /// As [`Augmenter::new`], after [`Augmentation::validate`] on every step.
    pub fn try_new(steps: Vec<Augmentation>, seed: u64) -> Result<Self, AugmentError> {
        steps.iter().try_for_each(Augmentation::validate)?;
        Ok(Self::new(steps, seed))
    }

    /// The steps.
    pub fn steps(&self) -> &[Augmentation] {
        &self.steps
    }

    /// Augments a signal window (one lead, or any samples treated as one sequence) in
    /// place.
    pub fn apply(&mut self, window: &mut [f32]) {
        let steps = std::mem::take(&mut self.steps);
        for step in &steps {
            self.signal_step(step, window);
        }
        self.steps = steps;
    }

    /// Augments a row-major `width × height` image in place. A buffer whose length is not
    /// `width * height` is left unchanged.
    pub fn apply_image(&mut self, pixels: &mut [f32], width: usize, height: usize) {
        if width.checked_mul(height) != Some(pixels.len()) {
            return;
        }
        let steps = std::mem::take(&mut self.steps);
        for step in &steps {
            self.image_step(step, pixels, width, height);
        }
        self.steps = steps;
    }

    fn signal_step(&mut self, step: &Augmentation, x: &mut [f32]) {
        let n = x.len();
        match step {
            Augmentation::BaselineWander {
                amplitude,
                frequency_hz,
                fs,
            } => {
                let a = self.uniform(0.0, *amplitude as f64);
                let phase = self.uniform(0.0, 2.0 * PI);
                let w = 2.0 * PI * *frequency_hz as f64 / *fs as f64;
                for (i, v) in x.iter_mut().enumerate() {
                    *v += (a * (w * i as f64 + phase).sin()) as f32;
                }
            }
            Augmentation::TimeShift { max_shift } => {
                let shift = self.shift(*max_shift);
                self.scratch.clear();
                self.scratch.extend_from_slice(x);
                for (i, v) in x.iter_mut().enumerate() {
                    let src = (i as i64 - shift).clamp(0, n as i64 - 1);
                    *v = self.scratch[src as usize];
                }
            }
            Augmentation::Erase { length, fill } => {
                let len = (*length).min(n);
                let start = self.index(n - len + 1);
                let value = match fill {
                    Fill::Zero => 0.0,
                    Fill::Mean => mean(x) as f32,
                };
                x[start..start + len].fill(value);
            }
            Augmentation::EraseRect { .. } | Augmentation::Affine { .. } | Augmentation::BrightnessContrast { .. } => {}
            _ => self.pixel_step(step, x, &mut |aug, inner, x| aug.signal_step(inner, x)),
        }
    }

    fn image_step(&mut self, step: &Augmentation, p: &mut [f32], width: usize, height: usize) {
        match step {
            Augmentation::EraseRect {
                width: w,
                height: h,
                value,
            } => {
                let (w, h) = ((*w).min(width), (*h).min(height));
                let x0 = self.index(width - w + 1);
                let y0 = self.index(height - h + 1);
                for row in p.chunks_mut(width).skip(y0).take(h) {
                    row[x0..x0 + w].fill(*value);
                }
            }
            Augmentation::Affine {
                max_rotation_deg,
                min_scale,
                max_scale,
                max_translate,
                fill,
            } => {
                let max_rot = *max_rotation_deg as f64;
                let angle = self.uniform(-max_rot, max_rot).to_radians();
                let scale = self.uniform(*min_scale as f64, *max_scale as f64);
                let max_t = *max_translate as f64;
                let (tx, ty) = (self.uniform(-max_t, max_t), self.uniform(-max_t, max_t));
                self.scratch.clear();
                self.scratch.extend_from_slice(p);
                let src = Image {
                    pixels: &self.scratch,
                    width,
                    height,
                };
                let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
                let (sin, cos) = angle.sin_cos();
                for (y, row) in p.chunks_mut(width).enumerate() {
                    for (x, v) in row.iter_mut().enumerate() {
                        // Inverse map: undo the translation, the rotation and the zoom.
                        let (dx, dy) = (x as f64 - cx - tx, y as f64 - cy - ty);
                        let sx = (cos * dx + sin * dy) / scale + cx;
                        let sy = (-sin * dx + cos * dy) / scale + cy;
                        *v = src.bilinear(sx, sy).unwrap_or(*fill);
                    }
                }
            }
            Augmentation::BrightnessContrast {
                max_brightness,
                max_contrast,
            } => {
                let c = 1.0 + self.uniform(-*max_contrast as f64, *max_contrast as f64);
                let b = self.uniform(-*max_brightness as f64, *max_brightness as f64);
                let m = mean(p);
                for v in p.iter_mut() {
                    *v = ((*v as f64 - m) * c + m + b) as f32;
                }
            }
            Augmentation::BaselineWander { .. } | Augmentation::TimeShift { .. } | Augmentation::Erase { .. } => {}
            _ => self.pixel_step(step, p, &mut |aug, inner, p| aug.image_step(inner, p, width, height)),
        }
    }

    /// Steps shared by signals and images; `recurse` applies a wrapped step the way the
    /// caller (signal or image) does.
    fn pixel_step(
        &mut self,
        step: &Augmentation,
        x: &mut [f32],
        recurse: &mut dyn FnMut(&mut Self, &Augmentation, &mut [f32]),
    ) {
        match step {
            Augmentation::GaussianNoise { std, relative } => {
                let sd = if *relative {
                    *std as f64 * std_dev(x)
                } else {
                    *std as f64
                };
                for v in x.iter_mut() {
                    *v += (sd * self.rng.normal()) as f32;
                }
            }
            Augmentation::AmplitudeScale { min, max } => {
                let factor = self.uniform(*min as f64, *max as f64) as f32;
                x.iter_mut().for_each(|v| *v *= factor);
            }
            Augmentation::Sometimes { probability, step } if self.rng.uniform() < *probability => {
                recurse(self, step, x);
            }
            _ => {}
        }
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.rng.uniform()
    }

    /// Uniform in `0..n` (`n ≥ 1`).
    fn index(&mut self, n: usize) -> usize {
        ((self.rng.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// Uniform in `[-max, max]`.
    fn shift(&mut self, max: usize) -> i64 {
        let max = max.min(i32::MAX as usize);
        self.index(2 * max + 1) as i64 - max as i64
    }
}

/// A read-only view of an image for sampling.
struct Image<'a> {
    pixels: &'a [f32],
    width: usize,
    height: usize,
}

impl Image<'_> {
    /// Bilinear interpolation at `(x, y)`; `None` outside `[0, width-1] × [0, height-1]`.
    fn bilinear(&self, x: f64, y: f64) -> Option<f32> {
        let (w, h) = (self.width as f64, self.height as f64);
        if !(x >= 0.0 && y >= 0.0 && x <= w - 1.0 && y <= h - 1.0) {
            return None;
        }
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
        let at = |xx: usize, yy: usize| self.pixels[yy * self.width + xx];
        let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
        let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
        Some(top * (1.0 - fy) + bottom * fy)
    }
}

fn mean(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64
}

fn std_dev(x: &[f32]) -> f64 {
    let m = mean(x);
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37).sin() + 0.1 * i as f32).collect()
    }

    fn once(step: Augmentation, seed: u64, x: &[f32]) -> Vec<f32> {
        let mut y = x.to_vec();
        Augmenter::new(vec![step], seed).apply(&mut y);
        y
    }

    #[test]
    fn same_seed_same_output_other_seed_other_output() {
        let steps = vec![
            Augmentation::GaussianNoise {
                std: 0.05,
                relative: false,
            },
            Augmentation::BaselineWander {
                amplitude: 0.3,
                frequency_hz: 0.3,
                fs: 360.0,
            },
            Augmentation::AmplitudeScale { min: 0.8, max: 1.2 },
            Augmentation::TimeShift { max_shift: 10 },
            Augmentation::Erase {
                length: 20,
                fill: Fill::Mean,
            },
        ];
        let x = ramp(259);
        let run = |seed| {
            let mut aug = Augmenter::new(steps.clone(), seed);
            let (mut a, mut b) = (x.clone(), x.clone());
            aug.apply(&mut a);
            aug.apply(&mut b);
            (a, b)
        };
        let (a1, b1) = run(7);
        assert_eq!(run(7), (a1.clone(), b1.clone()));
        assert_ne!(a1, b1, "successive calls draw new parameters");
        assert_ne!(run(8).0, a1);
    }

    #[test]
    fn scaling_multiplies_by_one_factor_in_range() {
        let x = ramp(100);
        for seed in 0..20 {
            let y = once(Augmentation::AmplitudeScale { min: 0.5, max: 1.5 }, seed, &x);
            let k = y[10] / x[10];
            assert!((0.5..=1.5).contains(&k));
            for (a, b) in x.iter().zip(&y) {
                assert!((a * k - b).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn shift_moves_the_argmax_and_repeats_edges() {
        let mut x = vec![0.0f32; 100];
        x[50] = 1.0;
        x[0] = -1.0;
        x[99] = -2.0;
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let y = once(Augmentation::TimeShift { max_shift: 5 }, seed, &x);
            let peak = y.iter().position(|&v| v == 1.0).unwrap() as i64;
            let s = peak - 50;
            assert!(s.abs() <= 5);
            seen.insert(s);
            for (i, &v) in y.iter().enumerate() {
                assert_eq!(v, x[(i as i64 - s).clamp(0, 99) as usize]);
            }
        }
        assert_eq!(seen.len(), 11, "every shift in ±5 occurs: {seen:?}");
    }

    #[test]
    fn erasing_sets_one_span_of_the_given_length() {
        let x = vec![1.0f32; 259];
        for seed in 0..20 {
            let y = once(
                Augmentation::Erase {
                    length: 30,
                    fill: Fill::Zero,
                },
                seed,
                &x,
            );
            let zeros: Vec<usize> = (0..y.len()).filter(|&i| y[i] == 0.0).collect();
            assert_eq!(zeros.len(), 30);
            assert_eq!(zeros[29] - zeros[0], 29, "contiguous");
        }
        let x = ramp(10);
        let all = once(
            Augmentation::Erase {
                length: 50,
                fill: Fill::Mean,
            },
            1,
            &x,
        );
        assert!(all.iter().all(|&v| (v as f64 - mean(&x)).abs() < 1e-6));
    }

    #[test]
    fn noise_has_the_requested_std() {
        let x = ramp(20000);
        let y = once(
            Augmentation::GaussianNoise {
                std: 0.2,
                relative: false,
            },
            3,
            &x,
        );
        let d: Vec<f32> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
        assert!((std_dev(&d) - 0.2).abs() < 0.01 && mean(&d).abs() < 0.01);
        let y = once(
            Augmentation::GaussianNoise {
                std: 0.1,
                relative: true,
            },
            3,
            &x,
        );
        let d: Vec<f32> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
        assert!((std_dev(&d) / std_dev(&x) - 0.1).abs() < 0.005);
    }

    #[test]
    fn wander_adds_a_bounded_sinusoid_of_the_given_frequency() {
        let x: Vec<f32> = ramp(3600).iter().map(|v| v.sin()).collect();
        for seed in 0..5 {
            let y = once(
                Augmentation::BaselineWander {
                    amplitude: 0.5,
                    frequency_hz: 0.25,
                    fs: 360.0,
                },
                seed,
                &x,
            );
            let d: Vec<f64> = y.iter().zip(&x).map(|(a, b)| (a - b) as f64).collect();
            assert!(d.iter().all(|v| v.abs() <= 0.5 + 1e-5));
            // A sinusoid of angular step w obeys d[i+1] = 2 cos(w) d[i] - d[i-1].
            let c = 2.0 * (2.0 * PI * 0.25 / 360.0).cos();
            for i in 1..d.len() - 1 {
                assert!((d[i + 1] - c * d[i] + d[i - 1]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn sometimes_applies_with_its_probability() {
        let x = ramp(10);
        let scale = Box::new(Augmentation::AmplitudeScale { min: 2.0, max: 2.0 });
        let never = Augmentation::Sometimes {
            probability: 0.0,
            step: scale.clone(),
        };
        let always = Augmentation::Sometimes {
            probability: 1.0,
            step: scale,
        };
        assert_eq!(once(never, 1, &x), x);
        let doubled: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
        assert_eq!(once(always, 1, &x), doubled);
    }

    fn blob_image(w: usize, h: usize, cx: usize, cy: usize) -> Vec<f32> {
        let mut p = vec![0.0f32; w * h];
        for y in cy - 2..=cy + 2 {
            for x in cx - 2..=cx + 2 {
                p[y * w + x] = 1.0;
            }
        }
        p
    }

    fn centroid(p: &[f32], w: usize) -> (f64, f64) {
        let (mut sx, mut sy, mut s) = (0.0, 0.0, 0.0);
        for (i, &v) in p.iter().enumerate() {
            sx += v as f64 * (i % w) as f64;
            sy += v as f64 * (i / w) as f64;
            s += v as f64;
        }
        (sx / s, sy / s)
    }

    #[test]
    fn image_erasing_sets_a_rectangle() {
        let (w, h) = (40, 30);
        for seed in 0..10 {
            let mut p = vec![1.0f32; w * h];
            let mut aug = Augmenter::new(
                vec![Augmentation::EraseRect {
                    width: 7,
                    height: 5,
                    value: 0.0,
                }],
                seed,
            );
            aug.apply_image(&mut p, w, h);
            let zeros: Vec<usize> = (0..p.len()).filter(|&i| p[i] == 0.0).collect();
            assert_eq!(zeros.len(), 35);
            let (x0, y0) = (zeros[0] % w, zeros[0] / w);
            assert!(zeros
                .iter()
                .all(|&i| (x0..x0 + 7).contains(&(i % w)) && (y0..y0 + 5).contains(&(i / w))));
        }
    }

    #[test]
    fn affine_identity_rotation_and_zoom() {
        let (w, h) = (41, 41);
        let p = blob_image(w, h, 30, 20);
        let affine = |rot: f32, lo: f32, hi: f32, t: f32| Augmentation::Affine {
            max_rotation_deg: rot,
            min_scale: lo,
            max_scale: hi,
            max_translate: t,
            fill: 0.0,
        };
        let mut q = p.clone();
        Augmenter::new(vec![affine(0.0, 1.0, 1.0, 0.0)], 1).apply_image(&mut q, w, h);
        assert_eq!(q, p);

        // Rotation keeps the blob's distance from the centre and turns it by ≤ 15°.
        for seed in 0..5 {
            let mut q = p.clone();
            Augmenter::new(vec![affine(15.0, 1.0, 1.0, 0.0)], seed).apply_image(&mut q, w, h);
            let (x, y) = centroid(&q, w);
            let (dx, dy) = (x - 20.0, y - 20.0);
            assert!(((dx * dx + dy * dy).sqrt() - 10.0).abs() < 0.3);
            assert!(dy.atan2(dx).to_degrees().abs() <= 15.5);
            assert_ne!(q, p);
        }
        // A zoom of 2 doubles the blob's distance from the centre and its area (4×).
        let near = blob_image(w, h, 25, 20);
        let mut q = near.clone();
        Augmenter::new(vec![affine(0.0, 2.0, 2.0, 0.0)], 1).apply_image(&mut q, w, h);
        let (x, y) = centroid(&q, w);
        assert!((x - 30.0).abs() < 0.1 && (y - 20.0).abs() < 0.1, "{x} {y}");
        let area = |p: &[f32]| p.iter().map(|&v| v as f64).sum::<f64>();
        assert!((area(&q) / area(&near) - 4.0).abs() < 0.5);
        // Translation moves the centroid by at most max_translate per axis.
        let mut q = p.clone();
        Augmenter::new(vec![affine(0.0, 1.0, 1.0, 3.0)], 2).apply_image(&mut q, w, h);
        let (x, y) = centroid(&q, w);
        assert!((x - 30.0).abs() <= 3.01 && (y - 20.0).abs() <= 3.01);
    }

    #[test]
    fn brightness_contrast_and_skipped_steps() {
        let (w, h) = (8, 4);
        let p: Vec<f32> = (0..w * h).map(|i| i as f32 / 32.0).collect();
        let mut q = p.clone();
        let mut aug = Augmenter::new(
            vec![
                Augmentation::BrightnessContrast {
                    max_brightness: 0.2,
                    max_contrast: 0.0,
                },
                // Signal-only steps leave images alone.
                Augmentation::TimeShift { max_shift: 3 },
                Augmentation::Erase {
                    length: 4,
                    fill: Fill::Zero,
                },
            ],
            5,
        );
        aug.apply_image(&mut q, w, h);
        let b = q[0] - p[0];
        assert!(b.abs() <= 0.2 && b != 0.0);
        assert!(q.iter().zip(&p).all(|(a, c)| (a - c - b).abs() < 1e-6));
        // Image-only steps leave signals alone.
        let x = ramp(20);
        let mut y = x.clone();
        Augmenter::new(
            vec![Augmentation::EraseRect {
                width: 2,
                height: 2,
                value: 9.0,
            }],
            1,
        )
        .apply(&mut y);
        assert_eq!(y, x);
        // A buffer of the wrong size is left unchanged; empty inputs do not panic.
        let mut small = vec![1.0; 5];
        aug.apply_image(&mut small, 3, 3);
        assert_eq!(small, vec![1.0; 5]);
        let mut all = Augmenter::new(
            vec![
                Augmentation::TimeShift { max_shift: 3 },
                Augmentation::Erase {
                    length: 4,
                    fill: Fill::Mean,
                },
                Augmentation::GaussianNoise {
                    std: 0.1,
                    relative: true,
                },
            ],
            1,
        );
        all.apply(&mut []);
        all.apply_image(&mut [], 0, 0);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Augmentation::Sometimes {
            probability: 0.5,
            step: Box::new(Augmentation::AmplitudeScale { min: 1.2, max: 0.8 }),
        };
        let err = bad.validate().unwrap_err();
        assert_eq!((err.step, err.field), ("AmplitudeScale", "max"));
        assert!(err.to_string().contains("AmplitudeScale.max = 0.8"));
        assert!(Augmenter::try_new(vec![bad], 0).is_err());
        let nan = Augmentation::GaussianNoise {
            std: f32::NAN,
            relative: false,
        };
        assert_eq!(nan.validate().unwrap_err().field, "std");
    }
}
