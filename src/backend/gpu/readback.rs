//! Reading buffers back to the host: asynchronously (browsers demand it; natively the wait
//! happens inside), and blocking for the backend's own small reads (SVD counters, timestamps).

use std::sync::{Arc, Mutex};

use super::context::Context;
use super::lock;
use crate::error::{Error, Result};

/// The state shared by a one-shot channel's sender and receiver.
type OneshotState<T> = Arc<Mutex<(Option<T>, Option<std::task::Waker>)>>;

/// A buffer the host can map to read `bytes` back.
pub(crate) fn staging(ctx: &Context, bytes: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("tmath read-back"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Maps a staging buffer (whose copy was submitted) and returns its contents.
pub(crate) async fn map_and_take<T: bytemuck::Pod>(
    ctx: &Context,
    staging: &wgpu::Buffer,
) -> Result<Vec<T>> {
    let state: OneshotState<std::result::Result<(), wgpu::BufferAsyncError>> = Arc::default();
    let tx = state.clone();
    staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let mut s = lock(&tx);
        s.0 = Some(r);
        if let Some(w) = s.1.take() {
            w.wake();
        }
    });
    #[cfg(not(target_arch = "wasm32"))]
    ctx.wait()?;
    Oneshot { state }
        .await
        .map_err(|e| Error::device(format!("reading back: {e}")))?;
    take_mapped(ctx, staging)
}

/// Submits `enc` plus a copy of the first `bytes` of `src`, waits, and returns them
/// (natively only: the host blocks, which browsers do not allow).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn read_blocking<T: bytemuck::Pod>(
    ctx: &Context,
    mut enc: wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    bytes: u64,
) -> Result<Vec<T>> {
    let staging = staging(ctx, bytes);
    enc.copy_buffer_to_buffer(src, 0, &staging, 0, Some(bytes));
    ctx.queue.submit([enc.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    ctx.wait()?;
    take_mapped(ctx, &staging)
}

/// Waits until the GPU has run submission `index` (and what came before it): natively a
/// blocking wait, in browsers the queue's `onSubmittedWorkDone`.
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
pub(crate) async fn work_done(ctx: &Context, index: wgpu::SubmissionIndex) -> Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        ctx.wait_for(index)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let state: OneshotState<()> = Arc::default();
        let tx = state.clone();
        ctx.queue.on_submitted_work_done(move || {
            let mut s = lock(&tx);
            s.0 = Some(());
            if let Some(w) = s.1.take() {
                w.wake();
            }
        });
        Oneshot { state }.await;
        ctx.check_errors()
    }
}

/// The contents of a mapped staging buffer, which is unmapped afterwards.
pub(crate) fn take_mapped<T: bytemuck::Pod>(
    ctx: &Context,
    staging: &wgpu::Buffer,
) -> Result<Vec<T>> {
    let data = bytemuck::pod_collect_to_vec(
        &staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::device(e.to_string()))?[..],
    );
    staging.unmap();
    ctx.check_errors()?;
    Ok(data)
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
