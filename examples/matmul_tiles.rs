//! The matmul's register tiles and the autotuner, shape by shape, on the wgpu device: the kernel
//! time (GPU timestamps, median of the calls) of each tile the template renders, forced with
//! `debug::set_matmul_tile`, then of the autotuner's choice (its measurement waited for), with
//! the size rule's tile marked. `cargo run --release --example matmul_tiles [reps] [largest dimension]`

use std::time::{Duration, Instant};
use tmath::{debug, Device, JitMode, Tensor};

/// Median kernel time (ms) of `reps` calls of `f`.
fn kernel_ms(dev: &Device, reps: usize, f: &dyn Fn() -> tmath::Result<()>) -> tmath::Result<f64> {
    f()?;
    dev.synchronize()?;
    dev.set_profiling(true);
    let mut t = vec![];
    for _ in 0..reps {
        let k0 = dev.stats().kernel_time;
        f()?;
        t.push((dev.stats().kernel_time - k0).as_secs_f64() * 1e3);
    }
    dev.set_profiling(false);
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn main() -> tmath::Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let largest: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let dev = Device::wgpu()?;
    dev.set_jit(JitMode::On);
    debug::set_quick_first(&dev, Some(false));
    println!("device: {}", dev.adapter_name());
    // (batch, m, k, n, B transposed)
    let shapes: &[(usize, usize, usize, usize, bool)] = &[
        (1, 256, 256, 256, false),
        (1, 512, 512, 512, false),
        (1, 1024, 1024, 1024, false),
        (1, 2048, 2048, 2048, false),
        (1, 4096, 4096, 4096, false),
        (1, 1024, 1024, 1024, true),
        (1, 4096, 1024, 4096, false),
        (1, 256, 8192, 256, false),
        (1, 8192, 256, 1024, false),
        (1, 128, 4096, 4096, false),
        (16, 256, 256, 256, false),
        (8, 512, 64, 512, false),
    ];
    println!(
        "| shape | 8×8 | 8×4 | 4×8 | 4×4 | tuned | tuned ÷ rule |\n|---|---|---|---|---|---|---|"
    );
    for &(batch, m, k, n, bt) in shapes {
        if m.max(k).max(n) > largest {
            continue;
        }
        let a = Tensor::randn(&[batch, m, k], 1, &dev)?;
        let b = if bt {
            Tensor::randn(&[batch, n, k], 2, &dev)?.transpose(1, 2)?
        } else {
            Tensor::randn(&[batch, k, n], 2, &dev)?
        };
        let run = || -> tmath::Result<()> {
            tmath::eval(&[&a.matmul(&b)?])?;
            dev.synchronize()
        };
        debug::set_autotune(&dev, Some(false));
        let mut cells = vec![];
        for tile in [(8, 8), (8, 4), (4, 8), (4, 4)] {
            debug::set_matmul_tile(&dev, Some(tile))?;
            cells.push(kernel_ms(&dev, reps, &run)?);
        }
        debug::set_matmul_tile(&dev, None)?;
        let rule = kernel_ms(&dev, reps, &run)?;
        debug::set_autotune(&dev, None);
        let before = dev.stats().tunes_done;
        run()?;
        let t0 = Instant::now();
        while dev.stats().tunes_done == before
            && dev.stats().tunes_requested > before
            && t0.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let tuned = kernel_ms(&dev, reps, &run)?;
        let mark: Vec<String> = cells
            .iter()
            .map(|&c| {
                let star = if (c - rule).abs() <= 0.02 * rule {
                    "*"
                } else {
                    ""
                };
                format!("{c:.4}{star}")
            })
            .collect();
        println!(
            "| {batch}×{m}×{k}×{n}{} | {} | {tuned:.4} | {:.2} |",
            if bt { " (Bᵀ)" } else { "" },
            mark.join(" | "),
            tuned / rule
        );
    }
    println!("(kernel ms, median of {reps}; * within 2% of the size rule's time)");
    Ok(())
}
