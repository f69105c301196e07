//! Grad-CAM (Selvaraju et al., ICCV 2017): the gradient of the class logit with respect to
//! the last convolutional block's activations, averaged over the block's positions, weights
//! each channel; the weighted sum of the channels, rectified, is the map, upsampled linearly
//! from the block's grid to the input's. For the beat networks (ResECANet) the grid is the
//! block's time axis and the map covers the beat window; a ResECANet on a multi-lead record
//! mixes the leads from its first convolution on, so its time map is repeated for each lead
//! and covers the whole record. For the 2D networks (VGG16 on
//! scalograms, ResDSCNet on ECG images) it is the block's rows × columns, and the map covers
//! the `height × width` input, row after row (bilinear upsampling). A VGG16 with a CWT front
//! end takes raw beats: its map covers the scalogram the network computes, and the values
//! reported per sample of the window are the map's means over the scales.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::{Attribution, ExplainError};
use crate::models::{Architecture, Network, Output};

/// A network ready for Grad-CAM: batch norm in inference mode (running statistics), on the
/// autodiff device so that gradients can be taken.
pub struct GradCam {
    network: Network,
    input_len: usize,
    /// Rows and columns of the map: `(1, window)` for a beat, `(height, width)` for an image.
    grid: (usize, usize),
    /// Report the map's column means (one value per window sample): for networks that
    /// take a window and look at its scalogram.
    column_means: bool,
    /// Leads of a record network: the time map is repeated for each (1 otherwise).
    leads: usize,
    output: Output,
}

/// What one backward pass gives: probabilities, the classes explained, and the last block's
/// activations and gradients (each example's `channels × positions`, channel-major).
struct Backward {
    probabilities: Vec<f32>,
    outputs: usize,
    targets: Vec<usize>,
    activations: Vec<f32>,
    gradient: Vec<f32>,
    channels: usize,
    /// Rows and columns of the block's grid.
    grid: (usize, usize),
}

impl GradCam {
    /// Prepares `network` (of `architecture`) for Grad-CAM; the network itself is untouched.
    /// The probabilities reported are a softmax over the classes, except for the
    /// multi-label ResDSCNet (an independent sigmoid per class); see [`GradCam::with_output`].
    pub fn new(network: &Network, architecture: &Architecture) -> Self {
        let (grid, output) = match architecture {
            Architecture::Resecanet(c) => ((1, c.window), Output::Softmax),
            Architecture::Vgg16(c) => ((c.height, c.width), Output::Softmax),
            Architecture::Resdscnet(c) => ((c.height, c.width), Output::Sigmoid),
        };
        GradCam {
            network: network.valid().to_device(&Device::flex().autodiff()),
            input_len: architecture.input_len(),
            grid,
            column_means: matches!(architecture, Architecture::Vgg16(c) if c.cwt.is_some()),
            leads: match architecture {
                Architecture::Resecanet(c) => c.leads,
                _ => 1,
            },
            output,
        }
    }

    /// Reports probabilities as `output` makes them (the model card's [`Output`]).
    pub fn with_output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    /// Values per input.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Grad-CAM of each input in `inputs` (`n × input_len` values) for its class in `classes`,
    /// or for the class the network predicts when `classes` is `None`. `per_sample` has one
    /// value per beat sample, per pixel (row after row) for the 2D networks that take
    /// images, or per sample of every lead (lead after lead) for multi-lead records.
    pub fn explain(&self, inputs: &[f32], classes: Option<&[usize]>) -> Result<Vec<Attribution>, ExplainError> {
        if inputs.is_empty() || !inputs.len().is_multiple_of(self.input_len) {
            return Err(ExplainError::Invalid(format!(
                "{} input values: not a whole number of {}-value inputs",
                inputs.len(),
                self.input_len
            )));
        }
        let n = inputs.len() / self.input_len;
        if let Some(classes) = classes {
            if classes.len() != n {
                return Err(ExplainError::Invalid(format!(
                    "{} classes for {n} inputs",
                    classes.len()
                )));
            }
        }
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::from_data(TensorData::new(inputs.to_vec(), [n, 1, self.input_len]), &device);
        // A fresh leaf each time: the gradient is wanted at the activations, not at the input.
        let pass = match &self.network {
            Network::Resecanet(net) => {
                let (signal, rr) = net.split_input(x);
                let activations = net.last_block_activations(signal).detach().require_grad();
                let logits = net.logits_from_activations(activations.clone(), rr);
                self.backward(activations, logits, classes)?
            }
            Network::Vgg16(net) => {
                let activations = net.last_block_activations(x).detach().require_grad();
                let logits = net.logits_from_activations(activations.clone());
                self.backward(activations, logits, classes)?
            }
            Network::Resdscnet(net) => {
                let activations = net.last_block_activations(x).detach().require_grad();
                let logits = net.logits_from_activations(activations.clone());
                self.backward(activations, logits, classes)?
            }
        };

        let (rows, cols) = pass.grid;
        let per_example = pass.channels * rows * cols;
        Ok((0..n)
            .map(|i| {
                let a = &pass.activations[i * per_example..(i + 1) * per_example];
                let g = &pass.gradient[i * per_example..(i + 1) * per_example];
                let cam = class_activation_map(a, g, pass.channels, rows * cols);
                let class = pass.targets[i];
                let mut per_sample = upsample_2d(&cam, (rows, cols), self.grid);
                if self.column_means {
                    per_sample = column_means(&per_sample, self.grid.1);
                }
                if self.leads > 1 {
                    per_sample = per_sample.repeat(self.leads);
                }
                Attribution {
                    method: "gradcam".into(),
                    class,
                    probability: pass.probabilities[i * pass.outputs + class],
                    per_sample,
                    features: Vec::new(),
                    base_value: None,
                    fit_r2: None,
                }
            })
            .collect())
    }

    /// The gradient of the explained classes' logits at `activations` (`[n, channels, length]`
    /// or `[n, channels, rows, columns]`, a leaf requiring its gradient).
    fn backward<const D: usize>(
        &self,
        activations: Tensor<D>,
        logits: Tensor<2>,
        classes: Option<&[usize]>,
    ) -> Result<Backward, ExplainError> {
        let [n, outputs] = logits.dims();
        let probabilities = to_vec(self.output.apply(logits.clone().detach()));
        let targets: Vec<usize> = match classes {
            Some(c) => c.to_vec(),
            None => probabilities.chunks(outputs).map(crate::train::argmax).collect(),
        };
        if let Some(&bad) = targets.iter().find(|&&c| c >= outputs) {
            return Err(ExplainError::Invalid(format!(
                "class {bad}: the model has {outputs} outputs"
            )));
        }
        let mut one_hot = vec![0f32; n * outputs];
        for (i, &c) in targets.iter().enumerate() {
            one_hot[i * outputs + c] = 1.0;
        }
        let one_hot = Tensor::<2>::from_data(TensorData::new(one_hot, [n, outputs]), &logits.device());
        let grads = (logits * one_hot).sum().backward();
        let gradient = activations
            .grad(&grads)
            .ok_or_else(|| ExplainError::Model("no gradient reached the last block".into()))?;
        let dims = activations.dims();
        let grid = match D {
            3 => (1, dims[2]),
            _ => (dims[2], dims[3..].iter().product()),
        };
        Ok(Backward {
            probabilities,
            outputs,
            targets,
            activations: to_vec(activations.detach()),
            gradient: to_vec(gradient),
            channels: dims[1],
            grid,
        })
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("float tensor")
}

/// ReLU(Σ_c α_c A_c) with α_c the time-mean of channel c's gradient; `activations` and
/// `gradient` are `channels × length`, channel-major.
fn class_activation_map(activations: &[f32], gradient: &[f32], channels: usize, length: usize) -> Vec<f32> {
    let mut cam = vec![0f32; length];
    for c in 0..channels {
        let row = c * length..(c + 1) * length;
        let alpha = gradient[row.clone()].iter().sum::<f32>() / length as f32;
        for (m, &a) in cam.iter_mut().zip(&activations[row]) {
            *m += alpha * a;
        }
    }
    cam.iter().map(|&v| v.max(0.0)).collect()
}

/// The mean of each column of `map` (row-major, `width` columns).
fn column_means(map: &[f32], width: usize) -> Vec<f32> {
    let rows = map.len() / width;
    let mut means = vec![0f32; width];
    for row in map.chunks(width) {
        for (m, &v) in means.iter_mut().zip(row) {
            *m += v / rows as f32;
        }
    }
    means
}

/// Bilinear interpolation of `map` (`from.0` rows × `from.1` columns, row-major) onto
/// `to.0 × to.1`, aligning the centres of the cells: rows first, then columns. A single row
/// stays a single row unchanged, so beat maps are [`upsample`] of the block's time axis.
fn upsample_2d(map: &[f32], from: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    let (rows, cols) = from;
    let (height, width) = to;
    let wide: Vec<Vec<f32>> = map.chunks(cols).map(|row| upsample(row, width)).collect();
    let mut out = vec![0f32; height * width];
    let mut column = vec![0f32; rows];
    for c in 0..width {
        for (r, v) in column.iter_mut().enumerate() {
            *v = wide[r][c];
        }
        for (r, v) in upsample(&column, height).into_iter().enumerate() {
            out[r * width + c] = v;
        }
    }
    out
}

/// Linear interpolation of `map` onto `len` samples, aligning the centres of the cells.
fn upsample(map: &[f32], len: usize) -> Vec<f32> {
    let scale = map.len() as f32 / len as f32;
    let last = map.len() - 1;
    (0..len)
        .map(|i| {
            let pos = ((i as f32 + 0.5) * scale - 0.5).clamp(0.0, last as f32);
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(last);
            let t = pos - lo as f32;
            map[lo] * (1.0 - t) + map[hi] * t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn upsampling_keeps_constants_and_ends() {
        assert_eq!(upsample(&[2.0; 4], 9), vec![2.0; 9]);
        let up = upsample(&[0.0, 1.0], 4);
        assert_eq!(up[0], 0.0);
        assert_eq!(up[3], 1.0);
        assert!(up.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn bilinear_upsampling_keeps_constants_corners_and_single_rows() {
        assert_eq!(upsample_2d(&[3.0; 6], (2, 3), (5, 7)), vec![3.0; 35]);
        // Rows 0 and 1 of a 2 × 2 map, its left column 0 and right column 1.
        let up = upsample_2d(&[0.0, 1.0, 10.0, 11.0], (2, 2), (4, 4));
        assert_eq!((up[0], up[3], up[12], up[15]), (0.0, 1.0, 10.0, 11.0));
        assert!(up.chunks(4).all(|row| row.windows(2).all(|w| w[0] <= w[1])));
        let row = [0.0, 2.0, 1.0];
        assert_eq!(upsample_2d(&row, (1, 3), (1, 8)), upsample(&row, 8));
    }

    #[test]
    fn grad_cam_of_the_2d_networks_covers_the_image() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        use crate::models::{ResDscNetConfig, Vgg16Config};
        let vgg = Architecture::Vgg16(Vgg16Config {
            height: 8,
            width: 12,
            classes: 3,
            widths: vec![4, 8],
            convs: vec![1, 1],
            dense: vec![6],
            dropout: vec![0.5],
            batch_norm: true,
            cwt: None,
        });
        let resdsc = Architecture::Resdscnet(ResDscNetConfig {
            height: 16,
            width: 12,
            classes: 3,
            widths: vec![4, 8],
            blocks_per_stage: 1,
        });
        for (architecture, output) in [(vgg, Output::Softmax), (resdsc, Output::Sigmoid)] {
            let network = Network::init(&architecture, &Device::flex()).valid();
            let len = architecture.input_len();
            let mut rng = SplitMix64::new(6);
            let inputs: Vec<f32> = (0..2 * len).map(|_| rng.normal() as f32).collect();
            let maps = GradCam::new(&network, &architecture).explain(&inputs, None).unwrap();
            let expected = crate::models::predict_with(&network, len, output, &inputs, 2).unwrap();
            assert_eq!(maps.len(), 2);
            for (map, p) in maps.iter().zip(&expected) {
                assert_eq!(map.per_sample.len(), len, "{architecture:?}");
                assert!(map.per_sample.iter().all(|v| v.is_finite() && *v >= 0.0));
                assert_eq!(map.class, crate::train::argmax(p));
                assert!((map.probability - p[map.class]).abs() < 1e-5);
            }
            let maps = GradCam::new(&network, &architecture)
                .explain(&inputs, Some(&[2, 1]))
                .unwrap();
            assert_eq!((maps[0].class, maps[1].class), (2, 1));
        }
    }

    #[test]
    fn grad_cam_of_vgg16_on_raw_beats_gives_one_value_per_sample() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        use crate::models::cwt_layer::CwtFrontEnd;
        use crate::models::Vgg16Config;
        let architecture = Architecture::Vgg16(Vgg16Config {
            height: 4,
            width: 32,
            classes: 2,
            widths: vec![4, 8],
            convs: vec![1, 1],
            dense: vec![],
            dropout: vec![],
            batch_norm: true,
            cwt: Some(CwtFrontEnd {
                scales: vec![1.0, 2.0, 3.0, 4.0],
                wavelet: "mexh".into(),
            }),
        });
        let network = Network::init(&architecture, &Device::flex()).valid();
        let mut rng = SplitMix64::new(8);
        let inputs: Vec<f32> = (0..3 * 32).map(|_| rng.normal() as f32).collect();
        let maps = GradCam::new(&network, &architecture).explain(&inputs, None).unwrap();
        assert_eq!(maps.len(), 3);
        for map in &maps {
            assert_eq!(map.per_sample.len(), 32);
            assert!(map.per_sample.iter().all(|v| v.is_finite() && *v >= 0.0));
        }
        assert_eq!(column_means(&[1.0, 2.0, 3.0, 6.0], 2), vec![2.0, 4.0]);
    }

    #[test]
    fn grad_cam_of_a_multi_lead_record_network_covers_every_lead() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        use crate::models::ResEcaNetConfig;
        let config = ResEcaNetConfig {
            window: 40,
            leads: 3,
            widths: vec![4, 8],
            ..ResEcaNetConfig::study(4)
        };
        let architecture = Architecture::Resecanet(config.clone());
        let network = Network::init(&architecture, &Device::flex()).valid();
        let mut rng = SplitMix64::new(9);
        let inputs: Vec<f32> = (0..config.input_len()).map(|_| rng.normal() as f32).collect();
        let cam = GradCam::new(&network, &architecture).with_output(Output::Sigmoid);
        let map = cam.explain(&inputs, Some(&[3])).unwrap().pop().unwrap();
        assert_eq!(map.per_sample.len(), 120);
        // The time map, once per lead.
        assert_eq!(map.per_sample[..40], map.per_sample[40..80]);
        assert_eq!(map.per_sample[..40], map.per_sample[80..]);
        let p = crate::models::predict_with(&network, 120, Output::Sigmoid, &inputs, 1).unwrap();
        assert!((map.probability - p[0][3]).abs() < 1e-5);
    }

    #[test]
    fn the_map_weights_channels_by_their_mean_gradient() {
        // Channel 0 has gradient +1, channel 1 has −1: the map is ReLU(A0 − A1).
        let a = [1.0, 2.0, 3.0, 3.0, 1.0, 1.0];
        let g = [1.0, 1.0, 1.0, -1.0, -1.0, -1.0];
        assert_eq!(class_activation_map(&a, &g, 2, 3), vec![0.0, 1.0, 2.0]);
    }

    #[test]
    fn grad_cam_covers_the_window_and_agrees_with_the_networks_prediction() {
        let (config, architecture, network) = crate::models::small_network();
        let mut rng = SplitMix64::new(3);
        let inputs: Vec<f32> = (0..2 * config.input_len()).map(|_| rng.normal() as f32).collect();
        let cam = GradCam::new(&network, &architecture);
        let maps = cam.explain(&inputs, None).unwrap();
        let expected = crate::models::predict(&network, config.input_len(), &inputs, 2).unwrap();
        assert_eq!(maps.len(), 2);
        for (map, p) in maps.iter().zip(&expected) {
            assert_eq!(map.per_sample.len(), 64);
            assert!(map.per_sample.iter().all(|v| v.is_finite() && *v >= 0.0));
            assert_eq!(map.class, crate::train::argmax(p));
            assert!((map.probability - p[map.class]).abs() < 1e-5);
        }
        // The network given is still usable for plain inference afterwards.
        assert_eq!(
            crate::models::predict(&network, config.input_len(), &inputs, 2).unwrap(),
            expected
        );
        assert!(cam.explain(&inputs[1..], None).is_err());
        assert!(cam.explain(&inputs, Some(&[0, 7])).is_err());
    }
}
