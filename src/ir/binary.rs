//! Elementwise functions of two tensors (numpy broadcasting): the whole definition of each.
//!
//! To add one: a line in [`binary_list!`], then its arms in [`BinaryOp::eval`],
//! [`BinaryOp::wgsl`] and `BinaryOp::mlx`.

/// The binary ops: `Variant => method;`, each with the doc of its `Tensor` method.
macro_rules! binary_list {
    ($m:ident) => {
        $m! {
            /// Elementwise `a + b`.
            Add => add;
            /// Elementwise `a - b`.
            Sub => sub;
            /// Elementwise `a · b`.
            Mul => mul;
            /// Elementwise `a / b` (IEEE: `x/0` is ±inf, `0/0` NaN).
            Div => div;
            /// Elementwise `aᵇ` (IEEE `powf`: a negative base with a non-integer exponent is NaN).
            Pow => pow;
            /// Elementwise maximum (NaN if either is NaN).
            Maximum => maximum;
            /// Elementwise minimum (NaN if either is NaN).
            Minimum => minimum;
            /// Elementwise `a < b` as 1.0 or 0.0 (false where either is NaN).
            Lt => lt;
            /// Elementwise `a ≤ b` as 1.0 or 0.0 (false where either is NaN).
            Le => le;
            /// Elementwise `a > b` as 1.0 or 0.0 (false where either is NaN).
            Gt => gt;
            /// Elementwise `a ≥ b` as 1.0 or 0.0 (false where either is NaN).
            Ge => ge;
            /// Elementwise `a = b` as 1.0 or 0.0 (false where either is NaN; `-0 = +0`).
            Eq => eq;
            /// Elementwise `a ≠ b` as 1.0 or 0.0 (true where either is NaN).
            Ne => ne;
        }
    };
}
pub(crate) use binary_list;

macro_rules! define_binary {
    ($($(#[doc = $doc:literal])* $variant:ident => $method:ident;)*) => {
        /// An elementwise function of two arguments.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum BinaryOp {
            $($(#[doc = $doc])* $variant,)*
        }

        impl BinaryOp {
            /// Every binary op, in the order of the list.
            #[allow(dead_code)]
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$variant,)*];

            /// The doc of the op's `Tensor` method (its lines joined by newlines).
            #[allow(dead_code)]
            pub fn doc(self) -> &'static str {
                match self {
                    $(BinaryOp::$variant => concat!($($doc, "\n"),*),)*
                }
            }

            /// The name users know (the Rust method).
            pub fn name(self) -> &'static str {
                match self {
                    $(BinaryOp::$variant => stringify!($method),)*
                }
            }

            /// `dst[i] = self.eval(a[i], b[i])`, with the match on the op outside the loop (see
            /// `UnaryOp::eval_slice`). Bit-identical to [`BinaryOp::eval`] per element.
            #[allow(dead_code)]
            pub fn eval_slice(self, a: &[f32], b: &[f32], dst: &mut [f32]) {
                crate::ir::math::widest!(self.eval_slice_portable(a, b, dst))
            }

            /// [`BinaryOp::eval_slice`] for the build's baseline vector unit.
            #[inline(always)]
            fn eval_slice_portable(self, a: &[f32], b: &[f32], dst: &mut [f32]) {
                match self {
                    $(BinaryOp::$variant => {
                        for ((o, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                            *o = BinaryOp::$variant.eval(x, y);
                        }
                    })*
                }
            }
        }
    };
}
binary_list!(define_binary);

impl BinaryOp {
    /// The op called `name`, if there is one.
    #[allow(dead_code)]
    pub fn from_name(name: &str) -> Option<BinaryOp> {
        BinaryOp::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// The f32 reference for one pair (NaN in either operand of maximum/minimum gives NaN).
    #[inline(always)]
    pub fn eval(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => {
                // Selects, not `f32::max`/`min` (a libm call per element in wasm).
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else if a > b {
                    a
                } else {
                    b
                }
            }
            BinaryOp::Minimum => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else if a < b {
                    a
                } else {
                    b
                }
            }
            BinaryOp::Lt => flag(a < b),
            BinaryOp::Le => flag(a <= b),
            BinaryOp::Gt => flag(a > b),
            BinaryOp::Ge => flag(a >= b),
            BinaryOp::Eq => flag(a == b),
            BinaryOp::Ne => flag(a != b),
        }
    }

    /// True for the comparisons (`lt` … `ne`): their result is 1.0 or 0.0 and has no gradient.
    #[allow(dead_code)]
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq | BinaryOp::Ne
        )
    }

    /// The WGSL expression for one pair (helpers `tm_*` live in `src/codegen/prelude.wgsl`;
    /// the arithmetic ones keep IEEE results for NaN and infinite operands, which shader
    /// compilers may otherwise fold away, e.g. `x - x` to 0).
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn wgsl(self, a: &str, b: &str) -> String {
        match self {
            BinaryOp::Add => format!("tm_add({a}, {b})"),
            BinaryOp::Sub => format!("tm_sub({a}, {b})"),
            BinaryOp::Mul => format!("tm_mul({a}, {b})"),
            BinaryOp::Div => format!("tm_div({a}, {b})"),
            BinaryOp::Pow => format!("tm_pow({a}, {b})"),
            BinaryOp::Maximum => format!("tm_max({a}, {b})"),
            BinaryOp::Minimum => format!("tm_min({a}, {b})"),
            BinaryOp::Lt => format!("tm_lt({a}, {b})"),
            BinaryOp::Le => format!("tm_le({a}, {b})"),
            BinaryOp::Gt => format!("tm_gt({a}, {b})"),
            BinaryOp::Ge => format!("tm_ge({a}, {b})"),
            BinaryOp::Eq => format!("tm_eq({a}, {b})"),
            BinaryOp::Ne => format!("tm_ne({a}, {b})"),
        }
    }

    /// The op as an MLX operation.
    #[cfg(all(feature = "mlx", not(target_arch = "wasm32")))]
    pub fn mlx(
        self,
        a: &mlx_rs::Array,
        b: &mlx_rs::Array,
    ) -> Result<mlx_rs::Array, mlx_rs::error::Exception> {
        use mlx_rs::ops;
        match self {
            BinaryOp::Add => a.add(b),
            BinaryOp::Sub => a.subtract(b),
            BinaryOp::Mul => a.multiply(b),
            BinaryOp::Div => a.divide(b),
            BinaryOp::Pow => a.power(b),
            BinaryOp::Maximum => ops::maximum(a, b),
            BinaryOp::Minimum => ops::minimum(a, b),
            BinaryOp::Lt => a.lt(b)?.as_type::<f32>(),
            BinaryOp::Le => a.le(b)?.as_type::<f32>(),
            BinaryOp::Gt => a.gt(b)?.as_type::<f32>(),
            BinaryOp::Ge => a.ge(b)?.as_type::<f32>(),
            BinaryOp::Eq => a.eq(b)?.as_type::<f32>(),
            BinaryOp::Ne => a.ne(b)?.as_type::<f32>(),
        }
    }
}

fn flag(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}
