use std::time::Instant;
use tmath::{Device, Tensor};
fn main() {
    let dev = Device::wgpu().unwrap();
    for shape in [[1024usize, 1024], [64, 16384], [16384, 64], [4096, 256]] {
        let x = Tensor::randn(&shape, 1, &dev).unwrap();
        tmath::eval(&[&x]).unwrap();
        for axes in [vec![1usize], vec![0]] {
            let mut best = f64::MAX;
            for _ in 0..8 {
                let t0 = Instant::now();
                x.sum(&axes, false).unwrap().to_vec().unwrap();
                best = best.min(t0.elapsed().as_secs_f64() * 1e3);
            }
            println!("sum {shape:?} axes {axes:?}: {best:.2} ms");
        }
    }
}
