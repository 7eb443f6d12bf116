//! From requested outputs to an evaluation plan, and the driver that runs it on a backend.

use std::collections::{HashMap, HashSet};

use super::{Node, Op, Value};
use crate::error::{Error, Result};
use crate::Tensor;

/// What one evaluation must compute: every node reachable from the outputs that has no cached
/// value yet, inputs before their consumers, each node once.
pub(crate) struct Plan {
    /// Nodes to compute, in a topological order.
    pub order: Vec<Tensor>,
    /// The requested outputs, in the order asked for (duplicates allowed).
    pub outputs: Vec<Tensor>,
    /// For each node of `order`: how many times it is read (by consumers in the plan, plus once
    /// per appearance among the outputs). A backend may free a result once its count reaches 0.
    pub uses: HashMap<u64, usize>,
}

impl Plan {
    /// Walks the graph from `outputs` without recursion (a 10,000-op chain needs no deep stack).
    pub fn build(outputs: &[&Tensor]) -> Plan {
        let mut order = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut uses: HashMap<u64, usize> = HashMap::new();
        // (tensor, children pushed?)
        let mut stack: Vec<(Tensor, bool)> = outputs
            .iter()
            .rev()
            .map(|t| ((*t).clone(), false))
            .collect();
        while let Some((t, expanded)) = stack.pop() {
            let node = t.node();
            if expanded {
                order.push(t);
                continue;
            }
            if seen.contains(&node.id) || node.cached().is_some() {
                continue;
            }
            seen.insert(node.id);
            stack.push((t.clone(), true));
            for input in node.inputs.iter().rev() {
                if !seen.contains(&input.node().id) {
                    stack.push((input.clone(), false));
                }
            }
        }
        for t in &order {
            for input in &t.node().inputs {
                if input.node().cached().is_none() {
                    *uses.entry(input.node().id).or_default() += 1;
                }
            }
        }
        for t in outputs {
            if t.node().cached().is_none() {
                *uses.entry(t.node().id).or_default() += 1;
            }
        }
        Plan {
            order,
            outputs: outputs.iter().map(|t| (*t).clone()).collect(),
            uses,
        }
    }

    /// Runs the plan node by node: `step(node, input values)` computes one node. View ops
    /// (permute, slice, and reshape where the layout allows) are resolved here without calling
    /// `step`. Intermediate results are dropped after their last use.
    pub fn interpret(
        &self,
        mut step: impl FnMut(&Node, &[Value]) -> Result<Value>,
    ) -> Result<Vec<Value>> {
        let mut live: HashMap<u64, Value> = HashMap::new();
        let mut remaining = self.uses.clone();
        for t in &self.order {
            let node = t.node();
            let inputs = node
                .inputs
                .iter()
                .map(|i| lookup(i, &live))
                .collect::<Result<Vec<_>>>()?;
            let value = match inputs.first().and_then(|i| i.view(node)) {
                Some(v) => v,
                None => step(node, &inputs)?,
            };
            drop(inputs);
            if node.op.keeps_value() {
                node.set_cached(value.clone());
            }
            for i in &node.inputs {
                if let Some(n) = remaining.get_mut(&i.node().id) {
                    *n -= 1;
                    if *n == 0 {
                        live.remove(&i.node().id);
                    }
                }
            }
            live.insert(node.id, value);
        }
        self.outputs.iter().map(|t| lookup(t, &live)).collect()
    }
}

fn lookup(t: &Tensor, live: &HashMap<u64, Value>) -> Result<Value> {
    if let Some(v) = live.get(&t.node().id) {
        return Ok(v.clone());
    }
    t.node().cached().ok_or_else(|| {
        Error::device(format!(
            "internal: {} evaluated out of order",
            t.node().op.name()
        ))
    })
}

/// Evaluates `outputs` together on their (common) device and caches each output's value.
pub(crate) fn evaluate(outputs: &[&Tensor]) -> Result<()> {
    let Some(first) = outputs.first() else {
        return Ok(());
    };
    let device = first.device();
    if outputs.iter().any(|t| !t.device().same(&device)) {
        return Err(Error::DeviceMismatch { op: "eval" });
    }
    if outputs.iter().all(|t| t.node().cached().is_some()) {
        return Ok(());
    }
    let mut plan = Plan::build(outputs);
    // Sources are made on the host (bit-identical on every backend) and kept with their node.
    let mut realized = false;
    for t in &plan.order {
        if let Op::Randn { seed } = t.node().op {
            // Checked against the device (and the host, where the samples are made) first.
            let bytes = t.numel() as u64 * 4;
            device.backend().check_alloc("randn", bytes)?;
            crate::backend::check_host("randn", bytes)?;
            let data = crate::random::normal_vec(seed, t.numel());
            let storage = device.backend().upload(data)?;
            t.node().set_cached(Value {
                storage,
                layout: crate::shape::Layout::contiguous(t.shape()),
            });
            realized = true;
        }
    }
    if realized {
        plan = Plan::build(outputs);
    }
    if plan.order.is_empty() && plan.outputs.iter().all(|t| t.node().cached().is_some()) {
        return Ok(());
    }
    let values = device.backend().execute(&plan, &device)?;
    for (t, v) in plan.outputs.iter().zip(values) {
        t.node().set_cached(v);
    }
    Ok(())
}
