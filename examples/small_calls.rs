use std::time::Instant;
use tmath::{Device, Tensor};
fn main() {
    let dev = Device::wgpu().unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(8);
    let a = Tensor::randn(&[n, n], 1, &dev).unwrap();
    let b = Tensor::randn(&[n, n], 2, &dev).unwrap();
    tmath::eval(&[&a, &b]).unwrap();
    dev.synchronize().unwrap();
    let (mut tb, mut te, mut ts) = (0.0, 0.0, 0.0);
    let reps = 2000;
    for i in 0..reps + 100 {
        let t0 = Instant::now();
        let c = a.add(&b).unwrap().gelu().unwrap();
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
        "{} {n}×{n}: build {:.1} us, eval {:.1} us, sync {:.1} us per call",
        dev.adapter_name(),
        tb * f,
        te * f,
        ts * f
    );
}
