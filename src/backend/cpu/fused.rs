//! The CPU's compiled path (JIT on or adaptive): the same schedule as the GPU
//! ([`crate::schedule::schedule`]), each kernel run as tight loops over chunks of its output —
//! a fused elementwise chain is one pass over memory, an elementwise prologue feeds a reduction or
//! softmax without a temporary per op, and an epilogue runs on a matmul's or reduction's result
//! as it is consumed. Chunks run on several threads natively (`kernels::par_map`).
//!
//! Every value is computed with the same f32 reference (`UnaryOp::eval`, …) in the same order as
//! the op-by-op interpreter (JIT off), so the two paths agree bit for bit.

use super::{dense, host, kernels};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::program::{Program, Value};
use crate::schedule::{schedule, Body, Inst, Program as Elementwise};
use crate::shape::{numel, Layout};

/// Elements evaluated together per instruction (a few KiB per register: stays in L1).
const CHUNK: usize = 1024;

/// Runs `p` kernel by kernel; returns the values of `p.returned`.
pub(super) fn execute(p: &Program, cfg: &Config) -> Result<Vec<Value>> {
    let kernels = schedule(p, true, usize::MAX);
    // Reads left per computed value (slots are dense indices): kernel inputs (through views)
    // and returned slots. A value is dropped after its last read.
    let mut uses = vec![0usize; p.len()];
    for k in &kernels {
        for &s in &k.slots {
            uses[p.base(s)] += 1;
        }
    }
    for &r in &p.returned {
        uses[p.base(r)] += 1;
    }
    let mut live: Vec<Option<Value>> = p.inputs.iter().cloned().map(Some).collect();
    live.resize(p.len(), None);
    #[cfg(not(target_arch = "wasm32"))]
    let profiling = cfg.profiling();
    for k in &kernels {
        let step = p
            .step(k.root)
            .ok_or_else(|| Error::device("internal: a kernel root is an input"))?;
        super::super::check_host(step.op.name(), numel(&step.shape) as u64 * 4)?;
        let values = k
            .slots
            .iter()
            .map(|&s| p.resolve(s, |x| live[x].clone()))
            .collect::<Result<Vec<_>>>()?;
        #[cfg(not(target_arch = "wasm32"))]
        let t0 = profiling.then(std::time::Instant::now);
        let value = match copy_as_view(k, &values, &step.op, &step.shape) {
            Some(v) => v,
            None => {
                let slots = values.iter().map(host).collect::<Result<Vec<_>>>()?;
                dense(
                    run_kernel(&k.body, &k.prologue, &k.epilogue, &slots, &step.shape)?,
                    &step.shape,
                )
            }
        };
        cfg.record(|s| {
            s.dispatches += 1;
            #[cfg(not(target_arch = "wasm32"))]
            if let Some(t0) = t0 {
                s.kernel_time += t0.elapsed();
            }
        });
        live[k.root] = Some(value);
        for &s in &k.slots {
            let b = p.base(s);
            uses[b] -= 1;
            if uses[b] == 0 {
                live[b] = None;
            }
        }
    }
    p.returned
        .iter()
        .map(|&r| p.resolve(r, |s| live[s].clone()))
        .collect()
}

/// A kernel that only copies a reshape's input is the input seen with the new shape, where the
/// strides allow (as on the GPU).
fn copy_as_view(
    k: &crate::schedule::Kernel,
    values: &[Value],
    op: &crate::ir::Op,
    shape: &[usize],
) -> Option<Value> {
    if matches!(op, crate::ir::Op::Reshape)
        && matches!(k.body, Body::Elementwise)
        && k.epilogue.is_copy()
    {
        values.first()?.view(op, shape)
    } else {
        None
    }
}

/// One kernel's dense row-major result of `shape`.
fn run_kernel(
    body: &Body,
    prologue: &Elementwise,
    epilogue: &Elementwise,
    slots: &[(&[f32], &Layout)],
    shape: &[usize],
) -> Result<Vec<f32>> {
    Ok(match body {
        Body::Elementwise => run(epilogue, slots, shape, None),
        Body::Reduce { op, in_shape, axes } => {
            let core = with_input(prologue, slots, in_shape, |x, l| {
                kernels::reduce(*op, x, l, axes)
            });
            finish(epilogue, slots, shape, core)
        }
        Body::Softmax {
            shape: s,
            axis,
            log,
        } => {
            let core = with_input(prologue, slots, s, |x, l| {
                kernels::softmax(x, l, *axis, *log)
            });
            finish(epilogue, slots, shape, core)
        }
        Body::MatMul {
            a, b, out_shape, ..
        } => {
            let ((da, la), (db, lb)) = (slots[*a], slots[*b]);
            let core = kernels::matmul(da, la, db, lb, out_shape);
            finish(epilogue, slots, shape, core)
        }
        Body::Svd { m, n } => {
            let (x, l) = slots[0];
            kernels::svd(x, l, *m, *n)?
        }
    })
}

/// Calls `f` with a reduction's or softmax's input: the input itself (strided, in place) when
/// the prologue only loads it, else the prologue's dense result.
fn with_input(
    prologue: &Elementwise,
    slots: &[(&[f32], &Layout)],
    shape: &[usize],
    f: impl FnOnce(&[f32], &Layout) -> Vec<f32>,
) -> Vec<f32> {
    if let [Inst::Load { slot, shape: s }] = prologue.insts.as_slice() {
        // Element i of the index space is element i, in row-major order, of the slot seen
        // broadcast to `s` (as `gather_range` reads it): for a contiguous slot of as many
        // elements, the slot itself seen with `shape`.
        let (x, l) = slots[*slot];
        let broadcasts = l.shape.len() <= s.len()
            && l.shape
                .iter()
                .rev()
                .zip(s.iter().rev())
                .all(|(&a, &b)| a == b || a == 1);
        let seen = if l.is_contiguous() && numel(&l.shape) == numel(shape) {
            Some(Layout {
                offset: l.offset,
                ..Layout::contiguous(shape)
            })
        } else if s.as_slice() == shape && broadcasts {
            Some(l.broadcast_to(s))
        } else {
            None
        };
        if let Some(layout) = seen {
            return f(x, &layout);
        }
    }
    let input = run(prologue, slots, shape, None);
    let out = f(&input, &Layout::contiguous(shape));
    drop(super::HostBuffer::new(input));
    out
}

/// The epilogue applied to a core result (nothing to do when it is the core itself).
fn finish(
    epilogue: &Elementwise,
    slots: &[(&[f32], &Layout)],
    shape: &[usize],
    core: Vec<f32>,
) -> Vec<f32> {
    if matches!(epilogue.insts.as_slice(), [Inst::Core]) {
        core
    } else {
        let out = run(epilogue, slots, shape, Some(&core));
        drop(super::HostBuffer::new(core));
        out
    }
}

/// Where an instruction's values for a chunk come from.
enum Source<'a> {
    /// A dense slice read in place (a contiguous load, the core value): element `i` of the
    /// index space is `slice[i]`.
    Dense(&'a [f32]),
    /// The same value everywhere (a constant, a broadcast scalar): its register is filled once.
    Splat(f32),
    /// Computed (or gathered through a strided layout) into its register, chunk by chunk.
    Register,
}

/// Evaluates an elementwise program over the row-major index space of `shape`, `CHUNK`
/// elements at a time: each instruction fills a chunk-sized register from earlier ones, where
/// dense inputs are read in place, constants are filled once per thread, and the result is
/// written straight into the output.
fn run(
    prog: &Elementwise,
    slots: &[(&[f32], &Layout)],
    shape: &[usize],
    core: Option<&[f32]>,
) -> Vec<f32> {
    let n = numel(shape);
    let insts = &prog.insts;
    // Each load's layout, broadcast to its index space (computed once, not per element).
    let loads: Vec<Option<Layout>> = insts
        .iter()
        .map(|i| match i {
            Inst::Load { slot, shape } => Some(slots[*slot].1.broadcast_to(shape)),
            _ => None,
        })
        .collect();
    // Large transposed loads, copied once in tiles (read in chunks of output rows, each row of
    // such a load would be a column of its input: a cache line per element).
    let transposed: Vec<Option<Vec<f32>>> = insts
        .iter()
        .zip(&loads)
        .map(|(inst, layout)| match (inst, layout) {
            (Inst::Load { slot, .. }, Some(l)) if n >= TILED_MIN && is_transposed(l) => {
                Some(transpose_tiled(slots[*slot].0, l))
            }
            _ => None,
        })
        .collect();
    let sources: Vec<Source> = insts
        .iter()
        .zip(&loads)
        .zip(&transposed)
        .map(|((inst, layout), copy)| {
            // A load copied in tiles reads the copy.
            if let Some(copy) = copy {
                return Source::Dense(copy);
            }
            match (inst, layout) {
                (Inst::Load { slot, .. }, Some(l)) if l.is_contiguous() => {
                    Source::Dense(&slots[*slot].0[l.offset..l.offset + n])
                }
                (Inst::Load { slot, .. }, Some(l)) if l.strides.iter().all(|&s| s == 0) => {
                    Source::Splat(slots[*slot].0[l.offset])
                }
                (Inst::Core, _) => Source::Dense(&core.expect("a core value")[..n]),
                (Inst::Const(bits), _) => Source::Splat(f32::from_bits(*bits)),
                _ => Source::Register,
            }
        })
        .collect();
    let mut out = super::buffers::output(n);
    // The result is written into the output directly when it is computed last (as the
    // schedule emits it); else it is copied there from its register.
    let direct = prog.result + 1 == insts.len() && matches!(sources[prog.result], Source::Register);
    kernels::par_map(&mut out, |start, dst| {
        let mut regs = vec![0f32; insts.len() * CHUNK];
        for (i, s) in sources.iter().enumerate() {
            if let Source::Splat(v) = s {
                regs[i * CHUNK..(i + 1) * CHUNK].fill(*v);
            }
        }
        for (c, dst) in dst.chunks_mut(CHUNK).enumerate() {
            let base = start + c * CHUNK;
            let len = dst.len();
            for (i, inst) in insts.iter().enumerate() {
                if !matches!(sources[i], Source::Register) {
                    continue;
                }
                let (before, rest) = regs.split_at_mut(i * CHUNK);
                let r = |j: usize| match sources[j] {
                    Source::Dense(x) => &x[base..base + len],
                    _ => &before[j * CHUNK..j * CHUNK + len],
                };
                let cur = if direct && i == prog.result {
                    &mut dst[..]
                } else {
                    &mut rest[..len]
                };
                match inst {
                    Inst::Load { slot, .. } => {
                        let layout = loads[i].as_ref().expect("a load has its layout");
                        gather_range(slots[*slot].0, layout, base, cur);
                    }
                    // Read in place or filled once (never a register source).
                    Inst::Core | Inst::Const(_) => {}
                    Inst::Unary(op, x) => op.eval_slice(r(*x), cur),
                    Inst::Binary(op, a, b) => op.eval_slice(r(*a), r(*b), cur),
                    Inst::Select(c, a, b) => {
                        for (((o, &k), &u), &v) in cur.iter_mut().zip(r(*c)).zip(r(*a)).zip(r(*b)) {
                            *o = if k != 0.0 { u } else { v };
                        }
                    }
                }
            }
            if !direct {
                let res = prog.result;
                match sources[res] {
                    Source::Dense(x) => dst.copy_from_slice(&x[base..base + len]),
                    _ => dst.copy_from_slice(&regs[res * CHUNK..res * CHUNK + len]),
                }
            }
        }
    });
    drop(sources);
    for t in transposed.into_iter().flatten() {
        drop(super::HostBuffer::new(t));
    }
    out
}

/// Loads of at least this many elements that are transposed are copied in tiles first.
const TILED_MIN: usize = 1 << 14;

/// Whether `layout` reads its last two dimensions transposed: the next-to-last has stride 1 and
/// the last a larger one (a `transpose(-1, -2)` view of dense data, batch dimensions before).
fn is_transposed(layout: &Layout) -> bool {
    let r = layout.shape.len();
    r >= 2
        && layout.strides[r - 2] == 1
        && layout.strides[r - 1] > 1
        && layout.shape[r - 2] > 1
        && layout.shape[r - 1] > 1
}

/// The dense row-major elements of a transposed layout ([`is_transposed`]), copied in 32 × 32
/// tiles: each tile reads 32 contiguous runs of the input and writes 32 of the output.
fn transpose_tiled(x: &[f32], layout: &Layout) -> Vec<f32> {
    const T: usize = 32;
    let r = layout.shape.len();
    let (rows, cols) = (layout.shape[r - 2], layout.shape[r - 1]);
    let step = layout.strides[r - 1];
    let batch = Layout {
        shape: layout.shape[..r - 2].to_vec(),
        strides: layout.strides[..r - 2].to_vec(),
        offset: layout.offset,
    };
    let mut out = super::buffers::output(layout.numel());
    let mut blocks = out.chunks_mut((rows * cols).max(1));
    batch.for_each_offset(|base| {
        let dst = blocks.next().expect("one block per batch index");
        // Pieces of whole rows on threads natively; within a piece, 32 × 32 tiles through a
        // small buffer, so every read and write is a contiguous run (strided stores straight
        // into `dst` would land, for power-of-two sizes, in one cache set).
        kernels::par_rows(dst, cols, cols, |r0, piece| {
            let mut tile = [0f32; T * T];
            let rows_here = piece.len() / cols;
            for i0 in (0..rows_here).step_by(T) {
                let ti = T.min(rows_here - i0);
                for j0 in (0..cols).step_by(T) {
                    let tj = T.min(cols - j0);
                    for j in 0..tj {
                        let at = base + (j0 + j) * step + r0 + i0;
                        for (di, &v) in x[at..at + ti].iter().enumerate() {
                            tile[di * T + j] = v;
                        }
                    }
                    for di in 0..ti {
                        let row = (i0 + di) * cols + j0;
                        piece[row..row + tj].copy_from_slice(&tile[di * T..di * T + tj]);
                    }
                }
            }
        });
    });
    out
}

/// `dst[i]` = the element at row-major index `start + i` of `layout` over `x`: a slice copy when
/// contiguous, a fill for a broadcast scalar, else runs along the innermost dimension (a slice
/// copy where it is dense, as for a bias broadcast over rows; a fill where it is broadcast) with
/// an odometer over the outer ones from `start` (one division per dimension per chunk, none per
/// element).
fn gather_range(x: &[f32], layout: &Layout, start: usize, dst: &mut [f32]) {
    if layout.is_contiguous() {
        let from = layout.offset + start;
        dst.copy_from_slice(&x[from..from + dst.len()]);
        return;
    }
    if layout.strides.iter().all(|&s| s == 0) {
        dst.fill(x[layout.offset]);
        return;
    }
    let rank = layout.shape.len();
    let mut idx = vec![0usize; rank];
    let mut rem = start;
    let mut off = layout.offset;
    for d in (0..rank).rev() {
        idx[d] = rem % layout.shape[d];
        rem /= layout.shape[d];
        off += idx[d] * layout.strides[d];
    }
    let (inner, step) = (layout.shape[rank - 1], layout.strides[rank - 1]);
    let mut i = 0;
    while i < dst.len() {
        let run = (inner - idx[rank - 1]).min(dst.len() - i);
        let seg = &mut dst[i..i + run];
        match step {
            1 => seg.copy_from_slice(&x[off..off + run]),
            0 => seg.fill(x[off]),
            _ => {
                for (k, o) in seg.iter_mut().enumerate() {
                    *o = x[off + k * step];
                }
            }
        }
        i += run;
        idx[rank - 1] += run;
        off += run * step;
        // Carry into the outer dimensions once the innermost wraps.
        let mut d = rank - 1;
        while idx[d] == layout.shape[d] && d > 0 {
            off -= layout.strides[d] * layout.shape[d];
            idx[d] = 0;
            d -= 1;
            idx[d] += 1;
            off += layout.strides[d];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transposed layout copied in tiles holds its elements in row-major order: plain,
    /// batched, a broadcast batch, an offset, sizes that are not multiples of the tile.
    #[test]
    fn transpose_tiled_matches_the_odometer() {
        let x: Vec<f32> = (0..20000).map(|i| i as f32).collect();
        let layouts = [
            Layout::contiguous(&[40, 70]).permute(&[1, 0]),
            Layout::contiguous(&[3, 33, 45]).permute(&[0, 2, 1]),
            Layout::contiguous(&[33, 45])
                .permute(&[1, 0])
                .broadcast_to(&[2, 45, 33]),
            Layout {
                offset: 5,
                ..Layout::contiguous(&[64, 65])
            }
            .permute(&[1, 0]),
        ];
        for layout in &layouts {
            assert!(is_transposed(layout));
            let mut want = Vec::new();
            layout.for_each_offset(|o| want.push(x[o]));
            assert_eq!(transpose_tiled(&x, layout), want, "{layout:?}");
        }
    }

    /// Every range of every layout kind (dense inner runs of a row broadcast, a column
    /// broadcast, a transposed view, an offset, a size-1 inner dimension) gathers the same
    /// elements as the layout's own odometer.
    #[test]
    fn gather_range_matches_the_odometer() {
        let x: Vec<f32> = (0..4096).map(|i| i as f32).collect();
        let layouts = [
            Layout::contiguous(&[7]).broadcast_to(&[5, 7]),
            Layout::contiguous(&[6, 1]).broadcast_to(&[6, 9]),
            Layout::contiguous(&[9, 13]).permute(&[1, 0]),
            Layout {
                offset: 17,
                ..Layout::contiguous(&[3, 1, 11])
            }
            .broadcast_to(&[2, 3, 4, 11]),
            Layout::contiguous(&[5, 4, 1]).permute(&[1, 0, 2]),
            Layout::contiguous(&[1]).broadcast_to(&[3, 4]),
        ];
        for layout in &layouts {
            let mut want = Vec::new();
            layout.for_each_offset(|o| want.push(x[o]));
            let n = want.len();
            for start in 0..n {
                for len in [1, 2, 5, 13, n - start] {
                    let len = len.min(n - start);
                    let mut got = vec![f32::NAN; len];
                    gather_range(&x, layout, start, &mut got);
                    assert_eq!(
                        got,
                        want[start..start + len],
                        "{layout:?} from {start}, {len}"
                    );
                }
            }
        }
    }
}
