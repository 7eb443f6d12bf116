//! Softmax and log-softmax along one axis, numerically stable (the row maximum is subtracted).

use crate::error::{Error, Result};
use crate::graph::Op;
use crate::ops::reduce::split_axes;
use crate::shape::{for_each_offsets, Layout};
use crate::Tensor;

/// CPU kernel: for each row along `axis`, `exp(x - max) / Σ exp(x - max)` (or its log).
pub(crate) fn cpu(x: &[f32], layout: &Layout, axis: usize, log: bool) -> Vec<f32> {
    let n = layout.numel();
    let mut out = vec![0f32; n];
    let (outer_in, row_in) = split_axes(layout, &[axis]);
    let (outer_out, row_out) = split_axes(&Layout::contiguous(&layout.shape), &[axis]);
    let len = layout.shape[axis];
    let (si, so) = (row_in.strides[0], row_out.strides[0]);
    let mut row = vec![0f32; len];
    for_each_offsets([&outer_in, &outer_out], |[bi, bo]| {
        for (j, r) in row.iter_mut().enumerate() {
            *r = x[bi + j * si];
        }
        let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| {
            if v.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(v)
            }
        });
        let sum: f64 = row.iter().map(|&v| ((v - m).exp()) as f64).sum();
        let lse = (sum.ln()) as f32;
        for (j, &v) in row.iter().enumerate() {
            out[bo + j * so] = if log {
                v - m - lse
            } else {
                ((v - m).exp() as f64 / sum) as f32
            };
        }
    });
    out
}

impl Tensor {
    fn softmax_op(&self, axis: usize, log: bool) -> Result<Tensor> {
        let name = if log { "log_softmax" } else { "softmax" };
        if axis >= self.ndim() {
            return Err(Error::axis(
                name,
                format!(
                    "axis {axis} is out of range for shape {:?} (rank {})",
                    self.shape(),
                    self.ndim()
                ),
            ));
        }
        self.derive(
            Op::Softmax { axis, log },
            vec![self.clone()],
            self.shape().to_vec(),
        )
    }

    /// Softmax along `axis`: `exp(x - max) / Σ exp(x - max)`, stable for large inputs.
    pub fn softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_op(axis, false)
    }

    /// Log-softmax along `axis`: `x - max - log Σ exp(x - max)`.
    pub fn log_softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_op(axis, true)
    }
}
