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

impl WgpuBackend {
    /// Specialized kernels, unless this device asked for generic ones (with the JIT on; the
    /// JIT off always compiles specialized kernels, as the old engine did).
    pub(super) fn variant(cfg: &Config) -> Variant {
        if cfg.jit() == JitMode::On && cfg.generic_kernels() {
            Variant::Generic
        } else {
            Variant::Specialized
        }
    }

    pub(super) fn run_program(&self, p: &Lowered, cfg: &Config) -> Result<Vec<Value>> {
        let _submit = lock(&self.submit);
        self.ctx.check_errors()?;
        let kernels = schedule(p, cfg.jit() == JitMode::On, self.ctx.max_slots());
        // Reads left per computed value: kernel bindings (through views) and returned slots.
        let mut uses: HashMap<Slot, usize> = HashMap::new();
        for k in &kernels {
            for &s in &k.slots {
                *uses.entry(base(p, s)).or_default() += 1;
            }
        }
        for &r in &p.returned {
            *uses.entry(base(p, r)).or_default() += 1;
        }
        let mut live: HashMap<Slot, Value> = p.inputs.iter().cloned().enumerate().collect();
        let mut enc: Option<wgpu::CommandEncoder> = None;
        self.profiler.start(&self.ctx, cfg);
        for k in &kernels {
            let value = self.run_kernel(&mut enc, p, k, &live, cfg)?;
            live.insert(k.root, value);
            for &s in &k.slots {
                let b = base(p, s);
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
        p.returned.iter().map(|&r| resolve(p, r, &live)).collect()
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
            .map(|&s| resolve(p, s, live))
            .collect::<Result<Vec<_>>>()?;
        // A reshape that is a plain copy becomes a view when the strides allow.
        if matches!(step.op, Op::Reshape)
            && k.epilogue.is_copy()
            && matches!(k.body, Body::Elementwise)
        {
            if let Some(layout) = slots[0].layout.reshape(shape) {
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
            out_shape: shape.clone(),
            wg: self.ctx.wg,
            stage: 0,
        };
        let out = self.alloc(step.op.name(), numel(shape))?;
        if let Body::Svd { m, n } = k.body {
            let e = enc.take().unwrap_or_else(|| self.ctx.new_encoder());
            *enc = Some(self.run_svd(e, m, n, &slots[0], &out, cfg)?);
        } else {
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

    /// A storage buffer of at least `elems` f32, checked against the adapter first.
    pub(super) fn alloc(&self, op: &'static str, elems: usize) -> Result<Arc<GpuBuffer>> {
        self.check_alloc(op, (elems.max(4) as u64) * 4)?;
        Ok(self.buffers.alloc(&self.ctx, elems))
    }

    /// The uniform holding a generic kernel's metadata (`None` for a specialized kernel).
    pub(super) fn meta_buffer(&self, variant: Variant, meta: &[u32]) -> Option<wgpu::Buffer> {
        if variant != Variant::Generic {
            return None;
        }
        let mut words = meta.to_vec();
        words.resize(meta.len().div_ceil(4).max(1) * 4, 0);
        use wgpu::util::DeviceExt;
        let buffer = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("tmath kernel sizes"),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        Some(buffer)
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
        let launch = desc.launch();
        let [x, y, z] = self.ctx.launch_grid(name, launch.groups)?;
        if numel(&desc.out_shape) == 0 || x == 0 || y == 0 || z == 0 {
            return Ok(());
        }
        let variant = Self::variant(cfg);
        let compiled = self.pipelines.get(&self.ctx, desc, variant, cfg)?;
        let meta = self.meta_buffer(variant, &compiled.meta);
        let mut buffers: Vec<(&wgpu::Buffer, Option<u64>)> = vec![(out.raw(), None)];
        buffers.extend(inputs.iter().map(|b| (b.raw(), None)));
        let bg = self.bind_group(launch.bindings, &buffers, meta.as_ref());
        let mut pass = self.profiler.begin_pass(enc, name);
        pass.set_pipeline(&compiled.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(x, y, z);
        drop(pass);
        cfg.record(|s| s.dispatches += 1);
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
        };
        self.encode_kernel(enc, &desc, &out, &[gpu(v)?], cfg)?;
        Ok(out)
    }
}

/// The value of slot `s`, following view steps (permute, slice) down to a computed or input
/// value.
fn resolve(p: &Lowered, s: Slot, live: &HashMap<Slot, Value>) -> Result<Value> {
    let mut chain = vec![];
    let mut cur = s;
    let mut value = loop {
        if let Some(v) = live.get(&cur) {
            break v.clone();
        }
        match p.step(cur) {
            Some(step) if step.op.is_view() => {
                chain.push(step);
                cur = step.args[0];
            }
            other => {
                return Err(Error::device(format!(
                    "internal: {} has no value yet",
                    other.map_or("an input", |st| st.op.name())
                )))
            }
        }
    };
    for step in chain.iter().rev() {
        value = value.view(&step.op, &step.shape).ok_or_else(|| {
            Error::device(format!("internal: {} is not a view here", step.op.name()))
        })?;
    }
    Ok(value)
}

/// The slot a view chain rests on (itself if it is not a view).
fn base(p: &Lowered, mut s: Slot) -> Slot {
    while let Some(step) = p.step(s).filter(|st| st.op.is_view()) {
        s = step.args[0];
    }
    s
}
