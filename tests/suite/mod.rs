//! The shared suite: every case is an `async fn(&Device)` that reads results with
//! `to_vec_async`, so the same code runs natively (pollster), in browsers (wasm-bindgen-test)
//! and on MLX. Harnesses expand [`for_each_case!`] instead of listing cases themselves.
//!
//! Tolerances are stated per op. They are loose enough for GPU arithmetic (WGSL allows a few ULP
//! for exp/log/tanh and an absolute 2⁻¹¹ for sin/cos on [-π, π]) and far tighter than any bug.

#![allow(dead_code)]

pub mod check;
pub mod fuzz;
pub mod generic;
pub mod invalid;
pub mod precision;

#[allow(unused_imports)]
pub use fuzz::fuzz_graphs;
#[allow(unused_imports)]
pub use generic::generic_kernels;
#[allow(unused_imports)]
pub use invalid::{invalid_calls_are_errors, sizes_beyond_limits};

#[allow(unused_imports)]
pub use precision::{ieee_special_values, precision_contract};

use check::*;
use tmath::{Device, Error, JitMode, Tensor};

/// Calls `$m! { case, case, ... }` with every case of the suite.
#[macro_export]
macro_rules! for_each_case {
    ($m:ident) => {
        $m! {
            unary_ops,
            binary_broadcast,
            scalars,
            views_feed_compute,
            reductions,
            softmax_stable,
            matmul_sizes,
            matmul_batched,
            svd_shapes,
            svd_hard_spectra,
            errors_are_values,
            nan_and_inf,
            randn_is_deterministic,
            long_chain,
            eval_shares_work,
            lazy_and_cached,
            jit_mode_keeps_results,
            empty_tensors,
            elementwise_chain_fused_shapes,
            jit_caches_pipelines,
            jit_fuses_kernels,
            too_large_is_an_error,
            precision_contract,
            ieee_special_values,
            fuzz_graphs,
            invalid_calls_are_errors,
            sizes_beyond_limits,
            generic_kernels,
        }
    };
}

/// The native devices to test: the CPU always; the GPU through wgpu when an adapter exists (CI sets
/// `TMATH_REQUIRE_GPU=1`, so a missing adapter fails instead of being skipped); MLX when the
/// `mlx` feature is built. `TMATH_TEST_DEVICES=mlx` (a comma list of backend names) runs the
/// suite on those only.
#[cfg(not(target_arch = "wasm32"))]
pub fn native_devices() -> Vec<Device> {
    let only = std::env::var("TMATH_TEST_DEVICES").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .map_or(true, |o| o.split(',').any(|b| b.trim() == name))
    };
    let mut devs = vec![];
    if wanted("cpu") {
        devs.push(Device::cpu().expect("cpu device"));
    }
    #[cfg(feature = "wgpu")]
    if wanted("wgpu") {
        match Device::wgpu() {
            Ok(d) => {
                // TMATH_GENERIC_KERNELS=1: the whole suite on generic kernels.
                if std::env::var("TMATH_GENERIC_KERNELS").is_ok_and(|v| v == "1") {
                    tmath::debug::set_generic_kernels(&d, true);
                }
                devs.push(d)
            }
            Err(e) => {
                assert!(
                    std::env::var("TMATH_REQUIRE_GPU").is_err(),
                    "TMATH_REQUIRE_GPU is set but wgpu failed: {e}"
                );
                eprintln!("wgpu unavailable, testing the CPU only: {e}");
            }
        }
    }
    #[cfg(feature = "mlx")]
    if wanted("mlx") {
        devs.push(Device::mlx().expect("the mlx feature is built, so Device::mlx() must start"));
    }
    assert!(
        !devs.is_empty(),
        "TMATH_TEST_DEVICES={only:?} names no device of this build"
    );
    devs
}

/// Runs one case on `dev` to completion on a thread with a 2 MiB stack, as the native
/// harnesses do (so a 10,000-op graph proves evaluation is not recursive).
#[cfg(not(target_arch = "wasm32"))]
pub fn run_on_small_stack<F: std::future::Future<Output = ()> + 'static>(
    name: &str,
    dev: &Device,
    case: fn(Device) -> F,
) {
    let dev = dev.clone();
    let what = format!("{name} failed on {dev:?}");
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || pollster::block_on(case(dev)))
        .expect("spawn")
        .join()
        .unwrap_or_else(|_| panic!("{what}"));
}

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

pub async fn views_feed_compute(dev: &Device) {
    let (a, da) = rand_tensor(dev, &[6, 10], 11, -1.0, 1.0);
    // transpose then elementwise
    let (ta, sa) = ref_permute(&da, &[6, 10], &[1, 0]);
    let (b, db) = rand_tensor(dev, &[10, 6], 12, -1.0, 1.0);
    let got = read(&a.transpose(0, 1).unwrap().add(&b).unwrap(), &sa).await;
    let want: Vec<f64> = ta
        .iter()
        .zip(&db)
        .map(|(&x, &y)| x as f64 + y as f64)
        .collect();
    assert_close("transpose + add", &got, &want, 1e-6, 1e-6);
    // reshape of a transposed view (needs a copy), then unary
    let got = read(
        &a.transpose(0, 1)
            .unwrap()
            .reshape(&[4, 15])
            .unwrap()
            .neg()
            .unwrap(),
        &[4, 15],
    )
    .await;
    let want: Vec<f64> = ta.iter().map(|&x| -(x as f64)).collect();
    assert_close("reshape(transpose)", &got, &want, 0.0, 0.0);
    // reading a pure view
    let got = read(&a.transpose(0, 1).unwrap(), &[10, 6]).await;
    assert_close("transpose read", &got, &to_f64(&ta), 0.0, 0.0);
    // 3-D permute feeding matmul and a reduction
    let (c, dc) = rand_tensor(dev, &[3, 4, 5], 13, -1.0, 1.0);
    let (pc, spc) = ref_permute(&dc, &[3, 4, 5], &[2, 0, 1]); // [5,3,4]
    let got = read(
        &c.permute(&[2, 0, 1]).unwrap().sum(&[1], false).unwrap(),
        &[5, 4],
    )
    .await;
    let mut want = vec![0f64; 20];
    for i in 0..5 {
        for j in 0..3 {
            for k in 0..4 {
                want[i * 4 + k] += pc[i * 12 + j * 4 + k] as f64;
            }
        }
    }
    assert_close("permute + sum", &got, &want, 1e-5, 1e-5);
    let (w, dw) = rand_tensor(dev, &[4, 7], 14, -1.0, 1.0);
    let (want, sw) = ref_matmul(&pc, &spc, &dw, &[4, 7]);
    let got = read(&c.permute(&[2, 0, 1]).unwrap().matmul(&w).unwrap(), &sw).await;
    assert_close("permute @ w", &got, &want, 1e-5, 1e-5);
    // a transposed operand on the right of matmul
    let got = read(&a.matmul(&a.transpose(0, 1).unwrap()).unwrap(), &[6, 6]).await;
    let (want, _) = ref_matmul(&da, &[6, 10], &ta, &[10, 6]);
    assert_close("a @ aᵀ", &got, &want, 1e-5, 1e-5);
    // broadcasting a view against a view
    let col = a.sum(&[1], true).unwrap(); // [6,1]
    let got = read(
        &a.sub(&col)
            .unwrap()
            .transpose(0, 1)
            .unwrap()
            .mul(&b)
            .unwrap(),
        &[10, 6],
    )
    .await;
    let mut want = vec![0f64; 60];
    for i in 0..10 {
        for j in 0..6 {
            let rs: f64 = (0..10).map(|k| da[j * 10 + k] as f64).sum();
            want[i * 6 + j] = (da[j * 10 + i] as f64 - rs) * db[i * 6 + j] as f64;
        }
    }
    assert_close("(a - rowsum)ᵀ * b", &got, &want, 1e-5, 1e-5);
}

fn ref_reduce(
    x: &[f32],
    shape: &[usize],
    axes: &[usize],
    keepdim: bool,
    kind: &str,
) -> (Vec<f64>, Vec<usize>) {
    let out_keep: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect();
    let mut acc: Vec<Vec<f64>> = vec![vec![]; numel(&out_keep)];
    for (i, &v) in x.iter().enumerate() {
        let idx = unravel(i, shape);
        let oidx: Vec<usize> = idx
            .iter()
            .enumerate()
            .map(|(d, &k)| if axes.contains(&d) { 0 } else { k })
            .collect();
        let o: usize = oidx
            .iter()
            .zip(strides(&out_keep))
            .map(|(a, b)| a * b)
            .sum();
        acc[o].push(v as f64);
    }
    let vals = acc
        .iter()
        .map(|g| match kind {
            "sum" => g.iter().sum(),
            "mean" => g.iter().sum::<f64>() / g.len() as f64,
            "max" => g.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            _ => g.iter().cloned().fold(f64::INFINITY, f64::min),
        })
        .collect();
    let shape = if keepdim {
        out_keep
    } else {
        shape
            .iter()
            .enumerate()
            .filter(|(d, _)| !axes.contains(d))
            .map(|(_, &n)| n)
            .collect()
    };
    (vals, shape)
}

pub async fn reductions(dev: &Device) {
    let shape = [4, 5, 6, 3];
    let (x, d) = rand_tensor(dev, &shape, 21, -2.0, 2.0);
    let axes_list: &[&[usize]] = &[&[], &[0], &[3], &[1, 2], &[0, 3], &[2, 0], &[0, 1, 2, 3]];
    for axes in axes_list {
        for keepdim in [false, true] {
            for kind in ["sum", "mean", "max", "min"] {
                let t = match kind {
                    "sum" => x.sum(axes, keepdim),
                    "mean" => x.mean(axes, keepdim),
                    "max" => x.max(axes, keepdim),
                    _ => x.min(axes, keepdim),
                }
                .unwrap();
                let (want, s) = ref_reduce(&d, &shape, axes, keepdim, kind);
                let got = read(&t, &s).await;
                assert_close(
                    &format!("{kind} {axes:?} keepdim={keepdim}"),
                    &got,
                    &want,
                    1e-5,
                    1e-5,
                );
            }
        }
    }
    // A long reduction (sum of 100k) stays accurate.
    let (y, dy) = rand_tensor(dev, &[100_003], 22, 0.0, 1.0);
    let want: f64 = dy.iter().map(|&v| v as f64).sum();
    assert_close(
        "sum 100003",
        &read(&y.sum(&[0], false).unwrap(), &[]).await,
        &[want],
        0.0,
        1e-5,
    );
}

fn ref_softmax(x: &[f32], shape: &[usize], axis: usize, log: bool) -> Vec<f64> {
    let st = strides(shape);
    let mut out = vec![0f64; x.len()];
    for i in 0..x.len() {
        let idx = unravel(i, shape);
        if idx[axis] != 0 {
            continue;
        }
        let row: Vec<usize> = (0..shape[axis]).map(|j| i + j * st[axis]).collect();
        let m = row
            .iter()
            .map(|&o| x[o] as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|&o| (x[o] as f64 - m).exp()).sum();
        for &o in &row {
            out[o] = if log {
                x[o] as f64 - m - s.ln()
            } else {
                (x[o] as f64 - m).exp() / s
            };
        }
    }
    out
}

pub async fn softmax_stable(dev: &Device) {
    let shape = [6, 33, 7];
    // Inputs up to ±80: exp(80) overflows f32 unless the max is subtracted.
    let (x, d) = rand_tensor(dev, &shape, 31, -80.0, 80.0);
    for axis in 0..3 {
        for log in [false, true] {
            let t = if log {
                x.log_softmax(axis)
            } else {
                x.softmax(axis)
            }
            .unwrap();
            let got = read(&t, &shape).await;
            let want = ref_softmax(&d, &shape, axis, log);
            let (atol, rtol) = if log { (2e-5, 1e-5) } else { (1e-6, 1e-4) };
            assert_close(
                &format!(
                    "{} axis {axis}",
                    if log { "log_softmax" } else { "softmax" }
                ),
                &got,
                &want,
                atol,
                rtol,
            );
        }
    }
    // Rows of exactly ±80 (ties, extreme spread) on a wide last axis.
    let row: Vec<f32> = (0..1000)
        .map(|i| if i % 3 == 0 { 80.0 } else { -80.0 })
        .collect();
    let t = Tensor::from_vec(row.clone(), &[2, 500], dev).unwrap();
    let got = read(&t.softmax(1).unwrap(), &[2, 500]).await;
    assert_close(
        "softmax ±80",
        &got,
        &ref_softmax(&row, &[2, 500], 1, false),
        1e-7,
        1e-4,
    );
    let sums = read(&t.softmax(1).unwrap().sum(&[1], false).unwrap(), &[2]).await;
    assert_close("softmax rows sum to 1", &sums, &[1.0, 1.0], 1e-5, 0.0);
}

pub async fn matmul_sizes(dev: &Device) {
    for (i, &(m, k, n)) in [
        (1, 1, 1),
        (7, 13, 5),
        (33, 65, 17),
        (64, 64, 64),
        (1, 100, 3),
        (65, 1, 31),
        (128, 96, 80),
    ]
    .iter()
    .enumerate()
    {
        let (a, da) = rand_tensor(dev, &[m, k], 40 + i as u64, -1.0, 1.0);
        let (b, db) = rand_tensor(dev, &[k, n], 60 + i as u64, -1.0, 1.0);
        let (want, s) = ref_matmul(&da, &[m, k], &db, &[k, n]);
        let got = read(&a.matmul(&b).unwrap(), &s).await;
        assert_close(
            &format!("matmul {m}x{k}x{n}"),
            &got,
            &want,
            1e-5 * (k as f64).sqrt(),
            1e-5,
        );
    }
}

pub async fn matmul_batched(dev: &Device) {
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 4, 5], &[3, 5, 6]),
        (&[2, 1, 4, 5], &[3, 5, 6]),
        (&[4, 5], &[2, 3, 5, 7]),
        (&[2, 3, 9, 8], &[8, 2]),
        (&[1, 17, 19], &[5, 19, 3]),
    ];
    for (i, (sa, sb)) in cases.iter().enumerate() {
        let (a, da) = rand_tensor(dev, sa, 80 + i as u64, -1.0, 1.0);
        let (b, db) = rand_tensor(dev, sb, 90 + i as u64, -1.0, 1.0);
        let (want, s) = ref_matmul(&da, sa, &db, sb);
        let got = read(&a.matmul(&b).unwrap(), &s).await;
        assert_close(&format!("matmul {sa:?} x {sb:?}"), &got, &want, 1e-5, 1e-5);
    }
}

/// Checks a thin SVD's invariants and returns the singular values.
async fn check_svd(what: &str, a: &Tensor, da: &[f32], m: usize, n: usize, tol: f64) -> Vec<f32> {
    let k = m.min(n);
    let (u, s, vt) = a.svd().unwrap();
    tmath::eval_async(&[&u, &s, &vt]).await.unwrap();
    let (u, s, vt) = (
        read(&u, &[m, k]).await,
        read(&s, &[k]).await,
        read(&vt, &[k, n]).await,
    );
    // descending, non-negative
    for j in 0..k {
        assert!(s[j] >= 0.0 && s[j].is_finite(), "{what}: s[{j}] = {}", s[j]);
        if j > 0 {
            assert!(
                s[j] <= s[j - 1] * (1.0 + 1e-6) + 1e-7,
                "{what}: s not descending at {j}: {s:?}"
            );
        }
    }
    // reconstruction ‖A - U S Vᵀ‖_F ≤ tol ‖A‖_F
    let norm: f64 = da.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let mut err = 0f64;
    for i in 0..m {
        for j in 0..n {
            let r: f64 = (0..k)
                .map(|p| u[i * k + p] as f64 * s[p] as f64 * vt[p * n + j] as f64)
                .sum();
            err += (r - da[i * n + j] as f64).powi(2);
        }
    }
    assert!(
        err.sqrt() <= tol * norm.max(1e-30),
        "{what}: reconstruction error {} vs ‖A‖ {norm}",
        err.sqrt()
    );
    // orthonormal columns of U and rows of Vᵀ
    for p in 0..k {
        for q in 0..k {
            let uu: f64 = (0..m)
                .map(|i| u[i * k + p] as f64 * u[i * k + q] as f64)
                .sum();
            let vv: f64 = (0..n)
                .map(|j| vt[p * n + j] as f64 * vt[q * n + j] as f64)
                .sum();
            let id = if p == q { 1.0 } else { 0.0 };
            assert!((uu - id).abs() < 1e-3, "{what}: (UᵀU)[{p},{q}] = {uu}");
            assert!((vv - id).abs() < 1e-3, "{what}: (VVᵀ)[{p},{q}] = {vv}");
        }
    }
    s
}

pub async fn svd_shapes(dev: &Device) {
    for (i, &(m, n)) in [(1, 1), (16, 16), (8, 20), (30, 7), (1, 9), (9, 1), (33, 31)]
        .iter()
        .enumerate()
    {
        let (a, da) = rand_tensor(dev, &[m, n], 200 + i as u64, -1.0, 1.0);
        check_svd(&format!("svd {m}x{n}"), &a, &da, m, n, 1e-5).await;
    }
}

/// `A = Q1 · diag(sv) · Q2ᵀ` with orthonormal Q1 (m×k), Q2 (n×k) from Gram–Schmidt in f64.
fn with_spectrum(m: usize, n: usize, sv: &[f64], seed: u64) -> Vec<f32> {
    let k = sv.len();
    let ortho = |rows: usize, seed: u64| {
        let mut r = Rng::new(seed);
        let mut q: Vec<Vec<f64>> = vec![];
        while q.len() < k {
            let mut v: Vec<f64> = (0..rows).map(|_| r.uniform(-1.0, 1.0) as f64).collect();
            for _ in 0..2 {
                for w in &q {
                    let d: f64 = v.iter().zip(w).map(|(a, b)| a * b).sum();
                    v.iter_mut().zip(w).for_each(|(a, b)| *a -= d * b);
                }
            }
            let nrm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            q.push(v.iter().map(|a| a / nrm).collect());
        }
        q
    };
    let (q1, q2) = (ortho(m, seed), ortho(n, seed + 1));
    let mut a = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            a[i * n + j] = (0..k).map(|p| q1[p][i] * sv[p] * q2[p][j]).sum::<f64>() as f32;
        }
    }
    a
}

pub async fn svd_hard_spectra(dev: &Device) {
    let cases: &[(&str, usize, usize, Vec<f64>)] = &[
        (
            "rank-deficient (rank 3 of 12)",
            12,
            10,
            vec![5.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ),
        (
            "repeated values",
            10,
            10,
            vec![3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5],
        ),
        (
            "ill-conditioned (1e6)",
            9,
            14,
            vec![1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-6, 1e-6],
        ),
        ("zero matrix", 4, 6, vec![0.0; 4]),
        (
            "rank 5 of 40×30",
            40,
            30,
            (0..30)
                .map(|i| if i < 5 { 5.0 - i as f64 } else { 0.0 })
                .collect(),
        ),
        (
            "rank 23 of 24×24",
            24,
            24,
            (0..24)
                .map(|i| {
                    if i < 23 {
                        1.0 + 0.1 * (23 - i) as f64
                    } else {
                        0.0
                    }
                })
                .collect(),
        ),
        (
            "wide rank 2 of 6×33",
            6,
            33,
            vec![2.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        ),
    ];
    for (i, (what, m, n, sv)) in cases.iter().enumerate() {
        let da = with_spectrum(*m, *n, sv, 300 + i as u64);
        let a = Tensor::from_vec(da.clone(), &[*m, *n], dev).unwrap();
        let s = check_svd(what, &a, &da, *m, *n, 1e-5).await;
        let smax = sv[0].max(1e-30);
        for (j, (&g, &w)) in s.iter().zip(sv).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-5 * smax.max(1.0),
                "{what}: s[{j}] = {g}, want {w}"
            );
        }
    }
}

pub async fn errors_are_values(dev: &Device) {
    let a = Tensor::randn(&[2, 3], 1, dev).unwrap();
    let b = Tensor::randn(&[4, 5], 2, dev).unwrap();
    let v = Tensor::randn(&[3], 3, dev).unwrap();
    let e = expect_err("matmul mismatch", a.matmul(&b));
    assert!(matches!(e, Error::Shape { op: "matmul", .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("matmul") && msg.contains("[2, 3]") && msg.contains("[4, 5]"),
        "{msg}"
    );
    expect_err("matmul 1-D", a.matmul(&v));
    expect_err(
        "matmul batch",
        Tensor::randn(&[2, 2, 3], 1, dev)
            .unwrap()
            .matmul(&Tensor::randn(&[3, 3, 4], 1, dev).unwrap()),
    );
    let e = expect_err("add broadcast", a.add(&b));
    assert!(
        matches!(e, Error::Shape { op: "add", .. }) && e.to_string().contains("[2, 3]"),
        "{e}"
    );
    for (what, r) in [
        ("sum axis", a.sum(&[2], false)),
        ("sum repeated", a.sum(&[1, 1], false)),
        ("mean axis", a.mean(&[5], true)),
        ("softmax axis", a.softmax(2)),
        ("log_softmax axis", a.log_softmax(7)),
        ("transpose", a.transpose(0, 2)),
        ("permute short", a.permute(&[0])),
        ("permute repeated", a.permute(&[0, 0])),
        ("permute range", a.permute(&[0, 2])),
    ] {
        let e = expect_err(what, r);
        assert!(matches!(e, Error::Axis { .. }), "{what}: {e:?}");
    }
    let e = expect_err("reshape", a.reshape(&[4, 2]));
    assert!(
        matches!(e, Error::Shape { op: "reshape", .. }) && e.to_string().contains("[4, 2]"),
        "{e}"
    );
    let e = expect_err("from_vec", Tensor::from_vec(vec![1.0; 5], &[2, 3], dev));
    assert!(
        matches!(
            e,
            Error::Length {
                expected: 6,
                got: 5,
                ..
            }
        ),
        "{e:?}"
    );
    let e = expect_err("svd 1-D", v.svd().map(|_| ()));
    assert!(
        matches!(e, Error::Shape { op: "svd", .. }) && e.to_string().contains("[3]"),
        "{e}"
    );
    expect_err(
        "svd 3-D",
        Tensor::randn(&[2, 2, 2], 1, dev).unwrap().svd().map(|_| ()),
    );
    expect_err(
        "max of empty axis",
        Tensor::from_vec(vec![], &[0, 3], dev)
            .unwrap()
            .max(&[0], false),
    );
    // Operands of different devices.
    let other = Device::cpu().unwrap();
    let c = Tensor::randn(&[2, 3], 1, &other).unwrap();
    let e = expect_err("device mismatch", a.add(&c));
    assert!(matches!(e, Error::DeviceMismatch { .. }), "{e:?}");
    // An error leaves what was already computed intact.
    let ok = a.exp().unwrap();
    let before = read(&ok, &[2, 3]).await;
    expect_err("after", ok.matmul(&b));
    assert_eq!(read(&ok, &[2, 3]).await, before);
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
    let two = Tensor::scalar(2.0, dev).unwrap();
    assert_close(
        "maximum NaN",
        &read(&y.maximum(&two).unwrap(), &[2, 3]).await,
        &[2.0, 2.0, 3.0, nan, 5.0, 6.0],
        0.0,
        0.0,
    );
}

pub async fn randn_is_deterministic(dev: &Device) {
    let shape = [5, 7, 9];
    let a = read(&Tensor::randn(&shape, 1234, dev).unwrap(), &shape).await;
    let b = read(&Tensor::randn(&shape, 1234, dev).unwrap(), &shape).await;
    let c = read(&Tensor::randn(&shape, 1235, dev).unwrap(), &shape).await;
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_ne!(a, c);
    // Bit-identical to the CPU device's values.
    let cpu = Device::cpu().unwrap();
    let r = read(&Tensor::randn(&shape, 1234, &cpu).unwrap(), &shape).await;
    assert!(
        a.iter().zip(&r).all(|(x, y)| x.to_bits() == y.to_bits()),
        "randn differs from the CPU device"
    );
    // Plausibly standard normal, never constant.
    let big = read(&Tensor::randn(&[20_000], 9, dev).unwrap(), &[20_000]).await;
    let mean = big.iter().map(|&v| v as f64).sum::<f64>() / 20_000.0;
    let var = big.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 20_000.0;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "mean {mean} var {var}"
    );
    // A randn tensor used as an operand.
    let x = Tensor::randn(&shape, 1234, dev).unwrap();
    let got = read(&x.mul(&x).unwrap(), &shape).await;
    let want: Vec<f64> = r.iter().map(|&v| v as f64 * v as f64).collect();
    assert_close("randn²", &got, &want, 1e-6, 1e-6);
}

pub async fn long_chain(dev: &Device) {
    // 10,000 ops; the harness runs this on a 2 MiB stack.
    let (x0, d) = rand_tensor(dev, &[16], 77, -1.0, 1.0);
    let c = Tensor::from_vec(vec![0.999], &[], dev).unwrap();
    let e = Tensor::from_vec(vec![0.001], &[], dev).unwrap();
    let mut x = x0.clone();
    for i in 0..10_000 {
        x = if i % 2 == 0 {
            x.mul(&c).unwrap()
        } else {
            x.add(&e).unwrap()
        };
    }
    let got = read(&x, &[16]).await;
    let want: Vec<f64> = d
        .iter()
        .map(|&v| {
            let mut y = v;
            for i in 0..10_000 {
                y = if i % 2 == 0 { y * 0.999 } else { y + 0.001 };
            }
            y as f64
        })
        .collect();
    assert_close("10k chain", &got, &want, 1e-4, 1e-4);
    drop(x0);
}

pub async fn eval_shares_work(dev: &Device) {
    let (a, da) = rand_tensor(dev, &[8, 8], 5, -1.0, 1.0);
    let h = a.matmul(&a).unwrap().tanh().unwrap();
    let c = h.add(&a).unwrap();
    let d = h.mul(&a).unwrap();
    let before = dev.stats();
    tmath::eval_async(&[&c, &d, &c]).await.unwrap();
    let mid = dev.stats();
    assert!(mid.dispatches > before.dispatches, "eval ran nothing");
    let (hm, _) = ref_matmul(&da, &[8, 8], &da, &[8, 8]);
    let cw: Vec<f64> = hm
        .iter()
        .zip(&da)
        .map(|(h, &a)| h.tanh() + a as f64)
        .collect();
    let dw: Vec<f64> = hm
        .iter()
        .zip(&da)
        .map(|(h, &a)| h.tanh() * a as f64)
        .collect();
    assert_close("c", &read(&c, &[8, 8]).await, &cw, 1e-5, 1e-5);
    assert_close("d", &read(&d, &[8, 8]).await, &dw, 1e-5, 1e-5);
    assert_eq!(
        dev.stats().dispatches,
        mid.dispatches,
        "reading evaluated tensors recomputed"
    );
    // An empty list is fine.
    tmath::eval_async(&[]).await.unwrap();
}

pub async fn lazy_and_cached(dev: &Device) {
    let (a, da) = rand_tensor(dev, &[32, 16], 6, -1.0, 1.0);
    let before = dev.stats();
    // Build a graph, dropping intermediate handles before evaluation.
    let out = {
        let t = a.exp().unwrap();
        let u = t.mul(&a).unwrap();
        u.sum(&[1], false).unwrap()
    };
    assert_eq!(
        dev.stats().dispatches,
        before.dispatches,
        "building ops must not run them"
    );
    assert!(!out.is_evaluated());
    let got = read(&out, &[32]).await;
    let after = dev.stats();
    let want: Vec<f64> = (0..32)
        .map(|i| {
            (0..16)
                .map(|j| (da[i * 16 + j] as f64).exp() * da[i * 16 + j] as f64)
                .sum()
        })
        .collect();
    assert_close("sum(exp(a)*a)", &got, &want, 1e-5, 1e-5);
    assert!(out.is_evaluated());
    let again = read(&out, &[32]).await;
    assert_eq!(got, again);
    assert_eq!(
        dev.stats().dispatches,
        after.dispatches,
        "second read recomputed"
    );
    if dev.backend_name() == "cpu" {
        assert_eq!(dev.stats().compiles, 0, "the CPU device has no pipelines");
    }
}

pub async fn jit_mode_keeps_results(dev: &Device) {
    let (a, _) = rand_tensor(dev, &[24, 40], 8, -2.0, 2.0);
    let (b, _) = rand_tensor(dev, &[40], 9, -2.0, 2.0);
    let graph = |a: &Tensor| {
        a.add(&b)
            .unwrap()
            .gelu()
            .unwrap()
            .mul(a)
            .unwrap()
            .softmax(1)
            .unwrap()
            .sum(&[0], false)
            .unwrap()
    };
    assert_eq!(dev.jit(), JitMode::On);
    let on = read(&graph(&a), &[40]).await;
    dev.set_jit(JitMode::Off);
    let off = read(&graph(&a), &[40]).await;
    dev.set_jit(JitMode::On);
    assert_close("jit on vs off", &on, &to_f64(&off), 1e-5, 1e-5);
}

pub async fn empty_tensors(dev: &Device) {
    let e = Tensor::from_vec(vec![], &[0, 3], dev).unwrap();
    assert!(read(&e.exp().unwrap(), &[0, 3]).await.is_empty());
    let s = read(&e.sum(&[0], false).unwrap(), &[3]).await;
    assert_close("sum over empty", &s, &[0.0; 3], 0.0, 0.0);
    let m = e.transpose(0, 1).unwrap().matmul(&e).unwrap();
    assert_close("[3,0]x[0,3]", &read(&m, &[3, 3]).await, &[0.0; 9], 0.0, 0.0);
}

pub async fn elementwise_chain_fused_shapes(dev: &Device) {
    // A chain over several shapes with broadcasts, views and shared inputs: the kind of graph the
    // GPU backend fuses into few kernels.
    let (x, dx) = rand_tensor(dev, &[17, 23], 10, -3.0, 3.0);
    let (r, dr) = rand_tensor(dev, &[23], 11, 0.5, 1.5);
    let (c, dc) = rand_tensor(dev, &[17, 1], 12, -1.0, 1.0);
    let y = x
        .mul(&r)
        .unwrap()
        .add(&c)
        .unwrap()
        .tanh()
        .unwrap()
        .mul(&x)
        .unwrap()
        .sub(&x.abs().unwrap())
        .unwrap()
        .sigmoid()
        .unwrap();
    let z = y
        .transpose(0, 1)
        .unwrap()
        .exp()
        .unwrap()
        .add(&r.reshape(&[23, 1]).unwrap())
        .unwrap();
    let got = read(&z, &[23, 17]).await;
    let mut want = vec![0f64; 23 * 17];
    for i in 0..17 {
        for j in 0..23 {
            let xv = dx[i * 23 + j] as f64;
            let t = (xv * dr[j] as f64 + dc[i] as f64).tanh() * xv - xv.abs();
            let s = 1.0 / (1.0 + (-t).exp());
            want[j * 17 + i] = s.exp() + dr[j] as f64;
        }
    }
    assert_close("chain", &got, &want, 1e-5, 1e-5);
}

/// With `JitMode::On` a second evaluation of the same graph with other data compiles nothing;
/// a new shape compiles. The CPU device never compiles.
pub async fn jit_caches_pipelines(dev: &Device) {
    let gpu = dev.backend_name() != "cpu";
    let run = |m: usize, seed: u64| {
        let dev = dev.clone();
        async move {
            let (a, _) = rand_tensor(&dev, &[m, 24], seed, -1.0, 1.0);
            let (w, _) = rand_tensor(&dev, &[24, 16], seed + 1, -1.0, 1.0);
            let (b, _) = rand_tensor(&dev, &[16], seed + 2, -1.0, 1.0);
            let y = a.matmul(&w).unwrap().add(&b).unwrap().gelu().unwrap();
            let p = y
                .softmax(1)
                .unwrap()
                .mul(&y)
                .unwrap()
                .sum(&[0], false)
                .unwrap();
            read(&p, &[16]).await
        }
    };
    let s0 = dev.stats();
    let first = run(20, 1).await;
    let s1 = dev.stats();
    let second = run(20, 11).await;
    let s2 = dev.stats();
    assert_ne!(first, second, "new data must give new results");
    assert_eq!(
        s2.compiles, s1.compiles,
        "same graph, same shapes: nothing may compile"
    );
    if gpu {
        assert!(s1.compiles > s0.compiles, "the first evaluation compiles");
        assert!(
            s2.cache_hits > s1.cache_hits,
            "the second evaluation hits the cache"
        );
        #[cfg(not(target_arch = "wasm32"))]
        assert!(
            s1.compile_time > s0.compile_time,
            "compiling takes measurable time"
        );
    }
    run(21, 3).await;
    let s3 = dev.stats();
    if dev.backend_name() == "wgpu" && tmath::debug::generic_kernels(dev) {
        assert_eq!(
            s3.compiles, s2.compiles,
            "generic kernels: a new shape compiles nothing"
        );
    } else if gpu {
        assert!(s3.compiles > s2.compiles, "a new shape compiles");
    } else {
        assert_eq!(s3.compiles, 0, "the CPU device has no pipelines");
    }
}

/// Fusion: an 8-op elementwise chain is one dispatch with the JIT on and at least 8 with it
/// off (each rebuilt on every evaluation); softmax and matmul take their prologue/epilogue.
pub async fn jit_fuses_kernels(dev: &Device) {
    // Kernel counts are ours to check on wgpu only: MLX decides its own kernels, and counts one
    // compiled-function call per evaluation with the JIT on and one op per dispatch with it off.
    let gpu = dev.backend_name() == "wgpu";
    let (x, dx) = rand_tensor(dev, &[64, 48], 5, -1.0, 1.0);
    let c = Tensor::scalar(0.75, dev).unwrap();
    let chain = |x: &Tensor| {
        x.mul(&c)
            .unwrap()
            .add(&c)
            .unwrap()
            .tanh()
            .unwrap()
            .abs()
            .unwrap()
            .sqrt()
            .unwrap()
            .neg()
            .unwrap()
            .exp()
            .unwrap()
            .sigmoid()
            .unwrap()
    };
    let want: Vec<f64> = dx
        .iter()
        .map(|&v| {
            let t = (-(v as f64 * 0.75 + 0.75).tanh().abs().sqrt()).exp();
            1.0 / (1.0 + (-t).exp())
        })
        .collect();
    let dispatches = |f: &dyn Fn() -> Tensor, shape: Vec<usize>| {
        let dev = dev.clone();
        let t = f();
        async move {
            let before = dev.stats();
            let v = read(&t, &shape).await;
            let after = dev.stats();
            (
                v,
                after.dispatches - before.dispatches,
                after.compiles - before.compiles,
            )
        }
    };
    let (on, n_on, _) = dispatches(&|| chain(&x), vec![64, 48]).await;
    assert_close("chain (jit on)", &on, &want, 1e-6, 1e-5);
    dev.set_jit(JitMode::Off);
    let (off, n_off, c_off) = dispatches(&|| chain(&x), vec![64, 48]).await;
    let (_, _, c_off2) = dispatches(&|| chain(&x), vec![64, 48]).await;
    dev.set_jit(JitMode::On);
    assert_close("chain (jit off)", &off, &to_f64(&on), 1e-6, 1e-6);
    assert!(n_off >= 8, "JIT off: one dispatch per op, got {n_off}");
    if dev.backend_name() == "mlx" {
        assert_eq!(n_on, 1, "JIT on: one compiled MLX call");
        assert_eq!(
            (c_off, c_off2),
            (0, 0),
            "JIT off: MLX runs eagerly, compiles nothing"
        );
    }
    if gpu {
        assert_eq!(n_on, 1, "JIT on: the 8-op chain must be one kernel");
        assert!(
            c_off >= 8 && c_off2 >= 8,
            "JIT off rebuilds every pipeline on every evaluation ({c_off}, {c_off2})"
        );
        let (_, n, _) = dispatches(
            &|| x.mul(&c).unwrap().add(&c).unwrap().softmax(1).unwrap(),
            vec![64, 48],
        )
        .await;
        assert_eq!(n, 1, "softmax with its elementwise prologue is one kernel");
        let (_, n, _) = dispatches(
            &|| x.mul(&x).unwrap().sum(&[1], false).unwrap().sqrt().unwrap(),
            vec![64],
        )
        .await;
        assert_eq!(n, 1, "sum with prologue and epilogue is one kernel");
        let (w, _) = rand_tensor(dev, &[48, 32], 6, -1.0, 1.0);
        let (b, _) = rand_tensor(dev, &[32], 7, -1.0, 1.0);
        let (_, n, _) = dispatches(
            &|| x.matmul(&w).unwrap().add(&b).unwrap().gelu().unwrap(),
            vec![64, 32],
        )
        .await;
        assert_eq!(n, 1, "matmul + bias + gelu is one kernel");
    }
}

/// A result larger than the device's biggest buffer is an `Error::TooLarge` at evaluation (the
/// inputs are tiny: an outer sum), and the device keeps working afterwards.
pub async fn too_large_is_an_error(dev: &Device) {
    let Some(limit) = dev.max_tensor_bytes() else {
        return;
    };
    let n = ((limit / 4) as f64).sqrt() as usize + 16;
    let (col, _) = rand_tensor(dev, &[n, 1], 1, -1.0, 1.0);
    let (row, _) = rand_tensor(dev, &[1, n], 2, -1.0, 1.0);
    let big = col.add(&row).unwrap();
    let e = big
        .to_vec_async()
        .await
        .expect_err("a result beyond the buffer limit must fail");
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    // Nothing is lost: the device still evaluates.
    let s = col.sum(&[0, 1], false).unwrap();
    assert!(read(&s, &[]).await[0].is_finite());
}
