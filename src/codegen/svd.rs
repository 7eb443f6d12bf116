//! The stages of the one-sided Jacobi SVD, from the `svd.wgsl` template (one source, a stage
//! constant). The driver that sequences them lives in the GPU backend.

use super::Sizes;
use crate::shape::Layout;

const SVD: &str = include_str!("svd.wgsl");

/// Stage numbers: 0 init, 1 rotate one round (one workgroup per pair of column blocks),
/// 2 normalize, 3 complete, 4 finalize, 5 check (after each sweep).
pub(crate) const INIT: u32 = 0;
pub(crate) const ROTATE: u32 = 1;
pub(crate) const NORMALIZE: u32 = 2;
pub(crate) const COMPLETE: u32 = 3;
pub(crate) const FINALIZE: u32 = 4;
pub(crate) const CHECK: u32 = 5;

/// Columns per block of a rotation round, at most, by the working matrix's column count: each
/// round (one dispatch) runs `2·block − 1` or `block` inner rounds in every workgroup, with
/// `256 / block` threads per column pair, and a sweep takes `2·cols/block − 1` rounds, so the
/// block trades the latency of inner rounds against dispatches. Measured on the H200 (ms; the
/// per-pair rounds before took 51 at 512²):
///
/// | block | 128² | 512² | 1000×300 | 1024² |
/// |---|---|---|---|---|
/// | 2 | 5.4 | 30.5 | 15.5 | 93 |
/// | 4 | 4.0 | 30.2 | 16.9 | 108 |
/// | 8 | 3.6 | 36.1 | 25.0 | 141 |
/// | 16 | 4.2 | 68.4 | 47.2 | 390 |
///
/// A software adapter pays for every dispatch more than for the inner rounds (each a pass over
/// the workgroup's threads on a few cores either way), so there blocks of up to 32 columns:
/// lavapipe, 256² with a graded spectrum, 2,155 ms in blocks of 4, 1,160 in blocks of 16,
/// 1,061 in blocks of 32 (945 in blocks of 64, whose 4 threads per pair leave most of a
/// workgroup's SIMD lanes idle on hardware).
fn block_cap(cols: usize, software: bool) -> usize {
    if software {
        return 32;
    }
    match cols {
        0..=255 => 8,
        256..=1023 => 4,
        _ => 2,
    }
}

/// Columns per block for a matrix with `cols` working columns: a power of two, at most half the
/// columns (rounded up), so that small matrices sweep in one workgroup and one dispatch.
fn block(cols: usize, software: bool) -> usize {
    cols.div_ceil(2)
        .max(1)
        .next_power_of_two()
        .min(block_cap(cols, software))
}

/// The blocks of `cols` columns, rounded up to even (a round-robin needs pairs).
fn blocks2(cols: usize, software: bool) -> usize {
    let nb = cols.div_ceil(block(cols, software)).max(1);
    nb + (nb & 1)
}

/// Rotation rounds per sweep (dispatches of [`ROTATE`]).
pub(crate) fn rounds(cols: usize, software: bool) -> usize {
    blocks2(cols, software) - 1
}

/// The working matrix: `(rows, cols)` with `rows ≥ cols` (Aᵀ when A is wide).
pub(crate) fn working(m: usize, n: usize) -> (usize, usize) {
    if m >= n {
        (m, n)
    } else {
        (n, m)
    }
}

/// Workgroups of one dispatch of `stage` (256 threads each).
pub(super) fn groups(m: usize, n: usize, stage: u32, software: bool) -> usize {
    let (rows, cols) = working(m, n);
    match stage {
        INIT => (rows * cols).max(cols * cols).div_ceil(256),
        ROTATE => blocks2(cols, software) / 2,
        NORMALIZE | FINALIZE => cols,
        _ => 1,
    }
}

pub(super) fn render(
    m: usize,
    n: usize,
    input: &Layout,
    stage: u32,
    software: bool,
    sz: &mut Sizes,
) -> String {
    let tall = m >= n;
    let (rows, cols) = working(m, n);
    let (rs, cs) = (input.strides[0], input.strides[1]);
    // Working column c, row r of the (possibly transposed) matrix: A[r][c] if tall, else A[c][r].
    let (wr, wc) = if tall { (rs, cs) } else { (cs, rs) };
    let bs = block(cols, software);
    let rot_tol = (4.0 * f32::EPSILON * (rows as f32).sqrt()).max(1e-6);
    let text = SVD
        .replace("{ROWS}", &sz.u(rows))
        .replace("{NB2}", &sz.u(blocks2(cols, software)))
        .replace("{BS}", &sz.u(bs))
        .replace("{LANES}", &sz.u(256 / bs))
        .replace("{COLS}", &sz.u(cols))
        .replace("{M}", &sz.u(m))
        .replace("{N}", &sz.u(n))
        .replace("{TALL}", &sz.b(tall))
        .replace("{IN_OFF}", &sz.u(input.offset))
        .replace("{IN_RS}", &sz.u(wr))
        .replace("{IN_CS}", &sz.u(wc))
        .replace("{ROT_TOL}", &sz.f(rot_tol));
    let bindings = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n\
                    @group(0) @binding(1) var<storage, read> in0: array<f32>;\n";
    format!("{bindings}{}", text.replace("{STAGE}", &stage.to_string()))
}
