//! The shared suite on every native device this build has: each case runs once per device, on
//! a thread with a 2 MiB stack (so a 10,000-op graph proves evaluation is not recursive).

#![cfg(not(target_arch = "wasm32"))]

mod suite;

use tmath::Device;

/// The devices to test: the CPU always; the GPU through wgpu when an adapter exists (CI sets
/// `TMATH_REQUIRE_GPU=1`, so a missing adapter fails instead of being skipped).
fn devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut devs = vec![Device::cpu().expect("cpu device")];
    #[cfg(feature = "wgpu")]
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
