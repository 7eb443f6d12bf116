//! Reductions over any set of axes, with a fused prologue (the input element) and epilogue
//! (the output element). Few elements per output: one thread each; more: one workgroup each,
//! a tree in workgroup memory. Sums are Kahan-compensated per thread.

use std::fmt::Write;

use super::{program_code, unravel_fn, KernelDesc, Sizes};
use crate::ir::ReduceOp;
use crate::shape::{contiguous_strides, numel};

/// Reductions of at most this many elements per output use one thread per output.
const SMALL_REDUCE: usize = 16;

fn count(in_shape: &[usize], axes: &[usize]) -> usize {
    axes.iter().map(|&a| in_shape[a]).product()
}

/// Workgroups of a reduction with `n_out` outputs.
pub(super) fn groups(in_shape: &[usize], axes: &[usize], n_out: usize, wg: usize) -> usize {
    if count(in_shape, axes) <= SMALL_REDUCE {
        n_out.div_ceil(wg)
    } else {
        n_out
    }
}

pub(super) fn render(
    d: &KernelDesc,
    op: ReduceOp,
    in_shape: &[usize],
    axes: &[usize],
    sz: &mut Sizes,
) -> String {
    let wg = d.wg;
    let cs = contiguous_strides(in_shape);
    let kept: Vec<usize> = (0..in_shape.len()).filter(|a| !axes.contains(a)).collect();
    let count = count(in_shape, axes);
    // The variant (thread or workgroup per output) is part of the structure.
    let small = count <= SMALL_REDUCE;
    let mut s = unravel_fn(
        "outer_index",
        &kept.iter().map(|&a| in_shape[a]).collect::<Vec<_>>(),
        &kept.iter().map(|&a| cs[a]).collect::<Vec<_>>(),
        0,
        sz,
    );
    s += &unravel_fn(
        "inner_index",
        &axes.iter().map(|&a| in_shape[a]).collect::<Vec<_>>(),
        &axes.iter().map(|&a| cs[a]).collect::<Vec<_>>(),
        0,
        sz,
    );
    let n_out = sz.u(numel(&d.out_shape));
    let count_s = sz.u(count);
    let (init, combine) = op.wgsl_combine();
    let _ = write!(
        s,
        "fn combine(a: f32, b: f32) -> f32 {{\n    return {combine};\n}}\n"
    );
    let (pro, pres) = program_code(&d.prologue, "p", &d.slots, "", sz);
    let finish = if op == ReduceOp::Mean {
        format!("(acc / f32({count_s}))")
    } else {
        "acc".into()
    };
    let (epi, eres) = program_code(&d.epilogue, "e", &d.slots, "core", sz);
    let accumulate = if op.is_sum() {
        format!("let y = {pres} - comp;\n            let t = acc + y;\n            comp = (t - acc) - y;\n            acc = t;")
    } else {
        format!("acc = combine(acc, {pres});")
    };
    if small {
        let _ = write!(
            s,
            "
@compute @workgroup_size({wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let o = gid.x + gid.y * nwg.x * {wg}u;
    if (o >= {n_out}) {{
        return;
    }}
    let base = outer_index(o);
    var acc = {init};
    var comp = 0.0;
    for (var r = 0u; r < {count_s}; r = r + 1u) {{
        let gi = base + inner_index(r);
        {{
{pro}            {accumulate}
        }}
    }}
    let core = {finish};
    let gi = o;
{epi}    out[o] = {eres};
}}
"
        );
    } else {
        let _ = write!(
            s,
            "
var<workgroup> sh: array<f32, {wg}>;

@compute @workgroup_size({wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let o = wid.x + wid.y * nwg.x;
    var acc = {init};
    var comp = 0.0;
    if (o < {n_out}) {{
        let base = outer_index(o);
        for (var r = lid; r < {count_s}; r = r + {wg}u) {{
            let gi = base + inner_index(r);
{pro}            {accumulate}
        }}
    }}
    sh[lid] = acc;
    workgroupBarrier();
    for (var st = {half}u; st > 0u; st = st >> 1u) {{
        if (lid < st) {{
            sh[lid] = combine(sh[lid], sh[lid + st]);
        }}
        workgroupBarrier();
    }}
    if (lid == 0u && o < {n_out}) {{
        let acc = sh[0];
        let core = {finish};
        let gi = o;
{epi}        out[o] = {eres};
    }}
}}
",
            half = wg / 2
        );
    }
    s
}
