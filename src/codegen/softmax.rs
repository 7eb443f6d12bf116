//! Softmax and log-softmax along one axis: one workgroup per row, three passes over it (max,
//! sum of exponentials, write), the input element given by the fused prologue.

use super::{program_code, unravel_fn, KernelDesc, Sizes};
use crate::shape::{contiguous_strides, numel};

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
    s += &format!(
        "
var<workgroup> sh: array<f32, {wg}>;

@compute @workgroup_size({wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let o = wid.x + wid.y * nwg.x;
    let valid = o < {rows};
    let base = row_base(o);
    var m = -tm_inf();
    if (valid) {{
        for (var j = lid; j < {len}; j = j + {wg}u) {{
            let gi = base + j * {step};
{pro}            m = tm_max(m, {pres});
        }}
    }}
    sh[lid] = m;
    workgroupBarrier();
    for (var st = {half}u; st > 0u; st = st >> 1u) {{
        if (lid < st) {{
            sh[lid] = tm_max(sh[lid], sh[lid + st]);
        }}
        workgroupBarrier();
    }}
    let mx = sh[0];
    workgroupBarrier();
    var acc = 0.0;
    if (valid) {{
        for (var j = lid; j < {len}; j = j + {wg}u) {{
            let gi = base + j * {step};
{pro}            acc = acc + tm_exp({pres} - mx);
        }}
    }}
    sh[lid] = acc;
    workgroupBarrier();
    for (var st = {half}u; st > 0u; st = st >> 1u) {{
        if (lid < st) {{
            sh[lid] = sh[lid] + sh[lid + st];
        }}
        workgroupBarrier();
    }}
    let total = sh[0];
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
