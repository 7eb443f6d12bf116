//! Every op, one family per file. Each file holds, for its ops: the `Tensor` methods (argument
//! and shape checks, node creation), the CPU reference kernel, and the kernel pieces other
//! backends need. Adding an op is a change to one of these files plus its backend lines.

pub(crate) mod binary;
pub(crate) mod linalg;
pub(crate) mod matmul;
pub(crate) mod movement;
pub(crate) mod reduce;
pub(crate) mod softmax;
pub(crate) mod unary;

pub(crate) use binary::BinaryOp;
pub(crate) use reduce::ReduceOp;
pub(crate) use unary::UnaryOp;
