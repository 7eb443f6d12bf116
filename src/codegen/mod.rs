//! Kernel descriptions → WGSL and launch. A pure function of a [`KernelDesc`]: the code, the
//! workgroup grid and the bindings all derive from the same value, so they cannot disagree.
//!
//! Every kernel kind renders in two [`Variant`]s. *Specialized*: sizes, strides and offsets are
//! literals (the fastest code; a new shape is a new pipeline). *Generic*: they are read from a
//! small metadata uniform (`tm_meta`), so the text depends only on the kernel's structure (its
//! ops, ranks, reduced axes, broadcast pattern after merging dims, tile class), and one pipeline
//! serves every shape of that structure. The generic text itself is the structure key: two
//! descriptions that render the same generic WGSL share a pipeline, whatever their sizes.
//!
//! One file per kernel kind; the two big templates (`matmul.wgsl`, `svd.wgsl`) sit beside their
//! renderers, and `prelude.wgsl` holds the IEEE-careful helpers every kernel includes.

mod elementwise;
mod matmul;
mod reduce;
mod softmax;
pub(crate) mod svd;

use std::fmt::Write;

use crate::schedule::{Body, Inst, Program};
use crate::shape::{numel, Layout};

const PRELUDE: &str = include_str!("prelude.wgsl");

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
    /// On an adapter that is a CPU with subgroups of one fixed size, that size (else 0):
    /// matmul takes its lane form there.
    pub cpu_lanes: u32,
    /// The adapter is a CPU (lavapipe, SwiftShader, WARP).
    pub software: bool,
    /// A matmul's register tile (output rows, columns per thread; one of [`MATMUL_TILES`]) when
    /// the autotuner or a test chose it; `None`: the size rule. Part of the structure.
    pub tile: Option<(u8, u8)>,
}

/// The register tiles the matmul template renders (rows × columns of outputs per thread, 16×16
/// threads): 128×128, 128×64, 64×128 and 64×64 outputs per workgroup.
pub(crate) const MATMUL_TILES: [(u8, u8); 4] = [(8, 8), (8, 4), (4, 8), (4, 4)];

/// How a kernel's sizes enter its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Variant {
    /// Sizes, strides and offsets as literals: one pipeline per shape.
    Specialized,
    /// Sizes read from the metadata uniform: one pipeline per structure.
    Generic,
    /// Sizes as literals in a plain form that drivers compile several times faster (a matmul
    /// with one output a thread: 10–20 ms against 49–97 on the H100's driver), for a kernel's first
    /// runs while its specialized pipeline compiles in the background. It computes the same
    /// fused multiply-adds in the same order as the specialized kernel: the same results.
    Quick,
}

/// Rendered code: the WGSL text and, for a generic kernel, the metadata its uniform holds.
pub(crate) struct Source {
    pub text: String,
    /// The `u32` words of `tm_meta` (empty for a specialized kernel).
    pub meta: Vec<u32>,
}

/// The buffers a kernel binds, in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Bindings {
    /// Binding 0 the output (read-write), then `n` read-only inputs.
    Slots(usize),
    /// The SVD's: output, input, W, V, aux, counter, the round uniform (dynamic offset).
    Svd,
}

impl Bindings {
    /// The binding of the metadata uniform of a generic kernel (after all others).
    pub fn meta_binding(self) -> u32 {
        match self {
            Bindings::Slots(n) => n as u32 + 1,
            Bindings::Svd => 7,
        }
    }
}

/// How many workgroups a kernel launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Groups {
    /// A 1-D count; the backend folds it into a 2-D grid past the per-dimension limit (the
    /// kernel recovers the flat workgroup index from `num_workgroups`).
    Flat(usize),
    /// An exact 3-D grid (matmul: column tiles, row tiles, batch).
    Grid([usize; 3]),
}

/// A kernel's launch: its workgroups and bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Launch {
    pub groups: Groups,
    pub bindings: Bindings,
}

impl KernelDesc {
    /// Whether the kernel's WGSL in `variant` is safe without naga's injected runtime checks:
    /// the matmul template (see `matmul.wgsl`: constant-bounded workgroup indexing,
    /// shape-guarded global accesses, loops bounded by sizes; its lane form reads clamped into
    /// the operands and masks its stores) and four-wide elementwise kernels
    /// (no loops, no integer division; each thread reads `vec4` number `base + min(g, n4 − 1)`
    /// of dense inputs, `n4` the output's `vec4` count, which the inputs' layouts hold, and
    /// fixed elements of broadcast ones; it stores only below `n4`).
    pub fn trusted(&self, variant: Variant) -> bool {
        matches!(self.body, Body::MatMul { .. }) || elementwise::vec4_loads(self, variant).is_some()
    }

    /// Whether this kernel has a [`Variant::Quick`] form: a matmul that does not take the lane
    /// form (whose kernel is small already).
    pub fn has_quick(&self) -> bool {
        matches!(self.body, Body::MatMul { .. })
            && matmul::lanes(self, Variant::Specialized).is_none()
    }

    /// A matmul that takes the tiled form when specialized (not the lane form): its register
    /// tile; `None` for other kernels.
    pub fn matmul_tile(&self) -> Option<(usize, usize)> {
        let Body::MatMul { out_shape, .. } = &self.body else {
            return None;
        };
        if matmul::lanes(self, Variant::Specialized).is_some() {
            return None;
        }
        let r = out_shape.len();
        let batch = out_shape[..r - 2].iter().product();
        Some(matmul::tile(
            self,
            out_shape[r - 2],
            out_shape[r - 1],
            batch,
        ))
    }

    /// A matmul that runs split along `k` (see `matmul::splits`): its partial products and
    /// their sum with the epilogue; `None` for other kernels and unsplit matmuls.
    pub fn split_k(&self) -> Option<(KernelDesc, KernelDesc)> {
        matmul::split(self)
    }

    /// What a matmul's speed depends on besides its epilogue (the autotuner's key): `m, n, k`,
    /// the batch size, and whether A and B are copied along `k` (see `matmul.wgsl`);
    /// `None` for other kernels.
    pub fn matmul_shape(&self) -> Option<[usize; 6]> {
        let Body::MatMul {
            a, b, out_shape, ..
        } = &self.body
        else {
            return None;
        };
        let r = out_shape.len();
        let ((a_rs, a_cs), (b_rs, b_cs)) = (
            matmul::matrix_strides(&self.slots[*a]),
            matmul::matrix_strides(&self.slots[*b]),
        );
        let la = &self.slots[*a].shape;
        Some([
            out_shape[r - 2],
            out_shape[r - 1],
            la[la.len() - 1],
            out_shape[..r - 2].iter().product(),
            (a_cs <= a_rs) as usize,
            (b_cs > b_rs) as usize,
        ])
    }

    /// A short name for messages, labels and profiles.
    pub fn name(&self) -> &'static str {
        match &self.body {
            Body::Elementwise => "elementwise",
            Body::Reduce { .. } => "reduce",
            Body::Softmax { log: false, .. } => "softmax",
            Body::Softmax { log: true, .. } => "log_softmax",
            Body::MatMul { .. } => "matmul",
            Body::Svd { .. } => "svd",
        }
    }

    /// The launch of this kernel in `variant`: [`Self::launch`], except that a specialized
    /// elementwise kernel whose loads allow it handles four elements per thread, a specialized
    /// matmul in its lane form and a quick matmul have their own grids, and a softmax runs
    /// several short rows per workgroup.
    pub fn launch_as(&self, variant: Variant) -> Launch {
        let mut launch = self.launch();
        if elementwise::vec4_loads(self, variant).is_some() {
            let n4 = numel(&self.out_shape) / 4;
            let threads = n4.div_ceil(elementwise::vec4s_per_thread(n4, self.wg, self.software));
            launch.groups = Groups::Flat(threads.div_ceil(self.wg as usize));
        }
        if let (Body::MatMul { out_shape, .. }, Some(_)) =
            (&self.body, matmul::lanes(self, variant))
        {
            launch.groups = Groups::Grid(matmul::lane_grid(self, out_shape));
        }
        if let (Body::MatMul { out_shape, .. }, Variant::Quick) = (&self.body, variant) {
            launch.groups = Groups::Grid(matmul::quick_grid(out_shape));
        }
        if let Body::Softmax { shape, axis, .. } = &self.body {
            let len = shape[*axis];
            let rows = numel(&self.out_shape) / len.max(1);
            launch.groups = Groups::Flat(softmax::groups(rows, len, self.wg));
        }
        launch
    }

    /// The launch of this kernel (its bindings are the same in both variants; its workgroups
    /// too, but for [`Self::launch_as`]; a softmax here: one row per workgroup).
    pub fn launch(&self) -> Launch {
        let n_out = numel(&self.out_shape);
        let wg = self.wg as usize;
        let slots = Bindings::Slots(self.slots.len());
        let (groups, bindings) = match &self.body {
            Body::Elementwise => (Groups::Flat(n_out.div_ceil(wg)), slots),
            Body::Reduce { in_shape, axes, .. } => (
                Groups::Flat(reduce::groups(in_shape, axes, n_out, wg)),
                slots,
            ),
            Body::Softmax { shape, axis, .. } => (Groups::Flat(n_out / shape[*axis].max(1)), slots),
            Body::MatMul { out_shape, .. } => (Groups::Grid(matmul::grid(self, out_shape)), slots),
            Body::Svd { m, n } => (
                Groups::Flat(svd::groups(*m, *n, self.stage, self.software)),
                Bindings::Svd,
            ),
        };
        Launch { groups, bindings }
    }
}

/// Literal or metadata read, per [`Variant`]: the renderers write every size through this, so
/// a generic kernel's text cannot depend on a size by accident.
pub(crate) struct Sizes {
    variant: Variant,
    generic: bool,
    meta: Vec<u32>,
}

impl Sizes {
    fn new(variant: Variant) -> Self {
        Sizes {
            variant,
            generic: variant == Variant::Generic,
            meta: vec![],
        }
    }

    /// The variant these sizes are written for.
    fn variant(&self) -> Variant {
        self.variant
    }

    fn word(&mut self, bits: u32) -> String {
        let i = self.meta.len();
        self.meta.push(bits);
        format!("tm_meta[{}].{}", i / 4, ["x", "y", "z", "w"][i % 4])
    }

    /// A `u32` size, stride or offset.
    pub fn u(&mut self, v: usize) -> String {
        let v = u32::try_from(v).expect("sizes are checked against the adapter's binding limit");
        if self.generic {
            self.word(v)
        } else {
            format!("{v}u")
        }
    }

    /// An `f32` constant derived from sizes (bit-exact in both variants).
    pub fn f(&mut self, v: f32) -> String {
        if self.generic {
            format!("bitcast<f32>({})", self.word(v.to_bits()))
        } else {
            format!("bitcast<f32>({}u)", v.to_bits())
        }
    }

    /// A `bool` derived from sizes.
    pub fn b(&mut self, v: bool) -> String {
        if self.generic {
            format!("({} != 0u)", self.word(v as u32))
        } else {
            v.to_string()
        }
    }

    /// The uniform declaration of a generic kernel (nothing for a specialized one).
    fn declaration(&self, binding: u32) -> String {
        if !self.generic {
            return String::new();
        }
        format!(
            "\n@group(0) @binding({binding}) var<uniform> tm_meta: array<vec4<u32>, {}>;\n",
            self.meta.len().div_ceil(4).max(1)
        )
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

/// Records a source about to be compiled in the shader log (when one is kept).
pub(crate) fn log_compiled(text: &str) {
    if let Some(log) = SHADER_LOG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        log.push(text.to_string());
    }
}

/// The WGSL of a kernel in one variant, with the metadata a generic kernel reads.
pub(crate) fn render(d: &KernelDesc, variant: Variant) -> Source {
    let mut sz = Sizes::new(variant);
    let mut s = String::from(PRELUDE);
    s += "\n";
    let launch = d.launch();
    let vec4 = elementwise::vec4_loads(d, variant);
    if let Some(loads) = &vec4 {
        s += &elementwise::bindings_vec4(loads);
    } else if let Some(b) = matmul::lane_bindings(d, variant) {
        s += &b;
    } else if let Bindings::Slots(n) = launch.bindings {
        s += &bindings(n);
    }
    s += &match &d.body {
        Body::Elementwise => match &vec4 {
            Some(loads) => elementwise::render_vec4(d, loads),
            None => elementwise::render(d, &mut sz),
        },
        Body::Reduce { op, in_shape, axes } => reduce::render(d, *op, in_shape, axes, &mut sz),
        Body::Softmax { shape, axis, log } => softmax::render(d, shape, *axis, *log, &mut sz),
        Body::MatMul {
            a, b, out_shape, ..
        } => matmul::render(d, *a, *b, out_shape, &mut sz),
        Body::Svd { m, n } => svd::render(*m, *n, &d.slots[0], d.stage, d.software, d.wg, &mut sz),
    };
    // The prelude's arithmetic XORs its operands with `tm_zero()`: 0 at run time, since the
    // output's binding holds at least the output (`out_len` elements of its own type; a pool
    // buffer has at least 256 bytes), but no compiler can know that (see `tm_o1` in
    // prelude.wgsl). A generic kernel reads the count. (The SVD's stages use no `tm_o1`.)
    let out_len = match (&d.body, &vec4) {
        (Body::Svd { .. }, _) => 1,
        (_, Some(_)) => (numel(&d.out_shape) / 4).max(1),
        _ => numel(&d.out_shape).max(4),
    };
    s += &format!(
        "\nfn tm_zero() -> u32 {{\n    return select(0u, 1u, arrayLength(&out) < {});\n}}\n",
        sz.u(out_len)
    );
    s += &sz.declaration(launch.bindings.meta_binding());
    Source {
        text: s,
        meta: sz.meta,
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
fn index_code(l: &Layout, flat: &str, out: &str, sz: &mut Sizes) -> String {
    let l = simplify(l);
    let mut s = format!("var {out} = {};", sz.u(l.offset));
    if l.shape.is_empty() {
        return s;
    }
    if l.shape.len() == 1 {
        let _ = write!(s, " {out} += {flat} * {};", sz.u(l.strides[0]));
        return s;
    }
    let _ = write!(s, " var {out}_r = {flat};");
    for d in (0..l.shape.len()).rev() {
        let (n, st) = (l.shape[d], l.strides[d]);
        if d == 0 {
            let _ = write!(s, " {out} += {out}_r * {};", sz.u(st));
        } else {
            let (n, st) = (sz.u(n), sz.u(st));
            let _ = write!(
                s,
                " {out} += ({out}_r % {n}) * {st}; {out}_r = {out}_r / {n};"
            );
        }
    }
    s
}

/// Renders a program as WGSL statements over flat index `gi`; returns (code, result name).
fn program_code(
    p: &Program,
    prefix: &str,
    slots: &[Layout],
    core: &str,
    sz: &mut Sizes,
) -> (String, String) {
    program_code_with(p, prefix, core, &mut |code, slot, shape, name| {
        let l = slots[slot].broadcast_to(shape);
        let _ = writeln!(
            code,
            "        {}",
            index_code(&l, "gi", &format!("{name}_i"), sz)
        );
        format!("in{slot}[{name}_i]")
    })
}

/// Renders a load for [`program_code_with`]: `(code, slot, shape, name)` may add statements to
/// `code` and returns the loaded value's expression.
type LoadFn<'a> = dyn FnMut(&mut String, usize, &[usize], &str) -> String + 'a;

/// [`program_code`] with the loads rendered by `load`.
fn program_code_with(p: &Program, prefix: &str, core: &str, load: &mut LoadFn) -> (String, String) {
    let mut code = String::new();
    for (k, inst) in p.insts.iter().enumerate() {
        let name = format!("{prefix}{k}");
        let expr = match inst {
            Inst::Load { slot, shape } => load(&mut code, *slot, shape, &name),
            Inst::Core => core.to_string(),
            Inst::Unary(op, x) => op.wgsl(&format!("{prefix}{x}")),
            Inst::Binary(op, a, b) => op.wgsl(&format!("{prefix}{a}"), &format!("{prefix}{b}")),
            Inst::Select(c, a, b) => format!("tm_where({prefix}{c}, {prefix}{a}, {prefix}{b})"),
            Inst::Const(bits) => format!("bitcast<f32>({bits}u)"),
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
fn unravel_fn(
    name: &str,
    dims: &[usize],
    strides: &[usize],
    offset: usize,
    sz: &mut Sizes,
) -> String {
    let mut s = format!(
        "fn {name}(x: u32) -> u32 {{\n    var r = x;\n    var o = {};\n",
        sz.u(offset)
    );
    // Specialized: size-1 dims contribute nothing (a size-0 dim means the function is never
    // reached). Generic: every dim is walked, its size is data.
    let generic = sz.generic;
    for d in (0..dims.len()).rev().filter(|&d| generic || dims[d] > 1) {
        let (n, st) = (sz.u(dims[d]), sz.u(strides[d]));
        let _ = writeln!(s, "    o += (r % {n}) * {st};\n    r = r / {n};");
    }
    s + "    return o;\n}\n"
}
