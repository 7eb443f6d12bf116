//! The thin SVD: shapes, and hard spectra (clustered, rank-deficient, graded).

#![allow(unused_imports)]

use super::check::*;
use tmath::{Device, Error, JitMode, Tensor};

/// `(‖A − UΣVᵀ‖_F / ‖A‖_F, max |UᵀU − I|, max |VVᵀ − I|)` of a thin SVD, in f64 (the
/// reconstruction error is absolute when `A` is 0).
fn svd_errors(u: &[f32], s: &[f32], vt: &[f32], da: &[f32], m: usize, n: usize) -> (f64, f64, f64) {
    let k = m.min(n);
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
    let (mut ou, mut ov) = (0f64, 0f64);
    for p in 0..k {
        for q in 0..k {
            let id = if p == q { 1.0 } else { 0.0 };
            let uu: f64 = (0..m)
                .map(|i| u[i * k + p] as f64 * u[i * k + q] as f64)
                .sum();
            let vv: f64 = (0..n)
                .map(|j| vt[p * n + j] as f64 * vt[q * n + j] as f64)
                .sum();
            ou = ou.max((uu - id).abs());
            ov = ov.max((vv - id).abs());
        }
    }
    (err.sqrt() / norm.max(1e-30), ou, ov)
}

/// The thin SVD of `a` (`m × n`), evaluated in one schedule and read back: `(U, S, Vᵀ)`.
async fn svd_read(a: &Tensor, m: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let k = m.min(n);
    let (u, s, vt) = a.svd().unwrap();
    tmath::eval_async(&[&u, &s, &vt]).await.unwrap();
    (
        read(&u, &[m, k]).await,
        read(&s, &[k]).await,
        read(&vt, &[k, n]).await,
    )
}

/// Checks a thin SVD's invariants and returns the singular values.
async fn check_svd(what: &str, a: &Tensor, da: &[f32], m: usize, n: usize, tol: f64) -> Vec<f32> {
    let k = m.min(n);
    let (u, s, vt) = svd_read(a, m, n).await;
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
    // reconstruction ‖A - U S Vᵀ‖_F ≤ tol ‖A‖_F; orthonormal columns of U and rows of Vᵀ
    let (recon, ou, ov) = svd_errors(&u, &s, &vt, da, m, n);
    assert!(
        recon <= tol,
        "{what}: reconstruction error {recon:e} (relative)"
    );
    assert!(ou < 1e-3, "{what}: max |UᵀU − I| = {ou:e}");
    assert!(ov < 1e-3, "{what}: max |VVᵀ − I| = {ov:e}");
    s
}

/// The SVD configurations a test runs in, as `(hardware blocks, split)`: the device's own; on a
/// software adapter also the hardware adapters' (`debug::set_svd_hardware_blocks`: rounds through
/// the Gram matrix), so that CI, which has no GPU, puts every rotation round through these
/// inputs; and where the adapter has the Gram rounds' 32 KiB of workgroup memory, their split
/// form at every size (`debug::set_svd_split`), and natively both forms preconditioned by QR
/// (`debug::set_svd_qr`; the same WGSL in browsers, left out there for the browser run's time
/// on SwiftShader). As `(hardware blocks, split, QR)`.
fn svd_configs(dev: &Device) -> Vec<(bool, bool, bool)> {
    let software = tmath::debug::is_software(dev);
    let gram = dev
        .limits()
        .into_iter()
        .any(|(k, v)| k == "max_compute_workgroup_storage_size" && v >= 32768);
    let mut configs = vec![(false, false, false)];
    if software {
        configs.push((true, false, false));
    }
    if gram {
        configs.push((software, true, false));
        if !cfg!(target_arch = "wasm32") {
            configs.push((software, false, true));
            configs.push((software, true, true));
        }
    }
    configs
}

/// `check_svd` in each of [`svd_configs`]; the singular values of each.
async fn check_svd_configs(
    dev: &Device,
    what: &str,
    a: &Tensor,
    da: &[f32],
    (m, n): (usize, usize),
    tol: f64,
) -> Vec<Vec<f32>> {
    let mut out = vec![];
    for (hardware_blocks, split, qr) in svd_configs(dev) {
        tmath::debug::set_svd_hardware_blocks(dev, hardware_blocks);
        tmath::debug::set_svd_split(dev, split);
        tmath::debug::set_svd_qr(dev, qr);
        let what = format!("{what} (hardware blocks: {hardware_blocks}, split: {split}, QR: {qr})");
        out.push(check_svd(&what, a, da, m, n, tol).await);
        tmath::debug::set_svd_hardware_blocks(dev, false);
        tmath::debug::set_svd_split(dev, false);
        tmath::debug::set_svd_qr(dev, false);
    }
    out
}

pub async fn svd_shapes(dev: &Device) {
    for (i, &(m, n)) in [(1, 1), (16, 16), (8, 20), (30, 7), (1, 9), (9, 1), (33, 31)]
        .iter()
        .enumerate()
    {
        let (a, da) = rand_tensor(dev, &[m, n], 200 + i as u64, -1.0, 1.0);
        check_svd_configs(dev, &format!("svd {m}x{n}"), &a, &da, (m, n), 1e-5).await;
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
        let smax = sv[0].max(1e-30);
        for s in check_svd_configs(dev, what, &a, &da, (*m, *n), 1e-5).await {
            for (j, (&g, &w)) in s.iter().zip(sv).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-5 * smax.max(1.0),
                    "{what}: s[{j}] = {g}, want {w}"
                );
            }
        }
    }
}

/// Accuracy of the thin SVD on graded spectra (σ from 10 down to 0.01, log-spaced), against the
/// known factors: ‖A − UΣVᵀ‖_F/‖A‖_F, max |UᵀU − I| and max |VVᵀ − I| within
/// 5e-6·max(1, log₂ n), singular values within 1e-5·σ_max on our GPU kernel (2e-5 on the CPU and
/// MLX, whose f32 LAPACK-style solvers land at ~1e-5). Sizes cover one workgroup per round and
/// several, in the hardware configuration on every adapter: rounds through each block pair's
/// Gram matrix (blocks of up to 16 columns) where the adapter has 32 KiB of workgroup memory —
/// one dispatch a round up to 128 columns, the largest size (264 columns) in their split form
/// (each pair's rows over several workgroups) — else blocks of 4 columns through memory (64
/// threads per column pair; SwiftShader in Chromium); on a software adapter the largest size
/// runs again in its own configuration (blocks of 32 columns through memory).
pub async fn svd_accuracy(dev: &Device) {
    let software = tmath::debug::is_software(dev);
    let sizes = [(96, 96), (128, 128), (280, 100), (60, 150), (300, 264)];
    // (size, hardware blocks, QR preconditioning)
    let runs = sizes
        .iter()
        .map(|&s| (s, true, false))
        .chain(software.then_some(((300, 264), false, false)))
        .chain(
            [((280, 100), true, true), ((60, 150), true, true)]
                .into_iter()
                .filter(|_| !cfg!(target_arch = "wasm32")),
        );
    for (i, ((m, n), hardware_blocks, qr)) in runs.enumerate() {
        tmath::debug::set_svd_hardware_blocks(dev, hardware_blocks);
        tmath::debug::set_svd_qr(dev, qr);
        let k = m.min(n);
        let sv: Vec<f64> = (0..k)
            .map(|p| 10.0 * 0.001f64.powf(p as f64 / (k - 1) as f64))
            .collect();
        let da = with_spectrum(m, n, &sv, 900 + i as u64);
        let a = Tensor::from_vec(da.clone(), &[m, n], dev).unwrap();
        let (u, s, vt) = svd_read(&a, m, n).await;
        tmath::debug::set_svd_hardware_blocks(dev, false);
        tmath::debug::set_svd_qr(dev, false);
        let what =
            format!("svd {m}×{n} graded on {dev:?} (hardware blocks: {hardware_blocks}, QR: {qr})");
        let bound = 5e-6 * (m.max(n) as f64).log2().max(1.0);
        let (recon, ou, ov) = svd_errors(&u, &s, &vt, &da, m, n);
        assert!(
            recon <= bound,
            "{what}: ‖A − UΣVᵀ‖/‖A‖ = {recon:.2e} > {bound:.1e}"
        );
        assert!(
            ou <= bound,
            "{what}: max |UᵀU − I| = {ou:.2e} > {bound:.1e}"
        );
        assert!(
            ov <= bound,
            "{what}: max |VVᵀ − I| = {ov:.2e} > {bound:.1e}"
        );
        let s_bound = if dev.backend_name() == "wgpu" {
            1e-5
        } else {
            2e-5
        };
        let se = s
            .iter()
            .zip(&sv)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0.0, f64::max)
            / sv[0];
        assert!(
            se <= s_bound,
            "{what}: max |s − σ|/σ_max = {se:.2e} > {s_bound:.0e}"
        );
    }
}
