//! Elementwise ops: every unary op, broadcasting binary ops, scalars, NaN and infinity.

#![allow(unused_imports)]

use super::check::*;
use tmath::{Device, Error, JitMode, Tensor};

type UnaryCase = (
    &'static str,
    fn(&Tensor) -> tmath::Result<Tensor>,
    fn(f64) -> f64,
    (f64, f64),
    f64,
    f64,
);

fn erf(x: f64) -> f64 {
    libm::erf(x)
}

pub async fn unary_ops(dev: &Device) {
    // (name, op, f64 reference, input range, atol, rtol)
    let cases: &[UnaryCase] = &[
        ("neg", Tensor::neg, |x| -x, (-5.0, 5.0), 0.0, 0.0),
        ("abs", Tensor::abs, |x| x.abs(), (-5.0, 5.0), 0.0, 0.0),
        ("exp", Tensor::exp, |x| x.exp(), (-10.0, 10.0), 1e-6, 2e-6),
        ("log", Tensor::log, |x| x.ln(), (1e-3, 100.0), 1e-6, 2e-6),
        ("sqrt", Tensor::sqrt, |x| x.sqrt(), (0.0, 100.0), 1e-6, 1e-6),
        (
            "rsqrt",
            Tensor::rsqrt,
            |x| 1.0 / x.sqrt(),
            (1e-2, 100.0),
            1e-6,
            2e-6,
        ),
        ("sin", Tensor::sin, |x| x.sin(), (-3.1, 3.1), 5e-4, 0.0),
        ("cos", Tensor::cos, |x| x.cos(), (-3.1, 3.1), 5e-4, 0.0),
        ("tanh", Tensor::tanh, |x| x.tanh(), (-8.0, 8.0), 2e-6, 2e-6),
        (
            "sigmoid",
            Tensor::sigmoid,
            |x| 1.0 / (1.0 + (-x).exp()),
            (-20.0, 20.0),
            1e-6,
            2e-6,
        ),
        ("relu", Tensor::relu, |x| x.max(0.0), (-5.0, 5.0), 0.0, 0.0),
        (
            "gelu",
            Tensor::gelu,
            |x| 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
            (-6.0, 6.0),
            2e-6,
            2e-6,
        ),
        (
            "gelu_tanh",
            Tensor::gelu_tanh,
            |x| {
                0.5 * x
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
            },
            (-6.0, 6.0),
            2e-6,
            2e-6,
        ),
        (
            "silu",
            Tensor::silu,
            |x| x / (1.0 + (-x).exp()),
            (-20.0, 20.0),
            2e-6,
            2e-6,
        ),
        ("erf", Tensor::erf, erf, (-4.0, 4.0), 4e-7, 2e-7),
    ];
    let shape = [37, 29];
    for (i, (name, op, f, (lo, hi), atol, rtol)) in cases.iter().enumerate() {
        let (x, data) = rand_tensor(dev, &shape, 100 + i as u64, *lo, *hi);
        let got = read(&op(&x).unwrap(), &shape).await;
        let want: Vec<f64> = data.iter().map(|&v| f(v as f64)).collect();
        assert_close(name, &got, &want, *atol, *rtol);
    }
    // Large enough for the CPU backend's multi-threaded path (and many GPU workgroups).
    let (x, data) = rand_tensor(dev, &[300, 701], 99, -4.0, 4.0);
    let (y, datb) = rand_tensor(dev, &[300, 701], 98, -4.0, 4.0);
    let got = read(&x.gelu().unwrap().mul(&y).unwrap(), &[300, 701]).await;
    let want: Vec<f64> = data
        .iter()
        .zip(&datb)
        .map(|(&v, &w)| 0.5 * v as f64 * (1.0 + erf(v as f64 / 2f64.sqrt())) * w as f64)
        .collect();
    assert_close("gelu(x)·y, 210k elements", &got, &want, 1e-5, 1e-5);
}

type BinaryCase = (
    &'static str,
    fn(&Tensor, &Tensor) -> tmath::Result<Tensor>,
    fn(f64, f64) -> f64,
    f64,
);

pub async fn binary_broadcast(dev: &Device) {
    let ops: &[BinaryCase] = &[
        ("add", Tensor::add, |a, b| a + b, 1e-6),
        ("sub", Tensor::sub, |a, b| a - b, 1e-6),
        ("mul", Tensor::mul, |a, b| a * b, 1e-6),
        ("div", Tensor::div, |a, b| a / b, 2e-6),
        ("pow", Tensor::pow, |a, b| a.powf(b), 1e-5),
        ("maximum", Tensor::maximum, |a, b| a.max(b), 0.0),
        ("minimum", Tensor::minimum, |a, b| a.min(b), 0.0),
    ];
    let pairs: &[(&[usize], &[usize])] = &[
        (&[13, 7], &[13, 7]),
        (&[13, 1], &[1, 7]),
        (&[2, 3, 5], &[5]),
        (&[], &[4, 3]),
        (&[4, 3], &[]),
        (&[5, 1, 3], &[1, 4, 1]),
        (&[2, 1, 4, 1], &[3, 1, 6]),
    ];
    for (k, (name, op, f, rtol)) in ops.iter().enumerate() {
        for (p, (sa, sb)) in pairs.iter().enumerate() {
            // Positive bases for pow; denominators away from zero for div.
            let (a, da) = rand_tensor(dev, sa, (k * 100 + p) as u64, 0.5, 3.0);
            let (b, db) = rand_tensor(dev, sb, (k * 100 + p + 50) as u64, -2.0, 2.0);
            let (b, db) = if *name == "div" {
                let shifted: Vec<f32> = db
                    .iter()
                    .map(|v| if *v >= 0.0 { v + 0.5 } else { v - 0.5 })
                    .collect();
                (Tensor::from_vec(shifted.clone(), sb, dev).unwrap(), shifted)
            } else {
                (b, db)
            };
            let (want, shape) = ref_binary(&da, sa, &db, sb, f);
            let got = read(&op(&a, &b).unwrap(), &shape).await;
            assert_close(&format!("{name} {sa:?} {sb:?}"), &got, &want, 1e-6, *rtol);
        }
    }
}

pub async fn scalars(dev: &Device) {
    let s = Tensor::from_vec(vec![1.5], &[], dev).unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    let (x, d) = rand_tensor(dev, &[3, 4], 7, -1.0, 1.0);
    let got = read(&x.mul(&s).unwrap().add(&s).unwrap(), &[3, 4]).await;
    let want: Vec<f64> = d.iter().map(|&v| v as f64 * 1.5 + 1.5).collect();
    assert_close("x*s+s", &got, &want, 1e-6, 1e-6);
    // scalar ∘ scalar, unary of a scalar, reductions to and of scalars
    let t = s.mul(&s).unwrap().exp().unwrap();
    assert_close(
        "exp(s*s)",
        &read(&t, &[]).await,
        &[(2.25f64).exp()],
        1e-5,
        1e-6,
    );
    let total = x.sum(&[0, 1], false).unwrap();
    let want_sum: f64 = d.iter().map(|&v| v as f64).sum();
    assert_close("sum all", &read(&total, &[]).await, &[want_sum], 1e-5, 1e-5);
    let same = s.sum(&[], false).unwrap();
    assert_close(
        "sum of scalar over no axes",
        &read(&same, &[]).await,
        &[1.5],
        0.0,
        0.0,
    );
    let sc = Tensor::scalar(-2.0, dev).unwrap().abs().unwrap();
    assert_close("abs scalar", &read(&sc, &[]).await, &[2.0], 0.0, 0.0);
}

pub async fn nan_and_inf(dev: &Device) {
    let x = Tensor::from_vec(
        vec![1000.0, -1.0, 0.0, -1000.0, f32::NAN, f32::INFINITY],
        &[6],
        dev,
    )
    .unwrap();
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    assert_close(
        "exp",
        &read(&x.exp().unwrap(), &[6]).await,
        &[inf, (-1f64).exp(), 1.0, 0.0, nan, inf],
        1e-6,
        1e-6,
    );
    assert_close(
        "log",
        &read(&x.log().unwrap(), &[6]).await,
        &[(1000f64).ln(), nan, -inf, nan, nan, inf],
        1e-6,
        1e-6,
    );
    assert_close(
        "relu",
        &read(&x.relu().unwrap(), &[6]).await,
        &[1000.0, 0.0, 0.0, 0.0, nan, inf],
        0.0,
        0.0,
    );
    assert_close(
        "sigmoid",
        &read(&x.sigmoid().unwrap(), &[6]).await,
        &[1.0, 1.0 / (1.0 + 1f64.exp()), 0.5, 0.0, nan, 1.0],
        1e-6,
        1e-6,
    );
    let zero = Tensor::from_vec(vec![0.0], &[], dev).unwrap();
    assert_close(
        "x/0",
        &read(&x.div(&zero).unwrap(), &[6]).await,
        &[inf, -inf, nan, -inf, nan, inf],
        0.0,
        0.0,
    );
    let y = Tensor::from_vec(vec![1.0, 2.0, 3.0, f32::NAN, 5.0, 6.0], &[2, 3], dev).unwrap();
    assert_close(
        "max with NaN",
        &read(&y.max(&[1], false).unwrap(), &[2]).await,
        &[3.0, nan],
        0.0,
        0.0,
    );
    assert_close(
        "sum with NaN",
        &read(&y.sum(&[1], false).unwrap(), &[2]).await,
        &[6.0, nan],
        1e-6,
        0.0,
    );
    // Down the columns (axis 0): the NaN in the first or the last row of its column.
    let z = Tensor::from_vec(
        vec![f32::NAN, 2.0, 3.0, 4.0, 1.0, 9.0, -1.0, 8.0, f32::NAN],
        &[3, 3],
        dev,
    )
    .unwrap();
    for (what, t, want) in [
        (
            "max over axis 0 with NaN",
            z.max(&[0], false),
            [nan, 8.0, nan],
        ),
        (
            "min over axis 0 with NaN",
            z.min(&[0], false),
            [nan, 1.0, nan],
        ),
        (
            "sum over axis 0 with NaN",
            z.sum(&[0], false),
            [nan, 11.0, nan],
        ),
    ] {
        assert_close(what, &read(&t.unwrap(), &[3]).await, &want, 1e-6, 0.0);
    }
    let two = Tensor::scalar(2.0, dev).unwrap();
    assert_close(
        "maximum NaN",
        &read(&y.maximum(&two).unwrap(), &[2, 3]).await,
        &[2.0, 2.0, 3.0, nan, 5.0, 6.0],
        0.0,
        0.0,
    );
}

/// Large enough that a GPU's four-wide kernel takes several `vec4`s per thread (past 4M
/// elements with 256-thread workgroups), with a last `vec4` count that does not divide by them:
/// `tanh(a·c + b)` against f64, `c` a broadcast scalar.
pub async fn elementwise_large(dev: &Device) {
    let n = (4 << 20) + 12;
    let (a, da) = rand_tensor(dev, &[n], 140, -2.0, 2.0);
    let (b, db) = rand_tensor(dev, &[n], 141, -2.0, 2.0);
    let c = Tensor::scalar(0.75, dev).unwrap();
    let y = a.mul(&c).unwrap().add(&b).unwrap().tanh().unwrap();
    let got = read(&y, &[n]).await;
    let want: Vec<f64> = da
        .iter()
        .zip(&db)
        .map(|(&a, &b)| (a as f64 * 0.75 + b as f64).tanh())
        .collect();
    assert_close("tanh(a·c + b), 4M + 12", &got, &want, 1e-6, 1e-6);
}
