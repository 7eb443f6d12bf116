//! The `Tensor` methods of the elementwise functions of two tensors, with numpy broadcasting
//! (made from [`binary_list!`](crate::ir::binary_list); definitions in `crate::ir::binary`).

use crate::error::Result;
use crate::ir::{binary_list, BinaryOp, Op};
use crate::shape::broadcast_shapes;
use crate::Tensor;

impl Tensor {
    /// Applies a binary op by value; shapes must broadcast.
    pub(crate) fn binary_op(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        self.check_device(op.name(), other)?;
        let shape = broadcast_shapes(op.name(), self.shape(), other.shape())?;
        self.derive(Op::Binary(op), vec![self.clone(), other.clone()], shape)
    }
}

macro_rules! binary_methods {
    ($($(#[doc = $doc:literal])* $variant:ident => $method:ident;)*) => {
        impl Tensor {
            $(
                $(#[doc = $doc])*
                ///
                /// Shapes broadcast as in numpy (a scalar, shape `[]`, goes with anything); shapes
                /// that do not broadcast are an [`Error::Shape`](crate::Error::Shape).
                pub fn $method(&self, other: &Tensor) -> Result<Tensor> {
                    self.binary_op(BinaryOp::$variant, other)
                }
            )*
        }
    };
}
binary_list!(binary_methods);
