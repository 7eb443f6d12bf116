//! The wgpu backend: one code path for Vulkan/Metal/DX12/GL natively and WebGPU in browsers.
//!
//! Components, each a struct with a narrow interface:
//! - [`context::Context`]: adapter, device, queue, limits, features, asynchronous errors;
//! - [`pipelines::Pipelines`]: bind layouts, the pipeline cache (+ the driver's disk cache);
//! - [`pool::Buffers`]: storage buffers, reused by size class;
//! - [`profiler::Profiler`]: kernel time from timestamps;
//! - `readback`: async and blocking reads;
//! - `executor`: plan → schedule → kernels → one command buffer;
//! - `svd`: the driver of the Jacobi SVD stages;
//! - [`compiler::Compiler`]: the adaptive mode's background compiles, and the matmul
//!   autotuner's measurements (`tune`).
//!
//! What a kernel is (its WGSL, launch and bindings) is decided by `crate::codegen` alone.

mod compiler;
mod context;
mod executor;
#[cfg(not(target_arch = "wasm32"))]
mod hot;
mod pipelines;
mod pool;
mod profiler;
mod readback;
mod svd;
mod tune;

pub(crate) use self::pool::GpuBuffer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use self::compiler::Compiler;
use self::context::Context;
use self::pipelines::Pipelines;
use self::pool::Buffers;
use self::profiler::Profiler;
use super::{Backend, BoxFuture};
use crate::backend::cpu::HostBuffer;
use crate::codegen::Bindings;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::program::{downcast, Program, Storage, Value};

pub(crate) struct WgpuBackend {
    ctx: Arc<Context>,
    pipelines: Arc<Pipelines>,
    /// The adaptive mode's background compiles.
    compiler: Compiler,
    buffers: Buffers,
    profiler: Profiler,
    /// Bind groups of kernels without a metadata uniform, by their layout and the ids of their
    /// buffers (unique for the process: a key never names a buffer it was not made with). Pool
    /// buffers come back for the same shapes, so a repeated evaluation finds its bind groups
    /// here instead of creating them (about 1.3 µs each on the H100's host). Cleared when full.
    bind_groups: Mutex<HashMap<(Bindings, Vec<u64>), wgpu::BindGroup>>,
    /// Held from the first buffer taken from the pool to the submit of the commands that use
    /// it (evaluations, uploads, the copies of a read-back). A buffer goes back to the pool as
    /// soon as its last reader is *recorded*; only commands recorded later, and so submitted
    /// later, may reuse it. Without this, another thread could take the buffer and submit its
    /// writes before the first thread submitted its reads (lost data, seen with 8 threads).
    submit: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn gpu(v: &Value) -> Result<&GpuBuffer> {
    downcast::<GpuBuffer>(&v.storage).ok_or(Error::DeviceMismatch { op: "wgpu" })
}

/// Buffers up to this many elements keep a host copy of what the host wrote into them.
const HOST_COPY_MAX: usize = 4096;

impl WgpuBackend {
    /// A new buffer holding `data` (the caller holds the submit lock); small ones keep a host
    /// copy.
    fn upload_locked(&self, data: Vec<f32>) -> Result<Arc<GpuBuffer>> {
        self.check_alloc("upload", (data.len().max(4) as u64) * 4)?;
        let n = data.len();
        let (buf, data) = if n <= HOST_COPY_MAX {
            let host = Arc::new(HostBuffer::new(data));
            let buf = self
                .buffers
                .alloc_with_host(&self.ctx, n, Some(host.clone()));
            (buf, host)
        } else {
            (
                self.buffers.alloc(&self.ctx, n),
                Arc::new(HostBuffer::new(data)),
            )
        };
        if n > 0 {
            self.ctx
                .queue
                .write_buffer(buf.raw(), 0, bytemuck::cast_slice(&data));
        }
        Ok(buf)
    }

    /// Requests the adapter and device (async: browsers demand it).
    pub async fn new() -> Result<WgpuBackend> {
        let ctx = Arc::new(Context::new().await?);
        Ok(WgpuBackend {
            pipelines: Arc::new(Pipelines::new(&ctx)),
            compiler: Compiler::new(),
            ctx,
            buffers: Buffers::default(),
            profiler: Profiler::default(),
            bind_groups: Mutex::default(),
            submit: Mutex::default(),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for WgpuBackend {
    fn drop(&mut self) {
        // The background compiles end first (joined), so the index saved is final.
        self.compiler.shutdown();
        self.pipelines.save();
    }
}

impl Backend for WgpuBackend {
    fn kind(&self) -> &'static str {
        "wgpu"
    }

    fn adapter_name(&self) -> String {
        self.ctx.info.name.clone()
    }

    fn max_tensor_bytes(&self) -> Option<u64> {
        Some(self.ctx.max_binding_bytes())
    }

    fn check_alloc(&self, op: &'static str, bytes: u64) -> Result<()> {
        crate::shape::check_bytes(
            op,
            bytes,
            self.ctx.max_binding_bytes(),
            "one buffer of this adapter",
        )
    }

    fn is_software(&self) -> bool {
        self.ctx.is_software()
    }

    fn cpu_route_cost(&self) -> Option<(f64, f64)> {
        Some((
            self.ctx.cost.round_trip_us,
            self.ctx.cost.cpu_ns_per_element,
        ))
    }

    fn limits(&self) -> Vec<(&'static str, u64)> {
        let l = &self.ctx.limits;
        vec![
            (
                "max_storage_buffer_binding_size",
                l.max_storage_buffer_binding_size,
            ),
            ("max_buffer_size", l.max_buffer_size),
            (
                "max_compute_invocations_per_workgroup",
                l.max_compute_invocations_per_workgroup as u64,
            ),
            (
                "max_compute_workgroup_storage_size",
                l.max_compute_workgroup_storage_size as u64,
            ),
            (
                "max_compute_workgroups_per_dimension",
                l.max_compute_workgroups_per_dimension as u64,
            ),
            (
                "max_storage_buffers_per_shader_stage",
                l.max_storage_buffers_per_shader_stage as u64,
            ),
            ("timestamp_query", self.ctx.timestamps as u64),
        ]
    }

    /// The larger of a vec4 compute copy kernel and the queue's buffer copy, each the best of
    /// three rounds of ten (bytes read + written).
    #[cfg(not(target_arch = "wasm32"))]
    fn copy_gbps(&self, bytes: usize) -> Result<Option<f64>> {
        let _submit = lock(&self.submit);
        let vecs = bytes / 16;
        let elems = vecs * 4;
        let (a, b) = (self.alloc("copy", elems)?, self.alloc("copy", elems)?);
        let (x, y) = self.ctx.grid("copy", vecs.div_ceil(256))?;
        let source = format!(
            "@group(0) @binding(0) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < {vecs}u) {{
        dst[i] = src[i];
    }}
}}
"
        );
        let pipeline = self.pipelines.measure_pipeline(&self.ctx, source, 1);
        let bg = self.bind_group(
            crate::codegen::Bindings::Slots(1),
            &[(b.raw(), None), (a.raw(), None)],
            None,
        );
        let best = |kernel: bool| -> Result<f64> {
            let mut best = f64::INFINITY;
            for round in 0..4 {
                let mut enc = self.ctx.new_encoder();
                for _ in 0..10 {
                    if kernel {
                        let mut pass = enc.begin_compute_pass(&Default::default());
                        pass.set_pipeline(&pipeline);
                        pass.set_bind_group(0, &bg, &[]);
                        pass.dispatch_workgroups(x, y, 1);
                    } else {
                        enc.copy_buffer_to_buffer(a.raw(), 0, b.raw(), 0, Some(elems as u64 * 4));
                    }
                }
                let t0 = std::time::Instant::now();
                self.ctx.queue.submit([enc.finish()]);
                self.ctx.wait()?;
                if round > 0 {
                    best = best.min(t0.elapsed().as_secs_f64() / 10.0);
                }
            }
            Ok(best)
        };
        let t = best(true)?.min(best(false)?);
        self.ctx.check_errors()?;
        Ok(Some(2.0 * (elems * 4) as f64 / t / 1e9))
    }

    /// A kernel of independent multiply-add chains in registers (96 per thread, 192 steps: on
    /// the H200 fewer chains left the loop overhead visible, 16 reached 39 TFLOP/s, 96 about
    /// 54, cuBLAS SGEMM 51), the best of three rounds.
    #[cfg(not(target_arch = "wasm32"))]
    fn fma_gflops(&self) -> Result<Option<f64>> {
        let _submit = lock(&self.submit);
        // 4M threads on a GPU; a software adapter gets 64K (it would take seconds otherwise).
        let threads: usize = if self.ctx.is_software() {
            1 << 16
        } else {
            1 << 22
        };
        // Chains per thread and steps per chain: env TMATH_FMA_SHAPE=chains,steps (measurement).
        let (chains_n, steps_n) = std::env::var("TMATH_FMA_SHAPE")
            .ok()
            .and_then(|v| {
                let (a, b) = v.split_once(',')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .unwrap_or((96usize, 192usize));
        let out = self.alloc("fma", threads)?;
        let seed = self.upload_locked(vec![0.999, 0.001, 1.0, 0.5])?;
        let mut chains = String::new();
        let mut steps = String::new();
        let mut sum = String::from("0.0");
        for c in 0..chains_n {
            chains += &format!("    var a{c} = s.z + f32(i & {c}u) * 1e-3;\n");
            steps += &format!("        a{c} = fma(a{c}, m, k);\n");
            sum += &format!(" + a{c}");
        }
        let source = format!(
            "@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> seed: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = gid.x + gid.y * nwg.x * 256u;
    let s = seed[0];
    let m = s.x;
    let k = s.y;
    let n = u32(s.w * {steps2}.0);
{chains}    for (var t = 0u; t < n; t = t + 1u) {{
{steps}    }}
    out[i] = {sum};
}}
",
            steps2 = 2 * steps_n,
        );
        let pipeline = self.pipelines.measure_pipeline(&self.ctx, source, 1);
        let bg = self.bind_group(
            crate::codegen::Bindings::Slots(1),
            &[(out.raw(), None), (seed.raw(), None)],
            None,
        );
        let (x, y) = self.ctx.grid("fma", threads / 256)?;
        let mut best = f64::INFINITY;
        for round in 0..4 {
            let mut enc = self.ctx.new_encoder();
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
            let t0 = std::time::Instant::now();
            self.ctx.queue.submit([enc.finish()]);
            self.ctx.wait()?;
            if round > 0 {
                best = best.min(t0.elapsed().as_secs_f64());
            }
        }
        self.ctx.check_errors()?;
        Ok(Some((threads * steps_n * chains_n * 2) as f64 / best / 1e9))
    }

    fn upload(&self, data: Vec<f32>) -> Result<Storage> {
        let _submit = lock(&self.submit);
        Ok(self.upload_locked(data)?)
    }

    fn execute(&self, program: &Program, cfg: &Config) -> Result<Vec<Value>> {
        self.run_program(program, cfg)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn synchronize(&self) -> Result<()> {
        self.ctx.wait()?;
        self.ctx.check_errors()
    }

    fn host_slice<'a>(&self, value: &'a Value) -> Option<&'a [f32]> {
        let host = gpu(value).ok()?.host()?;
        super::contiguous_slice(host, &value.layout)
    }

    fn read<'a>(&'a self, value: &'a Value, cfg: &'a Config) -> BoxFuture<'a, Result<Vec<f32>>> {
        Box::pin(async move {
            let n = value.layout.numel();
            if n == 0 {
                return Ok(vec![]);
            }
            // A small buffer written from the host keeps its contents there: no GPU trip.
            if let Some(host) = gpu(value)?.host() {
                return Ok(crate::backend::cpu::kernels::gather(host, &value.layout));
            }
            let bytes = n as u64 * 4;
            let staging = readback::staging(&self.ctx, bytes);
            {
                let _submit = lock(&self.submit);
                let mut enc = self.ctx.new_encoder();
                let (src, offset) = if value.layout.is_contiguous() {
                    (gpu(value)?.raw().clone(), value.layout.offset as u64 * 4)
                } else {
                    (self.densify(&mut enc, value, cfg)?.raw().clone(), 0)
                };
                enc.copy_buffer_to_buffer(&src, offset, &staging, 0, Some(bytes));
                self.ctx.queue.submit([enc.finish()]);
            }
            readback::map_and_take(&self.ctx, &staging).await
        })
    }
}
