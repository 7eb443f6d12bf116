//! Program → kernels: cuts a lowered [`Program`] into fused kernels for a GPU backend.
//!
//! With fusion on, every maximal run of elementwise ops (unary, binary, and reshape, which keeps
//! the row-major flat index) becomes one kernel; an elementwise *prologue* is fused into the
//! reduction or softmax it feeds, and an elementwise *epilogue* into the matmul or reduction
//! whose result it consumes. A node joins its consumers' kernel only when every consumer is in
//! that kernel and it is not an output, so a fused kernel reads only materialized tensors and
//! every value is computed once. Views (permute, slice) never run: kernels read through them.
//!
//! With fusion off ([`JitMode::Off`](crate::JitMode::Off)) each op is its own kernel.

use std::collections::{HashMap, HashSet};

use crate::ir::{BinaryOp, Op, ReduceOp, UnaryOp};
use crate::program::{Program as Lowered, Slot};
use crate::shape::numel;

/// One instruction of a fused elementwise program, in SSA form: operands are indices of
/// earlier instructions. A program runs once per element of its index space.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Inst {
    /// The element of input `slot`, read through that slot's layout broadcast to `shape`
    /// (`shape` has the program's element count, so the flat index is shared).
    Load {
        slot: usize,
        shape: Vec<usize>,
    },
    /// The value of the kernel's core op (matmul or reduction result) at this element.
    Core,
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
    /// `cond != 0 ? a : b` of instructions `(cond, a, b)`.
    Select(usize, usize, usize),
    /// The constant `f32::from_bits(bits)`.
    Const(u32),
}

/// An elementwise program; its value is instruction `result`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct Program {
    pub insts: Vec<Inst>,
    pub result: usize,
}

impl Program {
    /// True when the program is a plain read of one input (a copy).
    pub fn is_copy(&self) -> bool {
        matches!(self.insts.as_slice(), [Inst::Load { .. }])
    }
}

/// What a kernel computes around its elementwise programs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Body {
    /// `out[i] = epilogue(i)`.
    Elementwise,
    /// `out[o] = epilogue(reduce_{r} prologue(in_index(o, r)))` over `axes` of `in_shape`.
    Reduce {
        op: ReduceOp,
        in_shape: Vec<usize>,
        axes: Vec<usize>,
    },
    /// Softmax along `axis` of `shape`, input elements given by the prologue.
    Softmax {
        shape: Vec<usize>,
        axis: usize,
        log: bool,
    },
    /// `[.., m, k] × [.., k, n]` of slots `a` and `b`, then the epilogue per output element.
    MatMul {
        a: usize,
        b: usize,
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
        out_shape: Vec<usize>,
    },
    /// Thin SVD of slot 0 (`m × n`), packed `U | S | Vᵀ`.
    Svd { m: usize, n: usize },
}

/// One kernel of a schedule.
pub(crate) struct Kernel {
    /// The program slot whose value the kernel produces.
    pub root: Slot,
    pub body: Body,
    /// Reduce and softmax: the input element at a flat index of the core's input.
    pub prologue: Program,
    /// The output element (may refer to [`Inst::Core`]).
    pub epilogue: Program,
    /// Materialized (or view) slots read, in binding order.
    pub slots: Vec<Slot>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Space {
    Prologue,
    Epilogue,
}

struct Group {
    root: Slot,
    core: Option<Slot>,
    members: HashMap<Slot, Space>,
    /// Slots read from outside the group (current estimate of its bindings).
    external: HashSet<Slot>,
}

/// Most elementwise ops in one kernel (bounds shader size and compile time).
const MAX_MEMBERS: usize = 256;

/// The program as the scheduler reads it: ops, arguments and shapes by slot.
struct View<'a> {
    p: &'a Lowered,
}

impl View<'_> {
    fn op(&self, s: Slot) -> Option<&Op> {
        self.p.step(s).map(|st| &st.op)
    }
    fn args(&self, s: Slot) -> &[Slot] {
        self.p.step(s).map_or(&[], |st| &st.args)
    }
    fn numel(&self, s: Slot) -> usize {
        numel(self.p.shape(s))
    }
}

/// Cuts the program into kernels, in an order that respects dependencies. `max_slots` is the
/// most inputs one kernel may bind.
pub(crate) fn schedule(p: &Lowered, fuse: bool, max_slots: usize) -> Vec<Kernel> {
    let v = View { p };
    let mut consumers: HashMap<Slot, Vec<Slot>> = HashMap::new();
    for i in 0..p.steps.len() {
        let s = p.slot_of(i);
        for &a in v.args(s) {
            if p.step(a).is_some() {
                consumers.entry(a).or_default().push(s);
            }
        }
    }
    let outputs: HashSet<Slot> = p.returned.iter().copied().collect();
    let mut groups: Vec<Group> = vec![];
    let mut group_of: HashMap<Slot, usize> = HashMap::new();

    for i in (0..p.steps.len()).rev() {
        let s = p.slot_of(i);
        let op = &p.steps[i].op;
        if op.is_view() {
            continue; // views: read through, never run
        }
        if fuse && !outputs.contains(&s) {
            if let Some(g) = joinable(&v, s, &consumers, &group_of, &groups, max_slots) {
                let (space, becomes_core) = g.1;
                let grp = &mut groups[g.0];
                grp.external.remove(&s);
                grp.external.extend(v.args(s).iter().copied());
                if becomes_core {
                    grp.core = Some(s);
                } else {
                    grp.members.insert(s, space);
                }
                group_of.insert(s, g.0);
                continue;
            }
        }
        let elementwise = op.is_elementwise();
        groups.push(Group {
            root: s,
            core: (!elementwise).then_some(s),
            members: if elementwise {
                HashMap::from([(s, Space::Epilogue)])
            } else {
                HashMap::new()
            },
            external: v.args(s).iter().copied().collect(),
        });
        group_of.insert(s, groups.len() - 1);
    }

    let mut kernels: Vec<Kernel> = groups.into_iter().map(|g| build_kernel(g, &v)).collect();
    kernels.sort_by_key(|k| k.root);
    kernels
}

/// Whether `s` can join the one group all its consumers are in: `(group, (space, as core))`.
fn joinable(
    v: &View,
    s: Slot,
    consumers: &HashMap<Slot, Vec<Slot>>,
    group_of: &HashMap<Slot, usize>,
    groups: &[Group],
    max_slots: usize,
) -> Option<(usize, (Space, bool))> {
    let op = v.op(s)?;
    let cs = consumers.get(&s)?;
    let g = *group_of.get(&cs[0])?;
    if cs.iter().any(|c| group_of.get(c) != Some(&g)) {
        return None;
    }
    let grp = &groups[g];
    if grp.members.len() >= MAX_MEMBERS {
        return None;
    }
    // Bindings after joining: the group's externals minus this step plus its arguments.
    let mut ext = grp.external.clone();
    ext.remove(&s);
    ext.extend(v.args(s).iter().copied());
    if ext.len() > max_slots {
        return None;
    }
    if op.is_elementwise() {
        // Every consumer must be in one space: epilogue members, or the core and prologue members.
        let spaces: HashSet<Option<Space>> = cs
            .iter()
            .map(|c| {
                if Some(*c) == grp.core {
                    Some(Space::Prologue)
                } else {
                    grp.members.get(c).copied()
                }
            })
            .collect();
        if spaces.len() != 1 {
            return None;
        }
        let space = (*spaces.iter().next()?)?;
        let space_numel = match space {
            Space::Epilogue => v.numel(grp.root),
            Space::Prologue => {
                let core = grp.core?;
                if !matches!(v.op(core)?, Op::Reduce { .. } | Op::Softmax { .. }) {
                    return None;
                }
                v.numel(v.args(core)[0])
            }
        };
        // A constant is the same at every index, so it joins a space of any size.
        if v.numel(s) != space_numel && !matches!(op, Op::Full { .. }) {
            return None;
        }
        return Some((g, (space, false)));
    }
    // A matmul or reduction becomes the core of an elementwise group that consumes it.
    let takes_epilogue = matches!(op, Op::MatMul | Op::Reduce { .. });
    if takes_epilogue
        && grp.core.is_none()
        && v.numel(s) == v.numel(grp.root)
        && cs.iter().all(|c| grp.members.contains_key(c))
    {
        return Some((g, (Space::Epilogue, true)));
    }
    None
}

/// The inputs a kernel binds, each once, in order of first use.
#[derive(Default)]
struct Bindings {
    slots: Vec<Slot>,
    index: HashMap<Slot, usize>,
}

impl Bindings {
    fn of(&mut self, s: Slot) -> usize {
        let slots = &mut self.slots;
        *self.index.entry(s).or_insert_with(|| {
            slots.push(s);
            slots.len() - 1
        })
    }
}

/// Emits the program of one space of a group: its members in slot (topological) order.
/// Returns the program and the instruction holding each member's value.
fn emit(
    v: &View,
    members: &[(Slot, Space)],
    space: Space,
    core: Option<Slot>,
    bindings: &mut Bindings,
) -> (Program, HashMap<Slot, usize>) {
    let mut prog = Program::default();
    let mut value: HashMap<Slot, usize> = HashMap::new();
    let mut loads: HashMap<(usize, Vec<usize>), usize> = HashMap::new();
    let mut operand =
        |input: Slot, shape: &[usize], prog: &mut Program, value: &HashMap<Slot, usize>| -> usize {
            if let Some(&x) = value.get(&input) {
                return x;
            }
            if space == Space::Epilogue && Some(input) == core {
                prog.insts.push(Inst::Core);
                return prog.insts.len() - 1;
            }
            let b = bindings.of(input);
            *loads.entry((b, shape.to_vec())).or_insert_with(|| {
                prog.insts.push(Inst::Load {
                    slot: b,
                    shape: shape.to_vec(),
                });
                prog.insts.len() - 1
            })
        };
    for &(s, sp) in members {
        if sp != space {
            continue;
        }
        let shape = v.p.shape(s);
        let args = v.args(s);
        let inst = match v.op(s) {
            Some(Op::Unary(u)) => Inst::Unary(*u, operand(args[0], shape, &mut prog, &value)),
            Some(Op::Binary(b)) => {
                let x = operand(args[0], shape, &mut prog, &value);
                let y = operand(args[1], shape, &mut prog, &value);
                Inst::Binary(*b, x, y)
            }
            Some(Op::Where) => {
                let c = operand(args[0], shape, &mut prog, &value);
                let x = operand(args[1], shape, &mut prog, &value);
                let y = operand(args[2], shape, &mut prog, &value);
                Inst::Select(c, x, y)
            }
            Some(Op::Full { bits }) => Inst::Const(*bits),
            Some(Op::Reshape) => {
                // Same flat index: the input's value as is (read with its own shape if loaded).
                let src = args[0];
                let x = operand(src, v.p.shape(src), &mut prog, &value);
                value.insert(s, x);
                continue;
            }
            _ => unreachable!("only elementwise ops are members"),
        };
        prog.insts.push(inst);
        value.insert(s, prog.insts.len() - 1);
    }
    (prog, value)
}

/// Emits the programs of a group and its bindings.
fn build_kernel(g: Group, v: &View) -> Kernel {
    let mut bindings = Bindings::default();
    let mut members: Vec<(Slot, Space)> = g.members.iter().map(|(&s, &sp)| (s, sp)).collect();
    members.sort_by_key(|m| m.0);
    let core_op = g.core.and_then(|c| v.op(c));

    // Prologue: the core's input at its own index space.
    let prologue = match (g.core, core_op) {
        (Some(core), Some(Op::Reduce { .. } | Op::Softmax { .. })) => {
            let (mut prog, value) = emit(v, &members, Space::Prologue, g.core, &mut bindings);
            let input = v.args(core)[0];
            prog.result = match value.get(&input) {
                Some(&x) => x,
                None => {
                    let b = bindings.of(input);
                    prog.insts.push(Inst::Load {
                        slot: b,
                        shape: v.p.shape(input).to_vec(),
                    });
                    prog.insts.len() - 1
                }
            };
            prog
        }
        _ => Program::default(),
    };
    let core_arg = |i: usize| g.core.map(|c| v.args(c)[i]);
    let body = match core_op {
        None => Body::Elementwise,
        Some(Op::Reduce { op, axes, .. }) => Body::Reduce {
            op: *op,
            in_shape: core_arg(0)
                .map(|a| v.p.shape(a).to_vec())
                .unwrap_or_default(),
            axes: axes.clone(),
        },
        Some(Op::Softmax { axis, log }) => Body::Softmax {
            shape: v.p.shape(g.root).to_vec(),
            axis: *axis,
            log: *log,
        },
        Some(Op::MatMul) => {
            let (a, b) = (
                core_arg(0).expect("matmul core"),
                core_arg(1).expect("matmul core"),
            );
            Body::MatMul {
                a: bindings.of(a),
                b: bindings.of(b),
                a_shape: v.p.shape(a).to_vec(),
                b_shape: v.p.shape(b).to_vec(),
                out_shape: g.core.map(|c| v.p.shape(c).to_vec()).unwrap_or_default(),
            }
        }
        Some(Op::Svd { m, n }) => {
            bindings.of(core_arg(0).expect("svd core"));
            Body::Svd { m: *m, n: *n }
        }
        Some(op) => unreachable!("{} is not a kernel core", op.name()),
    };
    let (mut epilogue, value) = emit(v, &members, Space::Epilogue, g.core, &mut bindings);
    epilogue.result = match value.get(&g.root) {
        Some(&x) => x,
        None => {
            // The root is the core itself (no epilogue members).
            epilogue.insts.push(Inst::Core);
            epilogue.insts.len() - 1
        }
    };
    Kernel {
        root: g.root,
        body,
        prologue,
        epilogue,
        slots: bindings.slots,
    }
}
