//! Graphs: views feeding compute, determinism of `randn`, long chains, shared work, laziness and value caching, empty tensors.

#![allow(unused_imports)]

use super::check::*;
use tmath::{Device, Error, JitMode, Tensor};

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
    // The same at a size the CPU copies in tiles first (batched, edges not multiples of 32).
    let shape = [2, 130, 141];
    let (big, dbig) = rand_tensor(dev, &shape, 14, -1.0, 1.0);
    let (tbig, sbig) = ref_permute(&dbig, &shape, &[0, 2, 1]);
    let got = read(
        &big.transpose(1, 2)
            .unwrap()
            .mul(&big.transpose(1, 2).unwrap().exp().unwrap())
            .unwrap(),
        &sbig,
    )
    .await;
    let want: Vec<f64> = tbig.iter().map(|&x| x as f64 * (x as f64).exp()).collect();
    assert_close("large transpose · exp(transpose)", &got, &want, 1e-6, 1e-6);
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

pub async fn empty_tensors(dev: &Device) {
    let e = Tensor::from_vec(vec![], &[0, 3], dev).unwrap();
    assert!(read(&e.exp().unwrap(), &[0, 3]).await.is_empty());
    let s = read(&e.sum(&[0], false).unwrap(), &[3]).await;
    assert_close("sum over empty", &s, &[0.0; 3], 0.0, 0.0);
    let m = e.transpose(0, 1).unwrap().matmul(&e).unwrap();
    assert_close("[3,0]x[0,3]", &read(&m, &[3, 3]).await, &[0.0; 9], 0.0, 0.0);
}
