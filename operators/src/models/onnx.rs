//! Export of trained networks to ONNX (burn-onnx's forward-capture exporter, opset 18), with
//! a dynamic batch axis named `N`, so that tract, onnxruntime or any ONNX runtime can run
//! them. The graph's one input is `[N, 1, input_len]` (raw mV window, then RR features
//! when the model uses them) and its one output the class logits `[N, classes]`; softmax is
//! left to the runtime. The exporter names them (`tensor_…`): read the names from the
//! runtime's session rather than assuming them.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter};

use super::{ModelError, Network, TrainedModel};

/// Writes `model` as an ONNX file at `path` (through a temporary file).
pub fn export_onnx(model: &TrainedModel, path: &Path) -> Result<(), ModelError> {
    let bytes = onnx_bytes(&model.network, model.card.architecture.input_len())?;
    let tmp = path.with_extension("onnx.tmp");
    let io = |error| ModelError::Io {
        path: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The ONNX protobuf of `network` for inputs of `input_len` values per example.
pub fn onnx_bytes(network: &Network, input_len: usize) -> Result<Vec<u8>, ModelError> {
    let device = Device::flex();
    // Two batch sizes tell the exporter which axis is dynamic.
    let sample = Tensor::<3>::zeros([1, 1, input_len], &device);
    let validation = Tensor::<3>::zeros([3, 1, input_len], &device);
    let spec = InputSpec::new([AxisSpec::dynamic("N"), AxisSpec::Static, AxisSpec::Static]);
    // The exporter moves batch norm's running statistics onto its capture device, and clones
    // share them; `valid` gives a copy with its own, so `network` stays usable.
    let network = network.valid();
    let model = OnnxExporter::new()
        .export_dynamic(&network, sample, validation, &[spec], |net, x| net.forward(x))
        .map_err(|e| ModelError::Export(format!("{e:?}")))?;
    Ok(model.into_bytes())
}
