//! ResECANet: a 1D residual CNN with Efficient Channel Attention (Wang et al., ECA-Net,
//! CVPR 2020) after each residual block, for single-lead heartbeat windows.
//!
//! Layout: input `[batch, 1, window (+ template window) (+ 3 RR features)]` → the beat (and
//! its template, a second channel) z-scored each on its own → stem convolution (kernel 15) → one residual block per width (two kernel-7 convolutions with
//! batch norm, ECA, a 1 × 1 projection when the width changes, ReLU) each followed by max
//! pooling → global average pool → (RR features appended) → dense → class logits.
//! Softmax is applied by the caller (cross-entropy takes logits).

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig1d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{split_rows, zscore};
use crate::types::Beat;

/// Number of RR features appended to the window when [`ResEcaNetConfig::rr_features`] is
/// on; see [`RrReference`].
pub const RR_FEATURES: usize = 3;

/// What the three RR features measure the beat's intervals against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RrReference {
    /// The local mean ([`Beat::rr_local`], the last 10 intervals): previous RR / local
    /// mean, next RR / local mean, and the local mean in seconds.
    #[default]
    Local,
    /// The stream's long mean ([`Beat::rr_mean`], the last 300 intervals): previous RR,
    /// next RR and the local mean, each over the long mean. A run of early beats lowers
    /// the local mean with it but barely moves the long one, so the beats of the run still
    /// stand out as early.
    Long,
}

/// Shape of a ResECANet. The study's network is [`ResEcaNetConfig::study`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResEcaNetConfig {
    /// Samples per beat window (259 = 90 before the R peak, the peak, 168 after).
    pub window: usize,
    /// Output classes.
    pub classes: usize,
    /// Filters of each residual stage, in order; one block and one 2× pooling per stage.
    pub widths: Vec<usize>,
    /// Kernel of the first (stem) convolution.
    pub stem_kernel: usize,
    /// Kernel of the convolutions inside residual blocks.
    pub kernel: usize,
    /// Append the three RR features to the pooled features before the dense layer; the
    /// input then carries them after the window (`window + 3` values).
    pub rr_features: bool,
    /// What the RR features are relative to (the local mean in models trained before this
    /// setting existed).
    #[serde(default)]
    pub rr_reference: RrReference,
    /// Input leads (channels of the stem convolution): 1 for a beat, 12 for a whole
    /// 12-lead record. The input holds the leads one after the other.
    #[serde(default = "one_lead")]
    pub leads: usize,
    /// Beats only: the beat's template ([`Beat::template`], the stream's typical beat) is a
    /// second input channel, after the window, so that the network can compare the beat
    /// with the patient's usual one.
    #[serde(default)]
    pub template: bool,
}

fn one_lead() -> usize {
    1
}

impl ResEcaNetConfig {
    /// The study's network: filters 32 → 512, stem kernel 15, then 7; 259-sample beats.
    pub fn study(classes: usize) -> Self {
        ResEcaNetConfig {
            window: 259,
            classes,
            widths: vec![32, 64, 128, 256, 512],
            stem_kernel: 15,
            kernel: 7,
            rr_features: false,
            rr_reference: RrReference::Local,
            leads: 1,
            template: false,
        }
    }

    /// Input channels: the leads, and the template when there is one.
    pub fn channels(&self) -> usize {
        self.leads + usize::from(self.template)
    }

    /// What follows the window in a beat's input.
    pub fn beat_extras(&self) -> BeatExtras {
        BeatExtras {
            template: self.template,
            rr: self.rr(),
        }
    }

    /// The RR features the input ends with, if any.
    pub fn rr(&self) -> Option<RrReference> {
        self.rr_features.then_some(self.rr_reference)
    }

    /// Values per input example: the window of each lead (and of the template), then the RR
    /// features when enabled.
    pub fn input_len(&self) -> usize {
        self.channels() * self.window + if self.rr_features { RR_FEATURES } else { 0 }
    }

    /// Checks the shape before any tensor is made (burn panics on bad sizes).
    pub fn validate(&self) -> Result<(), String> {
        if self.classes < 2 {
            return Err(format!("classes = {} (need at least 2)", self.classes));
        }
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(format!("widths = {:?} (need one or more positive widths)", self.widths));
        }
        if self.leads == 0 {
            return Err("leads must be positive".into());
        }
        if self.rr_features && self.leads > 1 {
            return Err("rr_features needs a single-lead beat window (leads = 1)".into());
        }
        if self.template && self.leads > 1 {
            return Err("template needs a single-lead beat window (leads = 1)".into());
        }
        if self.stem_kernel == 0 || self.kernel == 0 {
            return Err("kernels must be positive".into());
        }
        let pooled = self.window >> self.widths.len();
        if pooled == 0 {
            return Err(format!(
                "window = {} is too short for {} pooling stages",
                self.window,
                self.widths.len()
            ));
        }
        Ok(())
    }

    /// A network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> ResEcaNet {
        let stem_width = self.widths[0];
        let mut blocks = Vec::with_capacity(self.widths.len());
        let mut channels = stem_width;
        for &width in &self.widths {
            blocks.push(ResidualBlock::new(channels, width, self.kernel, device));
            channels = width;
        }
        let features = channels + if self.rr_features { RR_FEATURES } else { 0 };
        ResEcaNet {
            stem: same_conv(self.channels(), stem_width, self.stem_kernel, device),
            stem_norm: BatchNormConfig::new(stem_width).init(device),
            blocks,
            pool: MaxPool2dConfig::new([1, 2]).init(),
            head: LinearConfig::new(features, self.classes).init(device),
            window: self.window,
            rr_features: self.rr_features,
            channels: self.channels(),
        }
    }
}

fn same_conv(input: usize, output: usize, kernel: usize, device: &Device) -> Conv1d {
    Conv1dConfig::new(input, output, kernel)
        .with_padding(PaddingConfig1d::Same)
        .init(device)
}

/// Efficient Channel Attention: channel weights from a 1D convolution across the globally
/// pooled channel descriptors (no dimensionality reduction).
#[derive(Module, Debug)]
pub struct Eca {
    conv: Conv1d,
}

impl Eca {
    /// The adaptive kernel of ECA-Net: the odd number nearest `log2(C)/γ + b/γ`, γ = 2, b = 1.
    pub fn kernel_size(channels: usize) -> usize {
        let k = ((channels as f64).log2() / 2.0 + 0.5).abs() as usize;
        if k % 2 == 1 {
            k
        } else {
            k + 1
        }
    }

    fn new(channels: usize, device: &Device) -> Self {
        let conv = Conv1dConfig::new(1, 1, Self::kernel_size(channels))
            .with_padding(PaddingConfig1d::Same)
            .with_bias(false)
            .init(device);
        Eca { conv }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, channels, length] = x.dims();
        // Mean over time as sum / length, and reshapes rather than transposes: the forms
        // burn-onnx exports.
        let pooled = x.clone().sum_dim(2).div_scalar(length as f32); // [B, C, 1]
        let across = pooled.reshape([batch, 1, channels]); // convolve across channels
        let weights = sigmoid(self.conv.forward(across)).reshape([batch, channels, 1]);
        x * weights
    }
}

/// Two same-padded convolutions with batch norm and ECA, plus the shortcut.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    conv1: Conv1d,
    norm1: BatchNorm,
    conv2: Conv1d,
    norm2: BatchNorm,
    eca: Eca,
    /// 1 × 1 projection of the shortcut when the width changes.
    projection: Option<Conv1d>,
    projection_norm: Option<BatchNorm>,
}

impl ResidualBlock {
    fn new(input: usize, output: usize, kernel: usize, device: &Device) -> Self {
        let (projection, projection_norm) = if input == output {
            (None, None)
        } else {
            (
                Some(Conv1dConfig::new(input, output, 1).init(device)),
                Some(BatchNormConfig::new(output).init(device)),
            )
        };
        ResidualBlock {
            conv1: same_conv(input, output, kernel, device),
            norm1: BatchNormConfig::new(output).init(device),
            conv2: same_conv(output, output, kernel, device),
            norm2: BatchNormConfig::new(output).init(device),
            eca: Eca::new(output, device),
            projection,
            projection_norm,
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let shortcut = match (&self.projection, &self.projection_norm) {
            (Some(conv), Some(norm)) => norm.forward(conv.forward(x.clone())),
            _ => x.clone(),
        };
        let y = relu(self.norm1.forward(self.conv1.forward(x)));
        let y = self.eca.forward(self.norm2.forward(self.conv2.forward(y)));
        relu(y + shortcut)
    }
}

/// The network; build it with [`ResEcaNetConfig::init`].
#[derive(Module, Debug)]
pub struct ResEcaNet {
    stem: Conv1d,
    stem_norm: BatchNorm,
    blocks: Vec<ResidualBlock>,
    /// 2× max pooling over time, as a 1 × 2 2D pooling: burn-onnx exports MaxPool2d only.
    pool: MaxPool2d,
    head: Linear,
    window: usize,
    rr_features: bool,
    /// Input channels ([`ResEcaNetConfig::channels`]).
    channels: usize,
}

impl ResEcaNet {
    /// Class logits `[batch, classes]` for input `[batch, 1, input_len]` in mV.
    pub fn forward(&self, input: Tensor<3>) -> Tensor<2> {
        let (signal, rr) = self.split_input(input);
        self.logits_from_activations(self.last_block_activations(signal), rr)
    }

    /// Class logits from the last block's activations (and the RR features): the part of
    /// [`ResEcaNet::forward`] after [`ResEcaNet::last_block_activations`], through which
    /// Grad-CAM takes its gradients.
    pub fn logits_from_activations(&self, activations: Tensor<3>, rr: Option<Tensor<2>>) -> Tensor<2> {
        let x = self.halve(activations);
        let [batch, channels, length] = x.dims();
        let mut features: Tensor<2> = x.sum_dim(2).div_scalar(length as f32).reshape([batch, channels]);
        if let Some(rr) = rr {
            features = Tensor::cat(vec![features, rr], 1);
        }
        self.head.forward(features)
    }

    /// The activations of the last residual block (before its pooling) for the signal part
    /// `[batch, leads, window]` of the input: what Grad-CAM looks at.
    pub fn last_block_activations(&self, signal: Tensor<3>) -> Tensor<3> {
        let mut x = relu(self.stem_norm.forward(self.stem.forward(zscore(signal))));
        let last = self.blocks.len() - 1;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if i < last {
                x = self.halve(x);
            }
        }
        x
    }

    /// Max pooling by 2 over time.
    fn halve(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, channels, length] = x.dims();
        let pooled = self.pool.forward(x.reshape([batch, channels, 1, length]));
        pooled.reshape([batch, channels, length / 2])
    }

    /// The window `[batch, channels, window]` and the RR features `[batch, 3]` of the input.
    /// Taken with constant selection matrices rather than slices: ONNX export keeps the
    /// batch axis dynamic through a matrix product but not through a slice.
    pub fn split_input(&self, input: Tensor<3>) -> (Tensor<3>, Option<Tensor<2>>) {
        if !self.rr_features {
            if self.channels > 1 {
                return (split_rows(input, self.channels, self.window), None);
            }
            return (input, None);
        }
        let device = input.device();
        let [batch, _, len] = input.dims();
        let pick = |start: usize, count: usize| {
            let mut m = vec![0f32; len * count];
            for j in 0..count {
                m[(start + j) * count + j] = 1.0;
            }
            Tensor::<2>::from_data(burn::tensor::TensorData::new(m, [len, count]), &device)
        };
        let flat: Tensor<2> = input.reshape([batch, len]);
        let signal_len = self.channels * self.window;
        let mut signal = flat.clone().matmul(pick(0, signal_len)).reshape([batch, 1, signal_len]);
        if self.channels > 1 {
            signal = split_rows(signal, self.channels, self.window);
        }
        let rr = flat.matmul(pick(signal_len, RR_FEATURES));
        (signal, Some(rr))
    }
}

/// What a beat model's input holds after the beat's window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BeatExtras {
    /// The first lead of the beat's template (the window itself when the beat has none).
    pub template: bool,
    /// The three RR features.
    pub rr: Option<RrReference>,
}

/// Why `beat` cannot feed a model with `extras`: it lacks the template the model compares
/// it with (its segmenter was not asked for templates).
pub fn missing_template(beat: &Beat, extras: BeatExtras) -> Option<String> {
    (extras.template && beat.template.is_none()).then(|| {
        format!(
            "the beat at sample {} of {} has no template, which the model compares it with: set `template = true` on the \
             segment step that cuts the beats (or rebuild the beats table with pipelines/mitdb-to-parquet.toml)",
            beat.sample, beat.stream
        )
    })
}

/// The input of one beat: its first lead's window, then what `extras` asks for: the first
/// lead of its template (the window again when the beat has none; see
/// [`missing_template`]), the three RR features of [`RrReference`]. A missing interval
/// counts as the local mean, a missing local mean as the nearest interval (0.8 s when there
/// is none), a missing long mean as the local mean.
pub fn beat_input(beat: &Beat, extras: BeatExtras) -> Vec<f32> {
    let len = beat.before + 1 + beat.after;
    let mut input: Vec<f32> = beat.window.iter().take(len).copied().collect();
    if extras.template {
        let template = beat
            .template
            .as_deref()
            .filter(|t| t.len() >= len)
            .unwrap_or(&beat.window);
        input.extend(template.iter().take(len));
    }
    if let Some(reference) = extras.rr {
        let local = beat.rr_local.or(beat.rr_prev).or(beat.rr_next).unwrap_or(0.8).max(1e-3);
        let prev = beat.rr_prev.unwrap_or(local);
        let next = beat.rr_next.unwrap_or(local);
        match reference {
            RrReference::Local => input.extend([prev / local, next / local, local]),
            RrReference::Long => {
                let mean = beat.rr_mean.unwrap_or(local).max(1e-3);
                input.extend([prev / mean, next / mean, local / mean]);
            }
        }
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eca_kernel_follows_the_paper() {
        // ECA-Net: C = 64 → k = 3; 256 → 5; 512 → 5.
        assert_eq!(Eca::kernel_size(64), 3);
        assert_eq!(Eca::kernel_size(256), 5);
        assert_eq!(Eca::kernel_size(512), 5);
        assert_eq!(Eca::kernel_size(32), 3);
    }

    #[test]
    fn study_network_has_the_published_size() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let config = ResEcaNetConfig::study(5);
        config.validate().unwrap();
        let model = config.init(&Device::flex());
        let params = model.num_params();
        assert!((3_000_000..4_500_000).contains(&params), "{params} parameters");
    }

    #[test]
    fn forward_gives_one_row_of_logits_per_beat() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let config = ResEcaNetConfig {
            widths: vec![8, 16],
            rr_features: true,
            ..ResEcaNetConfig::study(4)
        };
        let device = Device::flex();
        let model = config.init(&device);
        let input = Tensor::<3>::zeros([3, 1, config.input_len()], &device);
        assert_eq!(model.forward(input).dims(), [3, 4]);
    }

    #[test]
    fn the_template_is_a_second_channel_before_the_rr_features() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let config = ResEcaNetConfig {
            window: 8,
            widths: vec![4],
            rr_features: true,
            template: true,
            ..ResEcaNetConfig::study(2)
        };
        config.validate().unwrap();
        assert_eq!(config.input_len(), 2 * 8 + 3);
        let device = Device::flex();
        let model = config.init(&device);
        let values: Vec<f32> = (0..2 * config.input_len()).map(|v| v as f32).collect();
        let input = Tensor::<3>::from_data(burn::tensor::TensorData::new(values.clone(), [2, 1, 19]), &device);
        let (signal, rr) = model.split_input(input.clone());
        assert_eq!(signal.dims(), [2, 2, 8]);
        let signal = signal.into_data().try_to_vec::<f32>().unwrap();
        let rr = rr.unwrap().into_data().try_to_vec::<f32>().unwrap();
        for b in 0..2 {
            let row = &values[b * 19..(b + 1) * 19];
            assert_eq!(&signal[b * 16..(b + 1) * 16], &row[..16], "beat, then template");
            assert_eq!(&rr[b * 3..(b + 1) * 3], &row[16..], "then the RR features");
        }
        assert_eq!(model.forward(input).dims(), [2, 2]);
        let with_leads = ResEcaNetConfig {
            leads: 12,
            rr_features: false,
            ..config
        };
        assert!(with_leads.validate().unwrap_err().contains("template"));
    }

    #[test]
    fn a_twelve_lead_record_goes_in_as_channels() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let config = ResEcaNetConfig {
            window: 100,
            leads: 12,
            widths: vec![4, 8],
            ..ResEcaNetConfig::study(5)
        };
        config.validate().unwrap();
        assert_eq!(config.input_len(), 1200);
        let device = Device::flex();
        let model = config.init(&device);
        let input = Tensor::<3>::zeros([2, 1, 1200], &device);
        assert_eq!(model.forward(input).dims(), [2, 5]);
        let with_rr = ResEcaNetConfig {
            rr_features: true,
            ..config.clone()
        };
        assert!(with_rr.validate().unwrap_err().contains("rr_features"));

        // It exports to ONNX with a dynamic batch, and tract computes burn's logits.
        let network = crate::models::Network::Resecanet(model).valid();
        crate::models::assert_onnx_reproduces_burn(&network, 1200);
    }

    #[test]
    fn bad_shapes_are_refused_before_burn_sees_them() {
        let mut config = ResEcaNetConfig::study(1);
        assert!(config.validate().is_err());
        config.classes = 3;
        config.window = 16;
        assert!(config.validate().unwrap_err().contains("too short"));
    }

    #[test]
    fn rr_features_are_relative_to_the_chosen_mean() {
        let beat = Beat {
            stream: "s".into(),
            fs: 360.0,
            sample: 1000,
            leads: vec!["MLII".into()],
            before: 1,
            after: 1,
            window: vec![0.0, 1.0, 0.0],
            template: None,
            rr_prev: Some(0.5),
            rr_next: Some(1.2),
            rr_local: Some(0.6),
            rr_mean: Some(1.0),
            rr_irregularity: None,
            symbol: None,
            prediction: None,
            arrival: None,
        };
        let local = beat_input(
            &beat,
            BeatExtras {
                template: false,
                rr: Some(RrReference::Local),
            },
        );
        assert_eq!(&local[3..], &[0.5 / 0.6, 1.2 / 0.6, 0.6]);
        let long = beat_input(
            &beat,
            BeatExtras {
                template: false,
                rr: Some(RrReference::Long),
            },
        );
        assert_eq!(&long[3..], &[0.5, 1.2, 0.6]);
        assert_eq!(beat_input(&beat, BeatExtras::default()), vec![0.0, 1.0, 0.0]);
        let no_mean = Beat { rr_mean: None, ..beat };
        assert_eq!(
            &beat_input(
                &no_mean,
                BeatExtras {
                    template: false,
                    rr: Some(RrReference::Long)
                }
            )[3..],
            &[0.5 / 0.6, 1.2 / 0.6, 1.0],
            "without a long mean, the local one stands in"
        );
    }
}
