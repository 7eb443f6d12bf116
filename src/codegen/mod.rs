//! Kernel IR → WGSL text. A pure function of a [`KernelDesc`], which is also the pipeline
//! cache key: the key and the code are derived from the same value, so they cannot disagree.

use std::fmt::Write;

use crate::ops::ReduceOp;
use crate::schedule::{Body, Inst, Program};
use crate::shape::Layout;

const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const SVD: &str = include_str!("../../shaders/svd.wgsl");

/// Everything a kernel's code depends on: its structure, shapes, input layouts and launch shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct KernelDesc {
    pub body: Body,
    pub prologue: Program,
    pub epilogue: Program,
    /// Input layouts (offsets and strides in elements), one per binding after the output.
    pub slots: Vec<Layout>,
    /// The root's shape: the output is dense row-major.
    pub out_shape: Vec<usize>,
    /// Threads per workgroup for 1-D kernels (a power of two within the adapter's limits).
    pub wg: u32,
    /// Part of an SVD: which stage (0 for other kernels).
    pub stage: u32,
}

/// Reduce kernels with at most this many elements per output use one thread per output.
pub(crate) const SMALL_REDUCE: usize = 16;

/// Outputs per thread (rows, cols) of the matmul kernel for an `m × n` result: 8×8 (128×128
/// tiles) when both sides are large, else 4×4 (64×64 tiles, less waste on small shapes).
pub(crate) fn matmul_tile(m: usize, n: usize) -> (usize, usize) {
    if m >= 512 && n >= 512 {
        (8, 8)
    } else {
        (4, 4)
    }
}

/// Merges dims that can be walked as one (dense runs, broadcast runs) and drops size-1 dims.
fn simplify(l: &Layout) -> Layout {
    let mut shape: Vec<usize> = vec![];
    let mut strides: Vec<usize> = vec![];
    for (&d, &s) in l.shape.iter().zip(&l.strides) {
        if d == 1 {
            continue;
        }
        if let (Some(&pd), Some(&ps)) = (shape.last(), strides.last()) {
            if ps == s * d {
                *shape.last_mut().unwrap() = pd * d;
                *strides.last_mut().unwrap() = s;
                continue;
            }
        }
        shape.push(d);
        strides.push(s);
    }
    Layout {
        shape,
        strides,
        offset: l.offset,
    }
}

/// WGSL statements that set `var {out}: u32` to the buffer index of flat element `{flat}`.
fn index_code(l: &Layout, flat: &str, out: &str) -> String {
    let l = simplify(l);
    let mut s = format!("var {out} = {}u;", l.offset);
    if l.shape.is_empty() {
        return s;
    }
    if l.shape.len() == 1 {
        let _ = write!(s, " {out} += {flat} * {}u;", l.strides[0]);
        return s;
    }
    let _ = write!(s, " var {out}_r = {flat};");
    for d in (0..l.shape.len()).rev() {
        let (n, st) = (l.shape[d], l.strides[d]);
        if d == 0 {
            let _ = write!(s, " {out} += {out}_r * {st}u;");
        } else {
            let _ = write!(
                s,
                " {out} += ({out}_r % {n}u) * {st}u; {out}_r = {out}_r / {n}u;"
            );
        }
    }
    s
}

/// Renders a program as WGSL statements over flat index `gi`; returns (code, result name).
fn program_code(p: &Program, prefix: &str, slots: &[Layout], core: &str) -> (String, String) {
    let mut code = String::new();
    for (k, inst) in p.insts.iter().enumerate() {
        let name = format!("{prefix}{k}");
        let expr = match inst {
            Inst::Load { slot, shape } => {
                let l = slots[*slot].broadcast_to(shape);
                let _ = writeln!(
                    code,
                    "        {}",
                    index_code(&l, "gi", &format!("{name}_i"))
                );
                format!("in{slot}[{name}_i]")
            }
            Inst::Core => core.to_string(),
            Inst::Unary(op, x) => op.wgsl(&format!("{prefix}{x}")),
            Inst::Binary(op, a, b) => op.wgsl(&format!("{prefix}{a}"), &format!("{prefix}{b}")),
        };
        let _ = writeln!(code, "        let {name} = {expr};");
    }
    (code, format!("{prefix}{}", p.result))
}

fn bindings(n_slots: usize) -> String {
    let mut s = String::from("@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n");
    for k in 0..n_slots {
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<storage, read> in{k}: array<f32>;",
            k + 1
        );
    }
    s
}

/// `fn {name}(x: u32) -> u32`: the sum over `dims` (last varies fastest) of `x`'s digits times
/// `strides`.
fn unravel_fn(name: &str, dims: &[usize], strides: &[usize], offset: usize) -> String {
    let mut s = format!("fn {name}(x: u32) -> u32 {{\n    var r = x;\n    var o = {offset}u;\n");
    // Size-1 dims contribute nothing; a size-0 dim means the function is never reached.
    for d in (0..dims.len()).rev().filter(|&d| dims[d] > 1) {
        let _ = writeln!(
            s,
            "    o += (r % {}u) * {}u;\n    r = r / {}u;",
            dims[d], strides[d], dims[d]
        );
    }
    s + "    return o;\n}\n"
}

fn reduce_parts(op: ReduceOp) -> (&'static str, &'static str) {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => ("0.0", "(a + b)"),
        ReduceOp::Max => ("-tm_inf()", "tm_max(a, b)"),
        ReduceOp::Min => ("tm_inf()", "tm_min(a, b)"),
    }
}

static SHADER_LOG: std::sync::Mutex<Option<Vec<String>>> = std::sync::Mutex::new(None);

/// Starts keeping a copy of every WGSL source the JIT compiles (process-wide; for tests that
/// validate the emitted shaders with naga).
pub fn start_shader_log() {
    let mut log = SHADER_LOG.lock().unwrap_or_else(|e| e.into_inner());
    log.get_or_insert_with(Vec::new);
}

/// The WGSL sources compiled since [`start_shader_log`] (or the last take).
pub fn take_shader_log() -> Vec<String> {
    let mut log = SHADER_LOG.lock().unwrap_or_else(|e| e.into_inner());
    log.as_mut().map(std::mem::take).unwrap_or_default()
}

/// The WGSL source of a kernel.
pub(crate) fn wgsl(d: &KernelDesc) -> String {
    let source = render(d);
    if let Some(log) = SHADER_LOG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        log.push(source.clone());
    }
    source
}

fn render(d: &KernelDesc) -> String {
    let n_out: usize = d.out_shape.iter().product();
    let mut s = String::from(PRELUDE);
    s += "\n";
    s += &bindings(d.slots.len());
    let wg = d.wg;
    match &d.body {
        Body::Elementwise => {
            let (code, res) = program_code(&d.epilogue, "e", &d.slots, "");
            let _ = write!(
                s,
                "
@compute @workgroup_size({wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let gi = gid.x + gid.y * nwg.x * {wg}u;
    if (gi >= {n_out}u) {{
        return;
    }}
{code}    out[gi] = {res};
}}
"
            );
        }
        Body::Reduce { op, in_shape, axes } => {
            let cs = crate::shape::contiguous_strides(in_shape);
            let kept: Vec<usize> = (0..in_shape.len()).filter(|a| !axes.contains(a)).collect();
            let count: usize = axes.iter().map(|&a| in_shape[a]).product();
            s += &unravel_fn(
                "outer_index",
                &kept.iter().map(|&a| in_shape[a]).collect::<Vec<_>>(),
                &kept.iter().map(|&a| cs[a]).collect::<Vec<_>>(),
                0,
            );
            s += &unravel_fn(
                "inner_index",
                &axes.iter().map(|&a| in_shape[a]).collect::<Vec<_>>(),
                &axes.iter().map(|&a| cs[a]).collect::<Vec<_>>(),
                0,
            );
            let (init, combine) = reduce_parts(*op);
            let _ = write!(
                s,
                "fn combine(a: f32, b: f32) -> f32 {{\n    return {combine};\n}}\n"
            );
            let (pro, pres) = program_code(&d.prologue, "p", &d.slots, "");
            let finish = if *op == ReduceOp::Mean {
                format!("(acc / {count}.0)")
            } else {
                "acc".into()
            };
            let (epi, eres) = program_code(&d.epilogue, "e", &d.slots, "core");
            let is_sum = matches!(op, ReduceOp::Sum | ReduceOp::Mean);
            // Kahan-compensated partial sums per thread.
            let accumulate = if is_sum {
                format!("let y = {pres} - comp;\n            let t = acc + y;\n            comp = (t - acc) - y;\n            acc = t;")
            } else {
                format!("acc = combine(acc, {pres});")
            };
            if count <= SMALL_REDUCE {
                let _ = write!(
                    s,
                    "
@compute @workgroup_size({wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let o = gid.x + gid.y * nwg.x * {wg}u;
    if (o >= {n_out}u) {{
        return;
    }}
    let base = outer_index(o);
    var acc = {init};
    var comp = 0.0;
    for (var r = 0u; r < {count}u; r = r + 1u) {{
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
    if (o < {n_out}u) {{
        let base = outer_index(o);
        for (var r = lid; r < {count}u; r = r + {wg}u) {{
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
    if (lid == 0u && o < {n_out}u) {{
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
        }
        Body::Softmax { shape, axis, log } => {
            let cs = crate::shape::contiguous_strides(shape);
            let outer: Vec<usize> = (0..shape.len()).filter(|a| a != axis).collect();
            s += &unravel_fn(
                "row_base",
                &outer.iter().map(|&a| shape[a]).collect::<Vec<_>>(),
                &outer.iter().map(|&a| cs[a]).collect::<Vec<_>>(),
                0,
            );
            let (len, step) = (shape[*axis], cs[*axis]);
            let rows = n_out / len.max(1);
            let (pro, pres) = program_code(&d.prologue, "p", &d.slots, "");
            let write = if *log {
                format!("{pres} - mx - tm_log(total)")
            } else {
                format!("tm_exp({pres} - mx) / total")
            };
            let _ = write!(
                s,
                "
var<workgroup> sh: array<f32, {wg}>;

@compute @workgroup_size({wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let o = wid.x + wid.y * nwg.x;
    let valid = o < {rows}u;
    let base = row_base(o);
    var m = -tm_inf();
    if (valid) {{
        for (var j = lid; j < {len}u; j = j + {wg}u) {{
            let gi = base + j * {step}u;
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
        for (var j = lid; j < {len}u; j = j + {wg}u) {{
            let gi = base + j * {step}u;
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
        for (var j = lid; j < {len}u; j = j + {wg}u) {{
            let gi = base + j * {step}u;
{pro}            out[gi] = {write};
        }}
    }}
}}
",
                half = wg / 2
            );
        }
        Body::MatMul {
            a,
            b,
            a_shape,
            b_shape,
            out_shape,
        } => {
            let r = out_shape.len();
            let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
            let k = a_shape[a_shape.len() - 1];
            let batch = &out_shape[..r - 2];
            let (la, lb) = (&d.slots[*a], &d.slots[*b]);
            let ba = crate::ops::matmul::batch_layout(la, batch);
            let bb = crate::ops::matmul::batch_layout(lb, batch);
            s += &unravel_fn("a_base", batch, &ba.strides, ba.offset);
            s += &unravel_fn("b_base", batch, &bb.strides, bb.offset);
            let _ = b_shape;
            let (epi, eres) = program_code(&d.epilogue, "e", &d.slots, "core");
            let ra = la.strides[la.shape.len() - 2];
            let ca = la.strides[la.shape.len() - 1];
            let rb = lb.strides[lb.shape.len() - 2];
            let cb = lb.strides[lb.shape.len() - 1];
            let (tm, tn) = matmul_tile(m, n);
            let (bm, bn, bk) = (16 * tm, 16 * tn, 16);
            let (mut acc, mut fma, mut store) = (String::new(), String::new(), String::new());
            for i in 0..tm {
                let _ = writeln!(
                    fma,
                    "            let a{i} = tile_a[kk * BM + lid.y + {}u];",
                    i * 16
                );
            }
            for j in 0..tn {
                let _ = writeln!(
                    fma,
                    "            let b{j} = tile_b[kk * BN + lid.x + {}u];",
                    j * 16
                );
            }
            for i in 0..tm {
                for j in 0..tn {
                    let _ = writeln!(acc, "    var c{i}_{j} = 0.0;");
                    let _ = writeln!(fma, "            c{i}_{j} = fma(a{i}, b{j}, c{i}_{j});");
                    let _ = writeln!(
                        store,
                        "    {{\n        let r = row0 + lid.y + {}u;\n        let c = col0 + lid.x + {}u;\n        if (r < MM_M && c < MM_N) {{\n            let gi = batch * MM_M * MM_N + r * MM_N + c;\n            out[gi] = epilogue(gi, c{i}_{j});\n        }}\n    }}",
                        i * 16,
                        j * 16
                    );
                }
            }
            s += &MATMUL
                .replace("{M}", &m.to_string())
                .replace("{N}", &n.to_string())
                .replace("{K}", &k.to_string())
                .replace("{BM}", &bm.to_string())
                .replace("{BN}", &bn.to_string())
                .replace("{BK}", &bk.to_string())
                .replace("{TILE_A}", &(bm * bk).to_string())
                .replace("{TILE_B}", &(bn * bk).to_string())
                .replace("{LOADS_A}", &(bm * bk / 256).to_string())
                .replace("{LOADS_B}", &(bn * bk / 256).to_string())
                .replace("{A}", &format!("in{a}"))
                .replace("{B}", &format!("in{b}"))
                .replace("{ARS}", &ra.to_string())
                .replace("{ACS}", &ca.to_string())
                .replace("{BRS}", &rb.to_string())
                .replace("{BCS}", &cb.to_string())
                .replace("{ACC_DECL}", &acc)
                .replace("{FMA}", fma.trim_end())
                .replace("{STORE}", store.trim_end())
                .replace("{EPILOGUE}", &epi)
                .replace("{RESULT}", &eres);
        }
        Body::Svd { m, n } => {
            s += &svd_source(*m, *n, &d.slots[0], d.stage);
        }
    }
    s
}

/// The SVD stages share one source with stage-specific constants.
fn svd_source(m: usize, n: usize, input: &Layout, stage: u32) -> String {
    let tall = m >= n;
    let (rows, cols) = if tall { (m, n) } else { (n, m) };
    let (rs, cs) = (input.strides[0], input.strides[1]);
    // Working column c, row r of the (possibly transposed) matrix: A[r][c] if tall, else A[c][r].
    let (wr, wc) = if tall { (rs, cs) } else { (cs, rs) };
    let pairs = cols.div_ceil(2);
    SVD.replace("{ROWS}", &rows.to_string())
        .replace("{COLS}", &cols.to_string())
        .replace("{COLS2}", &(pairs * 2).to_string())
        .replace("{M}", &m.to_string())
        .replace("{N}", &n.to_string())
        .replace("{TALL}", if tall { "true" } else { "false" })
        .replace("{IN_OFF}", &input.offset.to_string())
        .replace("{IN_RS}", &wr.to_string())
        .replace("{IN_CS}", &wc.to_string())
        .replace("{STAGE}", &stage.to_string())
        .replace(
            "{ROT_TOL}",
            &format!(
                "{:e}",
                (4.0 * f32::EPSILON * (rows as f32).sqrt()).max(1e-6)
            ),
        )
}
