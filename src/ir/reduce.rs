//! Reductions over any set of axes: the whole definition of each.
//!
//! To add one: a line in [`reduce_list!`], then its arms in [`ReduceOp::identity`],
//! [`ReduceOp::combine`], [`ReduceOp::wgsl_combine`] and `ReduceOp::mlx` (and
//! [`ReduceOp::is_sum`] for sums, which accumulate compensated).

/// The reductions: `Variant => method;`, each with the doc of its `Tensor` method.
macro_rules! reduce_list {
    ($m:ident) => {
        $m! {
            /// Sum over `axes`. With `keepdim` the reduced axes stay as size 1. An empty `axes`
            /// list reduces nothing (as in numpy); an axis out of range or repeated is an
            /// [`Error::Axis`](crate::Error::Axis).
            ///
            /// ```
            /// # let dev = tmath::Device::cpu()?;
            /// let a = tmath::Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3], &dev)?;
            /// assert_eq!(a.sum(&[1], false)?.to_vec()?, vec![6., 15.]);
            /// assert_eq!(a.sum(&[0, 1], true)?.shape(), &[1, 1]);
            /// # Ok::<(), tmath::Error>(())
            /// ```
            Sum => sum;
            /// Mean over `axes` (see [`Tensor::sum`](crate::Tensor::sum) for `axes` and `keepdim`).
            Mean => mean;
            /// Maximum over `axes` (see [`Tensor::sum`](crate::Tensor::sum)); NaN if any reduced
            /// element is NaN. Reducing an empty axis is an error.
            Max => max;
            /// Minimum over `axes` (see [`Tensor::max`](crate::Tensor::max)).
            Min => min;
        }
    };
}
pub(crate) use reduce_list;

macro_rules! define_reduce {
    ($($(#[doc = $doc:literal])* $variant:ident => $method:ident;)*) => {
        /// How values along the reduced axes are combined.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum ReduceOp {
            $(#[doc = stringify!($method)] $variant,)*
        }

        impl ReduceOp {
            /// Every reduction, in the order of the list.
            #[allow(dead_code)]
            pub const ALL: &'static [ReduceOp] = &[$(ReduceOp::$variant,)*];

            /// The doc of the op's `Tensor` method (its lines joined by newlines).
            #[allow(dead_code)]
            pub fn doc(self) -> &'static str {
                match self {
                    $(ReduceOp::$variant => concat!($($doc, "\n"),*),)*
                }
            }

            /// The name users know (the Rust method).
            pub fn name(self) -> &'static str {
                match self {
                    $(ReduceOp::$variant => stringify!($method),)*
                }
            }
        }
    };
}
reduce_list!(define_reduce);

impl ReduceOp {
    /// The op called `name`, if there is one.
    #[allow(dead_code)]
    pub fn from_name(name: &str) -> Option<ReduceOp> {
        ReduceOp::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// Sum-like: accumulated with compensation (Kahan on the GPU, f64 on the CPU) and divided
    /// by the count for the mean.
    pub fn is_sum(self) -> bool {
        matches!(self, ReduceOp::Sum | ReduceOp::Mean)
    }

    /// Max and min have no identity: reducing an empty axis is an error.
    pub fn has_identity(self) -> bool {
        self.is_sum()
    }

    /// The value of an empty reduction (and where a fold starts).
    pub fn identity(self) -> f32 {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
            ReduceOp::Min => f32::INFINITY,
        }
    }

    /// The f32 reference of one combining step of max/min (NaN propagates); sums go through
    /// f64 in the reference, see the CPU backend.
    pub fn combine(self, a: f32, b: f32) -> f32 {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => a + b,
            ReduceOp::Max | ReduceOp::Min if a.is_nan() || b.is_nan() => f32::NAN,
            ReduceOp::Max => a.max(b),
            ReduceOp::Min => a.min(b),
        }
    }

    /// WGSL: the identity and the combining expression of `a` and `b`.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn wgsl_combine(self) -> (&'static str, &'static str) {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => ("0.0", "(a + b)"),
            ReduceOp::Max => ("-tm_inf()", "tm_max(a, b)"),
            ReduceOp::Min => ("tm_inf()", "tm_min(a, b)"),
        }
    }

    /// The reduction as an MLX operation over `axes` (non-empty).
    #[cfg(all(feature = "mlx", not(target_arch = "wasm32")))]
    pub fn mlx(
        self,
        x: &mlx_rs::Array,
        axes: &[i32],
        keepdim: bool,
    ) -> Result<mlx_rs::Array, mlx_rs::error::Exception> {
        match self {
            ReduceOp::Sum => x.sum_axes(axes, keepdim),
            ReduceOp::Mean => x.mean_axes(axes, keepdim),
            ReduceOp::Max => x.max_axes(axes, keepdim),
            ReduceOp::Min => x.min_axes(axes, keepdim),
        }
    }
}

/// The output shape of reducing `shape` over `axes` (validated).
pub(crate) fn reduced_shape(shape: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.len());
    for (d, &n) in shape.iter().enumerate() {
        if !axes.contains(&d) {
            out.push(n);
        } else if keepdim {
            out.push(1);
        }
    }
    out
}
