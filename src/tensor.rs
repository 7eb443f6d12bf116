//! The methods of [`Tensor`] that make and read tensors: constructors (`from_vec`, `randn`, …),
//! shape queries, reading. The type itself is defined with the graph it points into.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::graph::{Node, Tensor, Value};
use crate::ir::Op;
use crate::shape::{checked_numel, numel, try_vec, Layout};

impl Tensor {
    /// A new node on this tensor's device; its shape's element count is checked first (an
    /// [`Error::TooLarge`] when it overflows), so every node's shape can be multiplied out freely.
    pub(crate) fn derive(&self, op: Op, inputs: Vec<Tensor>, shape: Vec<usize>) -> Result<Tensor> {
        checked_numel(op.name(), &shape)?;
        Ok(Tensor(Node::new(op, inputs, shape, self.0.device.clone())))
    }

    pub(crate) fn check_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.0.device.same(&other.0.device) {
            Ok(())
        } else {
            Err(Error::DeviceMismatch { op })
        }
    }

    /// A tensor holding `data` (row-major) with `shape` on `device`. `shape` `&[]` is a scalar
    /// (one element). A length that does not match the shape is an [`Error::Length`].
    pub fn from_vec(data: Vec<f32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        let expected = checked_numel("from_vec", shape)?;
        if data.len() != expected {
            return Err(Error::Length {
                op: "from_vec",
                shape: shape.to_vec(),
                expected,
                got: data.len(),
            });
        }
        let storage = device.backend().upload(data)?;
        let node = Node::new(Op::Data, vec![], shape.to_vec(), device.clone());
        node.set_cached(Value {
            storage,
            layout: Layout::contiguous(shape),
        });
        Ok(Tensor(node))
    }

    /// This tensor's value as a new leaf without history: gradients do not flow through it, and
    /// the graph behind it is no longer kept alive by it. Evaluates the tensor first if needed
    /// (no read-back: the value stays on the device, shared, not copied). A training loop
    /// detaches its updated parameters each step, so step `n` does not hold steps `0..n`.
    pub fn detach(&self) -> Result<Tensor> {
        crate::graph::eval::evaluate(&[self])?;
        let value = self
            .node()
            .cached()
            .ok_or_else(|| Error::device("internal: an evaluated tensor has no value"))?;
        let node = Node::new(Op::Data, vec![], self.shape().to_vec(), self.device());
        node.set_cached(value);
        Ok(Tensor(node))
    }

    /// A tensor of `shape` filled with `value`. A shape beyond the device's (or the host's)
    /// memory is an [`Error::TooLarge`], checked before anything is allocated.
    pub fn full(shape: &[usize], value: f32, device: &Device) -> Result<Tensor> {
        let n = checked_numel("full", shape)?;
        device.backend().check_alloc("full", n as u64 * 4)?;
        Tensor::from_vec(try_vec("full", n, value)?, shape, device)
    }

    /// A scalar (shape `[]`).
    pub fn scalar(value: f32, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(vec![value], &[], device)
    }

    /// Standard-normal samples, a pure function of `(shape, seed)`: bit-identical on every
    /// device and target (counter-based Philox4x32-10 and Box–Muller; see `src/random.rs`).
    /// Lazy like every op: the samples are made when first needed and then kept.
    /// A shape whose element count overflows is an [`Error::TooLarge`] here; one beyond the
    /// device's memory is one when it is evaluated, before anything is allocated.
    pub fn randn(shape: &[usize], seed: u64, device: &Device) -> Result<Tensor> {
        checked_numel("randn", shape)?;
        Ok(Tensor(Node::new(
            Op::Randn { seed },
            vec![],
            shape.to_vec(),
            device.clone(),
        )))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// The number of dimensions (0 for a scalar).
    pub fn ndim(&self) -> usize {
        self.0.shape.len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> Device {
        self.0.device.clone()
    }

    /// True once the tensor's value is computed and kept.
    pub fn is_evaluated(&self) -> bool {
        self.0.cached().is_some()
    }

    /// Evaluates (if needed) and reads the elements back in row-major order of [`Tensor::shape`].
    /// Blocks; on wasm use [`Tensor::to_vec_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        pollster::block_on(self.to_vec_async())
    }

    /// Evaluates (if needed) and hands the elements, row-major, to `f`: in place when the
    /// backend keeps them in host memory in that order (one copy fewer than
    /// [`Tensor::to_vec_async`] for a reader that copies them anyway, such as the JS binding).
    #[allow(dead_code)]
    pub(crate) async fn read_with<R>(&self, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
        let value = self.evaluated()?;
        let backend = self.0.device.backend();
        if let Some(data) = backend.host_slice(&value) {
            return Ok(f(data));
        }
        let v = backend.read(&value, self.0.device.config()).await?;
        Ok(f(&v))
    }

    /// Evaluates (if needed) and reads the elements back; works on every target.
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        let value = self.evaluated()?;
        self.0
            .device
            .backend()
            .read(&value, self.0.device.config())
            .await
    }

    /// Evaluates (if needed) and returns this tensor's value.
    fn evaluated(&self) -> Result<Value> {
        crate::graph::eval::evaluate(&[self])?;
        self.0
            .cached()
            .ok_or_else(|| Error::device("internal: evaluated tensor has no value"))
    }
}
