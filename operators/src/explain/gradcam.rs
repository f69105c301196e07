//! Grad-CAM (Selvaraju et al., ICCV 2017) for the beat networks: the gradient of the class
//! logit with respect to the last convolutional block's activations, averaged over time,
//! weights each channel; the weighted sum of the channels, rectified, is the map, upsampled
//! linearly from the block's time axis to the beat window.

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

use super::{Attribution, ExplainError};
use crate::models::{Architecture, Network};

/// A network ready for Grad-CAM: batch norm in inference mode (running statistics), on the
/// autodiff device so that gradients can be taken.
pub struct GradCam {
    network: Network,
    input_len: usize,
    window: usize,
}

impl GradCam {
    /// Prepares `network` (of `architecture`) for Grad-CAM; the network itself is untouched.
    pub fn new(network: &Network, architecture: &Architecture) -> Self {
        let Architecture::Resecanet(config) = architecture;
        GradCam {
            network: network.valid().to_device(&Device::flex().autodiff()),
            input_len: architecture.input_len(),
            window: config.window,
        }
    }

    /// Values per input.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Grad-CAM of each input in `inputs` (`n × input_len` values) for its class in `classes`,
    /// or for the class the network predicts when `classes` is `None`.
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
        let Network::Resecanet(net) = &self.network;
        let (signal, rr) = net.split_input(x);
        // A fresh leaf: the gradient is wanted at the activations, not at the input.
        let activations = net.last_block_activations(signal).detach().require_grad();
        let logits = net.logits_from_activations(activations.clone(), rr);
        let [_, outputs] = logits.dims();

        let probabilities = to_vec(softmax(logits.clone().detach(), 1));
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
        let one_hot = Tensor::<2>::from_data(TensorData::new(one_hot, [n, outputs]), &device);
        let grads = (logits * one_hot).sum().backward();
        let gradient = activations
            .grad(&grads)
            .ok_or_else(|| ExplainError::Model("no gradient reached the last block".into()))?;
        let [_, channels, length] = activations.dims();
        let activations = to_vec(activations.detach());
        let gradient = to_vec(gradient);

        let per_beat = channels * length;
        Ok((0..n)
            .map(|i| {
                let a = &activations[i * per_beat..(i + 1) * per_beat];
                let g = &gradient[i * per_beat..(i + 1) * per_beat];
                let cam = class_activation_map(a, g, channels, length);
                Attribution {
                    method: "gradcam".into(),
                    class: targets[i],
                    probability: probabilities[i * outputs + targets[i]],
                    per_sample: upsample(&cam, self.window),
                    segments: Vec::new(),
                    base_value: None,
                    fit_r2: None,
                }
            })
            .collect())
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
