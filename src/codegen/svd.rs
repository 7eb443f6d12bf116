//! The stages of the one-sided Jacobi SVD, from the `svd.wgsl` template (one source, a stage
//! constant), and its rotation round through the block pair's Gram matrix (`svd_gram.wgsl`,
//! on hardware adapters). The driver that sequences them lives in the GPU backend.

use super::Sizes;
use crate::shape::Layout;

const SVD: &str = include_str!("svd.wgsl");
/// The buffers, pairing and rotation both forms of the rotation round share.
const SVD_COMMON: &str = include_str!("svd_common.wgsl");
/// The rotation round through the block pair's Gram matrix.
const SVD_GRAM: &str = include_str!("svd_gram.wgsl");

/// Stage numbers: 0 init, 1 rotate one round through memory (one workgroup per pair of column
/// blocks; software adapters), 2 normalize, 3 complete, 4 finalize, 5 check (after each sweep),
/// 7 rotate one round through the Gram matrix (in place of 1).
pub(crate) const INIT: u32 = 0;
pub(crate) const ROTATE: u32 = 1;
pub(crate) const NORMALIZE: u32 = 2;
pub(crate) const COMPLETE: u32 = 3;
pub(crate) const FINALIZE: u32 = 4;
pub(crate) const CHECK: u32 = 5;
/// The rotation round through the block pair's Gram matrix (`svd_gram.wgsl`), on hardware
/// adapters (in place of 1).
pub(crate) const ROTATE_GRAM: u32 = 7;

/// Columns per block of the Gram form ([`ROTATE_GRAM`], hardware adapters): 16 (a pair's Gram
/// matrix and its rotations, 32 × 32, fit a workgroup's memory beside a chunk of rows), fewer
/// for matrices of fewer than 32 columns (one workgroup then holds them all), at least 2 (the
/// Gram matrix's 4 × 4 tiles).
fn gram_block(cols: usize) -> usize {
    cols.div_ceil(2).max(2).next_power_of_two().min(16)
}

/// Columns per block of the form through memory ([`ROTATE`], software adapters): at most 32.
/// Each round (one dispatch) runs `2·block − 1` or `block` inner rounds in every workgroup, with
/// `256 / block` threads per column pair, and a sweep takes `2·cols/block − 1` rounds. A
/// software adapter pays for every dispatch more than for the inner rounds (each a pass over
/// the workgroup's threads on a few cores either way): lavapipe, 256² with a graded spectrum,
/// 2,155 ms in blocks of 4, 1,160 in blocks of 16, 1,061 in blocks of 32 (945 in blocks of 64,
/// whose 4 threads per pair leave most of a workgroup's SIMD lanes idle on hardware). There the
/// Gram form was slower: 256² 4.8 / 7.4 s (Gaussian / graded) against 3.5 / 5.5.
fn block(cols: usize) -> usize {
    cols.div_ceil(2).max(1).next_power_of_two().min(32)
}

/// The columns per block of rotation stage `stage` ([`ROTATE`] or [`ROTATE_GRAM`]).
fn block_of(cols: usize, stage: u32) -> usize {
    if stage == ROTATE_GRAM {
        gram_block(cols)
    } else {
        block(cols)
    }
}

/// The blocks of `cols` columns, rounded up to even (a round-robin needs pairs).
fn blocks2(cols: usize, stage: u32) -> usize {
    let nb = cols.div_ceil(block_of(cols, stage)).max(1);
    nb + (nb & 1)
}

/// Rotation rounds per sweep (dispatches of `stage`, [`ROTATE`] or [`ROTATE_GRAM`]).
pub(crate) fn rounds(cols: usize, stage: u32) -> usize {
    blocks2(cols, stage) - 1
}

/// The working matrix: `(rows, cols)` with `rows ≥ cols` (Aᵀ when A is wide).
pub(crate) fn working(m: usize, n: usize) -> (usize, usize) {
    if m >= n {
        (m, n)
    } else {
        (n, m)
    }
}

/// Workgroups of one dispatch of `stage`.
pub(super) fn groups(m: usize, n: usize, stage: u32) -> usize {
    let (rows, cols) = working(m, n);
    match stage {
        INIT => (rows * cols).max(cols * cols).div_ceil(256),
        ROTATE | ROTATE_GRAM => blocks2(cols, stage) / 2,
        NORMALIZE | FINALIZE => cols,
        _ => 1,
    }
}

/// The template's sizes, `(placeholder, literal or metadata read)`, in one order for every
/// stage: the driver binds one metadata uniform (the first stage's) for all of them.
fn template_sizes(
    m: usize,
    n: usize,
    input: &Layout,
    sz: &mut Sizes,
) -> Vec<(&'static str, String)> {
    let tall = m >= n;
    let (rows, cols) = working(m, n);
    let (rs, cs) = (input.strides[0], input.strides[1]);
    // Working column c, row r of the (possibly transposed) matrix: A[r][c] if tall, else A[c][r].
    let (wr, wc) = if tall { (rs, cs) } else { (cs, rs) };
    let bs = block(cols);
    let rot_tol = (4.0 * f32::EPSILON * (rows as f32).sqrt()).max(1e-6);
    vec![
        ("{ROWS}", sz.u(rows)),
        ("{NB2}", sz.u(blocks2(cols, ROTATE))),
        ("{BS}", sz.u(bs)),
        ("{LANES}", sz.u(256 / bs)),
        ("{COLS}", sz.u(cols)),
        ("{M}", sz.u(m)),
        ("{N}", sz.u(n)),
        ("{TALL}", sz.b(tall)),
        ("{IN_OFF}", sz.u(input.offset)),
        ("{IN_RS}", sz.u(wr)),
        ("{IN_CS}", sz.u(wc)),
        ("{ROT_TOL}", sz.f(rot_tol)),
    ]
}

/// The WGSL of stage `stage`; `wg`: the Gram form's workgroup size.
pub(super) fn render(
    m: usize,
    n: usize,
    input: &Layout,
    stage: u32,
    wg: u32,
    sz: &mut Sizes,
) -> String {
    let sizes = template_sizes(m, n, input, sz);
    let fill = |t: &str| {
        sizes
            .iter()
            .fold(t.to_string(), |t, (p, v)| t.replace(p, v))
    };
    let bindings = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n\
                    @group(0) @binding(1) var<storage, read> in0: array<f32>;\n";
    let common = fill(SVD_COMMON);
    if stage == ROTATE_GRAM {
        let (_, cols) = working(m, n);
        let bs = gram_block(cols);
        let p = 2 * bs;
        // The column-major chunk of rows: P columns of 64 rows, padded to 17 vec4 each.
        let body = fill(SVD_GRAM)
            .replace("{GP2}", &(p * p).to_string())
            .replace("{GP}", &p.to_string())
            .replace("{GBS}", &bs.to_string())
            .replace("{TILE4}", &(p * 17).to_string())
            .replace("{GWG}", &wg.to_string());
        return format!("{bindings}{common}{body}");
    }
    let text = fill(SVD).replace("{STAGE}", &stage.to_string());
    format!("{bindings}{common}{text}")
}
