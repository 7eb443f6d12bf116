//! Kernel time and bandwidth of elementwise graphs (the JIT's cached kernels) at each size
//! given (default 64M elements, a multiple of 4,096): `x·c`, GELU, an 8-op chain and softmax
//! over rows of 1,024 and of 4,096, 20 calls each after 100 unmeasured ones (10 on the CPU);
//! GPU timestamps on `wgpu` (the default), wall time per evaluation on `cpu` (threads:
//! `RAYON_NUM_THREADS`). With `ops`, each unary op of the chain alone too (where the chain's
//! time goes).
//! `cargo run --release --example elementwise_bw [cpu|wgpu] [ops] [elements ...]`

use std::time::Instant;
use tmath::{Device, Tensor};

fn main() -> tmath::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dev = if args.first().map(String::as_str) == Some("cpu") {
        Device::cpu()?
    } else {
        Device::wgpu()?
    };
    let mut sizes: Vec<usize> = args.iter().filter_map(|s| s.parse().ok()).collect();
    if sizes.is_empty() {
        sizes.push(64 << 20);
    }
    let ops = args.iter().any(|a| a == "ops");
    for n in sizes {
        measure(&dev, n, ops)?;
    }
    Ok(())
}

fn measure(dev: &Device, n: usize, ops: bool) -> tmath::Result<()> {
    let dev = dev.clone();
    let x = Tensor::randn(&[n], 7, &dev)?;
    let c = Tensor::scalar(0.5, &dev)?;
    tmath::eval(&[&x, &c])?;
    type Graph = fn(&Tensor, &Tensor) -> tmath::Result<Tensor>;
    let mut graphs: Vec<(&str, Graph)> = vec![
        ("x*c", |x, c| x.mul(c)),
        ("gelu", |x, _| x.gelu()),
        ("8-op chain", |x, c| {
            x.mul(c)?
                .add(c)?
                .tanh()?
                .abs()?
                .sqrt()?
                .neg()?
                .exp()?
                .sigmoid()
        }),
        ("softmax, rows of 1024", |x, _| {
            x.reshape(&[x.shape()[0] / 1024, 1024])?.softmax(1)
        }),
        ("softmax, rows of 4096", |x, _| {
            x.reshape(&[x.shape()[0] / 4096, 4096])?.softmax(1)
        }),
    ];
    if ops {
        graphs.extend([
            ("tanh", (|x, _| x.tanh()) as Graph),
            ("abs", |x, _| x.abs()),
            ("sqrt", |x, _| x.sqrt()),
            ("neg", |x, _| x.neg()),
            ("exp", |x, _| x.exp()),
            ("sigmoid", |x, _| x.sigmoid()),
        ]);
    }
    println!("device: {}, {n} elements", dev.adapter_name());
    for (name, g) in graphs {
        let cpu = dev.backend_name() == "cpu";
        g(&x, &c)?.to_vec()?; // compile
        for _ in 0..if cpu { 10 } else { 100 } {
            tmath::eval(&[&g(&x, &c)?])?;
        }
        dev.synchronize()?;
        dev.set_profiling(true);
        let mut times = vec![];
        for _ in 0..20 {
            let (k0, t0) = (dev.stats().kernel_time, Instant::now());
            let y = g(&x, &c)?;
            tmath::eval(&[&y])?;
            dev.synchronize()?;
            let took = if cpu {
                t0.elapsed()
            } else {
                dev.stats().kernel_time - k0
            };
            times.push(took.as_secs_f64() * 1e3);
        }
        dev.set_profiling(false);
        times.sort_by(f64::total_cmp);
        let gbps = |ms: f64| 8.0 * n as f64 / ms / 1e6;
        println!(
            "{name}: min {:.3} ms ({:.0} GB/s), median {:.3} ms ({:.0} GB/s), max {:.3} ms",
            times[0],
            gbps(times[0]),
            times[10],
            gbps(times[10]),
            times[19]
        );
    }
    Ok(())
}
