//! Supervised training of a [`Network`] on labelled examples: Adam, cross-entropy, seeded
//! shuffling and augmentation, validation every epoch, early stopping, best-model
//! selection and resumable checkpoints.
//!
//! Everything random is derived from the seed and the epoch number, so a run resumed from
//! its checkpoint after epoch `e` continues exactly as the uninterrupted run would have.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, OptimizerRecord};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::augment::{Augmentation, Augmenter};
use crate::metrics::{ClassificationReport, ConfusionMatrix, MetricsError, MultiLabelReport};
use crate::models::{predict, predict_with, Architecture, ModelError, Network, Output};
use crate::rng::SplitMix64;

/// Labelled examples of equal length, stored flat.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Values per example.
    pub input_len: usize,
    /// `len() × input_len` values, example after example.
    pub inputs: Vec<f32>,
    /// Class index of each example (single-label data; empty for multi-label data).
    pub labels: Vec<usize>,
    /// Multi-hot labels of each example (multi-label data, `classes` values per example;
    /// empty for single-label data). A dataset with label sets trains with binary
    /// cross-entropy on independent sigmoid outputs.
    pub label_sets: Vec<Vec<bool>>,
    /// Group of each example (the patient), for splits that keep a group together.
    pub groups: Vec<String>,
}

impl Dataset {
    pub fn new(input_len: usize) -> Self {
        Dataset {
            input_len,
            ..Dataset::default()
        }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// True when the examples carry label sets rather than one class each.
    pub fn is_multi_label(&self) -> bool {
        !self.label_sets.is_empty()
    }

    /// Adds one example; `input` must hold `input_len` values.
    pub fn push(&mut self, input: &[f32], label: usize, group: &str) {
        debug_assert_eq!(input.len(), self.input_len);
        self.inputs.extend_from_slice(input);
        self.labels.push(label);
        self.groups.push(group.to_string());
    }

    /// Adds one multi-label example; `input` must hold `input_len` values.
    pub fn push_multi(&mut self, input: &[f32], labels: &[bool], group: &str) {
        debug_assert_eq!(input.len(), self.input_len);
        self.inputs.extend_from_slice(input);
        self.label_sets.push(labels.to_vec());
        self.groups.push(group.to_string());
    }

    /// The values of example `i`.
    pub fn input(&self, i: usize) -> &[f32] {
        &self.inputs[i * self.input_len..(i + 1) * self.input_len]
    }

    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut out = Dataset::new(self.input_len);
        out.inputs.reserve(indices.len() * self.input_len);
        for &i in indices {
            match self.label_sets.get(i) {
                Some(set) => out.push_multi(self.input(i), set, &self.groups[i]),
                None => out.push(self.input(i), self.labels[i], &self.groups[i]),
            }
        }
        out
    }

    /// Examples per class (for label sets: examples having the class), for `classes`
    /// classes.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if l < classes {
                counts[l] += 1;
            }
        }
        for set in &self.label_sets {
            for (c, _) in set.iter().enumerate().filter(|(c, &on)| on && *c < classes) {
                counts[c] += 1;
            }
        }
        counts
    }
}

/// What early stopping and best-model selection watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Validation macro-averaged F1 (higher is better): fair to rare classes.
    ValMacroF1,
    /// Validation cross-entropy (lower is better).
    ValLoss,
    /// Validation accuracy (higher is better).
    ValAccuracy,
    /// Validation macro-averaged ROC AUC (higher is better; multi-label data).
    ValMacroAuc,
}

impl Monitor {
    fn score(self, record: &EpochRecord) -> f64 {
        match self {
            Monitor::ValMacroF1 => record.val_macro_f1,
            Monitor::ValLoss => -record.val_loss,
            Monitor::ValAccuracy => record.val_accuracy,
            Monitor::ValMacroAuc => record.val_macro_auc.unwrap_or(f64::NEG_INFINITY),
        }
    }
}

/// The learning rate over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `learning_rate` throughout (the study's setting).
    #[default]
    Constant,
    /// Cosine annealing from `learning_rate` down to 1 % of it at the last step of the last
    /// epoch (Loshchilov & Hutter 2017, without restarts). The rate depends only on the
    /// step's place in the run, so a resumed run continues the same curve.
    Cosine,
}

impl Schedule {
    /// The rate for step `step` (0-based) of `total` steps in the whole run.
    pub fn rate(self, base: f64, step: usize, total: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let floor = base * 0.01;
                let t = step as f64 / total.saturating_sub(1).max(1) as f64;
                floor + 0.5 * (base - floor) * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }
}

/// Training settings; the defaults are the study's (Adam, learning rate 4e-4, batch 64).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// How the learning rate changes over the run.
    #[serde(default)]
    pub schedule: Schedule,
    pub seed: u64,
    /// Stop after this many epochs without improvement of `monitor` (0: never stop early).
    pub patience: usize,
    pub monitor: Monitor,
    /// Augmentations applied to the signal part of each training example, drawn anew every
    /// epoch.
    pub augment: Vec<Augmentation>,
    /// At most this many steps per epoch (for quick runs); `None`: the whole training set.
    pub max_steps_per_epoch: Option<usize>,
    /// Values at the start of each example that augmentation may touch (the signal window;
    /// RR features after it are left alone).
    pub augment_len: usize,
    /// Leads one after the other in the augmented part: each lead is augmented on its own
    /// (a time shift never carries one lead into the next).
    pub leads: usize,
    /// `(width, height)` when examples are row-major images: image augmentations apply.
    pub image: Option<(usize, usize)>,
    /// Weight of each class in the cross-entropy (single-label data), e.g. from
    /// [`balancing_weights`]; `None`: all 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<Vec<f32>>,
}

/// Class weights that lift rare classes without letting a handful of examples dominate:
/// `sqrt(largest count / count)` (1 for the largest class, 10 for one 100 times rarer);
/// a class without examples gets 1.
pub fn balancing_weights(counts: &[usize]) -> Vec<f32> {
    let largest = counts.iter().copied().max().unwrap_or(0) as f64;
    counts
        .iter()
        .map(|&n| {
            if n == 0 {
                1.0
            } else {
                (largest / n as f64).sqrt() as f32
            }
        })
        .collect()
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 30,
            batch_size: 64,
            learning_rate: 4e-4,
            schedule: Schedule::Constant,
            seed: 7,
            patience: 5,
            monitor: Monitor::ValMacroF1,
            augment: Vec::new(),
            max_steps_per_epoch: None,
            augment_len: usize::MAX,
            leads: 1,
            image: None,
            class_weights: None,
        }
    }
}

/// Figures of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    /// Fraction of examples classified right; for multi-label data, of (example, label)
    /// decisions at probability 0.5.
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    /// Macro F1 (multi-label data: at probability 0.5).
    pub val_macro_f1: f64,
    /// Macro ROC AUC over the labels (multi-label data only).
    #[serde(default)]
    pub val_macro_auc: Option<f64>,
    pub steps: usize,
    /// Wall-clock seconds of the training steps (validation excluded).
    pub train_seconds: f64,
    /// Training examples per second.
    pub examples_per_second: f64,
}

/// The result of [`fit`].
#[derive(Debug)]
pub struct TrainOutcome {
    /// The network of the best epoch, in inference mode.
    pub best: Network,
    pub best_epoch: usize,
    pub history: Vec<EpochRecord>,
    pub stopped_early: bool,
    /// The epoch a resumed run continued after, if it resumed.
    pub resumed_after: Option<usize>,
}

/// Reports progress of [`fit`]; the engine draws a progress bar with it.
pub trait TrainObserver {
    /// One optimisation step of `steps` in `epoch` finished with `loss`.
    fn step(&mut self, _epoch: usize, _step: usize, _steps: usize, _loss: f64) {}
    /// An epoch finished and was validated.
    fn epoch(&mut self, _record: &EpochRecord, _improved: bool) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl TrainObserver for Quiet {}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training examples")]
    NoTrainingData,
    #[error("no validation examples: hold some out (validation fraction or records)")]
    NoValidationData,
    #[error("example length {got} does not match the network's input length {expected}")]
    InputLength { got: usize, expected: usize },
    #[error("label {label} is out of range for {classes} classes")]
    Label { label: usize, classes: usize },
    #[error("a label set has {got} labels for {classes} classes")]
    LabelSet { got: usize, classes: usize },
    #[error("training and validation data must both be single-label or both multi-label")]
    MixedLabels,
    #[error("invalid network: {0}")]
    Architecture(String),
    #[error("batch_size must be positive")]
    BatchSize,
    #[error("class_weights has {got} weights for {classes} classes, or a weight that is not positive")]
    ClassWeights { got: usize, classes: usize },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// What a checkpoint directory holds besides weights: enough to continue the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CheckpointState {
    /// Fingerprint of architecture, settings and data: a checkpoint of another run is ignored.
    fingerprint: u64,
    epochs_done: usize,
    best_epoch: usize,
    best_score: f64,
    history: Vec<EpochRecord>,
}

const LAST_WEIGHTS: &str = "last.bpk";
const BEST_WEIGHTS: &str = "best.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const STATE: &str = "state.json";

/// Trains a freshly initialised `architecture` on `train`, validating on `valid` after each
/// epoch. With `checkpoint`, the state after every epoch is kept there and a later call
/// with the same architecture, settings and data continues from it.
///
/// The backend's work runs on the current rayon pool, so a caller may run several fits at
/// once, each in a pool of its own (`ThreadPool::install`); each gives the weights it gives
/// alone, unless its architecture [draws random numbers while
/// training](Architecture::draws_while_training).
pub fn fit(
    architecture: &Architecture,
    train: &Dataset,
    valid: &Dataset,
    settings: &TrainSettings,
    checkpoint: Option<&Path>,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome, TrainError> {
    architecture.validate().map_err(TrainError::Architecture)?;
    check_data(architecture, train, valid, settings)?;
    let classes: Vec<String> = (0..architecture.classes()).map(|c| c.to_string()).collect();
    let device = Device::flex().autodiff();
    let fingerprint = fingerprint(architecture, settings, train, valid);
    // The weights are drawn in the first forward pass; until then no other training starts.
    let (mut network, drawing) = Network::init_seeded(architecture, &device, settings.seed);
    let mut drawing = Some(drawing);
    let mut optimizer = AdamConfig::new().init();
    let mut state = CheckpointState {
        fingerprint,
        epochs_done: 0,
        best_epoch: 0,
        best_score: f64::NEG_INFINITY,
        history: Vec::new(),
    };
    let mut resumed_after = None;
    if let Some(dir) = checkpoint {
        if let Some(saved) = read_state(dir)?.filter(|s| s.fingerprint == fingerprint) {
            network = load_weights(network, &dir.join(LAST_WEIGHTS))?;
            let record = OptimizerRecord::load(dir.join(OPTIMIZER)).map_err(|e| TrainError::Checkpoint {
                path: dir.join(OPTIMIZER),
                message: e.to_string(),
            })?;
            optimizer = optimizer.load_record(record);
            resumed_after = Some(saved.epochs_done);
            state = saved;
        }
    }

    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(settings.class_weights.clone())
        .init(&device);
    let multi_label = train.is_multi_label();
    let batch = settings.batch_size;
    let mut best_in_memory: Option<Network> = None;
    let mut stopped_early = patience_spent(&state, settings);
    for epoch in state.epochs_done + 1..=settings.epochs {
        if stopped_early {
            break;
        }
        let order = shuffled(
            train.len(),
            settings.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut augmenter = Augmenter::new(settings.augment.clone(), settings.seed.wrapping_add(epoch as u64));
        let n_classes = architecture.classes();
        let steps = order
            .len()
            .div_ceil(batch)
            .min(settings.max_steps_per_epoch.unwrap_or(usize::MAX));
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        for (step, indices) in order.chunks(batch).take(steps).enumerate() {
            let inputs = batch_of(train, indices, &mut augmenter, settings);
            let n = indices.len();
            let x = Tensor::<3>::from_data(TensorData::new(inputs, [n, 1, train.input_len]), &device);
            let logits = network.forward(x);
            drop(drawing.take());
            let loss = if multi_label {
                let sets: Vec<&Vec<bool>> = indices.iter().map(|&i| &train.label_sets[i]).collect();
                let flat: Vec<f32> = sets
                    .iter()
                    .flat_map(|s| s.iter().map(|&b| f32::from(u8::from(b))))
                    .collect();
                let predicted = logits
                    .clone()
                    .detach()
                    .to_data()
                    .try_to_vec::<f32>()
                    .expect("float logits");
                correct += predicted
                    .iter()
                    .zip(sets.iter().flat_map(|s| s.iter()))
                    .filter(|(&logit, &truth)| (logit >= 0.0) == truth)
                    .count();
                let targets = Tensor::<2>::from_data(TensorData::new(flat, [n, n_classes]), &device);
                binary_cross_entropy_with_logits(logits, targets)
            } else {
                let labels: Vec<i64> = indices.iter().map(|&i| train.labels[i] as i64).collect();
                let predicted = argmax_rows(&logits.clone().detach());
                correct += predicted.iter().zip(&labels).filter(|(p, t)| **p as i64 == **t).count();
                let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
                loss_fn.forward(logits, targets)
            };
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &network);
            let rate = settings.schedule.rate(
                settings.learning_rate,
                (epoch - 1) * steps + step,
                settings.epochs * steps,
            );
            network = optimizer.step(rate, network, grads);
            loss_sum += loss_value * n as f64;
            seen += if multi_label { n * n_classes } else { n };
            observer.step(epoch, step + 1, steps, loss_value);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let examples = steps.saturating_mul(batch).min(train.len());
        let validation = validate(&network.valid(), architecture, valid, &classes)?;
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / examples.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss: validation.loss,
            val_accuracy: validation.accuracy,
            val_macro_f1: validation.macro_f1,
            val_macro_auc: validation.macro_auc,
            steps,
            train_seconds,
            examples_per_second: examples as f64 / train_seconds.max(1e-9),
        };
        let score = settings.monitor.score(&record);
        let improved = score > state.best_score;
        if improved {
            state.best_score = score;
            state.best_epoch = epoch;
        }
        state.history.push(record.clone());
        state.epochs_done = epoch;
        observer.epoch(&record, improved);
        if let Some(dir) = checkpoint {
            write_checkpoint(dir, &network, optimizer.to_record(), &state, improved)?;
        } else if improved {
            // Without a checkpoint directory the best network is kept in memory.
            best_in_memory = Some(network.valid());
        }
        stopped_early = patience_spent(&state, settings);
    }
    drop(drawing);
    let best = match checkpoint {
        Some(dir) if state.best_epoch > 0 => {
            load_weights(Network::init(architecture, &Device::flex()), &dir.join(BEST_WEIGHTS))?.valid()
        }
        _ => best_in_memory.unwrap_or_else(|| network.valid()),
    };
    Ok(TrainOutcome {
        best,
        best_epoch: state.best_epoch,
        history: state.history,
        stopped_early,
        resumed_after,
    })
}

/// True when `patience` epochs have passed without improvement.
fn patience_spent(state: &CheckpointState, settings: &TrainSettings) -> bool {
    settings.patience > 0 && state.epochs_done >= state.best_epoch + settings.patience && state.epochs_done > 0
}

fn check_data(
    architecture: &Architecture,
    train: &Dataset,
    valid: &Dataset,
    settings: &TrainSettings,
) -> Result<(), TrainError> {
    if train.is_empty() {
        return Err(TrainError::NoTrainingData);
    }
    if valid.is_empty() {
        return Err(TrainError::NoValidationData);
    }
    if settings.batch_size == 0 {
        return Err(TrainError::BatchSize);
    }
    if let Some(weights) = &settings.class_weights {
        let classes = architecture.classes();
        if weights.len() != classes || weights.iter().any(|w| !(*w > 0.0 && w.is_finite())) {
            return Err(TrainError::ClassWeights {
                got: weights.len(),
                classes,
            });
        }
    }
    let expected = architecture.input_len();
    for data in [train, valid] {
        if data.input_len != expected {
            return Err(TrainError::InputLength {
                got: data.input_len,
                expected,
            });
        }
        let classes = architecture.classes();
        if let Some(&label) = data.labels.iter().find(|&&l| l >= classes) {
            return Err(TrainError::Label { label, classes });
        }
        if let Some(set) = data.label_sets.iter().find(|s| s.len() != classes) {
            return Err(TrainError::LabelSet {
                got: set.len(),
                classes,
            });
        }
    }
    if train.is_multi_label() != valid.is_multi_label() {
        return Err(TrainError::MixedLabels);
    }
    Ok(())
}

/// Mean binary cross-entropy of sigmoid outputs, computed from the logits in the stable
/// form `max(x, 0) - x·y + ln(1 + e^-|x|)`.
fn binary_cross_entropy_with_logits(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let softplus = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    (burn::tensor::activation::relu(logits.clone()) - logits * targets + softplus).mean()
}

/// Validation figures of one epoch.
struct Validation {
    loss: f64,
    accuracy: f64,
    macro_f1: f64,
    macro_auc: Option<f64>,
}

fn validate(
    network: &Network,
    architecture: &Architecture,
    data: &Dataset,
    classes: &[String],
) -> Result<Validation, TrainError> {
    if !data.is_multi_label() {
        let (loss, report) = evaluate(network, architecture, data, classes)?;
        return Ok(Validation {
            loss,
            accuracy: report.accuracy,
            macro_f1: report.macro_avg.f1,
            macro_auc: None,
        });
    }
    // Multi-label: binary cross-entropy, and decisions at probability 0.5.
    let probabilities = predict_with(network, architecture.input_len(), Output::Sigmoid, &data.inputs, 64)?;
    let (mut loss, mut right) = (0.0, 0usize);
    for (p, truth) in probabilities.iter().zip(&data.label_sets) {
        for (&q, &t) in p.iter().zip(truth) {
            right += usize::from((q >= 0.5) == t);
            let q = f64::from(q).clamp(1e-12, 1.0 - 1e-12);
            loss -= if t { q.ln() } else { (1.0 - q).ln() };
        }
    }
    let decisions = (data.len() * classes.len()).max(1) as f64;
    let half = vec![0.5; classes.len()];
    let report = MultiLabelReport::new(classes, &probabilities, &data.label_sets, &half)?;
    Ok(Validation {
        loss: loss / decisions,
        accuracy: right as f64 / decisions,
        macro_f1: report.macro_f1,
        macro_auc: report.macro_auc,
    })
}

/// Mean cross-entropy and the classification report of `network` on `data`.
pub fn evaluate(
    network: &Network,
    architecture: &Architecture,
    data: &Dataset,
    classes: &[String],
) -> Result<(f64, ClassificationReport), TrainError> {
    let probabilities = predict(network, architecture.input_len(), &data.inputs, 256)?;
    let mut confusion = ConfusionMatrix::new(classes.iter().cloned());
    let mut loss = 0.0;
    for (p, &truth) in probabilities.iter().zip(&data.labels) {
        loss -= f64::from(p[truth].max(1e-12)).ln();
        confusion.add(truth, argmax(p))?;
    }
    Ok((
        loss / data.len().max(1) as f64,
        ClassificationReport::from_confusion(&confusion),
    ))
}

/// Index of the largest value (the first of equal ones).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        )
        .0
}

fn argmax_rows(logits: &Tensor<2>) -> Vec<usize> {
    let [_, classes] = logits.dims();
    let values = logits.to_data().try_to_vec::<f32>().expect("float logits");
    values.chunks(classes).map(argmax).collect()
}

/// A seeded permutation of `0..n` (Fisher-Yates).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The inputs of one batch, augmented.
fn batch_of(data: &Dataset, indices: &[usize], augmenter: &mut Augmenter, settings: &TrainSettings) -> Vec<f32> {
    let mut inputs = Vec::with_capacity(indices.len() * data.input_len);
    for &i in indices {
        let start = inputs.len();
        inputs.extend_from_slice(data.input(i));
        if augmenter.steps().is_empty() {
            continue;
        }
        let example = &mut inputs[start..];
        match settings.image {
            Some((width, height)) => augmenter.apply_image(example, width, height),
            None => {
                let part = settings.augment_len.min(data.input_len);
                let lead_len = part / settings.leads.max(1);
                for lead in example[..part].chunks_mut(lead_len.max(1)) {
                    augmenter.apply(lead);
                }
            }
        }
    }
    inputs
}

/// FNV-1a over everything that determines a run, so a checkpoint is only resumed by the
/// run that wrote it.
fn fingerprint(architecture: &Architecture, settings: &TrainSettings, train: &Dataset, valid: &Dataset) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(serde_json::to_string(architecture).unwrap_or_default().as_bytes());
    let mut resumable = settings.clone();
    if resumable.schedule == Schedule::Constant {
        resumable.epochs = 0; // more epochs may be asked of a resumed run (a cosine curve depends on them)
    }
    feed(format!("{resumable:?}").as_bytes());
    for data in [train, valid] {
        feed(&(data.len() as u64).to_le_bytes());
        for i in 0..data.len() {
            match data.label_sets.get(i) {
                Some(set) => feed(&set.iter().map(|&b| u8::from(b)).collect::<Vec<u8>>()),
                None => feed(&(data.labels[i] as u64).to_le_bytes()),
            }
            // A sample of the values is enough to tell datasets apart, and fast.
            if i % 97 == 0 {
                for v in data.input(i) {
                    feed(&v.to_le_bytes());
                }
            }
        }
    }
    hash
}

fn checkpoint_error(path: PathBuf, message: impl ToString) -> TrainError {
    TrainError::Checkpoint {
        path,
        message: message.to_string(),
    }
}

fn read_state(dir: &Path) -> Result<Option<CheckpointState>, TrainError> {
    let path = dir.join(STATE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| checkpoint_error(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(checkpoint_error(path, e)),
    }
}

fn load_weights(network: Network, path: &Path) -> Result<Network, TrainError> {
    network
        .try_load_file(path)
        .map_err(|e| checkpoint_error(path.to_path_buf(), e))
}

/// Writes the checkpoint files, each through a temporary name; the state file goes last,
/// so a checkpoint interrupted half-way is still the previous, complete one.
fn write_checkpoint(
    dir: &Path,
    network: &Network,
    optimizer: OptimizerRecord,
    state: &CheckpointState,
    improved: bool,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| checkpoint_error(dir.to_path_buf(), e))?;
    let save = |p: &Path| network.clone().save_file(p).map_err(|e| e.to_string());
    replace(dir, LAST_WEIGHTS, save)?;
    if improved {
        replace(dir, BEST_WEIGHTS, save)?;
    }
    replace(dir, OPTIMIZER, |p| optimizer.save(p).map_err(|e| e.to_string()))?;
    let text = serde_json::to_string_pretty(state).expect("state serialises");
    replace(dir, STATE, |p| std::fs::write(p, &text).map_err(|e| e.to_string()))
}

/// Writes `dir/name` through a temporary file.
fn replace(dir: &Path, name: &str, write: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), TrainError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    write(&tmp).map_err(|e| checkpoint_error(tmp.clone(), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| checkpoint_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ResEcaNetConfig;

    #[test]
    fn cosine_schedule_falls_from_the_rate_to_one_percent() {
        let cosine = Schedule::Cosine;
        assert_eq!(cosine.rate(1e-3, 0, 100), 1e-3);
        assert!((cosine.rate(1e-3, 99, 100) - 1e-5).abs() < 1e-12);
        assert!((cosine.rate(1e-3, 99, 199) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-12);
        let rates: Vec<f64> = (0..100).map(|s| cosine.rate(1e-3, s, 100)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]));
        assert_eq!(Schedule::Constant.rate(1e-3, 99, 100), 1e-3);
    }

    /// Two separable classes: a positive or a negative bump in the middle of the window.
    fn toy(n: usize, seed: u64) -> Dataset {
        let len = 64;
        let mut rng = SplitMix64::new(seed);
        let mut data = Dataset::new(len);
        for i in 0..n {
            let label = i % 2;
            let sign = if label == 0 { 1.0 } else { -1.0 };
            let window: Vec<f32> = (0..len)
                .map(|t| {
                    let d = (t as f32 - 32.0) / 4.0;
                    sign * (-d * d).exp() + 0.3 * (rng.normal() as f32) + (t as f32 / 64.0)
                })
                .collect();
            data.push(&window, label, &format!("p{}", i % 5));
        }
        data
    }

    #[test]
    fn balancing_weights_lift_rare_classes_by_the_square_root() {
        let w = balancing_weights(&[10_000, 100, 0, 2_500]);
        assert_eq!(w, vec![1.0, 10.0, 1.0, 2.0]);
    }

    #[test]
    fn class_weights_must_fit_the_classes() {
        let mut train = Dataset::new(64);
        train.push(&[0.0; 64], 0, "a");
        let settings = TrainSettings {
            class_weights: Some(vec![1.0, 2.0, 3.0]),
            ..TrainSettings::default()
        };
        let err = check_data(&tiny(), &train, &train, &settings).unwrap_err();
        assert!(matches!(err, TrainError::ClassWeights { got: 3, classes: 2 }), "{err}");
    }

    fn tiny() -> Architecture {
        Architecture::Resecanet(ResEcaNetConfig {
            window: 64,
            classes: 2,
            widths: vec![4, 8],
            stem_kernel: 7,
            kernel: 3,
            rr_features: false,
            rr_reference: Default::default(),
            leads: 1,
            template: false,
        })
    }

    #[test]
    fn loss_falls_and_resume_continues_the_same_run() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let (train, valid) = (toy(128, 1), toy(64, 2));
        let settings = TrainSettings {
            epochs: 4,
            batch_size: 16,
            learning_rate: 1e-2,
            patience: 0,
            ..TrainSettings::default()
        };
        let dir = std::env::temp_dir().join(format!("ecgflow-train-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let full = fit(&tiny(), &train, &valid, &settings, None, &mut Quiet).unwrap();
        let first = &full.history[0];
        let last = full.history.last().unwrap();
        assert!(last.train_loss < first.train_loss, "{:?}", full.history);
        assert!(last.val_accuracy > 0.8, "{:?}", full.history);

        // Stop after two epochs, then ask for four: the run resumes after epoch 2.
        let two = TrainSettings {
            epochs: 2,
            ..settings.clone()
        };
        fit(&tiny(), &train, &valid, &two, Some(&dir), &mut Quiet).unwrap();
        let resumed = fit(&tiny(), &train, &valid, &settings, Some(&dir), &mut Quiet).unwrap();
        assert_eq!(resumed.resumed_after, Some(2));
        assert_eq!(resumed.history.len(), 4);
        // Same seed, same data: the resumed run ends where the uninterrupted one did.
        let (a, b) = (&resumed.history[3], &full.history[3]);
        assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} vs {b:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn trainings_at_once_give_the_weights_each_gives_alone() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let (train, valid) = (toy(128, 1), toy(64, 2));
        let settings = |seed| TrainSettings {
            epochs: 2,
            batch_size: 16,
            seed,
            ..TrainSettings::default()
        };
        let losses = |outcome: TrainOutcome| -> Vec<(f64, f64)> {
            outcome.history.iter().map(|r| (r.train_loss, r.val_loss)).collect()
        };
        let run = |seed| losses(fit(&tiny(), &train, &valid, &settings(seed), None, &mut Quiet).unwrap());
        let alone = [run(3), run(4)];
        // Each seeds the backend's one generator and draws its weights in its first step: the
        // other must not draw in between.
        let together = std::thread::scope(|scope| {
            [3, 4]
                .map(|seed| scope.spawn(move || run(seed)))
                .map(|t| t.join().unwrap())
        });
        assert_eq!(together, alone);
        assert_ne!(alone[0], alone[1], "the seeds give different networks");
    }

    #[test]
    fn label_sets_train_with_binary_cross_entropy() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        // Two independent labels: a positive bump (label 0) and a late negative dip (label 1).
        let toy_sets = |n: usize, seed: u64| {
            let mut rng = SplitMix64::new(seed);
            let mut data = Dataset::new(64);
            for i in 0..n {
                let labels = [i % 2 == 0, i % 3 == 0];
                let window: Vec<f32> = (0..64)
                    .map(|t| {
                        let bump = (-((t as f32 - 20.0) / 4.0).powi(2)).exp();
                        let dip = (-((t as f32 - 44.0) / 4.0).powi(2)).exp();
                        f32::from(u8::from(labels[0])) * bump - f32::from(u8::from(labels[1])) * dip
                            + 0.2 * rng.normal() as f32
                    })
                    .collect();
                data.push_multi(&window, &labels, &format!("p{}", i % 5));
            }
            data
        };
        let (train, valid) = (toy_sets(120, 1), toy_sets(60, 2));
        let settings = TrainSettings {
            epochs: 4,
            batch_size: 16,
            learning_rate: 1e-2,
            patience: 0,
            monitor: Monitor::ValMacroAuc,
            ..TrainSettings::default()
        };
        let out = fit(&tiny(), &train, &valid, &settings, None, &mut Quiet).unwrap();
        let (first, last) = (&out.history[0], out.history.last().unwrap());
        assert!(last.train_loss < first.train_loss, "{:?}", out.history);
        assert!(last.val_macro_auc.unwrap() > 0.8, "{:?}", out.history);
        // Data of the other kind, or label sets of the wrong width, are refused.
        let err = fit(&tiny(), &train, &toy(8, 1), &settings, None, &mut Quiet).unwrap_err();
        assert!(matches!(err, TrainError::MixedLabels), "{err}");
        let mut wide = toy_sets(8, 3);
        wide.label_sets[0].push(true);
        let err = fit(&tiny(), &wide, &valid, &settings, None, &mut Quiet).unwrap_err();
        assert!(err.to_string().contains("3 labels for 2 classes"), "{err}");
    }

    #[test]
    fn bad_data_is_refused_with_a_reason() {
        let _one_at_a_time = crate::models::seeded_device_lock();
        let data = toy(8, 1);
        let err = fit(
            &tiny(),
            &data,
            &Dataset::new(64),
            &TrainSettings::default(),
            None,
            &mut Quiet,
        )
        .unwrap_err();
        assert!(matches!(err, TrainError::NoValidationData));
        let mut wrong = toy(8, 1);
        wrong.labels[0] = 5;
        let err = fit(&tiny(), &wrong, &data, &TrainSettings::default(), None, &mut Quiet).unwrap_err();
        assert!(err.to_string().contains("label 5"));
    }

    #[test]
    fn shuffles_are_permutations_fixed_by_the_seed() {
        let a = shuffled(100, 3);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, shuffled(100, 3));
        assert_ne!(a, shuffled(100, 4));
    }
}
