//! Reductions over any set of axes, with a fused prologue (the input element) and epilogue
//! (the output element). Few elements per output: one thread each; more: a group of threads
//! each (a power of two, sized to the count: a workgroup holds several outputs' groups), a
//! tree in workgroup memory. Sums are Kahan-compensated per thread.

use std::fmt::Write;

use super::{program_code, unravel_fn, KernelDesc, Sizes};
use crate::ir::ReduceOp;
use crate::shape::{contiguous_strides, numel};

/// Reductions of at most this many elements per output use one thread per output.
const SMALL_REDUCE: usize = 16;

fn count(in_shape: &[usize], axes: &[usize]) -> usize {
    axes.iter().map(|&a| in_shape[a]).product()
}

/// A thread of a group adds at most this many of its output's elements, where the workgroup
/// allows: an output of 64 elements takes 4 threads, one of 1,024 takes 64, one of 4,096 or
/// more the whole workgroup. (One workgroup per output left most threads idle on short counts
/// and ran a tree of log₂(wg) barriers for each: on lavapipe, a sum over the 64-element rows of
/// a [16384, 64] matrix took 86 ms, over the 16,384-element rows of [64, 16384] 1.5 ms.)
const REDUCE_SHARE: usize = 16;

/// Threads that share one output of `count` elements in workgroups of `wg` (a power of two).
/// A generic kernel reads it as a size, so both variants add in the same order.
pub(super) fn threads_per_output(count: usize, wg: usize) -> usize {
    count
        .div_ceil(REDUCE_SHARE)
        .next_power_of_two()
        .clamp(1, wg)
}

/// Workgroups of a reduction with `n_out` outputs.
pub(super) fn groups(in_shape: &[usize], axes: &[usize], n_out: usize, wg: usize) -> usize {
    let count = count(in_shape, axes);
    if count <= SMALL_REDUCE {
        n_out.div_ceil(wg)
    } else {
        n_out.div_ceil(wg / threads_per_output(count, wg))
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
    let tpo = sz.u(threads_per_output(count, wg as usize));
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
    // Output o's group of threads; `lane` is a thread's place in it.
    let o = (wid.x + wid.y * nwg.x) * ({wg}u / {tpo}) + lid / {tpo};
    let lane = lid % {tpo};
    var acc = {init};
    var comp = 0.0;
    if (o < {n_out}) {{
        let base = outer_index(o);
        for (var r = lane; r < {count_s}; r = r + {tpo}) {{
            let gi = base + inner_index(r);
{pro}            {accumulate}
        }}
    }}
    sh[lid] = acc;
    workgroupBarrier();
    for (var st = {tpo} / 2u; st > 0u; st = st >> 1u) {{
        if (lane < st) {{
            sh[lid] = combine(sh[lid], sh[lid + st]);
        }}
        workgroupBarrier();
    }}
    if (lane == 0u && o < {n_out}) {{
        let acc = sh[lid];
        let core = {finish};
        let gi = o;
{epi}        out[o] = {eres};
    }}
}}
"
        );
    }
    s
}
