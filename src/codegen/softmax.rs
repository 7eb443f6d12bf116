//! Softmax and log-softmax along one axis: one workgroup per row, the input element given by
//! the fused prologue. A row of at most `ROW_CACHED` elements (or 4 per thread) is read once into
//! registers (max, exponentials and their sum, write); a longer one in three passes over memory
//! (max, sum of exponentials, write). Both do the same arithmetic in the same order.

use super::{program_code, unravel_fn, KernelDesc, Sizes};
use crate::shape::{contiguous_strides, numel};

/// Rows up to this many elements are held in registers, `ROW_CACHED / wg` per thread (at least
/// 4, at most 32: 4 with 256 threads, 32 with the 32 of a software adapter).
const ROW_CACHED: u32 = 1024;

pub(super) fn render(
    d: &KernelDesc,
    shape: &[usize],
    axis: usize,
    log: bool,
    sz: &mut Sizes,
) -> String {
    let wg = d.wg;
    let cs = contiguous_strides(shape);
    let outer: Vec<usize> = (0..shape.len()).filter(|&a| a != axis).collect();
    let mut s = unravel_fn(
        "row_base",
        &outer.iter().map(|&a| shape[a]).collect::<Vec<_>>(),
        &outer.iter().map(|&a| cs[a]).collect::<Vec<_>>(),
        0,
        sz,
    );
    let rows = sz.u(numel(&d.out_shape) / shape[axis].max(1));
    let (len, step) = (sz.u(shape[axis]), sz.u(cs[axis]));
    let (pro, pres) = program_code(&d.prologue, "p", &d.slots, "", sz);
    let write = if log {
        format!("{pres} - mx - tm_log(total)")
    } else {
        format!("tm_exp({pres} - mx) / total")
    };
    // The cached path keeps x (log-softmax) or exp(x − max) (softmax) per element.
    let (keep, cached_write) = if log {
        ("", "vals[t] - mx - tm_log(total)")
    } else {
        ("vals[t] = e;", "vals[t] / total")
    };
    let cached = (ROW_CACHED / wg).clamp(4, 32);
    s += &format!(
        "
var<workgroup> sh: array<f32, {wg}>;

// The workgroup's max and sum of one value per thread (a tree; every thread gets the result).
fn tm_wg_max(x: f32, lid: u32) -> f32 {{
    sh[lid] = x;
    workgroupBarrier();
    for (var st = {half}u; st > 0u; st = st >> 1u) {{
        if (lid < st) {{
            sh[lid] = tm_max(sh[lid], sh[lid + st]);
        }}
        workgroupBarrier();
    }}
    let r = sh[0];
    workgroupBarrier();
    return r;
}}

fn tm_wg_sum(x: f32, lid: u32) -> f32 {{
    sh[lid] = x;
    workgroupBarrier();
    for (var st = {half}u; st > 0u; st = st >> 1u) {{
        if (lid < st) {{
            sh[lid] = sh[lid] + sh[lid + st];
        }}
        workgroupBarrier();
    }}
    let r = sh[0];
    workgroupBarrier();
    return r;
}}

@compute @workgroup_size({wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let o = wid.x + wid.y * nwg.x;
    let valid = o < {rows};
    let base = row_base(o);
    if ({len} <= {cached}u * {wg}u) {{
        var vals: array<f32, {cached}>;
        var m = -tm_inf();
        for (var t = 0u; t < {cached}u; t = t + 1u) {{
            let j = lid + t * {wg}u;
            var v = -tm_inf();
            if (valid && j < {len}) {{
                let gi = base + j * {step};
{pro}                v = {pres};
            }}
            vals[t] = v;
            m = tm_max(m, v);
        }}
        let mx = tm_wg_max(m, lid);
        var acc = 0.0;
        for (var t = 0u; t < {cached}u; t = t + 1u) {{
            if (valid && lid + t * {wg}u < {len}) {{
                let e = tm_exp(vals[t] - mx);
                acc = acc + e;
                {keep}
            }}
        }}
        let total = tm_wg_sum(acc, lid);
        for (var t = 0u; t < {cached}u; t = t + 1u) {{
            let j = lid + t * {wg}u;
            if (valid && j < {len}) {{
                out[base + j * {step}] = {cached_write};
            }}
        }}
        return;
    }}
    var m = -tm_inf();
    if (valid) {{
        for (var j = lid; j < {len}; j = j + {wg}u) {{
            let gi = base + j * {step};
{pro}            m = tm_max(m, {pres});
        }}
    }}
    let mx = tm_wg_max(m, lid);
    var acc = 0.0;
    if (valid) {{
        for (var j = lid; j < {len}; j = j + {wg}u) {{
            let gi = base + j * {step};
{pro}            acc = acc + tm_exp({pres} - mx);
        }}
    }}
    let total = tm_wg_sum(acc, lid);
    if (valid) {{
        for (var j = lid; j < {len}; j = j + {wg}u) {{
            let gi = base + j * {step};
{pro}            out[gi] = {write};
        }}
    }}
}}
",
        half = wg / 2
    );
    s
}
