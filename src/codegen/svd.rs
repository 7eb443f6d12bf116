//! The stages of the one-sided Jacobi SVD, from the `svd.wgsl` template (one source, a stage
//! constant). The driver that sequences them lives in the GPU backend.

use super::Sizes;
use crate::shape::Layout;

const SVD: &str = include_str!("svd.wgsl");

/// Stage numbers: 0 init, 1 rotate one round (one workgroup per column pair), 2 normalize,
/// 3 complete, 4 finalize, 5 a whole sweep in one workgroup.
pub(crate) const INIT: u32 = 0;
pub(crate) const ROTATE: u32 = 1;
pub(crate) const NORMALIZE: u32 = 2;
pub(crate) const COMPLETE: u32 = 3;
pub(crate) const FINALIZE: u32 = 4;
pub(crate) const SWEEP: u32 = 5;

/// The working matrix: `(rows, cols)` with `rows ≥ cols` (Aᵀ when A is wide).
pub(crate) fn working(m: usize, n: usize) -> (usize, usize) {
    if m >= n {
        (m, n)
    } else {
        (n, m)
    }
}

/// Workgroups of one dispatch of `stage` (256 threads each).
pub(super) fn groups(m: usize, n: usize, stage: u32) -> usize {
    let (rows, cols) = working(m, n);
    match stage {
        INIT => (rows * cols).max(cols * cols).div_ceil(256),
        ROTATE => cols.div_ceil(2),
        NORMALIZE | FINALIZE => cols,
        _ => 1,
    }
}

pub(super) fn render(m: usize, n: usize, input: &Layout, stage: u32, sz: &mut Sizes) -> String {
    let tall = m >= n;
    let (rows, cols) = working(m, n);
    let (rs, cs) = (input.strides[0], input.strides[1]);
    // Working column c, row r of the (possibly transposed) matrix: A[r][c] if tall, else A[c][r].
    let (wr, wc) = if tall { (rs, cs) } else { (cs, rs) };
    let pairs = cols.div_ceil(2);
    let rot_tol = (4.0 * f32::EPSILON * (rows as f32).sqrt()).max(1e-6);
    let text = SVD
        .replace("{ROWS}", &sz.u(rows))
        .replace("{COLS2}", &sz.u(pairs * 2))
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
