//! The adaptive mode's hot kernels persist across processes (natively): a kernel compiled in
//! the background by one device is written to the hot index on disk when the device drops, and
//! a later device compiles it in the background as its first program runs, so that kernel's
//! first evaluation there is already specialized, with no compile on the caller's path; and the
//! matmul autotuner's choices persist the same way. (Its
//! own test binary: it points `TMATH_CACHE_DIR` at a fresh folder for the whole process, and
//! turns the index on, which `scripts/test` turns off for the other tests.)

#![cfg(not(target_arch = "wasm32"))]

mod suite;

use std::time::{Duration, Instant};
use suite::check::Rng;
use tmath::{Device, JitMode, Tensor};

fn layer(dev: &Device) -> tmath::Result<Vec<f32>> {
    let mut rng = Rng::new(5);
    let x = Tensor::from_vec(rng.vec(64 * 96, -1.0, 1.0), &[64, 96], dev)?;
    let w = Tensor::from_vec(rng.vec(96 * 80, -1.0, 1.0), &[96, 80], dev)?;
    let b = Tensor::from_vec(rng.vec(80, -1.0, 1.0), &[80], dev)?;
    x.matmul(&w)?.add(&b)?.gelu()?.to_vec()
}

/// Waits until `dev` has finished at least `n` background compiles.
fn wait_for_background(dev: &Device, n: u64) {
    let t0 = Instant::now();
    while dev.stats().background_compiles < n {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "background compile never finished: {:?}",
            dev.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hot_kernels_persist_across_devices() {
    let dir = std::env::temp_dir().join(format!("tmath-hot-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::env::set_var("TMATH_CACHE_DIR", &dir);
    std::env::remove_var("TMATH_PIPELINE_CACHE");
    std::env::remove_var("TMATH_HOT_KERNELS");
    let dev = match Device::wgpu() {
        Ok(d) => d,
        Err(e) if std::env::var("TMATH_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("TMATH_REQUIRE_GPU=1 but no wgpu device: {e}")
        }
        Err(e) => {
            eprintln!("skipping: no wgpu device ({e})");
            return;
        }
    };
    dev.set_jit(JitMode::Adaptive);
    // Seen twice, the layer's kernel is hot: its specialized compile runs in the background.
    let want = layer(&dev).unwrap();
    layer(&dev).unwrap();
    wait_for_background(&dev, 1);
    let s0 = dev.stats();
    assert_eq!(layer(&dev).unwrap(), want);
    assert!(
        dev.stats().specialized_dispatches > s0.specialized_dispatches,
        "{:?}",
        dev.stats()
    );
    drop(dev);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the cache folder was made")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("hot-kernels-"))
        .collect();
    assert_eq!(files.len(), 1, "one hot index for the adapter");

    // A new device: its first program (another graph) starts compiling the index's kernels.
    let dev = Device::wgpu().unwrap();
    dev.set_jit(JitMode::Adaptive);
    // (Large enough for the GPU: the adaptive mode runs tiny graphs on the CPU.)
    let t = Tensor::from_vec(Rng::new(9).vec(128 * 128, -1.0, 1.0), &[128, 128], &dev).unwrap();
    t.exp().unwrap().to_vec().unwrap();
    wait_for_background(&dev, 1);
    let s0 = dev.stats();
    assert_eq!(
        layer(&dev).unwrap(),
        want,
        "the same bits as the first device's"
    );
    let s1 = dev.stats();
    assert!(
        s1.specialized_dispatches > s0.specialized_dispatches,
        "specialized at once: {s0:?} → {s1:?}"
    );
    assert_eq!(
        s1.generic_dispatches, s0.generic_dispatches,
        "no generic dispatch: {s0:?} → {s1:?}"
    );
    assert_eq!(
        s1.compiles - s1.background_compiles,
        s0.compiles - s0.background_compiles,
        "no compile on the caller's path"
    );
    drop(dev);

    // The matmul autotuner: a shape is measured once in the background (calls meanwhile and
    // after give the same bits: every tile runs the same multiply-adds), its choice written
    // beside the hot kernels when the device drops, and a later device takes it from the file
    // without measuring again. (Forced on, since CI's adapter is a CPU; N = 150 keeps the
    // product off a CPU adapter's lane form.)
    let tuned = |dev: &Device| -> tmath::Result<Vec<f32>> {
        let mut rng = Rng::new(11);
        let x = Tensor::from_vec(rng.vec(160 * 140, -1.0, 1.0), &[160, 140], dev)?;
        let w = Tensor::from_vec(rng.vec(140 * 150, -1.0, 1.0), &[140, 150], dev)?;
        x.matmul(&w)?.to_vec()
    };
    let dev = Device::wgpu().unwrap();
    dev.set_jit(JitMode::On);
    tmath::debug::set_autotune(&dev, Some(true));
    let want = tuned(&dev).unwrap();
    let t0 = Instant::now();
    while dev.stats().tunes_done < 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the tuning never finished: {:?}",
            dev.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..2 {
        assert_eq!(tuned(&dev).unwrap(), want, "the tuned tile: the same bits");
    }
    assert_eq!(dev.stats().tunes_requested, 1, "one shape, measured once");
    drop(dev);
    let tune_files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tune-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(tune_files.len(), 1, "one tuning file for the adapter");
    assert!(
        tune_files[0].contains("\n160 150 140 1 "),
        "the shape's line: {}",
        tune_files[0]
    );
    let dev = Device::wgpu().unwrap();
    dev.set_jit(JitMode::On);
    tmath::debug::set_autotune(&dev, Some(true));
    assert_eq!(tuned(&dev).unwrap(), want);
    assert_eq!(
        dev.stats().tunes_requested,
        0,
        "the choice came from the file: {:?}",
        dev.stats()
    );
    drop(dev);
    let _ = std::fs::remove_dir_all(&dir);
}
