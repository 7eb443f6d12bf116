//! Times the thin SVD at several sizes on the best device, with the kernel count per call.
//! `cargo run --release --example svd_sizes`

use std::time::Instant;
use tmath::{Device, Tensor};

fn main() -> tmath::Result<()> {
    let dev = Device::best()?;
    println!("device: {}", dev.adapter_name());
    for n in [32, 64, 128, 256, 512] {
        let a = Tensor::randn(&[n, n], 1, &dev)?;
        tmath::eval(&[&a])?;
        let (_, s, _) = a.svd()?;
        s.to_vec()?; // warm-up: compiles
        let before = dev.stats();
        let t0 = Instant::now();
        let (_, s, _) = a.svd()?;
        tmath::eval(&[&s])?;
        dev.synchronize()?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let k = dev.stats().dispatches - before.dispatches;
        println!(
            "svd {n}x{n}: {ms:.2} ms, {k} kernels, {:.1} us per kernel",
            ms * 1e3 / k as f64
        );
    }
    Ok(())
}
