//! Sums over each axis of several 2-D shapes (1M elements each: long rows, short rows, many
//! short outputs) on the GPU (or the CPU: `cpu`): wall time, best of 8 calls with the read-back,
//! and kernel time (GPU timestamps; median of 8 calls).
//! A reduction's output takes a group of threads sized to its element count, so short rows
//! share workgroups (`codegen/reduce.rs`).
//! `cargo run --release --example reduce_shapes [cpu|wgpu]`

use std::time::Instant;
use tmath::{Device, Tensor};

fn main() -> tmath::Result<()> {
    let dev = match std::env::args().nth(1).as_deref() {
        Some("cpu") => Device::cpu()?,
        _ => Device::wgpu()?,
    };
    println!("device: {}", dev.adapter_name());
    for shape in [[1024usize, 1024], [64, 16384], [16384, 64], [4096, 256]] {
        let x = Tensor::randn(&shape, 1, &dev)?;
        tmath::eval(&[&x])?;
        for axis in [1usize, 0] {
            x.sum(&[axis], false)?.to_vec()?; // compiles
            let mut best = f64::MAX;
            for _ in 0..8 {
                let t0 = Instant::now();
                x.sum(&[axis], false)?.to_vec()?;
                best = best.min(t0.elapsed().as_secs_f64() * 1e3);
            }
            dev.set_profiling(true);
            let mut kernel = Vec::new();
            for _ in 0..8 {
                let k0 = dev.stats().kernel_time;
                let y = x.sum(&[axis], false)?;
                tmath::eval(&[&y])?;
                dev.synchronize()?;
                kernel.push((dev.stats().kernel_time - k0).as_secs_f64() * 1e3);
            }
            dev.set_profiling(false);
            kernel.sort_by(f64::total_cmp);
            println!(
                "sum over axis {axis} of {shape:?}: {best:.3} ms (kernel {:.4} ms)",
                kernel[kernel.len() / 2]
            );
        }
    }
    Ok(())
}
