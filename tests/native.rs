//! The shared suite on every native device this build has: each case runs once per device, on
//! a thread with a 2 MiB stack (so a 10,000-op graph proves evaluation is not recursive).

#![cfg(not(target_arch = "wasm32"))]

mod suite;

use tmath::Device;

/// The devices to test: the CPU always; the GPU through wgpu when an adapter exists (CI sets
/// `TMATH_REQUIRE_GPU=1`, so a missing adapter fails instead of being skipped); MLX when the
/// `mlx` feature is built. `TMATH_TEST_DEVICES=mlx` (a comma list of backend names) runs the
/// suite on those only.
fn devices() -> Vec<Device> {
    let only = std::env::var("TMATH_TEST_DEVICES").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .map_or(true, |o| o.split(',').any(|b| b.trim() == name))
    };
    let mut devs = vec![];
    if wanted("cpu") {
        devs.push(Device::cpu().expect("cpu device"));
    }
    #[cfg(feature = "wgpu")]
    if wanted("wgpu") {
        match Device::wgpu() {
            Ok(d) => devs.push(d),
            Err(e) => {
                assert!(
                    std::env::var("TMATH_REQUIRE_GPU").is_err(),
                    "TMATH_REQUIRE_GPU is set but wgpu failed: {e}"
                );
                eprintln!("wgpu unavailable, testing the CPU only: {e}");
            }
        }
    }
    #[cfg(feature = "mlx")]
    if wanted("mlx") {
        devs.push(Device::mlx().expect("the mlx feature is built, so Device::mlx() must start"));
    }
    assert!(
        !devs.is_empty(),
        "TMATH_TEST_DEVICES={only:?} names no device of this build"
    );
    devs
}

macro_rules! native_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                for dev in devices() {
                    suite::run_on_small_stack(stringify!($case), &dev, |d| async move { suite::$case(&d).await });
                }
            }
        )*
    };
}

for_each_case!(native_cases);
