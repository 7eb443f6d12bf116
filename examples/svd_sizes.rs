//! Times the thin SVD at several sizes on the best device (or the one named: `cpu`, `wgpu`),
//! with the kernel count per call and the factorization's accuracy, computed in f64:
//! ‖A − UΣVᵀ‖_F/‖A‖_F, max |UᵀU − I| and max |VVᵀ − I|. Each size runs on Gaussian input and
//! on a graded spectrum (σ from 10 down to 0.01, log-spaced, with random singular vectors),
//! where the largest error of the singular values, relative to σ_max, is printed too. Times are
//! medians of 5 calls (wall, then kernels by GPU timestamps).
//! `cargo run --release --example svd_sizes [cpu|wgpu] [largest dimension] [qr]` (`qr`: the GPU
//! SVD preconditioned by QR, `debug::set_svd_qr`).

use std::time::Instant;
use tmath::{Device, Tensor};

/// `(‖A − UΣVᵀ‖_F/‖A‖_F, max |UᵀU − I|, max |VVᵀ − I|)` for a thin SVD of `a` (`m × n`).
fn errors(a: &[f32], u: &[f32], s: &[f32], vt: &[f32], m: usize, n: usize) -> (f64, f64, f64) {
    let k = m.min(n);
    let (mut err, mut norm) = (0f64, 0f64);
    let mut row = vec![0f64; n];
    for i in 0..m {
        row.iter_mut().for_each(|x| *x = 0.0);
        for p in 0..k {
            let us = u[i * k + p] as f64 * s[p] as f64;
            for (x, &v) in row.iter_mut().zip(&vt[p * n..(p + 1) * n]) {
                *x += us * v as f64;
            }
        }
        for (j, &x) in row.iter().enumerate() {
            let want = a[i * n + j] as f64;
            err += (x - want).powi(2);
            norm += want * want;
        }
    }
    // Gram matrices of U's columns and of Vᵀ's rows.
    let gram_dev = |get: &dyn Fn(usize, usize) -> f64, len: usize| {
        let mut worst = 0f64;
        for p in 0..k {
            for q in p..k {
                let d: f64 = (0..len).map(|t| get(p, t) * get(q, t)).sum();
                worst = worst.max((d - if p == q { 1.0 } else { 0.0 }).abs());
            }
        }
        worst
    };
    let ou = gram_dev(&|p, t| u[t * k + p] as f64, m);
    let ov = gram_dev(&|p, t| vt[p * n + t] as f64, n);
    ((err / norm.max(1e-300)).sqrt(), ou, ov)
}

/// A deterministic uniform sample in [−1, 1) (SplitMix64).
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// `k` orthonormal vectors of length `len` (Gram–Schmidt twice, in f64).
fn orthonormal(len: usize, k: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut state = seed;
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
    while q.len() < k {
        let mut v: Vec<f64> = (0..len).map(|_| uniform(&mut state)).collect();
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
}

/// `A = Q1·diag(σ)·Q2ᵀ` (`m × n`) with σ from 10 down to 0.01, log-spaced; returns A and σ.
fn graded(m: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<f64>) {
    let k = m.min(n);
    let sv: Vec<f64> = (0..k)
        .map(|p| 10.0 * 0.001f64.powf(p as f64 / (k.max(2) - 1) as f64))
        .collect();
    let (q1, q2) = (orthonormal(m, k, seed), orthonormal(n, k, seed + 1));
    let mut a = vec![0f64; m * n];
    for p in 0..k {
        for i in 0..m {
            let x = q1[p][i] * sv[p];
            for (y, &z) in a[i * n..(i + 1) * n].iter_mut().zip(&q2[p]) {
                *y += x * z;
            }
        }
    }
    (a.into_iter().map(|x| x as f32).collect(), sv)
}

/// Timed calls per matrix (the medians are printed).
const REPS: usize = 5;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> tmath::Result<()> {
    let mut args = std::env::args().skip(1);
    let dev = match args.next().as_deref() {
        Some("cpu") => Device::cpu()?,
        Some("wgpu") => Device::wgpu()?,
        _ => Device::best()?,
    };
    let max: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(512);
    tmath::debug::set_svd_qr(&dev, args.next().as_deref() == Some("qr"));
    let storage = dev
        .limits()
        .into_iter()
        .find(|(k, _)| *k == "max_compute_workgroup_storage_size")
        .map_or(0, |(_, v)| v);
    println!(
        "device: {} (workgroup memory {storage} bytes)",
        dev.adapter_name()
    );
    let sizes = [
        (32, 32),
        (64, 64),
        (128, 128),
        (256, 256),
        (512, 512),
        (1000, 300),
        (1024, 1024),
    ];
    for (m, n) in sizes.into_iter().filter(|&(m, n)| m.max(n) <= max) {
        let (g, sv) = graded(m, n, 7);
        let inputs = [
            ("gaussian", Tensor::randn(&[m, n], 1, &dev)?, None),
            ("graded", Tensor::from_vec(g, &[m, n], &dev)?, Some(sv)),
        ];
        for (what, a, sv) in inputs {
            tmath::eval(&[&a])?;
            let (_, s, _) = a.svd()?;
            // A warm-up call compiles; then medians of REPS calls: wall time (and the
            // dispatches of one), then the same calls with GPU timestamps (the kernels' share
            // of the wall time).
            s.to_vec()?;
            let mut walls = vec![];
            let mut kernels = vec![];
            let mut k = 0;
            let mut out = None;
            for _ in 0..REPS {
                let before = dev.stats();
                let t0 = Instant::now();
                let (u, s, vt) = a.svd()?;
                tmath::eval(&[&u, &s, &vt])?;
                dev.synchronize()?;
                walls.push(t0.elapsed().as_secs_f64() * 1e3);
                k = dev.stats().dispatches - before.dispatches;
                out = Some((u, s, vt));
            }
            for _ in 0..REPS {
                dev.set_profiling(true);
                let k0 = dev.stats().kernel_time;
                let (_, s2, _) = a.svd()?;
                tmath::eval(&[&s2])?;
                dev.synchronize()?;
                kernels.push((dev.stats().kernel_time - k0).as_secs_f64() * 1e3);
                dev.set_profiling(false);
            }
            let (ms, kernel_ms) = (median(&mut walls), median(&mut kernels));
            let (u, s, vt) = out.expect("REPS > 0");
            let sval = s.to_vec()?;
            let (recon, ou, ov) = errors(&a.to_vec()?, &u.to_vec()?, &sval, &vt.to_vec()?, m, n);
            let serr = sv.map_or(String::new(), |sv| {
                let e = sval
                    .iter()
                    .zip(&sv)
                    .map(|(&g, &w)| (g as f64 - w).abs())
                    .fold(0.0, f64::max)
                    / sv[0];
                format!(", max |s − σ|/σ_max {e:.2e}")
            });
            println!(
                "svd {m}x{n} {what}: {ms:.2} ms (kernels {kernel_ms:.2}), {k} kernels ({:.1} us each); \
                 ‖A − UΣVᵀ‖/‖A‖ {recon:.2e}, max |UᵀU − I| {ou:.2e}, max |VVᵀ − I| {ov:.2e}{serr}",
                ms * 1e3 / k.max(1) as f64
            );
        }
    }
    Ok(())
}
