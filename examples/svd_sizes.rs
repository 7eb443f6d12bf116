//! Times the thin SVD at several sizes on the best device (or the one named: `cpu`, `wgpu`),
//! with the kernel count per call and the factorization's accuracy, computed in f64:
//! ‖A − UΣVᵀ‖_F/‖A‖_F, max |UᵀU − I| and max |VVᵀ − I|.
//! `cargo run --release --example svd_sizes [cpu|wgpu] [largest dimension]`

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

fn main() -> tmath::Result<()> {
    let mut args = std::env::args().skip(1);
    let dev = match args.next().as_deref() {
        Some("cpu") => Device::cpu()?,
        Some("wgpu") => Device::wgpu()?,
        _ => Device::best()?,
    };
    let max: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(512);
    println!("device: {}", dev.adapter_name());
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
        let a = Tensor::randn(&[m, n], 1, &dev)?;
        tmath::eval(&[&a])?;
        let (_, s, _) = a.svd()?;
        s.to_vec()?; // warm-up: compiles
        let before = dev.stats();
        let t0 = Instant::now();
        let (u, s, vt) = a.svd()?;
        tmath::eval(&[&u, &s, &vt])?;
        dev.synchronize()?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let k = dev.stats().dispatches - before.dispatches;
        // The same call again with GPU timestamps: the kernels' share of the wall time.
        dev.set_profiling(true);
        let k0 = dev.stats().kernel_time;
        let (_, s2, _) = a.svd()?;
        tmath::eval(&[&s2])?;
        dev.synchronize()?;
        let kernel_ms = (dev.stats().kernel_time - k0).as_secs_f64() * 1e3;
        dev.set_profiling(false);
        let (recon, ou, ov) = errors(
            &a.to_vec()?,
            &u.to_vec()?,
            &s.to_vec()?,
            &vt.to_vec()?,
            m,
            n,
        );
        println!(
            "svd {m}x{n}: {ms:.2} ms (kernels {kernel_ms:.2}), {k} kernels ({:.1} us each); ‖A − UΣVᵀ‖/‖A‖ {recon:.2e}, \
             max |UᵀU − I| {ou:.2e}, max |VVᵀ − I| {ov:.2e}",
            ms * 1e3 / k.max(1) as f64
        );
    }
    Ok(())
}
