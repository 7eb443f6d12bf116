//! The lowered program: what one evaluation computes, as steps over numbered slots. It is the
//! only thing backends see (no graph nodes, no tensors): slots `0..inputs.len()` are values
//! computed earlier, then one slot per step, in an order where every step's arguments come
//! before it. Use counts and view resolution are here, once, for every backend.
//!
//! Values: a [`Storage`] (a backend's buffer, behind a trait object so nothing here depends on
//! a backend) and the [`Layout`] the elements sit in.

use std::any::Any;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ir::Op;
use crate::shape::Layout;

/// `Send + Sync` natively; nothing on wasm, where GPU handles are tied to the one thread.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync> MaybeSendSync for T {}
#[cfg(target_arch = "wasm32")]
pub(crate) trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSendSync for T {}

/// A buffer owned by one backend (host `Vec<f32>`, a GPU buffer, an MLX array handle).
pub(crate) trait Buffer: Any + MaybeSendSync {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + MaybeSendSync> Buffer for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A shared handle to a backend's buffer.
pub(crate) type Storage = Arc<dyn Buffer>;

/// The buffer behind `s` if it is a `T` (the backend that made it).
pub(crate) fn downcast<T: Any>(s: &Storage) -> Option<&T> {
    let b: &dyn Buffer = &**s;
    b.as_any().downcast_ref::<T>()
}

/// An evaluated result: a device buffer and how the tensor's elements sit in it.
#[derive(Clone)]
pub(crate) struct Value {
    pub storage: Storage,
    pub layout: Layout,
}

impl Value {
    /// The value of a view step `op` (result `shape`) over this value, without touching data;
    /// `None` when `op` is not a view here (see [`Op::view`]).
    pub fn view(&self, op: &Op, shape: &[usize]) -> Option<Value> {
        Some(Value {
            storage: self.storage.clone(),
            layout: op.view(shape, &self.layout)?,
        })
    }
}

/// A slot of a program: an input or a step's result.
pub(crate) type Slot = usize;

/// One op of a program.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Step {
    pub op: Op,
    pub args: Vec<Slot>,
    /// The result's shape (dense row-major unless the step is a view).
    pub shape: Vec<usize>,
}

/// One evaluation.
pub(crate) struct Program {
    /// Values computed before (slots `0..inputs.len()`).
    pub inputs: Vec<Value>,
    /// Slot `inputs.len() + i` is step `i`'s result.
    pub steps: Vec<Step>,
    /// The slots whose values the backend returns, in order (duplicates allowed): the requested
    /// outputs, then results kept whatever was asked (the SVD's, see [`Op::keeps_value`]).
    pub returned: Vec<Slot>,
    /// Per slot: how often it is read (by steps, plus once per entry of `returned`). A backend
    /// may free a result once its count reaches 0.
    pub uses: Vec<usize>,
}

impl Program {
    /// Builds the program and its use counts.
    pub fn new(inputs: Vec<Value>, steps: Vec<Step>, returned: Vec<Slot>) -> Program {
        let mut uses = vec![0; inputs.len() + steps.len()];
        for s in &steps {
            for &a in &s.args {
                uses[a] += 1;
            }
        }
        for &r in &returned {
            uses[r] += 1;
        }
        Program {
            inputs,
            steps,
            returned,
            uses,
        }
    }

    /// The step computing `slot` (`None` for an input).
    #[cfg_attr(not(any(feature = "wgpu", feature = "mlx")), allow(dead_code))]
    pub fn step(&self, slot: Slot) -> Option<&Step> {
        slot.checked_sub(self.inputs.len())
            .and_then(|i| self.steps.get(i))
    }

    /// The slot of step `i`.
    pub fn slot_of(&self, i: usize) -> Slot {
        self.inputs.len() + i
    }

    /// The shape of a slot's value.
    #[cfg_attr(not(any(feature = "wgpu", feature = "mlx")), allow(dead_code))]
    pub fn shape(&self, slot: Slot) -> &[usize] {
        match self.step(slot) {
            Some(s) => &s.shape,
            None => &self.inputs[slot].layout.shape,
        }
    }

    /// The number of slots.
    pub fn len(&self) -> usize {
        self.inputs.len() + self.steps.len()
    }

    /// The slot a chain of view steps (permute, slice) rests on: `slot` itself if it is not a
    /// view. Backends that never run view steps read through them to this slot's buffer.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn base(&self, mut slot: Slot) -> Slot {
        while let Some(step) = self.step(slot).filter(|st| st.op.is_view()) {
            slot = step.args[0];
        }
        slot
    }

    /// The value of `slot`, given the values known so far (`known`): a known value as is, else
    /// the view steps from a known value down the chain applied to it (no data moves).
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    pub fn resolve(&self, slot: Slot, known: impl Fn(Slot) -> Option<Value>) -> Result<Value> {
        let mut chain = vec![];
        let mut cur = slot;
        let mut value = loop {
            if let Some(v) = known(cur) {
                break v;
            }
            match self.step(cur) {
                Some(step) if step.op.is_view() => {
                    chain.push(step);
                    cur = step.args[0];
                }
                other => {
                    return Err(Error::device(format!(
                        "internal: {} has no value yet",
                        other.map_or("an input", |st| st.op.name())
                    )))
                }
            }
        };
        for step in chain.iter().rev() {
            value = value.view(&step.op, &step.shape).ok_or_else(|| {
                Error::device(format!("internal: {} is not a view here", step.op.name()))
            })?;
        }
        Ok(value)
    }

    /// Runs the program step by step: `run(step, argument values)` computes one step. View
    /// steps (permute, slice, and reshape where the layout allows) are resolved here without
    /// calling `run`. Intermediate results are dropped after their last use. Returns the values
    /// of `returned`.
    pub fn interpret(
        &self,
        mut run: impl FnMut(&Step, &[Value]) -> Result<Value>,
    ) -> Result<Vec<Value>> {
        let mut live: Vec<Option<Value>> = self.inputs.iter().cloned().map(Some).collect();
        live.resize(self.len(), None);
        let mut remaining = self.uses.clone();
        for (i, step) in self.steps.iter().enumerate() {
            let args = step
                .args
                .iter()
                .map(|&a| live[a].clone().ok_or_else(|| out_of_order(step)))
                .collect::<Result<Vec<_>>>()?;
            let value = match args.first().and_then(|v| v.view(&step.op, &step.shape)) {
                Some(v) => v,
                None => run(step, &args)?,
            };
            drop(args);
            for &a in &step.args {
                remaining[a] -= 1;
                if remaining[a] == 0 {
                    live[a] = None;
                }
            }
            live[self.slot_of(i)] = Some(value);
        }
        self.returned
            .iter()
            .map(|&r| {
                live[r]
                    .clone()
                    .ok_or_else(|| Error::device("internal: a returned slot has no value"))
            })
            .collect()
    }
}

fn out_of_order(step: &Step) -> Error {
    Error::device(format!(
        "internal: an argument of {} was freed or not computed",
        step.op.name()
    ))
}
