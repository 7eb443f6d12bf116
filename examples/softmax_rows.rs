//! Softmax kernel time (GPU timestamps, min and median of 20 calls after 50 unmeasured ones)
//! for rows of 8 to 2,048 elements: how `codegen/softmax.rs` shares rows among threads.
//! `cargo run --release --example softmax_rows`
use tmath::{Device, Tensor};
fn main() -> tmath::Result<()> {
    let dev = Device::wgpu()?;
    for (rows, len) in [
        (16384usize, 64usize),
        (4096, 256),
        (65536, 8),
        (65536, 16),
        (2048, 512),
        (1024, 1024),
        (32768, 32),
        (8192, 2048),
    ] {
        let x = Tensor::randn(&[rows, len], 3, &dev)?;
        tmath::eval(&[&x])?;
        for _ in 0..50 {
            tmath::eval(&[&x.softmax(1)?])?;
        }
        dev.synchronize()?;
        dev.set_profiling(true);
        let mut t = vec![];
        for _ in 0..20 {
            let k0 = dev.stats().kernel_time;
            tmath::eval(&[&x.softmax(1)?])?;
            dev.synchronize()?;
            t.push((dev.stats().kernel_time - k0).as_secs_f64() * 1e3);
        }
        dev.set_profiling(false);
        t.sort_by(f64::total_cmp);
        println!(
            "softmax {rows}x{len}: min {:.4} ms median {:.4} ms",
            t[0], t[10]
        );
    }
    Ok(())
}
