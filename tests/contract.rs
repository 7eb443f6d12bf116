//! The public surface exactly as MISSION.md pins it: names, signatures, trait impls.

#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;
use tmath::{Device, Error, JitMode, Stats, Tensor};

fn assert_send_sync<T: Send + Sync + Clone>() {}

#[test]
fn surface_on_cpu() -> Result<(), Box<dyn std::error::Error>> {
    surface(&Device::cpu()?)
}

#[test]
fn surface_on_wgpu() -> Result<(), Box<dyn std::error::Error>> {
    match Device::wgpu() {
        Ok(dev) => surface(&dev),
        Err(e) if std::env::var("TMATH_REQUIRE_GPU").is_err() => {
            eprintln!("wgpu unavailable: {e}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn surface(dev: &Device) -> Result<(), Box<dyn std::error::Error>> {
    assert_send_sync::<Device>();
    assert_send_sync::<Tensor>();
    let dev = dev.clone();
    let best = Device::best()?;
    let _ = pollster::block_on(Device::best_async())?;
    assert!(matches!(best.backend_name(), "cpu" | "wgpu"));
    let (m, k, n) = (3, 4, 5);
    let a = Tensor::from_vec((0..m * k).map(|i| i as f32 * 0.1).collect(), &[m, k], &dev)?;
    let b = Tensor::randn(&[k, n], 42, &dev)?;
    let bias = Tensor::from_vec(vec![1.5], &[], &dev)?;
    let c = a.matmul(&b)?.add(&bias)?.gelu()?;
    let d = c.softmax(1)?.log_softmax(0)?.sum(&[0, 1], false)?;
    let v: Vec<f32> = c.to_vec()?;
    assert_eq!(v.len(), m * n);
    let v2 = pollster::block_on(c.to_vec_async())?;
    assert_eq!(v, v2);
    tmath::eval(&[&c, &d])?;
    pollster::block_on(tmath::eval_async(&[&c, &d]))?;
    let (u, s, vt) = a.svd()?;
    assert_eq!(
        (u.shape(), s.shape(), vt.shape()),
        (&[3usize, 3][..], &[3usize][..], &[3usize, 4][..])
    );
    dev.set_jit(JitMode::Off);
    dev.set_jit(JitMode::On);
    let st: Stats = dev.stats();
    let (_c, _h, _d, _t): (u64, u64, u64, Duration) =
        (st.compiles, st.cache_hits, st.dispatches, st.compile_time);
    if dev.backend_name() == "cpu" {
        assert_eq!(st.compiles, 0);
    } else {
        assert!(st.compiles > 0 && st.dispatches > 0);
    }
    let e: Error = a.matmul(&a).unwrap_err();
    let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
    assert!(boxed.to_string().contains("matmul"), "{e:?}");
    let r: tmath::Result<Tensor> = a.reshape(&[2, 6]);
    assert_eq!(r?.shape(), &[2, 6]);
    for t in [
        a.neg()?,
        a.abs()?,
        a.exp()?,
        a.log()?,
        a.sqrt()?,
        a.rsqrt()?,
        a.sin()?,
        a.cos()?,
        a.tanh()?,
        a.sigmoid()?,
        a.relu()?,
        a.gelu()?,
        a.gelu_tanh()?,
        a.silu()?,
    ] {
        assert_eq!(t.shape(), &[3, 4]);
    }
    for t in [
        a.sub(&a)?,
        a.mul(&a)?,
        a.div(&bias)?,
        a.pow(&bias)?,
        a.maximum(&a)?,
        a.minimum(&a)?,
    ] {
        assert_eq!(t.shape(), &[3, 4]);
    }
    for t in [a.mean(&[0], true)?, a.max(&[1], false)?, a.min(&[], false)?] {
        assert!(t.numel() > 0);
    }
    assert_eq!(a.transpose(0, 1)?.permute(&[1, 0])?.shape(), &[3, 4]);
    Ok(())
}
