//! The `Tensor` methods of the elementwise functions of one tensor (made from
//! [`unary_list!`](crate::ir::unary_list); each op's definition is in `crate::ir::unary`).

use crate::error::Result;
use crate::ir::{unary_list, Op, UnaryOp};
use crate::Tensor;

impl Tensor {
    /// Applies a unary op by value (the JS layer calls ops by name through this).
    pub(crate) fn unary_op(&self, op: UnaryOp) -> Result<Tensor> {
        self.derive(Op::Unary(op), vec![self.clone()], self.shape().to_vec())
    }
}

macro_rules! unary_methods {
    ($($(#[doc = $doc:literal])* $variant:ident => $method:ident;)*) => {
        impl Tensor {
            $(
                $(#[doc = $doc])*
                pub fn $method(&self) -> Result<Tensor> {
                    self.unary_op(UnaryOp::$variant)
                }
            )*
        }
    };
}
unary_list!(unary_methods);
