//! From requested outputs to an evaluation plan, and the driver that runs it on a backend.

use std::collections::{HashMap, HashSet};

use super::Tensor;
use super::Value;
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::program::{Program, Slot, Step};

/// What one evaluation must compute: every node reachable from the outputs that has no cached
/// value yet, inputs before their consumers, each node once.
pub(crate) struct Plan {
    /// Nodes to compute, in a topological order.
    pub order: Vec<Tensor>,
    /// The requested outputs, in the order asked for (duplicates allowed).
    pub outputs: Vec<Tensor>,
}

impl Plan {
    /// Walks the graph from `outputs` without recursion (a 10,000-op chain needs no deep stack).
    pub fn build(outputs: &[&Tensor]) -> Plan {
        let mut order = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
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
        Plan {
            order,
            outputs: outputs.iter().map(|t| (*t).clone()).collect(),
        }
    }

    /// Lowers the plan to a [`Program`]: values computed before become its inputs, each node
    /// of `order` one step. Returns the program and the nodes of its `returned` slots (the
    /// outputs, then the results kept whatever was asked).
    pub fn lower(&self) -> Result<(Program, Vec<Tensor>)> {
        let mut slot_of: HashMap<u64, Slot> = HashMap::new();
        let mut inputs: Vec<Value> = vec![];
        let in_plan: HashSet<u64> = self.order.iter().map(|t| t.node().id).collect();
        let mut input = |t: &Tensor, slot_of: &mut HashMap<u64, Slot>| -> Result<()> {
            let id = t.node().id;
            if in_plan.contains(&id) || slot_of.contains_key(&id) {
                return Ok(());
            }
            let v = t.node().cached().ok_or_else(|| {
                Error::device(format!(
                    "internal: an input of the plan ({}) has no value",
                    t.node().op.name()
                ))
            })?;
            slot_of.insert(id, inputs.len());
            inputs.push(v);
            Ok(())
        };
        for t in &self.order {
            for i in &t.node().inputs {
                input(i, &mut slot_of)?;
            }
        }
        for t in &self.outputs {
            input(t, &mut slot_of)?;
        }
        let base = inputs.len();
        let mut steps = Vec::with_capacity(self.order.len());
        for t in &self.order {
            let node = t.node();
            slot_of.insert(node.id, base + steps.len());
            steps.push(Step {
                op: node.op.clone(),
                args: node.inputs.iter().map(|i| slot_of[&i.node().id]).collect(),
                shape: node.shape.clone(),
            });
        }
        let mut returned: Vec<Slot> = self.outputs.iter().map(|t| slot_of[&t.node().id]).collect();
        let mut nodes = self.outputs.clone();
        for t in &self.order {
            if t.node().op.keeps_value() {
                returned.push(slot_of[&t.node().id]);
                nodes.push(t.clone());
            }
        }
        Ok((Program::new(inputs, steps, returned), nodes))
    }
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
    let (program, nodes) = plan.lower()?;
    let values = device.backend().execute(&program, device.config())?;
    if values.len() != nodes.len() {
        return Err(Error::device(
            "internal: the backend returned the wrong number of values",
        ));
    }
    for (t, v) in nodes.iter().zip(values) {
        t.node().set_cached(v);
    }
    Ok(())
}
