//! The device context: adapter, device, queue, limits and features, and the errors the device
//! reports asynchronously. Everything else in the backend talks to wgpu through this.

use std::sync::{Arc, Mutex};

use super::lock;
use crate::error::{Error, Result};

pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Threads per workgroup of 1-D kernels (a power of two within the limits, at most 256).
    pub wg: u32,
    /// The adapter has timestamp queries (natively only; used when profiling is on).
    pub timestamps: bool,
    /// The cost model of the adaptive mode's CPU route, measured when the device starts.
    pub cost: CostModel,
    /// The adapter can keep a driver pipeline cache (natively, and not turned off).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub pipeline_cache: bool,
    /// On an adapter that is a CPU with subgroup operations of one fixed size (4, 8 or 16
    /// lanes: lavapipe has 8), that size, and the device has subgroups enabled; 0 elsewhere.
    /// Matmul takes its lane form there (`codegen/matmul.rs`).
    pub cpu_lanes: u32,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Context {
    pub async fn new() -> Result<Context> {
        let unavailable = |message: String| Error::Unavailable {
            backend: "wgpu",
            message,
        };
        // Outside browsers with WebGPU (Node, WebKit), wgpu must not be asked at all.
        #[cfg(target_arch = "wasm32")]
        {
            let navigator =
                js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or_default();
            let gpu = if navigator.is_object() {
                js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or_default()
            } else {
                navigator
            };
            if !gpu.is_object() {
                return Err(unavailable(
                    "this JavaScript environment has no navigator.gpu (WebGPU)".into(),
                ));
            }
        }
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(format!("no adapter: {e}")))?;
        let limits = adapter.limits();
        // Timestamp queries let the benchmark separate kernel time from submit/wait overhead.
        // A pipeline cache on disk lets a second process skip the driver's shader compiles.
        let pipeline_cache = cfg!(not(target_arch = "wasm32"))
            && adapter.features().contains(wgpu::Features::PIPELINE_CACHE)
            && std::env::var("TMATH_PIPELINE_CACHE").map_or(true, |v| v != "off");
        let timestamps = cfg!(not(target_arch = "wasm32"))
            && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let info = adapter.get_info();
        let cpu_lanes = if info.device_type == wgpu::DeviceType::Cpu
            && adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == info.subgroup_max_size
            && matches!(info.subgroup_min_size, 4 | 8 | 16)
        {
            info.subgroup_min_size
        } else {
            0
        };
        let subgroups = cpu_lanes > 0;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tmath"),
                required_features: {
                    let mut f = wgpu::Features::empty();
                    if timestamps {
                        f |= wgpu::Features::TIMESTAMP_QUERY;
                    }
                    if pipeline_cache {
                        f |= wgpu::Features::PIPELINE_CACHE;
                    }
                    if subgroups {
                        f |= wgpu::Features::SUBGROUP;
                    }
                    f
                },
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(format!("request_device: {e}")))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e| lock(&sink).push(e.to_string())));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            lock(&sink).push(format!("device lost ({reason:?}): {msg}"))
        });
        let wg = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x)
            .min(256);
        let wg = 1 << (31 - wg.max(1).leading_zeros()); // a power of two
        let mut ctx = Context {
            info,
            device,
            queue,
            limits,
            wg,
            timestamps,
            pipeline_cache,
            cpu_lanes,
            cost: CostModel::default(),
            errors,
        };
        ctx.cost = CostModel::measure(&ctx);
        Ok(ctx)
    }

    /// Fails with the errors the device reported since the last check (and forgets them).
    pub fn check_errors(&self) -> Result<()> {
        let mut errs = lock(&self.errors);
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ");
        errs.clear();
        Err(Error::device(msg))
    }

    /// The largest buffer a kernel can bind.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Inputs one kernel may bind as storage buffers (after the output).
    pub fn max_slots(&self) -> usize {
        (self.limits.max_storage_buffers_per_shader_stage as usize)
            .saturating_sub(1)
            .clamp(1, 15)
    }

    /// Threads per workgroup for a kernel of `body`: the adapter's width, but softmax rows and
    /// reductions on a software adapter get 32 threads (there each barrier of the row's
    /// reductions costs a pass over the workgroup's threads on a few cores, so fewer threads
    /// with more elements each are faster: lavapipe, softmax 1024²: 15.4 ms with 256 threads,
    /// 10.9 with 64, 5.0 with 32; a sum over the rows of 1024²: 2.5 ms with 256, 1.6 with 32).
    /// Matmul on a CPU adapter (its lane form, `codegen/matmul.rs`) runs 32 threads per workgroup.
    pub fn wg_for(&self, body: &crate::schedule::Body) -> u32 {
        match body {
            crate::schedule::Body::Softmax { .. } | crate::schedule::Body::Reduce { .. }
                if self.is_software() =>
            {
                self.wg.min(32)
            }
            crate::schedule::Body::MatMul { .. } if self.is_software() => 32,
            _ => self.wg,
        }
    }

    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    pub fn new_encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    /// (x, y) workgroup counts covering `n` workgroups within the per-dimension limit, with as
    /// few extra workgroups as possible: a full-width first row (x at the limit, y rows) left
    /// up to a whole row idle, and on the H200 an elementwise kernel over 64M elements (65,536
    /// workgroups: 65,535 × 2) ran at 1.1–1.4 TB/s against 4.2 TB/s at 60M (one row); balanced
    /// rows restore it.
    pub fn grid(&self, op: &'static str, n: usize) -> Result<(u32, u32)> {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as usize;
        if n <= max {
            return Ok((n as u32, 1));
        }
        let y = n.div_ceil(max);
        if y > max {
            return Err(Error::TooLarge {
                op,
                message: format!("{n} workgroups exceed the dispatch limit"),
            });
        }
        Ok((n.div_ceil(y) as u32, y as u32))
    }

    /// The workgroup grid of a kernel's launch, checked against the dispatch limits.
    pub fn launch_grid(
        &self,
        op: &'static str,
        groups: crate::codegen::Groups,
    ) -> Result<[u32; 3]> {
        match groups {
            crate::codegen::Groups::Flat(n) => self.grid(op, n).map(|(x, y)| [x, y, 1]),
            crate::codegen::Groups::Grid(g) => {
                let max = self.limits.max_compute_workgroups_per_dimension as usize;
                if g.iter().any(|&d| d > max) {
                    return Err(Error::TooLarge {
                        op,
                        message: format!("a grid of {g:?} workgroups exceeds the dispatch limit"),
                    });
                }
                Ok(g.map(|d| d as u32))
            }
        }
    }

    /// Waits for all submitted work.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<()> {
        // On a hardware adapter, poll for a short while first: a blocking wait sleeps on the
        // driver's fence and wakes tens of microseconds after the GPU is done, which is most of
        // a small call. Software adapters need this thread's core for the work itself.
        if !self.is_software() {
            let start = std::time::Instant::now();
            while start.elapsed() < SPIN_WAIT {
                let status = self
                    .device
                    .poll(wgpu::PollType::Poll)
                    .map_err(|e| Error::device(e.to_string()))?;
                if status.is_queue_empty() {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
        }
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::device(e.to_string()))?;
        Ok(())
    }

    /// Blocks until submission `index` has run (later ones may still be running), and runs the
    /// map callbacks that are due.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait_for(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| Error::device(e.to_string()))?;
        Ok(())
    }
}

/// How long [`Context::wait`] polls before it blocks (hardware adapters).
#[cfg(not(target_arch = "wasm32"))]
const SPIN_WAIT: std::time::Duration = std::time::Duration::from_micros(500);

/// What a tiny evaluation costs on each side, measured when the device starts: the GPU's round
/// trip (submit, wait, map a small read-back) and the host's time per element of an elementwise
/// op. The adaptive mode runs a graph on the CPU when its inputs are on the host and its work
/// would be done on the CPU before the GPU's round trip ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CostModel {
    /// Microseconds of a GPU round trip (submit + wait + read-back of a few bytes).
    pub round_trip_us: f64,
    /// Nanoseconds per element of the CPU's elementwise kernels (GELU, measured).
    pub cpu_ns_per_element: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            round_trip_us: 1000.0,
            cpu_ns_per_element: 20.0,
        }
    }
}

impl CostModel {
    fn measure(ctx: &Context) -> CostModel {
        let mut m = CostModel::default();
        let now = super::pipelines::web_time_now;
        // The host: GELU over 16K elements, best of three.
        let x: Vec<f32> = (0..1 << 14).map(|i| (i as f32) * 1e-3 - 8.0).collect();
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = now();
            let s: f32 = x.iter().map(|&v| crate::ir::UnaryOp::Gelu.eval(v)).sum();
            std::hint::black_box(s);
            best = best.min(now().saturating_sub(t0).as_secs_f64());
        }
        if best.is_finite() && best > 0.0 {
            m.cpu_ns_per_element = best * 1e9 / x.len() as f64;
        }
        // The GPU: a round trip that reads 16 bytes back, best of three (natively; browsers
        // cannot wait here, so their default stays: a mapAsync round trip takes about 1 ms).
        #[cfg(not(target_arch = "wasm32"))]
        {
            let src = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tmath cost model"),
                size: 256,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let t0 = now();
                let enc = ctx.new_encoder();
                if super::readback::read_blocking::<u32>(ctx, enc, &src, 16).is_err() {
                    return m;
                }
                best = best.min(now().saturating_sub(t0).as_secs_f64());
            }
            if best.is_finite() && best > 0.0 {
                m.round_trip_us = best * 1e6;
            }
        }
        #[cfg(target_arch = "wasm32")]
        let _ = ctx;
        m
    }
}
