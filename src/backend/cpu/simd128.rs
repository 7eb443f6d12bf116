//! WebAssembly SIMD written out by hand where it pays in the browser build: softmax's
//! exponentials fused with their sum, 30% faster than the portable loops of `kernels.rs` (which
//! vectorize to `simd128` too, but in two passes and with a degree-6 exponential). Natively the
//! portable loops run.
//!
//! The exponential is XNNPACK's `rr2_p5` form: `eʳ` on `|r| ≤ ln2/2` by a degree-5 polynomial
//! (four fewer operations a vector than `ir::math`'s), within 3e-7 relative of eˣ for x in
//! [−87, 0] (measured against f64 over that range; the suite holds softmax to its tolerances in
//! Chromium and WebKitGTK); 0 below −87, as `math::exp_nonpos`. The sum adds f32 lanes over
//! blocks of 256 elements, then each block's total in f64: within 32·2⁻²⁴ relative per block
//! (an f64 sum inside the loop would cost more than the cheaper exponential saves).
#![allow(clippy::excessive_precision)]

use core::arch::wasm32::*;

/// Elements a block of the sum adds in f32 lanes (8 a step, two vectors of accumulators).
const BLOCK: usize = 256;

/// The exponential's constants, splatted once per call. V8 materializes a `v128.const` again at
/// each use inside a loop; values it receives through `black_box` stay in registers (XNNPACK
/// forces the same with `XNN_FORCE_REALIZATION`). In Chromium this alone takes the loop below
/// from 0.9 to 0.65 ns an element.
#[derive(Clone, Copy)]
struct ExpConsts {
    cutoff: v128,
    magic: v128,
    log2e: v128,
    ln2_hi: v128,
    ln2_lo: v128,
    c: [v128; 5],
}

impl ExpConsts {
    #[inline(always)]
    fn new() -> Self {
        let k = |bits: u32| f32x4_splat(f32::from_bits(bits));
        std::hint::black_box(ExpConsts {
            cutoff: f32x4_splat(-87.0),
            // 1.5·2²³ + 127: the sum's low mantissa bits hold n + 127, shifted into 2ⁿ's
            // exponent.
            magic: f32x4_splat(12_583_039.0),
            log2e: f32x4_splat(std::f32::consts::LOG2_E),
            // ln 2 in two parts (Cephes' split, as `math::exp_core`).
            ln2_hi: f32x4_splat(0.693_359_4),
            ln2_lo: f32x4_splat(-2.121_944_4e-4),
            // XNNPACK's minimax coefficients, c5 … c1.
            c: [
                k(0x3C07_CFCE),
                k(0x3D2B_9D0D),
                k(0x3E2A_AD40),
                k(0x3EFF_FEE3),
                k(0x3F7F_FFFB),
            ],
        })
    }
}

/// `e^d` of four lanes, for `d ≤ 0` or −inf (not NaN: the caller's max is finite); lanes below
/// −87 (where the arithmetic leaves the range of 2ⁿ) are masked to 0 at the end.
#[inline(always)]
fn exp_nonpos4(d: v128, k: &ExpConsts) -> v128 {
    let t = f32x4_add(f32x4_mul(d, k.log2e), k.magic);
    let s = i32x4_shl(t, 23);
    let n = f32x4_sub(t, k.magic);
    let r = f32x4_sub(d, f32x4_mul(n, k.ln2_hi));
    let r = f32x4_sub(r, f32x4_mul(n, k.ln2_lo));
    // eʳ ≈ 1 + r·p(r), p of degree 4, then e = s + (r·s)·p.
    let mut p = f32x4_add(f32x4_mul(k.c[0], r), k.c[1]);
    p = f32x4_add(f32x4_mul(p, r), k.c[2]);
    p = f32x4_add(f32x4_mul(p, r), k.c[3]);
    p = f32x4_add(f32x4_mul(p, r), k.c[4]);
    let e = f32x4_add(f32x4_mul(f32x4_mul(r, s), p), s);
    v128_andnot(e, f32x4_lt(d, k.cutoff))
}

/// `out[i] = e^(row[i] − m)` for a row whose max `m` is finite, returning `Σ out[i]`.
pub(crate) fn exp_sum(row: &[f32], m: f32, out: &mut [f32]) -> f64 {
    assert_eq!(row.len(), out.len());
    let k = ExpConsts::new();
    let mv = f32x4_splat(m);
    let n = row.len();
    let whole = n & !7;
    let mut total = 0f64;
    let mut i = 0;
    while i < whole {
        let end = (i + BLOCK).min(whole);
        let (mut acc0, mut acc1) = (f32x4_splat(0.0), f32x4_splat(0.0));
        while i < end {
            // SAFETY: i + 8 ≤ whole ≤ n = row.len() = out.len(); unaligned loads and stores
            // are allowed by `v128_load`/`v128_store`.
            unsafe {
                let a = exp_nonpos4(f32x4_sub(v128_load(row.as_ptr().add(i).cast()), mv), &k);
                let b = exp_nonpos4(f32x4_sub(v128_load(row.as_ptr().add(i + 4).cast()), mv), &k);
                v128_store(out.as_mut_ptr().add(i).cast(), a);
                v128_store(out.as_mut_ptr().add(i + 4).cast(), b);
                acc0 = f32x4_add(acc0, a);
                acc1 = f32x4_add(acc1, b);
            }
            i += 8;
        }
        total += lanes_sum(f32x4_add(acc0, acc1));
    }
    // The last up to 7 elements through the same vector code, padded with −inf (e⁻∞ = 0).
    for (src, dst) in row[whole..].chunks(4).zip(out[whole..].chunks_mut(4)) {
        let mut pad = [f32::NEG_INFINITY; 4];
        pad[..src.len()].copy_from_slice(src);
        let e = exp_nonpos4(f32x4_sub(f32x4(pad[0], pad[1], pad[2], pad[3]), mv), &k);
        let lanes = [
            f32x4_extract_lane::<0>(e),
            f32x4_extract_lane::<1>(e),
            f32x4_extract_lane::<2>(e),
            f32x4_extract_lane::<3>(e),
        ];
        dst.copy_from_slice(&lanes[..dst.len()]);
        total += lanes_sum(e);
    }
    total
}

/// The four lanes' sum, in f64.
fn lanes_sum(v: v128) -> f64 {
    (f32x4_extract_lane::<0>(v) as f64 + f32x4_extract_lane::<1>(v) as f64)
        + (f32x4_extract_lane::<2>(v) as f64 + f32x4_extract_lane::<3>(v) as f64)
}
