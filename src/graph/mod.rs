//! The lazy op graph: immutable nodes, each one op applied to input tensors.
//!
//! A [`Tensor`](crate::Tensor) is an `Arc` to a [`Node`]. Nodes never change after creation,
//! except for the slot that caches their evaluated [`Value`]; so a graph can be shared, evaluated
//! by any backend, and (later) rewritten by autodiff without copying.

pub(crate) mod eval;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::device::Device;
use crate::ir::Op;
pub(crate) use crate::program::Value;

/// An n-dimensional f32 array, lazily computed.
///
/// Ops (`add`, `matmul`, `gelu`, …) check their arguments and return a new `Tensor` at once, but
/// compute nothing: they add a node to a graph. Reading a result ([`Tensor::to_vec`],
/// [`Tensor::to_vec_async`], [`crate::eval`]) evaluates what it needs, once, and keeps the result
/// with the tensor. Cloning is cheap (an `Arc`).
///
/// ```
/// use tmath::{Device, Tensor};
/// let dev = Device::cpu()?;
/// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2], &dev)?;
/// let b = Tensor::from_vec(vec![0.5], &[], &dev)?; // a scalar broadcasts
/// let c = a.matmul(&a)?.mul(&b)?.relu()?;           // nothing ran yet
/// assert_eq!(c.to_vec()?, vec![3.5, 5.0, 7.5, 11.0]);
/// # Ok::<(), tmath::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({} {:?} on {})",
            self.0.op.name(),
            self.shape(),
            self.0.device.backend_name()
        )
    }
}

impl Tensor {
    pub(crate) fn node(&self) -> &Node {
        &self.0
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One vertex of the graph.
pub(crate) struct Node {
    /// Unique for the life of the process; identifies the node in plans and maps.
    pub id: u64,
    pub op: Op,
    pub inputs: Vec<Tensor>,
    pub shape: Vec<usize>,
    pub device: Device,
    /// The evaluated result, once known (always for `Data`; for other nodes after they were
    /// evaluated as an output).
    pub value: Mutex<Option<Value>>,
}

impl Node {
    pub fn new(op: Op, inputs: Vec<Tensor>, shape: Vec<usize>, device: Device) -> Arc<Node> {
        Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            op,
            inputs,
            shape,
            device,
            value: Mutex::new(None),
        })
    }

    pub fn cached(&self) -> Option<Value> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_cached(&self, v: Value) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    }
}

impl Drop for Node {
    /// Tears a long chain down with a loop instead of recursion, so dropping a 10,000-op graph
    /// cannot overflow the stack.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.inputs);
        while let Some(t) = stack.pop() {
            if let Some(mut node) = Arc::into_inner(t.0) {
                stack.append(&mut node.inputs);
            }
        }
    }
}
