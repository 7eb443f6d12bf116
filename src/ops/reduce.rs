//! The `Tensor` methods of the reductions over any set of axes (made from
//! [`reduce_list!`](crate::ir::reduce_list); definitions in `crate::ir::reduce`).

use crate::error::{Error, Result};
use crate::ir::{reduce_list, reduced_shape, Op, ReduceOp};
use crate::shape::check_axes;
use crate::Tensor;

impl Tensor {
    /// Applies a reduction by value: axes checked (in range, no repeats), an empty axis only
    /// for ops with an identity.
    pub(crate) fn reduce_op(&self, op: ReduceOp, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        check_axes(op.name(), axes, self.shape())?;
        if !op.has_identity() {
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
}

macro_rules! reduce_methods {
    ($($(#[doc = $doc:literal])* $variant:ident => $method:ident;)*) => {
        impl Tensor {
            $(
                $(#[doc = $doc])*
                pub fn $method(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
                    self.reduce_op(ReduceOp::$variant, axes, keepdim)
                }
            )*
        }
    };
}
reduce_list!(reduce_methods);
