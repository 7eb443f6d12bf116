//! Elementwise functions of two tensors, with numpy broadcasting.

use crate::error::Result;
use crate::graph::Op;
use crate::shape::{broadcast_shapes, for_each_offsets, Layout};
use crate::Tensor;

/// An elementwise function of two arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }

    /// The CPU reference for one pair (NaN in either operand of maximum/minimum gives NaN).
    pub fn eval(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.max(b)
                }
            }
            BinaryOp::Minimum => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.min(b)
                }
            }
        }
    }
}

#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
impl BinaryOp {
    /// The WGSL expression for one pair (helpers `tm_*` live in `shaders/prelude.wgsl`; the
    /// arithmetic ones keep IEEE results for NaN and infinite operands, which shader compilers
    /// may otherwise fold away, e.g. `x - x` to 0).
    pub fn wgsl(self, a: &str, b: &str) -> String {
        match self {
            BinaryOp::Add => format!("tm_add({a}, {b})"),
            BinaryOp::Sub => format!("tm_sub({a}, {b})"),
            BinaryOp::Mul => format!("tm_mul({a}, {b})"),
            BinaryOp::Div => format!("tm_div({a}, {b})"),
            BinaryOp::Pow => format!("tm_pow({a}, {b})"),
            BinaryOp::Maximum => format!("tm_max({a}, {b})"),
            BinaryOp::Minimum => format!("tm_min({a}, {b})"),
        }
    }
}

/// CPU kernel: both inputs are read through their layouts broadcast to `out_shape`.
pub(crate) fn cpu(
    op: BinaryOp,
    a: &[f32],
    la: &Layout,
    b: &[f32],
    lb: &Layout,
    out_shape: &[usize],
) -> Vec<f32> {
    let la = la.broadcast_to(out_shape);
    let lb = lb.broadcast_to(out_shape);
    let n = la.numel();
    let mut out = Vec::with_capacity(n);
    if la.is_contiguous() && lb.is_contiguous() {
        let (a, b) = (&a[la.offset..la.offset + n], &b[lb.offset..lb.offset + n]);
        out.resize(n, 0.0);
        crate::backend::cpu::par_map(&mut out, |i, o| {
            for ((o, &x), &y) in o.iter_mut().zip(&a[i..]).zip(&b[i..]) {
                *o = op.eval(x, y);
            }
        });
    } else {
        for_each_offsets([&la, &lb], |[i, j]| out.push(op.eval(a[i], b[j])));
    }
    out
}

impl Tensor {
    fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        self.check_device(op.name(), other)?;
        let shape = broadcast_shapes(op.name(), self.shape(), other.shape())?;
        self.derive(Op::Binary(op), vec![self.clone(), other.clone()], shape)
    }
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $method:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                ///
                /// Shapes broadcast as in numpy (a scalar, shape `[]`, goes with anything); shapes
                /// that do not broadcast are an [`Error::Shape`](crate::Error::Shape).
                pub fn $method(&self, other: &Tensor) -> Result<Tensor> {
                    self.binary(BinaryOp::$op, other)
                }
            )*
        }
    };
}

binary_methods! {
    /// Elementwise `a + b`.
    add => Add;
    /// Elementwise `a - b`.
    sub => Sub;
    /// Elementwise `a · b`.
    mul => Mul;
    /// Elementwise `a / b` (IEEE: `x/0` is ±inf, `0/0` NaN).
    div => Div;
    /// Elementwise `aᵇ` (IEEE `powf`: a negative base with a non-integer exponent is NaN).
    pow => Pow;
    /// Elementwise maximum (NaN if either is NaN).
    maximum => Maximum;
    /// Elementwise minimum (NaN if either is NaN).
    minimum => Minimum;
}
