//! Elementwise functions of one tensor.

use crate::error::Result;
use crate::graph::Op;
use crate::shape::Layout;
use crate::Tensor;

/// An elementwise function of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Relu,
    Gelu,
    GeluTanh,
    Silu,
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::Silu => "silu",
        }
    }

    /// The CPU reference for one element (IEEE semantics: `log(-1)` is NaN, `exp(1000)` is inf).
    pub fn eval(self, x: f32) -> f32 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Relu => {
                if x.is_nan() {
                    x
                } else {
                    x.max(0.0)
                }
            }
            UnaryOp::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
            UnaryOp::GeluTanh => {
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
            }
            UnaryOp::Silu => x * sigmoid(x),
        }
    }
}

#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
impl UnaryOp {
    /// The WGSL expression for one element `x` (helpers `tm_*` live in `shaders/prelude.wgsl`).
    pub fn wgsl(self, x: &str) -> String {
        match self {
            UnaryOp::Neg => format!("(-{x})"),
            UnaryOp::Abs => format!("abs({x})"),
            UnaryOp::Exp => format!("tm_exp({x})"),
            UnaryOp::Log => format!("tm_log({x})"),
            UnaryOp::Sqrt => format!("tm_sqrt({x})"),
            UnaryOp::Rsqrt => format!("tm_div(1.0, tm_sqrt({x}))"),
            UnaryOp::Sin => format!("tm_sin({x})"),
            UnaryOp::Cos => format!("tm_cos({x})"),
            UnaryOp::Tanh => format!("tm_tanh({x})"),
            UnaryOp::Sigmoid => format!("tm_sigmoid({x})"),
            UnaryOp::Relu => format!("tm_relu({x})"),
            UnaryOp::Gelu => format!("tm_gelu({x})"),
            UnaryOp::GeluTanh => format!("tm_gelu_tanh({x})"),
            UnaryOp::Silu => format!("tm_mul({x}, tm_sigmoid({x}))"),
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    // Both branches avoid exp overflow to inf/inf.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// CPU kernel: applies `op` to every element of a strided input, dense row-major output.
pub(crate) fn cpu(op: UnaryOp, x: &[f32], layout: &Layout) -> Vec<f32> {
    let mut out = Vec::with_capacity(layout.numel());
    if layout.is_contiguous() {
        out.extend(
            x[layout.offset..layout.offset + layout.numel()]
                .iter()
                .map(|&v| op.eval(v)),
        );
    } else {
        layout.for_each_offset(|o| out.push(op.eval(x[o])));
    }
    out
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $method:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $method(&self) -> Result<Tensor> {
                    self.derive(Op::Unary(UnaryOp::$op), vec![self.clone()], self.shape().to_vec())
                }
            )*
        }
    };
}

unary_methods! {
    /// Elementwise `-x`.
    neg => Neg;
    /// Elementwise `|x|`.
    abs => Abs;
    /// Elementwise `eˣ` (`exp(1000)` is `inf`, a value, not an error).
    exp => Exp;
    /// Elementwise natural logarithm (`log(0)` is `-inf`, `log(-1)` is NaN).
    log => Log;
    /// Elementwise square root (NaN below 0).
    sqrt => Sqrt;
    /// Elementwise `1/√x`.
    rsqrt => Rsqrt;
    /// Elementwise sine.
    sin => Sin;
    /// Elementwise cosine.
    cos => Cos;
    /// Elementwise hyperbolic tangent.
    tanh => Tanh;
    /// Elementwise logistic function `1/(1+e⁻ˣ)`.
    sigmoid => Sigmoid;
    /// Elementwise `max(x, 0)` (NaN stays NaN).
    relu => Relu;
    /// GELU, exact form: `x·Φ(x) = ½x(1 + erf(x/√2))`.
    gelu => Gelu;
    /// GELU, tanh approximation: `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    gelu_tanh => GeluTanh;
    /// SiLU (swish): `x·sigmoid(x)`.
    silu => Silu;
}
