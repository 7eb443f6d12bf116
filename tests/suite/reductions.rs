//! Reductions over any axes, and softmax / log-softmax.

#![allow(unused_imports)]

use super::check::*;
use tmath::{Device, Error, JitMode, Tensor};

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
    // A reduced block with more than a thousand kept columns after it (the CPU reduces such
    // columns in blocks of 1,024, rows of the block read contiguously).
    let shape = [3, 7, 1100];
    let (y, dy) = rand_tensor(dev, &shape, 22, -2.0, 2.0);
    for kind in ["sum", "mean", "max", "min"] {
        let t = match kind {
            "sum" => y.sum(&[1], false),
            "mean" => y.mean(&[1], false),
            "max" => y.max(&[1], false),
            _ => y.min(&[1], false),
        }
        .unwrap();
        let (want, s) = ref_reduce(&dy, &shape, &[1], false, kind);
        let got = read(&t, &s).await;
        assert_close(&format!("{kind} [1] of {shape:?}"), &got, &want, 1e-5, 1e-5);
    }
    // Many outputs of moderate counts: each output takes a group of threads, several groups a
    // workgroup (the last workgroup partly idle), with a fused prologue and epilogue.
    let shape = [37, 300];
    let (z, dz) = rand_tensor(dev, &shape, 23, -2.0, 2.0);
    for axis in [0usize, 1] {
        for kind in ["sum", "mean", "max", "min"] {
            let pre = z.mul(&z).unwrap();
            let t = match kind {
                "sum" => pre.sum(&[axis], false),
                "mean" => pre.mean(&[axis], false),
                "max" => pre.max(&[axis], false),
                _ => pre.min(&[axis], false),
            }
            .unwrap()
            .sqrt()
            .unwrap();
            let sq: Vec<f32> = dz.iter().map(|v| v * v).collect();
            let (want, s) = ref_reduce(&sq, &shape, &[axis], false, kind);
            let want: Vec<f64> = want.iter().map(|v| v.sqrt()).collect();
            let got = read(&t, &s).await;
            assert_close(
                &format!("sqrt({kind}(x², {axis})) of 37×300"),
                &got,
                &want,
                1e-5,
                1e-5,
            );
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
    // Relative accuracy on wide rows (terms down to e⁻⁴⁰ of the largest): rounding x − max to
    // f32 alone moves exp by up to 40·2⁻²⁴ ≈ 2.4e-6 relative; then a few ulp of exp and the
    // sum's rounding (MLX: its own exp, about |x|·2⁻²⁴ more).
    let shape = [8, 1024];
    let (x, d) = rand_tensor(dev, &shape, 37, -20.0, 20.0);
    let rtol = if dev.backend_name() == "mlx" {
        2e-5
    } else {
        4e-6
    };
    let got = read(&x.softmax(1).unwrap(), &shape).await;
    let want = ref_softmax(&d, &shape, 1, false);
    assert_close("softmax, wide rows", &got, &want, 0.0, rtol);
    let got = read(&x.log_softmax(1).unwrap(), &shape).await;
    let want = ref_softmax(&d, &shape, 1, true);
    assert_close("log_softmax, wide rows", &got, &want, 2e-6, 2e-7);
    // A −inf term weighs 0; a NaN anywhere in a row makes the whole row NaN.
    let (ni, nan) = (f32::NEG_INFINITY, f32::NAN);
    let row = vec![1.0, ni, 2.0, 0.5, 3.0, nan, -1.0, 2.0];
    let t = Tensor::from_vec(row.clone(), &[2, 4], dev).unwrap();
    let got = read(&t.softmax(1).unwrap(), &[2, 4]).await;
    let want = ref_softmax(&row, &[2, 4], 1, false);
    assert_close("softmax with −inf and NaN", &got, &want, 1e-7, 1e-6);
    // The same down the columns (axis 0 of the transposed values).
    let col: Vec<f32> = (0..8).map(|i| row[(i % 2) * 4 + i / 2]).collect();
    let t = Tensor::from_vec(col.clone(), &[4, 2], dev).unwrap();
    for log in [false, true] {
        let s = if log { t.log_softmax(0) } else { t.softmax(0) };
        let got = read(&s.unwrap(), &[4, 2]).await;
        let want = ref_softmax(&col, &[4, 2], 0, log);
        assert_close(
            "softmax over axis 0 with −inf and NaN",
            &got,
            &want,
            1e-6,
            1e-6,
        );
    }
    // More rows than one grid dimension holds (65,535 workgroups; one per row on a GPU): the
    // launch folds into rows of workgroups, every row computed once.
    let shape = [70_000, 3];
    let (x, d) = rand_tensor(dev, &shape, 41, -5.0, 5.0);
    let got = read(&x.softmax(1).unwrap(), &shape).await;
    let want = ref_softmax(&d, &shape, 1, false);
    assert_close("softmax of 70,000 rows", &got, &want, 1e-7, 1e-5);
}
