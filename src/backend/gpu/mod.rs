//! The wgpu backend: one code path for Vulkan/Metal/DX12/GL natively and WebGPU in browsers.
//!
//! `execute` schedules the plan into fused kernels (`crate::schedule`), describes each as a
//! [`KernelDesc`], takes its pipeline from the cache (or compiles the WGSL that
//! `crate::codegen` renders from the same description), and records all dispatches into one
//! command buffer. Intermediate buffers go back to the pool after their last use.

mod pool;

pub(crate) use self::pool::GpuBuffer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use self::pool::{size_class, BufferPool};
use super::{Backend, BoxFuture, Storage};
use crate::codegen::{self, KernelDesc, SMALL_REDUCE};
use crate::device::{Device, JitMode};
use crate::error::{Error, Result};
use crate::graph::eval::Plan;
use crate::graph::{Op, Value};
use crate::schedule::{schedule, Body, Inst, Kernel, Program};
use crate::shape::{numel, Layout};
use crate::Tensor;

/// Pipelines kept before the least recently used is dropped.
const CACHE_CAPACITY: usize = 1024;
/// Default byte budget of the pipeline cache (`TMATH_PIPELINE_CACHE_MB` overrides it).
const CACHE_BUDGET_MB: u64 = 256;
/// Sweeps of the Jacobi SVD: natively it stops once a sweep rotates nothing; on wasm, where the
/// host cannot wait for the GPU inside an evaluation, it runs a fixed number.
#[cfg(not(target_arch = "wasm32"))]
const SVD_MAX_SWEEPS: usize = 30;
#[cfg(target_arch = "wasm32")]
const SVD_FIXED_SWEEPS: usize = 15;
/// Matrices up to this many columns (of the working matrix, min(m, n)) and elements sweep in
/// one workgroup, one dispatch per sweep: for small sizes the dispatch count, not the
/// arithmetic, is what costs (SwiftShader pays milliseconds per dispatch; a GPU microseconds).
const SVD_ONE_GROUP_MAX_COLS: usize = 256;
const SVD_ONE_GROUP_MAX_ELEMS: usize = 1 << 16;

struct CacheEntry {
    pipeline: Arc<wgpu::ComputePipeline>,
    last_used: u64,
    bytes: u64,
}

/// Compiled pipelines by kernel description, least recently used evicted first, bounded by a
/// count and by an estimate of the memory they hold (driver code and metadata: measured about
/// 1.4 MiB a pipeline on lavapipe, whose LLVM JIT keeps machine code and IR per pipeline).
struct PipelineCache {
    entries: HashMap<KernelDesc, CacheEntry>,
    tick: u64,
    bytes: u64,
    budget: u64,
}

impl PipelineCache {
    fn new(budget: u64) -> Self {
        PipelineCache {
            entries: HashMap::new(),
            tick: 0,
            bytes: 0,
            budget,
        }
    }

    /// The estimated memory of one pipeline compiled from `wgsl_len` bytes of WGSL.
    fn cost(wgsl_len: usize, software: bool) -> u64 {
        if software {
            (1 << 20) + 64 * wgsl_len as u64
        } else {
            (64 << 10) + 16 * wgsl_len as u64
        }
    }

    fn get(&mut self, key: &KernelDesc) -> Option<Arc<wgpu::ComputePipeline>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.last_used = tick;
            e.pipeline.clone()
        })
    }

    fn insert(&mut self, key: KernelDesc, pipeline: Arc<wgpu::ComputePipeline>, bytes: u64) {
        while !self.entries.is_empty()
            && (self.entries.len() >= CACHE_CAPACITY || self.bytes + bytes > self.budget)
        {
            let Some(old) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&old) {
                self.bytes -= e.bytes;
            }
        }
        self.tick += 1;
        self.bytes += bytes;
        self.entries.insert(
            key,
            CacheEntry {
                pipeline,
                last_used: self.tick,
                bytes,
            },
        );
    }
}

/// A bind group layout and the pipeline layout made of it.
type Layouts = (Arc<wgpu::BindGroupLayout>, Arc<wgpu::PipelineLayout>);

/// The state shared by a one-shot channel's sender and receiver.
type OneshotState<T> = Arc<Mutex<(Option<T>, Option<std::task::Waker>)>>;

/// Bind group layouts: `n` read-only inputs after the output, or the SVD's own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum LayoutKind {
    Slots(usize),
    Svd,
}

pub(crate) struct WgpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// Threads per workgroup of 1-D kernels.
    wg: u32,
    pipelines: Mutex<PipelineCache>,
    layouts: Mutex<HashMap<LayoutKind, Layouts>>,
    pool: Arc<Mutex<BufferPool>>,
    /// Held from the first buffer taken from the pool to the submit of the commands that use
    /// it (evaluations, uploads, the copies of a read-back). A buffer goes back to the pool as
    /// soon as its last reader is *recorded*; only commands recorded later, and so submitted
    /// later, may reuse it. Without this, another thread could take the buffer and submit its
    /// writes before the first thread submitted its reads (lost data, seen with 8 threads).
    submit: Mutex<()>,
    errors: Arc<Mutex<Vec<String>>>,
    /// The adapter has timestamp queries (natively only; used when profiling is on).
    timestamps: bool,
    /// Timestamps of the evaluation in progress, while profiling.
    timer: Mutex<Option<PassTimer>>,
    /// The driver's pipeline cache, kept on disk between processes (natively, where supported).
    #[cfg(not(target_arch = "wasm32"))]
    disk: Option<DiskCache>,
}

/// wgpu's `PipelineCache` loaded from and saved to a file keyed by adapter and driver
/// (`$TMATH_CACHE_DIR`, else `$XDG_CACHE_HOME/tmath`, else `~/.cache/tmath`; set
/// `TMATH_PIPELINE_CACHE=off` to disable). It only speeds up compiles; it never changes results.
#[cfg(not(target_arch = "wasm32"))]
struct DiskCache {
    cache: wgpu::PipelineCache,
    path: std::path::PathBuf,
    dirty: std::sync::atomic::AtomicBool,
}

#[cfg(not(target_arch = "wasm32"))]
impl DiskCache {
    fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<DiskCache> {
        let key = wgpu::util::pipeline_cache_key(info)?;
        let dir = std::env::var_os("TMATH_CACHE_DIR")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(std::path::PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache"))
                    })
                    .map(|d| d.join("tmath"))
            })?;
        let path = dir.join(key);
        let data = std::fs::read(&path).ok();
        // SAFETY: the data was written by `get_data` of a cache for the same adapter and driver
        // (the file name is wgpu's key for both); `fallback: true` makes wgpu start empty when
        // the driver rejects it.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("tmath"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        Some(DiskCache {
            cache,
            path,
            dirty: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Writes the cache if pipelines were added (atomically: a temporary file, then a rename).
    fn save(&self) {
        if !self.dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let ok = self
            .path
            .parent()
            .is_some_and(|d| std::fs::create_dir_all(d).is_ok())
            && std::fs::write(&tmp, &data).is_ok()
            && std::fs::rename(&tmp, &self.path).is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for WgpuBackend {
    fn drop(&mut self) {
        if let Some(d) = &self.disk {
            d.save();
        }
    }
}

/// Most compute passes timed per evaluation (further passes run untimed; a query set holds at
/// most 4096 queries).
const TIMED_PASSES: u32 = 2048;

/// A begin/end timestamp pair per compute pass of one evaluation.
struct PassTimer {
    set: wgpu::QuerySet,
    next: u32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Device {
    /// A GPU device through wgpu (Vulkan, Metal, DX12 or GL; `WGPU_BACKEND` can pick one).
    /// Blocks while the adapter is requested; use [`Device::wgpu_async`] on wasm.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wgpu() -> Result<Device> {
        pollster::block_on(Device::wgpu_async())
    }

    /// A GPU device through wgpu; on wasm this is the browser's WebGPU. Fails with
    /// [`Error::Unavailable`] where there is no adapter.
    pub async fn wgpu_async() -> Result<Device> {
        Ok(Device::from_backend(Box::new(WgpuBackend::new().await?)))
    }
}

impl WgpuBackend {
    async fn new() -> Result<Self> {
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
        let disk_cache = cfg!(not(target_arch = "wasm32"))
            && adapter.features().contains(wgpu::Features::PIPELINE_CACHE)
            && std::env::var("TMATH_PIPELINE_CACHE").map_or(true, |v| v != "off");
        let timestamps = cfg!(not(target_arch = "wasm32"))
            && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tmath"),
                required_features: {
                    let mut f = wgpu::Features::empty();
                    if timestamps {
                        f |= wgpu::Features::TIMESTAMP_QUERY;
                    }
                    if disk_cache {
                        f |= wgpu::Features::PIPELINE_CACHE;
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
        let info = adapter.get_info();
        #[cfg(not(target_arch = "wasm32"))]
        let disk = if disk_cache {
            DiskCache::open(&device, &info)
        } else {
            None
        };
        Ok(WgpuBackend {
            #[cfg(not(target_arch = "wasm32"))]
            disk,
            device,
            queue,
            info,
            limits,
            wg,
            pipelines: Mutex::new(PipelineCache::new(
                std::env::var("TMATH_PIPELINE_CACHE_MB")
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(CACHE_BUDGET_MB)
                    << 20,
            )),
            layouts: Mutex::default(),
            pool: Arc::default(),
            submit: Mutex::default(),
            errors,
            timestamps,
            timer: Mutex::default(),
        })
    }

    /// Fails with the first error the device reported since the last check.
    fn check_errors(&self) -> Result<()> {
        let mut errs = lock(&self.errors);
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ");
        errs.clear();
        Err(Error::device(msg))
    }

    fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// A storage buffer of at least `elems` f32 (from the pool when one fits).
    fn alloc(&self, op: &'static str, elems: usize) -> Result<Arc<GpuBuffer>> {
        let bytes = (elems.max(4) as u64) * 4;
        self.check_alloc(op, bytes)?;
        let class = size_class(bytes).min(self.max_binding_bytes());
        let buffer = lock(&self.pool).take(class).unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tmath tensor"),
                size: class,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        Ok(Arc::new(GpuBuffer::new(buffer, class, self.pool.clone())))
    }

    fn layout(&self, kind: LayoutKind) -> Layouts {
        let mut layouts = lock(&self.layouts);
        layouts
            .entry(kind)
            .or_insert_with(|| {
                let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                };
                let entries: Vec<wgpu::BindGroupLayoutEntry> = match kind {
                    LayoutKind::Slots(n) => (0..=n as u32).map(|b| storage(b, b > 0)).collect(),
                    LayoutKind::Svd => {
                        let mut e: Vec<_> = (0..6u32).map(|b| storage(b, b == 1)).collect();
                        e.push(wgpu::BindGroupLayoutEntry {
                            binding: 6,
                            visibility: wgpu::ShaderStages::COMPUTE,
                            ty: wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Uniform,
                                has_dynamic_offset: true,
                                min_binding_size: wgpu::BufferSize::new(16),
                            },
                            count: None,
                        });
                        e
                    }
                };
                let bgl = self
                    .device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: None,
                        entries: &entries,
                    });
                let pl = self
                    .device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: None,
                        bind_group_layouts: &[Some(&bgl)],
                        immediate_size: 0,
                    });
                (Arc::new(bgl), Arc::new(pl))
            })
            .clone()
    }

    /// The pipeline of a kernel: from the cache (JIT on), or compiled now.
    fn pipeline(
        &self,
        desc: &KernelDesc,
        kind: LayoutKind,
        device: &Device,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let jit = device.jit() == JitMode::On;
        if jit {
            if let Some(p) = lock(&self.pipelines).get(desc) {
                device.record(|s| s.cache_hits += 1);
                return Ok(p);
            }
        }
        let source = codegen::wgsl(desc);
        let cost = PipelineCache::cost(source.len(), self.is_software());
        let (_, pl) = self.layout(kind);
        let t0 = web_time_now();
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("tmath kernel"),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = Arc::new(self.device.create_compute_pipeline(
            &wgpu::ComputePipelineDescriptor {
                label: Some("tmath kernel"),
                layout: Some(&pl),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: self.disk_cache(),
            },
        ));
        let dt = web_time_now().saturating_sub(t0);
        device.record(|s| {
            s.compiles += 1;
            s.compile_time += dt;
        });
        self.check_errors()
            .map_err(|e| Error::device(format!("compiling a {:?} kernel: {e}", desc_name(desc))))?;
        if jit {
            lock(&self.pipelines).insert(desc.clone(), pipeline.clone(), cost);
        }
        Ok(pipeline)
    }

    /// The on-disk pipeline cache to compile through (marked as changed), if any.
    fn disk_cache(&self) -> Option<&wgpu::PipelineCache> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(d) = &self.disk {
            d.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
            return Some(&d.cache);
        }
        None
    }

    /// (x, y) workgroup counts covering `n` workgroups within the per-dimension limit.
    fn grid(&self, op: &'static str, n: usize) -> Result<(u32, u32)> {
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
        Ok((max as u32, y as u32))
    }

    fn bind_group(
        &self,
        kind: LayoutKind,
        buffers: &[(&wgpu::Buffer, Option<u64>)],
    ) -> wgpu::BindGroup {
        let (bgl, _) = self.layout(kind);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, (b, size))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: 0,
                    size: size.and_then(wgpu::BufferSize::new),
                }),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &bgl,
            entries: &entries,
        })
    }

    /// Records one kernel (not SVD) writing `out`.
    fn encode_kernel(
        &self,
        enc: &mut wgpu::CommandEncoder,
        desc: &KernelDesc,
        out: &GpuBuffer,
        inputs: &[&GpuBuffer],
        device: &Device,
    ) -> Result<()> {
        let name = desc_name(desc);
        let n_out = numel(&desc.out_shape);
        let wg = desc.wg as usize;
        let (x, y, z) = match &desc.body {
            Body::Elementwise => self
                .grid(name, n_out.div_ceil(wg))
                .map(|(x, y)| (x, y, 1))?,
            Body::Reduce { in_shape, axes, .. } => {
                let count: usize = axes.iter().map(|&a| in_shape[a]).product();
                let groups = if count <= SMALL_REDUCE {
                    n_out.div_ceil(wg)
                } else {
                    n_out
                };
                self.grid(name, groups).map(|(x, y)| (x, y, 1))?
            }
            Body::Softmax { axis, shape, .. } => self
                .grid(name, n_out / shape[*axis].max(1))
                .map(|(x, y)| (x, y, 1))?,
            Body::MatMul { out_shape, .. } => {
                let r = out_shape.len();
                let batch: usize = out_shape[..r - 2].iter().product();
                let max = self.limits.max_compute_workgroups_per_dimension as usize;
                let (tm, tn) = codegen::matmul_tile(out_shape[r - 2], out_shape[r - 1]);
                let (gx, gy) = (
                    out_shape[r - 1].div_ceil(16 * tn),
                    out_shape[r - 2].div_ceil(16 * tm),
                );
                if gx > max || gy > max || batch > max {
                    return Err(Error::TooLarge {
                        op: "matmul",
                        message: format!("output {out_shape:?} exceeds the dispatch limit"),
                    });
                }
                (gx as u32, gy as u32, batch as u32)
            }
            Body::Svd { .. } => return Err(Error::device("internal: SVD goes through run_svd")),
        };
        if n_out == 0 || x == 0 || y == 0 || z == 0 {
            return Ok(());
        }
        let kind = LayoutKind::Slots(inputs.len());
        let pipeline = self.pipeline(desc, kind, device)?;
        let mut buffers: Vec<(&wgpu::Buffer, Option<u64>)> = vec![(out.raw(), None)];
        buffers.extend(inputs.iter().map(|b| (b.raw(), None)));
        let bg = self.bind_group(kind, &buffers);
        let mut pass = self.begin_pass(enc, name);
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(x, y, z);
        drop(pass);
        device.record(|s| s.dispatches += 1);
        Ok(())
    }

    /// A dense copy of a strided value (the gather kernel).
    fn densify(
        &self,
        enc: &mut wgpu::CommandEncoder,
        v: &Value,
        device: &Device,
    ) -> Result<Arc<GpuBuffer>> {
        let out = self.alloc("copy", v.layout.numel())?;
        let desc = KernelDesc {
            body: Body::Elementwise,
            prologue: Program::default(),
            epilogue: Program {
                insts: vec![Inst::Load {
                    slot: 0,
                    shape: v.layout.shape.clone(),
                }],
                result: 0,
            },
            slots: vec![v.layout.clone()],
            out_shape: v.layout.shape.clone(),
            wg: self.wg,
            stage: 0,
        };
        self.encode_kernel(enc, &desc, &out, &[gpu(v)?], device)?;
        Ok(out)
    }

    /// The thin SVD by one-sided Jacobi: init, sweeps of rotation rounds, normalize, complete,
    /// finalize. Submits `enc` (pending work) first, since sweeps end on a counter read natively.
    fn run_svd(
        &self,
        enc: wgpu::CommandEncoder,
        m: usize,
        n: usize,
        input: &Value,
        out: &GpuBuffer,
        device: &Device,
    ) -> Result<wgpu::CommandEncoder> {
        let (rows, cols) = if m >= n { (m, n) } else { (n, m) };
        if cols == 0 {
            self.queue.submit([enc.finish()]);
            return Ok(self.new_encoder());
        }
        let pairs = cols.div_ceil(2);
        let rounds = 2 * pairs - 1;
        let w = self.alloc("svd", rows * cols)?;
        let v = self.alloc("svd", cols * cols)?;
        let aux = self.alloc("svd", 3 * cols)?;
        let counter = self.alloc("svd", 4)?;
        let align = self.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let mut round_data = vec![0u8; rounds * align];
        for r in 0..rounds {
            round_data[r * align..r * align + 4].copy_from_slice(&(r as u32).to_le_bytes());
        }
        let round_buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("svd rounds"),
            size: round_data.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&round_buf, 0, &round_data);
        let stage_desc = |stage: u32| KernelDesc {
            body: Body::Svd { m, n },
            prologue: Program::default(),
            epilogue: Program::default(),
            slots: vec![input.layout.clone()],
            out_shape: vec![crate::ops::linalg::packed_len(m, n)],
            wg: 256,
            stage,
        };
        // Small matrices sweep in one workgroup (stage 5: one dispatch per sweep); larger ones
        // spread each round over one workgroup per column pair (stage 1: one dispatch per round).
        let one_group = cols <= SVD_ONE_GROUP_MAX_COLS && rows * cols <= SVD_ONE_GROUP_MAX_ELEMS;
        let rotate_stage = if one_group { 5 } else { 1 };
        let pipelines = [0, rotate_stage, 2, 3, 4]
            .into_iter()
            .map(|s| self.pipeline(&stage_desc(s), LayoutKind::Svd, device))
            .collect::<Result<Vec<_>>>()?;
        let (sweep_groups, sweep_offsets): (usize, Vec<u32>) = if one_group {
            (1, vec![0])
        } else {
            (pairs, (0..rounds).map(|r| (r * align) as u32).collect())
        };
        let bg = self.bind_group(
            LayoutKind::Svd,
            &[
                (out.raw(), None),
                (gpu(input)?.raw(), None),
                (w.raw(), None),
                (v.raw(), None),
                (aux.raw(), None),
                (counter.raw(), None),
                (&round_buf, Some(16)),
            ],
        );
        let dispatch = |enc: &mut wgpu::CommandEncoder,
                        stage: usize,
                        groups: usize,
                        offsets: &[u32]|
         -> Result<()> {
            let (x, y) = self.grid("svd", groups)?;
            let mut pass = self.begin_pass(enc, "svd");
            pass.set_pipeline(&pipelines[stage]);
            for &off in offsets {
                pass.set_bind_group(0, &bg, &[off]);
                pass.dispatch_workgroups(x, y, 1);
            }
            drop(pass);
            device.record(|s| s.dispatches += offsets.len() as u64);
            Ok(())
        };
        let mut enc = enc;
        dispatch(
            &mut enc,
            0,
            (rows * cols).max(cols * cols).div_ceil(256),
            &[0],
        )?;
        #[cfg(not(target_arch = "wasm32"))]
        {
            for _ in 0..SVD_MAX_SWEEPS {
                enc.clear_buffer(counter.raw(), 0, Some(16));
                dispatch(&mut enc, 1, sweep_groups, &sweep_offsets)?;
                let rotations = self.read_blocking::<u32>(enc, counter.raw(), 4)?[0];
                enc = self.new_encoder();
                self.check_errors()?;
                if rotations == 0 {
                    break;
                }
            }
        }
        #[cfg(target_arch = "wasm32")]
        for _ in 0..SVD_FIXED_SWEEPS {
            dispatch(&mut enc, 1, sweep_groups, &sweep_offsets)?;
        }
        dispatch(&mut enc, 2, cols, &[0])?;
        dispatch(&mut enc, 3, 1, &[0])?;
        dispatch(&mut enc, 4, cols, &[0])?;
        Ok(enc)
    }

    /// Begins a compute pass, with timestamps when this evaluation is being profiled.
    fn begin_pass<'e>(
        &self,
        enc: &'e mut wgpu::CommandEncoder,
        label: &str,
    ) -> wgpu::ComputePass<'e> {
        let mut timer = lock(&self.timer);
        let writes = timer
            .as_mut()
            .filter(|t| t.next + 2 <= 2 * TIMED_PASSES)
            .map(|t| {
                t.next += 2;
                (t.set.clone(), t.next - 2)
            });
        drop(timer);
        enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: writes
                .as_ref()
                .map(|(set, i)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(*i),
                    end_of_pass_write_index: Some(i + 1),
                }),
        })
    }

    /// Starts timing the passes of one evaluation (when profiling and the adapter can).
    fn start_timer(&self, device: &Device) {
        if self.timestamps && device.profiling() {
            let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("tmath timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * TIMED_PASSES,
            });
            *lock(&self.timer) = Some(PassTimer { set, next: 0 });
        }
    }

    /// Reads the timestamps of the evaluation just submitted and adds the kernel time.
    #[cfg(not(target_arch = "wasm32"))]
    fn finish_timer(&self, device: &Device) -> Result<()> {
        let Some(timer) = lock(&self.timer).take() else {
            return Ok(());
        };
        if timer.next == 0 {
            return Ok(());
        }
        let bytes = timer.next as u64 * 8;
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tmath timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = self.new_encoder();
        enc.resolve_query_set(&timer.set, 0..timer.next, &resolve, 0);
        let ticks = self.read_blocking::<u64>(enc, &resolve, bytes)?;
        let period = self.queue.get_timestamp_period() as f64;
        let ns: f64 = ticks
            .chunks(2)
            .map(|p| p[1].saturating_sub(p[0]) as f64 * period)
            .sum();
        device.record(|s| s.kernel_time += std::time::Duration::from_nanos(ns as u64));
        Ok(())
    }

    /// A buffer the host can map to read `bytes` back.
    fn staging(&self, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tmath read-back"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Waits for all submitted work.
    #[cfg(not(target_arch = "wasm32"))]
    fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::device(e.to_string()))?;
        Ok(())
    }

    /// Submits `enc` plus a copy of the first `bytes` of `src`, waits, and returns them
    /// (natively only: the host blocks, which browsers do not allow).
    #[cfg(not(target_arch = "wasm32"))]
    fn read_blocking<T: bytemuck::Pod>(
        &self,
        mut enc: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<T>> {
        let staging = self.staging(bytes);
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, Some(bytes));
        self.queue.submit([enc.finish()]);
        staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        self.wait()?;
        self.take_mapped(&staging)
    }

    /// The contents of a mapped staging buffer, which is unmapped afterwards.
    fn take_mapped<T: bytemuck::Pod>(&self, staging: &wgpu::Buffer) -> Result<Vec<T>> {
        let data = bytemuck::pod_collect_to_vec(
            &staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::device(e.to_string()))?[..],
        );
        staging.unmap();
        self.check_errors()?;
        Ok(data)
    }

    fn new_encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tmath"),
            })
    }

    /// The value of `t`, following view ops (permute, slice) down to a computed or cached value.
    fn resolve(t: &Tensor, live: &HashMap<u64, Value>) -> Result<Value> {
        let mut chain = vec![];
        let mut cur = t.clone();
        let mut value = loop {
            if let Some(v) = live
                .get(&cur.node().id)
                .cloned()
                .or_else(|| cur.node().cached())
            {
                break v;
            }
            match cur.node().op {
                Op::Permute(_) | Op::Slice { .. } => {
                    let next = cur.node().inputs[0].clone();
                    chain.push(cur);
                    cur = next;
                }
                _ => {
                    return Err(Error::device(format!(
                        "internal: {} has no value yet",
                        cur.node().op.name()
                    )))
                }
            }
        };
        for view in chain.iter().rev() {
            value = crate::ops::movement::view(view.node(), &[value]).ok_or_else(|| {
                Error::device(format!(
                    "internal: {} is not a view here",
                    view.node().op.name()
                ))
            })?;
        }
        Ok(value)
    }

    /// The node a view chain rests on (itself if it is not a view).
    fn base_id(t: &Tensor) -> u64 {
        let mut cur = t;
        while matches!(cur.node().op, Op::Permute(_) | Op::Slice { .. })
            && cur.node().cached().is_none()
        {
            cur = &cur.node().inputs[0];
        }
        cur.node().id
    }

    fn run_kernel(
        &self,
        enc: &mut Option<wgpu::CommandEncoder>,
        k: &Kernel,
        live: &HashMap<u64, Value>,
        device: &Device,
    ) -> Result<Value> {
        let root = &k.root;
        let slots = k
            .slots
            .iter()
            .map(|t| Self::resolve(t, live))
            .collect::<Result<Vec<_>>>()?;
        // A reshape that is a plain copy becomes a view when the strides allow.
        if matches!(root.node().op, Op::Reshape)
            && k.epilogue.is_copy()
            && matches!(k.body, Body::Elementwise)
        {
            if let Some(layout) = slots[0].layout.reshape(root.shape()) {
                return Ok(Value {
                    storage: slots[0].storage.clone(),
                    layout,
                });
            }
        }
        let desc = KernelDesc {
            body: k.body.clone(),
            prologue: k.prologue.clone(),
            epilogue: k.epilogue.clone(),
            slots: slots.iter().map(|v| v.layout.clone()).collect(),
            out_shape: root.shape().to_vec(),
            wg: self.wg,
            stage: 0,
        };
        let out = self.alloc(root.node().op.name(), root.numel())?;
        if let Body::Svd { m, n } = k.body {
            let e = enc.take().unwrap_or_else(|| self.new_encoder());
            *enc = Some(self.run_svd(e, m, n, &slots[0], &out, device)?);
        } else {
            let bufs = slots.iter().map(gpu).collect::<Result<Vec<_>>>()?;
            self.encode_kernel(
                enc.get_or_insert_with(|| self.new_encoder()),
                &desc,
                &out,
                &bufs,
                device,
            )?;
        }
        Ok(Value {
            storage: Storage::Wgpu(out),
            layout: Layout::contiguous(root.shape()),
        })
    }
}

/// A short name for messages and labels.
fn desc_name(d: &KernelDesc) -> &'static str {
    match &d.body {
        Body::Elementwise => "elementwise",
        Body::Reduce { .. } => "reduce",
        Body::Softmax { log: false, .. } => "softmax",
        Body::Softmax { log: true, .. } => "log_softmax",
        Body::MatMul { .. } => "matmul",
        Body::Svd { .. } => "svd",
    }
}

fn gpu(v: &Value) -> Result<&GpuBuffer> {
    match &v.storage {
        Storage::Wgpu(b) => Ok(b),
        #[allow(unreachable_patterns)]
        _ => Err(Error::DeviceMismatch { op: "wgpu" }),
    }
}

/// Monotonic time for compile measurements (`std::time::Instant` panics on wasm32).
fn web_time_now() -> std::time::Duration {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }
    // In pages, workers and Node: `performance.now()` (milliseconds, sub-millisecond resolution
    // where the browser allows it); zero where there is no such clock.
    #[cfg(target_arch = "wasm32")]
    {
        let ms = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
            .ok()
            .filter(|p| p.is_object())
            .and_then(|p| {
                let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
                if !now.is_function() {
                    return None;
                }
                js_sys::Function::from(now).call0(&p).ok()?.as_f64()
            })
            .unwrap_or(0.0);
        std::time::Duration::from_secs_f64(ms.max(0.0) / 1e3)
    }
}

/// A one-shot channel for the map callback (no executor dependency).
struct Oneshot<T> {
    state: OneshotState<T>,
}

impl<T> std::future::Future for Oneshot<T> {
    type Output = T;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        let mut s = lock(&self.state);
        match s.0.take() {
            Some(v) => std::task::Poll::Ready(v),
            None => {
                s.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

impl Backend for WgpuBackend {
    fn kind(&self) -> &'static str {
        "wgpu"
    }

    fn adapter_name(&self) -> String {
        self.info.name.clone()
    }

    fn max_tensor_bytes(&self) -> Option<u64> {
        Some(self.max_binding_bytes())
    }

    fn check_alloc(&self, op: &'static str, bytes: u64) -> Result<()> {
        crate::shape::check_bytes(
            op,
            bytes,
            self.max_binding_bytes(),
            "one buffer of this adapter",
        )
    }

    fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    fn limits(&self) -> Vec<(&'static str, u64)> {
        let l = &self.limits;
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
            ("timestamp_query", self.timestamps as u64),
        ]
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn copy_gbps(&self, bytes: usize) -> Result<Option<f64>> {
        let _submit = lock(&self.submit);
        let elems = bytes / 4;
        let (a, b) = (self.alloc("copy", elems)?, self.alloc("copy", elems)?);
        let copy = |n: usize| -> Result<()> {
            let mut enc = self.new_encoder();
            for _ in 0..n {
                enc.copy_buffer_to_buffer(a.raw(), 0, b.raw(), 0, Some(elems as u64 * 4));
            }
            self.queue.submit([enc.finish()]);
            self.wait()
        };
        copy(2)?;
        let t0 = std::time::Instant::now();
        copy(10)?;
        let secs = t0.elapsed().as_secs_f64();
        self.check_errors()?;
        Ok(Some(20.0 * (elems * 4) as f64 / secs / 1e9))
    }

    fn upload(&self, data: Vec<f32>) -> Result<Storage> {
        let _submit = lock(&self.submit);
        let buf = self.alloc("upload", data.len())?;
        if !data.is_empty() {
            self.queue
                .write_buffer(buf.raw(), 0, bytemuck::cast_slice(&data));
        }
        Ok(Storage::Wgpu(buf))
    }

    fn execute(&self, plan: &Plan, device: &Device) -> Result<Vec<Value>> {
        let _submit = lock(&self.submit);
        self.check_errors()?;
        let max_slots = (self.limits.max_storage_buffers_per_shader_stage as usize)
            .saturating_sub(1)
            .clamp(1, 15);
        let kernels = schedule(plan, device.jit() == JitMode::On, max_slots);
        // Reads left per computed value: kernel slots (through views) and outputs.
        let mut uses: HashMap<u64, usize> = HashMap::new();
        for k in &kernels {
            for s in &k.slots {
                *uses.entry(Self::base_id(s)).or_default() += 1;
            }
        }
        for t in &plan.outputs {
            *uses.entry(Self::base_id(t)).or_default() += 1;
        }
        let mut live: HashMap<u64, Value> = HashMap::new();
        let mut enc: Option<wgpu::CommandEncoder> = None;
        self.start_timer(device);
        for k in &kernels {
            let value = self.run_kernel(&mut enc, k, &live, device)?;
            if k.root.node().op.keeps_value() {
                k.root.node().set_cached(value.clone());
            }
            live.insert(k.root.node().id, value);
            for s in &k.slots {
                let id = Self::base_id(s);
                if let Some(n) = uses.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        live.remove(&id);
                    }
                }
            }
        }
        if let Some(enc) = enc {
            self.queue.submit([enc.finish()]);
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.finish_timer(device)?;
        self.check_errors()?;
        plan.outputs
            .iter()
            .map(|t| Self::resolve(t, &live))
            .collect()
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn synchronize(&self) -> Result<()> {
        self.wait()?;
        self.check_errors()
    }

    fn read<'a>(&'a self, value: &'a Value, device: &'a Device) -> BoxFuture<'a, Result<Vec<f32>>> {
        Box::pin(async move {
            let n = value.layout.numel();
            if n == 0 {
                return Ok(vec![]);
            }
            let bytes = n as u64 * 4;
            let staging = self.staging(bytes);
            {
                let _submit = lock(&self.submit);
                let mut enc = self.new_encoder();
                let (src, offset) = if value.layout.is_contiguous() {
                    (gpu(value)?.raw().clone(), value.layout.offset as u64 * 4)
                } else {
                    (self.densify(&mut enc, value, device)?.raw().clone(), 0)
                };
                enc.copy_buffer_to_buffer(&src, offset, &staging, 0, Some(bytes));
                self.queue.submit([enc.finish()]);
            }
            let state: OneshotState<std::result::Result<(), wgpu::BufferAsyncError>> =
                Arc::default();
            let tx = state.clone();
            staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let mut s = lock(&tx);
                s.0 = Some(r);
                if let Some(w) = s.1.take() {
                    w.wake();
                }
            });
            #[cfg(not(target_arch = "wasm32"))]
            self.wait()?;
            Oneshot { state }
                .await
                .map_err(|e| Error::device(format!("reading back: {e}")))?;
            self.take_mapped(&staging)
        })
    }
}
