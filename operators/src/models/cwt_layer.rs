//! The continuous wavelet transform as a network's fixed first layer.
//!
//! The CWT of a window is linear in its samples, so the scalograms that [`crate::cwt::Cwt`]
//! computes (pywt's definition) are a matrix product: `map = x · W`, with `W` the
//! `len × (scales · len)` matrix whose row `j` is the map of the unit impulse at sample `j`.
//! A network that starts with this product takes raw beats, like ResECANet, and sees the
//! study's 38 × 259 scalograms: the model transform, `eval beats`, tract and the explainers
//! need nothing new, and the ONNX file carries the transform with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::cwt::{study_scales, Cwt, Wavelet};

/// Which CWT the layer computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CwtFrontEnd {
    /// Scales, in map row order (the study: 1, 2, ..., 38).
    pub scales: Vec<f64>,
    /// `mexh` (Mexican hat, the study's) or `morl` (real Morlet), as pywt names them.
    pub wavelet: String,
}

impl CwtFrontEnd {
    /// The study's transform: Mexican hat, scales 1 to 38.
    pub fn study() -> Self {
        CwtFrontEnd {
            scales: study_scales(),
            wavelet: "mexh".to_owned(),
        }
    }

    fn wavelet(&self) -> Result<Wavelet, String> {
        match self.wavelet.as_str() {
            "mexh" => Ok(Wavelet::MexicanHat),
            "morl" => Ok(Wavelet::Morlet),
            other => Err(format!("wavelet {other:?} (mexh or morl)")),
        }
    }

    /// Checks the wavelet and scales for windows of `len` samples.
    pub fn validate(&self, len: usize) -> Result<(), String> {
        Cwt::new(self.wavelet()?, &self.scales, len)
            .map(|_| ())
            .map_err(|e| format!("cwt: {e}"))
    }

    /// The `len × (scales · len)` matrix of the transform for windows of `len` samples,
    /// computed once per process for each transform and length.
    pub fn matrix(&self, len: usize) -> Result<Arc<Vec<f32>>, String> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<f32>>>>> = OnceLock::new();
        let key = format!("{}:{:?}:{len}", self.wavelet, self.scales);
        let cache = CACHE.get_or_init(Default::default);
        if let Some(m) = cache.lock().expect("cwt cache").get(&key) {
            return Ok(m.clone());
        }
        let mut cwt = Cwt::new(self.wavelet()?, &self.scales, len).map_err(|e| format!("cwt: {e}"))?;
        let map_len = cwt.map_len();
        let mut matrix = vec![0f32; len * map_len];
        let mut impulse = vec![0f32; len];
        for (j, row) in matrix.chunks_mut(map_len).enumerate() {
            impulse[j] = 1.0;
            cwt.transform(&impulse, row).map_err(|e| format!("cwt: {e}"))?;
            impulse[j] = 0.0;
        }
        let matrix = Arc::new(matrix);
        cache.lock().expect("cwt cache").insert(key, matrix.clone());
        Ok(matrix)
    }

    /// Scalograms `[batch, scales · len]` (row-major `scales × len` each) of windows
    /// `[batch, len]`.
    pub fn forward(&self, windows: Tensor<2>) -> Tensor<2> {
        let len = windows.dims()[1];
        let matrix = self
            .matrix(len)
            .expect("the CWT front end was validated with the network");
        let w = Tensor::<2>::from_data(
            TensorData::new(matrix.to_vec(), [len, self.scales.len() * len]),
            &windows.device(),
        );
        windows.matmul(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use burn::tensor::Device;

    #[test]
    fn the_layer_computes_the_same_maps_as_the_cwt() {
        let front = CwtFrontEnd {
            scales: vec![1.0, 2.5, 7.0],
            wavelet: "mexh".to_owned(),
        };
        let len = 50;
        let mut rng = SplitMix64::new(3);
        let signals: Vec<f32> = (0..2 * len).map(|_| rng.normal() as f32).collect();
        let mut cwt = Cwt::new(Wavelet::MexicanHat, &front.scales, len).unwrap();
        let mut expected = vec![0f32; 2 * cwt.map_len()];
        cwt.transform_batch(&signals, &mut expected).unwrap();
        let x = Tensor::<2>::from_data(TensorData::new(signals, [2, len]), &Device::flex());
        let got = front.forward(x).into_data().try_to_vec::<f32>().unwrap();
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-4, "{g} vs {e}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let mut front = CwtFrontEnd::study();
        front.wavelet = "haar".into();
        assert!(front.validate(259).unwrap_err().contains("haar"));
        let front = CwtFrontEnd {
            scales: vec![],
            wavelet: "mexh".into(),
        };
        assert!(front.validate(259).is_err());
    }
}
