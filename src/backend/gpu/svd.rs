//! The SVD driver: sequences the stages that `crate::codegen` renders (init, sweeps of rotation
//! rounds each followed by a check, normalize, complete, finalize). The convergence test runs
//! on the GPU (a converged iteration's later rounds return at once), so the host never waits
//! for a sweep: natively it submits one sweep at a time and reads the converged flag of the
//! previous submission while the GPU runs the next; on wasm, where the host cannot wait inside
//! an evaluation, it records the most sweeps allowed and the flag ends them early.

use super::{gpu, GpuBuffer, WgpuBackend};
use crate::codegen::{svd as stage, Bindings, KernelDesc};
use crate::config::Config;
use crate::error::Result;
use crate::program::Value;
use crate::schedule::{Body, Program};

/// The most sweeps of the Jacobi SVD; it stops once a sweep rotates nothing (on the H100, 512²:
/// 15 on Gaussian input, 18 on a graded spectrum, blocks of 4). Browsers record all of them,
/// where a converged sweep still costs its (empty) dispatches; the bound is the same there (it
/// was 20, too close to the 18 a graded 512² takes).
const SVD_MAX_SWEEPS: usize = 30;
/// Sweeps per submission natively: the host reads the flag of one submission while the GPU
/// runs the next (or the next two, where sweeps are short), so after convergence at most twice
/// (three times) this many sweeps too many are recorded
/// (each of those a sweep's dispatches returning at once). One (was two): on the H100, 512²
/// 1,924 dispatches instead of 2,052, 1024² 3,844 instead of 4,100, while the GPU still never
/// waits for the host (a sweep takes 1.5 ms there).
#[cfg(not(target_arch = "wasm32"))]
const SWEEPS_PER_SUBMIT: usize = 1;

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
        let (_, cols) = stage::working(m, n);
        if cols == 0 {
            ctx.queue.submit([enc.finish()]);
            return Ok(ctx.new_encoder());
        }
        // The block sizes of a software adapter, unless a test asks for the hardware ones.
        let software = ctx.is_software() && !cfg.svd_hardware_blocks();
        // On hardware (or where a test asks for its configuration) and where the adapter has the
        // workgroup memory: the round through the Gram matrix, in one dispatch for up to
        // `GRAM_MAX_COLS` columns, else split in two; on software adapters (where it is the
        // faster one) and elsewhere, the round through memory.
        let rotate: &[u32] =
            if software || ctx.limits.max_compute_workgroup_storage_size < stage::GRAM_STORAGE {
                &[stage::ROTATE]
            } else if cols <= stage::GRAM_MAX_COLS && !cfg.svd_split() {
                &[stage::ROTATE_GRAM]
            } else {
                &[stage::GRAM_PART, stage::GRAM_APPLY]
            };
        // QR preconditioning (where the Gram rounds run): the Jacobi on Rᵀ (cols × cols).
        let qr = rotate[0] != stage::ROTATE && cfg.svd_qr();
        let (jrows, _) = stage::jacobi_dims(m, n, qr);
        let flow = if qr { stage::QR_FLOW } else { 0 };
        let rounds = stage::rounds(cols, software, rotate[0]);
        let panels = if qr { stage::qr_panels(m, n) } else { 0 };
        let w = self.alloc("svd", jrows * cols)?;
        let v = self.alloc("svd", cols * cols)?;
        // (The QR flow's factor starts after it in every form: `codegen::svd` places it so.)
        let scratch = if rotate[0] == stage::GRAM_PART || qr {
            stage::split_scratch(jrows, cols)
        } else {
            0
        };
        let qr_scratch = if qr { stage::qr_scratch(m, n) } else { 0 };
        let aux = self.alloc("svd", 3 * cols + scratch + qr_scratch)?;
        let counter = self.alloc("svd", 4)?;
        let align = ctx.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let mut round_data = vec![0u8; rounds.max(panels) * align];
        for r in 0..rounds.max(panels) {
            round_data[r * align..r * align + 4].copy_from_slice(&(r as u32).to_le_bytes());
        }
        let round_buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("svd rounds"),
            size: round_data.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue.write_buffer(&round_buf, 0, &round_data);
        // The Gram rounds' workgroups: 512 threads where the adapter allows them, but for the
        // split form's partial Gram matrices (256). On the H100 (kernel ms, Gaussian / graded,
        // medians of 5; all on 256 threads in brackets): 128² 2.09 / 3.12 (2.25 / 3.31), 256²
        // 4.29 / 6.29 (5.04 / 7.39), 512² 11.3 / 16.1 (13.4 / 19.0), 1024² 40.6 / 51.8 (44.9 /
        // 57.4); the partial matrices on 512 threads too: 512² 11.9 / 16.4, 1024² 42.0 / 53.9;
        // 1,024 threads were slower than 512.
        let limits = &ctx.limits;
        let gram_wg = if limits.max_compute_invocations_per_workgroup >= 512
            && limits.max_compute_workgroup_size_x >= 512
        {
            512
        } else {
            256
        };
        let stage_desc = |s: u32| KernelDesc {
            body: Body::Svd { m, n },
            prologue: Program::default(),
            epilogue: Program::default(),
            slots: vec![input.layout.clone()],
            out_shape: vec![crate::ir::svd_packed_len(m, n)],
            wg: if s == stage::ROTATE_GRAM || s == stage::GRAM_APPLY {
                gram_wg
            } else if s == stage::QR_PANEL {
                stage::QR_PANEL_WG
            } else if (stage::QR_INIT..=stage::QR_FINALIZE).contains(&s) {
                128
            } else {
                256
            },
            stage: s | flow,
            cpu_lanes: ctx.cpu_lanes,
            software,
            tile: None,
        };
        // Indices 0–4: the fixed stages (in the QR flow, its init and finalize for the Jacobi's);
        // 5…: the rotation round's; then the QR flow's others (panel, update, Rᵀ, U init, U).
        let (init, finalize) = if qr {
            (stage::QR_INIT, stage::QR_FINALIZE)
        } else {
            (stage::INIT, stage::FINALIZE)
        };
        let qr_stages: &[u32] = if qr {
            &[
                stage::QR_PANEL,
                stage::QR_UPDATE,
                stage::QR_RT,
                stage::QR_U_INIT,
                stage::QR_FORM_U,
            ]
        } else {
            &[]
        };
        let stages: Vec<u32> = [
            init,
            stage::NORMALIZE,
            stage::COMPLETE,
            finalize,
            stage::CHECK,
        ]
        .into_iter()
        .chain(rotate.iter().copied())
        .chain(qr_stages.iter().copied())
        .collect();
        let qx = 5 + rotate.len();
        let descs: Vec<KernelDesc> = stages.iter().map(|&s| stage_desc(s)).collect();
        let variant = self.variant(&descs, cfg);
        let compiled = descs
            .iter()
            .map(|d| self.pipelines.get(ctx, d, variant, cfg))
            .collect::<Result<Vec<_>>>()?;
        // Every stage renders the same sizes, so one metadata uniform serves them all.
        let meta = compiled[0].meta.as_deref();
        let sweep_offsets: Vec<u32> = (0..rounds).map(|r| (r * align) as u32).collect();
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
        let grids = descs
            .iter()
            .map(|d| ctx.launch_grid("svd", d.launch().groups))
            .collect::<Result<Vec<_>>>()?;
        // Stages `idx` in turn for each of `offsets` (the rounds), in one compute pass.
        let dispatch =
            |enc: &mut wgpu::CommandEncoder, idx: &[usize], offsets: &[u32]| -> Result<()> {
                let mut pass = self.profiler.begin_pass(enc, "svd");
                for (k, &off) in offsets.iter().enumerate() {
                    for &i in idx {
                        let [x, y, z] = grids[i];
                        if k == 0 || idx.len() > 1 {
                            pass.set_pipeline(&compiled[i].pipeline);
                        }
                        pass.set_bind_group(0, &bg, &[off]);
                        pass.dispatch_workgroups(x, y, z);
                    }
                }
                drop(pass);
                Self::count_dispatches(cfg, variant, (offsets.len() * idx.len()) as u64);
                Ok(())
            };
        let mut enc = enc;
        enc.clear_buffer(counter.raw(), 0, Some(16));
        dispatch(&mut enc, &[0], &[0])?;
        if qr {
            // The factor panel by panel, then Rᵀ into W.
            for k in 0..panels {
                let off = [(k * align) as u32];
                dispatch(&mut enc, &[qx], &off)?;
                dispatch(&mut enc, &[qx + 1], &off)?;
            }
            dispatch(&mut enc, &[qx + 2], &[0])?;
        }
        let rotate_idx: Vec<usize> = (5..5 + rotate.len()).collect();
        let sweep = |enc: &mut wgpu::CommandEncoder| -> Result<()> {
            dispatch(enc, &rotate_idx, &sweep_offsets)?;
            dispatch(enc, &[4], &[0])
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Submissions in flight before the host waits for the oldest: two where a sweep
            // is short (the one-dispatch Gram rounds), so that the host's wake-up, read and
            // next submission never leave the GPU idle.
            let depth = if rotate == [stage::ROTATE_GRAM] { 2 } else { 1 };
            let mut pending = std::collections::VecDeque::new();
            let mut sweeps = 0;
            while sweeps < SVD_MAX_SWEEPS {
                let n = SWEEPS_PER_SUBMIT.min(SVD_MAX_SWEEPS - sweeps);
                for _ in 0..n {
                    sweep(&mut enc)?;
                }
                sweeps += n;
                let flag = super::readback::staging(ctx, 16);
                enc.copy_buffer_to_buffer(counter.raw(), 0, &flag, 0, Some(16));
                let index = ctx.queue.submit([enc.finish()]);
                flag.slice(..).map_async(wgpu::MapMode::Read, |_| {});
                enc = ctx.new_encoder();
                pending.push_back((flag, index));
                if pending.len() > depth {
                    if let Some((prev, prev_index)) = pending.pop_front() {
                        ctx.wait_for(prev_index)?;
                        if super::readback::take_mapped::<u32>(ctx, &prev)?[1] != 0 {
                            break;
                        }
                    }
                }
            }
        }
        #[cfg(target_arch = "wasm32")]
        for _ in 0..SVD_MAX_SWEEPS {
            sweep(&mut enc)?;
        }
        dispatch(&mut enc, &[1], &[0])?;
        dispatch(&mut enc, &[2], &[0])?;
        if qr {
            // U = Q·[V; 0] (one dispatch: a workgroup per column through every panel).
            dispatch(&mut enc, &[qx + 3], &[0])?;
            dispatch(&mut enc, &[qx + 4], &[0])?;
        }
        dispatch(&mut enc, &[3], &[0])?;
        Ok(enc)
    }
}
