//! The stages of the one-sided Jacobi SVD, from the `svd.wgsl` template (one source, a stage
//! constant) and, on hardware adapters, the rotation round through each block pair's Gram
//! matrix (`svd_gram.wgsl`: one dispatch a round for matrices of up to [`GRAM_MAX_COLS`]
//! columns, two for larger ones); optionally preceded by a QR factorization (`svd_qr.wgsl`,
//! `debug::set_svd_qr`), the Jacobi then running on Rᵀ. The driver that sequences them lives in
//! the GPU backend.

use super::Sizes;
use crate::shape::Layout;

const SVD: &str = include_str!("svd.wgsl");
/// The buffers, pairing and rotation both forms of the rotation round share.
const SVD_COMMON: &str = include_str!("svd_common.wgsl");
/// The rotation round through the block pair's Gram matrix.
const SVD_GRAM: &str = include_str!("svd_gram.wgsl");
/// The QR preconditioning's stages.
const SVD_QR: &str = include_str!("svd_qr.wgsl");
/// The last stage of the rotation form and the QR flow: the packed U | S | Vᵀ.
const SVD_PACK: &str = include_str!("svd_pack.wgsl");

/// Stage numbers: 0 init, 1 rotate one round (one workgroup per pair of column blocks),
/// 2 normalize, 3 complete, 4 finalize, 5 check (after each sweep); 6 rotate one round through
/// the Gram matrix, or 7 then 8 (its split form), in place of 1; 9–15 the QR flow's.
pub(crate) const INIT: u32 = 0;
pub(crate) const ROTATE: u32 = 1;
pub(crate) const NORMALIZE: u32 = 2;
pub(crate) const COMPLETE: u32 = 3;
pub(crate) const FINALIZE: u32 = 4;
pub(crate) const CHECK: u32 = 5;
/// The rotation round through the block pair's Gram matrix (`svd_gram.wgsl`), one workgroup per
/// block pair, on hardware adapters for matrices of at most [`GRAM_MAX_COLS`] working columns.
pub(crate) const ROTATE_GRAM: u32 = 6;
/// The split form of [`ROTATE_GRAM`] for larger matrices, two dispatches a round: each pair's
/// partial Gram matrices over slices of [`split_rows`] rows of W (a workgroup per pair and
/// slice), ...
pub(crate) const GRAM_PART: u32 = 7;
/// ... then per pair and slice of rows of W and V, the partial matrices' sum, the pair's
/// rotations (each workgroup the same, from the same sums) and the rotations applied to the
/// slice.
pub(crate) const GRAM_APPLY: u32 = 8;

/// Flag on a stage number: the stage of an SVD preconditioned by QR (`svd_qr.wgsl`), where the
/// Jacobi's stages run on Rᵀ (`cols × cols`).
pub(crate) const QR_FLOW: u32 = 0x100;
/// The QR preconditioning's stages (`svd_qr.wgsl`): init, a panel, its trailing update, Rᵀ into
/// W, U = [V; 0], U ← Q_k·U, finalize.
pub(crate) const QR_INIT: u32 = 9;
pub(crate) const QR_PANEL: u32 = 10;
pub(crate) const QR_UPDATE: u32 = 11;
pub(crate) const QR_RT: u32 = 12;
pub(crate) const QR_U_INIT: u32 = 13;
pub(crate) const QR_FORM_U: u32 = 14;
pub(crate) const QR_FINALIZE: u32 = 15;
/// Threads of the QR panel's one workgroup (`svd_qr.wgsl`'s PWG).
pub(crate) const QR_PANEL_WG: u32 = 256;
/// Columns per panel of the QR preconditioning.
pub(crate) const QR_PANEL_COLS: usize = 16;

/// Panels of the QR preconditioning.
pub(crate) fn qr_panels(m: usize, n: usize) -> usize {
    working(m, n).1.div_ceil(QR_PANEL_COLS)
}

/// Entries of `aux` the QR preconditioning uses beyond the Jacobi's: the factor, the panels' T
/// matrices and U.
pub(crate) fn qr_scratch(m: usize, n: usize) -> usize {
    let (rows, cols) = working(m, n);
    2 * rows * cols + qr_panels(m, n) * QR_PANEL_COLS * QR_PANEL_COLS
}

/// The most working columns the one-dispatch Gram round takes; larger matrices take its split
/// form. On the H100, same call (kernel ms, Gaussian / graded; one dispatch against the split
/// form): 64² 0.76 / 1.14 against 0.87 / 1.30, 128² 2.27 / 3.33 against 2.28 / 3.31, but 256²
/// 7.25 / 10.98 against 5.38 / 8.13: with one workgroup per block pair (8 at 256²) the round's
/// two passes over the pair's rows run on as many of the GPU's cores.
pub(crate) const GRAM_MAX_COLS: usize = 128;

/// Workgroup memory the Gram forms need (about 17 KB with blocks of 16: a chunk of rows, G and
/// Q), rounded up to what hardware adapters offer (32 KiB; WebGPU's default is 16).
pub(crate) const GRAM_STORAGE: u32 = 32 * 1024;

/// Rows per workgroup in the split form's [`GRAM_PART`] (of W) and [`GRAM_APPLY`] (of W then V):
/// each pair's `rows + cols` rows in about 8 slices, the power of two nearest `(rows + cols) / 8`,
/// at least 64 (a chunk). On the H100 (kernel ms, Gaussian / graded) slices of 128 rows against
/// 256: 512² 13.4 / 19.2 against 16.1 / 22.7, 1000 × 300 5.9 / 10.0 against 6.8 / 12.0, but
/// 1024² 63.2 / 84.8 against 45.0 / 57.5 — every workgroup of APPLY also solves its pair's
/// rotations, so too many of them cost more than they spread.
pub(crate) fn split_rows(m: usize, n: usize) -> usize {
    let (rows, cols) = working(m, n);
    let t = (rows + cols).div_ceil(8);
    let up = t.next_power_of_two();
    let near = if up - t > t - up / 2 { up / 2 } else { up };
    near.max(64)
}

/// Entries of `aux` the split form uses beyond the 3·cols of the other stages: each pair's
/// partial Gram matrices.
pub(crate) fn split_scratch(m: usize, n: usize) -> usize {
    let (rows, cols) = working(m, n);
    let pairs = blocks2(cols, false, ROTATE_GRAM) / 2;
    let p = 2 * gram_block(cols);
    pairs * rows.div_ceil(split_rows(m, n)) * p * p
}

/// The Jacobi's matrix size: `(m, n)`, or `(cols, cols)` (Rᵀ) in the QR flow.
pub(crate) fn jacobi_dims(m: usize, n: usize, qr: bool) -> (usize, usize) {
    let (rows, cols) = working(m, n);
    if qr {
        (cols, cols)
    } else {
        (rows, cols)
    }
}

/// Columns per block of the Gram form: 16 (a pair's Gram matrix and its rotations, 32 × 32, fit
/// a workgroup's memory beside a chunk of rows), fewer for matrices of fewer than 32 columns
/// (one workgroup then holds them all), at least 2 (the Gram matrix's 4 × 4 tiles). Blocks of
/// 32 halve a sweep's rounds but cost more than that saves: on the H100 (kernel ms, Gaussian /
/// graded; 64 × 64 matrices on 1,024 threads) 512² 12.9 / 19.8 against 10.1 / 13.7, 1024² 42.1 /
/// 53.3 against 39.7 / 48.4.
fn gram_block(cols: usize) -> usize {
    cols.div_ceil(2).max(2).next_power_of_two().min(16)
}

/// Columns per block of a rotation round, at most, by the working matrix's column count: each
/// round (one dispatch) runs `2·block − 1` or `block` inner rounds in every workgroup, with
/// `256 / block` threads per column pair, and a sweep takes `cols/block − 1` rounds, so the
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

/// The columns per block of rotation stage `stage` ([`ROTATE`] or a Gram form's).
fn block_of(cols: usize, software: bool, stage: u32) -> usize {
    match stage {
        ROTATE_GRAM | GRAM_PART | GRAM_APPLY => gram_block(cols),
        _ => block(cols, software),
    }
}

/// The blocks of `cols` columns, rounded up to even (a round-robin needs pairs).
fn blocks2(cols: usize, software: bool, stage: u32) -> usize {
    let nb = cols.div_ceil(block_of(cols, software, stage)).max(1);
    nb + (nb & 1)
}

/// Rotation rounds per sweep of rotation stage `stage` ([`ROTATE`] or a Gram form's).
pub(crate) fn rounds(cols: usize, software: bool, stage: u32) -> usize {
    blocks2(cols, software, stage) - 1
}

/// The working matrix: `(rows, cols)` with `rows ≥ cols` (Aᵀ when A is wide).
pub(crate) fn working(m: usize, n: usize) -> (usize, usize) {
    if m >= n {
        (m, n)
    } else {
        (n, m)
    }
}

/// Workgroups of one dispatch of `stage` (256 threads each; the Gram rounds' 512 where the
/// adapter allows them; the QR flow's own stages 128, its panel [`QR_PANEL_WG`]).
pub(super) fn groups(m: usize, n: usize, stage: u32, software: bool) -> usize {
    let (qrows, cols) = working(m, n);
    let qr = stage & QR_FLOW != 0;
    let stage = stage & !QR_FLOW;
    let rows = if qr { cols } else { qrows };
    let pairs = blocks2(cols, software, stage) / 2;
    match stage {
        QR_INIT => (qrows * cols).max(cols * cols).div_ceil(128),
        QR_PANEL => 1,
        QR_UPDATE | QR_FORM_U | QR_FINALIZE => cols,
        QR_RT => (cols * cols).div_ceil(128),
        QR_U_INIT => (qrows * cols).div_ceil(128),
        INIT => (rows * cols).max(cols * cols).div_ceil(256),
        ROTATE | ROTATE_GRAM => pairs,
        GRAM_PART => pairs * rows.div_ceil(split_rows(rows, cols)),
        GRAM_APPLY => pairs * (rows + cols).div_ceil(split_rows(rows, cols)),
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
    software: bool,
    qr: bool,
    sz: &mut Sizes,
) -> Vec<(&'static str, String)> {
    let tall = m >= n;
    let (qrows, cols) = working(m, n);
    let rows = if qr { cols } else { qrows };
    // Where the QR flow's factor starts in `aux`: after the Jacobi's entries.
    let qrb = if qr {
        3 * cols + split_scratch(cols, cols)
    } else {
        0
    };
    let (rs, cs) = (input.strides[0], input.strides[1]);
    // Working column c, row r of the (possibly transposed) matrix: A[r][c] if tall, else A[c][r].
    let (wr, wc) = if tall { (rs, cs) } else { (cs, rs) };
    let bs = block(cols, software);
    let rot_tol = (4.0 * f32::EPSILON * (rows as f32).sqrt()).max(1e-6);
    vec![
        ("{ROWS}", sz.u(rows)),
        ("{NB2}", sz.u(blocks2(cols, software, ROTATE))),
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
        ("{QROWS}", sz.u(qrows)),
        ("{QRB}", sz.u(qrb)),
        ("{NPANEL}", sz.u(qr_panels(m, n))),
    ]
}

/// The WGSL of stage `stage`; `wg`: the Gram form's workgroup size.
pub(super) fn render(
    m: usize,
    n: usize,
    input: &Layout,
    stage: u32,
    software: bool,
    wg: u32,
    sz: &mut Sizes,
) -> String {
    let qr = stage & QR_FLOW != 0;
    let stage = stage & !QR_FLOW;
    let sizes = template_sizes(m, n, input, software, qr, sz);
    let fill = |t: &str| {
        sizes
            .iter()
            .fold(t.to_string(), |t, (p, v)| t.replace(p, v))
    };
    let bindings = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n\
                    @group(0) @binding(1) var<storage, read> in0: array<f32>;\n";
    let common = fill(SVD_COMMON);
    if (ROTATE_GRAM..=GRAM_APPLY).contains(&stage) {
        let (jm, jn) = jacobi_dims(m, n, qr);
        let body = render_gram(jm, jn, wg as usize, stage, &fill(SVD_GRAM));
        return format!("{bindings}{common}{body}");
    }
    // The rotation form's stages and the QR flow's end in the same packing stage.
    let text = if (QR_INIT..=QR_FINALIZE).contains(&stage) {
        // The panel's rows a thread (a literal: `pr`'s length), on QR_PANEL_WG threads.
        let prpt = working(m, n).0.div_ceil(QR_PANEL_WG as usize).max(1);
        let wgs = if stage == QR_PANEL { QR_PANEL_WG } else { 128 };
        fill(SVD_QR)
            .replace("{QSTAGE}", &stage.to_string())
            .replace("{PRPT}", &prpt.to_string())
            .replace("{QWGS}", &wgs.to_string())
    } else {
        fill(SVD).replace("{STAGE}", &stage.to_string())
    };
    format!("{bindings}{common}{text}{}", fill(SVD_PACK))
}

/// The Gram form's template `text` (its sizes filled) for `wg` threads a workgroup: each
/// thread's loads of a chunk of rows unrolled into registers `ld0`, `ld1`, … (64 rows of the
/// pair's `P` columns, column-major and padded to 17 vec4 a column in workgroup memory).
fn render_gram(m: usize, n: usize, wg: usize, stage: u32, text: &str) -> String {
    let (_, cols) = working(m, n);
    let bs = gram_block(cols);
    let p = 2 * bs;
    let cr = 64;
    let lines = |f: &dyn Fn(usize) -> String| {
        (0..(cr * p).div_ceil(wg))
            .map(f)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let decl = lines(&|k| format!("    var ld{k} = 0.0;"));
    let fetch = lines(&|k| format!("    ld{k} = chunk_get(lid + {}u, rn, bp, re);", k * wg));
    let store = lines(&|k| format!("    tile_put(lid + {}u, ld{k});", k * wg));
    // The loop over the chunks of rows [rb, re), opened here and closed by the template: each
    // chunk stored into `tile` behind a barrier, the next chunk's loads issued before it is used.
    let chunks = format!(
        "{decl}\n    var rn = rb;\n{fetch}\n    for (var r0 = rb; r0 < re; r0 = r0 + CR) {{\n\
         {store}\n        workgroupBarrier();\n        rn = r0 + CR;\n        if (rn < re) {{\n\
         {fetch}\n        }}"
    );
    text.replace("{CHUNKS}", &chunks)
        .replace("{GP2}", &(p * p).to_string())
        .replace("{GQ4}", &(p * p / 4).to_string())
        .replace("{GPH}", &(p / 2).to_string())
        .replace("{GP}", &p.to_string())
        .replace("{GBS}", &bs.to_string())
        .replace("{TILE4}", &(p * (cr / 4 + 1)).to_string())
        .replace("{GWG}", &wg.to_string())
        .replace("{GSTAGE}", &stage.to_string())
        .replace("{GSR}", &split_rows(m, n).to_string())
}
