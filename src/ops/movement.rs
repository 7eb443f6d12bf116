//! The `Tensor` methods of reshape, transpose, permute: views (new strides over the same buffer) wherever possible.

use crate::error::{Error, Result};
use crate::ir::Op;
use crate::shape::checked_numel;
use crate::Tensor;

impl Tensor {
    /// The same elements (row-major order) with a new shape of the same size. A view when the
    /// layout allows it, a copy otherwise. A size mismatch is an [`Error::Shape`](crate::Error::Shape).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n = checked_numel("reshape", shape)?;
        if n != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot reshape {:?} ({} elements) to {shape:?} ({n} elements)",
                    self.shape(),
                    self.numel(),
                ),
            ));
        }
        self.derive(Op::Reshape, vec![self.clone()], shape.to_vec())
    }

    /// Swaps dimensions `d0` and `d1` (a view).
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Tensor> {
        for d in [d0, d1] {
            if d >= self.ndim() {
                return Err(Error::axis(
                    "transpose",
                    format!(
                        "dimension {d} is out of range for shape {:?} (rank {})",
                        self.shape(),
                        self.ndim()
                    ),
                ));
            }
        }
        let mut perm: Vec<usize> = (0..self.ndim()).collect();
        perm.swap(d0, d1);
        self.permute(&perm)
    }

    /// Reorders the dimensions: output dim `i` is input dim `perm[i]` (a view). `perm` must be a
    /// permutation of `0..ndim`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.ndim()];
        let valid = perm.len() == self.ndim()
            && perm
                .iter()
                .all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(Error::axis(
                "permute",
                format!(
                    "{perm:?} is not a permutation of the {} dimensions of shape {:?}",
                    self.ndim(),
                    self.shape()
                ),
            ));
        }
        let shape = perm.iter().map(|&p| self.shape()[p]).collect();
        self.derive(Op::Permute(perm.to_vec()), vec![self.clone()], shape)
    }

    /// A dense window of this tensor's elements (internal: the SVD's packed output).
    pub(crate) fn slice_flat(&self, offset: usize, shape: &[usize]) -> Result<Tensor> {
        self.derive(Op::Slice { offset }, vec![self.clone()], shape.to_vec())
    }
}
