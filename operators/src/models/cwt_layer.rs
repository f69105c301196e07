//! The continuous wavelet transform as a network's fixed first layer.
//!
//! The CWT of a window is linear in its samples, so the scalograms that [`crate::cwt::Cwt`]
//! computes (pywt's definition) are one fixed linear map, computed once from the maps of
//! unit impulses.
//! A network that starts with this product takes raw beats, like ResECANet, and sees the
//! study's 38 × 259 scalograms: the model transform, `eval beats`, tract and the explainers
//! need nothing new, and the ONNX file carries the transform with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
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

    /// The transform's kernel for windows of `len` samples: `scales · len` rows of `len`
    /// values, row `c` mapping a window to scalogram value `c` (the map of the unit impulse
    /// at sample `j` is column `j`). Computed once per process for each transform and length.
    pub fn kernel(&self, len: usize) -> Result<Arc<Vec<f32>>, String> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<f32>>>>> = OnceLock::new();
        let key = format!("{}:{:?}:{len}", self.wavelet, self.scales);
        let cache = CACHE.get_or_init(Default::default);
        if let Some(k) = cache.lock().expect("cwt cache").get(&key) {
            return Ok(k.clone());
        }
        let mut cwt = Cwt::new(self.wavelet()?, &self.scales, len).map_err(|e| format!("cwt: {e}"))?;
        let maps = cwt.map_len();
        let mut kernel = vec![0f32; maps * len];
        let mut impulse = vec![0f32; len];
        let mut map = vec![0f32; maps];
        for j in 0..len {
            impulse[j] = 1.0;
            cwt.transform(&impulse, &mut map).map_err(|e| format!("cwt: {e}"))?;
            impulse[j] = 0.0;
            for (c, &v) in map.iter().enumerate() {
                kernel[c * len + j] = v;
            }
        }
        let kernel = Arc::new(kernel);
        cache.lock().expect("cwt cache").insert(key, kernel.clone());
        Ok(kernel)
    }

    /// Scalograms `[batch, 1, scales · len]` (row-major `scales × len` each) of windows
    /// `[batch, 1, len]`.
    ///
    /// One convolution rather than a matrix product: a 1 × `len` kernel with `scales · len`
    /// output channels on the window as a `[batch, 1, 1, len]` image gives
    /// `[batch, scales · len, 1, 1]`, which burn-onnx exports with a dynamic batch (burn
    /// writes a batched matrix product with `swap_dims`, which the exporter does not take).
    pub fn forward(&self, windows: Tensor<3>) -> Tensor<3> {
        let [batch, _, len] = windows.dims();
        let maps = self.scales.len() * len;
        let kernel = self
            .kernel(len)
            .expect("the CWT front end was validated with the network");
        let weight = Tensor::<4>::from_data(TensorData::new(kernel.to_vec(), [maps, 1, 1, len]), &windows.device());
        let image: Tensor<4> = windows.reshape([batch, 1, 1, len]);
        conv2d(image, weight, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1)).reshape([batch, 1, maps])
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
        let x = Tensor::<3>::from_data(TensorData::new(signals, [2, 1, len]), &Device::flex());
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
