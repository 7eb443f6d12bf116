//! Running a plan: schedule it into kernels, resolve each kernel's inputs (through views) to
//! buffers, take each pipeline from the cache, and record every dispatch into one command
//! buffer. Intermediate buffers go back to the pool after their last reader is recorded.

use std::collections::HashMap;
use std::sync::Arc;

use super::{gpu, lock, GpuBuffer, WgpuBackend};
use crate::backend::{Backend, Storage};
use crate::codegen::{Bindings, KernelDesc, Variant};
use crate::device::{Device, JitMode};
use crate::error::{Error, Result};
use crate::graph::eval::Plan;
use crate::graph::{Op, Value};
use crate::schedule::{schedule, Body, Inst, Kernel, Program};
use crate::shape::{numel, Layout};
use crate::Tensor;

impl WgpuBackend {
    /// Specialized kernels, unless this device asked for generic ones (with the JIT on; the
    /// JIT off always compiles specialized kernels, as the old engine did).
    pub(super) fn variant(device: &Device) -> Variant {
        if device.jit() == JitMode::On && device.generic_kernels() {
            Variant::Generic
        } else {
            Variant::Specialized
        }
    }

    pub(super) fn run_plan(&self, plan: &Plan, device: &Device) -> Result<Vec<Value>> {
        let _submit = lock(&self.submit);
        self.ctx.check_errors()?;
        let kernels = schedule(plan, device.jit() == JitMode::On, self.ctx.max_slots());
        // Reads left per computed value: kernel slots (through views) and outputs.
        let mut uses: HashMap<u64, usize> = HashMap::new();
        for k in &kernels {
            for s in &k.slots {
                *uses.entry(base_id(s)).or_default() += 1;
            }
        }
        for t in &plan.outputs {
            *uses.entry(base_id(t)).or_default() += 1;
        }
        let mut live: HashMap<u64, Value> = HashMap::new();
        let mut enc: Option<wgpu::CommandEncoder> = None;
        self.profiler.start(&self.ctx, device);
        for k in &kernels {
            let value = self.run_kernel(&mut enc, k, &live, device)?;
            if k.root.node().op.keeps_value() {
                k.root.node().set_cached(value.clone());
            }
            live.insert(k.root.node().id, value);
            for s in &k.slots {
                let id = base_id(s);
                if let Some(n) = uses.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        live.remove(&id);
                    }
                }
            }
        }
        if let Some(enc) = enc {
            self.ctx.queue.submit([enc.finish()]);
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.profiler.finish(&self.ctx, device)?;
        self.ctx.check_errors()?;
        plan.outputs.iter().map(|t| resolve(t, &live)).collect()
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
            .map(|t| resolve(t, live))
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
            wg: self.ctx.wg,
            stage: 0,
        };
        let out = self.alloc(root.node().op.name(), root.numel())?;
        if let Body::Svd { m, n } = k.body {
            let e = enc.take().unwrap_or_else(|| self.ctx.new_encoder());
            *enc = Some(self.run_svd(e, m, n, &slots[0], &out, device)?);
        } else {
            let bufs = slots.iter().map(gpu).collect::<Result<Vec<_>>>()?;
            self.encode_kernel(
                enc.get_or_insert_with(|| self.ctx.new_encoder()),
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
        device: &Device,
    ) -> Result<()> {
        let name = desc.name();
        let launch = desc.launch();
        let [x, y, z] = self.ctx.launch_grid(name, launch.groups)?;
        if numel(&desc.out_shape) == 0 || x == 0 || y == 0 || z == 0 {
            return Ok(());
        }
        let variant = Self::variant(device);
        let compiled = self.pipelines.get(&self.ctx, desc, variant, device)?;
        let meta = self.meta_buffer(variant, &compiled.meta);
        let mut buffers: Vec<(&wgpu::Buffer, Option<u64>)> = vec![(out.raw(), None)];
        buffers.extend(inputs.iter().map(|b| (b.raw(), None)));
        let bg = self.bind_group(launch.bindings, &buffers, meta.as_ref());
        let mut pass = self.profiler.begin_pass(enc, name);
        pass.set_pipeline(&compiled.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(x, y, z);
        drop(pass);
        device.record(|s| s.dispatches += 1);
        Ok(())
    }

    /// A dense copy of a strided value (the gather kernel).
    pub(super) fn densify(
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
            wg: self.ctx.wg,
            stage: 0,
        };
        self.encode_kernel(enc, &desc, &out, &[gpu(v)?], device)?;
        Ok(out)
    }
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
        if cur.node().op.is_view() {
            let next = cur.node().inputs[0].clone();
            chain.push(cur);
            cur = next;
        } else {
            return Err(Error::device(format!(
                "internal: {} has no value yet",
                cur.node().op.name()
            )));
        }
    };
    for view in chain.iter().rev() {
        value = value.view(view.node()).ok_or_else(|| {
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
    while cur.node().op.is_view() && cur.node().cached().is_none() {
        cur = &cur.node().inputs[0];
    }
    cur.node().id
}
