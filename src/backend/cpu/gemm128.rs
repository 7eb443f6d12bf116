//! The browser build's f32 matrix product, written in WebAssembly SIMD: packed panels (GotoBLAS'
//! blocking: a `KC × NC` block of B, an `MC × KC` block of A) and a micro-kernel that keeps an
//! `MR × NR` tile of outputs in eight `v128` accumulators; a step loads one vector of A (four
//! rows) and two of B, and broadcasts A's lanes by shuffles (fewer loads than four splats: in
//! Chromium 7.0–7.4 ms at 512² against 7.4–7.7).
//!
//! With the `relaxed-simd` target feature (the second wasm that `scripts/build-web` writes, which
//! the npm package loads where the engine validates relaxed SIMD, e.g. Chromium) each step is
//! `f32x4.relaxed_madd`, a fused multiply-add on CPUs that have one: in Chromium on this 2-core
//! Xeon, 512² 7.0–7.7 ms against 12.0 for the multiply + add build (and TF.js' wasm backend,
//! XNNPACK's SIMD build, 8.8–9.6). Without it the same loop runs a multiply and an add (as fast as
//! faer's product, which it replaces in wasm). A fused product rounds once where the other rounds
//! twice, so the two builds may differ in the last bits; both are held to the suite's matmul
//! tolerances against f64.

use crate::ir::simd128::madd;
use core::arch::wasm32::*;

/// Rows of a micro-tile (accumulators: `MR × 2` vectors).
const MR: usize = 4;
// The kernel broadcasts the four lanes of one vector of A.
const _: () = assert!(MR == 4);
/// Columns of a micro-tile (two `f32x4` vectors).
const NR: usize = 8;
/// Depth of a packed block: a micro-panel of B (`KC × NR`) stays in L1.
const KC: usize = 256;
/// Rows of a packed block of A (`MC × KC`, in L2; a multiple of `MR`).
const MC: usize = 16 * MR;
/// Columns of a packed block of B (`KC × NC`).
const NC: usize = 512;

/// A strided matrix operand: element `(i, j)` is `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl Operand<'_> {
    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[self.offset + i * self.rs + j * self.cs]
    }
}

/// `dst = a · b` for `a` m×k and `b` k×n, `dst` row-major m×n (every element written).
pub(crate) fn gemm(dst: &mut [f32], m: usize, n: usize, k: usize, a: Operand, b: Operand) {
    assert_eq!(dst.len(), m * n, "gemm: destination size");
    if k == 0 {
        dst.fill(0.0);
        return;
    }
    // Packing writes every element it later reads: recycled buffers need no zeroing.
    let mut bp = super::buffers::output(KC * NC.min(n.next_multiple_of(NR)));
    let mut ap = super::buffers::output(MC.min(m.next_multiple_of(MR)) * KC);
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            pack_b(&mut bp, b, p0, kc, j0, nc);
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                pack_a(&mut ap, a, i0, mc, p0, kc);
                for jr in (0..nc).step_by(NR) {
                    let bpanel = &bp[jr * kc..(jr + NR) * kc];
                    for ir in (0..mc).step_by(MR) {
                        let apanel = &ap[ir * kc..(ir + MR) * kc];
                        let acc = kernel(kc, apanel, bpanel);
                        store(
                            dst,
                            n,
                            (i0 + ir, j0 + jr),
                            (MR.min(mc - ir), NR.min(nc - jr)),
                            &acc,
                            p0 > 0,
                        );
                    }
                }
            }
        }
    }
    drop(super::HostBuffer::new(bp));
    drop(super::HostBuffer::new(ap));
}

/// Packs rows `i0..i0+mc`, columns `p0..p0+kc` of `a` into micro-panels of `MR` rows, each
/// stored step by step (`MR` values of one column of A together), rows past `mc` as zeros.
fn pack_a(ap: &mut [f32], a: Operand, i0: usize, mc: usize, p0: usize, kc: usize) {
    for ir in (0..mc).step_by(MR) {
        let panel = &mut ap[ir * kc..(ir + MR) * kc];
        for r in 0..MR {
            let i = ir + r;
            if i < mc {
                for p in 0..kc {
                    panel[p * MR + r] = a.at(i0 + i, p0 + p);
                }
            } else {
                for p in 0..kc {
                    panel[p * MR + r] = 0.0;
                }
            }
        }
    }
}

/// Packs rows `p0..p0+kc`, columns `j0..j0+nc` of `b` into micro-panels of `NR` columns, each
/// stored row by row, columns past `nc` as zeros.
fn pack_b(bp: &mut [f32], b: Operand, p0: usize, kc: usize, j0: usize, nc: usize) {
    for jr in (0..nc).step_by(NR) {
        let panel = &mut bp[jr * kc..(jr + NR) * kc];
        let w = NR.min(nc - jr);
        for p in 0..kc {
            let row = &mut panel[p * NR..(p + 1) * NR];
            if b.cs == 1 && w == NR {
                let s = b.offset + (p0 + p) * b.rs + j0 + jr;
                row.copy_from_slice(&b.data[s..s + NR]);
            } else {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = if c < w {
                        b.at(p0 + p, j0 + jr + c)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// The `MR × NR` products of one A micro-panel and one B micro-panel over `kc` steps.
#[inline(always)]
fn kernel(kc: usize, ap: &[f32], bp: &[f32]) -> [[v128; 2]; MR] {
    assert!(ap.len() >= kc * MR && bp.len() >= kc * NR);
    let mut acc = [[f32x4_splat(0.0); 2]; MR];
    let (a, b) = (ap.as_ptr(), bp.as_ptr());
    for p in 0..kc {
        // SAFETY: p < kc, and both panels hold kc steps (asserted above); wasm loads need no
        // alignment.
        unsafe {
            let b0 = v128_load(b.add(p * NR) as *const v128);
            let b1 = v128_load(b.add(p * NR + 4) as *const v128);
            let av = v128_load(a.add(p * MR) as *const v128);
            let xs = [
                i32x4_shuffle::<0, 0, 0, 0>(av, av),
                i32x4_shuffle::<1, 1, 1, 1>(av, av),
                i32x4_shuffle::<2, 2, 2, 2>(av, av),
                i32x4_shuffle::<3, 3, 3, 3>(av, av),
            ];
            for (x, acc) in xs.into_iter().zip(acc.iter_mut()) {
                acc[0] = madd(x, b0, acc[0]);
                acc[1] = madd(x, b1, acc[1]);
            }
        }
    }
    acc
}

/// Writes (or, after the first block of `k`, adds) a micro-tile's `rows × cols` valid outputs
/// at `(i, j)` of the row-major `dst` with `n` columns.
#[inline(always)]
fn store(
    dst: &mut [f32],
    n: usize,
    (i, j): (usize, usize),
    (rows, cols): (usize, usize),
    acc: &[[v128; 2]; MR],
    add: bool,
) {
    for (r, acc) in acc.iter().enumerate().take(rows) {
        let row = &mut dst[(i + r) * n + j..(i + r) * n + j + cols];
        if cols == NR {
            // SAFETY: `row` holds NR = 8 floats: two unaligned v128 stores fit.
            unsafe {
                let p = row.as_mut_ptr() as *mut v128;
                if add {
                    v128_store(p, f32x4_add(v128_load(p), acc[0]));
                    v128_store(p.add(1), f32x4_add(v128_load(p.add(1)), acc[1]));
                } else {
                    v128_store(p, acc[0]);
                    v128_store(p.add(1), acc[1]);
                }
            }
        } else {
            let mut t = [0.0f32; NR];
            // SAFETY: t holds NR = 8 floats.
            unsafe {
                v128_store(t.as_mut_ptr() as *mut v128, acc[0]);
                v128_store(t.as_mut_ptr().add(4) as *mut v128, acc[1]);
            }
            for (d, v) in row.iter_mut().zip(t) {
                *d = if add { *d + v } else { v };
            }
        }
    }
}
