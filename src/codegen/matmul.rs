//! Matmul with a fused epilogue, from the `matmul.wgsl` template: 16×16 threads per workgroup,
//! each computing TM×TN outputs in registers (vec4 rows read from workgroup memory as vec4s),
//! K in steps through workgroup memory, each operand copied in along its unit-stride dimension.
//! The tile class (TM, TN) is picked from the output's size and, with the copy orders, is part of
//! the structure.
//!
//! On an adapter that is a CPU (lavapipe, SwiftShader), dense operands take the lane form
//! instead ([`render_lanes`]): no workgroup memory, no barriers; the A values shared through
//! subgroup broadcasts where the adapter has subgroups of a fixed size (lavapipe), read by each
//! thread itself where it has none (SwiftShader in a browser).

use std::fmt::Write;

use super::{program_code, unravel_fn, KernelDesc, Sizes, Variant};
use crate::ir::ReduceOp;
use crate::schedule::{Body, Inst, Program};
use crate::shape::{numel, Layout};

const MATMUL: &str = include_str!("matmul.wgsl");

/// Outputs per thread (rows, cols) of `d`, a batch of `batch` `m × n` results: the tile `d`
/// names (the autotuner's choice), else the size rule — 8×8 (128×128 tiles) when that still
/// gives at least 256 workgroups (enough to fill a large GPU twice over), else 4×4 (64×64
/// tiles: four times the workgroups, less waste on small shapes).
pub(crate) fn tile(d: &KernelDesc, m: usize, n: usize, batch: usize) -> (usize, usize) {
    if let Some((tm, tn)) = d.tile {
        return (tm as usize, tn as usize);
    }
    if m >= 128 && n >= 128 && m.div_ceil(128) * n.div_ceil(128) * batch >= 256 {
        (8, 8)
    } else {
        (4, 4)
    }
}

/// Split-K: the number of `k` slices a matmul is cut into (1: none). A product whose grid of
/// 64×64 tiles has fewer than 256 workgroups (under two waves on a large GPU) and whose `k` is
/// long (≥ 1,024) leaves much of the GPU idle while each workgroup walks all of `k`; cut into S
/// slices it runs as a batch of S partial products (S times the workgroups) and a sum of the S
/// partials that applies the epilogue. S is the largest of 16, 8, 4, 2 that is at most
/// `512 / workgroups` (up to about 512 workgroups in all), leaves slices of at least 256 and
/// divides `k` into whole 16-wide steps.
/// It depends on the shape alone (not on the register tile), so every tile sums the same way.
/// Not for a product of one input with itself (its two operands would need two layouts of one
/// binding).
pub(crate) fn splits(d: &KernelDesc) -> usize {
    let Body::MatMul {
        a, b, out_shape, ..
    } = &d.body
    else {
        return 1;
    };
    if a == b {
        return 1;
    }
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let batch: usize = out_shape[..r - 2].iter().product();
    let la = &d.slots[*a].shape;
    let k = la[la.len() - 1];
    let groups = m.div_ceil(64) * n.div_ceil(64) * batch;
    if groups == 0 || groups >= 256 || k < 1024 {
        return 1;
    }
    let want = 512 / groups;
    [16, 8, 4, 2]
        .into_iter()
        .find(|&s| s <= want && k % (16 * s) == 0 && k / s >= 256)
        .unwrap_or(1)
}

/// The two kernels of a split-K product ([`splits`] > 1): the partial products, a batched
/// matmul of shape `[S, batch.., m, n]` whose operands are views of A's and B's `k` slices (the
/// slice as the leading batch dim), without epilogue; and their sum over that dim, a reduction
/// that reads the partials as one more input (the last slot) and applies the epilogue. The
/// partials' workgroup size is `d`'s; the sum's is for the backend to set.
pub(crate) fn split(d: &KernelDesc) -> Option<(KernelDesc, KernelDesc)> {
    let s = splits(d);
    let Body::MatMul {
        a, b, out_shape, ..
    } = &d.body
    else {
        return None;
    };
    if s < 2 {
        return None;
    }
    let r = out_shape.len();
    let batch = &out_shape[..r - 2];
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let (la, lb) = (&d.slots[*a], &d.slots[*b]);
    let k = la.shape[la.shape.len() - 1];
    let kc = k / s;
    // [S, batch.., rows, cols] of a matrix layout whose `k` dim (`along`: 1 for A's columns, 0
    // for B's rows) is cut into S slices of `kc`.
    let sliced = |l: &Layout, along: usize| {
        let (rs, cs) = matrix_strides(l);
        let bl = l.batch_to(batch);
        let lr = l.shape.len();
        let (rows, cols) = (l.shape[lr - 2], l.shape[lr - 1]);
        let (rows, cols, slice_stride) = if along == 1 {
            (rows, kc, kc * cs)
        } else {
            (kc, cols, kc * rs)
        };
        let mut shape = vec![s];
        shape.extend_from_slice(batch);
        shape.extend([rows, cols]);
        let mut strides = vec![slice_stride];
        strides.extend_from_slice(&bl.strides);
        strides.extend([rs, cs]);
        Layout {
            shape,
            strides,
            offset: l.offset,
        }
    };
    let (sa, sb) = (sliced(la, 1), sliced(lb, 0));
    let mut part_shape = vec![s];
    part_shape.extend_from_slice(out_shape);
    let mut slots = d.slots.clone();
    slots[*a] = sa.clone();
    slots[*b] = sb.clone();
    let part = KernelDesc {
        body: Body::MatMul {
            a: *a,
            b: *b,
            a_shape: sa.shape,
            b_shape: sb.shape,
            out_shape: part_shape.clone(),
        },
        prologue: Program::default(),
        epilogue: Program {
            insts: vec![Inst::Core],
            result: 0,
        },
        slots,
        out_shape: part_shape.clone(),
        tile: None,
        ..d.clone()
    };
    let partials = d.slots.len();
    let mut slots = d.slots.clone();
    slots.push(Layout::contiguous(&part_shape));
    let sum = KernelDesc {
        body: Body::Reduce {
            op: ReduceOp::Sum,
            in_shape: part_shape.clone(),
            axes: vec![0],
        },
        prologue: Program {
            insts: vec![Inst::Load {
                slot: partials,
                shape: part_shape,
            }],
            result: 0,
        },
        epilogue: d.epilogue.clone(),
        slots,
        out_shape: d.out_shape.clone(),
        tile: None,
        ..d.clone()
    };
    debug_assert_eq!(m * n * batch.iter().product::<usize>(), numel(&d.out_shape));
    Some((part, sum))
}

/// An operand's (row, column) strides: those of its last two dims.
pub(super) fn matrix_strides(l: &Layout) -> (usize, usize) {
    let r = l.shape.len();
    (l.strides[r - 2], l.strides[r - 1])
}

/// Output rows per workgroup of the lane form.
const LANE_ROWS: usize = 16;

/// The subgroup size when `d` takes the lane form (1 on a CPU adapter without fixed-size
/// subgroups: each thread reads its own rows of A): a CPU adapter, both
/// operands dense along their last dim with rows, batch strides and offsets in whole `vec4`s,
/// `K` and `N` multiples of 4, and an epilogue that does not read the operands (they are bound
/// as `vec4` arrays); specialized kernels only, since these are conditions on sizes (a generic
/// kernel's pipeline depends on the structure alone).
pub(super) fn lanes(d: &KernelDesc, variant: Variant) -> Option<usize> {
    let Body::MatMul {
        a, b, out_shape, ..
    } = &d.body
    else {
        return None;
    };
    if !d.software || variant != Variant::Specialized {
        return None;
    }
    let batch = &out_shape[..out_shape.len() - 2];
    let dense4 = |l: &Layout| {
        let r = l.shape.len();
        let bl = l.batch_to(batch);
        l.strides[r - 1] == 1
            && l.shape[r - 1] % 4 == 0
            && l.strides[r - 2] % 4 == 0
            && bl.offset % 4 == 0
            && bl.strides.iter().all(|s| s % 4 == 0)
    };
    let reads_operand = d
        .epilogue
        .insts
        .iter()
        .any(|i| matches!(i, Inst::Load { slot, .. } if slot == a || slot == b));
    // Without subgroups (a browser's SwiftShader): one lane, each thread reading its own A rows.
    (dense4(&d.slots[*a]) && dense4(&d.slots[*b]) && !reads_operand)
        .then_some((d.cpu_lanes as usize).max(1))
}

/// The bindings of a lane-form kernel: the operands as `vec4` arrays, other inputs (the
/// epilogue's) as `f32`; `None` when `d` does not take the lane form.
pub(super) fn lane_bindings(d: &KernelDesc, variant: Variant) -> Option<String> {
    lanes(d, variant)?;
    let Body::MatMul { a, b, .. } = d.body else {
        return None;
    };
    let mut s = String::from("@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n");
    for k in 0..d.slots.len() {
        let ty = if k == a || k == b { "vec4<f32>" } else { "f32" };
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<storage, read> in{k}: array<{ty}>;",
            k + 1
        );
    }
    Some(s)
}

/// The lane form's grid: column strips (four columns per lane), row blocks, batch entries.
pub(super) fn lane_grid(d: &KernelDesc, out_shape: &[usize]) -> [usize; 3] {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    [
        (n / 4).div_ceil(d.wg as usize),
        m.div_ceil(LANE_ROWS),
        out_shape[..r - 2].iter().product(),
    ]
}

/// The workgroup grid: column tiles, row tiles, batch entries.
pub(super) fn grid(d: &KernelDesc, out_shape: &[usize]) -> [usize; 3] {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let (tm, tn) = tile(d, m, n, out_shape[..r - 2].iter().product());
    [
        n.div_ceil(16 * tn),
        m.div_ceil(16 * tm),
        out_shape[..r - 2].iter().product(),
    ]
}

/// The quick form's grid: 16×16 output tiles, batch entries.
pub(super) fn quick_grid(out_shape: &[usize]) -> [usize; 3] {
    let r = out_shape.len();
    [
        out_shape[r - 1].div_ceil(16),
        out_shape[r - 2].div_ceil(16),
        out_shape[..r - 2].iter().product(),
    ]
}

/// The quick form ([`Variant::Quick`]): one output a thread, 16×16 tiles of A and B through
/// workgroup memory, `k` in steps of 16 (`BK`, zero-padded past `k` as the tiled form pads).
/// Each output is the same chain of `fma` over `k` in order as in the tiled form (and the lane
/// form, where `k` needs no padding), then the same epilogue: the same values. Its driver
/// compile is a fifth of the tiled form's, whose unrolled 8×8 register tile takes most of it.
fn render_quick(
    d: &KernelDesc,
    (a, b): (usize, usize),
    out_shape: &[usize],
    sz: &mut Sizes,
) -> String {
    let Parts {
        m,
        n,
        k,
        mut s,
        epi,
        eres,
    } = parts(d, (a, b), out_shape, sz);
    let (ms, ns, ks) = (sz.u(m), sz.u(n), sz.u(k));
    let ((a_rs, a_cs), (b_rs, b_cs)) = (matrix_strides(&d.slots[a]), matrix_strides(&d.slots[b]));
    let (ra, ca, rb, cb) = (sz.u(a_rs), sz.u(a_cs), sz.u(b_rs), sz.u(b_cs));
    let _ = write!(
        s,
        "
fn epilogue(gi: u32, core: f32) -> f32 {{
{epi}    return {eres};
}}

var<workgroup> qa: array<f32, 256>;
var<workgroup> qb: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    let batch = wid.z;
    let r = wid.y * 16u + lid.y;
    let c = wid.x * 16u + lid.x;
    let abase = a_base(batch);
    let bbase = b_base(batch);
    var acc = 0.0;
    for (var k0 = 0u; k0 < {ks}; k0 = k0 + 16u) {{
        var x = 0.0;
        if (r < {ms} && k0 + lid.x < {ks}) {{ x = in{a}[abase + r * {ra} + (k0 + lid.x) * {ca}]; }}
        qa[lid.y * 16u + lid.x] = x;
        var y = 0.0;
        if (k0 + lid.y < {ks} && c < {ns}) {{ y = in{b}[bbase + (k0 + lid.y) * {rb} + c * {cb}]; }}
        qb[lid.y * 16u + lid.x] = y;
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk = kk + 1u) {{
            acc = fma(qa[lid.y * 16u + kk], qb[kk * 16u + lid.x], acc);
        }}
        workgroupBarrier();
    }}
    if (r < {ms} && c < {ns}) {{
        let gi = batch * {ms} * {ns} + r * {ns} + c;
        out[gi] = epilogue(gi, acc);
    }}
}}
"
    );
    s
}

/// What all forms start from: the output's `m × n`, the shared `k`, the batch offset functions
/// `a_base` and `b_base`, and the epilogue's code and result.
struct Parts {
    m: usize,
    n: usize,
    k: usize,
    s: String,
    epi: String,
    eres: String,
}

fn parts(d: &KernelDesc, (a, b): (usize, usize), out_shape: &[usize], sz: &mut Sizes) -> Parts {
    let r = out_shape.len();
    let (la, lb) = (&d.slots[a], &d.slots[b]);
    let batch = &out_shape[..r - 2];
    let ba = la.batch_to(batch);
    let bb = lb.batch_to(batch);
    let mut s = unravel_fn("a_base", batch, &ba.strides, ba.offset, sz);
    s += &unravel_fn("b_base", batch, &bb.strides, bb.offset, sz);
    let (epi, eres) = program_code(&d.epilogue, "e", &d.slots, "core", sz);
    Parts {
        m: out_shape[r - 2],
        n: out_shape[r - 1],
        k: la.shape[la.shape.len() - 1],
        s,
        epi,
        eres,
    }
}

/// The lane form, for CPU adapters (see [`lanes`]). There every load from a storage buffer or
/// workgroup memory is a loop over the lanes of the CPU's vector (Mesa 22's llvmpipe), and each
/// barrier a pass over the workgroup's invocations, while arithmetic and subgroup broadcasts run
/// as vector instructions. So each lane owns four columns (`vec4` reads of B's rows) of
/// `LANE_ROWS` output rows; the lanes of a subgroup read one A row each, four `k` at a time, and
/// hand them to the others by `subgroupBroadcast`. Per four steps of `k` a lane issues
/// `LANE_ROWS / L + 4` loads for `16 · LANE_ROWS` multiply-adds (`L`: the subgroup size);
/// lavapipe, 1024²: about 70–100 ms against 200–400 for the tiled form (a noisy 2-core VM).
/// Reads are clamped into the operands (the last row, the last `vec4` column), stores masked.
/// Every lane runs the same loop (the sizes are uniform), as the broadcasts require.
fn render_lanes(
    d: &KernelDesc,
    (a, b): (usize, usize),
    lanes: usize,
    out_shape: &[usize],
    sz: &mut Sizes,
) -> String {
    let Parts {
        m,
        n,
        k,
        mut s,
        epi,
        eres,
    } = parts(d, (a, b), out_shape, sz);
    let (ms, ns, k4s) = (sz.u(m), sz.u(n), sz.u(k / 4));
    let ra = sz.u(matrix_strides(&d.slots[a]).0 / 4);
    let rb = sz.u(matrix_strides(&d.slots[b]).0 / 4);
    let wg = d.wg;
    // One lane: no subgroup, the lane index is 0.
    let (sl_param, sl_let) = if lanes == 1 {
        ("", "    let sl = 0u;\n")
    } else {
        ("    @builtin(subgroup_invocation_id) sl: u32,\n", "")
    };
    let (mut decl, mut fma, mut store) = (String::new(), String::new(), String::new());
    for q in 0..LANE_ROWS / lanes {
        let _ = writeln!(
            decl,
            "    let ar{q} = abase + min(row0 + {}u + sl, {ms} - 1u) * {ra};",
            q * lanes
        );
        let _ = writeln!(fma, "        let x{q} = in{a}[ar{q} + k4];");
    }
    for i in 0..LANE_ROWS {
        let _ = writeln!(decl, "    var s{i} = vec4<f32>(0.0);");
        if lanes == 1 {
            let _ = writeln!(fma, "        let y{i} = x{i};");
        } else {
            let _ = writeln!(
                fma,
                "        let y{i} = subgroupBroadcast(x{}, {}u);",
                i / lanes,
                i % lanes
            );
        }
        for (t, c) in ["x", "y", "z", "w"].iter().enumerate() {
            let _ = writeln!(fma, "        s{i} = fma(vec4<f32>(y{i}.{c}), b{t}, s{i});");
        }
        let _ = writeln!(
            store,
            "    for (var j = 0u; j < 4u; j = j + 1u) {{\n        if (row0 + {i}u < {ms} && c + j < {ns}) {{\n            let gi = obase + (row0 + {i}u) * {ns} + c + j;\n            out[gi] = epilogue(gi, s{i}[j]);\n        }}\n    }}"
        );
    }
    let _ = write!(
        s,
        "
fn epilogue(gi: u32, core: f32) -> f32 {{
{epi}    return {eres};
}}

@compute @workgroup_size({wg})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
{sl_param}) {{
{sl_let}    let batch = wid.z;
    let row0 = wid.y * {LANE_ROWS}u;
    let c = (wid.x * {wg}u + lid.x) * 4u;
    let abase = a_base(batch) / 4u;
    let bcol = b_base(batch) / 4u + min(c, {ns} - 4u) / 4u;
    let obase = batch * {ms} * {ns};
{decl}    for (var k4 = 0u; k4 < {k4s}; k4 = k4 + 1u) {{
        let kb = bcol + k4 * 4u * {rb};
        let b0 = in{b}[kb];
        let b1 = in{b}[kb + {rb}];
        let b2 = in{b}[kb + 2u * {rb}];
        let b3 = in{b}[kb + 3u * {rb}];
{fma}    }}
{store}}}
"
    );
    s
}

pub(super) fn render(
    d: &KernelDesc,
    a: usize,
    b: usize,
    out_shape: &[usize],
    sz: &mut Sizes,
) -> String {
    if let Some(l) = lanes(d, sz.variant()) {
        return render_lanes(d, (a, b), l, out_shape, sz);
    }
    if sz.variant() == Variant::Quick {
        return render_quick(d, (a, b), out_shape, sz);
    }
    let Parts {
        m,
        n,
        k,
        s,
        epi,
        eres,
    } = parts(d, (a, b), out_shape, sz);
    let (ms, ns, ks) = (sz.u(m), sz.u(n), sz.u(k));
    let ((a_rs, a_cs), (b_rs, b_cs)) = (matrix_strides(&d.slots[a]), matrix_strides(&d.slots[b]));
    let (tm, tn) = tile(d, m, n, out_shape[..out_shape.len() - 2].iter().product());
    let (bm, bn, bk) = (16 * tm, 16 * tn, 16);
    // Copy orders: consecutive threads walk the operand's unit-stride dimension. A k-major
    // store (A read along k, B read along k) writes with a stride of the tile pitch, so those
    // tiles get 4 floats of padding per row against bank conflicts.
    let a_along_k = a_cs <= a_rs;
    let b_along_n = b_cs <= b_rs;
    let sa = bm + if a_along_k { 4 } else { 0 };
    let sb = bn + if b_along_n { 0 } else { 4 };
    let (ra, ca, rb, cb) = (sz.u(a_rs), sz.u(a_cs), sz.u(b_rs), sz.u(b_cs));
    // Element l of this thread's share of each tile: e = tid + 256·l, mapped to (outer, k) of the
    // operand (outer: A's row, B's column) in its copy order; fetched from memory into a
    // register, then put into the tile (k-major).
    let (mut fetch_decl, mut fetch, mut fetch_next, mut put) =
        (String::new(), String::new(), String::new(), String::new());
    let operands = [
        // (name, slot, base, tile, pitch, outer tile, outer start, outer size, strides, along k)
        (
            "a",
            a,
            "abase",
            "tile_a",
            "SA",
            "BM",
            "row0",
            &ms,
            (&ra, &ca),
            a_along_k,
            bm,
        ),
        (
            "b",
            b,
            "bbase",
            "tile_b",
            "SB",
            "BN",
            "col0",
            &ns,
            (&cb, &rb),
            !b_along_n,
            bn,
        ),
    ];
    for (x, slot, base, tile, pitch, bo, o0, osize, (so, sk), along_k, outer) in operands {
        for l in 0..outer * bk / 256 {
            let e = format!("(tid + {}u)", l * 256);
            let (o, k) = if along_k {
                (format!("{e} / BK"), format!("{e} % BK"))
            } else {
                (format!("{e} % {bo}"), format!("{e} / {bo}"))
            };
            let _ = writeln!(
                fetch_decl,
                "    var f{x}{l} = 0.0;\n    let o{x}{l} = {o};\n    let k{x}{l} = {k};"
            );
            for (code, k0) in [(&mut fetch, "0u"), (&mut fetch_next, "kn")] {
                let _ = writeln!(
                    code,
                    "    f{x}{l} = 0.0;\n    if ({o0} + o{x}{l} < {osize} && {k0} + k{x}{l} < {ks}) {{ f{x}{l} = in{slot}[{base} + ({o0} + o{x}{l}) * {so} + ({k0} + k{x}{l}) * {sk}]; }}"
                );
            }
            let _ = writeln!(
                put,
                "        {{ let t = k{x}{l} * {pitch} + o{x}{l}; {tile}[t / 4u][t % 4u] = f{x}{l}; }}"
            );
        }
    }
    // Thread (tx, ty) owns rows g·(BM/GM) + 4·ty + i and columns h·(BN/GN) + 4·tx + c.
    let (gm, gn) = (tm / 4, tn / 4);
    let (mut acc, mut fma, mut store) = (String::new(), String::new(), String::new());
    for g in 0..gm {
        let _ = writeln!(
            fma,
            "            let a{g} = tile_a[(kk * SA + lid.y * 4u + {}u) / 4u];",
            g * bm / gm
        );
    }
    for h in 0..gn {
        let _ = writeln!(
            fma,
            "            let b{h} = tile_b[(kk * SB + lid.x * 4u + {}u) / 4u];",
            h * bn / gn
        );
    }
    for g in 0..gm {
        for i in 0..4 {
            for h in 0..gn {
                let _ = writeln!(acc, "    var c{g}_{i}_{h} = vec4<f32>(0.0);");
                let _ = writeln!(
                    fma,
                    "            c{g}_{i}_{h} = fma(vec4<f32>(a{g}[{i}]), b{h}, c{g}_{i}_{h});"
                );
                for c in 0..4 {
                    let _ = writeln!(
                        store,
                        "    {{\n        let r = row0 + lid.y * 4u + {};\n        let c = col0 + lid.x * 4u + {};\n        if (r < {ms} && c < {ns}) {{\n            out[batch * {ms} * {ns} + r * {ns} + c] = c{g}_{i}_{h}[{c}];\n        }}\n    }}",
                        format_args!("{}u", g * bm / gm + i),
                        format_args!("{}u", h * bn / gn + c),
                    );
                }
            }
        }
    }
    // A fused epilogue runs in one loop over the thread's outputs, reading back the values it
    // has just stored (its own writes, so no barrier): written once instead of once per output,
    // which keeps the shader (and its compile time) small whatever the epilogue holds.
    if !matches!(d.epilogue.insts.as_slice(), [crate::schedule::Inst::Core]) {
        let _ = write!(
            store,
            "
    for (var q = 0u; q < {outs}u; q = q + 1u) {{
        let c4 = q % 4u;
        let h = (q / 4u) % {gn}u;
        let i = (q / {four_gn}u) % 4u;
        let g = q / {sixteen_gn}u;
        let r = row0 + lid.y * 4u + g * {row_step}u + i;
        let c = col0 + lid.x * 4u + h * {col_step}u + c4;
        if (r < {ms} && c < {ns}) {{
            let gi = batch * {ms} * {ns} + r * {ns} + c;
            out[gi] = epilogue(gi, out[gi]);
        }}
    }}",
            outs = tm * tn,
            four_gn = 4 * gn,
            sixteen_gn = 16 * gn,
            row_step = bm / gm,
            col_step = bn / gn,
        );
    }
    s + &MATMUL
        .replace("{M}", &ms)
        .replace("{N}", &ns)
        .replace("{K}", &ks)
        .replace("{BM}", &bm.to_string())
        .replace("{BN}", &bn.to_string())
        .replace("{BK}", &bk.to_string())
        .replace("{SA}", &sa.to_string())
        .replace("{SB}", &sb.to_string())
        .replace("{TILE_A4}", &(sa * bk / 4).to_string())
        .replace("{TILE_B4}", &(sb * bk / 4).to_string())
        .replace("{FETCH_DECL}", fetch_decl.trim_end())
        .replace("{FETCH_NEXT}", fetch_next.trim_end())
        .replace("{FETCH}", fetch.trim_end())
        .replace("{PUT}", put.trim_end())
        .replace("{ACC_DECL}", &acc)
        .replace("{FMA}", fma.trim_end())
        .replace("{STORE}", store.trim_end())
        .replace("{EPILOGUE}", &epi)
        .replace("{RESULT}", &eres)
}
