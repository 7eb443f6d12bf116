//! Memory stays bounded: 10,000 evaluations of a model-sized graph with new data each time keep
//! the process's resident memory flat after warm-up, and the pipeline cache is bounded by bytes
//! (300 distinct shapes, each compiling its own pipelines, stay within the cache's budget).
//!
//! Its own test binary (one test at a time in this process), so resident memory is ours alone.
//! Linux only: it reads `/proc/self/statm`.

#![cfg(target_os = "linux")]

mod suite;

use suite::check::Rng;
use tmath::{Device, Tensor};

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0 / (1 << 20) as f64
}

/// One step of a 2-layer MLP on a new batch: matmul + bias + GELU, matmul, softmax, a loss.
fn step(dev: &Device, w1: &Tensor, b1: &Tensor, w2: &Tensor, rng: &mut Rng) -> f32 {
    let x = Tensor::from_vec(rng.vec(32 * 128, -1.0, 1.0), &[32, 128], dev).unwrap();
    let h = x.matmul(w1).unwrap().add(b1).unwrap().gelu().unwrap();
    let p = h.matmul(w2).unwrap().log_softmax(1).unwrap();
    let loss = p.mean(&[0, 1], false).unwrap();
    loss.to_vec().unwrap()[0]
}

#[test]
fn memory_is_bounded() {
    // The pipeline cache's budget for this process (read when a device starts).
    std::env::set_var("TMATH_PIPELINE_CACHE_MB", "48");
    for dev in suite::native_devices() {
        let mut rng = Rng::new(9);
        let w1 = Tensor::from_vec(rng.vec(128 * 128, -0.1, 0.1), &[128, 128], &dev).unwrap();
        let b1 = Tensor::from_vec(rng.vec(128, -0.1, 0.1), &[128], &dev).unwrap();
        let w2 = Tensor::from_vec(rng.vec(128 * 16, -0.1, 0.1), &[128, 16], &dev).unwrap();
        for _ in 0..500 {
            assert!(step(&dev, &w1, &b1, &w2, &mut rng).is_finite());
        }
        let warm = rss_mib();
        for _ in 0..10_000 {
            assert!(step(&dev, &w1, &b1, &w2, &mut rng).is_finite());
        }
        let after = rss_mib();
        eprintln!(
            "{dev:?}: RSS after warm-up {warm:.1} MiB, after 10,000 evaluations {after:.1} MiB"
        );
        assert!(
            after - warm < 8.0,
            "{dev:?}: resident memory grew from {warm:.1} to {after:.1} MiB over 10,000 evaluations"
        );

        // 300 distinct shapes: each compiles new pipelines (on a GPU); the cache evicts by its
        // byte budget, so memory stays within it (plus the allocator's slack).
        let before = rss_mib();
        for n in 1..=300usize {
            let x = Tensor::from_vec(rng.vec(n * 3, -1.0, 1.0), &[n, 3], &dev).unwrap();
            let y = x.exp().unwrap().mul(&x).unwrap().softmax(0).unwrap();
            assert_eq!(y.to_vec().unwrap().len(), n * 3);
        }
        let grown = rss_mib() - before;
        let st = dev.stats();
        eprintln!(
            "{dev:?}: 300 shapes: RSS +{grown:.1} MiB, {} pipelines compiled, {} cache hits",
            st.compiles, st.cache_hits
        );
        assert!(
            grown < 48.0 + 32.0,
            "{dev:?}: 300 distinct shapes grew resident memory by {grown:.1} MiB (budget 48 MiB)"
        );
    }
}
