//! The CPU kernels: the reference implementation of every op, reading strided inputs in place.
//! Elementwise arithmetic is each op's f32 reference from `crate::ir`; sums accumulate in f64.

use crate::error::{Error, Result};
use crate::ir::{math, BinaryOp, ReduceOp, UnaryOp};
use crate::shape::{for_each_offsets, Layout};

/// Fills `out` in chunks, `f(start index, chunk)`: on several threads natively when the work is
/// large enough to pay for it, in one call otherwise (and always on wasm).
pub(crate) fn par_map(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    #[cfg(not(target_arch = "wasm32"))]
    if out.len() >= 1 << 16 {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 15;
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| f(c * CHUNK, chunk));
        return;
    }
    f(0, out);
}

/// Fills `out` in pieces of whole rows of `row_len` values, `f(first row, piece)`, where one row
/// costs about `work` element operations: on several threads natively when the whole is large
/// enough to pay for it (pieces of about 32K operations), in one call otherwise.
pub(crate) fn par_rows(
    out: &mut [f32],
    row_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let rows = out.len().checked_div(row_len).unwrap_or(0);
        if rows > 1 && rows.saturating_mul(work) >= 1 << 16 {
            use rayon::prelude::*;
            let per = ((1usize << 15) / work.max(1)).max(1);
            out.par_chunks_mut(per * row_len)
                .enumerate()
                .for_each(|(c, piece)| f(c * per, piece));
            return;
        }
    }
    let _ = (row_len, work);
    f(0, out);
}

/// Copies a strided tensor into a dense row-major vector.
pub(crate) fn gather(x: &[f32], layout: &Layout) -> Vec<f32> {
    if layout.is_contiguous() {
        return super::buffers::copied(&x[layout.offset..layout.offset + layout.numel()]);
    }
    let mut out = Vec::with_capacity(layout.numel());
    layout.for_each_offset(|o| out.push(x[o]));
    out
}

/// Applies `op` to every element of a strided input, dense row-major output.
pub(crate) fn unary(op: UnaryOp, x: &[f32], layout: &Layout) -> Vec<f32> {
    let mut out = Vec::with_capacity(layout.numel());
    if layout.is_contiguous() {
        out.extend(
            x[layout.offset..layout.offset + layout.numel()]
                .iter()
                .map(|&v| op.eval(v)),
        );
    } else {
        layout.for_each_offset(|o| out.push(op.eval(x[o])));
    }
    out
}

/// Both inputs are read through their layouts broadcast to `out_shape`.
pub(crate) fn binary(
    op: BinaryOp,
    a: &[f32],
    la: &Layout,
    b: &[f32],
    lb: &Layout,
    out_shape: &[usize],
) -> Vec<f32> {
    let la = la.broadcast_to(out_shape);
    let lb = lb.broadcast_to(out_shape);
    let n = la.numel();
    let mut out = Vec::with_capacity(n);
    if la.is_contiguous() && lb.is_contiguous() {
        let (a, b) = (&a[la.offset..la.offset + n], &b[lb.offset..lb.offset + n]);
        out.resize(n, 0.0);
        par_map(&mut out, |i, o| {
            for ((o, &x), &y) in o.iter_mut().zip(&a[i..]).zip(&b[i..]) {
                *o = op.eval(x, y);
            }
        });
    } else {
        for_each_offsets([&la, &lb], |[i, j]| out.push(op.eval(a[i], b[j])));
    }
    out
}

/// `cond != 0 ? a : b`, all three read through their layouts broadcast to `out_shape`.
pub(crate) fn select(inputs: [(&[f32], &Layout); 3], out_shape: &[usize]) -> Vec<f32> {
    let [(c, lc), (a, la), (b, lb)] = inputs;
    let ls = [lc, la, lb].map(|l| l.broadcast_to(out_shape));
    let mut out = Vec::with_capacity(ls[0].numel());
    for_each_offsets([&ls[0], &ls[1], &ls[2]], |[i, j, k]| {
        out.push(if c[i] != 0.0 { a[j] } else { b[k] })
    });
    out
}

/// Splits a layout into the kept dims (outer, in order) and the reduced dims (inner, offset 0).
fn split_axes(layout: &Layout, axes: &[usize]) -> (Layout, Layout) {
    let pick = |keep: bool| {
        let dims: Vec<usize> = (0..layout.shape.len())
            .filter(|d| axes.contains(d) != keep)
            .collect();
        Layout {
            shape: dims.iter().map(|&d| layout.shape[d]).collect(),
            strides: dims.iter().map(|&d| layout.strides[d]).collect(),
            offset: if keep { layout.offset } else { 0 },
        }
    };
    (pick(true), pick(false))
}

/// `max` (or, `max == false`, `min`) of `xs`, NaN if one is NaN, `∓inf` for none: 8
/// independent lanes, so the loop vectorizes (an extreme is exact: the order does not change it).
#[inline(always)]
fn extreme_lanes(xs: &[f32], max: bool) -> f32 {
    let better = |v: f32, m: f32| if max { v > m } else { v < m };
    let none = if max {
        f32::NEG_INFINITY
    } else {
        f32::INFINITY
    };
    let mut acc = [none; 8];
    let mut nan = [false; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            acc[i] = if better(c[i], acc[i]) { c[i] } else { acc[i] };
            nan[i] |= c[i].is_nan();
        }
    }
    let mut any_nan = nan.iter().any(|&b| b);
    let mut m = acc
        .iter()
        .fold(none, |m, &v| if better(v, m) { v } else { m });
    for &v in chunks.remainder() {
        m = if better(v, m) { v } else { m };
        any_nan |= v.is_nan();
    }
    if any_nan {
        f32::NAN
    } else {
        m
    }
}

/// `Σ xs` in f64, in 4 independent lanes (so the loop vectorizes), added up at the end.
#[inline(always)]
fn sum_lanes(xs: &[f32]) -> f64 {
    let mut acc = [0f64; 4];
    let mut chunks = xs.chunks_exact(4);
    for c in &mut chunks {
        for i in 0..4 {
            acc[i] += c[i] as f64;
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Reduction over `axes`. Sums accumulate in f64; max/min propagate NaN. Output values are
/// independent: they are computed in parallel pieces natively (`par_rows`).
pub(crate) fn reduce(op: ReduceOp, x: &[f32], layout: &Layout, axes: &[usize]) -> Vec<f32> {
    let (outer, inner) = split_axes(layout, axes);
    let count = inner.numel();
    // Reduced elements at consecutive offsets: the lanes' loops over a slice (decided from the
    // strides: no offset list, which for a whole-tensor reduction would be as long as the input).
    let dense = inner.is_contiguous();
    if !dense && count > 0 {
        if let Some((a, r, c)) = column_blocks(layout, axes) {
            let mut out = super::buffers::output(a * c);
            // Pieces of about 32K loads on threads natively, of at least 16 outputs (a cache
            // line of each row) where a row has as many.
            let g = c.min(16);
            par_rows(&mut out, g, r * g, |first, chunk| {
                reduce_columns(op, &x[layout.offset..], (r, c), first * g, chunk)
            });
            return out;
        }
    }
    let mut inner_offsets = Vec::new();
    if !dense {
        inner_offsets.reserve(count);
        inner.for_each_offset(|o| inner_offsets.push(o));
    }
    let mut bases = Vec::with_capacity(outer.numel());
    for_each_offsets([&outer], |[base]| bases.push(base));
    let mut out = super::buffers::output(bases.len());
    par_rows(&mut out, 1, count, |first, piece| {
        let bases = &bases[first..];
        if dense && count > 0 {
            return reduce_rows(op, x, bases, count, piece);
        }
        for (o, &base) in piece.iter_mut().zip(bases) {
            let vals = inner_offsets.iter().map(|&i| x[base + i]);
            *o = if op.is_sum() {
                let s = vals.map(|v| v as f64).sum::<f64>();
                if op == ReduceOp::Mean {
                    (s / count as f64) as f32
                } else {
                    s as f32
                }
            } else {
                vals.fold(op.identity(), |m, v| op.combine(m, v))
            };
        }
    });
    out
}

/// For a dense input whose reduced axes are one block with kept axes after it (e.g. a sum over
/// the rows of a matrix, over a batch): the sizes `(a, r, c)` of the kept axes before the block,
/// the block, and the kept axes after it. The input is then `a × r × c` row-major.
fn column_blocks(layout: &Layout, axes: &[usize]) -> Option<(usize, usize, usize)> {
    let (lo, hi) = (*axes.iter().min()?, *axes.iter().max()? + 1);
    let rank = layout.shape.len();
    if !layout.is_contiguous() || hi - lo != axes.len() || hi >= rank {
        return None;
    }
    let size = |d: std::ops::Range<usize>| layout.shape[d].iter().product::<usize>();
    Some((size(0..lo), size(lo..hi), size(hi..rank)))
}

/// Outputs `start..start + chunk.len()` of an `a × r × c` reduction over `r` (see
/// [`column_blocks`]): each output row's columns are reduced together, `r` contiguous rows of up
/// to [`COLUMNS`] columns at a time, so every load is a contiguous run (not a column walked
/// with a stride of `c`). Sums go through f64 in the order of `r`, as the strided reference.
fn reduce_columns(
    op: ReduceOp,
    x: &[f32],
    (r, c): (usize, usize),
    start: usize,
    chunk: &mut [f32],
) {
    math::widest!(reduce_columns_portable(op, x, (r, c), start, chunk))
}

/// Columns a block of [`reduce_columns`] accumulates (8 KiB of f64 sums).
const COLUMNS: usize = 1024;

#[inline(always)]
fn reduce_columns_portable(
    op: ReduceOp,
    x: &[f32],
    (r, c): (usize, usize),
    start: usize,
    chunk: &mut [f32],
) {
    let mut acc = [0f64; COLUMNS];
    let mut i = 0;
    while i < chunk.len() {
        let (a, c0) = ((start + i) / c, (start + i) % c);
        let len = (c - c0).min(chunk.len() - i).min(COLUMNS);
        let dst = &mut chunk[i..i + len];
        let base = a * r * c + c0;
        if op.is_sum() {
            // −0 is the exact identity of IEEE addition (0 would turn a sum of −0s into +0).
            let acc = &mut acc[..len];
            acc.fill(-0.0);
            for k in 0..r {
                for (s, &v) in acc.iter_mut().zip(&x[base + k * c..base + k * c + len]) {
                    *s += v as f64;
                }
            }
            let scale = if op == ReduceOp::Mean { r as f64 } else { 1.0 };
            for (d, &s) in dst.iter_mut().zip(acc.iter()) {
                *d = (s / scale) as f32;
            }
        } else {
            let max = op == ReduceOp::Max;
            dst.copy_from_slice(&x[base..base + len]);
            for k in 1..r {
                for (m, &v) in dst.iter_mut().zip(&x[base + k * c..base + k * c + len]) {
                    // NaN stays once it is in (neither comparison holds against it).
                    let better = if max { v > *m } else { v < *m };
                    *m = if better || v.is_nan() { v } else { *m };
                }
            }
        }
        i += len;
    }
}

/// `op` over the dense rows `x[bases[r]..bases[r] + count]` into `piece[r]`, in lanes, compiled
/// for the widest vector unit (`math::widest!`).
fn reduce_rows(op: ReduceOp, x: &[f32], bases: &[usize], count: usize, piece: &mut [f32]) {
    math::widest!(reduce_rows_portable(op, x, bases, count, piece))
}

#[inline(always)]
fn reduce_rows_portable(op: ReduceOp, x: &[f32], bases: &[usize], count: usize, out: &mut [f32]) {
    for (o, &base) in out.iter_mut().zip(bases) {
        let row = &x[base..base + count];
        *o = match op {
            ReduceOp::Max => extreme_lanes(row, true),
            ReduceOp::Min => extreme_lanes(row, false),
            ReduceOp::Mean => (sum_lanes(row) / count as f64) as f32,
            ReduceOp::Sum => sum_lanes(row) as f32,
        };
    }
}

/// Softmax rows `piece` (rows of `len`), row `r` read from `x` at `bases[r] + j * si`; compiled
/// for the widest vector unit (`math::widest!`).
fn softmax_rows(x: &[f32], si: usize, bases: &[usize], log: bool, piece: &mut [f32], len: usize) {
    math::widest!(softmax_rows_portable(x, si, bases, log, piece, len))
}

#[inline(always)]
fn softmax_rows_portable(
    x: &[f32],
    si: usize,
    bases: &[usize],
    log: bool,
    piece: &mut [f32],
    len: usize,
) {
    let mut gathered = if si == 1 { Vec::new() } else { vec![0f32; len] };
    for (dst, &bi) in piece.chunks_mut(len).zip(bases) {
        let row: &[f32] = if si == 1 {
            &x[bi..bi + len]
        } else {
            for (j, r) in gathered.iter_mut().enumerate() {
                *r = x[bi + j * si];
            }
            &gathered
        };
        // Each pass a loop that vectorizes: the max, exp once per element into the output,
        // the sum in f64, then one multiplication by the reciprocal (no division per element).
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let m = crate::ir::simd128::max(row);
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        let m = extreme_lanes(row, true);
        let sum = if m.is_finite() {
            // Every x − m is ≤ 0 or −inf (not NaN): the lean exp (in the browser build, fused
            // with the sum in hand-written SIMD).
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            {
                crate::ir::simd128::exp_sum(row, m, dst)
            }
            #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
            {
                for (e, &v) in dst.iter_mut().zip(row) {
                    *e = math::exp_nonpos(v - m);
                }
                sum_lanes(dst)
            }
        } else {
            // A NaN (then m is NaN) or an infinity in the row: IEEE's answer, through the full
            // exp.
            for (e, &v) in dst.iter_mut().zip(row) {
                *e = math::exp(v - m);
            }
            sum_lanes(dst)
        };
        if log {
            let lse = sum.ln() as f32;
            for (r, &v) in dst.iter_mut().zip(row) {
                *r = v - m - lse;
            }
        } else {
            // (1/Σ rounded to f32, then one f32 product: within 1 ulp of e/Σ.)
            let inv = (1.0 / sum) as f32;
            for r in dst.iter_mut() {
                *r *= inv;
            }
        }
    }
}

/// Softmax (or its log) over `r` of dense blocks `r × c` (`x` and `out` hold whole blocks): for
/// up to [`COLUMNS`] columns at a time, the columns' max, then `e^(x − max)` into `out` with its
/// f64 sums, then the scaling — each pass over contiguous runs of the rows. The formulas of
/// [`softmax_rows_portable`] (the lean exp where every column's max is finite).
fn softmax_columns(x: &[f32], (r, c): (usize, usize), log: bool, out: &mut [f32]) {
    math::widest!(softmax_columns_portable(x, (r, c), log, out))
}

#[inline(always)]
fn softmax_columns_portable(x: &[f32], (r, c): (usize, usize), log: bool, out: &mut [f32]) {
    let mut m = [0f32; COLUMNS];
    let mut sums = [0f64; COLUMNS];
    let mut scale = [0f32; COLUMNS];
    for (xb, ob) in x.chunks(r * c).zip(out.chunks_mut(r * c)) {
        for j0 in (0..c).step_by(COLUMNS) {
            let len = COLUMNS.min(c - j0);
            let at = |k: usize| k * c + j0..k * c + j0 + len;
            let m = &mut m[..len];
            m.copy_from_slice(&xb[at(0)]);
            for k in 1..r {
                for (m, &v) in m.iter_mut().zip(&xb[at(k)]) {
                    *m = if v > *m || v.is_nan() { v } else { *m };
                }
            }
            let lean = m.iter().all(|v| v.is_finite());
            let sums = &mut sums[..len];
            sums.fill(-0.0);
            for k in 0..r {
                let (src, dst) = (&xb[at(k)], &mut ob[at(k)]);
                for (((e, &v), &mk), s) in
                    dst.iter_mut().zip(src).zip(m.iter()).zip(sums.iter_mut())
                {
                    *e = if lean {
                        math::exp_nonpos(v - mk)
                    } else {
                        math::exp(v - mk)
                    };
                    *s += *e as f64;
                }
            }
            let scale = &mut scale[..len];
            for (f, &s) in scale.iter_mut().zip(sums.iter()) {
                *f = if log { s.ln() as f32 } else { (1.0 / s) as f32 };
            }
            for k in 0..r {
                let (src, dst) = (&xb[at(k)], &mut ob[at(k)]);
                if log {
                    for (((o, &v), &mk), &lse) in
                        dst.iter_mut().zip(src).zip(m.iter()).zip(scale.iter())
                    {
                        *o = v - mk - lse;
                    }
                } else {
                    for (o, &f) in dst.iter_mut().zip(scale.iter()) {
                        *o *= f;
                    }
                }
            }
        }
    }
}

/// For each row along `axis`: `exp(x - max) / Σ exp(x - max)` (or its log). Rows are computed
/// in parallel pieces natively, into a rows-last buffer that is the output when `axis` is the
/// last dimension (else one scatter into place).
pub(crate) fn softmax(x: &[f32], layout: &Layout, axis: usize, log: bool) -> Vec<f32> {
    if layout.numel() == 0 {
        return Vec::new();
    }
    let len = layout.shape[axis];
    let rank = layout.shape.len();
    if axis + 1 < rank && layout.is_contiguous() {
        // Along an axis with others after it: the rows of each outer block reduced and
        // scaled together, every load contiguous (not each row gathered with a stride).
        let c = layout.shape[axis + 1..].iter().product::<usize>();
        let x = &x[layout.offset..layout.offset + layout.numel()];
        let mut out = super::buffers::output(layout.numel());
        par_rows(&mut out, len * c, 4 * len * c, |first, piece| {
            let x = &x[first * len * c..first * len * c + piece.len()];
            softmax_columns(x, (len, c), log, piece)
        });
        return out;
    }
    let (outer_in, row_in) = split_axes(layout, &[axis]);
    let si = row_in.strides[0];
    let mut bases = Vec::with_capacity(outer_in.numel());
    for_each_offsets([&outer_in], |[b]| bases.push(b));
    let mut rows = super::buffers::output(layout.numel());
    par_rows(&mut rows, len, 4 * len, |first, piece| {
        softmax_rows(x, si, &bases[first..], log, piece, len)
    });
    if axis + 1 == layout.shape.len() {
        return rows;
    }
    let mut out = super::buffers::output(rows.len());
    let (outer_out, row_out) = split_axes(&Layout::contiguous(&layout.shape), &[axis]);
    let so = row_out.strides[0];
    let mut src = rows.chunks(len);
    for_each_offsets([&outer_out], |[bo]| {
        let row = src.next().expect("one row per outer index");
        for (j, &v) in row.iter().enumerate() {
            out[bo + j * so] = v;
        }
    });
    drop(super::HostBuffer::new(rows));
    out
}

/// One faer GEMM per batch entry, reading strided operands in place.
pub(crate) fn matmul(
    a: &[f32],
    la: &Layout,
    b: &[f32],
    lb: &Layout,
    out_shape: &[usize],
) -> Vec<f32> {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let k = la.shape[la.shape.len() - 1];
    let batch = &out_shape[..r - 2];
    let len = out_shape.iter().product();
    if m == 0 || n == 0 || k == 0 {
        return super::buffers::zeroed(len);
    }
    // Every element is written (the products replace, never accumulate): no zeroing first.
    let mut out = super::buffers::output(len);
    // Layouts come from our own views of these very buffers; check once to keep the raw views sound.
    assert!(
        la.extent() <= a.len() && lb.extent() <= b.len(),
        "matmul: layout exceeds its buffer"
    );
    let (ars, acs) = (
        la.strides[la.shape.len() - 2] as isize,
        la.strides[la.shape.len() - 1] as isize,
    );
    let (brs, bcs) = (
        lb.strides[lb.shape.len() - 2] as isize,
        lb.strides[lb.shape.len() - 1] as isize,
    );
    #[cfg(not(target_arch = "wasm32"))]
    let threads = if m * n * k >= 96 * 96 * 96 {
        rayon::current_num_threads()
    } else {
        1
    };
    #[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
    let threads = 1;
    let mut chunks = out.chunks_mut(m * n);
    for_each_offsets([&la.batch_to(batch), &lb.batch_to(batch)], |[oa, ob]| {
        let dst = chunks.next().expect("one output block per batch entry");
        // The browser build: our own WebAssembly SIMD product (fused multiply-adds where the
        // build has relaxed SIMD); natively (and in a wasm build without SIMD) faer's.
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            use super::gemm128::{gemm, Operand};
            let (lhs, rhs) = (
                Operand {
                    data: a,
                    offset: oa,
                    rs: ars as usize,
                    cs: acs as usize,
                },
                Operand {
                    data: b,
                    offset: ob,
                    rs: brs as usize,
                    cs: bcs as usize,
                },
            );
            gemm(dst, m, n, k, lhs, rhs);
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        {
            // SAFETY: every index oa + i*ars + j*acs (i < m, j < k) is below la.extent() ≤
            // a.len(), likewise for b; the slices outlive the views.
            let (lhs, rhs) = unsafe {
                (
                    faer::MatRef::from_raw_parts(a.as_ptr().add(oa), m, k, ars, acs),
                    faer::MatRef::from_raw_parts(b.as_ptr().add(ob), k, n, brs, bcs),
                )
            };
            let dst = faer::MatMut::from_row_major_slice_mut(dst, m, n);
            product(dst, lhs, rhs, threads);
        }
    });
    out
}

/// `dst = lhs · rhs` on `threads` threads. On up to [`GRID_THREADS`] threads `dst` is cut into a
/// grid of `pr × pc` blocks, one a thread, each a sequential faer product that packs its own
/// strips of the operands; the grid minimizes what a thread packs (`m/pr + n/pc` rows and
/// columns of `k`), columns first on a tie. On more threads, faer's own parallel product.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn product(dst: faer::MatMut<f32>, lhs: faer::MatRef<f32>, rhs: faer::MatRef<f32>, threads: usize) {
    use faer::linalg::matmul::matmul;
    #[cfg(not(target_arch = "wasm32"))]
    if threads > GRID_THREADS {
        let par = faer::Par::rayon(0);
        matmul(dst, faer::Accum::Replace, lhs, rhs, 1.0f32, par);
        return;
    } else if threads > 1 {
        use rayon::prelude::*;
        let (m, n) = (dst.nrows(), dst.ncols());
        let (pr, pc) = (1..=threads)
            .filter(|pr| threads % pr == 0)
            .map(|pr| (pr, threads / pr))
            .min_by_key(|&(pr, pc)| (m.div_ceil(pr) + n.div_ceil(pc), pr))
            .unwrap_or((1, 1));
        let cuts = |len: usize, parts: usize| -> Vec<(usize, usize)> {
            let w = len.div_ceil(parts);
            (0..len)
                .step_by(w.max(1))
                .map(|s| (s, w.min(len - s)))
                .collect()
        };
        let mut blocks = Vec::new();
        let mut rows = dst;
        for (r0, rh) in cuts(m, pr) {
            let (strip, rest) = rows.split_at_row_mut(rh);
            rows = rest;
            let mut cols = strip;
            for (c0, cw) in cuts(n, pc) {
                let (block, rest) = cols.split_at_col_mut(cw);
                cols = rest;
                blocks.push((r0, c0, block));
            }
        }
        blocks.into_par_iter().for_each(|(r0, c0, d)| {
            let (a, b) = (lhs.subrows(r0, d.nrows()), rhs.subcols(c0, d.ncols()));
            matmul(d, faer::Accum::Replace, a, b, 1.0f32, faer::Par::Seq);
        });
        return;
    }
    let _ = threads;
    matmul(dst, faer::Accum::Replace, lhs, rhs, 1.0f32, faer::Par::Seq);
}

/// The most threads [`product`] cuts a matrix product into a grid of sequential products for.
/// faer's own parallel product scales worse on few cores: 1024² on 2 cores (AVX-512) 7.0–7.5 ms
/// against 5.7–6.3 for the grid (numpy's OpenBLAS 5.6–6.5), while on 16 it is as fast or
/// faster (1.89 ms against 1.98–2.23 for a 4 × 4 grid; H100's host, one call).
#[cfg(not(target_arch = "wasm32"))]
const GRID_THREADS: usize = 4;

/// Whether `U·diag(s)·Vᵀ` (`U` m×k, `V` n×k) is `a` (row-major m×n) up to far more than
/// rounding: `‖A·x − U·(Σ·(Vᵀ·x))‖ ≤ 1e-3·‖A‖_F·‖x‖` in f64 for a fixed vector `x` of
/// irrational-looking entries, with every factor finite — O(mn) work, against the SVD's O(mn·k).
/// It catches a wrong factorization (garbage), not a slightly inaccurate one.
fn residual_ok(
    a: &[f32],
    m: usize,
    n: usize,
    u: faer::MatRef<f32>,
    s: faer::ColRef<f32>,
    v: faer::MatRef<f32>,
) -> bool {
    let k = s.nrows();
    let x: Vec<f64> = (0..n)
        .map(|j| 1.0 + ((j as f64 + 1.0) * 0.618_033_988_749_895).fract())
        .collect();
    let mut vtx = vec![0f64; k];
    for (p, t) in vtx.iter_mut().enumerate() {
        *t = s[p] as f64 * (0..n).map(|j| v[(j, p)] as f64 * x[j]).sum::<f64>();
    }
    let mut r2 = 0f64;
    for i in 0..m {
        let ax: f64 = (0..n).map(|j| a[i * n + j] as f64 * x[j]).sum();
        let usv: f64 = (0..k).map(|p| u[(i, p)] as f64 * vtx[p]).sum();
        r2 += (ax - usv).powi(2);
    }
    let a2: f64 = a.iter().map(|&t| (t as f64).powi(2)).sum();
    let x2: f64 = x.iter().map(|t| t * t).sum();
    r2.is_finite() && r2.sqrt() <= 1e-3 * (a2 * x2).sqrt()
}

/// Thin SVD (faer's divide-and-conquer bidiagonal SVD): packs `U` (m×k, row-major), the
/// singular values (descending, ≥ 0) and `Vᵀ` (k×n, row-major). Every factorization is checked
/// by [`residual_ok`]; one that fails is computed again, then reported as an error.
pub(crate) fn svd(x: &[f32], layout: &Layout, m: usize, n: usize) -> Result<Vec<f32>> {
    let k = m.min(n);
    let a = gather(x, layout);
    let mut out = vec![0f32; crate::ir::svd_packed_len(m, n)];
    if k == 0 {
        return Ok(out);
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical {
            op: "svd",
            message: format!("the {m}×{n} input contains NaN or infinity"),
        });
    }
    let mat = faer::MatRef::from_row_major_slice(&a, m, n);
    let factor = || {
        mat.thin_svd().map_err(|e| Error::Numerical {
            op: "svd",
            message: format!("no convergence on the {m}×{n} input ({e:?})"),
        })
    };
    // A factorization that fails the residual check is computed once more (a wrong result was
    // seen once in WebKitGTK's wasm, and not again in thousands of runs), then reported.
    let mut svd = factor()?;
    if !residual_ok(&a, m, n, svd.U(), svd.S().column_vector(), svd.V()) {
        svd = factor()?;
        if !residual_ok(&a, m, n, svd.U(), svd.S().column_vector(), svd.V()) {
            return Err(Error::Numerical {
                op: "svd",
                message: format!(
                    "the {m}×{n} factorization failed its residual check (‖Ax − UΣVᵀx‖ above \
                     1e-3·‖A‖_F·‖x‖) twice"
                ),
            });
        }
    }
    let (u, s, v) = (svd.U(), svd.S(), svd.V());
    for i in 0..m {
        for j in 0..k {
            out[i * k + j] = u[(i, j)];
        }
    }
    let s = s.column_vector();
    for j in 0..k {
        out[m * k + j] = s[j];
    }
    let base = m * k + k;
    for i in 0..k {
        for j in 0..n {
            out[base + i * n + j] = v[(j, i)];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The residual check passes faer's factorization and fails it once an entry is wrong.
    #[test]
    fn residual_check() {
        let (m, n) = (30, 7);
        let a: Vec<f32> = (0..m * n)
            .map(|i| ((i * 7919 % 211) as f32 / 105.0) - 1.0)
            .collect();
        let svd = faer::MatRef::from_row_major_slice(&a, m, n)
            .thin_svd()
            .unwrap();
        let s = svd.S().column_vector();
        assert!(residual_ok(&a, m, n, svd.U(), s, svd.V()));
        let mut u = svd.U().to_owned();
        u[(3, 0)] += 0.5;
        assert!(!residual_ok(&a, m, n, u.as_ref(), s, svd.V()));
        u[(3, 0)] = f32::NAN;
        assert!(!residual_ok(&a, m, n, u.as_ref(), s, svd.V()));
    }
}
