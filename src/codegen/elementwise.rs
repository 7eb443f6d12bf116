//! Elementwise kernels: one thread per output element runs the fused program.

use super::{program_code, KernelDesc, Sizes};
use crate::shape::numel;

pub(super) fn render(d: &KernelDesc, sz: &mut Sizes) -> String {
    let wg = d.wg;
    let n_out = sz.u(numel(&d.out_shape));
    let (code, res) = program_code(&d.epilogue, "e", &d.slots, "", sz);
    format!(
        "
@compute @workgroup_size({wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let gi = gid.x + gid.y * nwg.x * {wg}u;
    if (gi >= {n_out}) {{
        return;
    }}
{code}    out[gi] = {res};
}}
"
    )
}
