//! The `Tensor` methods of softmax and log-softmax along one axis (numerically stable: the row
//! maximum is subtracted; kernels in the backends).

use crate::error::{Error, Result};
use crate::ir::Op;
use crate::Tensor;

impl Tensor {
    fn softmax_op(&self, axis: usize, log: bool) -> Result<Tensor> {
        let name = if log { "log_softmax" } else { "softmax" };
        if axis >= self.ndim() {
            return Err(Error::axis(
                name,
                format!(
                    "axis {axis} is out of range for shape {:?} (rank {})",
                    self.shape(),
                    self.ndim()
                ),
            ));
        }
        self.derive(
            Op::Softmax { axis, log },
            vec![self.clone()],
            self.shape().to_vec(),
        )
    }

    /// Softmax along `axis`: `exp(x - max) / Σ exp(x - max)`, stable for large inputs.
    pub fn softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_op(axis, false)
    }

    /// Log-softmax along `axis`: `x - max - log Σ exp(x - max)`.
    pub fn log_softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_op(axis, true)
    }
}
