//! Running a plan: schedule it into kernels, resolve each kernel's inputs (through views) to
//! buffers, take each pipeline from the cache, and record every dispatch into one command
//! buffer. Intermediate buffers go back to the pool after their last reader is recorded.

use std::collections::HashMap;
use std::sync::Arc;

use super::{gpu, lock, GpuBuffer, WgpuBackend};
use crate::backend::Backend;
use crate::codegen::{Bindings, KernelDesc, Variant};
use crate::config::{Config, JitMode};
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::program::{Program as Lowered, Slot, Value};
use crate::schedule::{schedule, Body, Inst, Kernel, Program};
use crate::shape::{numel, Layout};

// The most work (elements, or multiply-adds for a matmul) the CPU route takes on, whatever the
// cost model says.
use crate::backend::CPU_ROUTE_MAX_WORK;

/// Bind groups kept for reuse (`WgpuBackend::bind_groups`).
const BIND_GROUPS_KEPT: usize = 512;

impl WgpuBackend {
    /// Specialized kernels, unless this device asked for generic ones (with the JIT on; the
    /// JIT off always compiles specialized kernels, as the old engine did).
    fn fixed_variant(cfg: &Config) -> Variant {
        if cfg.jit() == JitMode::On && cfg.generic_kernels() {
            Variant::Generic
        } else {
            Variant::Specialized
        }
    }

    /// The variant kernels that run together (one kernel, or an SVD's stages) use: with
    /// [`JitMode::Adaptive`] specialized once all are compiled, else generic, queueing the
    /// specialized compiles of hot ones in the background; otherwise fixed by the device.
    pub(super) fn variant(&self, descs: &[KernelDesc], cfg: &Config) -> Variant {
        if cfg.jit() != JitMode::Adaptive {
            let fixed = Self::fixed_variant(cfg);
            // JIT on: a matmul's first runs take its quick form while the specialized
            // pipeline compiles in the background (`debug::set_quick_first`).
            if let [d] = descs {
                if fixed == Variant::Specialized
                    && cfg.jit() == JitMode::On
                    && d.has_quick()
                    && cfg.quick_first(self.ctx.is_software())
                {
                    let (variant, request) = self.pipelines.first_runs(d);
                    if request {
                        self.compiler.request(
                            &self.ctx,
                            &self.pipelines,
                            vec![d.clone()],
                            cfg.stats_handle(),
                        );
                    }
                    return variant;
                }
            }
            return fixed;
        }
        // The first adaptive evaluation starts compiling the newest kernels of the hot index
        // (kernels that were hot in earlier processes) in the background.
        #[cfg(not(target_arch = "wasm32"))]
        self.compiler.prewarm(
            &self.ctx,
            &self.pipelines,
            self.pipelines.take_prewarm(),
            cfg.stats_handle(),
        );
        let (variant, hot) = self.pipelines.choose(descs);
        self.compiler
            .request(&self.ctx, &self.pipelines, hot, cfg.stats_handle());
        variant
    }

    /// Counts `n` dispatches of kernels in `variant`.
    pub(super) fn count_dispatches(cfg: &Config, variant: Variant, n: u64) {
        let adaptive = cfg.jit() == JitMode::Adaptive;
        cfg.record(|s| {
            s.dispatches += n;
            match variant {
                Variant::Generic => s.generic_dispatches += n,
                Variant::Specialized if adaptive => s.specialized_dispatches += n,
                Variant::Specialized => {}
                Variant::Quick => s.quick_dispatches += n,
            }
        });
    }

    pub(super) fn run_program(&self, p: &Lowered, cfg: &Config) -> Result<Vec<Value>> {
        let _submit = lock(&self.submit);
        self.ctx.check_errors()?;
        if cfg.jit() == JitMode::Adaptive {
            if let Some(values) = self.cpu_route(p, cfg)? {
                return Ok(values);
            }
        }
        let kernels = schedule(p, cfg.jit().caches(), self.ctx.max_slots());
        // Reads left per computed value: kernel bindings (through views) and returned slots.
        let mut uses: HashMap<Slot, usize> = HashMap::new();
        for k in &kernels {
            for &s in &k.slots {
                *uses.entry(p.base(s)).or_default() += 1;
            }
        }
        for &r in &p.returned {
            *uses.entry(p.base(r)).or_default() += 1;
        }
        let mut live: HashMap<Slot, Value> = p.inputs.iter().cloned().enumerate().collect();
        let mut enc: Option<wgpu::CommandEncoder> = None;
        self.profiler.start(&self.ctx, cfg);
        for k in &kernels {
            let value = self.run_kernel(&mut enc, p, k, &live, cfg)?;
            live.insert(k.root, value);
            for &s in &k.slots {
                let b = p.base(s);
                if let Some(n) = uses.get_mut(&b) {
                    *n -= 1;
                    if *n == 0 {
                        live.remove(&b);
                    }
                }
            }
        }
        if let Some(enc) = enc {
            self.ctx.queue.submit([enc.finish()]);
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.profiler.finish(&self.ctx, cfg)?;
        self.ctx.check_errors()?;
        p.returned
            .iter()
            .map(|&r| p.resolve(r, |s| live.get(&s).cloned()))
            .collect()
    }

    /// The adaptive mode's route for tiny work: when every input keeps a host copy and the
    /// program's work, at the CPU's measured speed, ends before a GPU round trip would, it runs
    /// on the CPU kernels; the results are uploaded (keeping host copies, so reading them needs
    /// no GPU trip either). `None`: the program goes to the GPU.
    fn cpu_route(&self, p: &Lowered, cfg: &Config) -> Result<Option<Vec<Value>>> {
        let mut inputs = Vec::with_capacity(p.inputs.len());
        for v in &p.inputs {
            match gpu(v)?.host() {
                Some(h) => inputs.push(Value {
                    storage: h.clone(),
                    layout: v.layout.clone(),
                }),
                None => return Ok(None),
            }
        }
        let mut work = 0usize;
        for s in &p.steps {
            work = work.saturating_add(match &s.op {
                op if op.is_view() => 0,
                Op::MatMul => {
                    let k = p.shape(s.args[0]).last().copied().unwrap_or(1);
                    numel(&s.shape).saturating_mul(k)
                }
                Op::Svd { m, n } => m.saturating_mul(*n).saturating_mul((*m).min(*n)),
                _ => numel(&s.shape),
            });
        }
        let cost = self.ctx.cost;
        if work > CPU_ROUTE_MAX_WORK
            || work as f64 * cost.cpu_ns_per_element >= cost.round_trip_us * 1e3
        {
            return Ok(None);
        }
        let host = Lowered::new(inputs, p.steps.clone(), p.returned.clone());
        let ops = p.steps.iter().filter(|s| !s.op.is_view()).count() as u64;
        let values = crate::backend::cpu::CpuBackend::new().execute(&host, cfg)?;
        cfg.record(|s| s.cpu_dispatches += ops);
        p.returned
            .iter()
            .zip(values)
            .map(|(&r, v)| {
                if r < p.inputs.len() {
                    return Ok(p.inputs[r].clone());
                }
                let data = crate::backend::cpu::host(&v)
                    .map(|(d, l)| crate::backend::cpu::kernels::gather(d, l))?;
                Ok(Value {
                    layout: Layout::contiguous(p.shape(r)),
                    storage: self.upload_locked(data)?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn run_kernel(
        &self,
        enc: &mut Option<wgpu::CommandEncoder>,
        p: &Lowered,
        k: &Kernel,
        live: &HashMap<Slot, Value>,
        cfg: &Config,
    ) -> Result<Value> {
        let step = p
            .step(k.root)
            .ok_or_else(|| Error::device("internal: a kernel root is an input"))?;
        let shape = &step.shape;
        let slots = k
            .slots
            .iter()
            .map(|&s| p.resolve(s, |x| live.get(&x).cloned()))
            .collect::<Result<Vec<_>>>()?;
        // A reshape that is a plain copy becomes a view when the strides allow.
        if matches!(step.op, Op::Reshape)
            && k.epilogue.is_copy()
            && matches!(k.body, Body::Elementwise)
        {
            if let Some(v) = slots[0].view(&step.op, shape) {
                return Ok(v);
            }
        }
        let mut desc = KernelDesc {
            body: k.body.clone(),
            prologue: k.prologue.clone(),
            epilogue: k.epilogue.clone(),
            slots: slots.iter().map(|v| v.layout.clone()).collect(),
            out_shape: shape.clone(),
            wg: self.ctx.wg_for(&k.body),
            stage: 0,
            cpu_lanes: self.ctx.cpu_lanes,
            software: self.ctx.is_software(),
            tile: None,
        };
        let out = self.alloc(step.op.name(), numel(shape))?;
        if let Body::Svd { m, n } = k.body {
            let e = enc.take().unwrap_or_else(|| self.ctx.new_encoder());
            *enc = Some(self.run_svd(e, m, n, &slots[0], &out, cfg)?);
        } else if let Some((mut part, mut sum)) = desc
            .split_k()
            .filter(|(_, sum)| sum.slots.len() <= self.ctx.max_slots())
        {
            // Split along k: the partial products into a scratch buffer, then their sum with
            // the epilogue (the scratch bound as the sum's last input).
            part.tile = self.matmul_tile(&part, cfg);
            sum.wg = self.ctx.wg_for(&sum.body);
            let scratch = self.alloc(step.op.name(), numel(&part.out_shape))?;
            let mut bufs = slots.iter().map(gpu).collect::<Result<Vec<_>>>()?;
            let e = enc.get_or_insert_with(|| self.ctx.new_encoder());
            self.encode_kernel(e, &part, &scratch, &bufs, cfg)?;
            bufs.push(&scratch);
            self.encode_kernel(e, &sum, &out, &bufs, cfg)?;
        } else {
            desc.tile = self.matmul_tile(&desc, cfg);
            let bufs = slots.iter().map(gpu).collect::<Result<Vec<_>>>()?;
            self.encode_kernel(
                enc.get_or_insert_with(|| self.ctx.new_encoder()),
                &desc,
                &out,
                &bufs,
                cfg,
            )?;
        }
        Ok(Value {
            storage: out,
            layout: Layout::contiguous(shape),
        })
    }

    /// The register tile of a matmul: the one a test forced, else the autotuner's choice for
    /// its shape; `None` (the size rule) until that is measured — the first sight of a shape
    /// worth tuning queues its measurement (with the JIT caching).
    fn matmul_tile(&self, desc: &KernelDesc, cfg: &Config) -> Option<(u8, u8)> {
        desc.matmul_tile()?;
        if let Some(t) = cfg.matmul_tile() {
            return Some(t);
        }
        {
            let shape = desc.matmul_shape()?;
            if let Some(t) = self.pipelines.tuner.choice(&shape) {
                return Some(t);
            }
            let work = shape[..4].iter().fold(1usize, |w, &d| w.saturating_mul(d));
            if cfg.jit().caches()
                && cfg.autotune(self.ctx.is_software())
                && work >= super::tune::MIN_WORK
                && self.pipelines.tuner.claim(&shape)
            {
                cfg.record(|s| s.tunes_requested += 1);
                self.compiler
                    .tune(&self.ctx, &self.pipelines, desc.clone(), cfg.stats_handle());
            }
        }
        None
    }

    /// A storage buffer of at least `elems` f32, checked against the adapter first.
    pub(super) fn alloc(&self, op: &'static str, elems: usize) -> Result<Arc<GpuBuffer>> {
        self.check_alloc(op, (elems.max(4) as u64) * 4)?;
        Ok(self.buffers.alloc(&self.ctx, elems))
    }

    /// A bind group of `buffers` (in binding order) plus the metadata uniform, if any.
    pub(super) fn bind_group(
        &self,
        bindings: Bindings,
        buffers: &[(&wgpu::Buffer, Option<u64>)],
        meta: Option<&wgpu::Buffer>,
    ) -> wgpu::BindGroup {
        let (bgl, _) = self.pipelines.layout(&self.ctx, bindings, meta.is_some());
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
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
        if let Some(m) = meta {
            entries.push(wgpu::BindGroupEntry {
                binding: bindings.meta_binding(),
                resource: m.as_entire_binding(),
            });
        }
        self.ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &bgl,
                entries: &entries,
            })
    }

    /// Records one kernel (not SVD) writing `out`, with the launch codegen gives it.
    fn encode_kernel(
        &self,
        enc: &mut wgpu::CommandEncoder,
        desc: &KernelDesc,
        out: &GpuBuffer,
        inputs: &[&GpuBuffer],
        cfg: &Config,
    ) -> Result<()> {
        let name = desc.name();
        if numel(&desc.out_shape) == 0 {
            return Ok(());
        }
        let variant = self.variant(std::slice::from_ref(desc), cfg);
        let launch = desc.launch_as(variant);
        let [x, y, z] = self.ctx.launch_grid(name, launch.groups)?;
        if x == 0 || y == 0 || z == 0 {
            return Ok(());
        }
        let compiled = self.pipelines.get(&self.ctx, desc, variant, cfg)?;
        let meta = compiled.meta.as_deref();
        let buffers = || {
            let mut b: Vec<(&wgpu::Buffer, Option<u64>)> = vec![(out.raw(), None)];
            b.extend(inputs.iter().map(|b| (b.raw(), None)));
            b
        };
        let bg = if meta.is_none() {
            let ids = std::iter::once(out)
                .chain(inputs.iter().copied())
                .map(GpuBuffer::id)
                .collect();
            let key = (launch.bindings, ids);
            let cached = lock(&self.bind_groups).get(&key).cloned();
            match cached {
                Some(bg) => bg,
                None => {
                    let bg = self.bind_group(launch.bindings, &buffers(), None);
                    let mut cache = lock(&self.bind_groups);
                    if cache.len() >= BIND_GROUPS_KEPT {
                        cache.clear();
                    }
                    cache.insert(key, bg.clone());
                    bg
                }
            }
        } else {
            self.bind_group(launch.bindings, &buffers(), meta)
        };
        let mut pass = self.profiler.begin_pass(enc, name);
        pass.set_pipeline(&compiled.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(x, y, z);
        drop(pass);
        Self::count_dispatches(cfg, variant, 1);
        Ok(())
    }

    /// A dense copy of a strided value (the gather kernel).
    pub(super) fn densify(
        &self,
        enc: &mut wgpu::CommandEncoder,
        v: &Value,
        cfg: &Config,
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
            wg: self.ctx.wg,
            stage: 0,
            cpu_lanes: self.ctx.cpu_lanes,
            software: self.ctx.is_software(),
            tile: None,
        };
        self.encode_kernel(enc, &desc, &out, &[gpu(v)?], cfg)?;
        Ok(out)
    }
}
