//! VGG16 (Simonyan & Zisserman, ICLR 2015) on CWT scalograms of single-lead beats.
//!
//! Layout: input `[batch, 1, height × width]` (the scalogram flattened row-major: `height`
//! scales of `width` samples) → per-example z-score → `[batch, 1, height, width]` → one stage
//! per width: `convs[i]` 3 × 3 same-padded convolutions (each with batch norm when
//! [`Vgg16Config::batch_norm`]) and ReLU, then 2 × 2 max pooling with stride 2 (rows and
//! columns rounded down) → flatten → dense layers with ReLU and dropout → class logits.
//! Softmax is applied by the caller (cross-entropy takes logits).
//!
//! With a CWT front end ([`Vgg16Config::cwt`]) the network takes raw beat windows
//! `[batch, 1, width]` instead, like ResECANet, and computes their `height × width`
//! scalograms itself with a fixed layer ([`CwtFrontEnd`]): the window is standardised, then
//! transformed, and the scalogram goes on as above (standardised again).
//!
//! Deviation from the study's VGG16: batch norm after every convolution (on in
//! [`Vgg16Config::study`]). Without it, a 15-million-parameter VGG trained from scratch on a
//! CPU, with no ImageNet weights to start from, learns too slowly to be usable.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::cwt_layer::CwtFrontEnd;
use super::layers::{unflatten, zscore};

/// Shape of a VGG16. The study's network is [`Vgg16Config::study`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vgg16Config {
    /// Rows of the scalogram (CWT scales; the study's 38).
    pub height: usize,
    /// Columns of the scalogram (samples per beat; the study's 259).
    pub width: usize,
    /// Output classes.
    pub classes: usize,
    /// Filters of the convolutions of each stage, in order; one 2 × 2 pooling per stage.
    pub widths: Vec<usize>,
    /// Number of 3 × 3 convolutions in each stage (as many entries as `widths`).
    pub convs: Vec<usize>,
    /// Units of the hidden dense layers after flattening, in order.
    pub dense: Vec<usize>,
    /// Dropout probability after each hidden dense layer (as many entries as `dense`).
    pub dropout: Vec<f64>,
    /// Batch norm after each convolution (our deviation from the study, see the module docs).
    pub batch_norm: bool,
    /// Compute the scalograms inside the network from raw windows of `width` samples, with
    /// one CWT scale per row (`height` scales). Without it the input is the scalogram.
    #[serde(default)]
    pub cwt: Option<CwtFrontEnd>,
}

impl Vgg16Config {
    /// The study's network on 38 × 259 scalograms: VGG16's five stages of 64, 128, 256, 512
    /// and 512 filters with 2, 2, 3, 3 and 3 convolutions, then dense layers of 256 and 128
    /// units with dropout 0.5 and 0.2; with batch norm (our deviation). It takes the
    /// scalograms; set [`Vgg16Config::cwt`] to feed it raw beats.
    pub fn study(classes: usize) -> Self {
        Vgg16Config {
            height: 38,
            width: 259,
            classes,
            widths: vec![64, 128, 256, 512, 512],
            convs: vec![2, 2, 3, 3, 3],
            dense: vec![256, 128],
            dropout: vec![0.5, 0.2],
            batch_norm: true,
            cwt: None,
        }
    }

    /// Values per input example: the scalogram, row after row; with a CWT front end, the
    /// window (`width` samples).
    pub fn input_len(&self) -> usize {
        match self.cwt {
            Some(_) => self.width,
            None => self.height * self.width,
        }
    }

    /// Rows and columns after the last pooling.
    fn pooled(&self) -> (usize, usize) {
        let stages = self.widths.len() as u32;
        (
            self.height.checked_shr(stages).unwrap_or(0),
            self.width.checked_shr(stages).unwrap_or(0),
        )
    }

    /// Checks the shape before any tensor is made (burn panics on bad sizes).
    pub fn validate(&self) -> Result<(), String> {
        if self.classes < 2 {
            return Err(format!("classes = {} (need at least 2)", self.classes));
        }
        if self.height == 0 || self.width == 0 {
            return Err(format!(
                "height = {}, width = {} (the scalogram needs at least one row and one column)",
                self.height, self.width
            ));
        }
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(format!("widths = {:?} (need one or more positive widths)", self.widths));
        }
        if self.convs.len() != self.widths.len() || self.convs.contains(&0) {
            return Err(format!(
                "convs = {:?} (need one positive count of convolutions per stage: {} stages in widths)",
                self.convs,
                self.widths.len()
            ));
        }
        if self.dense.contains(&0) {
            return Err(format!("dense = {:?} (dense layers need positive units)", self.dense));
        }
        if self.dropout.len() != self.dense.len() {
            return Err(format!(
                "dropout = {:?} (need one probability per dense layer: {} in dense)",
                self.dropout,
                self.dense.len()
            ));
        }
        if let Some(p) = self.dropout.iter().find(|p| !(0.0..1.0).contains(*p)) {
            return Err(format!("dropout = {p} (need a probability in [0, 1))"));
        }
        if let Some(front) = &self.cwt {
            if front.scales.len() != self.height {
                return Err(format!(
                    "height = {} but the cwt front end has {} scales (one row per scale)",
                    self.height,
                    front.scales.len()
                ));
            }
            front.validate(self.width)?;
        }
        let (rows, cols) = self.pooled();
        if rows == 0 {
            return Err(format!(
                "height = {} is too small for {} 2 × 2 poolings (need at least {} rows)",
                self.height,
                self.widths.len(),
                1usize << self.widths.len().min(63)
            ));
        }
        if cols == 0 {
            return Err(format!(
                "width = {} is too small for {} 2 × 2 poolings (need at least {} columns)",
                self.width,
                self.widths.len(),
                1usize << self.widths.len().min(63)
            ));
        }
        Ok(())
    }

    /// A network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> Vgg16 {
        let mut stages = Vec::with_capacity(self.widths.len());
        let mut channels = 1;
        for (&width, &convs) in self.widths.iter().zip(&self.convs) {
            let layers = (0..convs)
                .map(|i| {
                    let input = if i == 0 { channels } else { width };
                    ConvLayer::new(input, width, self.batch_norm, device)
                })
                .collect();
            stages.push(Stage { layers });
            channels = width;
        }
        let (rows, cols) = self.pooled();
        let mut features = channels * rows * cols;
        let mut dense = Vec::with_capacity(self.dense.len());
        for (&units, &p) in self.dense.iter().zip(&self.dropout) {
            dense.push(DenseLayer {
                linear: LinearConfig::new(features, units).init(device),
                dropout: DropoutConfig::new(p).init(),
            });
            features = units;
        }
        Vgg16 {
            stages,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dense,
            head: LinearConfig::new(features, self.classes).init(device),
            height: self.height,
            width: self.width,
            cwt: self.cwt.clone(),
        }
    }
}

/// A 3 × 3 same-padded convolution, batch norm when enabled, ReLU.
#[derive(Module, Debug)]
pub struct ConvLayer {
    conv: Conv2d,
    norm: Option<BatchNorm>,
}

impl ConvLayer {
    fn new(input: usize, output: usize, batch_norm: bool, device: &Device) -> Self {
        ConvLayer {
            // Batch norm's shift makes the convolution's bias redundant.
            conv: Conv2dConfig::new([input, output], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(!batch_norm)
                .init(device),
            norm: batch_norm.then(|| BatchNormConfig::new(output).init(device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv.forward(x);
        relu(match &self.norm {
            Some(norm) => norm.forward(y),
            None => y,
        })
    }
}

/// The convolutions of one stage (its pooling is applied by the network).
#[derive(Module, Debug)]
pub struct Stage {
    layers: Vec<ConvLayer>,
}

/// A hidden dense layer: linear, ReLU, dropout.
#[derive(Module, Debug)]
pub struct DenseLayer {
    linear: Linear,
    dropout: Dropout,
}

/// The network; build it with [`Vgg16Config::init`].
#[derive(Module, Debug)]
pub struct Vgg16 {
    stages: Vec<Stage>,
    pool: MaxPool2d,
    dense: Vec<DenseLayer>,
    head: Linear,
    height: usize,
    width: usize,
    #[module(skip)]
    cwt: Option<CwtFrontEnd>,
}

impl Vgg16 {
    /// Class logits `[batch, classes]` for input `[batch, 1, height × width]` (scalograms
    /// flattened row-major), or `[batch, 1, width]` (raw windows) with a CWT front end.
    pub fn forward(&self, input: Tensor<3>) -> Tensor<2> {
        self.logits_from_activations(self.last_block_activations(input))
    }

    /// The activations of the last stage's convolutions, before its pooling,
    /// `[batch, widths.last(), height >> (stages − 1), width >> (stages − 1)]`: what Grad-CAM
    /// looks at.
    pub fn last_block_activations(&self, input: Tensor<3>) -> Tensor<4> {
        let mut x = unflatten(zscore(self.scalograms(input)), self.height, self.width);
        let last = self.stages.len() - 1;
        for (i, stage) in self.stages.iter().enumerate() {
            for layer in &stage.layers {
                x = layer.forward(x);
            }
            if i < last {
                x = self.pool.forward(x);
            }
        }
        x
    }

    /// The scalograms `[batch, 1, height × width]` of the input: the input itself, or with a
    /// CWT front end the transform of the standardised windows (standardised first so that a
    /// baseline offset does not reach the scalogram through the transform's edges).
    ///
    pub fn scalograms(&self, input: Tensor<3>) -> Tensor<3> {
        match &self.cwt {
            Some(front) => front.forward(zscore(input)),
            None => input,
        }
    }

    /// Class logits from the last stage's activations: the part of [`Vgg16::forward`] after
    /// [`Vgg16::last_block_activations`], through which Grad-CAM takes its gradients.
    pub fn logits_from_activations(&self, activations: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(activations);
        let [batch, channels, rows, cols] = x.dims();
        let mut x: Tensor<2> = x.reshape([batch, channels * rows * cols]);
        for layer in &self.dense {
            x = layer.dropout.forward(relu(layer.linear.forward(x)));
        }
        self.head.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Int, TensorData};

    use super::*;
    use crate::models::{Architecture, Network};
    use crate::rng::SplitMix64;

    fn tiny(classes: usize) -> Vgg16Config {
        Vgg16Config {
            height: 8,
            width: 12,
            classes,
            widths: vec![4, 8],
            convs: vec![1, 2],
            dense: vec![6],
            dropout: vec![0.5],
            batch_norm: true,
            cwt: None,
        }
    }

    /// [`tiny`] on raw windows of 12 samples, with a four-scale CWT front end.
    fn tiny_cwt(classes: usize) -> Vgg16Config {
        Vgg16Config {
            height: 4,
            cwt: Some(CwtFrontEnd {
                scales: vec![1.0, 2.0, 3.5, 5.0],
                wavelet: "mexh".to_owned(),
            }),
            ..tiny(classes)
        }
    }

    #[test]
    fn forward_gives_one_row_of_logits_per_scalogram() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let device = Device::flex();
        for batch_norm in [true, false] {
            let config = Vgg16Config { batch_norm, ..tiny(4) };
            config.validate().unwrap();
            let model = config.init(&device);
            let input = Tensor::<3>::random([3, 1, config.input_len()], burn::tensor::Distribution::Default, &device);
            let activations = model.last_block_activations(input.clone());
            assert_eq!(activations.dims(), [3, 8, 4, 6]);
            assert_eq!(model.forward(input).dims(), [3, 4]);
        }
    }

    #[test]
    fn a_cwt_front_end_takes_raw_windows_and_computes_their_scalograms() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let config = tiny_cwt(3);
        config.validate().unwrap();
        assert_eq!(config.input_len(), 12);
        let device = Device::flex();
        let model = config.init(&device);
        let mut rng = SplitMix64::new(2);
        let windows: Vec<f32> = (0..2 * 12)
            .map(|i| rng.normal() as f32 + (i / 12) as f32 * 3.0)
            .collect();
        let x = Tensor::<3>::from_data(TensorData::new(windows.clone(), [2, 1, 12]), &device);
        assert_eq!(model.last_block_activations(x.clone()).dims(), [2, 8, 2, 6]);
        assert_eq!(model.forward(x.clone()).dims(), [2, 3]);
        // The scalograms are the CWT's maps of the standardised windows.
        let got = model.scalograms(x.clone());
        assert_eq!(got.dims(), [2, 1, 4 * 12]);
        let got = got.into_data().try_to_vec::<f32>().unwrap();
        let front = config.cwt.as_ref().unwrap();
        let mut cwt = crate::cwt::Cwt::new(crate::cwt::Wavelet::MexicanHat, &front.scales, 12).unwrap();
        let mut expected = vec![0f32; 2 * 4 * 12];
        for (window, map) in windows.chunks(12).zip(expected.chunks_mut(4 * 12)) {
            let mean = window.iter().sum::<f32>() / 12.0;
            let var = window.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 12.0;
            let z: Vec<f32> = window.iter().map(|v| (v - mean) / (var + 1e-6).sqrt()).collect();
            cwt.transform(&z, map).unwrap();
        }
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-5, "{g} vs {e}");
        }
    }

    #[test]
    fn saved_networks_reload_with_the_same_outputs() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        use crate::models::{test_card, ResDscNetConfig, TrainedModel};
        let resdsc = ResDscNetConfig {
            height: 16,
            width: 12,
            classes: 3,
            widths: vec![4, 8],
            blocks_per_stage: 1,
        };
        let dir = std::env::temp_dir().join(format!("ecgflow-2d-models-{}", std::process::id()));
        for (name, architecture) in [
            ("vgg", Architecture::Vgg16(tiny(3))),
            ("vggcwt", Architecture::Vgg16(tiny_cwt(3))),
            ("resdsc", Architecture::Resdscnet(resdsc)),
        ] {
            let model = TrainedModel {
                network: Network::init(&architecture, &Device::flex()).valid(),
                card: test_card(architecture),
            };
            let path = dir.join(name);
            model.save(&path).unwrap();
            let loaded = TrainedModel::open(&path).unwrap();
            let mut rng = SplitMix64::new(1);
            let len = model.card.architecture.input_len();
            let inputs: Vec<f32> = (0..3 * len).map(|_| rng.normal() as f32).collect();
            assert_eq!(
                model.predict(&inputs, 2).unwrap(),
                loaded.predict(&inputs, 2).unwrap(),
                "{name}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn study_network_has_vgg16s_size() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let config = Vgg16Config::study(5);
        config.validate().unwrap();
        assert_eq!(config.input_len(), 38 * 259);
        let params = config.init(&Device::flex()).num_params();
        // VGG16's convolutions (14.7 M) and a 4096 → 256 → 128 → 5 head (1.1 M).
        assert!((15_000_000..16_500_000).contains(&params), "{params} parameters");
    }

    #[test]
    fn bad_shapes_are_refused_before_burn_sees_them() {
        let err = |change: fn(&mut Vgg16Config)| {
            let mut config = tiny(2);
            change(&mut config);
            config.validate().unwrap_err()
        };
        assert!(err(|c| c.classes = 1).contains("classes"));
        // 38 rows survive 5 poolings (38 → 1), not 6.
        let six = Vgg16Config {
            widths: vec![8; 6],
            convs: vec![1; 6],
            width: 300,
            ..Vgg16Config::study(5)
        };
        assert!(six.validate().unwrap_err().contains("height = 38"));
        assert!(err(|c| c.width = 3).contains("width = 3"));
        assert!(err(|c| c.height = 0).contains("height = 0"));
        assert!(err(|c| c.convs = vec![1]).contains("convs"));
        assert!(err(|c| c.convs = vec![1, 0]).contains("convs"));
        assert!(err(|c| (c.widths, c.convs) = (vec![], vec![])).contains("widths"));
        assert!(err(|c| c.widths = vec![4, 0]).contains("widths"));
        assert!(err(|c| c.dropout = vec![]).contains("dropout"));
        assert!(err(|c| c.dropout = vec![1.0]).contains("dropout = 1"));
        assert!(err(|c| c.dense = vec![0]).contains("dense"));
        let cwt = |change: fn(&mut Vgg16Config)| {
            let mut config = tiny_cwt(2);
            change(&mut config);
            config.validate().unwrap_err()
        };
        assert!(cwt(|c| c.height = 5).contains("height = 5"));
        assert!(cwt(|c| c.cwt.as_mut().unwrap().wavelet = "haar".into()).contains("haar"));
        // No hidden dense layer is fine.
        Vgg16Config {
            dense: vec![],
            dropout: vec![],
            ..tiny(2)
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn the_onnx_export_gives_burns_logits_at_any_batch_size() {
        onnx_matches_burn(tiny(3));
    }

    #[test]
    fn the_onnx_export_carries_the_cwt_front_end() {
        onnx_matches_burn(tiny_cwt(3));
    }

    fn onnx_matches_burn(config: Vgg16Config) {
        let device = Device::flex();
        let _one_at_a_time = crate::models::seeded_device_lock();
        device.seed(11);
        let network = Network::Vgg16(config.init(&device)).valid();
        crate::models::assert_onnx_reproduces_burn(&network, config.input_len());
    }

    /// Two separable classes: a bright blob in the top-left or in the bottom-right corner.
    fn blobs(n: usize, config: &Vgg16Config, rng: &mut SplitMix64) -> (Vec<f32>, Vec<i64>) {
        let (h, w) = (config.height, config.width);
        let mut inputs = Vec::with_capacity(n * h * w);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = i % 2;
            let (cr, cc) = if label == 0 {
                (1.5, 2.5)
            } else {
                (h as f32 - 2.5, w as f32 - 3.5)
            };
            for r in 0..h {
                for c in 0..w {
                    let d = ((r as f32 - cr).powi(2) + (c as f32 - cc).powi(2)) / 4.0;
                    inputs.push(2.0 * (-d).exp() + 0.3 * rng.normal() as f32);
                }
            }
            labels.push(label as i64);
        }
        (inputs, labels)
    }

    #[test]
    fn a_few_adam_steps_lower_the_loss_on_a_separable_toy_problem() {
        let config = Vgg16Config {
            dropout: vec![0.0],
            ..tiny(2)
        };
        let device = Device::flex().autodiff();
        let _one_at_a_time = crate::models::seeded_device_lock();
        device.seed(3);
        let mut network = config.init(&device);
        let mut optimizer = AdamConfig::new().init();
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let mut rng = SplitMix64::new(8);
        let mut losses = Vec::new();
        for _ in 0..12 {
            let (inputs, labels) = blobs(16, &config, &mut rng);
            let x = Tensor::<3>::from_data(TensorData::new(inputs, [16, 1, config.input_len()]), &device);
            let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [16]), &device);
            let loss = loss_fn.forward(network.forward(x), targets);
            losses.push(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &network);
            network = optimizer.step(1e-2, network, grads);
        }
        let first = losses[..3].iter().sum::<f32>();
        let last = losses[losses.len() - 3..].iter().sum::<f32>();
        assert!(last < 0.5 * first, "{losses:?}");
    }
}
