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

// Builtins may turn NaN into anything (SwiftShader: exp(NaN) = inf); NaN in, NaN out.
fn tm_keepnan(x: f32, y: f32) -> f32 {
    return select(y, x, tm_isnan(x));
}

fn tm_exp(x: f32) -> f32 {
    return tm_keepnan(x, exp(x));
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

fn tm_relu(x: f32) -> f32 {
    return select(max(x, 0.0), x, tm_isnan(x));
}

fn tm_sigmoid(x: f32) -> f32 {
    // exp of a non-positive argument only: no inf/inf.
    let e = exp(-abs(x));
    return tm_keepnan(x, select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0));
}

fn tm_tanh(x: f32) -> f32 {
    // tanh(±9) is ±1 in f32; clamping keeps backends that compute tanh through exp finite.
    return select(tanh(clamp(x, -9.0, 9.0)), x, tm_isnan(x));
}

fn tm_erf(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - p * exp(-a * a);
    return select(y, -y, x < 0.0);
}

fn tm_gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tm_erf(x * 0.70710678118654752));
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
