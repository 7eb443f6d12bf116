//! The stages of the one-sided Jacobi SVD, from the `svd.wgsl` template (one source, a stage
//! constant), the rotation round through each block pair's Gram matrix (`svd_gram.wgsl`, on
//! hardware adapters for matrices of up to [`GRAM_MAX_COLS`] columns) and the rotation round in
//! registers ([`render_registers`], generated here, for larger ones on adapters with
//! subgroups). The driver that sequences them lives in the GPU backend.

use super::Sizes;
use crate::shape::Layout;

const SVD: &str = include_str!("svd.wgsl");
/// The buffers, pairing and rotation both forms of the rotation round share.
const SVD_COMMON: &str = include_str!("svd_common.wgsl");
/// The rotation round through the block pair's Gram matrix.
const SVD_GRAM: &str = include_str!("svd_gram.wgsl");

/// Stage numbers: 0 init, 1 rotate one round (one workgroup per pair of column blocks),
/// 2 normalize, 3 complete, 4 finalize, 5 check (after each sweep), 6 rotate one round in
/// registers, 7 rotate one round through the Gram matrix (each in place of 1).
pub(crate) const INIT: u32 = 0;
pub(crate) const ROTATE: u32 = 1;
pub(crate) const NORMALIZE: u32 = 2;
pub(crate) const COMPLETE: u32 = 3;
pub(crate) const FINALIZE: u32 = 4;
pub(crate) const CHECK: u32 = 5;
/// The rotation round in registers (see [`render_registers`]), where the adapter has subgroups
/// and the matrix [`fits_registers`].
pub(crate) const ROTATE_REG: u32 = 6;
/// The rotation round through the block pair's Gram matrix (`svd_gram.wgsl`), on hardware
/// adapters for matrices of at most [`GRAM_MAX_COLS`] working columns.
pub(crate) const ROTATE_GRAM: u32 = 7;

/// The most working columns the Gram form takes; larger matrices take the register form. On
/// the H100, same call (ms, Gaussian / graded; Gram form, blocks of 16, against registers,
/// blocks of 4): 64² 1.17 / 1.59 against 2.00 / 2.74, 128² 2.73 / 3.84 against 4.00 / 5.86,
/// 256² 8.04 / 11.47 against 8.93 / 11.75, but 1000 × 300 17.3 / 30.0 against 11.2 / 17.9 and
/// 512² 27.6 / 40.2 against 22.4 / 27.5: a round of the Gram form passes over the pair's rows
/// twice (forming G, applying Q) with one workgroup per block pair, so its rounds grow with the
/// rows where the register form's hardly do.
pub(crate) const GRAM_MAX_COLS: usize = 256;

/// Workgroup memory the Gram form needs (about 17 KB with blocks of 16: a chunk of rows, G and
/// Q), rounded up to what hardware adapters offer (32 KiB; WebGPU's default is 16).
pub(crate) const GRAM_STORAGE: u32 = 32 * 1024;

/// Columns per block of the Gram form: 16 (a pair's Gram matrix and its rotations, 32 × 32, fit
/// a workgroup's memory beside a chunk of rows), fewer for matrices of fewer than 32 columns
/// (one workgroup then holds them all), at least 2 (the Gram matrix's 4 × 4 tiles).
fn gram_block(cols: usize) -> usize {
    cols.div_ceil(2).max(2).next_power_of_two().min(16)
}

/// Rows of W (and of V) each of a workgroup's 256 threads holds in registers in the register
/// form, at most: 1,024 rows and columns. (Workgroups of 512 or 1,024 threads with fewer rows
/// each were slower on the H100: 512² 25.9 and 38.8 ms against 22.6, blocks of 4.)
const REG_ROWS: usize = 4;

/// The smallest subgroup the register form runs with: its workgroup memory holds the sums of
/// at most `256 / REG_MIN_SUBGROUP` subgroups.
pub(crate) const REG_MIN_SUBGROUP: u32 = 8;

/// Whether the working matrix of an `m × n` input fits the register form.
pub(crate) fn fits_registers(m: usize, n: usize) -> bool {
    let (rows, cols) = working(m, n);
    rows <= 256 * REG_ROWS && cols <= 256 * REG_ROWS
}

/// Columns per block of the register form: at most 4. Measured on the H100 (ms, Gaussian /
/// graded input; the form through memory in the same call: 512² 30.3 / 40.9, 1000×300 16.9 /
/// 27.0, 1024² 95–131 / 123.4):
///
/// | block | 512² | 1000×300 | 1024² |
/// |---|---|---|---|
/// | 4 | 28.4 / 37.0 | 15.0 / 23.7 | 69.3 / 84.4 |
/// | 8 | 44.5 / 58.3 | 23.4 / 37.5 | 111.8 / 124.7 |
/// | 16 | 72.4 / 95.4 | 61.1 / 65.8 | 245.5 / 328.8 |
///
/// Each inner round costs a subgroup sum, a barrier and the rotations' arithmetic, and larger
/// blocks have more of them per dispatch than they save in dispatches. With the subgroups'
/// sums added by `subgroupAdd` (session 14) blocks of 4 still lead: 512² 22.6 ms against 32.8
/// for blocks of 8 (with the inner-round loops' trip count read at run time, so that the driver
/// cannot unroll them) and 38.0 for blocks of 8 on 512 threads.
fn reg_block(cols: usize) -> usize {
    cols.div_ceil(2).max(1).next_power_of_two().min(4)
}

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

/// The columns per block of rotation stage `stage` ([`ROTATE`], [`ROTATE_REG`] or
/// [`ROTATE_GRAM`]).
fn block_of(cols: usize, software: bool, stage: u32) -> usize {
    match stage {
        ROTATE_REG => reg_block(cols),
        ROTATE_GRAM => gram_block(cols),
        _ => block(cols, software),
    }
}

/// The blocks of `cols` columns, rounded up to even (a round-robin needs pairs).
fn blocks2(cols: usize, software: bool, stage: u32) -> usize {
    let nb = cols.div_ceil(block_of(cols, software, stage)).max(1);
    nb + (nb & 1)
}

/// Rotation rounds per sweep (dispatches of `stage`, [`ROTATE`], [`ROTATE_REG`] or
/// [`ROTATE_GRAM`]).
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

/// Workgroups of one dispatch of `stage` (256 threads each).
pub(super) fn groups(m: usize, n: usize, stage: u32, software: bool) -> usize {
    let (rows, cols) = working(m, n);
    match stage {
        INIT => (rows * cols).max(cols * cols).div_ceil(256),
        ROTATE | ROTATE_REG | ROTATE_GRAM => blocks2(cols, software, stage) / 2,
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
    sz: &mut Sizes,
) -> Vec<(&'static str, String)> {
    let tall = m >= n;
    let (rows, cols) = working(m, n);
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
    let sizes = template_sizes(m, n, input, software, sz);
    let fill = |t: &str| {
        sizes
            .iter()
            .fold(t.to_string(), |t, (p, v)| t.replace(p, v))
    };
    let bindings = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n\
                    @group(0) @binding(1) var<storage, read> in0: array<f32>;\n";
    let common = fill(SVD_COMMON);
    if stage == ROTATE_REG {
        let get = |k: &str| sizes.iter().find(|(p, _)| *p == k).map(|(_, v)| v.clone());
        let (rows, cols) = (get("{ROWS}"), get("{COLS}"));
        let body = render_registers(m, n, [rows, cols].map(Option::unwrap_or_default));
        return format!("{bindings}{common}{body}");
    }
    if stage == ROTATE_GRAM {
        let body = render_gram(m, n, wg as usize, &fill(SVD_GRAM));
        return format!("{bindings}{common}{body}");
    }
    let text = fill(SVD).replace("{STAGE}", &stage.to_string());
    format!("{bindings}{common}{text}")
}

/// The Gram form's template `text` (its sizes filled) for `wg` threads a workgroup: each
/// thread's loads of a chunk of rows unrolled into registers `ld0`, `ld1`, … (64 rows of the
/// pair's `P` columns, column-major and padded to 17 vec4 a column in workgroup memory).
fn render_gram(m: usize, n: usize, wg: usize, text: &str) -> String {
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
    let fetch = |wonly: bool| {
        lines(&|k| format!("    ld{k} = chunk_get(lid + {}u, rn, bp, {wonly});", k * wg))
    };
    text.replace("{DECL}", &lines(&|k| format!("    var ld{k} = 0.0;")))
        .replace("{FETCH_W}", &fetch(true))
        .replace("{FETCH_WV}", &fetch(false))
        .replace(
            "{STORE}",
            &lines(&|k| format!("    tile_put(lid + {}u, ld{k});", k * wg)),
        )
        .replace("{GP2}", &(p * p).to_string())
        .replace("{GQ4}", &(p * p / 4).to_string())
        .replace("{GPH}", &(p / 2).to_string())
        .replace("{GP}", &p.to_string())
        .replace("{GBS}", &bs.to_string())
        .replace("{TILE4}", &(p * (cr / 4 + 1)).to_string())
        .replace("{GWG}", &wg.to_string())
}

/// The rotation round in registers: each of a workgroup's 256 threads holds rows `lid`,
/// `lid + 256`, … of its block pair's `P` columns of W and of V in registers for the whole round
/// (loaded once, all loads in flight together; written back once, if anything rotated). An
/// inner round rotates `P / 2` column pairs: each thread sums its rows' `(‖a‖², ‖b‖², a·b)`, a
/// subgroup adds them (`subgroupAdd`), the subgroups' sums meet in workgroup memory (one barrier;
/// two buffers, alternating), and each subgroup adds those by `subgroupAdd` again (lane q reading
/// subgroup q's; one load a pair and lane instead of one a pair and subgroup: 512² 28.1 → 22.6
/// ms, 1000×300 14.3 → 11.4, Gaussian, H100), so all compute the same rotations and apply them
/// to their own registers. No memory barrier between inner rounds, and no global memory
/// traffic within the round.
///
/// Registers are named, never indexed at run time: the pairs are fixed register slots, (k,
/// P − 1 − k) in the sweep's first round (every pair of the `P` columns) and (k, BS + k) in the
/// others (the pairs across the two blocks); after each inner round the slots rotate by one
/// (slots 1 … P − 1, or BS … P − 1) — the round-robin by moving the columns instead of the
/// pairing, back in place after a round's last inner round.
/// `[rows, cols]` are the template's (literals or metadata reads); the block count is computed
/// in the shader from the columns and the block size. The buffers, `pair_of`, `rotates` and
/// `rotation` come from `svd_common.wgsl`, which the caller puts first.
fn render_registers(m: usize, n: usize, [rows_s, cols_s]: [String; 2]) -> String {
    use std::fmt::Write;
    let (rows, cols) = working(m, n);
    let bs = reg_block(cols);
    let p = 2 * bs;
    let np = bs;
    let (rw, rv) = (rows.div_ceil(256).max(1), cols.div_ceil(256).max(1));
    let mut s = String::new();
    // Registers: w{r}_{l} is row lid + 256·r of local column l (v likewise).
    let regs = |pre: &str, rn: usize| -> Vec<Vec<String>> {
        (0..rn)
            .map(|r| (0..p).map(|l| format!("{pre}{r}_{l}")).collect())
            .collect()
    };
    let (wr, vr) = (regs("w", rw), regs("v", rv));
    // One buffer of subgroup sums: every pair's, for each of at most 256 / REG_MIN_SUBGROUP
    // subgroups.
    let stride = 256 / REG_MIN_SUBGROUP as usize * np;
    let _ = write!(
        s,
        "// The subgroups' sums of one inner round, two buffers.
var<workgroup> part: array<vec4<f32>, {parts}>;

fn ld_w(c: u32, r: u32) -> f32 {{
    if (c < {cols_s} && r < {rows_s}) {{
        return w[c * {rows_s} + r];
    }}
    return 0.0;
}}

fn ld_v(c: u32, r: u32) -> f32 {{
    if (c < {cols_s} && r < {cols_s}) {{
        return v[c * {cols_s} + r];
    }}
    return 0.0;
}}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sgi: u32,
        @builtin(subgroup_id) sgid: u32, @builtin(num_subgroups) nsg: u32,
        @builtin(subgroup_size) sgs: u32) {{
    let g = wid.x + wid.y * nwg.x;
    if (lid == 0u) {{
        converged = atomicLoad(&counter[1]);
    }}
    if (workgroupUniformLoad(&converged) != 0u) {{
        return;
    }}
    let nb = ({cols_s} + {bs}u - 1u) / {bs}u;
    let bp = pair_of(rnd.r, g, nb + (nb & 1u));
",
        parts = 2 * stride,
    );
    for l in 0..p {
        let (blk, off) = if l < bs { ("x", l) } else { ("y", l - bs) };
        let _ = writeln!(s, "    let c{l} = bp.{blk} * {bs}u + {off}u;");
    }
    for (regs, ld) in [(&wr, "ld_w"), (&vr, "ld_v")] {
        for (r, row) in regs.iter().enumerate() {
            for (l, name) in row.iter().enumerate() {
                let _ = writeln!(s, "    var {name} = {ld}(c{l}, lid + {}u);", 256 * r);
            }
        }
    }
    s += "    var rotations = 0u;
    var buf = 0u;
";
    // One inner round over slot pairs `pairs`, then the slots from `first` on rotate by one.
    let inner = |s: &mut String, pairs: &[(usize, usize)], first: usize| {
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let _ = writeln!(s, "        var d{k} = vec3<f32>(0.0);");
            for row in &wr {
                let (a, b) = (&row[i], &row[j]);
                let _ = writeln!(
                    s,
                    "        d{k} = d{k} + vec3<f32>({a} * {a}, {b} * {b}, {a} * {b});"
                );
            }
            let _ = writeln!(s, "        d{k} = subgroupAdd(d{k});");
        }
        s.push_str(
            "        if (sgi == 0u) {
",
        );
        for k in 0..pairs.len() {
            let _ = writeln!(
                s,
                "            part[buf * {} + sgid * {np}u + {k}u] = vec4<f32>(d{k}, 0.0);",
                stride
            );
        }
        s.push_str(
            "        }
        workgroupBarrier();
",
        );
        for (k, &(i, j)) in pairs.iter().enumerate() {
            // The subgroups' sums of pair k, added by each subgroup for itself: lane q reads
            // subgroup q's, `subgroupAdd` sums them (in chunks of the subgroup size), so every
            // subgroup computes the same total from the same values in the same lanes.
            let _ = writeln!(
                s,
                "        var t{k} = vec3<f32>(0.0);
        for (var q0 = 0u; q0 < nsg; q0 = q0 + sgs) {{
            var x{k} = vec3<f32>(0.0);
            if (q0 + sgi < nsg) {{
                x{k} = part[buf * {} + (q0 + sgi) * {np}u + {k}u].xyz;
            }}
            t{k} = t{k} + subgroupAdd(x{k});
        }}
        if (rotates(t{k})) {{
            let r{k} = rotation(t{k});
            rotations = rotations + 1u;",
                stride
            );
            for row in wr.iter().chain(&vr) {
                let (a, b) = (&row[i], &row[j]);
                let _ = writeln!(
                    s,
                    "            let a_{a} = {a};
            {a} = r{k}.x * a_{a} - r{k}.y * {b};
            {b} = r{k}.y * a_{a} + r{k}.x * {b};"
                );
            }
            s.push_str(
                "        }
",
            );
        }
        s.push_str(
            "        buf = 1u - buf;
",
        );
        // Rotate slots first..p-1 by one: slot l takes slot l + 1's column, the last takes the
        // first's.
        for row in wr.iter().chain(&vr) {
            if p - first < 2 {
                continue;
            }
            let _ = writeln!(s, "        let h_{} = {};", row[first], row[first]);
            for l in first..p - 1 {
                let _ = writeln!(s, "        {} = {};", row[l], row[l + 1]);
            }
            let _ = writeln!(s, "        {} = h_{};", row[p - 1], row[first]);
        }
    };
    let full: Vec<(usize, usize)> = (0..np).map(|k| (k, p - 1 - k)).collect();
    let cross: Vec<(usize, usize)> = (0..np).map(|k| (k, bs + k)).collect();
    let _ = writeln!(
        s,
        "    if (rnd.r == 0u) {{
    for (var iq = 0u; iq < {}u; iq = iq + 1u) {{",
        p - 1
    );
    inner(&mut s, &full, 1);
    let _ = writeln!(
        s,
        "    }}
    }} else {{
    for (var iq = 0u; iq < {bs}u; iq = iq + 1u) {{"
    );
    inner(&mut s, &cross, bs);
    s.push_str(
        "    }
    }
    if (rotations > 0u) {
",
    );
    for (r, row) in wr.iter().enumerate() {
        for (l, name) in row.iter().enumerate() {
            let _ = writeln!(
                s,
                "        if (c{l} < {cols_s} && lid + {o}u < {rows_s}) {{ w[c{l} * {rows_s} + lid + {o}u] = {name}; }}",
                o = 256 * r
            );
        }
    }
    for (r, row) in vr.iter().enumerate() {
        for (l, name) in row.iter().enumerate() {
            let _ = writeln!(
                s,
                "        if (c{l} < {cols_s} && lid + {o}u < {cols_s}) {{ v[c{l} * {cols_s} + lid + {o}u] = {name}; }}",
                o = 256 * r
            );
        }
    }
    s.push_str(
        "        if (lid == 0u) {
            atomicAdd(&counter[0], rotations);
        }
    }
}
",
    );
    s
}
