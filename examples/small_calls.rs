//! Where a small call's time goes on the best adapter: building the graph, `eval` (scheduling,
//! pipeline lookup, bind groups, encoding and submitting: host work) and `synchronize` (the GPU
//! plus the wait), per call, averaged over 2,000 calls (`REPS`) after 100 of warm-up.
//! `TMATH_DEVICE=wgpu` takes wgpu's adapter even where the best device is the CPU (lavapipe).
//!
//! `cargo run --release --example small_calls -- [n] [gelu|add-gelu|softmax]`: GELU of an n×n
//! input (default), `a + b` then GELU fused into one kernel, or softmax over the rows.
use std::time::Instant;
use tmath::{Device, Tensor};
fn main() {
    let dev = if std::env::var("TMATH_DEVICE").as_deref() == Ok("wgpu") {
        Device::wgpu().unwrap()
    } else {
        Device::best().unwrap()
    };
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(8);
    let op = args.next().unwrap_or_else(|| "gelu".into());
    let a = Tensor::randn(&[n, n], 1, &dev).unwrap();
    let b = Tensor::randn(&[n, n], 2, &dev).unwrap();
    tmath::eval(&[&a, &b]).unwrap();
    dev.synchronize().unwrap();
    let graph = || match op.as_str() {
        "add-gelu" => a.add(&b).unwrap().gelu().unwrap(),
        "softmax" => a.softmax(1).unwrap(),
        _ => a.gelu().unwrap(),
    };
    let (mut tb, mut te, mut ts) = (0.0, 0.0, 0.0);
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    for i in 0..reps + 100 {
        let t0 = Instant::now();
        let c = graph();
        let t1 = Instant::now();
        tmath::eval(&[&c]).unwrap();
        let t2 = Instant::now();
        dev.synchronize().unwrap();
        let t3 = Instant::now();
        if i >= 100 {
            tb += (t1 - t0).as_secs_f64();
            te += (t2 - t1).as_secs_f64();
            ts += (t3 - t2).as_secs_f64();
        }
    }
    let f = 1e6 / reps as f64;
    println!(
        "{} {op} {n}×{n}: build {:.1} us, eval {:.1} us, sync {:.1} us, total {:.1} us per call",
        dev.adapter_name(),
        tb * f,
        te * f,
        ts * f,
        (tb + te + ts) * f
    );
}
