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

/// Copies a strided tensor into a dense row-major vector.
pub(crate) fn gather(x: &[f32], layout: &Layout) -> Vec<f32> {
    if layout.is_contiguous() {
        return x[layout.offset..layout.offset + layout.numel()].to_vec();
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

/// Reduction over `axes`. Sums accumulate in f64; max/min propagate NaN.
pub(crate) fn reduce(op: ReduceOp, x: &[f32], layout: &Layout, axes: &[usize]) -> Vec<f32> {
    let (outer, inner) = split_axes(layout, axes);
    let mut inner_offsets = Vec::with_capacity(inner.numel());
    inner.for_each_offset(|o| inner_offsets.push(o));
    let count = inner_offsets.len();
    let mut out = Vec::with_capacity(outer.numel());
    for_each_offsets([&outer], |[base]| {
        let vals = inner_offsets.iter().map(|&o| x[base + o]);
        let r = if op.is_sum() {
            let s = vals.map(|v| v as f64).sum::<f64>();
            if op == ReduceOp::Mean {
                (s / count as f64) as f32
            } else {
                s as f32
            }
        } else {
            vals.fold(op.identity(), |m, v| op.combine(m, v))
        };
        out.push(r);
    });
    out
}

/// For each row along `axis`: `exp(x - max) / Σ exp(x - max)` (or its log).
pub(crate) fn softmax(x: &[f32], layout: &Layout, axis: usize, log: bool) -> Vec<f32> {
    let n = layout.numel();
    let mut out = vec![0f32; n];
    let (outer_in, row_in) = split_axes(layout, &[axis]);
    let (outer_out, row_out) = split_axes(&Layout::contiguous(&layout.shape), &[axis]);
    let len = layout.shape[axis];
    let (si, so) = (row_in.strides[0], row_out.strides[0]);
    let mut row = vec![0f32; len];
    let mut exps = vec![0f32; len];
    for_each_offsets([&outer_in, &outer_out], |[bi, bo]| {
        for (j, r) in row.iter_mut().enumerate() {
            *r = x[bi + j * si];
        }
        let m = row
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| ReduceOp::Max.combine(m, v));
        // exp once per element, in a loop that vectorizes; the sum in f64.
        for (e, &v) in exps.iter_mut().zip(&row) {
            *e = math::exp(v - m);
        }
        let sum: f64 = exps.iter().map(|&e| e as f64).sum();
        let lse = (sum.ln()) as f32;
        for j in 0..len {
            out[bo + j * so] = if log {
                row[j] - m - lse
            } else {
                (exps[j] as f64 / sum) as f32
            };
        }
    });
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
    let mut out = vec![0f32; out_shape.iter().product()];
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
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
    let par = if m * n * k >= 96 * 96 * 96 {
        faer::Par::rayon(0)
    } else {
        faer::Par::Seq
    };
    #[cfg(target_arch = "wasm32")]
    let par = faer::Par::Seq;
    let mut chunks = out.chunks_mut(m * n);
    for_each_offsets([&la.batch_to(batch), &lb.batch_to(batch)], |[oa, ob]| {
        let dst = chunks.next().expect("one output block per batch entry");
        // SAFETY: every index oa + i*ars + j*acs (i < m, j < k) is below la.extent() ≤ a.len(),
        // likewise for b; the slices outlive the views.
        let (lhs, rhs) = unsafe {
            (
                faer::MatRef::from_raw_parts(a.as_ptr().add(oa), m, k, ars, acs),
                faer::MatRef::from_raw_parts(b.as_ptr().add(ob), k, n, brs, bcs),
            )
        };
        let dst = faer::MatMut::from_row_major_slice_mut(dst, m, n);
        faer::linalg::matmul::matmul(dst, faer::Accum::Replace, lhs, rhs, 1.0f32, par);
    });
    out
}
/// Thin SVD (faer's divide-and-conquer bidiagonal SVD): packs `U` (m×k, row-major), the
/// singular values (descending, ≥ 0) and `Vᵀ` (k×n, row-major).
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
    let svd = faer::MatRef::from_row_major_slice(&a, m, n)
        .thin_svd()
        .map_err(|e| Error::Numerical {
            op: "svd",
            message: format!("no convergence on the {m}×{n} input ({e:?})"),
        })?;
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
