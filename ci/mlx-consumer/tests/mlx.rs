//! Runs on `Device::mlx()` and checks against the CPU device of the same crate.

use tmath::{Device, JitMode, Tensor};
use tmath_mlx_consumer::{device, layer};

fn inputs(dev: &Device, seed: u64) -> (Tensor, Tensor, Tensor) {
    (
        Tensor::randn(&[33, 20], seed, dev).unwrap(),
        Tensor::randn(&[20, 17], seed + 1, dev).unwrap(),
        Tensor::randn(&[17], seed + 2, dev).unwrap(),
    )
}

#[test]
fn layer_matches_cpu_and_is_compiled_once() {
    let mlx = device().expect("Device::mlx()");
    assert_eq!(mlx.backend_name(), "mlx");
    let cpu = Device::cpu().unwrap();
    for seed in [1, 10] {
        let (x, w, b) = inputs(&mlx, seed);
        let got = layer(&x, &w, &b).unwrap().to_vec().unwrap();
        let (x, w, b) = inputs(&cpu, seed);
        let want = layer(&x, &w, &b).unwrap().to_vec().unwrap();
        assert_eq!(got.len(), 33 * 17);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{g} vs {w}");
        }
    }
    let st = mlx.stats();
    assert_eq!(st.compiles, 1, "one program, compiled once");
    assert_eq!(st.cache_hits, 1, "the second evaluation reused it");

    mlx.set_jit(JitMode::Off);
    let (x, w, b) = inputs(&mlx, 3);
    layer(&x, &w, &b).unwrap().to_vec().unwrap();
    assert_eq!(mlx.stats().compiles, 1, "JIT off compiles nothing");

    // Errors are tmath's, with the op and the shapes, never an MLX exception.
    let e = x.matmul(&x).unwrap_err().to_string();
    assert!(e.contains("matmul") && e.contains("33"), "{e}");
}

#[test]
fn svd_on_mlx_reconstructs() {
    let mlx = device().unwrap();
    let a = Tensor::randn(&[12, 7], 5, &mlx).unwrap();
    let (u, s, vt) = a.svd().unwrap();
    let r = u.mul(&s.reshape(&[1, 7]).unwrap()).unwrap().matmul(&vt).unwrap();
    let (a, r) = (a.to_vec().unwrap(), r.to_vec().unwrap());
    let err = a.iter().zip(&r).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-4, "reconstruction error {err}");
    let s = s.to_vec().unwrap();
    assert!(s.windows(2).all(|p| p[0] >= p[1]), "descending: {s:?}");
}
