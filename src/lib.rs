//! # T-Math
//!
//! Lazy tensor math that runs the same program on any GPU: in the browser through WebGPU,
//! natively through wgpu (Vulkan, Metal, DX12), on Apple Silicon through MLX, and on a pure-Rust
//! CPU backend everywhere else.
//!
//! Ops build a graph (shapes checked at once, errors as values); nothing runs until a result is
//! read. Then the graph is scheduled, elementwise chains are fused, and each kernel is compiled
//! once and cached by its structure and shapes.
//!
//! ```
//! use tmath::{Device, Tensor};
//! let dev = Device::cpu()?;                       // or Device::best()?, Device::wgpu()?
//! let x = Tensor::randn(&[64, 32], 1, &dev)?;
//! let w = Tensor::randn(&[32, 16], 2, &dev)?;
//! let b = Tensor::from_vec(vec![0.1; 16], &[16], &dev)?;
//! let y = x.matmul(&w)?.add(&b)?.gelu()?.softmax(1)?;
//! let rows = y.sum(&[1], false)?.to_vec()?;
//! assert!(rows.iter().all(|&r| (r - 1.0).abs() < 1e-5));
//! # Ok::<(), tmath::Error>(())
//! ```

#![warn(missing_docs)]

mod autodiff;
mod backend;
#[cfg(feature = "wgpu")]
mod codegen;
mod config;
mod device;
mod error;
mod graph;
mod ir;
#[cfg(all(feature = "js", target_arch = "wasm32"))]
mod js;
mod ops;
mod program;
mod random;
mod schedule;
mod shape;
mod tensor;

pub use config::{JitMode, Stats};
pub use device::Device;

/// Hooks for tests of the compiler itself (not part of the stable API).
#[doc(hidden)]
pub mod debug {
    #[cfg(feature = "wgpu")]
    pub use crate::codegen::{start_shader_log, take_shader_log};

    /// Makes this device's GPU kernels *generic* (sizes, strides and offsets read from a
    /// metadata uniform, so one pipeline serves every shape of a kernel's structure) or
    /// *specialized* (sizes as literals, the default; a new shape compiles). Applies with
    /// `JitMode::On`; results agree within f32 rounding of the same operation order.
    pub fn set_generic_kernels(device: &crate::Device, on: bool) {
        device.set_generic_kernels(on);
    }

    /// Makes the GPU SVD on a software adapter take the configuration a hardware adapter takes:
    /// its rounds through each block pair's Gram matrix (where the adapter has 32 KiB of
    /// workgroup memory; one dispatch a round up to 128 columns, two beyond), else the
    /// hardware's column blocks (by default a software adapter takes larger blocks through
    /// memory, since there each dispatch costs more than the work inside it), so that tests
    /// cover the hardware configuration where CI has no GPU. No effect on hardware adapters or
    /// other backends.
    pub fn set_svd_hardware_blocks(device: &crate::Device, on: bool) {
        device.set_svd_hardware_blocks(on);
    }

    /// Makes the GPU SVD take the split form of its rounds through the Gram matrix (two
    /// dispatches a round, each block pair's rows spread over several workgroups) at every size
    /// where it takes those rounds, not only beyond 128 columns, so that tests put small and
    /// degenerate inputs through it. No effect where the SVD takes its rounds through memory
    /// (software adapters unless [`set_svd_hardware_blocks`] is on, adapters with less than
    /// 32 KiB of workgroup memory) or on other backends.
    pub fn set_svd_split(device: &crate::Device, on: bool) {
        device.set_svd_split(on);
    }

    /// Where the GPU SVD takes its rounds through the Gram matrix (hardware adapters, or
    /// [`set_svd_hardware_blocks`]), `true` makes it factor its working matrix as Q·R first
    /// (Householder reflections in panels of 16 columns) and run the Jacobi on Rᵀ: fewer sweeps
    /// (512², numpy model of the rounds: 14 → 10 on Gaussian input, 18 → 11 on a graded
    /// spectrum) and more orthogonal factors, for the factorization's own dispatches (two a
    /// panel). Off by default until its time on hardware adapters is measured. No effect
    /// elsewhere.
    pub fn set_svd_qr(device: &crate::Device, on: bool) {
        device.set_svd_qr(on);
    }

    /// With [`JitMode::On`](crate::JitMode::On), a matmul whose specialized pipeline is not
    /// compiled yet first runs on a *quick* pipeline — a plain kernel with the same results that
    /// drivers compile several times faster — while the specialized one compiles in the
    /// background; later calls take it once it is ready. Kernels compiled by an earlier process
    /// (known from the on-disk index, so likely in the driver's cache) skip the quick form.
    /// `None` (the default): on hardware adapters; `Some(true)`: on every adapter (tests cover
    /// the switch where CI has no GPU); `Some(false)`: never (the benchmark's steady-state rows).
    /// No effect on other backends.
    pub fn set_quick_first(device: &crate::Device, mode: Option<bool>) {
        device.set_quick_first(mode);
    }

    /// The matmul autotuner (wgpu, with the JIT on or adaptive): the first time a matmul shape
    /// is seen, its kernel is timed in the background in each register tile the template
    /// renders (on scratch buffers, off the caller's path — a thread natively, the event loop in
    /// browsers; calls meanwhile run the size rule's tile), and later calls take the fastest
    /// (the same bits: every tile runs the same multiply-adds); the choice is kept per adapter,
    /// in memory and, natively, on disk beside the hot kernels. `None` (the default): on hardware adapters;
    /// `Some(true)`: on every adapter (tests cover it where CI has no GPU); `Some(false)`: never.
    /// `TMATH_AUTOTUNE=off` turns it off for a process. `Stats::tunes_requested` and
    /// `Stats::tunes_done` count the shapes. No effect on other backends.
    pub fn set_autotune(device: &crate::Device, mode: Option<bool>) {
        device.set_autotune(mode);
    }

    /// Forces every tiled matmul of this device to the register tile `(rows, columns)` of
    /// outputs per thread, each 4 or 8 (tests run every tile where CI has no GPU); `None`: the
    /// autotuner's choice or the size rule. An unsupported tile is an error.
    pub fn set_matmul_tile(
        device: &crate::Device,
        tile: Option<(usize, usize)>,
    ) -> crate::Result<()> {
        let t = match tile {
            None => None,
            Some((r, c)) if matches!(r, 4 | 8) && matches!(c, 4 | 8) => Some((r as u8, c as u8)),
            Some((r, c)) => {
                return Err(crate::Error::shape(
                    "set_matmul_tile",
                    format!("({r}, {c}) is not a register tile (rows and columns 4 or 8)"),
                ))
            }
        };
        device.set_matmul_tile(t);
        Ok(())
    }

    /// True for a GPU API implemented on the CPU (Mesa lavapipe, SwiftShader, WARP).
    pub fn is_software(device: &crate::Device) -> bool {
        device.backend().is_software()
    }

    /// The numbers behind the adaptive mode's CPU route, measured when the device started:
    /// `(GPU round trip in µs, CPU ns per element)`. A program whose inputs all have host
    /// copies runs on the CPU kernels when its work (elements, or multiply-adds) is at most
    /// [`CPU_ROUTE_MAX_WORK`] and `work × ns per element` is below the round trip
    /// (`Stats::cpu_dispatches` counts what went there). `None` on devices without the route.
    pub fn cpu_route_cost(device: &crate::Device) -> Option<(f64, f64)> {
        device.backend().cpu_route_cost()
    }

    /// The most work (elements, or multiply-adds) the adaptive mode sends to the CPU.
    pub const CPU_ROUTE_MAX_WORK: usize = crate::backend::CPU_ROUTE_MAX_WORK;

    /// Whether this device's GPU kernels are generic (see [`set_generic_kernels`]).
    pub fn generic_kernels(device: &crate::Device) -> bool {
        device.generic_kernels()
    }

    /// Device-to-device copy bandwidth in GB/s (read + written) with `bytes` per copy: the
    /// benchmark's bandwidth ceiling (GPU: a vec4 copy kernel or the queue's copy, whichever is
    /// faster; CPU: all threads copying).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn copy_gbps(device: &crate::Device, bytes: usize) -> crate::Result<Option<f64>> {
        device.backend().copy_gbps(bytes)
    }

    /// Peak f32 multiply-add throughput in GFLOP/s, measured with a kernel of independent FMA
    /// chains (GPU devices; `None` elsewhere): the benchmark's compute ceiling.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fma_gflops(device: &crate::Device) -> crate::Result<Option<f64>> {
        device.backend().fma_gflops()
    }
}

pub use error::{Error, Result};
pub use graph::Tensor;

/// Evaluates several tensors in one schedule: shared subgraphs are computed once. Their values
/// are kept, so reading them afterwards computes nothing. All must be on the same device.
#[cfg(not(target_arch = "wasm32"))]
pub fn eval(tensors: &[&Tensor]) -> Result<()> {
    graph::eval::evaluate(tensors)
}

/// Async form of [`eval`] (the same work; it exists so code can be written once for every target).
pub async fn eval_async(tensors: &[&Tensor]) -> Result<()> {
    graph::eval::evaluate(tensors)
}

/// README.md's Rust quick start, compiled and run by `cargo test` as a doctest (so the README
/// cannot drift from the API).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeQuickStart;
