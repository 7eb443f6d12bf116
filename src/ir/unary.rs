//! Elementwise functions of one tensor: the whole definition of each, in one place.
//!
//! To add one: a line in [`unary_list!`] (variant, method name, doc), then its arms in
//! [`UnaryOp::eval`] (the f32 reference), [`UnaryOp::wgsl`] and `UnaryOp::mlx`. The `Tensor`
//! method, the JS method (camelCase of the name) and the backends follow from the list; the
//! exhaustive matches make a missing arm a compile error.

/// The unary ops: `Variant => method;`, each with the doc of its `Tensor` method. Invokes
/// `$m! { .. }` with the list (the enum below and the `Tensor` methods are made from it).
macro_rules! unary_list {
    ($m:ident) => {
        $m! {
            /// Elementwise `-x`.
            Neg => neg;
            /// Elementwise `|x|`.
            Abs => abs;
            /// Elementwise `eˣ` (`exp(1000)` is `inf`, a value, not an error).
            Exp => exp;
            /// Elementwise natural logarithm (`log(0)` is `-inf`, `log(-1)` is NaN).
            Log => log;
            /// Elementwise square root (NaN below 0).
            Sqrt => sqrt;
            /// Elementwise `1/√x`.
            Rsqrt => rsqrt;
            /// Elementwise sine.
            Sin => sin;
            /// Elementwise cosine.
            Cos => cos;
            /// Elementwise hyperbolic tangent.
            Tanh => tanh;
            /// Elementwise logistic function `1/(1+e⁻ˣ)`.
            Sigmoid => sigmoid;
            /// Elementwise `max(x, 0)` (NaN stays NaN).
            Relu => relu;
            /// GELU, exact form: `x·Φ(x) = ½x(1 + erf(x/√2))`.
            Gelu => gelu;
            /// GELU, tanh approximation: `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
            GeluTanh => gelu_tanh;
            /// SiLU (swish): `x·sigmoid(x)`.
            Silu => silu;
            /// The error function `erf(x) = 2/√π ∫₀ˣ e^(-t²) dt`.
            Erf => erf;
        }
    };
}
pub(crate) use unary_list;

macro_rules! define_unary {
    ($($(#[doc = $doc:literal])* $variant:ident => $method:ident;)*) => {
        /// An elementwise function of one argument.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum UnaryOp {
            $($(#[doc = $doc])* $variant,)*
        }

        impl UnaryOp {
            /// Every unary op, in the order of the list.
            #[allow(dead_code)]
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$variant,)*];

            /// The doc of the op's `Tensor` method (its lines joined by newlines).
            #[allow(dead_code)]
            pub fn doc(self) -> &'static str {
                match self {
                    $(UnaryOp::$variant => concat!($($doc, "\n"),*),)*
                }
            }

            /// The name users know (the Rust method; JS uses its camelCase).
            pub fn name(self) -> &'static str {
                match self {
                    $(UnaryOp::$variant => stringify!($method),)*
                }
            }

            /// `dst[i] = self.eval(src[i])`, with the match on the op outside the loop: each
            /// arm is a loop over one op's reference, which the compiler can vectorize where
            /// that arithmetic allows. Bit-identical to [`UnaryOp::eval`] per element.
            #[allow(dead_code)]
            pub fn eval_slice(self, src: &[f32], dst: &mut [f32]) {
                // In the browser build, GELU in hand-written SIMD (the same operations in the
                // same order: the same bits; `ir::simd128`).
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                if self == UnaryOp::Gelu {
                    return crate::ir::simd128::gelu(src, dst);
                }
                crate::ir::math::widest!(self.eval_slice_portable(src, dst))
            }

            /// [`UnaryOp::eval_slice`] for the build's baseline vector unit.
            #[inline(always)]
            fn eval_slice_portable(self, src: &[f32], dst: &mut [f32]) {
                match self {
                    $(UnaryOp::$variant => {
                        for (o, &x) in dst.iter_mut().zip(src) {
                            *o = UnaryOp::$variant.eval_vector(x);
                        }
                    })*
                }
                self.fix_slice(src, dst);
            }
        }
    };
}
unary_list!(define_unary);

use super::math;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

impl UnaryOp {
    /// The op called `name`, if there is one.
    #[allow(dead_code)]
    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// The f32 reference for one element (IEEE semantics: `log(-1)` is NaN, `exp(1000)` is
    /// inf). The CPU backend runs exactly this; exp, tanh, sigmoid, erf, sin and cos are the
    /// WGSL prelude's algorithms (`super::math`), so the CPU and the GPU share their error
    /// bounds; log is Cephes' logf.
    #[inline(always)]
    pub fn eval(self, x: f32) -> f32 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Exp => math::exp(x),
            UnaryOp::Log => math::log(x),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
            UnaryOp::Sin => math::sin(x),
            UnaryOp::Cos => math::cos(x),
            UnaryOp::Tanh => math::tanh(x),
            UnaryOp::Sigmoid => math::sigmoid(x),
            UnaryOp::Relu => {
                // A select, not `f32::max` (a libm call per element in wasm).
                if x > 0.0 || x.is_nan() {
                    x
                } else {
                    0.0
                }
            }
            UnaryOp::Gelu => math::gelu(x),
            UnaryOp::GeluTanh => {
                0.5 * x * (1.0 + math::tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
            }
            UnaryOp::Silu => x * math::sigmoid(x),
            UnaryOp::Erf => math::erf(x),
        }
    }

    /// [`UnaryOp::eval`] without its rare branches into libm (sin and cos beyond
    /// [`math::SINCOS_REDUCED_MAX`]), so that a loop over it vectorizes;
    /// [`UnaryOp::fix_slice`] then redoes those elements.
    #[inline(always)]
    fn eval_vector(self, x: f32) -> f32 {
        match self {
            UnaryOp::Sin => math::sin_reduced(x),
            UnaryOp::Cos => math::cos_reduced(x),
            _ => self.eval(x),
        }
    }

    /// Redoes the elements where [`UnaryOp::eval_vector`] differs from [`UnaryOp::eval`].
    fn fix_slice(self, src: &[f32], dst: &mut [f32]) {
        if matches!(self, UnaryOp::Sin | UnaryOp::Cos) {
            for (o, &x) in dst.iter_mut().zip(src) {
                if x.abs() > math::SINCOS_REDUCED_MAX {
                    *o = self.eval(x);
                }
            }
        }
    }

    /// The WGSL expression for one element `x` (helpers `tm_*` live in
    /// `src/codegen/prelude.wgsl`).
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
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
            UnaryOp::Erf => format!("tm_erf({x})"),
        }
    }

    /// The op as MLX operations.
    #[cfg(all(feature = "mlx", not(target_arch = "wasm32")))]
    pub fn mlx(self, x: &mlx_rs::Array) -> Result<mlx_rs::Array, mlx_rs::error::Exception> {
        use mlx_rs::{ops, Array};
        let f = Array::from_f32;
        Ok(match self {
            UnaryOp::Neg => x.negative()?,
            UnaryOp::Abs => x.abs()?,
            UnaryOp::Exp => x.exp()?,
            UnaryOp::Log => x.log()?,
            UnaryOp::Sqrt => x.sqrt()?,
            UnaryOp::Rsqrt => x.rsqrt()?,
            UnaryOp::Sin => x.sin()?,
            UnaryOp::Cos => x.cos()?,
            UnaryOp::Tanh => ops::tanh(x)?,
            UnaryOp::Sigmoid => ops::sigmoid(x)?,
            UnaryOp::Relu => ops::maximum(x, f(0.0))?,
            UnaryOp::Gelu => {
                let e = ops::erf(x.multiply(f(std::f32::consts::FRAC_1_SQRT_2))?)?;
                x.multiply(f(0.5))?.multiply(e.add(f(1.0))?)?
            }
            UnaryOp::GeluTanh => {
                let x3 = x.multiply(x)?.multiply(x)?;
                let inner = x
                    .add(x3.multiply(f(0.044_715))?)?
                    .multiply(f(SQRT_2_OVER_PI))?;
                x.multiply(f(0.5))?
                    .multiply(ops::tanh(&inner)?.add(f(1.0))?)?
            }
            UnaryOp::Silu => x.multiply(ops::sigmoid(x)?)?,
            UnaryOp::Erf => ops::erf(x)?,
        })
    }
}
