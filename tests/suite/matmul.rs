//! Matrix products: many sizes, batched with broadcast batch dims.

#![allow(unused_imports)]

use super::check::*;
use tmath::{Device, Error, JitMode, Tensor};

pub async fn matmul_sizes(dev: &Device) {
    for (i, &(m, k, n)) in [
        (1, 1, 1),
        (7, 13, 5),
        (33, 65, 17),
        (64, 64, 64),
        (1, 100, 3),
        (65, 1, 31),
        (128, 96, 80),
        // Wide enough for the CPU to cut into column strips on two threads (one partial).
        (100, 90, 300),
        // Dense in whole vec4s (a CPU adapter's lane form): fewer rows than a row block, a
        // partial column strip, a partial last row block.
        (5, 8, 12),
        (37, 20, 132),
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
        (&[2, 1, 9, 8], &[3, 8, 12]),
        (&[4, 20], &[2, 20, 36]),
    ];
    for (i, (sa, sb)) in cases.iter().enumerate() {
        let (a, da) = rand_tensor(dev, sa, 80 + i as u64, -1.0, 1.0);
        let (b, db) = rand_tensor(dev, sb, 90 + i as u64, -1.0, 1.0);
        let (want, s) = ref_matmul(&da, sa, &db, sb);
        let got = read(&a.matmul(&b).unwrap(), &s).await;
        assert_close(&format!("matmul {sa:?} x {sb:?}"), &got, &want, 1e-5, 1e-5);
    }
}

/// A product of a matrix with itself (one input bound as both operands) with a bias + relu
/// epilogue that reads a third input, at a shape dense in whole `vec4`s and at one that is not.
pub async fn matmul_self_with_epilogue(dev: &Device) {
    for (i, n) in [16usize, 18].into_iter().enumerate() {
        let (x, dx) = rand_tensor(dev, &[n, n], 120 + i as u64, -1.0, 1.0);
        let (bias, dbias) = rand_tensor(dev, &[n], 130 + i as u64, -1.0, 1.0);
        let (xx, s) = ref_matmul(&dx, &[n, n], &dx, &[n, n]);
        let want: Vec<f64> = xx
            .iter()
            .enumerate()
            .map(|(j, v)| (v + dbias[j % n] as f64).max(0.0))
            .collect();
        let y = x.matmul(&x).unwrap().add(&bias).unwrap().relu().unwrap();
        let got = read(&y, &s).await;
        assert_close(
            &format!("relu(x·x + b), {n}²"),
            &got,
            &want,
            1e-5 * 4.0,
            1e-5,
        );
    }
}

/// A fresh wgpu device with the JIT on and without quick first runs (the tiled kernel from the
/// first call); `None` on other backends.
async fn fresh_tiled(dev: &Device) -> Option<Device> {
    if dev.backend_name() != "wgpu" {
        return None;
    }
    let fresh = super::fresh_device(dev).await;
    fresh.set_jit(JitMode::On);
    tmath::debug::set_quick_first(&fresh, Some(false));
    Some(fresh)
}

/// The last two dims of a row-major `[batch.., rows, cols]` array swapped.
fn transposed(d: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; d.len()];
    for (bi, chunk) in d.chunks(rows * cols).enumerate() {
        for r in 0..rows {
            for c in 0..cols {
                t[bi * rows * cols + c * rows + r] = chunk[r * cols + c];
            }
        }
    }
    t
}

/// Every register tile of the matmul template (`debug::set_matmul_tile`; the autotuner chooses
/// among them per shape) against the f64 reference, and bit for bit against each other (each
/// output is the same chain of multiply-adds over `k` in every tile): shapes off the tiles'
/// edges, a transposed operand, a broadcast batch and a fused bias + GELU epilogue, at sizes a
/// CPU adapter's lane form does not take. Other backends ignore the switch.
pub async fn matmul_every_tile(dev: &Device) {
    let Some(fresh) = fresh_tiled(dev).await else {
        return;
    };
    let dev = &fresh;
    tmath::debug::set_autotune(dev, Some(false));
    let (x, dx) = rand_tensor(dev, &[2, 1, 70, 45], 141, -1.0, 1.0);
    let (w, dw) = rand_tensor(dev, &[3, 131, 45], 142, -1.0, 1.0);
    let (b, db) = rand_tensor(dev, &[131], 143, -1.0, 1.0);
    // w's last two dims transposed as a view: B is read along k.
    let dwt = transposed(&dw, 131, 45);
    let (mm, s) = ref_matmul(&dx, &[2, 1, 70, 45], &dwt, &[3, 45, 131]);
    let gelu = |v: f64| 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2));
    let want: Vec<f64> = mm
        .iter()
        .enumerate()
        .map(|(i, v)| gelu(v + db[i % 131] as f64))
        .collect();
    let graph = || {
        x.matmul(&w.transpose(1, 2).unwrap())
            .unwrap()
            .add(&b)
            .unwrap()
            .gelu()
            .unwrap()
    };
    let mut first: Option<Vec<f32>> = None;
    for tile in [(8, 8), (8, 4), (4, 8), (4, 4)] {
        tmath::debug::set_matmul_tile(dev, Some(tile)).unwrap();
        let got = read(&graph(), &s).await;
        assert_close(
            &format!("tile {tile:?}"),
            &got,
            &want,
            1e-5 * 45f64.sqrt(),
            1e-5,
        );
        match &first {
            None => first = Some(got),
            Some(f) => assert!(
                f.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                "tile {tile:?}: other bits than tile (8, 8)"
            ),
        }
    }
    tmath::debug::set_matmul_tile(dev, None).unwrap();
    let got = read(&graph(), &s).await;
    assert_eq!(Some(got), first, "the size rule's tile: the same bits");
    expect_err(
        "tile (6, 4)",
        tmath::debug::set_matmul_tile(dev, Some((6, 4))),
    );
}

/// Split-K: a product with few output tiles and a long `k` runs as a batch of partial products
/// over slices of `k` and their sum, which applies the epilogue (on wgpu: two kernels, counted).
/// Against the f64 reference: a fused bias + GELU, and a broadcast batch with a transposed
/// operand; a `k` that does not divide into slices stays one kernel.
pub async fn matmul_split_k(dev: &Device) {
    let fresh = super::fresh_device(dev).await;
    let dev = &fresh;
    dev.set_jit(JitMode::On);
    let gelu = |v: f64| 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2));
    // (batch of x, batch of w, m, k, n, w transposed, kernels on wgpu)
    type Case<'a> = (&'a [usize], &'a [usize], usize, usize, usize, bool, u64);
    let cases: &[Case] = &[
        (&[], &[], 40, 2048, 36, false, 2),
        (&[2, 1], &[3], 20, 1024, 24, true, 2),
        (&[], &[], 30, 1000, 20, false, 1),
    ];
    for (i, &(bx, bw, m, k, n, wt, kernels)) in cases.iter().enumerate() {
        let sx: Vec<usize> = bx.iter().copied().chain([m, k]).collect();
        let sw: Vec<usize> = if wt {
            bw.iter().copied().chain([n, k]).collect()
        } else {
            bw.iter().copied().chain([k, n]).collect()
        };
        let (x, dx) = rand_tensor(dev, &sx, 150 + i as u64, -1.0, 1.0);
        let (w, dw) = rand_tensor(dev, &sw, 160 + i as u64, -1.0, 1.0);
        let (b, db) = rand_tensor(dev, &[n], 170 + i as u64, -1.0, 1.0);
        let (dw_kn, w_kn) = if wt {
            // The reference takes w as [.., k, n].
            (
                transposed(&dw, n, k),
                w.transpose(bw.len(), bw.len() + 1).unwrap(),
            )
        } else {
            (dw.clone(), w.clone())
        };
        let skn: Vec<usize> = bw.iter().copied().chain([k, n]).collect();
        let (mm, s) = ref_matmul(&dx, &sx, &dw_kn, &skn);
        let want: Vec<f64> = mm
            .iter()
            .enumerate()
            .map(|(j, v)| gelu(v + db[j % n] as f64))
            .collect();
        let d0 = dev.stats().dispatches;
        let y = x.matmul(&w_kn).unwrap().add(&b).unwrap().gelu().unwrap();
        let got = read(&y, &s).await;
        let d1 = dev.stats().dispatches;
        assert_close(
            &format!("gelu(x·w + b), {sx:?} x {skn:?}"),
            &got,
            &want,
            1e-5 * (k as f64).sqrt(),
            1e-5,
        );
        if dev.backend_name() == "wgpu" {
            assert_eq!(d1 - d0, kernels, "kernels of {sx:?} x {skn:?}");
        }
    }
}

/// The matmul autotuner (forced on: CI's adapters are CPUs): a new shape's tiles are measured in
/// the background while calls go on (natively on the compile thread, in browsers on the event
/// loop), once; the calls before and after give the same bits. A transposed operand keeps the
/// product off a CPU adapter's lane form. Other backends have no tuner.
pub async fn matmul_autotune(dev: &Device) {
    let Some(fresh) = fresh_tiled(dev).await else {
        return;
    };
    let dev = &fresh;
    tmath::debug::set_autotune(dev, Some(true));
    let (x, dx) = rand_tensor(dev, &[96, 200], 181, -1.0, 1.0);
    let (w, dw) = rand_tensor(dev, &[120, 200], 182, -1.0, 1.0);
    let dwt = transposed(&dw, 120, 200);
    let (want, s) = ref_matmul(&dx, &[96, 200], &dwt, &[200, 120]);
    let wt = w.transpose(0, 1).unwrap();
    let first = read(&x.matmul(&wt).unwrap(), &s).await;
    assert_close("tuned matmul", &first, &want, 1e-5 * 200f64.sqrt(), 1e-5);
    assert_eq!(dev.stats().tunes_requested, 1, "the new shape is queued");
    let mut waited = 0;
    while dev.stats().tunes_done < 1 {
        waited += 1;
        assert!(
            waited < 20_000,
            "the tuning never finished: {:?}",
            dev.stats()
        );
        super::pause().await;
    }
    for _ in 0..2 {
        let again = read(&x.matmul(&wt).unwrap(), &s).await;
        assert_eq!(again, first, "the tuned tile: the same bits");
    }
    assert_eq!(dev.stats().tunes_requested, 1, "measured once");
}
