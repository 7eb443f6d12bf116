//! Graph → kernels: cuts a [`Plan`] into fused kernels for a GPU backend.
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

use crate::graph::eval::Plan;
use crate::ir::{BinaryOp, Op, ReduceOp, UnaryOp};
use crate::shape::numel;
use crate::Tensor;

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
    /// The node whose value the kernel produces.
    pub root: Tensor,
    pub body: Body,
    /// Reduce and softmax: the input element at a flat index of the core's input.
    pub prologue: Program,
    /// The output element (may refer to [`Inst::Core`]).
    pub epilogue: Program,
    /// Materialized (or view) tensors read, in slot order.
    pub slots: Vec<Tensor>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Space {
    Prologue,
    Epilogue,
}

struct Group {
    root: Tensor,
    core: Option<Tensor>,
    members: HashMap<u64, Space>,
    /// Tensors read from outside the group (current estimate of its slots).
    external: HashSet<u64>,
}

/// Most elementwise ops in one kernel (bounds shader size and compile time).
const MAX_MEMBERS: usize = 256;

fn is_elementwise(op: &Op) -> bool {
    op.is_elementwise()
}

/// Cuts the plan into kernels, in an order that respects dependencies. `max_slots` is the most
/// inputs one kernel may bind.
pub(crate) fn schedule(plan: &Plan, fuse: bool, max_slots: usize) -> Vec<Kernel> {
    let index: HashMap<u64, usize> = plan
        .order
        .iter()
        .enumerate()
        .map(|(i, t)| (t.node().id, i))
        .collect();
    let mut consumers: HashMap<u64, Vec<u64>> = HashMap::new();
    for t in &plan.order {
        for i in &t.node().inputs {
            if index.contains_key(&i.node().id) {
                consumers.entry(i.node().id).or_default().push(t.node().id);
            }
        }
    }
    let outputs: HashSet<u64> = plan.outputs.iter().map(|t| t.node().id).collect();
    let mut groups: Vec<Group> = vec![];
    let mut group_of: HashMap<u64, usize> = HashMap::new();

    for t in plan.order.iter().rev() {
        let node = t.node();
        if node.op.is_view() {
            continue; // views: read through, never run
        }
        if fuse && !outputs.contains(&node.id) {
            if let Some(g) = joinable(t, &consumers, &group_of, &groups, max_slots) {
                let (space, becomes_core) = g.1;
                let grp = &mut groups[g.0];
                grp.external.remove(&node.id);
                for i in &node.inputs {
                    grp.external.insert(i.node().id);
                }
                if becomes_core {
                    grp.core = Some(t.clone());
                } else {
                    grp.members.insert(node.id, space);
                }
                group_of.insert(node.id, g.0);
                continue;
            }
        }
        let core = if is_elementwise(&node.op) {
            None
        } else {
            Some(t.clone())
        };
        groups.push(Group {
            root: t.clone(),
            core,
            members: if is_elementwise(&node.op) {
                HashMap::from([(node.id, Space::Epilogue)])
            } else {
                HashMap::new()
            },
            external: node.inputs.iter().map(|i| i.node().id).collect(),
        });
        group_of.insert(node.id, groups.len() - 1);
    }

    let mut kernels: Vec<Kernel> = groups
        .into_iter()
        .map(|g| build_kernel(g, plan, &index))
        .collect();
    kernels.sort_by_key(|k| index[&k.root.node().id]);
    kernels
}

/// Whether `t` can join the one group all its consumers are in: `(group, (space, as core))`.
fn joinable(
    t: &Tensor,
    consumers: &HashMap<u64, Vec<u64>>,
    group_of: &HashMap<u64, usize>,
    groups: &[Group],
    max_slots: usize,
) -> Option<(usize, (Space, bool))> {
    let node = t.node();
    let cs = consumers.get(&node.id)?;
    let g = *group_of.get(&cs[0])?;
    if cs.iter().any(|c| group_of.get(c) != Some(&g)) {
        return None;
    }
    let grp = &groups[g];
    if grp.members.len() >= MAX_MEMBERS {
        return None;
    }
    // Slots after joining: the group's externals minus this node plus its inputs.
    let mut ext = grp.external.clone();
    ext.remove(&node.id);
    ext.extend(node.inputs.iter().map(|i| i.node().id));
    if ext.len() > max_slots {
        return None;
    }
    let core_id = grp.core.as_ref().map(|c| c.node().id);
    if is_elementwise(&node.op) {
        // Every consumer must be in one space: epilogue members, or the core and prologue members.
        let spaces: HashSet<Option<Space>> = cs
            .iter()
            .map(|c| {
                if Some(*c) == core_id {
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
            Space::Epilogue => numel(grp.root.shape()),
            Space::Prologue => {
                let core = grp.core.as_ref()?;
                if !matches!(core.node().op, Op::Reduce { .. } | Op::Softmax { .. }) {
                    return None;
                }
                numel(core.node().inputs[0].shape())
            }
        };
        if numel(t.shape()) != space_numel {
            return None;
        }
        return Some((g, (space, false)));
    }
    // A matmul or reduction becomes the core of an elementwise group that consumes it.
    let takes_epilogue = matches!(node.op, Op::MatMul | Op::Reduce { .. });
    if takes_epilogue
        && grp.core.is_none()
        && numel(t.shape()) == numel(grp.root.shape())
        && cs.iter().all(|c| grp.members.contains_key(c))
    {
        return Some((g, (Space::Epilogue, true)));
    }
    None
}

/// The inputs a kernel binds, each once, in order of first use.
#[derive(Default)]
struct Slots {
    tensors: Vec<Tensor>,
    index: HashMap<u64, usize>,
}

impl Slots {
    fn of(&mut self, t: &Tensor) -> usize {
        let tensors = &mut self.tensors;
        *self.index.entry(t.node().id).or_insert_with(|| {
            tensors.push(t.clone());
            tensors.len() - 1
        })
    }
}

/// Emits the program of one space of a group: its members in topological order (no recursion).
/// Returns the program and the instruction holding each member's value.
fn emit(
    members: &[(usize, Tensor, Space)],
    space: Space,
    core_id: Option<u64>,
    slots: &mut Slots,
) -> (Program, HashMap<u64, usize>) {
    let mut prog = Program::default();
    let mut value: HashMap<u64, usize> = HashMap::new();
    let mut loads: HashMap<(usize, Vec<usize>), usize> = HashMap::new();
    let mut operand = |input: &Tensor,
                       shape: &[usize],
                       prog: &mut Program,
                       value: &HashMap<u64, usize>|
     -> usize {
        let id = input.node().id;
        if let Some(&v) = value.get(&id) {
            return v;
        }
        if space == Space::Epilogue && Some(id) == core_id {
            prog.insts.push(Inst::Core);
            return prog.insts.len() - 1;
        }
        let s = slots.of(input);
        *loads.entry((s, shape.to_vec())).or_insert_with(|| {
            prog.insts.push(Inst::Load {
                slot: s,
                shape: shape.to_vec(),
            });
            prog.insts.len() - 1
        })
    };
    for (_, t, sp) in members {
        if *sp != space {
            continue;
        }
        let node = t.node();
        let inst = match &node.op {
            Op::Unary(u) => Inst::Unary(*u, operand(&node.inputs[0], t.shape(), &mut prog, &value)),
            Op::Binary(b) => {
                let x = operand(&node.inputs[0], t.shape(), &mut prog, &value);
                let y = operand(&node.inputs[1], t.shape(), &mut prog, &value);
                Inst::Binary(*b, x, y)
            }
            Op::Reshape => {
                // Same flat index: the input's value as is (read with its own shape if loaded).
                let src = &node.inputs[0];
                let v = operand(src, src.shape(), &mut prog, &value);
                value.insert(node.id, v);
                continue;
            }
            _ => unreachable!("only elementwise ops are members"),
        };
        prog.insts.push(inst);
        value.insert(node.id, prog.insts.len() - 1);
    }
    (prog, value)
}

/// Emits the programs of a group and its slots.
fn build_kernel(g: Group, plan: &Plan, index: &HashMap<u64, usize>) -> Kernel {
    let mut slots = Slots::default();
    let core_id = g.core.as_ref().map(|c| c.node().id);
    let mut members: Vec<(usize, Tensor, Space)> = plan
        .order
        .iter()
        .filter_map(|t| {
            g.members
                .get(&t.node().id)
                .map(|s| (index[&t.node().id], t.clone(), *s))
        })
        .collect();
    members.sort_by_key(|m| m.0);

    // Prologue: the core's input at its own index space.
    let prologue = match &g.core {
        Some(core) if matches!(core.node().op, Op::Reduce { .. } | Op::Softmax { .. }) => {
            let (mut prog, value) = emit(&members, Space::Prologue, core_id, &mut slots);
            let input = &core.node().inputs[0];
            prog.result = match value.get(&input.node().id) {
                Some(&v) => v,
                None => {
                    let s = slots.of(input);
                    prog.insts.push(Inst::Load {
                        slot: s,
                        shape: input.shape().to_vec(),
                    });
                    prog.insts.len() - 1
                }
            };
            prog
        }
        _ => Program::default(),
    };
    let core_input = |i: usize| g.core.as_ref().map(|c| c.node().inputs[i].clone());
    let body = match g.core.as_ref().map(|c| &c.node().op) {
        None => Body::Elementwise,
        Some(Op::Reduce { op, axes, .. }) => Body::Reduce {
            op: *op,
            in_shape: core_input(0)
                .map(|t| t.shape().to_vec())
                .unwrap_or_default(),
            axes: axes.clone(),
        },
        Some(Op::Softmax { axis, log }) => Body::Softmax {
            shape: g.root.shape().to_vec(),
            axis: *axis,
            log: *log,
        },
        Some(Op::MatMul) => {
            let (a, b) = (
                core_input(0).expect("matmul core"),
                core_input(1).expect("matmul core"),
            );
            Body::MatMul {
                a: slots.of(&a),
                b: slots.of(&b),
                a_shape: a.shape().to_vec(),
                b_shape: b.shape().to_vec(),
                out_shape: g
                    .core
                    .as_ref()
                    .map(|c| c.shape().to_vec())
                    .unwrap_or_default(),
            }
        }
        Some(Op::Svd { m, n }) => {
            slots.of(&core_input(0).expect("svd core"));
            Body::Svd { m: *m, n: *n }
        }
        Some(op) => unreachable!("{} is not a kernel core", op.name()),
    };
    let (mut epilogue, value) = emit(&members, Space::Epilogue, core_id, &mut slots);
    epilogue.result = match value.get(&g.root.node().id) {
        Some(&v) => v,
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
        slots: slots.tensors,
    }
}
