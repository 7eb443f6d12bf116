//! The SVD driver: sequences the stages that `crate::codegen` renders (init, sweeps of rotation
//! rounds, normalize, complete, finalize). Natively a sweep ends on a read of the rotation
//! counter; on wasm, where the host cannot wait for the GPU inside an evaluation, it runs a
//! fixed number of sweeps.

use super::{gpu, GpuBuffer, WgpuBackend};
use crate::codegen::{svd as stage, Bindings, KernelDesc};
use crate::config::Config;
use crate::error::Result;
use crate::program::Value;
use crate::schedule::{Body, Program};

/// Sweeps of the Jacobi SVD: natively it stops once a sweep rotates nothing.
#[cfg(not(target_arch = "wasm32"))]
const SVD_MAX_SWEEPS: usize = 30;
#[cfg(target_arch = "wasm32")]
const SVD_FIXED_SWEEPS: usize = 15;
/// Matrices up to this many columns (of the working matrix, min(m, n)) and elements sweep in
/// one workgroup, one dispatch per sweep: for small sizes the dispatch count, not the
/// arithmetic, is what costs (SwiftShader pays milliseconds per dispatch; a GPU microseconds).
const SVD_ONE_GROUP_MAX_COLS: usize = 256;
const SVD_ONE_GROUP_MAX_ELEMS: usize = 1 << 16;
/// On software adapters the one-workgroup sweep is kept to smaller matrices: on lavapipe
/// (Mesa 22.3) it lost rotations of V from about 28,000 elements on (280×100: ‖VVᵀ − I‖ 0.09,
/// after nine clean sweeps), while the same kernel is exact on the H200 and the per-round path
/// is exact on both; `svd_accuracy` in the suite covers both paths.
const SVD_ONE_GROUP_MAX_ELEMS_SOFTWARE: usize = 1 << 14;

impl WgpuBackend {
    /// The thin SVD of `input` (`m × n`) into `out` (packed `U | S | Vᵀ`). Submits `enc`
    /// (pending work) first natively, since sweeps end on a counter read.
    pub(super) fn run_svd(
        &self,
        enc: wgpu::CommandEncoder,
        m: usize,
        n: usize,
        input: &Value,
        out: &GpuBuffer,
        cfg: &Config,
    ) -> Result<wgpu::CommandEncoder> {
        let ctx = &self.ctx;
        let (rows, cols) = stage::working(m, n);
        if cols == 0 {
            ctx.queue.submit([enc.finish()]);
            return Ok(ctx.new_encoder());
        }
        let pairs = cols.div_ceil(2);
        let rounds = 2 * pairs - 1;
        let w = self.alloc("svd", rows * cols)?;
        let v = self.alloc("svd", cols * cols)?;
        let aux = self.alloc("svd", 3 * cols)?;
        let counter = self.alloc("svd", 4)?;
        let align = ctx.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let mut round_data = vec![0u8; rounds * align];
        for r in 0..rounds {
            round_data[r * align..r * align + 4].copy_from_slice(&(r as u32).to_le_bytes());
        }
        let round_buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("svd rounds"),
            size: round_data.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue.write_buffer(&round_buf, 0, &round_data);
        let stage_desc = |s: u32| KernelDesc {
            body: Body::Svd { m, n },
            prologue: Program::default(),
            epilogue: Program::default(),
            slots: vec![input.layout.clone()],
            out_shape: vec![crate::ir::svd_packed_len(m, n)],
            wg: 256,
            stage: s,
        };
        // Small matrices sweep in one workgroup (one dispatch per sweep); larger ones spread
        // each round over one workgroup per column pair (one dispatch per round).
        let max_elems = if ctx.is_software() {
            SVD_ONE_GROUP_MAX_ELEMS_SOFTWARE
        } else {
            SVD_ONE_GROUP_MAX_ELEMS
        };
        let one_group = cols <= SVD_ONE_GROUP_MAX_COLS && rows * cols <= max_elems;
        let rotate = if one_group {
            stage::SWEEP
        } else {
            stage::ROTATE
        };
        let stages = [
            stage::INIT,
            rotate,
            stage::NORMALIZE,
            stage::COMPLETE,
            stage::FINALIZE,
        ];
        let descs: Vec<KernelDesc> = stages.iter().map(|&s| stage_desc(s)).collect();
        let variant = self.variant(&descs, cfg);
        let compiled = descs
            .iter()
            .map(|d| self.pipelines.get(ctx, d, variant, cfg))
            .collect::<Result<Vec<_>>>()?;
        // Every stage renders the same sizes, so one metadata uniform serves them all.
        let meta = compiled[0].meta.as_deref();
        let sweep_offsets: Vec<u32> = if one_group {
            vec![0]
        } else {
            (0..rounds).map(|r| (r * align) as u32).collect()
        };
        let bg = self.bind_group(
            Bindings::Svd,
            &[
                (out.raw(), None),
                (gpu(input)?.raw(), None),
                (w.raw(), None),
                (v.raw(), None),
                (aux.raw(), None),
                (counter.raw(), None),
                (&round_buf, Some(16)),
            ],
            meta,
        );
        let dispatch = |enc: &mut wgpu::CommandEncoder, i: usize, offsets: &[u32]| -> Result<()> {
            let launch = descs[i].launch();
            let [x, y, z] = ctx.launch_grid("svd", launch.groups)?;
            let mut pass = self.profiler.begin_pass(enc, "svd");
            pass.set_pipeline(&compiled[i].pipeline);
            for &off in offsets {
                pass.set_bind_group(0, &bg, &[off]);
                pass.dispatch_workgroups(x, y, z);
            }
            drop(pass);
            Self::count_dispatches(cfg, variant, offsets.len() as u64);
            Ok(())
        };
        let mut enc = enc;
        dispatch(&mut enc, 0, &[0])?;
        #[cfg(not(target_arch = "wasm32"))]
        {
            for _ in 0..SVD_MAX_SWEEPS {
                enc.clear_buffer(counter.raw(), 0, Some(16));
                dispatch(&mut enc, 1, &sweep_offsets)?;
                let rotations =
                    super::readback::read_blocking::<u32>(ctx, enc, counter.raw(), 4)?[0];
                enc = ctx.new_encoder();
                ctx.check_errors()?;
                if rotations == 0 {
                    break;
                }
            }
        }
        #[cfg(target_arch = "wasm32")]
        for _ in 0..SVD_FIXED_SWEEPS {
            dispatch(&mut enc, 1, &sweep_offsets)?;
        }
        dispatch(&mut enc, 2, &[0])?;
        dispatch(&mut enc, 3, &[0])?;
        dispatch(&mut enc, 4, &[0])?;
        Ok(enc)
    }
}
