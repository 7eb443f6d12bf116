//! Devices: a backend plus the JIT switch and the counters that belong to it.

use std::sync::Arc;

use crate::backend::{cpu::CpuBackend, Backend};
use crate::config::{Config, JitMode, Stats};
use crate::error::Result;

pub(crate) struct DeviceInner {
    backend: Box<dyn Backend>,
    config: Config,
}

/// A place where tensors live and run: `Device::cpu()`, `Device::wgpu()`, `Device::best()`, and
/// `Device::mlx()` with the cargo feature `mlx`.
///
/// A cheap handle: clones share the backend, the [`JitMode`] and the [`Stats`].
///
/// ```
/// let dev = tmath::Device::cpu()?;
/// let a = tmath::Tensor::randn(&[4, 3], 1, &dev)?;
/// assert_eq!(a.matmul(&a.transpose(0, 1)?)?.shape(), &[4, 4]);
/// # Ok::<(), tmath::Error>(())
/// ```
#[derive(Clone)]
pub struct Device {
    inner: Arc<DeviceInner>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Device({}: {})",
            self.backend_name(),
            self.adapter_name()
        )
    }
}

impl Device {
    pub(crate) fn from_backend(backend: Box<dyn Backend>) -> Device {
        Device {
            inner: Arc::new(DeviceInner {
                backend,
                config: Config::default(),
            }),
        }
    }

    /// The pure-Rust CPU device: the reference for every other backend and the fallback where
    /// there is no GPU. Multi-threaded natively (matmul, SVD); single-threaded on wasm.
    pub fn cpu() -> Result<Device> {
        Ok(Device::from_backend(Box::new(CpuBackend::new())))
    }

    /// A GPU device through wgpu (Vulkan, Metal, DX12 or GL; `WGPU_BACKEND` can pick one).
    /// Blocks while the adapter is requested; use [`Device::wgpu_async`] on wasm.
    #[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
    pub fn wgpu() -> Result<Device> {
        pollster::block_on(Device::wgpu_async())
    }

    /// A GPU device through wgpu; on wasm this is the browser's WebGPU. Fails with
    /// [`Error::Unavailable`](crate::Error::Unavailable) where there is no adapter.
    #[cfg(feature = "wgpu")]
    pub async fn wgpu_async() -> Result<Device> {
        Ok(Device::from_backend(Box::new(
            crate::backend::gpu::WgpuBackend::new().await?,
        )))
    }

    /// The MLX device (cargo feature `mlx`): the graph is mapped onto MLX operations and, with
    /// the JIT on, compiled with MLX's own `compile`, cached by graph structure and shapes. On
    /// Apple Silicon it runs on the GPU (Metal) with unified memory; on other platforms on MLX's
    /// CPU build. SVD always runs on MLX's CPU stream (MLX has no GPU SVD).
    #[cfg(all(feature = "mlx", not(target_arch = "wasm32")))]
    pub fn mlx() -> Result<Device> {
        Ok(Device::from_backend(Box::new(
            crate::backend::mlx::MlxBackend::new()?,
        )))
    }

    /// The fastest device available: a GPU through wgpu when a hardware adapter is found, else
    /// the CPU device (natively, a software Vulkan such as lavapipe is slower than the CPU
    /// backend, so it is not chosen; in browsers WebGPU is taken whatever implements it).
    /// Blocks while the adapter is requested; use [`Device::best_async`] on wasm.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn best() -> Result<Device> {
        pollster::block_on(Device::best_async())
    }

    /// Async form of [`Device::best`]; works on every target.
    pub async fn best_async() -> Result<Device> {
        #[cfg(feature = "wgpu")]
        if let Ok(dev) = Device::wgpu_async().await {
            if cfg!(target_arch = "wasm32") || !dev.inner.backend.is_software() {
                return Ok(dev);
            }
        }
        Device::cpu()
    }

    /// Which backend runs this device: `"cpu"`, `"wgpu"` or `"mlx"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.kind()
    }

    /// The adapter's name (e.g. `"NVIDIA H100 80GB HBM3"`, `"llvmpipe (LLVM 15.0.6, 256 bits)"`).
    pub fn adapter_name(&self) -> String {
        self.inner.backend.adapter_name()
    }

    /// The largest tensor, in bytes, this device can hold in one buffer (the adapter's storage
    /// binding limit on a GPU; `None` on the CPU). Bigger results are an
    /// [`Error::TooLarge`](crate::Error::TooLarge), never a device loss.
    pub fn max_tensor_bytes(&self) -> Option<u64> {
        self.inner.backend.max_tensor_bytes()
    }

    /// The adapter limits the code generator works within, as `(name, value)` pairs (empty on
    /// the CPU). Reported in benchmark headers.
    pub fn limits(&self) -> Vec<(&'static str, u64)> {
        self.inner.backend.limits()
    }

    /// Switches the JIT for this device and all its clones (takes effect at the next evaluation).
    pub fn set_jit(&self, mode: JitMode) {
        self.inner.config.set_jit(mode);
    }

    /// The current [`JitMode`].
    pub fn jit(&self) -> JitMode {
        self.inner.config.jit()
    }

    /// Turns kernel timing on or off ([`Stats::kernel_time`]). Off by default: timing a GPU
    /// evaluation waits for it to finish.
    pub fn set_profiling(&self, on: bool) {
        self.inner.config.set_profiling(on);
    }

    /// Whether kernel timing is on.
    pub fn profiling(&self) -> bool {
        self.inner.config.profiling()
    }

    /// Makes GPU kernels generic (sizes as data: one pipeline per structure) or specialized
    /// (sizes as literals, the default). Only with [`JitMode::On`]; the adaptive mode will
    /// choose per kernel.
    pub(crate) fn set_generic_kernels(&self, on: bool) {
        self.inner.config.set_generic_kernels(on);
    }

    /// See [`crate::debug::set_svd_hardware_blocks`].
    pub(crate) fn set_svd_hardware_blocks(&self, on: bool) {
        self.inner.config.set_svd_hardware_blocks(on);
    }

    /// See [`crate::debug::set_svd_split`].
    pub(crate) fn set_svd_split(&self, on: bool) {
        self.inner.config.set_svd_split(on);
    }

    /// See [`crate::debug::set_svd_qr`].
    pub(crate) fn set_svd_qr(&self, on: bool) {
        self.inner.config.set_svd_qr(on);
    }

    /// See [`crate::debug::set_quick_first`].
    pub(crate) fn set_quick_first(&self, mode: Option<bool>) {
        self.inner.config.set_quick_first(mode);
    }

    /// See [`crate::debug::set_autotune`].
    pub(crate) fn set_autotune(&self, mode: Option<bool>) {
        self.inner.config.set_autotune(mode);
    }

    /// See [`crate::debug::set_matmul_tile`].
    pub(crate) fn set_matmul_tile(&self, tile: Option<(u8, u8)>) {
        self.inner.config.set_matmul_tile(tile);
    }

    /// Whether GPU kernels are generic (see [`Device::set_generic_kernels`]).
    pub(crate) fn generic_kernels(&self) -> bool {
        self.inner.config.generic_kernels()
    }

    /// A snapshot of the device's counters.
    pub fn stats(&self) -> Stats {
        self.inner.config.stats()
    }

    /// Waits until all work submitted to the device has finished (a no-op on the CPU).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn synchronize(&self) -> Result<()> {
        self.inner.backend.synchronize()
    }

    /// True when both handles refer to the same device.
    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// The switches and counters backends read and update.
    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }
}
