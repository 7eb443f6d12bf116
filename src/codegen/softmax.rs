//! Softmax and log-softmax along one axis, the input element given by the fused prologue. A row
//! of at most `ROW_CACHED` elements is shared by a group of threads (`threads_per_row`: several
//! short rows per workgroup) and read once into their registers (max, exponentials and their
//! sum, write); a longer one gets a whole workgroup and three passes over memory (max, sum of
//! exponentials, write). Both do the same arithmetic in the same order.

use std::fmt::Write;

use super::{program_code, unravel_fn, KernelDesc, Sizes, Variant};
use crate::shape::{contiguous_strides, numel};

/// Rows up to this many elements are held in registers where a workgroup can hold them (16 per
/// thread with 256 threads; a software adapter's 32 threads hold rows of up to 1,024, 32 each).
const ROW_CACHED: u32 = 4096;

/// The register path is unrolled up to this many elements per thread: 16 on hardware (rows of
/// 1,024 and 4,096), 8 on a software adapter (32-thread workgroups), whose CPU code for more
/// outgrows the pipeline cache's size estimate (unrolled 32: `tests/memory` grew by 119 MiB).
fn unroll_max(wg: u32) -> u32 {
    if wg >= 64 {
        16
    } else {
        8
    }
}

/// Elements per thread when rows share a workgroup: threads enough for a row to have at most
/// this many each (rows of 1,024: 64 threads, 4 rows per workgroup of 256) …
const ROW_SHARE: u32 = 16;

/// … but at least this many threads per row, or enough for 4 elements each where that is fewer:
/// short rows keep their threads (H200, kernel time: 65536 rows of 16 on one thread each took
/// 0.020 ms, on 4 threads 0.008).
const ROW_THREADS_MIN: usize = 32;

/// The most elements a thread holds in registers in workgroups of `wg`.
fn per_thread_max(wg: u32) -> u32 {
    (ROW_CACHED / wg).clamp(4, 32)
}

/// Whether rows of `len` take the register path in workgroups of `wg`.
fn in_registers(len: usize, wg: u32) -> bool {
    len <= (per_thread_max(wg) * wg) as usize
}

/// Threads sharing a row of `len` elements in workgroups of `wg`: a row held in registers gets
/// the smallest power of two that leaves each thread at most `ROW_SHARE` of its elements (but
/// see `ROW_THREADS_MIN`), up to the whole workgroup, so a workgroup runs `wg / threads` short
/// rows at once instead of one row on mostly idle threads, and each thread has many loads in
/// flight. A longer row: the workgroup. Both variants: a generic kernel reads it as a size, so
/// its reductions add in the specialized kernel's order and the two give bit-identical results.
pub(super) fn threads_per_row(len: usize, wg: u32) -> u32 {
    if !in_registers(len, wg) {
        return wg;
    }
    let share = len
        .div_ceil(ROW_SHARE.min(per_thread_max(wg)) as usize)
        .next_power_of_two();
    let keep = len.div_ceil(4).next_power_of_two().min(ROW_THREADS_MIN);
    u32::try_from(share.max(keep)).unwrap_or(wg).clamp(1, wg)
}

/// Workgroups for `rows` rows of `len`.
pub(super) fn groups(rows: usize, len: usize, wg: u32) -> usize {
    rows.div_ceil((wg / threads_per_row(len, wg)) as usize)
}

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
    let tpr = threads_per_row(shape[axis], wg);
    // Elements per thread held in registers: what the row needs (at most ROW_SHARE when a row
    // takes part of the workgroup, by construction of `threads_per_row`), up to `per_thread_max`
    // (a longer row fails the kernel's test below and takes three passes). A generic kernel's
    // text depends on no size: it holds the most any row can need (the elements past the
    // row's end skipped, so it adds in the same order).
    let most = per_thread_max(wg);
    let cached = if sz.variant() == Variant::Specialized {
        (shape[axis].div_ceil(tpr as usize).max(1) as u32).min(most)
    } else {
        most
    };
    let (half, rpw) = (sz.u((tpr / 2) as usize), sz.u((wg / tpr) as usize));
    let tpr = sz.u(tpr as usize);
    // The cached path. Up to `unroll_max` elements per thread it is unrolled: every load is
    // issued before any is used (a loop that used each value as it came waited a memory
    // latency per element), values in registers `v0, v1, …` keeping x (log-softmax) or
    // exp(x − max) (softmax). More stay a loop over a private array.
    let mut cached_code = String::new();
    if cached <= unroll_max(wg) {
        let j = |t: u32| format!("lid + {t}u * {tpr}");
        for t in 0..cached {
            let _ = write!(
                cached_code,
                "        var v{t} = -tm_inf();
        if (valid && {j} < {len}) {{
            let gi = base + ({j}) * {step};
{pro}            v{t} = {pres};
        }}
",
                j = j(t)
            );
        }
        cached_code += "        var m = -tm_inf();\n";
        for t in 0..cached {
            let _ = writeln!(cached_code, "        m = tm_max(m, v{t});");
        }
        cached_code += "        let mx = tm_wg_max(m, id);\n        var acc = 0.0;\n";
        for t in 0..cached {
            let keep = if log {
                String::new()
            } else {
                format!(" v{t} = e;")
            };
            let _ = writeln!(
                cached_code,
                "        if (valid && {j} < {len}) {{ let e = tm_exp(v{t} - mx); acc = acc + e;{keep} }}",
                j = j(t)
            );
        }
        cached_code += "        let total = tm_wg_sum(acc, id);\n";
        for t in 0..cached {
            let value = if log {
                format!("v{t} - mx - tm_log(total)")
            } else {
                format!("v{t} / total")
            };
            let _ = writeln!(
                cached_code,
                "        if (valid && {j} < {len}) {{ out[base + ({j}) * {step}] = {value}; }}",
                j = j(t)
            );
        }
    } else {
        let (keep, value) = if log {
            ("", "vals[t] - mx - tm_log(total)")
        } else {
            ("vals[t] = e;", "vals[t] / total")
        };
        let _ = write!(
            cached_code,
            "        var vals: array<f32, {cached}>;
        var m = -tm_inf();
        for (var t = 0u; t < {cached}u; t = t + 1u) {{
            let j = lid + t * {tpr};
            var v = -tm_inf();
            if (valid && j < {len}) {{
                let gi = base + j * {step};
{pro}                v = {pres};
            }}
            vals[t] = v;
            m = tm_max(m, v);
        }}
        let mx = tm_wg_max(m, id);
        var acc = 0.0;
        for (var t = 0u; t < {cached}u; t = t + 1u) {{
            if (valid && lid + t * {tpr} < {len}) {{
                let e = tm_exp(vals[t] - mx);
                acc = acc + e;
                {keep}
            }}
        }}
        let total = tm_wg_sum(acc, id);
        for (var t = 0u; t < {cached}u; t = t + 1u) {{
            let j = lid + t * {tpr};
            if (valid && j < {len}) {{
                out[base + j * {step}] = {value};
            }}
        }}
"
        );
    }
    s += &format!(
        "
var<workgroup> sh: array<f32, {wg}>;

// The max and sum of one value per thread over each row's group of {tpr} threads (a tree in
// workgroup memory, every group at once; every thread gets its row's result).
fn tm_wg_max(x: f32, lid: u32) -> f32 {{
    sh[lid] = x;
    workgroupBarrier();
    for (var st = {half}; st > 0u; st = st >> 1u) {{
        if (lid % {tpr} < st) {{
            sh[lid] = tm_max(sh[lid], sh[lid + st]);
        }}
        workgroupBarrier();
    }}
    let r = sh[lid - lid % {tpr}];
    workgroupBarrier();
    return r;
}}

fn tm_wg_sum(x: f32, lid: u32) -> f32 {{
    sh[lid] = x;
    workgroupBarrier();
    for (var st = {half}; st > 0u; st = st >> 1u) {{
        if (lid % {tpr} < st) {{
            sh[lid] = sh[lid] + sh[lid + st];
        }}
        workgroupBarrier();
    }}
    let r = sh[lid - lid % {tpr}];
    workgroupBarrier();
    return r;
}}

@compute @workgroup_size({wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) id: u32) {{
    // Thread `lid` of row `o` (`{rpw}` rows per workgroup).
    let lid = id % {tpr};
    let o = (wid.x + wid.y * nwg.x) * {rpw} + id / {tpr};
    let valid = o < {rows};
    let base = row_base(o);
    if ({len} <= {cached}u * {tpr}) {{
{cached_code}        return;
    }}
    var m = -tm_inf();
    if (valid) {{
        for (var j = lid; j < {len}; j = j + {tpr}) {{
            let gi = base + j * {step};
{pro}            m = tm_max(m, {pres});
        }}
    }}
    let mx = tm_wg_max(m, id);
    var acc = 0.0;
    if (valid) {{
        for (var j = lid; j < {len}; j = j + {tpr}) {{
            let gi = base + j * {step};
{pro}            acc = acc + tm_exp({pres} - mx);
        }}
    }}
    let total = tm_wg_sum(acc, id);
    if (valid) {{
        for (var j = lid; j < {len}; j = j + {tpr}) {{
            let gi = base + j * {step};
{pro}            out[gi] = {write};
        }}
    }}
}}
",
    );
    s
}
