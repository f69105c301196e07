//! Neural networks (burn) and the files a trained model lives in.
//!
//! A trained model is two files side by side: `NAME.bpk`, the burn weights (burnpack), and
//! `NAME.json`, its [`ModelCard`]: the architecture and its shape, the classes, what input
//! it expects and how it was trained. Either path names the model.

pub mod cwt_layer;
pub mod decision;
pub mod layers;
pub mod onnx;
pub mod premature;
pub mod resdscnet;
pub mod resecanet;
pub mod tract;
pub mod vgg16;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::types::DecidedBy;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use premature::{BeatTiming, PrematureRule, RuleClasses};
pub use resdscnet::{ResDscNet, ResDscNetConfig};
pub use resecanet::{ResEcaNet, ResEcaNetConfig};
pub use vgg16::{Vgg16, Vgg16Config};

/// Why a model could not be loaded, saved or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a model card: {error}")]
    Card { path: PathBuf, error: serde_json::Error },
    #[error("{path}: cannot read the weights: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("ONNX export failed: {0}")]
    Export(String),
    #[error("model {model} takes {takes}")]
    InputKind { model: String, takes: &'static str },
    #[error("input has {got} values per beat; the model expects {expected}")]
    InputLength { got: usize, expected: usize },
}

/// Network architectures and their shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Architecture {
    /// [`ResEcaNet`] on single-lead beat windows.
    Resecanet(ResEcaNetConfig),
    /// [`Vgg16`] on CWT scalograms of single-lead beats.
    Vgg16(Vgg16Config),
    /// [`ResDscNet`] on grayscale 12-lead ECG images (multi-label: sigmoid per class).
    Resdscnet(ResDscNetConfig),
}

impl Architecture {
    /// Values per input example.
    pub fn input_len(&self) -> usize {
        match self {
            Architecture::Resecanet(c) => c.input_len(),
            Architecture::Vgg16(c) => c.input_len(),
            Architecture::Resdscnet(c) => c.input_len(),
        }
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        match self {
            Architecture::Resecanet(c) => c.classes,
            Architecture::Vgg16(c) => c.classes,
            Architecture::Resdscnet(c) => c.classes,
        }
    }

    /// What a beat's input holds after its window (nothing for other inputs).
    pub fn beat_extras(&self) -> resecanet::BeatExtras {
        match self {
            Architecture::Resecanet(c) => c.beat_extras(),
            _ => resecanet::BeatExtras::default(),
        }
    }

    /// Checks the shape; the message names the offending setting.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Architecture::Resecanet(c) => c.validate(),
            Architecture::Vgg16(c) => c.validate(),
            Architecture::Resdscnet(c) => c.validate(),
        }
    }

    /// Whether training draws random numbers from the backend after the initial weights
    /// (dropout): such a training gives the same weights for the same seed only when no
    /// other training runs beside it, since the backend has one generator for the process.
    pub fn draws_while_training(&self) -> bool {
        match self {
            Architecture::Vgg16(c) => c.dropout.iter().any(|&p| p > 0.0),
            Architecture::Resecanet(_) | Architecture::Resdscnet(_) => false,
        }
    }
}

/// What a beat window looks like to the model: the segmentation that produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BeatInput {
    /// Sampling rate in Hz.
    pub fs: f64,
    /// Samples before the R peak.
    pub before: usize,
    /// Samples after the R peak.
    pub after: usize,
    /// Lead the model was trained on (e.g. `MLII`).
    pub lead: String,
}

/// What a whole-record model (PTB-XL) takes: the record's leads at one sampling rate,
/// cut or zero-padded to `samples`, fed either as the signal itself (lead after lead) or
/// rendered as an image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordInput {
    /// Sampling rate in Hz.
    pub fs: f64,
    /// Leads, in input order.
    pub leads: Vec<String>,
    /// Samples per lead.
    pub samples: usize,
    /// When set, the record is rendered with these settings and the network sees the
    /// `height × width` image; otherwise it sees `leads × samples` values in mV.
    #[serde(default)]
    pub image: Option<crate::render::RenderConfig>,
}

impl RecordInput {
    /// The network input of one record: `leads[k]` names `signal[k]` (mV at `self.fs`).
    /// Each configured lead is cut or zero-padded to `samples`; NaN samples become 0.
    pub fn prepare<S: AsRef<str>>(&self, leads: &[S], signal: &[Vec<f32>]) -> Result<Vec<f32>, String> {
        let mut chosen = Vec::with_capacity(self.leads.len());
        for want in &self.leads {
            let k = leads
                .iter()
                .position(|have| have.as_ref().eq_ignore_ascii_case(want))
                .ok_or_else(|| format!("lead {want} is missing"))?;
            let mut lead: Vec<f32> = signal[k]
                .iter()
                .take(self.samples)
                .map(|v| if v.is_finite() { *v } else { 0.0 })
                .collect();
            lead.resize(self.samples, 0.0);
            chosen.push(lead);
        }
        match &self.image {
            None => Ok(chosen.concat()),
            Some(config) => crate::render::Renderer::new(config.clone())
                .and_then(|r| r.render(&self.leads, &chosen, self.fs))
                .map_err(|e| e.to_string()),
        }
    }
}

/// What the model takes: one beat window, or one whole record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelInput {
    Beat(BeatInput),
    Record(RecordInput),
}

/// How logits become the probabilities a model reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// One class per example: softmax over the classes.
    #[default]
    Softmax,
    /// Any number of labels per example (multi-label): an independent sigmoid per class.
    Sigmoid,
}

impl Output {
    /// Probabilities from logits `[batch, classes]`.
    pub fn apply(self, logits: Tensor<2>) -> Tensor<2> {
        match self {
            Output::Softmax => softmax(logits, 1),
            Output::Sigmoid => burn::tensor::activation::sigmoid(logits),
        }
    }
}

/// Everything about a trained model except its weights: written as `NAME.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Short name, e.g. `resecanet-ds1`.
    pub name: String,
    /// Version of the model; bumped when it is retrained.
    pub version: String,
    pub architecture: Architecture,
    /// Class names in output order.
    pub classes: Vec<String>,
    /// The label map that turned annotation symbols into classes (`aami`, `study6`, a file).
    pub label_map: String,
    pub input: ModelInput,
    /// Softmax (one class per example) or sigmoid (multi-label) outputs.
    #[serde(default)]
    pub output: Output,
    /// Multi-label models: the decision threshold of each class, chosen on the validation
    /// part when the model was trained (best F1 there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<f32>>,
    /// Softmax beat models: classes called only when their probability reaches this (else
    /// the next most probable class is), chosen on the validation part ([`decision`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min_probability: BTreeMap<String, f64>,
    /// Beat models with classes N and S: the premature-beat rule chosen on the validation
    /// part when the model was trained, applied after the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premature_rule: Option<PrematureRule>,
    /// How it was trained: settings, data, seed, time (free-form, written by the trainer).
    #[serde(default)]
    pub training: serde_json::Value,
}

impl ModelCard {
    /// The class of a beat with these class probabilities and this timing: the most
    /// probable that reaches its minimum probability, if the card sets one, then the card's
    /// premature-beat rule, if it has one.
    pub fn class_of(&self, probabilities: &[f32], timing: Option<BeatTiming>) -> usize {
        self.decide(probabilities, timing).0
    }

    /// [`Self::class_of`], and what made that class the verdict.
    pub fn decide(&self, probabilities: &[f32], timing: Option<BeatTiming>) -> (usize, DecidedBy) {
        let allowed = |class: usize| {
            let min = self.classes.get(class).and_then(|name| self.min_probability.get(name));
            min.is_none_or(|&min| f64::from(probabilities[class]) >= min)
        };
        let mut predicted: Option<usize> = None;
        for class in (0..probabilities.len()).filter(|&c| allowed(c)) {
            if predicted.is_none_or(|best| probabilities[class] > probabilities[best]) {
                predicted = Some(class);
            }
        }
        let most_probable = crate::train::argmax(probabilities);
        let predicted = predicted.unwrap_or(most_probable);
        let by_rule = match (&self.premature_rule, RuleClasses::of(&self.classes)) {
            (Some(rule), Some(classes)) => rule.apply(predicted, timing, classes),
            _ => predicted,
        };
        let decided_by = if by_rule != predicted {
            DecidedBy::PrematureRule
        } else if predicted != most_probable {
            DecidedBy::MinProbability
        } else {
            DecidedBy::Network
        };
        (by_rule, decided_by)
    }

    /// What is wrong with the card's decisions after the network, if anything: a minimum
    /// probability for a class the card lacks or outside (0, 1], or a premature-beat rule
    /// without the classes N and S (it would be ignored). Hand-edited cards can be like that.
    pub fn decision_problem(&self) -> Option<String> {
        if let Some((class, min)) = self
            .min_probability
            .iter()
            .find(|(class, &min)| !(self.classes.contains(class) && min > 0.0 && min <= 1.0))
        {
            return Some(format!(
                "min_probability {min} for class {class:?}: needs one of the classes {:?} and a value in (0, 1]",
                self.classes
            ));
        }
        if self.premature_rule.is_some() && RuleClasses::of(&self.classes).is_none() {
            return Some(format!(
                "premature_rule needs classes N and S; the card has {:?}",
                self.classes
            ));
        }
        None
    }

    /// The beat window a beat classifier takes; an error naming the model when it takes
    /// whole records instead.
    pub fn beat_input(&self) -> Result<&BeatInput, ModelError> {
        match &self.input {
            ModelInput::Beat(b) => Ok(b),
            ModelInput::Record(_) => Err(ModelError::InputKind {
                model: self.name.clone(),
                takes: "whole records (PTB-XL), not beats",
            }),
        }
    }

    /// The record a whole-record classifier takes; an error naming the model when it takes
    /// beats instead.
    pub fn record_input(&self) -> Result<&RecordInput, ModelError> {
        match &self.input {
            ModelInput::Record(r) => Ok(r),
            ModelInput::Beat(_) => Err(ModelError::InputKind {
                model: self.name.clone(),
                takes: "single beats (MIT-BIH), not whole records",
            }),
        }
    }
}

/// A trained network with its card.
#[derive(Debug)]
pub struct TrainedModel {
    pub card: ModelCard,
    pub network: Network,
}

/// A network of any supported architecture.
#[derive(Module, Debug)]
pub enum Network {
    Resecanet(ResEcaNet),
    Vgg16(Vgg16),
    Resdscnet(ResDscNet),
}

/// Burn's flex backend draws every random number of the process from one generator, which
/// `Device::seed` resets, and burn draws a parameter's initial weights lazily, on its first
/// use. Networks are initialised holding this lock until their weights are drawn, so that a
/// seeded initialisation ([`Network::init_seeded`]) gets its seed's weights even while other
/// threads initialise networks of their own.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_init() -> std::sync::MutexGuard<'static, ()> {
    INIT.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Held while a seeded network's weights are drawn ([`Network::init_seeded`]): no other
/// network is initialised until it is dropped.
#[must_use = "drop it once the network's weights are drawn"]
pub struct DrawingWeights {
    _lock: std::sync::MutexGuard<'static, ()>,
}

/// Draws every lazily initialised weight of a module now.
struct DrawWeights;

impl ModuleVisitor for DrawWeights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

impl Network {
    /// A freshly initialised network of `architecture` on `device`, its weights drawn now
    /// from wherever the backend's generator stands (for weights about to be loaded).
    pub fn init(architecture: &Architecture, device: &Device) -> Self {
        let _drawing = lock_init();
        let network = Self::init_lazily(architecture, device);
        network.visit(&mut DrawWeights);
        network
    }

    /// A freshly initialised network whose weights depend on `seed` alone. The backend's
    /// generator is seeded, and burn draws the weights in the network's first use (the first
    /// forward pass, or `valid()`), in the order it uses them: drop the [`DrawingWeights`]
    /// after that use; until then no other network is initialised.
    pub fn init_seeded(architecture: &Architecture, device: &Device, seed: u64) -> (Self, DrawingWeights) {
        let drawing = DrawingWeights { _lock: lock_init() };
        device.seed(seed);
        (Self::init_lazily(architecture, device), drawing)
    }

    fn init_lazily(architecture: &Architecture, device: &Device) -> Self {
        match architecture {
            Architecture::Resecanet(c) => Network::Resecanet(c.init(device)),
            Architecture::Vgg16(c) => Network::Vgg16(c.init(device)),
            Architecture::Resdscnet(c) => Network::Resdscnet(c.init(device)),
        }
    }

    /// Class logits `[batch, classes]`.
    pub fn forward(&self, input: Tensor<3>) -> Tensor<2> {
        match self {
            Network::Resecanet(n) => n.forward(input),
            Network::Vgg16(n) => n.forward(input),
            Network::Resdscnet(n) => n.forward(input),
        }
    }
}

/// The weights and card paths of the model named by `path` (either file, or the name
/// without extension).
pub fn model_paths(path: &Path) -> (PathBuf, PathBuf) {
    let stem = match path.extension().and_then(|e| e.to_str()) {
        Some("bpk" | "json" | "onnx") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    let with = |ext: &str| {
        let mut name = stem.clone().into_os_string();
        name.push(".");
        name.push(ext);
        PathBuf::from(name)
    };
    (with("bpk"), with("json"))
}

impl TrainedModel {
    /// Loads the model named by `path` for inference on `device` (batch norm in eval mode).
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let (weights, card_path) = model_paths(path);
        let text = std::fs::read_to_string(&card_path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => ModelError::Invalid {
                path: card_path.clone(),
                message: format!(
                    "no such file: the model {} is this card and the weights {} beside it",
                    path.display(),
                    weights.display()
                ),
            },
            _ => ModelError::Io {
                path: card_path.clone(),
                error,
            },
        })?;
        let card: ModelCard = serde_json::from_str(&text).map_err(|error| ModelError::Card {
            path: card_path.clone(),
            error,
        })?;
        card.architecture.validate().map_err(|message| ModelError::Invalid {
            path: card_path.clone(),
            message,
        })?;
        if let Some(message) = card.decision_problem() {
            return Err(ModelError::Invalid {
                path: card_path,
                message,
            });
        }
        if card.classes.len() != card.architecture.classes() {
            return Err(ModelError::Invalid {
                path: card_path,
                message: format!(
                    "{} class names for a network with {} outputs",
                    card.classes.len(),
                    card.architecture.classes()
                ),
            });
        }
        if !weights.is_file() {
            return Err(ModelError::Io {
                path: weights,
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
            });
        }
        let network = Network::init(&card.architecture, device)
            .try_load_file(&weights)
            .map_err(|e| ModelError::Weights {
                path: weights.clone(),
                message: e.to_string(),
            })?
            .valid();
        Ok(TrainedModel { card, network })
    }

    /// Loads the model named by `path` for inference on the CPU.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        Self::load(path, &Device::flex())
    }

    /// The same card and architecture with freshly initialised weights drawn from `seed`:
    /// the reference of the model-randomisation check of explanations.
    pub fn randomised(&self, seed: u64) -> TrainedModel {
        let (network, drawing) = Network::init_seeded(&self.card.architecture, &Device::flex(), seed);
        let network = network.valid();
        drop(drawing);
        TrainedModel {
            card: self.card.clone(),
            network,
        }
    }

    /// Writes `NAME.bpk` and `NAME.json` for `path` (each through a temporary file, so an
    /// interrupted save leaves the previous model whole).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        save_model(&self.network, &self.card, path)
    }

    /// Class probabilities for `inputs` (`n × input_len` values, raw mV windows followed by
    /// RR features when the model uses them), `batch` beats at a time.
    pub fn predict(&self, inputs: &[f32], batch: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        predict_with(
            &self.network,
            self.card.architecture.input_len(),
            self.card.output,
            inputs,
            batch,
        )
    }
}

/// Saves `network` and `card` as the model named by `path`.
pub fn save_model(network: &Network, card: &ModelCard, path: &Path) -> Result<(), ModelError> {
    let (weights, card_path) = model_paths(path);
    if let Some(dir) = weights.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| ModelError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
    }
    let tmp = weights.with_extension("bpk.tmp");
    network.clone().save_file(&tmp).map_err(|e| ModelError::Weights {
        path: tmp.clone(),
        message: e.to_string(),
    })?;
    rename(&tmp, &weights)?;
    let text = serde_json::to_string_pretty(card).expect("a model card always serialises");
    let tmp = card_path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").map_err(|error| ModelError::Io {
        path: tmp.clone(),
        error,
    })?;
    rename(&tmp, &card_path)
}

fn rename(from: &Path, to: &Path) -> Result<(), ModelError> {
    std::fs::rename(from, to).map_err(|error| ModelError::Io {
        path: to.to_path_buf(),
        error,
    })
}

/// Softmax probabilities of `network` for `inputs` (`n × input_len`), in batches.
pub fn predict(network: &Network, input_len: usize, inputs: &[f32], batch: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    predict_with(network, input_len, Output::Softmax, inputs, batch)
}

/// Probabilities (`output` applied to the logits) of `network` for `inputs`
/// (`n × input_len`), in batches.
pub fn predict_with(
    network: &Network,
    input_len: usize,
    output: Output,
    inputs: &[f32],
    batch: usize,
) -> Result<Vec<Vec<f32>>, ModelError> {
    if input_len == 0 || !inputs.len().is_multiple_of(input_len) {
        return Err(ModelError::InputLength {
            got: inputs.len(),
            expected: input_len,
        });
    }
    let device = Device::flex();
    let mut out = Vec::with_capacity(inputs.len() / input_len);
    for part in inputs.chunks(batch.max(1) * input_len) {
        let n = part.len() / input_len;
        let x = Tensor::<3>::from_data(TensorData::new(part.to_vec(), [n, 1, input_len]), &device);
        let probs = output.apply(network.forward(x));
        let values = probs.into_data().try_to_vec::<f32>().expect("float output");
        let classes = values.len() / n;
        out.extend(values.chunks(classes).map(<[f32]>::to_vec));
    }
    Ok(out)
}

/// Held by unit tests that seed the device, train or initialise a network: the device's
/// random generator is shared by all tests of the process, and a test initialising a
/// network while another has just seeded it changes what the seeded one draws.
#[cfg(test)]
pub(crate) fn seeded_device_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exports `network` (inputs of `input_len` values) to ONNX and checks that tract, with a
/// dynamic batch, computes burn's logits to 1e-4 for three examples whose offsets and gains
/// differ (the z-score inside the networks must take them out alike).
#[cfg(test)]
pub(crate) fn assert_onnx_reproduces_burn(network: &Network, input_len: usize) {
    let bytes = onnx::onnx_bytes(network, input_len).unwrap();
    let mut rng = crate::rng::SplitMix64::new(5);
    let inputs: Vec<f32> = (0..3 * input_len)
        .map(|i| (rng.normal() as f32) * (1 + i / input_len) as f32 - 0.7)
        .collect();
    let x = Tensor::<3>::from_data(TensorData::new(inputs.clone(), [3, 1, input_len]), &Device::flex());
    let expected = network.forward(x).into_data().try_to_vec::<f32>().unwrap();
    let got = tract::logits_for_any_batch(&bytes, input_len, &inputs);
    assert_eq!(got.len(), expected.len());
    for (a, b) in expected.iter().zip(&got) {
        assert!((a - b).abs() < 1e-4, "burn {expected:?}, tract {got:?}");
    }
}

/// A small freshly initialised ResECANet for unit tests: a 64-sample window followed by the
/// RR features, widths 4 and 8, three classes; batch norm in inference mode.
#[cfg(test)]
pub(crate) fn small_network() -> (ResEcaNetConfig, Architecture, Network) {
    let config = ResEcaNetConfig {
        window: 64,
        widths: vec![4, 8],
        rr_features: true,
        ..ResEcaNetConfig::study(3)
    };
    let architecture = Architecture::Resecanet(config.clone());
    let network = Network::init(&architecture, &Device::flex()).valid();
    (config, architecture, network)
}

/// A model card for unit tests: classes `c0`, `c1`, ..., a 30 + 1 + 33 MLII window.
#[cfg(test)]
pub(crate) fn test_card(architecture: Architecture) -> ModelCard {
    ModelCard {
        name: "t".into(),
        version: "1".into(),
        classes: (0..architecture.classes()).map(|c| format!("c{c}")).collect(),
        architecture,
        label_map: "aami".into(),
        input: ModelInput::Beat(BeatInput {
            fs: 360.0,
            before: 30,
            after: 33,
            lead: "MLII".into(),
        }),
        output: Output::Softmax,
        thresholds: None,
        min_probability: Default::default(),
        premature_rule: None,
        training: serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn save_then_load_gives_the_same_outputs() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let (config, architecture, network) = small_network();
        let model = TrainedModel {
            card: test_card(architecture),
            network,
        };
        let dir = std::env::temp_dir().join(format!("ecgflow-model-{}", std::process::id()));
        let path = dir.join("m");
        model.save(&path).unwrap();
        let loaded = TrainedModel::open(&path.with_extension("json")).unwrap();
        assert_eq!(loaded.card, model.card);
        let mut rng = SplitMix64::new(5);
        let inputs: Vec<f32> = (0..5 * config.input_len()).map(|_| rng.normal() as f32).collect();
        assert_eq!(model.predict(&inputs, 2).unwrap(), loaded.predict(&inputs, 2).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_or_broken_files_are_named() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let dir = std::env::temp_dir().join(format!("ecgflow-badmodel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = TrainedModel::open(&dir.join("none.json")).unwrap_err();
        assert!(err.to_string().contains("none.json"), "{err}");
        std::fs::write(dir.join("bad.json"), "{").unwrap();
        let err = TrainedModel::open(&dir.join("bad.json")).unwrap_err();
        assert!(err.to_string().contains("not a model card"), "{err}");
        let arch = Architecture::Resecanet(ResEcaNetConfig::study(2));
        std::fs::write(dir.join("w.json"), serde_json::to_string(&test_card(arch)).unwrap()).unwrap();
        let err = TrainedModel::open(&dir.join("w.json")).unwrap_err();
        assert!(err.to_string().contains("w.bpk"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_card_applies_its_premature_rule_and_keeps_it_through_json() {
        let mut card = test_card(Architecture::Resecanet(ResEcaNetConfig::study(3)));
        card.classes = vec!["N".into(), "S".into(), "V".into()];
        let early = Some(BeatTiming {
            rr_prev: 0.6,
            irregularity: 0.01,
        });
        let normal = [0.9, 0.05, 0.05];
        assert_eq!(card.class_of(&normal, early), 0, "no rule on the card");
        card.premature_rule = Some(PrematureRule {
            max_rr_prev: 0.8,
            max_irregularity: 0.05,
        });
        assert_eq!(card.decide(&normal, early), (1, DecidedBy::PrematureRule));
        assert_eq!(card.decide(&[0.1, 0.1, 0.8], early), (2, DecidedBy::Network));
        card.min_probability.insert("V".into(), 0.9);
        assert_eq!(card.decide(&[0.1, 0.3, 0.6], early), (1, DecidedBy::MinProbability));
        assert_eq!(card.decide(&[0.3, 0.1, 0.6], early), (1, DecidedBy::PrematureRule));
        card.min_probability.clear();
        let json = serde_json::to_string(&card).unwrap();
        assert_eq!(serde_json::from_str::<ModelCard>(&json).unwrap(), card);
        assert_eq!(card.decision_problem(), None);
        // Without N and S among its classes, the rule has nothing to turn into what, and a
        // card like that is refused when a model is loaded.
        card.classes = vec!["a".into(), "b".into(), "c".into()];
        assert_eq!(card.class_of(&normal, early), 0);
        let problem = card.decision_problem().unwrap();
        assert!(problem.contains("premature_rule needs classes N and S"), "{problem}");
    }

    #[test]
    fn a_minimum_probability_needs_a_class_of_the_card_and_a_probability() {
        let mut card = test_card(Architecture::Resecanet(ResEcaNetConfig::study(3)));
        card.min_probability.insert("c1".into(), 0.9);
        assert_eq!(card.decision_problem(), None);
        card.min_probability.insert("V".into(), 0.9);
        let problem = card.decision_problem().unwrap();
        assert!(problem.contains("class \"V\""), "{problem}");
        card.min_probability.remove("V");
        card.min_probability.insert("c2".into(), 1.5);
        let problem = card.decision_problem().unwrap();
        assert!(problem.contains("1.5") && problem.contains("(0, 1]"), "{problem}");
    }

    #[test]
    fn either_file_names_the_model() {
        for p in ["m/x", "m/x.bpk", "m/x.json", "m/x.onnx"] {
            let (w, c) = model_paths(Path::new(p));
            assert_eq!(w, Path::new("m/x.bpk"));
            assert_eq!(c, Path::new("m/x.json"));
        }
    }
}
