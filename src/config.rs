//! What a device is set to and what it counts: the [`JitMode`], the profiling and kernel-variant
//! switches, and the [`Stats`]. Backends read and update a [`Config`] and know nothing of the
//! [`Device`](crate::Device) that owns it.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Whether the JIT compiles and caches fused kernels.
///
/// A new device starts with [`JitMode::On`]. Further modes may be added; they are opt-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum JitMode {
    /// Fuse elementwise chains, compile each distinct kernel once, reuse it from the cache.
    #[default]
    On,
    /// The old engine's behaviour, kept so the gain can be measured: one kernel per op, each
    /// pipeline built anew on every evaluation, nothing cached. Results equal those of `On`.
    Off,
    /// Like `On`, without the compile stall of a new shape: a kernel whose structure has been
    /// compiled runs at once on the structure's *generic* pipeline (sizes read from metadata),
    /// and kernels that prove hot (evaluated again, or large) get their *specialized* pipeline
    /// compiled off the caller's path (a compile thread natively; between evaluations on the
    /// browser's event loop), swapped in when ready. Generic and specialized kernels do the
    /// same arithmetic in the same order, so their results are bit-identical. Tiny graphs whose
    /// inputs are on the host run on the CPU kernels when the cost model measured at start-up
    /// says they finish before a GPU round trip would ([`Stats::cpu_dispatches`]); their results
    /// are the CPU device's, within the precision table of `On`'s. Opt-in.
    Adaptive,
}

impl JitMode {
    /// Kernels are fused and pipelines cached (`On` and `Adaptive`).
    pub(crate) fn caches(self) -> bool {
        self != JitMode::Off
    }
}

/// Counters of a device, cumulative since it was created and shared by its clones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Compute pipelines created (always 0 on the CPU device, which has none). On MLX: programs
    /// traced into a new MLX compiled function.
    pub compiles: u64,
    /// Pipeline cache hits: kernels that needed no compile because the cache had them (on MLX:
    /// programs found already compiled).
    pub cache_hits: u64,
    /// Compute kernels launched. Uploads, copies and read-backs do not count. The CPU device
    /// counts its fused kernels with the JIT on (the GPU's schedule) and one per op with it off
    /// (views such as permute are free and not counted). MLX picks
    /// its own kernels, so there this counts what is handed to MLX: one compiled-function call
    /// per evaluation with the JIT on, one per op with it off.
    pub dispatches: u64,
    /// Of `compiles`, the pipelines created off the caller's path ([`JitMode::Adaptive`]'s
    /// specialized kernels, compiled in the background).
    pub background_compiles: u64,
    /// Kernels launched on a generic pipeline (tier 0 of [`JitMode::Adaptive`]; with
    /// `debug::set_generic_kernels` also under `On`).
    pub generic_dispatches: u64,
    /// Kernels launched on a specialized pipeline while in [`JitMode::Adaptive`] (its tier 1).
    pub specialized_dispatches: u64,
    /// Kernels launched on a quick pipeline (with [`JitMode::On`], a matmul's first runs while
    /// its specialized pipeline compiles in the background: see `debug::set_quick_first`).
    pub quick_dispatches: u64,
    /// Ops a GPU device ran on the CPU instead ([`JitMode::Adaptive`]'s route for tiny graphs
    /// whose inputs are on the host; also counted in `dispatches`).
    pub cpu_dispatches: u64,
    /// Total time spent creating pipelines (shader module + pipeline), in the background too.
    pub compile_time: Duration,
    /// Time the device spent running kernels, counted only while profiling is on
    /// ([`Device::set_profiling`](crate::Device::set_profiling)): GPU timestamps on adapters that have them (natively), the
    /// wall time of each op on the CPU.
    pub kernel_time: Duration,
    /// Matmul shapes queued for the autotuner (wgpu: see `debug::set_autotune`).
    pub tunes_requested: u64,
    /// Of `tunes_requested`, those measured (or given up: the size rule stays); a shape is
    /// measured once per adapter, and natively remembered on disk with the hot kernels.
    pub tunes_done: u64,
}

/// A device's switches and counters, shared by its clones.
#[derive(Default)]
pub(crate) struct Config {
    jit: AtomicU8,
    profiling: AtomicBool,
    /// GPU kernels read their sizes from metadata (one pipeline per structure); see
    /// `crate::codegen::Variant`.
    generic: AtomicBool,
    /// The SVD takes the block sizes of a hardware adapter even on a software one (tests cover
    /// both configurations on the adapters CI has).
    svd_hardware_blocks: AtomicBool,
    /// The SVD takes the split form of the Gram round at every size where it takes the Gram
    /// round (tests put small and degenerate inputs through it).
    svd_split: AtomicBool,
    /// The SVD is preconditioned by QR (the Jacobi on Rᵀ) where it takes the Gram rounds (see
    /// `debug::set_svd_qr`).
    svd_qr: AtomicBool,
    /// Quick first runs (see `debug::set_quick_first`): 0 on hardware adapters (the default),
    /// 1 on every adapter, 2 never.
    quick_first: AtomicU8,
    /// The matmul autotuner (see `debug::set_autotune`): 0 on hardware adapters (the
    /// default), 1 on every adapter, 2 never.
    autotune: AtomicU8,
    /// A register tile forced on every tiled matmul (`debug::set_matmul_tile`): rows · 16 +
    /// columns, 0 for none.
    matmul_tile: AtomicU8,
    /// Shared with background work (the adaptive mode's compile thread) that outlives a call.
    stats: Arc<Mutex<Stats>>,
}

impl Config {
    pub fn set_jit(&self, mode: JitMode) {
        let v = match mode {
            JitMode::On => 0,
            JitMode::Off => 1,
            JitMode::Adaptive => 2,
        };
        self.jit.store(v, Ordering::Relaxed);
    }

    pub fn jit(&self) -> JitMode {
        match self.jit.load(Ordering::Relaxed) {
            1 => JitMode::Off,
            2 => JitMode::Adaptive,
            _ => JitMode::On,
        }
    }

    pub fn set_profiling(&self, on: bool) {
        self.profiling.store(on, Ordering::Relaxed);
    }

    pub fn profiling(&self) -> bool {
        self.profiling.load(Ordering::Relaxed)
    }

    pub fn set_generic_kernels(&self, on: bool) {
        self.generic.store(on, Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn generic_kernels(&self) -> bool {
        self.generic.load(Ordering::Relaxed)
    }

    pub fn set_svd_hardware_blocks(&self, on: bool) {
        self.svd_hardware_blocks.store(on, Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn svd_hardware_blocks(&self) -> bool {
        self.svd_hardware_blocks.load(Ordering::Relaxed)
    }

    pub fn set_svd_split(&self, on: bool) {
        self.svd_split.store(on, Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn svd_split(&self) -> bool {
        self.svd_split.load(Ordering::Relaxed)
    }

    pub fn set_svd_qr(&self, on: bool) {
        self.svd_qr.store(on, Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn svd_qr(&self) -> bool {
        self.svd_qr.load(Ordering::Relaxed)
    }

    /// `None`: quick first runs on hardware adapters only (the default); `Some(on)`: on every
    /// adapter, or never.
    pub fn set_quick_first(&self, mode: Option<bool>) {
        let v = match mode {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        };
        self.quick_first.store(v, Ordering::Relaxed);
    }

    /// Whether a kernel's first runs may take its quick form on an adapter that is software
    /// or not.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn quick_first(&self, software: bool) -> bool {
        match self.quick_first.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => !software,
        }
    }

    /// `None`: the autotuner on hardware adapters only (the default); `Some(on)`: on every
    /// adapter, or never.
    pub fn set_autotune(&self, mode: Option<bool>) {
        let v = match mode {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        };
        self.autotune.store(v, Ordering::Relaxed);
    }

    /// Whether matmul shapes are autotuned on an adapter that is software or not.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn autotune(&self, software: bool) -> bool {
        match self.autotune.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => !software,
        }
    }

    /// Forces a register tile on every tiled matmul (or lets the tuner and the size rule
    /// choose again).
    pub fn set_matmul_tile(&self, tile: Option<(u8, u8)>) {
        let v = tile.map_or(0, |(r, c)| r * 16 + c);
        self.matmul_tile.store(v, Ordering::Relaxed);
    }

    /// The forced register tile, if any.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn matmul_tile(&self) -> Option<(u8, u8)> {
        match self.matmul_tile.load(Ordering::Relaxed) {
            0 => None,
            v => Some((v / 16, v % 16)),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A handle to the counters for work that outlives the call recording it.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn stats_handle(&self) -> Arc<Mutex<Stats>> {
        self.stats.clone()
    }

    /// Updates the counters.
    pub fn record(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
