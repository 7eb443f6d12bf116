//! The op vocabulary, at the bottom of the crate: every primitive the graph can hold, with its
//! name, shape rule, f32 reference, WGSL expression and MLX mapping. Backends match on [`Op`]
//! exhaustively, so a new primitive cannot be silently missing from one. Nothing here depends
//! on the graph, the devices or the backends.
//!
//! The elementwise and reduction families are data-driven lists ([`unary_list!`],
//! [`binary_list!`], [`reduce_list!`]): the enums, the `Tensor` methods and the JS method
//! names are all made from them. Adding a unary op is a change to `unary.rs` alone.

pub(crate) mod binary;
pub(crate) mod math;
pub(crate) mod reduce;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd128;
pub(crate) mod unary;

pub(crate) use binary::{binary_list, BinaryOp};
pub(crate) use reduce::{reduce_list, reduced_shape, ReduceOp};
pub(crate) use unary::{unary_list, UnaryOp};

use crate::error::{Error, Result};
use crate::shape::{broadcast_shapes, Layout};

/// What a node computes. The data each op needs lives here; the output shape lives in the node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    /// Data given by the user, realized (uploaded) when the node was made.
    Data,
    /// Standard normal samples, see [`crate::random`].
    Randn {
        seed: u64,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keepdim: bool,
    },
    Softmax {
        axis: usize,
        log: bool,
    },
    /// `[.., m, k] × [.., k, n]` with broadcast batch dims.
    MatMul,
    /// Same elements, new shape (a view when the layout allows it, a copy otherwise).
    Reshape,
    Permute(Vec<usize>),
    /// Thin SVD of an `m × n` matrix, packed as `U (m×k) | S (k) | Vᵀ (k×n)` in one flat buffer.
    Svd {
        m: usize,
        n: usize,
    },
    /// A dense window of the input's flat (row-major) elements, starting at `offset`.
    Slice {
        offset: usize,
    },
    /// Every element equal to `f32::from_bits(bits)`: no input, no buffer until a kernel needs
    /// one (fused kernels inline it as a literal).
    Full {
        bits: u32,
    },
    /// `cond != 0 ? a : b` elementwise over `[cond, a, b]`, all three broadcast.
    Where,
    /// The input broadcast (numpy rules) to the node's shape: a view with zero strides.
    Expand,
}

impl Op {
    /// The op's name as users know it (used in messages and kernel names).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Data => "data",
            Op::Randn { .. } => "randn",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Reduce { op, .. } => op.name(),
            Op::Softmax { log: false, .. } => "softmax",
            Op::Softmax { log: true, .. } => "log_softmax",
            Op::MatMul => "matmul",
            Op::Reshape => "reshape",
            Op::Permute(_) => "permute",
            Op::Svd { .. } => "svd",
            Op::Slice { .. } => "slice",
            Op::Full { .. } => "full",
            Op::Where => "where_cond",
            Op::Expand => "expand",
        }
    }

    /// Ops whose result is kept with the node once computed, whether or not it was asked for:
    /// the SVD, whose one result feeds three user-visible tensors read separately.
    pub fn keeps_value(&self) -> bool {
        matches!(self, Op::Svd { .. })
    }

    /// Elementwise in the flat row-major index (fusable into one loop): unary, binary, select,
    /// constants, and reshape, which keeps the flat index.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Full { .. } | Op::Reshape
        )
    }

    /// Always a view: new strides over the input's buffer, never a kernel.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn is_view(&self) -> bool {
        matches!(self, Op::Permute(_) | Op::Slice { .. } | Op::Expand)
    }

    /// The layout of this op's result as a view of its input's `input` layout; `None` for ops
    /// that are not views, and for a reshape (or slice) whose input strides do not allow one.
    pub fn view(&self, shape: &[usize], input: &Layout) -> Option<Layout> {
        match self {
            Op::Permute(perm) => Some(input.permute(perm)),
            Op::Reshape => input.reshape(shape),
            Op::Expand => Some(input.broadcast_to(shape)),
            Op::Slice { offset } if input.is_contiguous() => {
                Some(Layout::contiguous_at(shape, input.offset + offset))
            }
            _ => None,
        }
    }
}

/// The output shape of `a × b`, or the error that names both shapes.
pub(crate) fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.len() < 2 || b.len() < 2 {
        return Err(Error::shape(
            "matmul",
            format!("both operands must be at least 2-D, got {a:?} × {b:?}"),
        ));
    }
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(Error::shape(
            "matmul",
            format!("inner dimensions differ: {a:?} × {b:?} ({k} vs {k2})"),
        ));
    }
    let batch = broadcast_shapes("matmul", &a[..a.len() - 2], &b[..b.len() - 2]).map_err(|_| {
        Error::shape(
            "matmul",
            format!("batch dimensions of {a:?} × {b:?} cannot be broadcast together"),
        )
    })?;
    let mut out = batch;
    out.extend([m, n]);
    Ok(out)
}

/// Length of the packed `U | S | Vᵀ` buffer of an `m × n` thin SVD.
pub(crate) fn svd_packed_len(m: usize, n: usize) -> usize {
    let k = m.min(n);
    m * k + k + k * n
}
