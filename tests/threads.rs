//! Many threads building and evaluating graphs on one shared device (cpu, wgpu, mlx): every
//! result must equal, bit for bit, what one thread computes alone. `Device` is `Send + Sync`;
//! this is what that promise means.
//!
//! A regression test for lost data on wgpu: buffers went back to the pool when their last
//! reader was recorded, and another thread could reuse (and write) them before the first
//! thread's commands were submitted (`t - max(t)` was wrong in 37 of 1,600 evaluations, a matmul
//! chain in 100 of 1,600).

#![cfg(not(target_arch = "wasm32"))]

mod suite;

use suite::check::Rng;
use tmath::{Device, Tensor};

const THREADS: usize = 8;
const ROUNDS: usize = 25;

/// One small graph per recipe, from a seed: several kernels each, with intermediates that go
/// back to the pool during the evaluation (the pattern that lost data).
fn recipe(dev: &Device, which: usize, seed: u64) -> tmath::Result<Tensor> {
    let mut rng = Rng::new(seed);
    let n = 8 + (seed % 9) as usize;
    let t = Tensor::from_vec(rng.vec(n * n, -2.0, 2.0), &[n, n], dev)?;
    match which % 5 {
        0 => t.sub(&t.max(&[1], true)?),
        1 => t.matmul(&t)?.matmul(&t),
        2 => t.softmax(1)?.sum(&[0], false),
        3 => t.exp()?.sum(&[1], true)?.log()?.add(&t.mean(&[0], true)?),
        _ => t
            .matmul(&t.transpose(0, 1)?)?
            .gelu()?
            .log_softmax(0)?
            .max(&[0, 1], false),
    }
}

fn run(dev: &Device, which: usize, seed: u64) -> Vec<u32> {
    recipe(dev, which, seed)
        .and_then(|t| t.to_vec())
        .unwrap_or_else(|e| panic!("recipe {which} seed {seed} on {dev:?}: {e}"))
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

#[test]
fn threads_share_one_device() {
    for dev in suite::native_devices() {
        let cases: Vec<(usize, u64)> = (0..40).map(|i| (i % 5, 1000 + i as u64)).collect();
        // One thread alone first: the reference, bit for bit.
        let want: Vec<Vec<u32>> = cases.iter().map(|&(w, s)| run(&dev, w, s)).collect();
        let wrong = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for th in 0..THREADS {
                let (dev, cases, want, wrong) = (&dev, &cases, &want, &wrong);
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        // Each thread walks the cases in its own order.
                        for k in 0..cases.len() {
                            let i = (k * 7 + th * 13 + round) % cases.len();
                            let (w, s) = cases[i];
                            if run(dev, w, s) != want[i] {
                                wrong.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                eprintln!("{dev:?}: thread {th}, round {round}: recipe {w} seed {s} differs");
                            }
                        }
                    }
                });
            }
        });
        let wrong = wrong.into_inner();
        assert_eq!(
            wrong,
            0,
            "{dev:?}: {wrong} of {} evaluations on {THREADS} threads differ from one thread's",
            THREADS * ROUNDS * cases.len()
        );
        // Tensors made on one thread and read on another, while others evaluate.
        let shared: Vec<Tensor> = (0..8)
            .map(|i| recipe(&dev, i, 77 + i as u64).unwrap())
            .collect();
        let want: Vec<Vec<u32>> = (0..8).map(|i| run(&dev, i, 77 + i as u64)).collect();
        std::thread::scope(|scope| {
            for (t, w) in shared.iter().zip(&want) {
                scope.spawn(move || {
                    let got: Vec<u32> = t.to_vec().unwrap().into_iter().map(f32::to_bits).collect();
                    assert_eq!(&got, w, "{t:?} read on another thread");
                });
            }
        });
    }
}
