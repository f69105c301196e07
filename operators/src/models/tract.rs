//! Inference with tract, a pure-Rust ONNX runtime: the deployable counterpart of the burn
//! networks (no training code, no burn at run time), and a way to run beat classifiers made
//! by other tools.
//!
//! An [`OnnxClassifier`] takes what `ecgflow export` writes (one input `[N, 1, input_len]`
//! f32, one output of class logits `[N, classes]`), or any ONNX file of that shape: the batch
//! axis is declared symbolic (`N`) and the shape is checked when the file is loaded, and
//! whatever does not fit (a channels-last `[N, L, 1]` Keras input, two inputs, a rank-3
//! output, f64 tensors...) is reported with the file's name rather than failing at the first
//! beat. The beats then run one at a time through a plan optimised for that fixed size (see
//! [`OnnxClassifier::predict`] for the measurements), which tract runs much faster than a
//! plan for any batch size. Before tract optimises it, the graph is rewritten where tract has
//! a faster equivalent ([`optimize`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::axes::AxesMapping;
use tract_onnx::tract_core::ops::array::Slice;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_hir::infer::Factoid;

use super::{ModelCard, Output};

/// Why an ONNX classifier could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not an ONNX model: {message}")]
    NotOnnx { path: PathBuf, message: String },
    /// The graph's inputs or outputs are not those of a beat classifier.
    #[error("{path}: {message}")]
    Shape { path: PathBuf, message: String },
    #[error("{path}: tract cannot prepare the model: {message}")]
    Prepare { path: PathBuf, message: String },
    #[error("{path}: does not match its model card {card}: {message}")]
    Card {
        path: PathBuf,
        card: PathBuf,
        message: String,
    },
    #[error("{path}: inference failed: {message}")]
    Run { path: PathBuf, message: String },
    #[error("input has {got} values; the ONNX model takes {expected} values per beat")]
    InputLength { got: usize, expected: usize },
}

/// A beat classifier loaded from an ONNX file, run by tract one beat at a time.
///
/// It is `Send + Sync`: one classifier can serve many threads, each call to
/// [`predict`](Self::predict) runs in its own state.
#[derive(Debug, Clone)]
pub struct OnnxClassifier {
    path: PathBuf,
    /// The plan for a batch of one beat.
    plan: Arc<TypedSimplePlan>,
    input_len: usize,
    classes: usize,
    /// How logits become probabilities.
    output: Output,
}

impl OnnxClassifier {
    /// Loads, checks and optimises the ONNX file at `path`.
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let bytes = std::fs::read(path).map_err(|error| OnnxError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let shape = |message: String| OnnxError::Shape {
            path: path.to_path_buf(),
            message,
        };
        let not_onnx = |message: String| OnnxError::NotOnnx {
            path: path.to_path_buf(),
            message,
        };
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| not_onnx(format!("{e:#}")))?;
        if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
            return Err(not_onnx("the file holds no graph".to_owned()));
        }
        let dir = path.parent().and_then(Path::to_str);
        let parsed = onnx.parse(&proto, dir).map_err(|e| not_onnx(format!("{e:#}")))?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(not_onnx(format!(
                "the graph uses undefined values {:?}",
                parsed.unresolved_inputs
            )));
        }
        let mut model = parsed.model;

        let inputs = model.input_outlets().map_err(|e| not_onnx(format!("{e:#}")))?.to_vec();
        let outputs = model.output_outlets().map_err(|e| not_onnx(format!("{e:#}")))?.to_vec();
        if inputs.len() != 1 || outputs.len() != 1 {
            return Err(shape(format!(
                "has {} input(s) and {} output(s); a beat classifier has one input [N, 1, L] and one output [N, classes]",
                inputs.len(),
                outputs.len()
            )));
        }
        let input_name = model.node(inputs[0].node).name.clone();
        let declared = model.input_fact(0).map_err(|e| not_onnx(format!("{e:#}")))?.clone();
        let input_len = declared_input_len(&declared).map_err(|why| {
            shape(format!(
                "input `{input_name}` is {}; ecgflow expects [N, 1, L] f32 (batch, one channel, L values per beat){why}",
                describe(&declared)
            ))
        })?;

        // A symbolic batch axis: the model is checked for every batch size, then the plan is
        // made for batches of one.
        let n = model.sym("N");
        let fact = f32::fact(tract_onnx::tract_core::dims!(n, 1, input_len));
        let prepare = |message: String| {
            let fixed = declared
                .shape
                .dim(0)
                .and_then(|d| d.concretize())
                .and_then(|d| d.to_i64().ok());
            let hint = match fixed {
                Some(b) => format!(" (the file fixes the batch axis at {b}; export it with a dynamic batch axis)"),
                None => String::new(),
            };
            OnnxError::Prepare {
                path: path.to_path_buf(),
                message: format!("{message}{hint}"),
            }
        };
        model
            .set_input_fact(0, fact.into())
            .map_err(|e| prepare(format!("{e:#}")))?;
        let typed = model.into_typed().map_err(|e| prepare(format!("{e:#}")))?;
        let output = typed.output_outlets().map_err(|e| prepare(format!("{e:#}")))?[0];
        let output_name = typed
            .outlet_label(output)
            .map_or_else(|| typed.node(output.node).name.clone(), str::to_owned);
        let out = typed.output_fact(0).map_err(|e| prepare(format!("{e:#}")))?.clone();
        let classes = match out.shape.dims() {
            [batch, classes] if *batch == TDim::from(n.clone()) && out.datum_type == f32::datum_type() => {
                classes.to_i64().ok().filter(|&c| c > 0).map(|c| c as usize)
            }
            _ => None,
        }
        .ok_or_else(|| {
            let dims: Vec<String> = out.shape.dims().iter().map(TDim::to_string).collect();
            shape(format!(
                "output `{output_name}` is [{}] {:?} for an input [N, 1, {input_len}]; ecgflow expects [N, classes] f32 (class logits)",
                dims.join(", "),
                out.datum_type
            ))
        })?;
        let one = HashMap::from([(n, TDim::Val(1))]);
        let plan = typed
            .set_symbols(&one)
            .and_then(optimize)
            .and_then(|m| m.into_runnable())
            .map_err(|e| prepare(format!("{e:#}")))?;
        Ok(OnnxClassifier {
            path: path.to_path_buf(),
            plan,
            input_len,
            classes,
            output: Output::Softmax,
        })
    }

    /// The same classifier reporting `output` of the logits (softmax by default; a
    /// multi-label model's card says sigmoid).
    pub fn with_output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Values per beat (`L` of the input `[N, 1, L]`).
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Number of classes (the width of the output).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Checks that `card` (read from `card_path`) describes this network: the same values
    /// per beat and the same number of classes.
    pub fn check_card(&self, card: &ModelCard, card_path: &Path) -> Result<(), OnnxError> {
        let mismatch = |message: String| OnnxError::Card {
            path: self.path.clone(),
            card: card_path.to_path_buf(),
            message,
        };
        let card_len = card.architecture.input_len();
        if card_len != self.input_len {
            return Err(mismatch(format!(
                "the ONNX model takes {} values per beat, the card's architecture {card_len}",
                self.input_len
            )));
        }
        if card.classes.len() != self.classes || card.architecture.classes() != self.classes {
            return Err(mismatch(format!(
                "the ONNX model has {} outputs, the card {} class names ({}) and {} network outputs",
                self.classes,
                card.classes.len(),
                card.classes.join(", "),
                card.architecture.classes()
            )));
        }
        match card.decision_problem() {
            Some(message) => Err(mismatch(message)),
            None => Ok(()),
        }
    }

    /// Class probabilities (softmax of the logits, or sigmoid: see [`Self::with_output`]) for `inputs` (`n × input_len` values: each
    /// beat's window, then its template and RR features when the model uses them). The same contract as
    /// [`TrainedModel::predict`](super::TrainedModel::predict), except that the beats run one
    /// at a time whatever `_batch` is: with tract that is the fastest at every batch size.
    /// Only for a batch of one does tract convolve with lazy im2col (larger batches
    /// materialise im2col buffers and leave more element-wise ops unfused), and one beat's
    /// activations stay in cache. Measured on one thread (x86-64 with AVX-512, 2 MiB L2),
    /// classifying 512 beats in runs of a fixed size, beats/s, the beat-only `resecanet-ds1`
    /// of an earlier version, before the rewrites of [`optimize`] (`resecanet-study` alike):
    ///
    /// | beats per run          |    1 |    4 |   16 |   64 |  256 |
    /// |------------------------|------|------|------|------|------|
    /// | plan for that size     | 2800 | 2610 | 2670 | 2560 | 1860 |
    /// | plan for any size `N`  | 1730 | 2250 | 2430 | 2420 | 1780 |
    pub fn predict(&self, inputs: &[f32], _batch: usize) -> Result<Vec<Vec<f32>>, OnnxError> {
        let len = self.input_len;
        if !inputs.len().is_multiple_of(len) {
            return Err(OnnxError::InputLength {
                got: inputs.len(),
                expected: len,
            });
        }
        let run = |message: String| OnnxError::Run {
            path: self.path.clone(),
            message,
        };
        let mut out = Vec::with_capacity(inputs.len() / len);
        if inputs.is_empty() {
            return Ok(out);
        }
        let mut state = self.plan.spawn().map_err(|e| run(format!("{e:#}")))?;
        for beat in inputs.chunks(len) {
            let x = Tensor::from_shape(&[1, 1, len], beat).map_err(|e| run(format!("{e:#}")))?;
            let result = state.run(tvec!(x.into_tvalue())).map_err(|e| run(format!("{e:#}")))?;
            let logits = result[0]
                .to_plain_array_view::<f32>()
                .map_err(|e| run(format!("{e:#}")))?;
            if logits.shape() != [1, self.classes] {
                return Err(run(format!(
                    "output of shape {:?} for one beat; expected [1, {}]",
                    logits.shape(),
                    self.classes
                )));
            }
            out.push(match self.output {
                Output::Softmax => softmax(logits.iter().copied()),
                Output::Sigmoid => logits.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect(),
            });
        }
        Ok(out)
    }
}

/// `model` optimised as [`OnnxClassifier`] runs it: rewritten into forms tract runs faster
/// (see [`rewrite_for_tract`]), then optimised by tract without its direct spatial
/// convolution, which it picks for 1 × k convolutions over rows of 128 points or more and
/// which runs those of ResECANet two to three times slower than im2col and a matrix product.
pub fn optimize(mut model: TypedModel) -> TractResult<TypedModel> {
    rewrite_for_tract(&mut model)?;
    let scope = tract_onnx::tract_core::knobs::KnobScope::new([("TRACT_DISABLE_DIRECT_SPATIAL", "true")])?;
    scope.enter(|| model.into_optimized())
}

/// Replaces, in place, the nodes that tract runs slowly (or, for long sums, imprecisely) by
/// equivalent ones it runs well. The results are the same up to float rounding. The
/// rewrites: products by a selection matrix become slices, one-channel convolutions products
/// by a banded matrix, a convolution that splits one channel into several (`[N, 1, 2 × L]`
/// to `[N, 2, L]`) slices, the zero padding of the other convolutions a concatenation with
/// zeros, and a sum over a long axis a sum in two steps (for precision, not speed). On the
/// shipped `resecanet-ds1` (one beat, one thread) the splitting and padding rewrites took
/// tract from ≈ 0.42 to ≈ 0.37 ms per beat: the splitting convolution cost ≈ 26 µs as a
/// 2 × 2 × 259 matrix product padded to tract's 40-row tile, the `Pad` copies tract puts
/// before its im2col ≈ 30 µs in all, the concatenations ≈ 8 µs.
pub fn rewrite_for_tract(model: &mut TypedModel) -> TractResult<()> {
    // A patch appends nodes and leaves the ones it replaces unconnected: the ids taken here
    // stay valid while the patches are applied.
    type Rewrite = fn(&TypedModel, &TypedNode) -> TractResult<Option<TypedModelPatch>>;
    let rewrites: [Rewrite; 5] = [
        selection_as_slice,
        single_channel_conv_as_matmul,
        identity_conv_as_slices,
        conv_padding_as_concat,
        long_sum_in_two_steps,
    ];
    for id in 0..model.nodes().len() {
        for rewrite in rewrites {
            if let Some(patch) = rewrite(model, model.node(id))? {
                patch.apply(model)?;
                break;
            }
        }
    }
    Ok(())
}

/// Sums shorter than this are left to tract as they are.
const LONG_SUM: usize = 4096;

/// A sum over one long axis (`n ≥ LONG_SUM` values, e.g. the variance of a 224 × 224 image
/// in a network's z-score) as a sum over blocks of `f` values (`f` the largest divisor of `n`
/// up to √n, at least 16), then a sum of the block sums. tract adds each of its SIMD lanes'
/// values one after another, which over 50 176 squares lost 7e-4 of the sum on a CPU with
/// 8-lane AVX2 (3.7e-4 off burn's and onnxruntime's probabilities for `ptbxl-image`); in
/// two steps each running sum holds a few hundred values.
fn long_sum_in_two_steps(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    use tract_onnx::tract_core::ops::change_axes::AxisOp;
    use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
    let Some(reduce) = node.op_as::<Reduce>() else {
        return Ok(None);
    };
    let [axis] = reduce.axes[..] else {
        return Ok(None);
    };
    let input = model.outlet_fact(node.inputs[0])?;
    if reduce.reducer != Reducer::Sum || input.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let Some(n) = input.shape[axis]
        .to_i64()
        .ok()
        .map(|n| n as usize)
        .filter(|&n| n >= LONG_SUM)
    else {
        return Ok(None);
    };
    let Some(block) = (16..=n.isqrt()).rev().find(|f| n % f == 0) else {
        return Ok(None);
    };
    let mut patch = TypedModelPatch::default();
    let x = patch.tap_model(model, node.inputs[0])?;
    let split = AxisOp::Reshape(axis, tvec![n.into()], tvec![(n / block).into(), block.into()]);
    let x = patch.wire_node(format!("{}.blocks", node.name), split, &[x])?[0];
    let within = Reduce::new(tvec![axis + 1], Reducer::Sum);
    let x = patch.wire_node(format!("{}.within", node.name), within, &[x])?[0];
    let x = patch.wire_node(format!("{}.squeeze", node.name), AxisOp::Rm(axis + 1), &[x])?[0];
    let across = Reduce::new(tvec![axis], Reducer::Sum);
    let y = patch.wire_node(&node.name, across, &[x])?[0];
    patch.shunt_outside(model, node.id.into(), y)?;
    Ok(Some(patch))
}

/// A product by a constant 0/1 matrix that picks a run of consecutive values (`x · S` with
/// `S[start + j, j] = 1`: burn's export of slicing) as the slice it is, a copy rather than a
/// matrix product over every input value.
fn selection_as_slice(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    let Some(op) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if op.q_params.is_some()
        || node.inputs.len() != 2
        || model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type()
    {
        return Ok(None);
    }
    let Some(selector) = &model.outlet_fact(node.inputs[1])?.konst else {
        return Ok(None);
    };
    let (Some(axis), Some((start, len))) = (contracted_axis(&op.axes), selected_run(selector)) else {
        return Ok(None);
    };
    let mut patch = TypedModelPatch::default();
    let x = patch.tap_model(model, node.inputs[0])?;
    let y = patch.wire_node(&node.name, Slice::new(axis, start, start + len), &[x])?[0];
    patch.shunt_outside(model, node.id.into(), y)?;
    Ok(Some(patch))
}

/// The axis of `a` contracted by the product `a · b` of a tensor and a matrix whose output is
/// `a` with that axis replaced by the matrix's other one (`mk,kn->mn`, `abk,kn->abn`...).
fn contracted_axis(axes: &AxesMapping) -> Option<usize> {
    let text = axes.to_string();
    let (inputs, output) = text.split_once("->")?;
    let (a, b) = inputs.split_once(',')?;
    let &[k, n] = b.chars().collect::<Vec<_>>().as_slice() else {
        return None;
    };
    let replaced: String = a.chars().map(|c| if c == k { n } else { c }).collect();
    let once = a.matches(k).count() == 1 && !a.contains(n);
    if once && replaced == output {
        a.chars().position(|c| c == k)
    } else {
        None
    }
}

/// `(start, len)` when `s` is an f32 matrix `[rows, len]` with `s[start + j, j] = 1` and zeros
/// elsewhere: multiplying by it picks values `start..start + len`.
fn selected_run(s: &Tensor) -> Option<(usize, usize)> {
    if s.datum_type() != f32::datum_type() || s.rank() != 2 || s.shape()[1] == 0 {
        return None;
    }
    let view = s.to_plain_array_view::<f32>().ok()?;
    let (rows, len) = (s.shape()[0], s.shape()[1]);
    let start = (0..rows).find(|&r| view[[r, 0]] == 1.0)?;
    let picked = |r: usize, c: usize| r == start + c;
    let exact = view
        .indexed_iter()
        .all(|(ix, &v)| v == if picked(ix[0], ix[1]) { 1.0 } else { 0.0 });
    (start + len <= rows && exact).then_some((start, len))
}

/// The most entries of the banded matrix that replaces a one-channel convolution (256 × 256):
/// beyond that the product does more work than the convolution saves.
const MAX_BAND_ENTRIES: usize = 256 * 256;

/// A 1D convolution from one channel to one (ECA's convolution across channels, laid along
/// the time axis) as a product by the constant banded matrix it is. For vectors this short
/// tract's convolution costs far more in padding, im2col and packing than the product.
fn single_channel_conv_as_matmul(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let one_to_one = spec.rank() == 1 && spec.input_channels == 1 && spec.output_channels == 1;
    if !one_to_one || conv.q_params.is_some() || conv.group != 1 || spec.data_format != DataFormat::NCHW {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let kernel = &model.outlet_fact(node.inputs[1])?.konst;
    let bias = &model.outlet_fact(node.inputs[2])?.konst;
    let len = input
        .shape
        .last()
        .and_then(|d| d.to_i64().ok())
        .and_then(|d| usize::try_from(d).ok());
    let (Some(kernel), Some(bias), Some(len)) = (kernel, bias, len) else {
        return Ok(None);
    };
    if input.datum_type != f32::datum_type() || kernel.datum_type() != f32::datum_type() || bias.len() != 1 {
        return Ok(None);
    }
    let padded = &spec.computed_padding(&[len])[0];
    let out_len = padded.convoluted;
    if len * out_len > MAX_BAND_ENTRIES {
        return Ok(None);
    }
    // out[i] = bias + Σ_j w[j] · x[i · stride + j · dilation - pad_before]
    let taps: Vec<f32> = kernel.to_plain_array_view::<f32>()?.iter().copied().collect();
    let mut band = tract_ndarray::Array2::<f32>::zeros((len, out_len));
    for i in 0..out_len {
        for (j, &w) in taps.iter().enumerate() {
            let at = (i * spec.stride(0) + j * spec.dilation(0)).checked_sub(padded.pad_before);
            if let Some(at) = at.filter(|&at| at < len) {
                band[[at, i]] += w;
            }
        }
    }
    let mut patch = TypedModelPatch::default();
    let x = patch.tap_model(model, node.inputs[0])?;
    let band = patch.add_const(format!("{}.band", node.name), band.into_tensor())?;
    let axes = AxesMapping::from_strs(&["nck", "kl"], &["ncl"])?;
    let mut y = patch.wire_node(
        format!("{}.matmul", node.name),
        EinSum::new(axes, f32::datum_type()),
        &[x, band],
    )?[0];
    let bias = bias.cast_to::<f32>()?.to_plain_array_view::<f32>()?.iter().sum::<f32>();
    if bias != 0.0 {
        let bias = patch.add_const(format!("{}.bias", node.name), tensor3(&[[[bias]]]))?;
        y = patch.wire_node(&node.name, tract_onnx::tract_core::ops::math::add(), &[y, bias])?[0];
    }
    patch.shunt_outside(model, node.id.into(), y)?;
    Ok(Some(patch))
}

/// A convolution from one channel to `C` whose kernel picks tap `c` for output channel `c`
/// (`w[c, 0, …, j] = 1` when `j == c`, 0 otherwise), without bias, padding or stride: burn's
/// export of splitting a row into `C` channels (the beat and its template, `[N, 2 × 259]` to
/// `[N, 2, 259]`, as taps `dilation` apart). Output channel `c` is the input from `c ×
/// dilation` on: `C` slices, concatenated on the channel axis, a copy instead of a matrix
/// product that tract pads to a 40-row tile.
fn identity_conv_as_slices(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let channels = spec.output_channels;
    let rank = spec.rank();
    let plain = spec.input_channels == 1
        && channels >= 1
        && rank >= 1
        && conv.q_params.is_none()
        && conv.group == 1
        && conv.kernel_fmt == tract_onnx::tract_core::ops::cnn::KernelFormat::OIHW
        && spec.data_format == DataFormat::NCHW
        && (0..rank).all(|axis| spec.stride(axis) == 1)
        && spec.kernel_shape[..rank - 1].iter().all(|&k| k == 1)
        && spec.kernel_shape[rank - 1] == channels;
    if !plain || node.inputs.len() != 3 {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let (Some(kernel), Some(bias)) = (
        &model.outlet_fact(node.inputs[1])?.konst,
        &model.outlet_fact(node.inputs[2])?.konst,
    ) else {
        return Ok(None);
    };
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    if input.datum_type != f32::datum_type()
        || kernel.datum_type() != f32::datum_type()
        || shape.len() != rank + 2
        || kernel.shape() != [&[channels, 1][..], &spec.kernel_shape[..]].concat()
    {
        return Ok(None);
    }
    let bias = bias.cast_to::<f32>()?;
    if bias.to_plain_array_view::<f32>()?.iter().any(|&b| b != 0.0) {
        return Ok(None);
    }
    // Kernel [C, 1, 1, …, C]: entry (c, j) at c · C + j.
    let taps = kernel.to_plain_array_view::<f32>()?;
    let identity = taps
        .iter()
        .enumerate()
        .all(|(i, &w)| w == if i / channels == i % channels { 1.0 } else { 0.0 });
    let padding = spec.computed_padding(&shape[2..]);
    if !identity || padding.iter().any(|p| p.pad_before != 0 || p.pad_after != 0) {
        return Ok(None);
    }
    let axis = rank + 1;
    let dilation = spec.dilation(rank - 1);
    let out_len = padding[rank - 1].convoluted;
    let mut patch = TypedModelPatch::default();
    let x = patch.tap_model(model, node.inputs[0])?;
    let mut parts = Vec::with_capacity(channels);
    for c in 0..channels {
        let start = c * dilation;
        let op = Slice::new(axis, start, start + out_len);
        parts.push(patch.wire_node(format!("{}.channel{c}", node.name), op, &[x])?[0]);
    }
    let y = if channels == 1 {
        parts[0]
    } else {
        let concat = tract_onnx::tract_core::ops::array::TypedConcat::new(1);
        patch.wire_node(&node.name, concat, &parts)?[0]
    };
    patch.shunt_outside(model, node.id.into(), y)?;
    Ok(Some(patch))
}

/// A zero-padded convolution as the same convolution without padding of the input with zeros
/// concatenated on each side. tract runs its im2col convolutions on a padded copy of the
/// input, which its `Pad` makes several times slower than a concatenation.
fn conv_padding_as_concat(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    if conv.q_params.is_some()
        || spec.data_format != DataFormat::NCHW
        || !matches!(spec.padding, PaddingSpec::Explicit(..))
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    let rank = spec.rank();
    if input.datum_type != f32::datum_type() || shape.len() != rank + 2 {
        return Ok(None);
    }
    let padding = spec.computed_padding(&shape[2..]);
    if padding.iter().all(|p| p.pad_before == 0 && p.pad_after == 0) {
        return Ok(None);
    }
    let mut patch = TypedModelPatch::default();
    let mut x = patch.tap_model(model, node.inputs[0])?;
    let mut padded: TVec<usize> = shape.into();
    for (geo, p) in padding.iter().enumerate() {
        let axis = geo + 2;
        let mut parts = TVec::new();
        for (side, len) in [("before", p.pad_before), ("after", p.pad_after)] {
            let mut zeros = padded.clone();
            zeros[axis] = len;
            let name = format!("{}.pad{geo}.{side}", node.name);
            parts.push(
                (len > 0)
                    .then(|| patch.add_const(name, Tensor::zero::<f32>(&zeros)?))
                    .transpose()?,
            );
        }
        if parts.iter().all(Option::is_none) {
            continue;
        }
        let wires: TVec<OutletId> = [parts[0], Some(x), parts[1]].into_iter().flatten().collect();
        let concat = tract_onnx::tract_core::ops::array::TypedConcat::new(axis);
        x = patch.wire_node(format!("{}.pad{geo}", node.name), concat, &wires)?[0];
        padded[axis] += p.pad_before + p.pad_after;
    }
    let mut unpadded = conv.clone();
    unpadded.pool_spec.padding = PaddingSpec::Valid;
    let mut inputs = patch.taps(model, &node.inputs)?;
    inputs[0] = x;
    let y = patch.wire_node(&node.name, unpadded, &inputs)?[0];
    patch.shunt_outside(model, node.id.into(), y)?;
    Ok(Some(patch))
}

/// `L` of an input declared `[?, 1, L]` f32, or why the declaration does not fit.
fn declared_input_len(fact: &InferenceFact) -> Result<usize, String> {
    if let Some(dt) = fact.datum_type.concretize() {
        if dt != f32::datum_type() {
            return Err(format!(", not {dt:?}"));
        }
    }
    let rank = fact.shape.rank().concretize();
    if rank.is_none() {
        return Err(": the file does not declare the input's shape".to_owned());
    }
    if rank != Some(3) {
        return Err(String::new());
    }
    let dim = |i| {
        fact.shape
            .dim(i)
            .and_then(|d| d.concretize())
            .and_then(|d| d.to_i64().ok())
    };
    if dim(1) != Some(1) {
        return Err(match dim(2) {
            Some(1) => " (this looks like a channels-last [N, L, 1] input: transpose it to [N, 1, L] before export)",
            _ => "",
        }
        .to_owned());
    }
    match dim(2) {
        Some(len) if len > 0 => Ok(len as usize),
        _ => Err(": the beat length L must be a fixed number".to_owned()),
    }
}

/// An input declaration for messages, e.g. `[N, 259, 1] F32`.
fn describe(fact: &InferenceFact) -> String {
    let dt = fact
        .datum_type
        .concretize()
        .map_or_else(|| "of unknown type".to_owned(), |dt| format!("{dt:?}"));
    if fact.shape.rank().concretize().is_none() {
        return format!("of unknown shape, {dt}");
    }
    let dims: Vec<String> = fact
        .shape
        .dims()
        .map(|d| d.concretize().map_or_else(|| "?".to_owned(), |d| d.to_string()))
        .collect();
    format!("[{}] {dt}", dims.join(", "))
}

/// Softmax of one row of logits, as burn computes it (f32, shifted by the maximum).
fn softmax(logits: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The logits `[n, classes]`, flattened, of the ONNX model `bytes` (one input
/// `[N, 1, input_len]`) for `inputs` (`n × input_len` values), run by tract as one batch
/// through a plan for a symbolic batch axis: the check that an export keeps the batch dynamic.
#[cfg(test)]
pub(crate) fn logits_for_any_batch(bytes: &[u8], input_len: usize, inputs: &[f32]) -> Vec<f32> {
    let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
    let n = model.sym("N");
    let fact = f32::fact(tract_onnx::tract_core::dims!(n, 1, input_len));
    model.set_input_fact(0, fact.into()).unwrap();
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let batch = inputs.len() / input_len;
    let x = Tensor::from_shape(&[batch, 1, input_len], inputs).unwrap();
    let result = plan.run(tvec!(x.into_tvalue())).unwrap();
    let logits = result[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(logits.shape()[0], batch);
    logits.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::onnx::onnx_bytes;
    use crate::models::{Architecture, TrainedModel};
    use crate::rng::SplitMix64;

    /// A few ONNX protobuf messages written by hand, enough for graphs of one or two nodes.
    mod pb {
        fn varint(mut v: u64, out: &mut Vec<u8>) {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }

        fn bytes(field: u64, value: &[u8], out: &mut Vec<u8>) {
            varint(field << 3 | 2, out);
            varint(value.len() as u64, out);
            out.extend_from_slice(value);
        }

        fn int(field: u64, value: u64, out: &mut Vec<u8>) {
            varint(field << 3, out);
            varint(value, out);
        }

        /// A dimension: a name for a symbolic one, a number for a fixed one.
        pub enum Dim {
            Sym(&'static str),
            Fixed(u64),
        }

        pub const FLOAT: u64 = 1;
        pub const DOUBLE: u64 = 11;

        /// ValueInfoProto of a tensor (`dims: None` leaves the shape undeclared).
        pub fn tensor(name: &str, elem_type: u64, dims: Option<&[Dim]>) -> Vec<u8> {
            let mut tensor_type = Vec::new();
            int(1, elem_type, &mut tensor_type);
            if let Some(dims) = dims {
                let mut shape = Vec::new();
                for d in dims {
                    let mut dim = Vec::new();
                    match d {
                        Dim::Fixed(v) => int(1, *v, &mut dim),
                        Dim::Sym(s) => bytes(2, s.as_bytes(), &mut dim),
                    }
                    bytes(1, &dim, &mut shape);
                }
                bytes(2, &shape, &mut tensor_type);
            }
            let mut type_proto = Vec::new();
            bytes(1, &tensor_type, &mut type_proto);
            let mut info = Vec::new();
            bytes(1, name.as_bytes(), &mut info);
            bytes(2, &type_proto, &mut info);
            info
        }

        /// NodeProto.
        pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
            let mut node = Vec::new();
            for i in inputs {
                bytes(1, i.as_bytes(), &mut node);
            }
            for o in outputs {
                bytes(2, o.as_bytes(), &mut node);
            }
            bytes(3, format!("{op}_{}", outputs[0]).as_bytes(), &mut node);
            bytes(4, op.as_bytes(), &mut node);
            node
        }

        /// ModelProto (IR 8, opset 13) of one graph.
        pub fn model(nodes: &[Vec<u8>], inputs: &[Vec<u8>], outputs: &[Vec<u8>]) -> Vec<u8> {
            let mut graph = Vec::new();
            for n in nodes {
                bytes(1, n, &mut graph);
            }
            bytes(2, b"g", &mut graph);
            for i in inputs {
                bytes(11, i, &mut graph);
            }
            for o in outputs {
                bytes(12, o, &mut graph);
            }
            let mut opset = Vec::new();
            int(2, 13, &mut opset);
            let mut model = Vec::new();
            int(1, 8, &mut model);
            bytes(7, &graph, &mut model);
            bytes(8, &opset, &mut model);
            model
        }
    }

    use pb::Dim::{Fixed, Sym};

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("ecgflow-tract-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `x [dims] → Flatten → y`: a "classifier" whose logits are its input.
    fn flatten(dims: &[pb::Dim], elem_type: u64) -> Vec<u8> {
        pb::model(
            &[pb::node("Flatten", &["x"], &["y"])],
            &[pb::tensor("x", elem_type, Some(dims))],
            &[pb::tensor("y", elem_type, None)],
        )
    }

    fn load_err(dir: &Dir, name: &str, bytes: &[u8]) -> String {
        let path = dir.write(name, bytes);
        let err = OnnxClassifier::load(&path).unwrap_err().to_string();
        eprintln!("{err}");
        assert!(err.contains(name), "the message names the file: {err}");
        err
    }

    #[test]
    fn a_classifier_is_shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<OnnxClassifier>();
    }

    #[test]
    fn a_flatten_graph_gives_the_softmax_of_its_input_at_any_batch_size() {
        let dir = Dir::new("flatten");
        let path = dir.write("flat.onnx", &flatten(&[Sym("batch"), Fixed(1), Fixed(4)], pb::FLOAT));
        let model = OnnxClassifier::load(&path).unwrap();
        assert_eq!((model.input_len(), model.classes()), (4, 4));
        let inputs: Vec<f32> = (0..5 * 4).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
        let expected: Vec<Vec<f32>> = inputs.chunks(4).map(|r| softmax(r.iter().copied())).collect();
        for batch in [1, 2, 5, 64] {
            assert_eq!(model.predict(&inputs, batch).unwrap(), expected, "batch {batch}");
        }
        for p in &expected {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(model.predict(&[], 8).unwrap().is_empty());
    }

    #[test]
    fn a_file_that_is_not_onnx_is_refused_with_its_name() {
        let dir = Dir::new("notonnx");
        let err = load_err(&dir, "notes.onnx", b"these are not the weights you are looking for\n");
        assert!(err.contains("not an ONNX model"), "{err}");
        let err = load_err(&dir, "empty.onnx", b"");
        assert!(err.contains("not an ONNX model"), "{err}");
        let missing = dir.0.join("missing.onnx");
        let err = OnnxClassifier::load(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.onnx"), "{err}");
    }

    #[test]
    fn a_wrong_input_length_is_refused() {
        let dir = Dir::new("len");
        let path = dir.write("flat.onnx", &flatten(&[Sym("N"), Fixed(1), Fixed(4)], pb::FLOAT));
        let model = OnnxClassifier::load(&path).unwrap();
        let err = model.predict(&[0.0; 7], 1).unwrap_err();
        assert!(matches!(err, OnnxError::InputLength { got: 7, expected: 4 }), "{err}");
        assert!(err.to_string().contains("takes 4 values per beat"), "{err}");
    }

    #[test]
    fn inputs_that_are_not_n_1_l_are_refused() {
        let dir = Dir::new("inputs");
        // A Keras model converted by tf2onnx: channels last.
        let err = load_err(
            &dir,
            "keras.onnx",
            &flatten(&[Sym("unk__6"), Fixed(259), Fixed(1)], pb::FLOAT),
        );
        assert!(err.contains("[unk__6, 259, 1]") && err.contains("[N, 1, L]"), "{err}");
        assert!(err.contains("channels-last"), "{err}");
        let err = load_err(&dir, "rank2.onnx", &flatten(&[Sym("N"), Fixed(259)], pb::FLOAT));
        assert!(err.contains("[N, 259]"), "{err}");
        let err = load_err(
            &dir,
            "double.onnx",
            &flatten(&[Sym("N"), Fixed(1), Fixed(8)], pb::DOUBLE),
        );
        assert!(err.contains("F64"), "{err}");
        let err = load_err(&dir, "free.onnx", &flatten(&[Sym("N"), Fixed(1), Sym("L")], pb::FLOAT));
        assert!(err.contains("fixed number"), "{err}");
        let undeclared = pb::model(
            &[pb::node("Flatten", &["x"], &["y"])],
            &[pb::tensor("x", pb::FLOAT, None)],
            &[pb::tensor("y", pb::FLOAT, None)],
        );
        let err = load_err(&dir, "undeclared.onnx", &undeclared);
        assert!(err.contains("does not declare"), "{err}");
        let two = pb::model(
            &[pb::node("Add", &["a", "b"], &["y"])],
            &[
                pb::tensor("a", pb::FLOAT, Some(&[Sym("N"), Fixed(1), Fixed(8)])),
                pb::tensor("b", pb::FLOAT, Some(&[Sym("N"), Fixed(1), Fixed(8)])),
            ],
            &[pb::tensor("y", pb::FLOAT, None)],
        );
        let err = load_err(&dir, "two.onnx", &two);
        assert!(err.contains("2 input(s) and 1 output(s)"), "{err}");
    }

    #[test]
    fn outputs_that_are_not_n_classes_are_refused() {
        let dir = Dir::new("outputs");
        let identity = pb::model(
            &[pb::node("Identity", &["x"], &["y"])],
            &[pb::tensor("x", pb::FLOAT, Some(&[Sym("N"), Fixed(1), Fixed(8)]))],
            &[pb::tensor("y", pb::FLOAT, None)],
        );
        let err = load_err(&dir, "rank3.onnx", &identity);
        assert!(err.contains("output `") && err.contains("[N, classes]"), "{err}");
        let two = pb::model(
            &[
                pb::node("Flatten", &["x"], &["y"]),
                pb::node("Identity", &["x"], &["z"]),
            ],
            &[pb::tensor("x", pb::FLOAT, Some(&[Sym("N"), Fixed(1), Fixed(8)]))],
            &[pb::tensor("y", pb::FLOAT, None), pb::tensor("z", pb::FLOAT, None)],
        );
        let err = load_err(&dir, "twoout.onnx", &two);
        assert!(err.contains("1 input(s) and 2 output(s)"), "{err}");
    }

    /// The outputs of `model` for `input`, optimised by tract alone or after the rewrites.
    fn run_typed(model: &TypedModel, input: &Tensor, rewritten: bool) -> Vec<f32> {
        let model = model.clone();
        let optimized = if rewritten {
            optimize(model)
        } else {
            model.into_optimized()
        };
        let plan = optimized.unwrap().into_runnable().unwrap();
        let out = plan.run(tvec!(input.clone().into_tvalue())).unwrap();
        out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
    }

    #[test]
    fn a_one_channel_convolution_becomes_a_matrix_product_with_the_same_results() {
        // Strided, dilated, unevenly padded, with a bias: every term of the band.
        let conv = Conv {
            pool_spec: tract_onnx::tract_core::ops::cnn::PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec!(3),
                padding: tract_onnx::tract_core::ops::cnn::PaddingSpec::Explicit(tvec!(2), tvec!(1)),
                dilations: Some(tvec!(2)),
                strides: Some(tvec!(2)),
                input_channels: 1,
                output_channels: 1,
            },
            kernel_fmt: tract_onnx::tract_core::ops::cnn::KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([2, 1, 19])).unwrap();
        let w = model.add_const("w", tensor3(&[[[0.5f32, -1.0, 2.0]]])).unwrap();
        let b = model.add_const("b", tensor1(&[0.25f32])).unwrap();
        let y = model.wire_node("conv", conv, &[x, w, b]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let mut rewritten = model.clone();
        rewrite_for_tract(&mut rewritten).unwrap();
        let convs = rewritten
            .eval_order()
            .unwrap()
            .into_iter()
            .filter(|&id| rewritten.node(id).op_is::<Conv>());
        assert_eq!(convs.count(), 0, "the convolution is replaced");
        let input = Tensor::from_shape(
            &[2, 1, 19],
            &(0..38).map(|i| (i as f32 * 0.7).sin()).collect::<Vec<_>>(),
        )
        .unwrap();
        let (a, b) = (run_typed(&model, &input, false), run_typed(&model, &input, true));
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-6, "convolution {a}, matrix product {b}");
        }
    }

    #[test]
    fn a_long_sum_runs_in_two_steps_and_keeps_its_precision() {
        use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
        // The variance's sum of a 224 × 224 image: 50 176 positive squares.
        let n = 224 * 224;
        let values: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.013).sin() * 0.2).powi(2)).collect();
        let exact: f64 = values.iter().map(|&v| v as f64).sum();
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 1, n])).unwrap();
        let y = model
            .wire_node("sum", Reduce::new(tvec![2], Reducer::Sum), &[x])
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        let mut rewritten = model.clone();
        rewrite_for_tract(&mut rewritten).unwrap();
        let order = rewritten.eval_order().unwrap();
        let sums = order.iter().filter(|&&id| rewritten.node(id).op_is::<Reduce>()).count();
        assert_eq!(sums, 2, "blocks of 224, then the 224 block sums");
        let input = Tensor::from_shape(&[1, 1, n], &values).unwrap();
        let got = run_typed(&model, &input, true);
        assert_eq!(got.len(), 1);
        let error = (got[0] as f64 - exact).abs() / exact;
        assert!(error < 1e-6, "relative error {error:e} of {} against {exact}", got[0]);
        // A short sum is left alone.
        let mut short = TypedModel::default();
        let x = short.add_source("x", f32::fact([1, 1, 259])).unwrap();
        let y = short
            .wire_node("sum", Reduce::new(tvec![2], Reducer::Sum), &[x])
            .unwrap();
        short.select_output_outlets(&y).unwrap();
        rewrite_for_tract(&mut short).unwrap();
        assert_eq!(short.eval_order().unwrap().len(), 2, "source and sum");
    }

    #[test]
    fn a_padded_convolution_runs_on_a_concatenation_with_the_same_results() {
        use tract_onnx::tract_core::ops::array::TypedConcat;
        use tract_onnx::tract_core::ops::cnn::{KernelFormat, PaddingSpec, PoolSpec};
        // One and two spatial axes (`[N, C, L]`, `[N, C, 1, L]`), strided, dilated, unevenly padded.
        for rank in [1, 2] {
            let ones =
                |last: usize| -> TVec<usize> { (0..rank).map(|a| if a + 1 == rank { last } else { 1 }).collect() };
            let zeros =
                |last: usize| -> TVec<usize> { (0..rank).map(|a| if a + 1 == rank { last } else { 0 }).collect() };
            let conv = Conv {
                pool_spec: PoolSpec {
                    data_format: DataFormat::NCHW,
                    kernel_shape: ones(5),
                    padding: PaddingSpec::Explicit(zeros(3), zeros(2)),
                    dilations: Some(ones(2)),
                    strides: Some(ones(2)),
                    input_channels: 2,
                    output_channels: 3,
                },
                kernel_fmt: KernelFormat::OIHW,
                group: 1,
                q_params: None,
            };
            let shape: Vec<usize> = [2, 2].into_iter().chain(ones(23)).collect();
            let kernel_shape: Vec<usize> = [3, 2].into_iter().chain(ones(5)).collect();
            let weights: Vec<f32> = (0..30).map(|i| (i as f32 * 0.37).cos()).collect();
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact(&shape)).unwrap();
            let w = model
                .add_const("w", Tensor::from_shape(&kernel_shape, &weights).unwrap())
                .unwrap();
            let b = model.add_const("b", tensor1(&[0.25f32, -0.5, 1.0])).unwrap();
            let y = model.wire_node("conv", conv, &[x, w, b]).unwrap();
            model.select_output_outlets(&y).unwrap();
            let mut rewritten = model.clone();
            rewrite_for_tract(&mut rewritten).unwrap();
            let order = rewritten.eval_order().unwrap();
            let concats = order
                .iter()
                .filter(|&&id| rewritten.node(id).op_is::<TypedConcat>())
                .count();
            assert_eq!(concats, 1, "rank {rank}: the padding is a concatenation");
            let input =
                Tensor::from_shape(&shape, &(0..92).map(|i| (i as f32 * 0.7).sin()).collect::<Vec<_>>()).unwrap();
            let (a, b) = (run_typed(&model, &input, false), run_typed(&model, &input, true));
            assert_eq!(a.len(), 2 * 3 * 10, "(23 + 3 + 2 - 9) / 2 + 1 outputs per channel");
            assert_eq!(a.len(), b.len());
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() < 1e-5, "rank {rank}: padded {a}, concatenated {b}");
            }
        }
    }

    #[test]
    fn a_product_by_a_selection_matrix_becomes_a_slice_and_others_stay_products() {
        let mut select = tract_ndarray::Array2::<f32>::zeros((6, 3));
        for j in 0..3 {
            select[[2 + j, j]] = 1.0;
        }
        let mut not_select = select.clone();
        not_select[[0, 0]] = 1.0;
        let axes = AxesMapping::from_strs(&["mk", "kn"], &["mn"]).unwrap();
        let input = Tensor::from_shape(&[2, 6], &(0..12).map(|i| i as f32).collect::<Vec<_>>()).unwrap();
        for (matrix, slices) in [(select, 1), (not_select, 0)] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([2, 6])).unwrap();
            let s = model.add_const("s", matrix.into_tensor()).unwrap();
            let y = model
                .wire_node("mm", EinSum::new(axes.clone(), f32::datum_type()), &[x, s])
                .unwrap();
            model.select_output_outlets(&y).unwrap();
            let mut rewritten = model.clone();
            rewrite_for_tract(&mut rewritten).unwrap();
            let order = rewritten.eval_order().unwrap();
            assert_eq!(
                order.iter().filter(|&&id| rewritten.node(id).op_is::<Slice>()).count(),
                slices
            );
            assert_eq!(run_typed(&model, &input, false), run_typed(&model, &input, true));
        }
    }

    #[test]
    fn a_network_with_a_template_splits_its_input_by_slices_and_gives_burns_probabilities() {
        let (mut config, _, _) = crate::models::small_network();
        config.template = true;
        let architecture = Architecture::Resecanet(config.clone());
        let network = {
            use burn::module::Module;
            crate::models::Network::init(&architecture, &burn::tensor::Device::flex()).valid()
        };
        let burn = TrainedModel {
            card: crate::models::test_card(architecture),
            network,
        };
        let len = config.input_len();
        let bytes = onnx_bytes(&burn.network, len).unwrap();
        // The export splits beat and template by a convolution that the rewrite replaces.
        let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
        model.set_input_fact(0, f32::fact([1, 1, len]).into()).unwrap();
        let mut typed = model.into_typed().unwrap();
        let identity = |m: &TypedModel| {
            m.eval_order()
                .unwrap()
                .into_iter()
                .filter(|&id| {
                    m.node(id)
                        .op_as::<Conv>()
                        .is_some_and(|c| (c.pool_spec.input_channels, c.pool_spec.output_channels) == (1, 2))
                })
                .count()
        };
        assert_eq!(identity(&typed), 1, "the export splits the input by a convolution");
        rewrite_for_tract(&mut typed).unwrap();
        assert_eq!(identity(&typed), 0, "it is replaced by slices");

        let mut rng = SplitMix64::new(11);
        let inputs: Vec<f32> = (0..5 * len).map(|_| rng.normal() as f32).collect();
        let expected = burn.predict(&inputs, 5).unwrap();
        let dir = Dir::new("template");
        let tract = OnnxClassifier::load(&dir.write("t.onnx", &bytes)).unwrap();
        let got = tract.predict(&inputs, 5).unwrap();
        for (x, y) in expected.iter().flatten().zip(got.iter().flatten()) {
            assert!((x - y).abs() < 1e-5, "burn {x}, tract {y}");
        }
    }

    #[test]
    fn an_exported_network_gives_burns_probabilities_and_is_checked_against_its_card() {
        let (config, architecture, network) = crate::models::small_network();
        let burn = TrainedModel {
            card: crate::models::test_card(architecture),
            network,
        };
        let mut rng = SplitMix64::new(9);
        let inputs: Vec<f32> = (0..7 * config.input_len()).map(|_| rng.normal() as f32).collect();
        let dir = Dir::new("exported");
        let path = dir.write("m.onnx", &onnx_bytes(&burn.network, config.input_len()).unwrap());
        // burn after the export too: exporting leaves the network as it was.
        let expected: Vec<_> = [1, 3].map(|batch| burn.predict(&inputs, batch).unwrap()).into();
        let tract = OnnxClassifier::load(&path).unwrap();
        assert_eq!((tract.input_len(), tract.classes()), (config.input_len(), 3));
        tract.check_card(&burn.card, Path::new("m.json")).unwrap();
        for (batch, a) in [1, 3].into_iter().zip(&expected) {
            let b = tract.predict(&inputs, batch).unwrap();
            assert_eq!((a.len(), b.len()), (7, 7));
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                assert!((x - y).abs() < 1e-5, "batch {batch}: burn {x}, tract {y}");
            }
        }

        let mut other = burn.card.clone();
        other.classes.pop();
        let err = tract.check_card(&other, Path::new("m.json")).unwrap_err().to_string();
        assert!(
            err.contains("m.onnx") && err.contains("m.json") && err.contains("3 outputs"),
            "{err}"
        );
        let Architecture::Resecanet(c) = &mut other.architecture else {
            unreachable!("the small network is a ResECANet")
        };
        c.window = 65;
        let err = tract.check_card(&other, Path::new("m.json")).unwrap_err().to_string();
        assert!(err.contains("67 values per beat") && err.contains("68"), "{err}");
    }
}
