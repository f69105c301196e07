//! ResDSCNet: a residual network of depthwise-separable convolutions (MobileNet's
//! factorisation, Howard et al. 2017, in ResNet blocks) for grayscale images of the 12-lead
//! ECG, multi-label.
//!
//! Layout: input `[batch, 1, height × width]` (the image flattened row-major) → per-example
//! z-score → `[batch, 1, height, width]` → stem: 3 × 3 convolution with stride 2, batch
//! norm, ReLU6 → one stage per further width, each of `blocks_per_stage` residual blocks →
//! global average pooling → class logits. A block is two depthwise-separable pairs (3 × 3
//! depthwise convolution, batch norm, ReLU6, 1 × 1 pointwise convolution, batch norm), the
//! first with stride 2 in the first block of a stage, ReLU6 after the first pair; the second
//! pair's output is added to the shortcut (a strided 1 × 1 projection with batch norm when the
//! stride or the width changes) and the sum goes through ReLU6, as in ResNet.
//! The logits are independent per class: the caller applies a sigmoid (training uses binary
//! cross-entropy on the logits).
//!
//! Depthwise convolutions are `Conv2d` with `groups` = channels (burn-onnx exports the group
//! attribute). ReLU6 is `relu(x) − relu(x − 6)` rather than `clamp(x, 0, 6)`: burn-onnx 0.22
//! does not export clamp. Strided convolutions pad one pixel on every side, so each stage
//! halves the rows and columns rounding up.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{unflatten, zscore};

/// Shape of a ResDSCNet. The study's network is [`ResDscNetConfig::study`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResDscNetConfig {
    /// Rows of the image (224 in the study).
    pub height: usize,
    /// Columns of the image (224 in the study).
    pub width: usize,
    /// Output labels (each an independent yes/no; the study's 5 diagnostic superclasses).
    pub classes: usize,
    /// Filters of the stem, then of each residual stage (each stage halves the resolution).
    pub widths: Vec<usize>,
    /// Residual blocks per stage.
    #[serde(default = "one")]
    pub blocks_per_stage: usize,
}

fn one() -> usize {
    1
}

impl ResDscNetConfig {
    /// The study's network on 224 × 224 images: a 32-filter stem, then stages of 64, 128, 256
    /// and 512 filters, one block each.
    pub fn study(classes: usize) -> Self {
        ResDscNetConfig {
            height: 224,
            width: 224,
            classes,
            widths: vec![32, 64, 128, 256, 512],
            blocks_per_stage: 1,
        }
    }

    /// Values per input example: the image, row after row.
    pub fn input_len(&self) -> usize {
        self.height * self.width
    }

    /// Checks the shape before any tensor is made (burn panics on bad sizes).
    pub fn validate(&self) -> Result<(), String> {
        if self.classes == 0 {
            return Err("classes = 0 (need at least 1)".into());
        }
        if self.height == 0 || self.width == 0 {
            return Err(format!(
                "height = {}, width = {} (the image needs at least one row and one column)",
                self.height, self.width
            ));
        }
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(format!(
                "widths = {:?} (need the stem's width, then one per stage, all positive)",
                self.widths
            ));
        }
        if self.blocks_per_stage == 0 {
            return Err("blocks_per_stage = 0 (need at least 1)".into());
        }
        Ok(())
    }

    /// A network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> ResDscNet {
        let stem_width = self.widths[0];
        let mut blocks = Vec::new();
        let mut channels = stem_width;
        for &width in &self.widths[1..] {
            for b in 0..self.blocks_per_stage {
                let stride = if b == 0 { 2 } else { 1 };
                blocks.push(ResidualBlock::new(channels, width, stride, device));
                channels = width;
            }
        }
        ResDscNet {
            stem: conv3x3(1, stem_width, 2, 1, device),
            stem_norm: BatchNormConfig::new(stem_width).init(device),
            blocks,
            head: LinearConfig::new(channels, self.classes).init(device),
            height: self.height,
            width: self.width,
        }
    }
}

/// A 3 × 3 convolution without bias (batch norm follows), one pixel of padding.
fn conv3x3(input: usize, output: usize, stride: usize, groups: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

/// A 1 × 1 convolution without bias (batch norm follows).
fn conv1x1(input: usize, output: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [1, 1])
        .with_stride([stride, stride])
        .with_bias(false)
        .init(device)
}

/// ReLU6, `min(max(x, 0), 6)`, written as `relu(x) − relu(x − 6)`: burn-onnx exports ReLU
/// and subtraction but not clamp.
fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    relu(x.clone()) - relu(x.sub_scalar(6.0))
}

/// A depthwise-separable convolution: 3 × 3 depthwise, batch norm, ReLU6, 1 × 1 pointwise,
/// batch norm (the caller applies the last activation).
#[derive(Module, Debug)]
pub struct SeparableConv {
    depthwise: Conv2d,
    depthwise_norm: BatchNorm,
    pointwise: Conv2d,
    pointwise_norm: BatchNorm,
}

impl SeparableConv {
    fn new(input: usize, output: usize, stride: usize, device: &Device) -> Self {
        SeparableConv {
            depthwise: conv3x3(input, input, stride, input, device),
            depthwise_norm: BatchNormConfig::new(input).init(device),
            pointwise: conv1x1(input, output, 1, device),
            pointwise_norm: BatchNormConfig::new(output).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu6(self.depthwise_norm.forward(self.depthwise.forward(x)));
        self.pointwise_norm.forward(self.pointwise.forward(y))
    }
}

/// Two depthwise-separable convolutions and the shortcut.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    first: SeparableConv,
    second: SeparableConv,
    /// Strided 1 × 1 projection of the shortcut when the stride or the width changes.
    projection: Option<Conv2d>,
    projection_norm: Option<BatchNorm>,
}

impl ResidualBlock {
    fn new(input: usize, output: usize, stride: usize, device: &Device) -> Self {
        let (projection, projection_norm) = if input == output && stride == 1 {
            (None, None)
        } else {
            (
                Some(conv1x1(input, output, stride, device)),
                Some(BatchNormConfig::new(output).init(device)),
            )
        };
        ResidualBlock {
            first: SeparableConv::new(input, output, stride, device),
            second: SeparableConv::new(output, output, 1, device),
            projection,
            projection_norm,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match (&self.projection, &self.projection_norm) {
            (Some(conv), Some(norm)) => norm.forward(conv.forward(x.clone())),
            _ => x.clone(),
        };
        let y = relu6(self.first.forward(x));
        relu6(self.second.forward(y) + shortcut)
    }
}

/// The network; build it with [`ResDscNetConfig::init`].
#[derive(Module, Debug)]
pub struct ResDscNet {
    stem: Conv2d,
    stem_norm: BatchNorm,
    blocks: Vec<ResidualBlock>,
    head: Linear,
    height: usize,
    width: usize,
}

impl ResDscNet {
    /// Label logits `[batch, classes]` for input `[batch, 1, height × width]` (images
    /// flattened row-major); a sigmoid of each gives its probability.
    pub fn forward(&self, input: Tensor<3>) -> Tensor<2> {
        self.logits_from_activations(self.last_block_activations(input))
    }

    /// The activations of the last residual block (the stem's when there is no stage),
    /// `[batch, widths.last(), rows, columns]`: what Grad-CAM looks at.
    pub fn last_block_activations(&self, input: Tensor<3>) -> Tensor<4> {
        let x = unflatten(zscore(input), self.height, self.width);
        let mut x = relu6(self.stem_norm.forward(self.stem.forward(x)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        x
    }

    /// Label logits from the last block's activations: global average pooling (a sum divided
    /// by the count, which burn-onnx exports) and the dense layer. The part of
    /// [`ResDscNet::forward`] through which Grad-CAM takes its gradients.
    pub fn logits_from_activations(&self, activations: Tensor<4>) -> Tensor<2> {
        let [batch, channels, rows, cols] = activations.dims();
        let pooled: Tensor<2> = activations
            .reshape([batch, channels, rows * cols])
            .sum_dim(2)
            .div_scalar((rows * cols) as f32)
            .reshape([batch, channels]);
        self.head.forward(pooled)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::loss::BinaryCrossEntropyLossConfig;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Distribution, Int, TensorData};

    use super::*;
    use crate::models::Network;
    use crate::rng::SplitMix64;

    fn tiny(classes: usize) -> ResDscNetConfig {
        ResDscNetConfig {
            height: 16,
            width: 12,
            classes,
            widths: vec![4, 8, 8],
            blocks_per_stage: 2,
        }
    }

    #[test]
    fn forward_gives_one_row_of_logits_per_image() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let config = tiny(5);
        config.validate().unwrap();
        let device = Device::flex();
        let model = config.init(&device);
        let input = Tensor::<3>::random([3, 1, config.input_len()], Distribution::Default, &device);
        // 16 × 12 → stem 8 × 6 → 4 × 3 → 2 × 2.
        assert_eq!(model.last_block_activations(input.clone()).dims(), [3, 8, 2, 2]);
        assert_eq!(model.forward(input).dims(), [3, 5]);
        // Odd sizes round up, down to a single pixel.
        let odd = ResDscNetConfig {
            height: 7,
            width: 3,
            ..tiny(2)
        };
        odd.validate().unwrap();
        let x = Tensor::<3>::random([2, 1, odd.input_len()], Distribution::Default, &device);
        assert_eq!(odd.init(&device).last_block_activations(x).dims(), [2, 8, 1, 1]);
    }

    #[test]
    fn relu6_is_a_clamp() {
        let x = Tensor::<1>::from_floats([-3.0, 0.0, 2.5, 6.0, 9.0], &Device::flex());
        let y = relu6(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, vec![0.0, 0.0, 2.5, 6.0, 6.0]);
    }

    #[test]
    fn study_network_has_a_mobile_size() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let config = ResDscNetConfig::study(5);
        config.validate().unwrap();
        assert_eq!(config.input_len(), 224 * 224);
        let model = config.init(&Device::flex());
        assert_eq!(model.blocks.len(), 4);
        let params = model.num_params();
        // Pointwise and projection weights dominate: 8 c² per stage of c → 2c filters.
        assert!((650_000..800_000).contains(&params), "{params} parameters");
    }

    #[test]
    fn bad_shapes_are_refused_before_burn_sees_them() {
        let err = |change: fn(&mut ResDscNetConfig)| {
            let mut config = tiny(2);
            change(&mut config);
            config.validate().unwrap_err()
        };
        assert!(err(|c| c.classes = 0).contains("classes"));
        assert!(err(|c| c.height = 0).contains("height = 0"));
        assert!(err(|c| c.width = 0).contains("width = 0"));
        assert!(err(|c| c.widths = vec![]).contains("widths"));
        assert!(err(|c| c.widths = vec![4, 0]).contains("widths"));
        assert!(err(|c| c.blocks_per_stage = 0).contains("blocks_per_stage"));
        // One label is a valid multi-label head; a stem alone is a valid network.
        ResDscNetConfig { classes: 1, ..tiny(2) }.validate().unwrap();
        ResDscNetConfig {
            widths: vec![4],
            ..tiny(2)
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn blocks_per_stage_defaults_to_one_in_a_card() {
        let text = r#"{"height": 224, "width": 224, "classes": 5, "widths": [32, 64, 128, 256, 512]}"#;
        let config: ResDscNetConfig = serde_json::from_str(text).unwrap();
        assert_eq!(config, ResDscNetConfig::study(5));
    }

    #[test]
    fn the_onnx_export_gives_burns_logits_at_any_batch_size() {
        let config = tiny(3);
        let device = Device::flex();
        let _one_at_a_time = crate::models::seeded_device_lock();
        device.seed(12);
        let network = Network::Resdscnet(config.init(&device)).valid();
        crate::models::assert_onnx_reproduces_burn(&network, config.input_len());
    }

    #[test]
    fn a_few_adam_steps_lower_the_loss_on_a_separable_multi_label_toy_problem() {
        const STEPS: usize = 20;
        // Label 0: a bright horizontal line somewhere; label 1: a vertical one; either, both
        // or none. Global average pooling keeps no position, so the labels are shapes.
        let config = ResDscNetConfig {
            widths: vec![8, 16],
            blocks_per_stage: 1,
            ..tiny(2)
        };
        let (h, w) = (config.height, config.width);
        let device = Device::flex().autodiff();
        let _one_at_a_time = crate::models::seeded_device_lock();
        device.seed(4);
        let mut network = config.init(&device);
        let mut optimizer = AdamConfig::new().init();
        let loss_fn = BinaryCrossEntropyLossConfig::new().with_logits(true).init(&device);
        let mut rng = SplitMix64::new(9);
        let mut losses = Vec::new();
        let batch = 16;
        for _ in 0..STEPS {
            let mut inputs = Vec::with_capacity(batch * h * w);
            let mut labels = Vec::with_capacity(batch * 2);
            for i in 0..batch {
                let (horizontal, vertical) = (i % 2 == 1, (i / 2) % 2 == 1);
                let row = 1 + (rng.uniform() * (h - 2) as f64) as usize;
                let col = 1 + (rng.uniform() * (w - 2) as f64) as usize;
                for r in 0..h {
                    for c in 0..w {
                        let line = (horizontal && r == row) || (vertical && c == col);
                        inputs.push(if line { 2.0 } else { 0.0 } + 0.3 * rng.normal() as f32);
                    }
                }
                labels.extend([horizontal as i64, vertical as i64]);
            }
            let x = Tensor::<3>::from_data(TensorData::new(inputs, [batch, 1, h * w]), &device);
            let targets = Tensor::<2, Int>::from_data(TensorData::new(labels, [batch, 2]), &device);
            let loss = loss_fn.forward(network.forward(x), targets);
            losses.push(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &network);
            network = optimizer.step(3e-2, network, grads);
        }
        let first = losses[..3].iter().sum::<f32>();
        let last = losses[losses.len() - 3..].iter().sum::<f32>();
        assert!(last < 0.6 * first, "{losses:?}");
    }
}
