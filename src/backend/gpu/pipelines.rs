//! Compiled pipelines: the bind layouts, the in-memory cache (least recently used evicted first,
//! bounded by count and by estimated bytes), and the driver's cache on disk.
//!
//! Keys: a specialized kernel is cached by its whole [`KernelDesc`]; a generic one by its WGSL
//! text (which depends only on the kernel's structure), so every shape of a structure shares
//! one pipeline. A small memo maps a description to its generic text key and metadata, so a
//! repeated shape does not render again.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use super::context::Context;
use super::lock;
use crate::codegen::{self, Bindings, KernelDesc, Variant};
use crate::config::Config;
use crate::error::{Error, Result};

/// Pipelines kept before the least recently used is dropped.
const CACHE_CAPACITY: usize = 1024;
/// Default byte budget of the pipeline cache (`TMATH_PIPELINE_CACHE_MB` overrides it).
const CACHE_BUDGET_MB: u64 = 256;
/// Descriptions remembered with their generic key and metadata (cleared when full).
const MEMO_CAPACITY: usize = 4096;

/// A generic kernel's WGSL, hashed once.
#[derive(Clone)]
struct TextKey {
    hash: u64,
    text: Arc<str>,
}

impl TextKey {
    fn new(text: String) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        TextKey {
            hash: h.finish(),
            text: text.into(),
        }
    }
}

impl Hash for TextKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for TextKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for TextKey {}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Specialized(KernelDesc),
    Generic(TextKey),
    Quick(KernelDesc),
}

struct Entry {
    pipeline: Arc<wgpu::ComputePipeline>,
    last_used: u64,
    bytes: u64,
}

/// The in-memory cache.
struct Cache {
    entries: HashMap<Key, Entry>,
    /// Description → generic key and the uniform holding its metadata (made once per
    /// description, not per dispatch).
    memo: HashMap<KernelDesc, (TextKey, Arc<wgpu::Buffer>)>,
    /// Adaptive mode: how often each description was asked for (hot at 2), and which have a
    /// specialized compile requested.
    seen: HashMap<KernelDesc, u32>,
    requested: std::collections::HashSet<KernelDesc>,
    /// Descriptions whose specialized pipeline is in `entries` (looked up without a clone).
    ready: std::collections::HashSet<KernelDesc>,
    tick: u64,
    bytes: u64,
    budget: u64,
    /// The hot kernels on disk (natively, unless disabled).
    #[cfg(not(target_arch = "wasm32"))]
    hot: Option<super::hot::HotIndex>,
}

impl Cache {
    /// Moves the pipelines compiled from the hot index for any of `descs` into the cache
    /// (ready as specialized); a no-op once none wait.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    fn adopt_prewarmed(&mut self, descs: &[KernelDesc]) {
        #[cfg(not(target_arch = "wasm32"))]
        for d in descs {
            let Some(hot) = self.hot.as_mut() else { return };
            if hot.prewarmed.is_empty() {
                return;
            }
            if self.ready.contains(d) {
                continue;
            }
            if let Some((p, bytes)) = hot.prewarmed.remove(&super::hot::fingerprint(d)) {
                self.insert(Key::Specialized(d.clone()), p, bytes);
            }
        }
    }

    fn get(&mut self, key: &Key) -> Option<Arc<wgpu::ComputePipeline>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.last_used = tick;
            e.pipeline.clone()
        })
    }

    fn insert(&mut self, key: Key, pipeline: Arc<wgpu::ComputePipeline>, bytes: u64) {
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
            if let Key::Specialized(d) = &old {
                self.ready.remove(d);
                self.requested.remove(d);
            }
        }
        self.tick += 1;
        self.bytes += bytes;
        if let Key::Specialized(d) = &key {
            self.ready.insert(d.clone());
        }
        self.entries.insert(
            key,
            Entry {
                pipeline,
                last_used: self.tick,
                bytes,
            },
        );
    }
}

/// The estimated memory of one pipeline compiled from `wgsl_len` bytes of WGSL (driver code
/// and metadata: measured about 1.4 MiB a pipeline on lavapipe, whose LLVM JIT keeps machine
/// code and IR per pipeline).
fn cost(wgsl_len: usize, software: bool) -> u64 {
    if software {
        (1 << 20) + 64 * wgsl_len as u64
    } else {
        (64 << 10) + 16 * wgsl_len as u64
    }
}

/// A bind group layout and the pipeline layout made of it.
pub(crate) type Layouts = (Arc<wgpu::BindGroupLayout>, Arc<wgpu::PipelineLayout>);

/// A pipeline ready to dispatch, with the uniform of metadata its generic kernel reads
/// (`None` for a specialized kernel).
pub(crate) struct Compiled {
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub meta: Option<Arc<wgpu::Buffer>>,
}

/// The uniform holding a generic kernel's metadata words (padded to whole `vec4<u32>`s).
fn meta_uniform(ctx: &Context, meta: &[u32]) -> Arc<wgpu::Buffer> {
    use wgpu::util::DeviceExt;
    let mut words = meta.to_vec();
    words.resize(meta.len().div_ceil(4).max(1) * 4, 0);
    Arc::new(
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("tmath kernel sizes"),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            }),
    )
}

/// Kernels with at least this many output elements are hot at once in the adaptive mode (their
/// specialized compile pays for itself within one evaluation).
const HOT_ELEMENTS: usize = 1 << 22;

pub(crate) struct Pipelines {
    cache: Mutex<Cache>,
    layouts: Mutex<HashMap<(Bindings, bool), Layouts>>,
    /// The driver's pipeline cache, kept on disk between processes (natively, where supported).
    #[cfg(not(target_arch = "wasm32"))]
    disk: Option<DiskCache>,
    /// The matmul autotuner's choices.
    pub tuner: super::tune::Tuner,
}

impl Pipelines {
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    pub fn new(ctx: &Context) -> Self {
        let budget = std::env::var("TMATH_PIPELINE_CACHE_MB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(CACHE_BUDGET_MB)
            << 20;
        Pipelines {
            cache: Mutex::new(Cache {
                entries: HashMap::new(),
                memo: HashMap::new(),
                seen: HashMap::new(),
                requested: Default::default(),
                ready: Default::default(),
                tick: 0,
                bytes: 0,
                budget,
                #[cfg(not(target_arch = "wasm32"))]
                hot: (std::env::var("TMATH_PIPELINE_CACHE").map_or(true, |v| v != "off")
                    && std::env::var("TMATH_HOT_KERNELS").map_or(true, |v| v != "off"))
                .then(cache_dir)
                .flatten()
                .map(|dir| super::hot::HotIndex::open(dir, &ctx.info)),
            }),
            layouts: Mutex::default(),
            #[cfg(not(target_arch = "wasm32"))]
            disk: if ctx.pipeline_cache {
                DiskCache::open(&ctx.device, &ctx.info)
            } else {
                None
            },
            // Natively the tuned tiles live beside the hot kernels, under the same switches.
            #[cfg(not(target_arch = "wasm32"))]
            tuner: super::tune::Tuner::open(
                (std::env::var("TMATH_PIPELINE_CACHE").map_or(true, |v| v != "off")
                    && std::env::var("TMATH_HOT_KERNELS").map_or(true, |v| v != "off"))
                .then(cache_dir)
                .flatten()
                .map(|dir| dir.join(format!("tune-{}", super::hot::adapter_file_name(&ctx.info)))),
            ),
            #[cfg(target_arch = "wasm32")]
            tuner: super::tune::Tuner::open(None),
        }
    }

    /// The bind group layout (and pipeline layout) of `bindings`, with the metadata uniform
    /// of a generic kernel when `meta`.
    pub fn layout(&self, ctx: &Context, bindings: Bindings, meta: bool) -> Layouts {
        let mut layouts = lock(&self.layouts);
        layouts
            .entry((bindings, meta))
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
                let uniform = |binding: u32, dynamic: bool| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: dynamic,
                        // The round uniform is 16 bytes; the metadata's size varies.
                        min_binding_size: if dynamic {
                            wgpu::BufferSize::new(16)
                        } else {
                            None
                        },
                    },
                    count: None,
                };
                let mut entries: Vec<wgpu::BindGroupLayoutEntry> = match bindings {
                    Bindings::Slots(n) => (0..=n as u32).map(|b| storage(b, b > 0)).collect(),
                    Bindings::Svd => {
                        let mut e: Vec<_> = (0..6u32).map(|b| storage(b, b == 1)).collect();
                        e.push(uniform(6, true));
                        e
                    }
                };
                if meta {
                    entries.push(uniform(bindings.meta_binding(), false));
                }
                let bgl = ctx
                    .device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: None,
                        entries: &entries,
                    });
                let pl = ctx
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

    /// The pipeline of a kernel in `variant`: from the cache (JIT on), or compiled now. With
    /// the JIT off nothing is cached and every call compiles (the old engine's behaviour).
    pub fn get(
        &self,
        ctx: &Context,
        desc: &KernelDesc,
        variant: Variant,
        cfg: &Config,
    ) -> Result<Compiled> {
        let cached = cfg.jit().caches();
        let bindings = desc.launch().bindings;
        let generic = variant == Variant::Generic;
        // Find the key (rendering a generic kernel the first time its description is seen).
        let (key, meta, mut source) = if variant == Variant::Quick {
            (Key::Quick(desc.clone()), None, None)
        } else if !generic {
            (Key::Specialized(desc.clone()), None, None)
        } else {
            let memo = lock(&self.cache).memo.get(desc).cloned();
            match memo {
                Some((text, meta)) => (Key::Generic(text), Some(meta), None),
                None => {
                    let src = codegen::render(desc, Variant::Generic);
                    let text = TextKey::new(src.text);
                    let meta = meta_uniform(ctx, &src.meta);
                    if cached {
                        let mut cache = lock(&self.cache);
                        if cache.memo.len() >= MEMO_CAPACITY {
                            cache.memo.clear();
                        }
                        cache
                            .memo
                            .insert(desc.clone(), (text.clone(), meta.clone()));
                    }
                    let source = text.text.to_string();
                    (Key::Generic(text), Some(meta), Some(source))
                }
            }
        };
        if cached {
            let mut cache = lock(&self.cache);
            if !generic {
                cache.adopt_prewarmed(std::slice::from_ref(desc));
            }
            if let Some(pipeline) = cache.get(&key) {
                cfg.record(|s| s.cache_hits += 1);
                return Ok(Compiled { pipeline, meta });
            }
        }
        let source = match source.take() {
            Some(s) => s,
            None => match &key {
                Key::Generic(t) => t.text.to_string(),
                Key::Specialized(_) => codegen::render(desc, Variant::Specialized).text,
                Key::Quick(_) => codegen::render(desc, Variant::Quick).text,
            },
        };
        let (pipeline, bytes, dt) =
            self.compile(ctx, source, bindings, generic, desc.trusted(variant));
        cfg.record(|s| {
            s.compiles += 1;
            s.compile_time += dt;
        });
        ctx.check_errors()
            .map_err(|e| Error::device(format!("compiling a {:?} kernel: {e}", desc.name())))?;
        if cached {
            lock(&self.cache).insert(key, pipeline.clone(), bytes);
        }
        Ok(Compiled { pipeline, meta })
    }

    /// Creates a pipeline from WGSL: the pipeline, its estimated bytes and the time it took.
    fn compile(
        &self,
        ctx: &Context,
        source: String,
        bindings: Bindings,
        generic: bool,
        trusted: bool,
    ) -> (Arc<wgpu::ComputePipeline>, u64, std::time::Duration) {
        codegen::log_compiled(&source);
        let bytes = cost(source.len(), ctx.is_software());
        let (_, pl) = self.layout(ctx, bindings, generic);
        let t0 = web_time_now();
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some("tmath kernel"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let module = if trusted {
            // SAFETY: `trusted` kernels (`KernelDesc::trusted`) are the matmul template, which
            // indexes its workgroup arrays only with constants and thread ids inside the
            // arrays' fixed sizes, guards every global read and write by the operands' shapes,
            // divides only by constants and by dimensions of a non-empty result (an empty one
            // dispatches no workgroup), and runs loops bounded by their sizes
            // (`codegen/matmul.wgsl`; its lane form clamps every read into the operands'
            // rows and `vec4` columns and masks its stores; its quick form guards every read
            // by the shapes, indexes its 256-float tiles by thread ids below 16 and stores
            // only inside the output); and four-wide elementwise
            // kernels, straight-line code whose reads stay inside the inputs' layouts and whose
            // writes inside the output's `vec4` count (`codegen/elementwise.rs`). Dropping naga's injected checks (about
            // 25–45% of the matmul's time on the H200) is then sound; buffer accesses stay
            // under the driver's own robust buffer access where it has one.
            unsafe {
                ctx.device.create_shader_module_trusted(
                    desc,
                    wgpu::ShaderRuntimeChecks {
                        bounds_checks: false,
                        force_loop_bounding: false,
                        int_div_checks: false,
                        ..wgpu::ShaderRuntimeChecks::checked()
                    },
                )
            }
        } else {
            ctx.device.create_shader_module(desc)
        };
        let pipeline = Arc::new(ctx.device.create_compute_pipeline(
            &wgpu::ComputePipelineDescriptor {
                label: Some("tmath kernel"),
                layout: Some(&pl),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: self.disk_cache(),
            },
        ));
        (pipeline, bytes, web_time_now().saturating_sub(t0))
    }

    /// A pipeline for a measurement kernel (the benchmark's ceilings): `n` inputs, not cached.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn measure_pipeline(
        &self,
        ctx: &Context,
        source: String,
        n: usize,
    ) -> Arc<wgpu::ComputePipeline> {
        self.compile(ctx, source, Bindings::Slots(n), false, false)
            .0
    }

    /// With the JIT on, the variant of a kernel that has a quick form ([`Variant::Quick`]):
    /// specialized once its pipeline is cached, or when the on-disk index knows it from an
    /// earlier process (its compile is then likely a hit in the driver's cache); otherwise
    /// quick, and `true` the first time, when its specialized compile is to be requested.
    pub fn first_runs(&self, desc: &KernelDesc) -> (Variant, bool) {
        let mut cache = lock(&self.cache);
        cache.adopt_prewarmed(std::slice::from_ref(desc));
        if cache.ready.contains(desc) {
            return (Variant::Specialized, false);
        }
        if cache.requested.contains(desc) {
            return (Variant::Quick, false);
        }
        // First sight only (the fingerprint formats the whole description).
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(hot) = &cache.hot {
            if !hot.known_hot.is_empty() && hot.known_hot.contains(&super::hot::fingerprint(desc)) {
                return (Variant::Specialized, false);
            }
        }
        cache.requested.insert(desc.clone());
        (Variant::Quick, true)
    }

    /// The adaptive mode's choice for kernels that run together (one kernel, or the stages of
    /// an SVD, which share their bindings): specialized when every one has its specialized
    /// pipeline cached, else generic. Descriptions seen again (or large) are hot; the hot ones
    /// without a specialized pipeline are returned, for compiling off the caller's path.
    pub fn choose(&self, descs: &[KernelDesc]) -> (Variant, Vec<KernelDesc>) {
        let mut cache = lock(&self.cache);
        cache.adopt_prewarmed(descs);
        if descs.iter().all(|d| cache.ready.contains(d)) {
            return (Variant::Specialized, vec![]);
        }
        if cache.seen.len() >= MEMO_CAPACITY {
            cache.seen.clear();
        }
        let mut hot = vec![];
        for d in descs {
            let n = match cache.seen.get_mut(d) {
                Some(n) => {
                    *n = n.saturating_add(1);
                    *n
                }
                None => {
                    cache.seen.insert(d.clone(), 1);
                    // A kernel that was hot in an earlier process is hot on first sight.
                    #[cfg(not(target_arch = "wasm32"))]
                    if let Some(hot) = &cache.hot {
                        if !hot.known_hot.is_empty()
                            && hot.known_hot.contains(&super::hot::fingerprint(d))
                        {
                            cache.seen.insert(d.clone(), 2);
                        }
                    }
                    cache.seen[d]
                }
            };
            let is_hot = n >= 2 || crate::shape::numel(&d.out_shape) >= HOT_ELEMENTS;
            if is_hot && !cache.ready.contains(d) && !cache.requested.contains(d) {
                cache.requested.insert(d.clone());
                hot.push(d.clone());
            }
        }
        (Variant::Generic, hot)
    }

    /// Compiles the specialized pipeline of `desc` into the cache (the adaptive mode's
    /// background work), counting it in `stats`. A compile that fails is dropped: the generic
    /// pipeline keeps serving the kernel.
    pub async fn compile_specialized(
        &self,
        ctx: &Context,
        desc: &KernelDesc,
        stats: &Mutex<crate::config::Stats>,
    ) {
        let key = Key::Specialized(desc.clone());
        {
            let mut cache = lock(&self.cache);
            cache.adopt_prewarmed(std::slice::from_ref(desc));
            if cache.entries.contains_key(&key) {
                return;
            }
        }
        let compiled = self.compile_desc_background(ctx, desc, stats).await;
        let mut cache = lock(&self.cache);
        #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
        if let Some((pipeline, bytes, text)) = compiled {
            cache.insert(key, pipeline, bytes);
            #[cfg(not(target_arch = "wasm32"))]
            if let Some(hot) = cache.hot.as_mut() {
                hot.record(super::hot::HotKernel {
                    fingerprint: super::hot::fingerprint(desc),
                    bindings: desc.launch().bindings,
                    trusted: desc.trusted(Variant::Specialized),
                    text,
                });
            }
        }
        cache.requested.remove(desc);
    }

    /// A candidate of the autotuner: the specialized pipeline of `desc` (from the cache, or
    /// compiled into it and counted in `stats`); `None` when its compile fails.
    pub async fn compile_candidate(
        &self,
        ctx: &Context,
        desc: &KernelDesc,
        stats: &Mutex<crate::config::Stats>,
    ) -> Option<Arc<wgpu::ComputePipeline>> {
        let key = Key::Specialized(desc.clone());
        if let Some(p) = lock(&self.cache).get(&key) {
            return Some(p);
        }
        let (pipeline, bytes, _) = self.compile_desc_background(ctx, desc, stats).await?;
        lock(&self.cache).insert(key, pipeline.clone(), bytes);
        Some(pipeline)
    }

    /// [`Self::compile_background`] of `desc`'s specialized kernel, with its WGSL.
    async fn compile_desc_background(
        &self,
        ctx: &Context,
        desc: &KernelDesc,
        stats: &Mutex<crate::config::Stats>,
    ) -> Option<(Arc<wgpu::ComputePipeline>, u64, String)> {
        let source = codegen::render(desc, Variant::Specialized).text;
        let bindings = desc.launch().bindings;
        let trusted = desc.trusted(Variant::Specialized);
        let (p, bytes) = self
            .compile_background(ctx, source.clone(), bindings, trusted, stats)
            .await?;
        Some((p, bytes, source))
    }

    /// Compiles a specialized kernel off the caller's path, counted in `stats` as a background
    /// compile: the pipeline and its estimated bytes, or `None` when validation failed.
    async fn compile_background(
        &self,
        ctx: &Context,
        source: String,
        bindings: Bindings,
        trusted: bool,
        stats: &Mutex<crate::config::Stats>,
    ) -> Option<(Arc<wgpu::ComputePipeline>, u64)> {
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let (pipeline, bytes, dt) = self.compile(ctx, source, bindings, false, trusted);
        let failed = scope.pop().await.is_some();
        let mut s = lock(stats);
        s.compiles += 1;
        s.background_compiles += 1;
        s.compile_time += dt;
        (!failed).then_some((pipeline, bytes))
    }

    /// Drops the specialized pipeline of `desc` from the cache (an autotuner's loser).
    pub fn forget(&self, desc: &KernelDesc) {
        let mut cache = lock(&self.cache);
        if let Some(e) = cache.entries.remove(&Key::Specialized(desc.clone())) {
            cache.bytes -= e.bytes;
        }
        cache.ready.remove(desc);
    }

    /// The hot index's kernels still to compile (once per process; natively).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn take_prewarm(&self) -> Vec<super::hot::HotKernel> {
        lock(&self.cache)
            .hot
            .as_mut()
            .map(|h| h.take_pending())
            .unwrap_or_default()
    }

    /// Compiles a kernel of the hot index (background work, counted in `stats`), kept until its
    /// description is first asked for. A compile that fails is dropped.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn compile_prewarm(
        &self,
        ctx: &Context,
        k: &super::hot::HotKernel,
        stats: &Mutex<crate::config::Stats>,
    ) {
        let compiled = self
            .compile_background(ctx, k.text.clone(), k.bindings, k.trusted, stats)
            .await;
        if let Some(p) = compiled {
            if let Some(hot) = lock(&self.cache).hot.as_mut() {
                hot.prewarmed.insert(k.fingerprint, p);
            }
        }
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

    /// Writes the disk cache if pipelines were added.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self) {
        if let Some(d) = &self.disk {
            d.save();
        }
        if let Some(hot) = lock(&self.cache).hot.as_mut() {
            hot.save();
        }
        self.tuner.save();
    }
}

/// Where the caches on disk live: `$TMATH_CACHE_DIR`, else `$XDG_CACHE_HOME/tmath`, else
/// `~/.cache/tmath`.
#[cfg(not(target_arch = "wasm32"))]
fn cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("TMATH_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache"))
                })
                .map(|d| d.join("tmath"))
        })
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
        let path = cache_dir()?.join(key);
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
        if let Some(data) = self.cache.get_data() {
            write_atomically(&self.path, &data);
        }
    }
}

/// Writes `data` to `path` through a temporary file and a rename (a reader never sees half a
/// file), making the folder if needed; on failure nothing is left behind.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn write_atomically(path: &std::path::Path, data: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let ok = path
        .parent()
        .is_some_and(|d| std::fs::create_dir_all(d).is_ok())
        && std::fs::write(&tmp, data).is_ok()
        && std::fs::rename(&tmp, path).is_ok();
    if !ok {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Monotonic time for compile measurements (`std::time::Instant` panics on wasm32).
pub(crate) fn web_time_now() -> std::time::Duration {
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
