//! The shared suite in a browser through `wasm-bindgen-test`: every case on the CPU device, and
//! on WebGPU where the browser has it (headless Chromium with `--enable-unsafe-webgpu` in CI;
//! set `TMATH_REQUIRE_WEBGPU` at build time to make a missing adapter a failure). WebKit has no
//! WebGPU: there the CPU fallback runs the same cases.
//!
//! `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner cargo test --target wasm32-unknown-unknown --test wasm`

#![cfg(target_arch = "wasm32")]

mod suite;

use tmath::Device;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn webgpu() -> Option<Device> {
    match Device::wgpu_async().await {
        Ok(d) => {
            // Built with TMATH_JIT=adaptive: the whole suite in the adaptive mode.
            if option_env!("TMATH_JIT") == Some("adaptive") {
                d.set_jit(tmath::JitMode::Adaptive);
            }
            Some(d)
        }
        Err(e) => {
            assert!(
                option_env!("TMATH_REQUIRE_WEBGPU").is_none(),
                "TMATH_REQUIRE_WEBGPU is set but WebGPU failed: {e}"
            );
            None
        }
    }
}

macro_rules! wasm_cases {
    ($($case:ident),* $(,)?) => {
        mod cpu {
            use super::*;
            $(
                #[wasm_bindgen_test]
                async fn $case() {
                    suite::$case(&Device::cpu().unwrap()).await;
                }
            )*
        }
        mod webgpu {
            use super::*;
            $(
                #[wasm_bindgen_test]
                async fn $case() {
                    match webgpu().await {
                        Some(dev) => {
                            assert_eq!(dev.backend_name(), "wgpu");
                            suite::$case(&dev).await;
                        }
                        // Said out loud: in WebKit these cases run nothing.
                        None => console_log!("{}: skipped, this browser has no WebGPU", stringify!($case)),
                    }
                }
            )*
        }
    };
}

for_each_case!(wasm_cases);
