//! Elementwise kernels: one thread per output element runs the fused program; a specialized
//! kernel whose inputs are dense and 16-byte aligned (or single broadcast values) runs it for
//! four consecutive elements per thread, with `vec4` loads and stores.

use std::fmt::Write;

use super::{program_code, program_code_with, simplify, KernelDesc, Sizes, Variant};
use crate::schedule::{Body, Inst};
use crate::shape::numel;

/// How a slot of a four-wide elementwise kernel is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Load4 {
    /// Not read by the program.
    Unused,
    /// Dense: the four elements of thread `t` are `vec4` number `base4 + t`.
    Dense { base4: usize },
    /// One value for every element, at this index.
    Splat { index: usize },
}

/// The slots' reads when `d` can run four elements per thread: a specialized elementwise kernel
/// with a multiple of four outputs whose every load is dense from a 16-byte aligned offset, or
/// one broadcast value. `None` otherwise (generic kernels stay one element per thread, so that
/// their pipeline depends on the structure only).
pub(super) fn vec4_loads(d: &KernelDesc, variant: Variant) -> Option<Vec<Load4>> {
    let n = numel(&d.out_shape);
    if variant != Variant::Specialized || !matches!(d.body, Body::Elementwise) || n % 4 != 0 {
        return None;
    }
    let mut loads = vec![Load4::Unused; d.slots.len()];
    for inst in &d.epilogue.insts {
        let Inst::Load { slot, shape } = inst else {
            continue;
        };
        let l = simplify(&d.slots[*slot].broadcast_to(shape));
        let kind = match (l.shape.as_slice(), l.strides.as_slice()) {
            (_, st) if st.iter().all(|&s| s == 0) => Load4::Splat { index: l.offset },
            ([len], [1]) if *len == n && l.offset % 4 == 0 => Load4::Dense {
                base4: l.offset / 4,
            },
            _ => return None,
        };
        match loads[*slot] {
            Load4::Unused => loads[*slot] = kind,
            k if k == kind => {}
            _ => return None,
        }
    }
    Some(loads)
}

/// The bindings of a four-wide kernel: `vec4` arrays for the output and dense inputs.
pub(super) fn bindings_vec4(loads: &[Load4]) -> String {
    let mut s =
        String::from("@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;\n");
    for (k, l) in loads.iter().enumerate() {
        let ty = match l {
            Load4::Dense { .. } => "vec4<f32>",
            _ => "f32",
        };
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<storage, read> in{k}: array<{ty}>;",
            k + 1
        );
    }
    s
}

/// `vec4`s per thread of a four-wide kernel over `n4` of them: 4 once that still leaves 1,024
/// workgroups (enough to fill a large GPU; 64 on a software adapter, whose few cores it fills),
/// else 1: more independent loads in flight per thread, and a 1-D grid up to 256M elements.
/// H200, kernel time, x·c: 4M elements 0.022 → 0.009 ms, 64M 0.40 → 0.33 ms (GELU 0.58 → 0.51);
/// 2 and 8 per thread measured within 10% of 4 at 64M and 256M (still half of what softmax
/// reaches over the same bytes, 2.9 TB/s: not explained). Lavapipe, 1M elements (fewer
/// invocations, each with its index and range test): x·c 1.0 → 0.85 ms, GELU 1.5 → 1.3, the
/// 8-op chain 3.4 → 2.75.
pub(super) fn vec4s_per_thread(n4: usize, wg: u32, software: bool) -> usize {
    let groups = if software { 64 } else { 1024 };
    if n4 >= 4 * groups * wg as usize {
        4
    } else {
        1
    }
}

/// A four-wide kernel: each thread loads its dense inputs once as `vec4`s and runs the program
/// on each lane (the same arithmetic per element as the one-wide kernel); with several `vec4`s
/// per thread, thread `t` of `T` takes numbers `t`, `t + T`, … (each step a coalesced sweep), all
/// loads issued before any value is used. Loads are clamped to the last `vec4`, stores guarded.
pub(super) fn render_vec4(d: &KernelDesc, loads: &[Load4]) -> String {
    let wg = d.wg;
    let n4 = numel(&d.out_shape) / 4;
    let per = vec4s_per_thread(n4, wg, d.software);
    let threads = n4.div_ceil(per);
    let mut code = String::new();
    for u in 0..per {
        let _ = writeln!(code, "    let g{u} = t + {}u;", u * threads);
        let _ = writeln!(code, "    let l{u} = min(g{u}, {}u);", n4.saturating_sub(1));
    }
    // Each input is read once per thread and `vec4`: a dense one as a `vec4`, a broadcast one as
    // its value (on a CPU adapter every load is a loop over the vector's lanes, and a value read
    // per lane cost four of them: lavapipe, x·c over 1M elements took 1.8 ms against 1.3 for −x).
    for (k, l) in loads.iter().enumerate() {
        match l {
            Load4::Dense { base4 } => {
                for u in 0..per {
                    let _ = writeln!(code, "    let v{k}_{u} = in{k}[{base4}u + l{u}];");
                }
            }
            Load4::Splat { index } => {
                let _ = writeln!(code, "    let s{k} = in{k}[{index}u];");
            }
            Load4::Unused => {}
        }
    }
    for u in 0..per {
        let mut lanes = vec![];
        for (c, lane) in ["x", "y", "z", "w"].iter().enumerate() {
            let (body, res) = program_code_with(
                &d.epilogue,
                &format!("e{u}{c}_"),
                "",
                &mut |_, slot, _, _| match loads[slot] {
                    Load4::Dense { .. } => format!("v{slot}_{u}.{lane}"),
                    Load4::Splat { .. } => format!("s{slot}"),
                    Load4::Unused => unreachable!("a loaded slot is classified"),
                },
            );
            code += &body;
            lanes.push(res);
        }
        let _ = writeln!(code, "    let r{u} = vec4<f32>({});", lanes.join(", "));
    }
    for u in 0..per {
        if u * threads + threads <= n4 {
            let _ = writeln!(code, "    out[g{u}] = r{u};");
        } else {
            let _ = writeln!(
                code,
                "    if (g{u} < {n4}u) {{\n        out[g{u}] = r{u};\n    }}"
            );
        }
    }
    format!(
        "
@compute @workgroup_size({wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let t = gid.x + gid.y * nwg.x * {wg}u;
    if (t >= {threads}u) {{
        return;
    }}
{code}}}
"
    )
}

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
