//! Host buffers that are recycled instead of freed: the CPU's counterpart of the GPU buffer
//! pool. A kernel's output of a size seen before reuses memory that is already mapped, where a
//! fresh allocation of that size would page-fault on every first write (measured natively on a
//! 1024² GELU: about 1.5 ms of page faults per 4 MiB buffer, more than the arithmetic).
//! Buffers below [`MIN_ELEMS`] come from the allocator as usual; the pool keeps at most
//! [`MAX_BYTES`], dropping the oldest first.

use std::ops::Deref;
use std::sync::Mutex;

/// Buffers smaller than this (64 KiB) are not pooled: the allocator serves them from its heap.
const MIN_ELEMS: usize = 1 << 14;
/// At most this many bytes wait in the pool (natively: two buffers of 64M elements, an output
/// and the copy read back from it).
const MAX_BYTES: usize = if cfg!(target_arch = "wasm32") {
    256 << 20
} else {
    512 << 20
};

struct Pool {
    free: Vec<Vec<f32>>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    bytes: 0,
});

/// A CPU value's elements; its memory goes back to the pool when the last handle drops.
pub(crate) struct HostBuffer(Vec<f32>);

impl HostBuffer {
    pub fn new(data: Vec<f32>) -> Self {
        HostBuffer(data)
    }
}

impl Deref for HostBuffer {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        let bytes = v.capacity() * 4;
        if v.capacity() < MIN_ELEMS || bytes > MAX_BYTES {
            return;
        }
        let Ok(mut pool) = POOL.lock() else { return };
        pool.bytes += bytes;
        pool.free.push(v);
        while pool.bytes > MAX_BYTES {
            let old = pool.free.remove(0);
            pool.bytes -= old.capacity() * 4;
        }
    }
}

/// A buffer of capacity between `n` and `2n` from the pool, if it has one, with its old
/// contents (those holding at least `n` elements first, the smallest of them).
fn recycled(n: usize) -> Option<Vec<f32>> {
    if n < MIN_ELEMS {
        return None;
    }
    let mut pool = POOL.lock().ok()?;
    let i = (0..pool.free.len())
        .filter(|&i| (n..=2 * n).contains(&pool.free[i].capacity()))
        .min_by_key(|&i| (pool.free[i].len() < n, pool.free[i].capacity()))?;
    let v = pool.free.swap_remove(i);
    pool.bytes -= v.capacity() * 4;
    Some(v)
}

/// `n` elements whose values are unspecified (a recycled buffer's old ones, or zeros): for
/// kernels that write every element. A recycled buffer is not cleared first (at 64M elements a
/// memset on one thread costs more than a fused kernel on all of them), and a fresh one comes
/// zeroed from the system, its pages mapped by the threads that first write them.
pub(crate) fn output(n: usize) -> Vec<f32> {
    match recycled(n) {
        Some(mut v) => {
            v.truncate(n);
            v.resize(n, 0.0);
            v
        }
        None => vec![0f32; n],
    }
}

/// `n` zeros, in a recycled buffer where the pool has one (its pages are mapped already: the
/// zeroing is a plain memset), else freshly allocated.
pub(crate) fn zeroed(n: usize) -> Vec<f32> {
    match recycled(n) {
        Some(mut v) => {
            v.clear();
            v.resize(n, 0.0);
            v
        }
        None => vec![0f32; n],
    }
}

/// A copy of `src`, in a recycled buffer where the pool has one.
pub(crate) fn copied(src: &[f32]) -> Vec<f32> {
    match recycled(src.len()) {
        Some(mut v) => {
            v.clear();
            v.extend_from_slice(src);
            v
        }
        None => src.to_vec(),
    }
}
