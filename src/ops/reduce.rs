//! Reductions over any set of axes: sum, mean, max, min.

use crate::error::{Error, Result};
use crate::graph::Op;
use crate::shape::{check_axes, for_each_offsets, Layout};
use crate::Tensor;

/// How values along the reduced axes are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

/// The output shape of reducing `shape` over `axes` (validated).
pub(crate) fn reduced_shape(shape: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.len());
    for (d, &n) in shape.iter().enumerate() {
        if !axes.contains(&d) {
            out.push(n);
        } else if keepdim {
            out.push(1);
        }
    }
    out
}

/// Splits a layout into the kept dims (outer, in order) and the reduced dims (inner, offset 0).
pub(crate) fn split_axes(layout: &Layout, axes: &[usize]) -> (Layout, Layout) {
    let pick = |keep: bool| {
        let dims: Vec<usize> = (0..layout.shape.len())
            .filter(|d| axes.contains(d) != keep)
            .collect();
        Layout {
            shape: dims.iter().map(|&d| layout.shape[d]).collect(),
            strides: dims.iter().map(|&d| layout.strides[d]).collect(),
            offset: if keep { layout.offset } else { 0 },
        }
    };
    (pick(true), pick(false))
}

/// CPU kernel. Sums accumulate in f64; max/min propagate NaN.
pub(crate) fn cpu(
    op: ReduceOp,
    x: &[f32],
    layout: &Layout,
    axes: &[usize],
    _keepdim: bool,
) -> Vec<f32> {
    let (outer, inner) = split_axes(layout, axes);
    let mut inner_offsets = Vec::with_capacity(inner.numel());
    inner.for_each_offset(|o| inner_offsets.push(o));
    let count = inner_offsets.len();
    let mut out = Vec::with_capacity(outer.numel());
    for_each_offsets([&outer], |[base]| {
        let vals = inner_offsets.iter().map(|&o| x[base + o]);
        let r = match op {
            ReduceOp::Sum => vals.map(|v| v as f64).sum::<f64>() as f32,
            ReduceOp::Mean => (vals.map(|v| v as f64).sum::<f64>() / count as f64) as f32,
            ReduceOp::Max => vals.fold(f32::NEG_INFINITY, |m, v| {
                if v.is_nan() || m.is_nan() {
                    f32::NAN
                } else {
                    m.max(v)
                }
            }),
            ReduceOp::Min => vals.fold(f32::INFINITY, |m, v| {
                if v.is_nan() || m.is_nan() {
                    f32::NAN
                } else {
                    m.min(v)
                }
            }),
        };
        out.push(r);
    });
    out
}

impl Tensor {
    fn reduce(&self, op: ReduceOp, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        check_axes(op.name(), axes, self.shape())?;
        if matches!(op, ReduceOp::Max | ReduceOp::Min) {
            if let Some(&ax) = axes.iter().find(|&&ax| self.shape()[ax] == 0) {
                return Err(Error::shape(
                    op.name(),
                    format!(
                        "axis {ax} of shape {:?} is empty and {} has no identity",
                        self.shape(),
                        op.name()
                    ),
                ));
            }
        }
        let shape = reduced_shape(self.shape(), axes, keepdim);
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        self.derive(Op::Reduce { op, axes, keepdim }, vec![self.clone()], shape)
    }

    /// Sum over `axes`. With `keepdim` the reduced axes stay as size 1. An empty `axes` list
    /// reduces nothing (as in numpy); an axis out of range or repeated is an
    /// [`Error::Axis`](crate::Error::Axis).
    ///
    /// ```
    /// # let dev = tmath::Device::cpu()?;
    /// let a = tmath::Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3], &dev)?;
    /// assert_eq!(a.sum(&[1], false)?.to_vec()?, vec![6., 15.]);
    /// assert_eq!(a.sum(&[0, 1], true)?.shape(), &[1, 1]);
    /// # Ok::<(), tmath::Error>(())
    /// ```
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }

    /// Mean over `axes` (see [`Tensor::sum`] for `axes` and `keepdim`).
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, axes, keepdim)
    }

    /// Maximum over `axes` (see [`Tensor::sum`]); NaN if any reduced element is NaN. Reducing an
    /// empty axis is an error.
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }

    /// Minimum over `axes` (see [`Tensor::max`]).
    pub fn min(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }
}
