//! f32 elementary functions for the CPU kernels: the algorithms and constants of the WGSL
//! prelude (`src/codegen/prelude.wgsl`), written without branches or library calls so that loops
//! over slices vectorize, and keeping IEEE special values (NaN in, NaN out; ±inf limits). Their
//! error bounds are README.md's precision table, checked against f64 on every device.

// The coefficients are written as published (Cephes, A&S) and as in the WGSL prelude; the
// compiler rounds them to the same f32 values on both sides.
#![allow(clippy::excessive_precision)]

/// Evaluates `$call` (an `#[inline(always)]` loop) compiled for the widest vector unit the CPU
/// has: AVX-512 or AVX2 on x86-64, detected at run time (the build targets the SSE2 baseline),
/// else the build's own target (wasm: simd128). Every width gives the same bits: rustc never
/// contracts `a * b + c` into an FMA, and the arithmetic is the same IEEE operations lane by
/// lane.
macro_rules! widest {
    ($call:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[target_feature(enable = "avx2")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the feature (checked just above).
                return unsafe { avx512(|| $call) };
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { avx2(|| $call) };
            }
        }
        $call
    }};
}
pub(crate) use widest;

/// The core of Cephes' expf for a clamped argument `c`: `t = c·log₂e + round`, where `round`
/// (1.5·2²³, plus a bias) makes the sum land on an integer `n` held in `t`'s low mantissa bits
/// (a float → int conversion does not vectorize on x86-64's baseline), and `p ≈ eʳ` for
/// `r = c − n·ln 2` (ln 2 in two parts; a degree-6 polynomial). Returns `(t, p)`.
#[inline(always)]
fn exp_core(c: f32, round: f32) -> (f32, f32) {
    let t = c * std::f32::consts::LOG2_E + round;
    let n = t - round;
    let r = c - n * 0.693_359_4;
    let r = r - n * -2.121_944_4e-4;
    let rr = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1)
        * rr
        + r
        + 1.0;
    (t, p)
}

/// `eˣ` (Cephes' expf: [`exp_core`], then 2ⁿ built on bits; ≤ 4 ulp). Rounds `x·log₂e` to
/// nearest with the 1.5·2²³ trick instead of `floor`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    let (t, p) = exp_core(x.clamp(-104.0, 89.0), ROUND);
    // 2ⁿ as two exact powers of two (each exponent within [-76, 64]).
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let h = k >> 1;
    let s1 = f32::from_bits((h.wrapping_add(127) as u32) << 23);
    let s2 = f32::from_bits((k.wrapping_sub(h).wrapping_add(127) as u32) << 23);
    let mut e = p * s1 * s2;
    if x > 88.722_84 {
        e = f32::INFINITY;
    }
    if x < -103.972_08 {
        e = 0.0;
    }
    if x.is_nan() {
        x
    } else {
        e
    }
}

/// `eˣ` for `x ≤ 0` (softmax's `x − max`; inside sigmoid, tanh and erfc), NaN left to the
/// caller: [`exp_core`] with `n + 127` read straight off the rounding sum's low bits into the
/// exponent field (no two-factor scaling, no special cases), so a loop runs about a third fewer
/// operations (within 7.8e-8 relative of eˣ on [−87, 0]). Results below 2⁻¹²⁶ (`x < −87`) are
/// 0, as GPUs flush them: next to a softmax row's largest term, 1, or to sigmoid's 1 + e⁻ˣ, they
/// are below f32's resolution.
#[inline(always)]
pub(crate) fn exp_nonpos(x: f32) -> f32 {
    // 1.5·2²³ + 127: `t`'s low mantissa bits hold n + 127 (in [1, 127] for c in [−87, 0]).
    const ROUND_BIASED: f32 = 12_583_039.0;
    let (t, p) = exp_core(if x < -87.0 { -87.0 } else { x }, ROUND_BIASED);
    let e = p * f32::from_bits(t.to_bits() << 23);
    if x < -87.0 {
        0.0
    } else {
        e
    }
}

/// `tanh x` (Cephes' tanhf: an odd polynomial below 0.625, `(1 − e⁻²ˣ)/(1 + e⁻²ˣ)` above).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    // A select, not `f32::min`: wasm's `f32.min` differs on NaN, so rustc calls libm's fminf
    // there, one element at a time (NaN is handled at the end).
    let a = x.abs();
    let a = if a < 10.0 { a } else { 10.0 };
    let z = a * a;
    let small =
        ((((-5.704_988_7e-3 * z + 2.063_908_9e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z
            - 3.333_328_2e-1)
            * z
            * a
            + a;
    let e = exp_nonpos(-2.0 * a);
    let large = (1.0 - e) / (1.0 + e);
    let t = if a < 0.625 { small } else { large };
    let t = if x < 0.0 { -t } else { t };
    if x.is_nan() {
        x
    } else {
        t
    }
}

/// `1/(1 + e⁻ˣ)`, with `exp` of a non-positive argument only (no inf/inf; 0 below −87:
/// sigmoid(x) < 2⁻¹²⁶ there): `r = 1/(1 + e^−|x|)`, then `r` or `e^−|x|·r` — one division per
/// element, not one per branch (a vector loop computes both branches).
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpos(-x.abs());
    let r = 1.0 / (1.0 + e);
    let s = if x >= 0.0 { r } else { e * r };
    if x.is_nan() {
        x
    } else {
        s
    }
}

/// `erf x`: below 1, Cephes' erff polynomial `x·T(x²)` (about 2 ulp relative); above,
/// Abramowitz & Stegun 7.1.26 (1.5e-7 absolute, where erf ≥ 0.84).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let z = x * x;
    let small = x
        * (std::f32::consts::FRAC_2_SQRT_PI
            + z * (-0.376_126_26
                + z * (0.112_835_85
                    + z * (-0.026_853_812
                        + z * (0.005_188_327_7
                            + z * (-0.000_801_019_36 + z * 0.000_078_538_61))))));
    let a = x.abs();
    let y = 1.0 - erfc_nonneg(a);
    let large = if x < 0.0 { -y } else { y };
    if a < 1.0 {
        small
    } else {
        large
    }
}

/// `erfc a` for `a ≥ 0` (Abramowitz & Stegun 7.1.26: `t·P(t)·e^(−a²)`, `t = 1/(1 + p·a)`;
/// within 1.5e-7 absolute of erfc on the whole half-line, and small where erfc is small).
#[inline(always)]
fn erfc_nonneg(a: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    p * exp_nonpos(-a * a)
}

/// GELU `x·Φ(x)`, with `Φ(−|x|) = ½·erfc(|x|/√2)` from one branch-free formula: `x·(1 − Φ(−x))`
/// for `x ≥ 0`, `x·Φ(−|x|)` below (no `1 + erf` cancellation in the negative tail, where the
/// result keeps its relative accuracy). The WGSL prelude's `tm_gelu` is the same formula.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let h = 0.5 * erfc_nonneg(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    x * if x >= 0.0 { 1.0 - h } else { h }
}

/// `ln x` (Cephes' logf: `x = m·2ᵉ` with `m` in [√½, √2) read off the bits, a degree-9
/// polynomial in `m − 1`, `e·ln 2` added in two parts; about 1 ulp). Subnormals are scaled by
/// 2²³ first; `ln 0 = −inf`, `ln x = NaN` below 0, `ln inf = inf`.
#[inline(always)]
pub(crate) fn log(x: f32) -> f32 {
    let tiny = x < f32::MIN_POSITIVE;
    let xs = if tiny { x * 8_388_608.0 } else { x };
    let bits = xs.to_bits() as i32;
    // m in [0.5, 1), then into [√½, √2) by taking one factor of 2 from the exponent.
    let m = f32::from_bits(((bits & 0x007F_FFFF) | 0x3F00_0000) as u32);
    let mut e = ((bits >> 23) & 0xFF) - 126 - if tiny { 23 } else { 0 };
    let low = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= low as i32;
    let f = if low { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let y = ((((((((7.037_683_6e-2 * f - 1.151_461e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333_1e-1)
        * f
        * z;
    let fe = e as f32;
    let y = y + -2.121_944_4e-4 * fe - 0.5 * z;
    let mut r = f + y + 0.693_359_4 * fe;
    if x == 0.0 {
        r = f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        r = x;
    }
    if x < 0.0 || x.is_nan() {
        r = f32::NAN;
    }
    r
}

/// Below this magnitude [`sin_reduced`]/[`cos_reduced`] are accurate (the three-part reduction
/// by π/4 holds); above it [`sin`]/[`cos`] call the platform's libm, as the GPU calls its
/// builtin (an f32 that large is itself only known to within 2⁻²⁴·|x|).
pub(crate) const SINCOS_REDUCED_MAX: f32 = 8192.0;

/// sin or cos for |x| ≤ [`SINCOS_REDUCED_MAX`] (Cephes' sinf/cosf, the WGSL prelude's
/// `tm_sincos`): `x` reduced by multiples of π/4 in three parts, then the sine or cosine
/// polynomial of the octant. NaN for ±inf and NaN; meaningless above the bound.
#[inline(always)]
fn sincos_reduced(x: f32, cosine: bool) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    let a = x.abs();
    // n = round(a·2/π): the octant index j = 2n (Cephes' trunc(a·4/π) made even), read off
    // the low mantissa bits as in `exp`.
    let t = a * std::f32::consts::FRAC_2_PI + ROUND;
    let n = t - ROUND;
    let q = (t.to_bits() as i32).wrapping_sub(0x4B40_0000) + cosine as i32;
    let y = n + n;
    let z = ((a - y * 0.785_156_25) - y * 2.418_756_5e-4) - y * 3.774_895e-8;
    let zz = z * z;
    let s = ((-1.951_529_6e-4 * zz + 8.332_161e-3) * zz - 1.666_665_5e-1) * zz * z + z;
    let c =
        ((2.443_315_7e-5 * zz - 1.388_731_6e-3) * zz + 4.166_664_6e-2) * zz * zz - 0.5 * zz + 1.0;
    // Odd quadrants take the other polynomial; quadrants 2 and 3 negate; sin is odd.
    let r = if q & 1 == 1 { c } else { s };
    let neg = (q & 2 == 2) != (!cosine && x < 0.0);
    let r = if neg { -r } else { r };
    if x.is_finite() {
        r
    } else {
        f32::NAN
    }
}

/// `sin x` for |x| ≤ [`SINCOS_REDUCED_MAX`] (no branch on the magnitude: loops vectorize).
#[inline(always)]
pub(crate) fn sin_reduced(x: f32) -> f32 {
    sincos_reduced(x, false)
}

/// `cos x` for |x| ≤ [`SINCOS_REDUCED_MAX`].
#[inline(always)]
pub(crate) fn cos_reduced(x: f32) -> f32 {
    sincos_reduced(x, true)
}

/// `sin x` (about 1 ulp absolute to |x| ≤ 8192, libm above).
#[inline(always)]
pub(crate) fn sin(x: f32) -> f32 {
    if x.abs() > SINCOS_REDUCED_MAX {
        x.sin()
    } else {
        sin_reduced(x)
    }
}

/// `cos x` (about 1 ulp absolute to |x| ≤ 8192, libm above).
#[inline(always)]
pub(crate) fn cos(x: f32) -> f32 {
    if x.abs() > SINCOS_REDUCED_MAX {
        x.cos()
    } else {
        cos_reduced(x)
    }
}
