//! The lazy op graph: immutable nodes, each one op applied to input tensors.
//!
//! A [`Tensor`](crate::Tensor) is an `Arc` to a [`Node`]. Nodes never change after creation,
//! except for the slot that caches their evaluated [`Value`]; so a graph can be shared, evaluated
//! by any backend, and (later) rewritten by autodiff without copying.

pub(crate) mod eval;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::Storage;
use crate::device::Device;
use crate::ops::{BinaryOp, ReduceOp, UnaryOp};
use crate::shape::Layout;

/// What a node computes. The data each op needs lives here; the output shape lives in the node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    /// Data given by the user, realized (uploaded) when the node was made.
    Data,
    /// Standard normal samples, see [`crate::random`].
    Randn {
        seed: u64,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keepdim: bool,
    },
    Softmax {
        axis: usize,
        log: bool,
    },
    /// `[.., m, k] × [.., k, n]` with broadcast batch dims.
    MatMul,
    /// Same elements, new shape (a view when the layout allows it, a copy otherwise).
    Reshape,
    Permute(Vec<usize>),
    /// Thin SVD of an `m × n` matrix, packed as `U (m×k) | S (k) | Vᵀ (k×n)` in one flat buffer.
    Svd {
        m: usize,
        n: usize,
    },
    /// A dense window of the input's flat (row-major) elements, starting at `offset`.
    Slice {
        offset: usize,
    },
}

impl Op {
    /// The op's name as users know it (used in messages and kernel names).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Data => "data",
            Op::Randn { .. } => "randn",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Reduce { op, .. } => op.name(),
            Op::Softmax { log: false, .. } => "softmax",
            Op::Softmax { log: true, .. } => "log_softmax",
            Op::MatMul => "matmul",
            Op::Reshape => "reshape",
            Op::Permute(_) => "permute",
            Op::Svd { .. } => "svd",
            Op::Slice { .. } => "slice",
        }
    }

    /// Ops whose result is kept with the node once computed, whether or not it was asked for:
    /// the SVD, whose one result feeds three user-visible tensors read separately.
    pub fn keeps_value(&self) -> bool {
        matches!(self, Op::Svd { .. })
    }
}

/// An evaluated result: a device buffer and how the tensor's elements sit in it.
#[derive(Clone)]
pub(crate) struct Value {
    pub storage: Storage,
    pub layout: Layout,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One vertex of the graph.
pub(crate) struct Node {
    /// Unique for the life of the process; identifies the node in plans and maps.
    pub id: u64,
    pub op: Op,
    pub inputs: Vec<crate::Tensor>,
    pub shape: Vec<usize>,
    pub device: Device,
    /// The evaluated result, once known (always for `Data`; for other nodes after they were
    /// evaluated as an output).
    pub value: Mutex<Option<Value>>,
}

impl Node {
    pub fn new(op: Op, inputs: Vec<crate::Tensor>, shape: Vec<usize>, device: Device) -> Arc<Node> {
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
