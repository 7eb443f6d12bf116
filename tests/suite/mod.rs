//! The shared suite: every case is an `async fn(&Device)` that reads results with
//! `to_vec_async`, so the same code runs natively (pollster), in browsers (wasm-bindgen-test)
//! and on MLX. Harnesses expand [`for_each_case!`] instead of listing cases themselves.
//!
//! Tolerances are stated per op. They are loose enough for GPU arithmetic (WGSL allows a few ULP
//! for exp/log/tanh and an absolute 2⁻¹¹ for sin/cos on [-π, π]) and far tighter than any bug.

#![allow(dead_code)]

pub mod check;
pub mod elementwise;
pub mod errors;
pub mod fuzz;
pub mod generic;
pub mod grad;
pub mod graphs;
pub mod invalid;
pub mod jit;
pub mod matmul;
pub mod precision;
pub mod reductions;
pub mod svd;

#[allow(unused_imports)]
pub use fuzz::fuzz_graphs;
#[allow(unused_imports)]
pub use generic::generic_kernels;
#[allow(unused_imports)]
pub use grad::{
    comparisons_and_where, gradient_rules, gradients_match_finite_differences,
    training_step_is_one_graph,
};
#[allow(unused_imports)]
pub use invalid::{invalid_calls_are_errors, sizes_beyond_limits};

#[allow(unused_imports)]
pub use precision::{ieee_special_values, precision_contract};

#[allow(unused_imports)]
pub use elementwise::*;
#[allow(unused_imports)]
pub use errors::*;
#[allow(unused_imports)]
pub use graphs::*;
#[allow(unused_imports)]
pub use jit::*;
#[allow(unused_imports)]
pub use matmul::*;
#[allow(unused_imports)]
pub use reductions::*;
#[allow(unused_imports)]
pub use svd::*;

#[cfg(not(target_arch = "wasm32"))]
use tmath::Device;

/// A fresh device of `dev`'s kind where counting pipelines needs an empty cache (wgpu: a new
/// device; others: `dev` itself).
pub async fn fresh_device(dev: &tmath::Device) -> tmath::Device {
    if dev.backend_name() == "wgpu" {
        tmath::Device::wgpu_async()
            .await
            .expect("a second wgpu device")
    } else {
        dev.clone()
    }
}

/// Calls `$m! { case, case, ... }` with every case of the suite.
#[macro_export]
macro_rules! for_each_case {
    ($m:ident) => {
        $m! {
            unary_ops,
            binary_broadcast,
            scalars,
            elementwise_large,
            views_feed_compute,
            reductions,
            softmax_stable,
            matmul_sizes,
            matmul_batched,
            matmul_self_with_epilogue,
            matmul_every_tile,
            matmul_split_k,
            matmul_autotune,
            svd_shapes,
            svd_hard_spectra,
            svd_accuracy,
            errors_are_values,
            nan_and_inf,
            randn_is_deterministic,
            long_chain,
            eval_shares_work,
            lazy_and_cached,
            jit_mode_keeps_results,
            empty_tensors,
            elementwise_chain_fused_shapes,
            jit_caches_pipelines,
            jit_fuses_kernels,
            too_large_is_an_error,
            precision_contract,
            ieee_special_values,
            fuzz_graphs,
            invalid_calls_are_errors,
            sizes_beyond_limits,
            generic_kernels,
            adaptive_tiers,
            quick_first_matmul,
            adaptive_cpu_route,
            comparisons_and_where,
            gradients_match_finite_differences,
            gradient_rules,
            training_step_is_one_graph,
        }
    };
}

/// The native devices to test: the CPU always; the GPU through wgpu when an adapter exists (CI sets
/// `TMATH_REQUIRE_GPU=1`, so a missing adapter fails instead of being skipped); MLX when the
/// `mlx` feature is built. `TMATH_TEST_DEVICES=mlx` (a comma list of backend names) runs the
/// suite on those only.
#[cfg(not(target_arch = "wasm32"))]
pub fn native_devices() -> Vec<Device> {
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
            Ok(d) => {
                // TMATH_GENERIC_KERNELS=1: the whole suite on generic kernels.
                if std::env::var("TMATH_GENERIC_KERNELS").is_ok_and(|v| v == "1") {
                    tmath::debug::set_generic_kernels(&d, true);
                }
                devs.push(d)
            }
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
    // TMATH_JIT=adaptive: the whole suite in the adaptive mode, on every device.
    if std::env::var("TMATH_JIT").is_ok_and(|v| v == "adaptive") {
        for d in &devs {
            d.set_jit(tmath::JitMode::Adaptive);
        }
    }
    devs
}

/// Runs one case on `dev` to completion on a thread with a 2 MiB stack, as the native
/// harnesses do (so a 10,000-op graph proves evaluation is not recursive).
#[cfg(not(target_arch = "wasm32"))]
pub fn run_on_small_stack<F: std::future::Future<Output = ()> + 'static>(
    name: &str,
    dev: &Device,
    case: fn(Device) -> F,
) {
    let dev = dev.clone();
    let what = format!("{name} failed on {dev:?}");
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || pollster::block_on(case(dev)))
        .expect("spawn")
        .join()
        .unwrap_or_else(|_| panic!("{what}"));
}
