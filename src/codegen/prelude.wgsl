// Helpers shared by every generated kernel. IEEE behaviour is kept explicit (NaN tests on bits,
// overflow-safe forms) because WGSL lets implementations assume finite values otherwise.

var<private> TM_NAN_BITS: u32 = 0x7fc00000u;

fn tm_nan() -> f32 {
    return bitcast<f32>(TM_NAN_BITS);
}

var<private> TM_INF_BITS: u32 = 0x7f800000u;

fn tm_inf() -> f32 {
    return bitcast<f32>(TM_INF_BITS);
}

fn tm_isnan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn tm_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) < 0x7f800000u;
}

fn tm_isinf(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}

fn tm_iszero(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0u;
}

// ±inf with the sign bit `sign` (0 or 0x80000000).
fn tm_signed_inf(sign: u32) -> f32 {
    return bitcast<f32>(TM_INF_BITS | sign);
}

fn tm_sign_xor(a: f32, b: f32) -> u32 {
    return (bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u;
}

// Arithmetic that keeps IEEE results for NaN and infinite operands. The hardware's +, − and ×
// are IEEE operations, but shader compilers may assume finite values and fold `x - x` to 0 or
// `x * 0` to 0 (Mesa does for `x - x`), wrong for infinite or NaN x. So each operand first
// passes through an XOR with `tm_zero()`, which each kernel defines as
// `select(0u, 1u, arrayLength(&out) < n)` for its own output count n: 0 when the kernel runs
// (its output binding holds the output), but no compiler can know the binding's size, so none
// can prove the two operands equal, or either a constant, and the operation runs as written.
// (A bound from the adapter's limits would not do: Mesa's range analysis folds
// `arrayLength(&out) >> 30u` to 0.) The two operands take different bits, so that `tm_o1(x)`
// and `tm_o2(x)` are not one expression either; each XOR also keeps a product from contracting
// into an FMA with a following sum (the CPU's rounding). Two integer XORs an operation, where
// telling the special cases apart on bits cost about twenty instructions (the 8-op chain over
// 64M on the H100: 0.359 → 0.198 ms).
fn tm_o1(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ tm_zero());
}

fn tm_o2(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ (tm_zero() << 1u));
}

fn tm_add(a: f32, b: f32) -> f32 {
    return tm_o1(a) + tm_o2(b);
}

fn tm_sub(a: f32, b: f32) -> f32 {
    return tm_o1(a) - tm_o2(b);
}

fn tm_mul(a: f32, b: f32) -> f32 {
    return tm_o1(a) * tm_o2(b);
}

fn tm_div(a: f32, b: f32) -> f32 {
    let sign = tm_sign_xor(a, b);
    // Only non-finite operands and zero divisors reach `special`.
    var special = select(tm_signed_inf(sign), bitcast<f32>(sign), tm_isinf(b) && tm_finite(a));
    special = select(special, tm_nan(), tm_isnan(a) || tm_isnan(b) || (tm_isinf(a) && tm_isinf(b)) || (tm_iszero(a) && tm_iszero(b)));
    return select(special, a / b, tm_finite(a) && tm_finite(b) && !tm_iszero(b));
}

// Builtins may turn NaN into anything (SwiftShader: exp(NaN) = inf); NaN in, NaN out.
fn tm_keepnan(x: f32, y: f32) -> f32 {
    return select(y, x, tm_isnan(x));
}

// exp of our own (Cephes' expf): builtins compute exp2(x·log₂e), whose rounded product costs
// up to |x|·2⁻²⁴ relative (llvmpipe: 3.7e-6 at x = 88). Here x = n·ln2 + r with ln2 in two
// parts, a degree-6 polynomial on |r| ≤ ln2/2, and 2ⁿ applied in two halves (each a normal
// power of two). About 2 ulp.
fn tm_exp(x: f32) -> f32 {
    let c = clamp(x, -104.0, 89.0);
    let n = floor(c * 1.44269504088896341 + 0.5);
    var r = c - n * 0.693359375;
    r = r - n * -2.12194440e-4;
    let rr = r * r;
    let p = (((((1.9875691500e-4 * r + 1.3981999507e-3) * r + 8.3334519073e-3) * r + 4.1665795894e-2) * r + 1.6666665459e-1) * r + 5.0000001201e-1) * rr + r + 1.0;
    // 2ⁿ as two exact powers of two built on bits (each exponent within [-76, 64]): cheaper
    // than ldexp, which some drivers expand into a library routine.
    let k = i32(n);
    let h = k >> 1u;
    let s1 = bitcast<f32>(u32(h + 127) << 23u);
    let s2 = bitcast<f32>(u32(k - h + 127) << 23u);
    var e = p * s1 * s2;
    e = select(e, tm_inf(), x > 88.72283935546875);
    e = select(e, 0.0, x < -103.972084045410);
    return tm_keepnan(x, e);
}

// exp for x ≤ 0 (callers keep NaN apart): tm_exp's reduction and polynomial with 2ⁿ as one
// power of two (n ≥ −126); 0 below −87 (results under 2⁻¹²⁶, which GPUs may flush anyway). The
// CPU's math::exp_nonpos (which rounds by adding 1.5·2²³: shader compilers may fold that away).
fn tm_exp_nonpos(x: f32) -> f32 {
    let c = select(x, -87.0, x < -87.0);
    let n = floor(c * 1.44269504088896341 + 0.5);
    var r = c - n * 0.693359375;
    r = r - n * -2.12194440e-4;
    let rr = r * r;
    let p = (((((1.9875691500e-4 * r + 1.3981999507e-3) * r + 8.3334519073e-3) * r + 4.1665795894e-2) * r + 1.6666665459e-1) * r + 5.0000001201e-1) * rr + r + 1.0;
    return select(p * bitcast<f32>(u32(i32(n) + 127) << 23u), 0.0, x < -87.0);
}

// Out of their domain, WGSL's log and sqrt are indeterminate (SwiftShader: log(-1) = 0).
fn tm_log(x: f32) -> f32 {
    if (x == 0.0) {
        return -tm_inf();
    }
    return select(tm_keepnan(x, log(x)), tm_nan(), x < 0.0);
}

fn tm_sqrt(x: f32) -> f32 {
    return select(tm_keepnan(x, sqrt(x)), tm_nan(), x < 0.0);
}

fn tm_max(a: f32, b: f32) -> f32 {
    return select(max(a, b), tm_nan(), tm_isnan(a) || tm_isnan(b));
}

fn tm_min(a: f32, b: f32) -> f32 {
    return select(min(a, b), tm_nan(), tm_isnan(a) || tm_isnan(b));
}

// Comparisons as 1.0/0.0; NaN is told apart on bits (unordered: false, except `ne`).
fn tm_ordered(a: f32, b: f32) -> bool {
    return !(tm_isnan(a) || tm_isnan(b));
}

fn tm_flag(c: bool) -> f32 {
    return select(0.0, 1.0, c);
}

fn tm_lt(a: f32, b: f32) -> f32 {
    return tm_flag(tm_ordered(a, b) && a < b);
}

fn tm_le(a: f32, b: f32) -> f32 {
    return tm_flag(tm_ordered(a, b) && a <= b);
}

fn tm_gt(a: f32, b: f32) -> f32 {
    return tm_flag(tm_ordered(a, b) && a > b);
}

fn tm_ge(a: f32, b: f32) -> f32 {
    return tm_flag(tm_ordered(a, b) && a >= b);
}

fn tm_eq(a: f32, b: f32) -> f32 {
    return tm_flag(tm_ordered(a, b) && a == b);
}

fn tm_ne(a: f32, b: f32) -> f32 {
    return 1.0 - tm_eq(a, b);
}

// `c != 0 ? a : b` (a NaN condition selects `a`, as `NaN != 0` is true).
fn tm_where(c: f32, a: f32, b: f32) -> f32 {
    return select(a, b, tm_iszero(c));
}

fn tm_relu(x: f32) -> f32 {
    return select(max(x, 0.0), x, tm_isnan(x));
}

// sin and cos of our own (Cephes' sinf/cosf: reduction by π/4 in three parts, then minimax
// polynomials), so every adapter gives the same accuracy for |x| ≤ 8192: WGSL only bounds the builtins to 2⁻¹¹
// absolute on [-π, π], and SwiftShader's are off by up to 2e-4. About 1 ulp of the result plus
// 2⁻²⁴·|x| of the argument's own rounding for |x| ≤ 8192 (the precision table in README.md).
fn tm_sincos(x: f32, cosine: bool) -> f32 {
    let a = abs(x);
    var j = u32(a * 1.27323954473516);
    j = j + (j & 1u);
    let y = f32(j);
    // Octant of the reduced argument; cos(x) = sin(x + π/2) is two octants on.
    var q = (j + select(0u, 2u, cosine)) & 7u;
    let z = ((a - y * 0.78515625) - y * 2.4187564849853515625e-4) - y * 3.77489497744594108e-8;
    let zz = z * z;
    let s = ((-1.9515295891e-4 * zz + 8.3321608736e-3) * zz - 1.6666654611e-1) * zz * z + z;
    let c = ((2.443315711809948e-5 * zz - 1.388731625493765e-3) * zz + 4.166664568298827e-2) * zz * zz - 0.5 * zz + 1.0;
    var r = select(s, c, q == 2u || q == 3u || q == 6u || q == 7u);
    // sin is odd (its sign follows x), cos even; the upper half of the octants negates.
    var negate = q >= 4u;
    if (!cosine && x < 0.0) {
        negate = !negate;
    }
    r = select(r, -r, negate);
    // Beyond 8192 the three-part reduction loses digits: the adapter's builtin takes over
    // (an f32 that large is itself only known to within 2⁻²⁴·|x|).
    r = select(r, select(sin(x), cos(x), cosine), a > 8192.0);
    return select(tm_nan(), r, tm_finite(x));
}

fn tm_sin(x: f32) -> f32 {
    return tm_sincos(x, false);
}

fn tm_cos(x: f32) -> f32 {
    return tm_sincos(x, true);
}

fn tm_sigmoid(x: f32) -> f32 {
    // exp of a non-positive argument only: no inf/inf; one division (the CPU's math::sigmoid).
    let e = tm_exp_nonpos(-abs(x));
    let r = 1.0 / (1.0 + e);
    return tm_keepnan(x, select(e * r, r, x >= 0.0));
}

// tanh of our own (Cephes' tanhf): an odd polynomial below 0.625, where builtins that go
// through (e²ˣ − 1)/(e²ˣ + 1) lose every digit to cancellation (llvmpipe: 6% relative at
// small x), and (1 − e⁻²ˣ)/(1 + e⁻²ˣ) above, up to 10: tanh(x) rounds to ±1 in f32 from 9.01 on
// (a clamp at 9 gave 1 − 6e-8, and gelu_tanh(−28) = −8e-7 instead of 0: found by the fuzzer).
fn tm_tanh(x: f32) -> f32 {
    let a = min(abs(x), 10.0);
    let z = a * a;
    let small = ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z + 1.33314422036e-1) * z - 3.33332819422e-1) * z * a + a;
    let e = tm_exp_nonpos(-2.0 * a);
    let large = (1.0 - e) / (1.0 + e);
    let t = select(large, small, a < 0.625);
    return select(select(t, -t, x < 0.0), x, tm_isnan(x));
}

fn tm_erf(x: f32) -> f32 {
    // |x| < 1: Cephes' erff polynomial, x·T(x²), about 2 ulp relative (so erf keeps its
    // accuracy near 0, where 1 − p·e^(−x²) would cancel).
    let z = x * x;
    let small = x * (1.128379165726710 + z * (-0.3761262582423300 + z * (0.1128358514861418
        + z * (-0.02685381193529856 + z * (0.005188327685732524 + z * (-0.0008010193625184903
        + z * 0.00007853861353153693))))));
    // Otherwise Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 (erf ≥ 0.84 there).
    let a = abs(x);
    let y = 1.0 - tm_erfc_nonneg(a);
    return select(select(y, -y, x < 0.0), small, a < 1.0);
}

// erfc(a) for a ≥ 0: Abramowitz & Stegun 7.1.26, t·P(t)·e^(−a²) with t = 1/(1 + p·a), within
// 1.5e-7 absolute on the whole half-line.
fn tm_erfc_nonneg(a: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return p * tm_exp_nonpos(-a * a);
}

// x·Φ(x) with Φ(−|x|) = ½·erfc(|x|/√2): one branch-free formula, x·(1 − Φ(−x)) for x ≥ 0 and
// x·Φ(−|x|) below (no 1 + erf cancellation in the negative tail). The CPU's math::gelu.
fn tm_gelu(x: f32) -> f32 {
    let h = 0.5 * tm_erfc_nonneg(abs(x) * 0.70710678118654752);
    return x * select(h, 1.0 - h, x >= 0.0);
}

fn tm_gelu_tanh(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tm_tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

fn tm_pow(a: f32, b: f32) -> f32 {
    // IEEE pow: x^0 = 1, negative bases only with integer exponents (sign from its parity).
    if (b == 0.0) {
        return 1.0;
    }
    if (tm_isnan(a) || tm_isnan(b)) {
        return tm_nan();
    }
    if (a == 0.0) {
        return select(0.0, 1.0 / abs(a), b < 0.0);
    }
    let r = pow(abs(a), b);
    if (a < 0.0) {
        if (floor(b) != b) {
            return tm_nan();
        }
        let half = b * 0.5;
        return select(r, -r, floor(half) != half);
    }
    return r;
}
