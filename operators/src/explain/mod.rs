//! Explanations of a classifier's verdict: which parts of its input drove it.
//!
//! - [`gradcam`]: Grad-CAM, gradients of the class score through burn's autodiff to the last
//!   convolutional block, upsampled to the window or image (needs the burn network).
//! - [`shap`]: Kernel SHAP over [`Features`] (segments of a beat, patches of an image, lead ×
//!   time segments of a record), absent features filled from a background set of training
//!   inputs; the attributions sum to the output minus the expected output.
//! - [`lime`]: LIME over the same features: random on/off perturbations, a weighted ridge
//!   regression, its R² reported with the attributions.
//! - [`faithfulness`]: deletion and insertion curves against random orders, and the
//!   model-randomisation check.
//!
//! SHAP, LIME and the faithfulness curves see the model only through [`BatchClassifier`],
//! so they work with any runtime (tract, burn) and any model.

pub mod faithfulness;
pub mod features;
pub mod gradcam;
pub mod lime;
pub mod shap;

use serde::{Deserialize, Serialize};

pub use features::Features;

use crate::models::tract::OnnxClassifier;
use crate::models::TrainedModel;
use crate::types::{Beat, Tensor};

/// Why an explanation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The model failed on the perturbed inputs.
    #[error("the model failed: {0}")]
    Model(String),
    /// A setting or an input does not fit (the message names it).
    #[error("{0}")]
    Invalid(String),
}

/// A classifier seen from outside: inputs in, class probabilities out.
pub trait BatchClassifier {
    /// Values per input (the beat window, then any extra features such as RR intervals).
    fn input_len(&self) -> usize;
    /// Class probabilities for `inputs` (`n × input_len` values), one row per input.
    fn predict(&self, inputs: &[f32]) -> Result<Vec<Vec<f32>>, ExplainError>;
}

/// One method's explanation of one input's verdict (a beat's, a record's) for one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// `gradcam`, `shap` or `lime`.
    pub method: String,
    /// Index of the class explained (in the model's class order).
    pub class: usize,
    /// The model's probability of that class for the input.
    pub probability: f32,
    /// One value per sample of the beat window, or per value of a record's input (pixel of
    /// its image, sample of its leads). Feature methods repeat each feature's value over its
    /// samples.
    pub per_sample: Vec<f32>,
    /// Feature methods (SHAP, LIME): each feature's index ranges and value, in the order of
    /// the [`Features`] explained; empty for Grad-CAM.
    pub features: Vec<FeatureValue>,
    /// SHAP: the expected output over the background set (the attributions sum to
    /// `probability - base_value`). LIME: the regression's intercept. Grad-CAM: none.
    pub base_value: Option<f32>,
    /// LIME: weighted R² of the local linear fit. Others: none.
    pub fit_r2: Option<f32>,
}

/// A feature's `[start, end)` index ranges (one for a segment of a beat) and its
/// attribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureValue {
    pub ranges: Vec<(usize, usize)>,
    pub value: f32,
}

/// A beat or a record, with its prediction, and one method's explanation of it: what flows
/// out of the engine's `explain` transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub subject: Subject,
    /// Name of the class explained (the model's class names).
    pub class_name: String,
    pub attribution: Attribution,
}

/// What was explained: the attribution has one value per value of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// A beat (the attribution covers its window).
    Beat(Beat),
    /// A whole record as an image model saw it: `[height, width]` grey levels.
    Image(Tensor),
    /// A whole record as a signal model saw it: `[leads, samples]`, the leads named, at `fs` Hz.
    Leads {
        tensor: Tensor,
        leads: Vec<String>,
        fs: f64,
    },
}

impl Explanation {
    /// The stream (record) the explained input belongs to.
    pub fn stream(&self) -> &str {
        match &self.subject {
            Subject::Beat(b) => &b.stream,
            Subject::Image(t) | Subject::Leads { tensor: t, .. } => &t.stream,
        }
    }

    /// The beat explained, for beat models.
    pub fn beat(&self) -> Option<&Beat> {
        match &self.subject {
            Subject::Beat(b) => Some(b),
            _ => None,
        }
    }

    /// The prediction of the model that classified the input upstream, when there was one.
    pub fn prediction(&self) -> Option<&crate::types::Prediction> {
        match &self.subject {
            Subject::Beat(b) => b.prediction.as_ref(),
            Subject::Image(t) | Subject::Leads { tensor: t, .. } => t.prediction.as_ref(),
        }
    }
}

/// The value-wise mean of `windows` (`n × window` values): LIME's background input and the
/// deletion baseline. Zeros when there are none.
pub fn mean_window(windows: &[f32], window: usize) -> Vec<f32> {
    let mut mean = vec![0f32; window];
    let n = windows.len() / window.max(1);
    for w in windows.chunks_exact(window) {
        for (m, &v) in mean.iter_mut().zip(w) {
            *m += v / n as f32;
        }
    }
    mean
}

/// Perturbed inputs sent to a runtime per call: burn runs batches of 16 to 64 beats fastest
/// on the CPU (tract runs beats one at a time whatever the batch).
pub const PERTURBATION_BATCH: usize = 64;

impl BatchClassifier for crate::models::TrainedModel {
    fn input_len(&self) -> usize {
        self.card.architecture.input_len()
    }

    fn predict(&self, inputs: &[f32]) -> Result<Vec<Vec<f32>>, ExplainError> {
        TrainedModel::predict(self, inputs, PERTURBATION_BATCH).map_err(|e| ExplainError::Model(e.to_string()))
    }
}

impl BatchClassifier for crate::models::tract::OnnxClassifier {
    fn input_len(&self) -> usize {
        OnnxClassifier::input_len(self)
    }

    fn predict(&self, inputs: &[f32]) -> Result<Vec<Vec<f32>>, ExplainError> {
        OnnxClassifier::predict(self, inputs, PERTURBATION_BATCH).map_err(|e| ExplainError::Model(e.to_string()))
    }
}
