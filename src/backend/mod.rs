//! Backends: where a program runs. Each one takes a whole lowered [`Program`] (so it can
//! schedule and fuse) and returns the values it names; reading a value back is async (browsers
//! demand it). Backends see programs, values and a device's [`Config`], never graph nodes.

pub(crate) mod cpu;
#[cfg(feature = "wgpu")]
pub(crate) mod gpu;
#[cfg(all(feature = "mlx", not(target_arch = "wasm32")))]
pub(crate) mod mlx;

use std::future::Future;
use std::pin::Pin;

use crate::config::Config;
use crate::error::Result;
use crate::program::{MaybeSendSync, Program, Storage, Value};

/// The most bytes one host tensor may take: the machine's physical memory where it can be read
/// (Linux: `MemTotal` of `/proc/meminfo`), else what one allocation can address. A tensor
/// larger than the memory could never be held; asking for it is an error, not an abort.
pub(crate) fn host_memory_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        use std::sync::OnceLock;
        static TOTAL: OnceLock<Option<u64>> = OnceLock::new();
        let total = TOTAL.get_or_init(|| {
            let info = std::fs::read_to_string("/proc/meminfo").ok()?;
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            kb.checked_mul(1024)
        });
        if let Some(t) = *total {
            return t.min(crate::shape::MAX_TENSOR_BYTES);
        }
    }
    crate::shape::MAX_TENSOR_BYTES
}

/// Checks that `bytes` fit the host's memory (see [`host_memory_bytes`]), before anything is
/// allocated there.
pub(crate) fn check_host(op: &'static str, bytes: u64) -> Result<()> {
    crate::shape::check_bytes(op, bytes, host_memory_bytes(), "host memory")
}

/// A future returned by a backend (boxed, so the trait stays object-safe).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
#[cfg(target_arch = "wasm32")]
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The most work (elements, or multiply-adds) the adaptive mode sends to the CPU kernels
/// instead of the GPU (`crate::debug::CPU_ROUTE_MAX_WORK`).
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
pub(crate) const CPU_ROUTE_MAX_WORK: usize = 1 << 12;

/// One way to run programs.
pub(crate) trait Backend: MaybeSendSync {
    /// `"cpu"`, `"wgpu"` or `"mlx"`.
    fn kind(&self) -> &'static str;
    /// The adapter (or processor) name.
    fn adapter_name(&self) -> String;
    /// True for a GPU API implemented on the CPU (Mesa lavapipe, SwiftShader, WARP).
    fn is_software(&self) -> bool {
        false
    }
    /// The adaptive mode's CPU-route cost model, measured when the device started: the GPU
    /// round trip in µs and the CPU's ns per element (`None`: this backend has no such route).
    fn cpu_route_cost(&self) -> Option<(f64, f64)> {
        None
    }
    /// The largest tensor, in bytes, one buffer of this backend can hold (`None`: host memory).
    fn max_tensor_bytes(&self) -> Option<u64> {
        None
    }
    /// Checks, before anything is allocated, that a buffer of `bytes` fits this backend: the
    /// host's memory by default, the adapter's buffer limit on a GPU. An
    /// [`Error::TooLarge`](crate::Error::TooLarge) naming the size and the limit otherwise.
    fn check_alloc(&self, op: &'static str, bytes: u64) -> Result<()> {
        check_host(op, bytes)
    }
    /// Limits that shape the generated code, for reports.
    fn limits(&self) -> Vec<(&'static str, u64)> {
        vec![]
    }
    /// Device-to-device copy bandwidth in GB/s (bytes read + written), measured with `bytes`
    /// per copy; `None` where it cannot be measured synchronously.
    /// The host: all threads copying chunks (rayon), best of five.
    #[cfg(not(target_arch = "wasm32"))]
    fn copy_gbps(&self, bytes: usize) -> Result<Option<f64>> {
        use rayon::prelude::*;
        check_host("copy", 2 * bytes as u64)?;
        let src = vec![1u8; bytes];
        let mut dst = vec![0u8; bytes];
        let chunk = (bytes / (4 * rayon::current_num_threads().max(1))).max(1 << 16);
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t0 = std::time::Instant::now();
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(std::hint::black_box(s)));
            best = best.min(t0.elapsed().as_secs_f64());
        }
        std::hint::black_box(&dst);
        Ok(Some(2.0 * bytes as f64 / best / 1e9))
    }
    /// Peak f32 multiply-add throughput in GFLOP/s from a measured kernel (`None` where there
    /// is none: the CPU, MLX).
    #[cfg(not(target_arch = "wasm32"))]
    fn fma_gflops(&self) -> Result<Option<f64>> {
        Ok(None)
    }
    /// Copies host data into a new buffer of this backend.
    fn upload(&self, data: Vec<f32>) -> Result<Storage>;
    /// Computes the values of `program.returned`. `cfg` gives the JIT mode and the counters to
    /// update.
    fn execute(&self, program: &Program, cfg: &Config) -> Result<Vec<Value>>;
    /// Blocks until submitted work is done.
    #[cfg(not(target_arch = "wasm32"))]
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// Reads a value back in row-major order of its layout's shape.
    fn read<'a>(&'a self, value: &'a Value, cfg: &'a Config) -> BoxFuture<'a, Result<Vec<f32>>>;
    /// The elements of `value` in place, row-major, when they are in host memory in that order
    /// (a reader can copy them once, straight to where it wants them); `None` otherwise.
    fn host_slice<'a>(&self, _value: &'a Value) -> Option<&'a [f32]> {
        None
    }
}

/// The `layout.numel()` elements from `layout.offset` of `data`, when `layout` is contiguous.
pub(crate) fn contiguous_slice<'a>(
    data: &'a [f32],
    layout: &crate::shape::Layout,
) -> Option<&'a [f32]> {
    layout
        .is_contiguous()
        .then(|| data.get(layout.offset..layout.offset + layout.numel()))
        .flatten()
}
