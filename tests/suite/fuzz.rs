//! Differential fuzzing: seeded random graphs (size-1 and odd dims, broadcasting incl. scalars,
//! views feeding compute, reductions over random axis sets, softmax on random axes, batched
//! matmuls, deep chains, shared subexpressions, several outputs) evaluated on a device with the
//! JIT on and off, against a float64 reference that carries a running error bound.
//!
//! The bound is propagated op by op: elementwise ops by interval evaluation of the f64 function
//! around each input (so ill-conditioned spots such as `log` near 0 loosen it by themselves) plus
//! the op's own rounding from README.md's precision table; reductions, softmax and matmul by
//! their worst-case rounding formulas. Elements whose input interval leaves an op's domain, or
//! whose value leaves f32's range, are unconstrained and not compared; NaN that IEEE arithmetic
//! must give is compared (NaN never passes elsewhere).
//!
//! A failure prints the seed and a shrunk graph in the text form [`Graph::parse`] reads: paste it
//! into [`REGRESSIONS`] and it is a regression test. `TMATH_FUZZ_GRAPHS=N` (natively) sets the
//! number of graphs per device (CI: [`CI_GRAPHS`]), `TMATH_FUZZ_SEED` the first seed:
//! `TMATH_FUZZ_GRAPHS=20000 cargo test --release --test native fuzz_graphs` is the long run.

use super::check::try_broadcast as broadcast;
use super::check::Rng;
use super::precision;
use tmath::{Device, JitMode, Tensor};

/// Graphs per device in the CI budget (natively; browsers run fewer: compiles cost more there).
pub const CI_GRAPHS: u64 = 150;
#[cfg(target_arch = "wasm32")]
const WASM_GRAPHS: u64 = 25;

/// Graphs the fuzzer once failed on, shrunk (each a regression test).
pub const REGRESSIONS: &[&str] = &[
    // The CPU's reduction read a contiguous input through a folded reshape with the input's own
    // shape instead of the reduction's (a prologue that only loads is passed through in place).
    r#"
t0 = input [4,7,7] 97917
t1 = reshape t0 [28,7]
t2 = max t1 [1] keep
out t2
"#,
    // gelu_tanh(−28) was −8e-7, not 0, on wgpu: tanh clamped at 9 gave 1 − 6e-8.
    r#"
t0 = input [17,13,3] 8
t1 = input [] 78105
t2 = div t1 t0
t3 = gelu_tanh t2
t4 = mul t3 t2
t5 = input [1,3,1] 84456
t6 = matmul t4 t5
out t6
"#,
    // On the NVIDIA H200: silu(−88) flushes a subnormal sigmoid to 0 (−0, not −5e-37), so
    // log gives −inf: inside the bound once silu's table row allows 88·2⁻¹²⁶ absolute.
    r#"
t0 = input [1,17,17,17] 3129
t1 = input [17,1,1] 38279
t2 = div t1 t0
t3 = silu t2
t4 = log t3
t5 = neg t4
out t5
"#,
];

const EPS: f64 = 1.0 / 16_777_216.0; // 2⁻²⁴: f32 rounding, relative
const FLOOR: f64 = 1.2e-38; // f32's smallest normal: results below may flush to zero on GPUs
const BIG: f64 = 1e36; // beyond this a value may overflow f32 somewhere: unconstrained

const UNARY: &[&str] = &[
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "gelu",
    "gelu_tanh",
    "silu",
];
const BINARY: &[&str] = &["add", "sub", "mul", "div", "pow", "maximum", "minimum"];
const REDUCE: &[&str] = &["sum", "mean", "max", "min"];

/// One node of a fuzz graph; operands are indices of earlier nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Input { shape: Vec<usize>, seed: u64 },
    Unary(&'static str, usize),
    Binary(&'static str, usize, usize),
    Reduce(&'static str, usize, Vec<usize>, bool),
    Softmax(usize, usize, bool),
    MatMul(usize, usize),
    Reshape(usize, Vec<usize>),
    Permute(usize, Vec<usize>),
}

/// A graph: nodes in order, and the nodes read as outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub outputs: Vec<usize>,
}

fn name_of(list: &[&'static str], s: &str) -> &'static str {
    list.iter()
        .find(|&&n| n == s)
        .copied()
        .unwrap_or_else(|| panic!("fuzz graph: unknown op {s}"))
}

fn list(v: &[usize]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn parse_list(s: &str) -> Vec<usize> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    if s.trim().is_empty() {
        return vec![];
    }
    s.split(',').map(|d| d.trim().parse().unwrap()).collect()
}

impl Graph {
    /// The text form: one node per line (`t3 = add t1 t2`, `t0 = input [3,1,5] 17`,
    /// `t4 = sum t3 [0,2] keep`, `t5 = softmax t4 1`, `t6 = log_softmax t4 0`,
    /// `t7 = matmul t5 t2`, `t8 = reshape t7 [15]`, `t9 = permute t8 [1,0]`), then `out t3 t9`.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let line = match n {
                Node::Input { shape, seed } => format!("input {} {seed}", list(shape)),
                Node::Unary(op, a) => format!("{op} t{a}"),
                Node::Binary(op, a, b) => format!("{op} t{a} t{b}"),
                Node::Reduce(op, a, axes, keep) => {
                    format!(
                        "{op} t{a} {}{}",
                        list(axes),
                        if *keep { " keep" } else { "" }
                    )
                }
                Node::Softmax(a, axis, log) => {
                    format!(
                        "{} t{a} {axis}",
                        if *log { "log_softmax" } else { "softmax" }
                    )
                }
                Node::MatMul(a, b) => format!("matmul t{a} t{b}"),
                Node::Reshape(a, shape) => format!("reshape t{a} {}", list(shape)),
                Node::Permute(a, perm) => format!("permute t{a} {}", list(perm)),
            };
            s += &format!("t{i} = {line}\n");
        }
        s += "out";
        for o in &self.outputs {
            s += &format!(" t{o}");
        }
        s
    }

    /// Reads [`Graph::text`]'s form.
    pub fn parse(text: &str) -> Graph {
        let mut nodes = vec![];
        let mut outputs = vec![];
        let t = |s: &str| -> usize { s.trim_start_matches('t').parse().unwrap() };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("out") {
                outputs = rest.split_whitespace().map(t).collect();
                continue;
            }
            let (_, rhs) = line.split_once('=').expect("tN = ...");
            let rhs = rhs.trim();
            let (op, args) = rhs.split_once(' ').unwrap_or((rhs, ""));
            let words: Vec<&str> = args.split_whitespace().collect();
            let bracket = |s: &str| parse_list(&s[s.find('[').unwrap()..=s.find(']').unwrap()]);
            nodes.push(match op {
                "input" => Node::Input {
                    shape: bracket(args),
                    seed: words.last().unwrap().parse().unwrap(),
                },
                "softmax" | "log_softmax" => {
                    Node::Softmax(t(words[0]), words[1].parse().unwrap(), op == "log_softmax")
                }
                "matmul" => Node::MatMul(t(words[0]), t(words[1])),
                "reshape" => Node::Reshape(t(words[0]), bracket(args)),
                "permute" => Node::Permute(t(words[0]), bracket(args)),
                _ if REDUCE.contains(&op) => Node::Reduce(
                    name_of(REDUCE, op),
                    t(words[0]),
                    bracket(args),
                    args.trim_end().ends_with("keep"),
                ),
                _ if BINARY.contains(&op) => {
                    Node::Binary(name_of(BINARY, op), t(words[0]), t(words[1]))
                }
                _ => Node::Unary(name_of(UNARY, op), t(words[0])),
            });
        }
        Graph { nodes, outputs }
    }

    /// Shapes of every node (the graph is valid by construction).
    pub fn shapes(&self) -> Vec<Vec<usize>> {
        let mut shapes: Vec<Vec<usize>> = vec![];
        for n in &self.nodes {
            shapes.push(node_shape(n, &shapes));
        }
        shapes
    }
}

/// The shape of `n` given the shapes of the nodes before it.
fn node_shape(n: &Node, shapes: &[Vec<usize>]) -> Vec<usize> {
    match n {
        Node::Input { shape, .. } => shape.clone(),
        Node::Unary(_, a) | Node::Softmax(a, _, _) => shapes[*a].clone(),
        Node::Binary(_, a, b) => broadcast(&shapes[*a], &shapes[*b]).unwrap(),
        Node::Reduce(_, a, axes, keep) => reduced(&shapes[*a], axes, *keep),
        Node::MatMul(a, b) => {
            let (x, y) = (&shapes[*a], &shapes[*b]);
            let mut s = broadcast(&x[..x.len() - 2], &y[..y.len() - 2]).expect("matmul batch");
            s.extend([x[x.len() - 2], y[y.len() - 1]]);
            s
        }
        Node::Reshape(_, s) => s.clone(),
        Node::Permute(a, p) => p.iter().map(|&d| shapes[*a][d]).collect(),
    }
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

fn reduced(s: &[usize], axes: &[usize], keep: bool) -> Vec<usize> {
    s.iter()
        .enumerate()
        .filter_map(|(d, &n)| {
            if !axes.contains(&d) {
                Some(n)
            } else if keep {
                Some(1)
            } else {
                None
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Generation

const DIMS: &[usize] = &[1, 1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 31, 33, 64];
const MAX_ELEMS: usize = 6000;

struct Gen {
    rng: Rng,
    g: Graph,
    shapes: Vec<Vec<usize>>,
}

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn push(&mut self, n: Node) -> usize {
        self.shapes.push(node_shape(&n, &self.shapes));
        self.g.nodes.push(n);
        self.g.nodes.len() - 1
    }

    fn random_shape(&mut self) -> Vec<usize> {
        loop {
            let rank = self.below(5);
            let s: Vec<usize> = (0..rank).map(|_| DIMS[self.below(DIMS.len())]).collect();
            if numel(&s) <= MAX_ELEMS {
                return s;
            }
        }
    }

    fn input(&mut self, shape: Vec<usize>) -> usize {
        let seed = self.rng.next_u64() % 100_000;
        self.push(Node::Input { shape, seed })
    }

    /// A shape that broadcasts against `s`: some dims set to 1, leading dims dropped, or `[]`.
    fn broadcastable(&mut self, s: &[usize]) -> Vec<usize> {
        if self.chance(0.15) {
            return vec![];
        }
        let drop = self.below(s.len() + 1).min(s.len());
        let mut t: Vec<usize> = s[drop..].to_vec();
        for d in t.iter_mut() {
            if self.chance(0.3) {
                *d = 1;
            }
        }
        t
    }

    /// An operand: an existing node (preferring recent ones), sometimes a fresh input.
    fn pick(&mut self) -> usize {
        let n = self.g.nodes.len();
        if n == 0 || self.chance(0.1) {
            let s = self.random_shape();
            return self.input(s);
        }
        if self.chance(0.6) {
            n - 1 - self.below(3.min(n))
        } else {
            self.below(n)
        }
    }

    fn step(&mut self) {
        let a = self.pick();
        let sa = self.shapes[a].clone();
        match self.below(20) {
            0..=5 => {
                let op = UNARY[self.below(UNARY.len())];
                self.push(Node::Unary(op, a));
            }
            6..=10 => {
                let op = BINARY[self.below(BINARY.len())];
                // A partner of a broadcast-compatible shape: an existing node if one fits.
                let n = self.g.nodes.len();
                let tries: Vec<usize> = (0..4).map(|_| self.below(n)).collect();
                let existing = tries.into_iter().find(|&b| {
                    broadcast(&sa, &self.shapes[b])
                        .is_some_and(|s| numel(&s) <= MAX_ELEMS && s.len() <= 5)
                });
                let b = match existing {
                    Some(b) if self.chance(0.6) => b,
                    _ => {
                        let s = self.broadcastable(&sa);
                        self.input(s)
                    }
                };
                let (x, y) = if self.chance(0.5) { (a, b) } else { (b, a) };
                self.push(Node::Binary(op, x, y));
            }
            11..=12 => {
                let op = REDUCE[self.below(REDUCE.len())];
                let axes: Vec<usize> = (0..sa.len()).filter(|_| self.chance(0.5)).collect();
                let keep = self.chance(0.5);
                self.push(Node::Reduce(op, a, axes, keep));
            }
            13 if !sa.is_empty() => {
                let axis = self.below(sa.len());
                let log = self.chance(0.4);
                self.push(Node::Softmax(a, axis, log));
            }
            14..=15 => self.matmul(a),
            16..=17 => {
                let perm = self.permutation(sa.len());
                self.push(Node::Permute(a, perm));
            }
            _ => {
                let s = self.reshaped(&sa);
                self.push(Node::Reshape(a, s));
            }
        }
    }

    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }

    fn reshaped(&mut self, s: &[usize]) -> Vec<usize> {
        let n = numel(s);
        match self.below(4) {
            0 => vec![n],
            1 if s.len() >= 2 => {
                let i = self.below(s.len() - 1);
                let mut t = s[..i].to_vec();
                t.push(s[i] * s[i + 1]);
                t.extend_from_slice(&s[i + 2..]);
                t
            }
            2 if !s.is_empty() => {
                let i = self.below(s.len());
                let f = (2..=s[i]).find(|f| s[i] % f == 0 && self.chance(0.5));
                let mut t = s[..i].to_vec();
                match f {
                    Some(f) => t.extend([f, s[i] / f]),
                    None => t.extend([1, s[i]]),
                }
                t.extend_from_slice(&s[i + 1..]);
                t
            }
            _ => s.iter().copied().filter(|&d| d != 1).collect(),
        }
    }

    fn matmul(&mut self, a: usize) {
        let mut sa = self.shapes[a].clone();
        let mut a = a;
        if sa.len() < 2 {
            // Make it a matrix first: a view feeding compute.
            let n = numel(&sa);
            sa = if self.chance(0.5) {
                vec![1, n]
            } else {
                vec![n, 1]
            };
            a = self.push(Node::Reshape(a, sa.clone()));
        }
        let r = sa.len();
        let (m, k) = (sa[r - 2], sa[r - 1]);
        if k > 200 {
            self.push(Node::Unary("tanh", a));
            return;
        }
        let b = if self.chance(0.25) && m == k {
            // a × aᵀ-like: a shared operand, through a transposing view.
            let mut p: Vec<usize> = (0..r).collect();
            p.swap(r - 1, r - 2);
            self.push(Node::Permute(a, p))
        } else {
            let n = DIMS[self.below(DIMS.len())];
            let batch = self.broadcastable(&sa[..r - 2]);
            let mut sb = batch;
            if self.chance(0.2) && sb.is_empty() && r == 2 {
                sb = vec![DIMS[self.below(5)]];
            }
            sb.extend([k, n]);
            if numel(&sb) > MAX_ELEMS {
                sb = vec![k, n];
            }
            self.input(sb)
        };
        let (sa, sb) = (&self.shapes[a], &self.shapes[b]);
        let batch = broadcast(&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        let out = batch.map(|b| numel(&b) * m * sb[sb.len() - 1]);
        if out.is_some_and(|o| o <= MAX_ELEMS) {
            self.push(Node::MatMul(a, b));
        } else {
            self.push(Node::Unary("neg", a));
        }
    }
}

/// The random graph of `seed`.
pub fn generate(seed: u64) -> Graph {
    let mut gen = Gen {
        rng: Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D)),
        g: Graph {
            nodes: vec![],
            outputs: vec![],
        },
        shapes: vec![],
    };
    // Mostly short graphs, some deep chains.
    let steps = if gen.chance(0.1) {
        20 + gen.below(30)
    } else {
        2 + gen.below(10)
    };
    for _ in 0..steps {
        gen.step();
    }
    let n = gen.g.nodes.len();
    let mut outputs = vec![n - 1];
    for _ in 0..gen.below(3) {
        let o = gen.below(n);
        if !matches!(gen.g.nodes[o], Node::Input { .. }) {
            outputs.push(o);
        }
    }
    gen.g.outputs = outputs;
    gen.g
}

// ---------------------------------------------------------------------------------------------
// The float64 reference with a running error bound

/// Values (row-major) and, per element, a bound on how far the f32 result may be: `INF` where
/// the element is unconstrained.
#[derive(Clone)]
pub struct Ref {
    pub v: Vec<f64>,
    pub e: Vec<f64>,
}

/// Seeds from this one on give data with special values mixed in (NaN, ±inf, ±1e38, ±0).
pub const SPECIAL_SEEDS: u64 = 1_000_000;

pub fn input_data(shape: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut v = rng.vec(numel(shape), -2.0, 2.0);
    if seed >= SPECIAL_SEEDS {
        const SPECIAL: [f32; 7] = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e38,
            -1e38,
            0.0,
            -0.0,
        ];
        for x in v.iter_mut() {
            if rng.next_u64() % 4 == 0 {
                *x = SPECIAL[(rng.next_u64() % 7) as usize];
            }
        }
    }
    v
}

/// Row-major offsets of `shape` read through `src`'s shape broadcast (numpy rules).
fn broadcast_index(src: &[usize], out: &[usize]) -> Vec<usize> {
    let lead = out.len() - src.len();
    let ss = super::check::strides(src);
    let mut idx = vec![0usize; numel(out)];
    let os = super::check::strides(out);
    for (i, slot) in idx.iter_mut().enumerate() {
        let mut o = 0;
        for d in 0..out.len() {
            let c = (i / os[d]) % out[d];
            if d >= lead && src[d - lead] != 1 {
                o += c * ss[d - lead];
            }
        }
        *slot = o;
    }
    idx
}

fn settle(v: f64, e: f64) -> (f64, f64) {
    let e = if e.is_nan() { f64::INFINITY } else { e };
    if v.abs() > BIG || e > BIG {
        (v, f64::INFINITY)
    } else {
        (v, e)
    }
}

/// Rounding of one op per the precision table: `abs + rel·|y|` (the larger of its rows).
fn rounding(op: &str, backend: &str) -> (f64, f64) {
    precision::table_for(backend)
        .iter()
        .filter(|b| b.op == op)
        .fold((0.0, 0.0), |(a, r), b| (a.max(b.abs), r.max(b.rel)))
}

fn nan_aware1(f: fn(f64) -> f64, op: &str, x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    match op {
        "relu" => x.max(0.0),
        _ => f(x),
    }
}

fn nan_aware2(f: fn(f64, f64) -> f64, op: &str, a: f64, b: f64) -> f64 {
    if op == "pow" && b == 0.0 {
        return 1.0;
    }
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    f(a, b)
}

/// The spread of `f` over the inputs' error intervals (corners and midpoints): `None` when the
/// interval leaves the function's domain (some points NaN, others not).
fn spread(points: &[f64], y: f64) -> Option<f64> {
    let mut d = 0.0f64;
    for &p in points {
        if p.is_nan() != y.is_nan() {
            return None;
        }
        if !p.is_nan() {
            d = d.max((p - y).abs());
        }
    }
    Some(d)
}

fn offsets(e: f64) -> [f64; 5] {
    [0.0, -e, -e / 2.0, e / 2.0, e]
}

/// The reference on `backend`, whose rows of the precision table give each op's rounding.
pub fn reference(g: &Graph, backend: &str) -> Vec<Ref> {
    let shapes = g.shapes();
    let mut refs: Vec<Ref> = Vec::with_capacity(g.nodes.len());
    for (i, node) in g.nodes.iter().enumerate() {
        let out_shape = &shapes[i];
        let r = match node {
            Node::Input { shape, seed } => {
                let v: Vec<f64> = input_data(shape, *seed).iter().map(|&x| x as f64).collect();
                let e = v.iter().map(|&x| settle(x, 0.0).1).collect();
                Ref { v, e }
            }
            Node::Unary(op, a) => {
                let f = precision::unary_ref(op);
                let (abs, rel) = rounding(op, backend);
                let x = &refs[*a];
                let mut v = vec![];
                let mut e = vec![];
                for (&xv, &xe) in x.v.iter().zip(&x.e) {
                    let y = nan_aware1(f, op, xv);
                    let err = if xe.is_infinite() {
                        f64::INFINITY
                    } else {
                        let pts: Vec<f64> = offsets(xe)
                            .iter()
                            .map(|o| nan_aware1(f, op, xv + o))
                            .collect();
                        match spread(&pts, y) {
                            Some(d) if y.is_nan() => d * 0.0,
                            Some(d) => d + abs + rel * y.abs() + FLOOR,
                            None => f64::INFINITY,
                        }
                    };
                    let (y, err) = settle(y, err);
                    v.push(y);
                    e.push(err);
                }
                Ref { v, e }
            }
            Node::Binary(op, a, b) => {
                let f = precision::binary_ref(op);
                let (abs, rel) = rounding(op, backend);
                let (x, y) = (&refs[*a], &refs[*b]);
                let ia = broadcast_index(&shapes[*a], out_shape);
                let ib = broadcast_index(&shapes[*b], out_shape);
                let mut v = vec![];
                let mut e = vec![];
                for (&i, &j) in ia.iter().zip(&ib) {
                    let (av, ae, bv, be) = (x.v[i], x.e[i], y.v[j], y.e[j]);
                    let r = nan_aware2(f, op, av, bv);
                    let unbounded =
                        ae.is_infinite() || be.is_infinite() || (*op == "div" && bv.abs() <= be);
                    let err = if unbounded {
                        f64::INFINITY
                    } else {
                        let mut pts = vec![];
                        for oa in offsets(ae) {
                            for ob in offsets(be) {
                                pts.push(nan_aware2(f, op, av + oa, bv + ob));
                            }
                        }
                        match spread(&pts, r) {
                            Some(d) if r.is_nan() => d * 0.0,
                            Some(d) => d + abs + rel * r.abs() + FLOOR,
                            None => f64::INFINITY,
                        }
                    };
                    let (r, err) = settle(r, err);
                    v.push(r);
                    e.push(err);
                }
                Ref { v, e }
            }
            Node::Reduce(op, a, axes, _) => {
                let s = &shapes[*a];
                let x = &refs[*a];
                let n_out = numel(out_shape);
                let count: usize = axes.iter().map(|&d| s[d]).product();
                let kept: Vec<usize> = (0..s.len()).filter(|d| !axes.contains(d)).collect();
                let st = super::check::strides(s);
                let kept_shape: Vec<usize> = kept.iter().map(|&d| s[d]).collect();
                let ks = super::check::strides(&kept_shape);
                let mut groups: Vec<Vec<usize>> = vec![vec![]; n_out];
                for flat in 0..numel(s) {
                    let mut o = 0;
                    for (k, &d) in kept.iter().enumerate() {
                        o += ((flat / st[d]) % s[d]) * ks[k];
                    }
                    groups[o].push(flat);
                }
                let gamma = (count as f64 + 2.0) * EPS;
                let mut v = vec![];
                let mut e = vec![];
                for gi in groups {
                    let vals = gi.iter().map(|&i| x.v[i]);
                    let errs = gi.iter().map(|&i| x.e[i]);
                    let (y, err) = match *op {
                        "mean" if count == 0 => (f64::NAN, 0.0), // 0/0, as in numpy
                        "sum" | "mean" => {
                            let div = if *op == "mean" { count as f64 } else { 1.0 };
                            let sum: f64 = vals.clone().sum();
                            let mass: f64 = vals.map(f64::abs).sum();
                            let esum: f64 = errs.sum();
                            (
                                sum / div,
                                (esum + gamma * mass) / div * (1.0 + 2.0 * EPS) + FLOOR,
                            )
                        }
                        _ => {
                            let max = *op == "max";
                            let y = vals.fold(
                                if max {
                                    f64::NEG_INFINITY
                                } else {
                                    f64::INFINITY
                                },
                                |m, v| {
                                    if m.is_nan() || v.is_nan() {
                                        f64::NAN
                                    } else if max {
                                        m.max(v)
                                    } else {
                                        m.min(v)
                                    }
                                },
                            );
                            (y, errs.fold(0.0, f64::max))
                        }
                    };
                    let (y, err) = settle(y, err);
                    v.push(y);
                    e.push(if y.is_nan() && err.is_finite() {
                        0.0
                    } else {
                        err
                    });
                }
                Ref { v, e }
            }
            Node::Softmax(a, axis, log) => softmax_ref(&refs[*a], &shapes[*a], *axis, *log),
            Node::MatMul(a, b) => {
                let (x, y) = (&refs[*a], &refs[*b]);
                let (sa, sb) = (&shapes[*a], &shapes[*b]);
                let r = out_shape.len();
                let (m, n, k) = (out_shape[r - 2], out_shape[r - 1], sa[sa.len() - 1]);
                let batch = &out_shape[..r - 2];
                let ba = broadcast_index(&sa[..sa.len() - 2], batch);
                let bb = broadcast_index(&sb[..sb.len() - 2], batch);
                let gamma = (k as f64 + 2.0) * EPS;
                let mut v = vec![0.0; numel(out_shape)];
                let mut e = vec![0.0; numel(out_shape)];
                for (bi, (&oa, &ob)) in ba.iter().zip(&bb).enumerate() {
                    for i in 0..m {
                        for j in 0..n {
                            let (mut s, mut mass, mut err) = (0.0, 0.0, 0.0);
                            for p in 0..k {
                                let ia = oa * m * k + i * k + p;
                                let ib = ob * k * n + p * n + j;
                                let (av, ae, bv, be) = (x.v[ia], x.e[ia], y.v[ib], y.e[ib]);
                                s += av * bv;
                                mass += (av * bv).abs();
                                err += av.abs() * be + ae * bv.abs() + ae * be;
                            }
                            let o = bi * m * n + i * n + j;
                            let (sv, se) = settle(s, err + gamma * mass + FLOOR);
                            v[o] = sv;
                            e[o] = se;
                        }
                    }
                }
                Ref { v, e }
            }
            Node::Reshape(a, _) => refs[*a].clone(),
            Node::Permute(a, perm) => {
                let s = &shapes[*a];
                let st = super::check::strides(s);
                let os = super::check::strides(out_shape);
                let x = &refs[*a];
                let mut v = vec![0.0; x.v.len()];
                let mut e = vec![0.0; x.v.len()];
                for o in 0..x.v.len() {
                    let mut src = 0;
                    for (d, &p) in perm.iter().enumerate() {
                        src += ((o / os[d]) % out_shape[d]) * st[p];
                    }
                    v[o] = x.v[src];
                    e[o] = x.e[src];
                }
                Ref { v, e }
            }
        };
        refs.push(r);
    }
    refs
}

fn softmax_ref(x: &Ref, s: &[usize], axis: usize, log: bool) -> Ref {
    let st = super::check::strides(s);
    let len = s[axis];
    let mut v = vec![0.0; x.v.len()];
    let mut e = vec![0.0; x.v.len()];
    for base in 0..x.v.len() {
        if (base / st[axis]) % len != 0 {
            continue; // not the first element of its row
        }
        let idx: Vec<usize> = (0..len).map(|j| base + j * st[axis]).collect();
        let row: Vec<f64> = idx.iter().map(|&i| x.v[i]).collect();
        let maxe = idx.iter().map(|&i| x.e[i]).fold(0.0, f64::max);
        if row.iter().any(|r| r.is_nan()) {
            for &i in &idx {
                v[i] = f64::NAN;
                e[i] = if maxe.is_finite() { 0.0 } else { f64::INFINITY };
            }
            continue;
        }
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|r| (r - m).exp()).sum();
        let lse = sum.ln();
        let round = 6e-7 + 2f64.powi(-22) * (len as f64).log2().max(1.0);
        for (j, &i) in idx.iter().enumerate() {
            let d = row[j] - m;
            let (y, err) = if log {
                let y = d - lse;
                let err = x.e[i]
                    + maxe
                    + 2.0 * EPS * (d.abs() + m.abs() + row[j].abs())
                    + 2.4e-7 * (1.0 + lse.abs())
                    + round;
                (y, err)
            } else {
                let y = (d - lse).exp();
                let err = y * (x.e[i] + maxe + 2.0 * EPS * d.abs() + round) * 1.01 + FLOOR;
                (y, err)
            };
            let (y, err) = settle(y, err);
            v[i] = y;
            e[i] = err;
        }
    }
    Ref { v, e }
}

// ---------------------------------------------------------------------------------------------
// Running and checking

/// Builds the graph on `dev`; returns the output tensors.
pub fn build(g: &Graph, dev: &Device) -> tmath::Result<Vec<Tensor>> {
    let mut t: Vec<Tensor> = vec![];
    for n in &g.nodes {
        let x = match n {
            Node::Input { shape, seed } => Tensor::from_vec(input_data(shape, *seed), shape, dev)?,
            Node::Unary(op, a) => precision::unary_op(op)(&t[*a])?,
            Node::Binary(op, a, b) => precision::binary_op(op)(&t[*a], &t[*b])?,
            Node::Reduce(op, a, axes, keep) => match *op {
                "sum" => t[*a].sum(axes, *keep)?,
                "mean" => t[*a].mean(axes, *keep)?,
                "max" => t[*a].max(axes, *keep)?,
                _ => t[*a].min(axes, *keep)?,
            },
            Node::Softmax(a, axis, log) => {
                if *log {
                    t[*a].log_softmax(*axis)?
                } else {
                    t[*a].softmax(*axis)?
                }
            }
            Node::MatMul(a, b) => t[*a].matmul(&t[*b])?,
            Node::Reshape(a, s) => t[*a].reshape(s)?,
            Node::Permute(a, p) => t[*a].permute(p)?,
        };
        t.push(x);
    }
    Ok(g.outputs.iter().map(|&o| t[o].clone()).collect())
}

/// Evaluates `g` on `dev` in `mode` and compares every output with the reference: `Err` with a
/// description of the first element out of bounds.
pub async fn check(g: &Graph, dev: &Device, mode: JitMode) -> Result<(), String> {
    let refs = reference(g, dev.backend_name());
    dev.set_jit(mode);
    let outs = build(g, dev).map_err(|e| format!("building failed: {e}"))?;
    let handles: Vec<&Tensor> = outs.iter().collect();
    let evaluated = tmath::eval_async(&handles).await;
    dev.set_jit(JitMode::On);
    evaluated.map_err(|e| format!("evaluation failed: {e}"))?;
    for (k, (&o, t)) in g.outputs.iter().zip(&outs).enumerate() {
        let got = t
            .to_vec_async()
            .await
            .map_err(|e| format!("reading t{o} failed: {e}"))?;
        let r = &refs[o];
        if got.len() != r.v.len() {
            return Err(format!("t{o}: {} elements, want {}", got.len(), r.v.len()));
        }
        for (i, (&g32, (&v, &e))) in got.iter().zip(r.v.iter().zip(&r.e)).enumerate() {
            if e.is_infinite() {
                continue;
            }
            let g64 = g32 as f64;
            let ok = if v.is_nan() {
                g64.is_nan()
            } else if g64 == v {
                true
            } else {
                g64.is_finite() && (g64 - v).abs() <= 1.5 * e + 1e-30
            };
            if !ok {
                return Err(format!(
                    "output {k} (t{o}) [{i}]: got {g32:e}, f64 {v:e} ± {e:e} ({mode:?})"
                ));
            }
        }
    }
    Ok(())
}

async fn fails(g: &Graph, dev: &Device) -> Option<String> {
    for mode in [JitMode::On, JitMode::Off] {
        if let Err(e) = check(g, dev, mode).await {
            return Some(e);
        }
    }
    None
}

/// Drops nodes no output needs and renumbers.
fn compact(g: &Graph) -> Graph {
    let mut need = vec![false; g.nodes.len()];
    for &o in &g.outputs {
        need[o] = true;
    }
    for i in (0..g.nodes.len()).rev() {
        if !need[i] {
            continue;
        }
        match &g.nodes[i] {
            Node::Input { .. } => {}
            Node::Unary(_, a)
            | Node::Reduce(_, a, _, _)
            | Node::Softmax(a, _, _)
            | Node::Reshape(a, _)
            | Node::Permute(a, _) => need[*a] = true,
            Node::Binary(_, a, b) | Node::MatMul(a, b) => {
                need[*a] = true;
                need[*b] = true;
            }
        }
    }
    let mut map = vec![usize::MAX; g.nodes.len()];
    let mut nodes = vec![];
    for (i, n) in g.nodes.iter().enumerate() {
        if !need[i] {
            continue;
        }
        let m = |x: &usize| map[*x];
        let n = match n.clone() {
            Node::Unary(op, a) => Node::Unary(op, m(&a)),
            Node::Binary(op, a, b) => Node::Binary(op, m(&a), m(&b)),
            Node::Reduce(op, a, ax, k) => Node::Reduce(op, m(&a), ax, k),
            Node::Softmax(a, ax, l) => Node::Softmax(m(&a), ax, l),
            Node::MatMul(a, b) => Node::MatMul(m(&a), m(&b)),
            Node::Reshape(a, s) => Node::Reshape(m(&a), s),
            Node::Permute(a, p) => Node::Permute(m(&a), p),
            input => input,
        };
        map[i] = nodes.len();
        nodes.push(n);
    }
    Graph {
        outputs: g.outputs.iter().map(|&o| map[o]).collect(),
        nodes,
    }
}

/// A smaller graph that still fails: one output, then nodes replaced by fresh inputs of their
/// shape (cutting off what feeds them) while the failure stays.
pub async fn shrink(g: &Graph, dev: &Device) -> Graph {
    let mut best = g.clone();
    for &o in &g.outputs {
        let one = compact(&Graph {
            nodes: g.nodes.clone(),
            outputs: vec![o],
        });
        if fails(&one, dev).await.is_some() {
            best = one;
            break;
        }
    }
    let mut tries = 0;
    let mut changed = true;
    while changed && tries < 200 {
        changed = false;
        for i in 0..best.nodes.len() {
            if matches!(best.nodes[i], Node::Input { .. }) {
                continue;
            }
            let shape = best.shapes()[i].clone();
            let mut cand = best.clone();
            cand.nodes[i] = Node::Input {
                shape,
                seed: 7 + i as u64,
            };
            let cand = compact(&cand);
            tries += 1;
            if fails(&cand, dev).await.is_some() {
                best = cand;
                changed = true;
                break;
            }
        }
    }
    best
}

fn graphs_to_run() -> (u64, u64) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let n = std::env::var("TMATH_FUZZ_GRAPHS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CI_GRAPHS);
        let seed = std::env::var("TMATH_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        (n, seed)
    }
    #[cfg(target_arch = "wasm32")]
    (WASM_GRAPHS, 1)
}

/// The differential fuzzer's fixed budget on one device, JIT on and off.
pub async fn fuzz_graphs(dev: &Device) {
    for text in REGRESSIONS {
        let g = Graph::parse(text);
        if let Some(e) = fails(&g, dev).await {
            panic!("{dev:?}: regression graph fails again: {e}\n{text}");
        }
    }
    let (n, first) = graphs_to_run();
    for seed in first..first + n {
        let g = generate(seed);
        if let Some(e) = fails(&g, dev).await {
            let small = shrink(&g, dev).await;
            let why = fails(&small, dev).await.unwrap_or(e);
            panic!(
                "{dev:?}: fuzz seed {seed} fails: {why}\nshrunk graph (add it to REGRESSIONS in tests/suite/fuzz.rs):\nr#\"\n{}\n\"#,\nfull graph:\n{}",
                small.text(),
                g.text()
            );
        }
    }
}

/// The generator's own checks: text round trip, valid shapes, and that graphs are varied.
pub fn generator_self_check() {
    let mut kinds = std::collections::HashSet::new();
    for seed in 0..300 {
        let g = generate(seed);
        assert_eq!(Graph::parse(&g.text()), g, "text round trip of seed {seed}");
        for (i, s) in g.shapes().iter().enumerate() {
            assert!(numel(s) <= MAX_ELEMS * 4, "seed {seed} t{i}: {s:?}");
        }
        for n in &g.nodes {
            kinds.insert(std::mem::discriminant(n));
        }
    }
    assert_eq!(kinds.len(), 8, "every node kind is generated");
}
