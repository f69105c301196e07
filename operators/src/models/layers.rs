//! Fixed (parameter-free) pieces shared by the networks, written in the forms burn-onnx
//! 0.22 exports with a dynamic batch axis.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

/// Rows of `width` values `[batch, 1, rows × width]` (row-major) as `[batch, rows, width]`:
/// the leads of a record, the rows of an image.
///
/// Not a plain reshape: burn-onnx 0.22's dynamic-batch export cannot tell that both new
/// axes of `[N, 1, rows × width] → [N, rows, width]` are fixed ("multiple
/// element-count-derived dimensions remain"). A fixed convolution does the split instead:
/// `rows` output channels, kernel 1 × `rows` dilated by `width`, one-hot weights, so that
/// channel `i` at column `j` picks value `i × width + j`. Its output `[N, rows, 1, width]`
/// reshapes with every size visible to the exporter. It costs `rows² × width`
/// multiply-adds per example (0.37 M for a 38 × 259 scalogram, 11 M for a 224 × 224 image,
/// 0.14 M for 12 leads of 1000 samples) and has no parameters; no gradient flows through it.
pub fn split_rows(flat: Tensor<3>, rows: usize, width: usize) -> Tensor<3> {
    let batch = flat.dims()[0];
    let device = flat.device();
    let x: Tensor<4> = flat.reshape([batch, 1, 1, rows * width]);
    let mut one_hot = vec![0f32; rows * rows];
    for i in 0..rows {
        one_hot[i * rows + i] = 1.0;
    }
    let weight = Tensor::<4>::from_data(TensorData::new(one_hot, [rows, 1, 1, rows]), &device);
    let split = conv2d(x, weight, None, ConvOptions::new([1, 1], [0, 0], [1, width], 1));
    split.reshape([batch, rows, width])
}

/// The scalograms or images `[batch, 1, height × width]` (row-major) as
/// `[batch, 1, height, width]` (see [`split_rows`]).
pub fn unflatten(flat: Tensor<3>, height: usize, width: usize) -> Tensor<4> {
    let batch = flat.dims()[0];
    split_rows(flat, height, width).reshape([batch, 1, height, width])
}

/// Standardisation of each channel `[batch, channels, length]` over its `length` values
/// (mean 0, std 1, ε = 1e-6), inside the networks so that any runtime can feed raw inputs:
/// baseline offsets and gain differences do not reach the convolutions. Sums divided by the
/// count rather than means: the forms burn-onnx exports.
pub fn zscore(x: Tensor<3>) -> Tensor<3> {
    let length = x.dims()[2] as f32;
    let mean = x.clone().sum_dim(2).div_scalar(length);
    let centred = x - mean;
    let var = (centred.clone() * centred.clone()).sum_dim(2).div_scalar(length);
    centred / var.add_scalar(1e-6).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn unflatten_and_split_rows_are_row_major_reshapes() {
        let device = Device::flex();
        for (h, w) in [(3, 5), (1, 4), (4, 1), (38, 259), (12, 100)] {
            let values: Vec<f32> = (0..2 * h * w).map(|v| v as f32).collect();
            let flat = Tensor::<3>::from_data(TensorData::new(values.clone(), [2, 1, h * w]), &device);
            let image = unflatten(flat.clone(), h, w);
            assert_eq!(image.dims(), [2, 1, h, w]);
            assert_eq!(image.into_data().try_to_vec::<f32>().unwrap(), values, "{h} × {w}");
            let rows = split_rows(flat, h, w);
            assert_eq!(rows.dims(), [2, h, w]);
            assert_eq!(rows.into_data().try_to_vec::<f32>().unwrap(), values, "{h} × {w}");
        }
    }
}
