//! Kernel time from GPU timestamps: a begin/end pair per compute pass of one evaluation, read
//! back after the submit (natively, on adapters with timestamp queries, while profiling).

use std::sync::Mutex;

use super::context::Context;
use super::lock;
use crate::config::Config;
#[cfg(not(target_arch = "wasm32"))]
use crate::error::Result;

/// Most compute passes timed per evaluation (further passes run untimed; a query set holds at
/// most 4096 queries).
const TIMED_PASSES: u32 = 2048;

/// The timestamps of the evaluation in progress.
struct PassTimer {
    set: wgpu::QuerySet,
    next: u32,
}

#[derive(Default)]
pub(crate) struct Profiler {
    timer: Mutex<Option<PassTimer>>,
}

impl Profiler {
    /// Starts timing the passes of one evaluation (when profiling and the adapter can).
    pub fn start(&self, ctx: &Context, cfg: &Config) {
        if ctx.timestamps && cfg.profiling() {
            let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("tmath timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * TIMED_PASSES,
            });
            *lock(&self.timer) = Some(PassTimer { set, next: 0 });
        }
    }

    /// Begins a compute pass, with timestamps when this evaluation is being profiled.
    pub fn begin_pass<'e>(
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
        // The label only while profiling (it names the pass in a capture).
        enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: writes.as_ref().map(|_| label),
            timestamp_writes: writes
                .as_ref()
                .map(|(set, i)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(*i),
                    end_of_pass_write_index: Some(i + 1),
                }),
        })
    }

    /// Reads the timestamps of the evaluation just submitted and adds the kernel time.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn finish(&self, ctx: &Context, cfg: &Config) -> Result<()> {
        let Some(timer) = lock(&self.timer).take() else {
            return Ok(());
        };
        if timer.next == 0 {
            return Ok(());
        }
        let bytes = timer.next as u64 * 8;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tmath timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = ctx.new_encoder();
        enc.resolve_query_set(&timer.set, 0..timer.next, &resolve, 0);
        let ticks = super::readback::read_blocking::<u64>(ctx, enc, &resolve, bytes)?;
        let period = ctx.queue.get_timestamp_period() as f64;
        let ns: f64 = ticks
            .chunks(2)
            .map(|p| p[1].saturating_sub(p[0]) as f64 * period)
            .sum();
        cfg.record(|s| s.kernel_time += std::time::Duration::from_nanos(ns as u64));
        Ok(())
    }
}
