//! Buffers and their reuse: freed buffers go back to a pool by size class and are handed out
//! again, so steady-state evaluation allocates nothing.

use crate::backend::cpu::HostBuffer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Ids of the device buffers made so far (process-wide): an id names one `wgpu::Buffer` for its
/// whole life and is never given to another, so cached bind groups can be keyed by ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Most bytes the pool keeps idle; beyond this, freed buffers are destroyed.
const POOL_CAP_BYTES: u64 = 1 << 30;

/// Size classes: four per power of two (at most 25% waste), at least 256 bytes.
fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(256);
    let p = 63 - (b - 1).leading_zeros() as u64; // 2^p < b <= 2^(p+1)
    let base = 1u64 << p;
    let step = (base / 4).max(1);
    b.div_ceil(step) * step
}

/// Allocation of storage buffers through the pool.
#[derive(Default)]
pub(crate) struct Buffers {
    pool: Arc<Mutex<BufferPool>>,
}

impl Buffers {
    /// A storage buffer of at least `elems` f32 (from the pool when one fits); the caller has
    /// checked the size against the adapter (`Backend::check_alloc`).
    pub fn alloc(&self, ctx: &super::context::Context, elems: usize) -> Arc<GpuBuffer> {
        self.alloc_with_host(ctx, elems, None)
    }

    /// [`Buffers::alloc`], keeping `host` (the buffer's contents, once written) beside it.
    pub fn alloc_with_host(
        &self,
        ctx: &super::context::Context,
        elems: usize,
        host: Option<Arc<HostBuffer>>,
    ) -> Arc<GpuBuffer> {
        let bytes = (elems.max(4) as u64) * 4;
        let class = size_class(bytes).min(ctx.max_binding_bytes());
        let taken = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(class);
        let (id, buffer) = taken.unwrap_or_else(|| {
            let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tmath tensor"),
                size: class,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (NEXT_ID.fetch_add(1, Ordering::Relaxed), buffer)
        });
        Arc::new(GpuBuffer {
            buffer: Some(buffer),
            id,
            class,
            pool: self.pool.clone(),
            host,
        })
    }
}

#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<(u64, wgpu::Buffer)>>,
    idle_bytes: u64,
}

impl BufferPool {
    fn take(&mut self, class: u64) -> Option<(u64, wgpu::Buffer)> {
        let b = self.free.get_mut(&class)?.pop()?;
        self.idle_bytes -= class;
        Some(b)
    }

    fn put(&mut self, class: u64, id: u64, buffer: wgpu::Buffer) {
        if self.idle_bytes + class > POOL_CAP_BYTES {
            buffer.destroy();
            return;
        }
        self.idle_bytes += class;
        self.free.entry(class).or_default().push((id, buffer));
    }
}

/// A storage buffer of the device; returns to the pool when the last handle is dropped.
pub(crate) struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    /// The `wgpu::Buffer`'s id (kept through the pool: see [`NEXT_ID`]).
    id: u64,
    class: u64,
    pool: Arc<Mutex<BufferPool>>,
    /// A host copy of the contents, kept for small buffers written from the host (uploads and
    /// the adaptive mode's CPU route): reading them back, or computing tiny graphs from them on
    /// the CPU, needs no trip to the GPU. Buffers are never written after they are made.
    host: Option<Arc<HostBuffer>>,
}

impl GpuBuffer {
    /// The host copy of the contents, if one is kept.
    pub fn host(&self) -> Option<&Arc<HostBuffer>> {
        self.host.as_ref()
    }

    pub fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }

    /// The device buffer's id, unique for the process's life.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(self.class, self.id, b);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn classes_cover_and_bound_waste() {
        for b in [
            1u64,
            255,
            256,
            257,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
            3_000_001,
        ] {
            let c = super::size_class(b);
            assert!(c >= b && c >= 256, "{b} -> {c}");
            assert!(b < 256 || c as f64 <= b as f64 * 1.25 + 1.0, "{b} -> {c}");
        }
    }
}
