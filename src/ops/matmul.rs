//! The `Tensor` method of the matrix product, 2-D and batched (`[.., m, k] × [.., k, n]` with numpy-broadcast batch dims).

use crate::error::Result;
use crate::ir::{matmul_shape, Op};
use crate::Tensor;

impl Tensor {
    /// Matrix product. Both operands must be at least 2-D: `[m, k] × [k, n] → [m, n]`, and
    /// batched `[.., m, k] × [.., k, n]` with the batch dims broadcast as in numpy.
    ///
    /// ```
    /// # let dev = tmath::Device::cpu()?;
    /// let a = tmath::Tensor::randn(&[8, 2, 3], 1, &dev)?;
    /// let b = tmath::Tensor::randn(&[3, 5], 2, &dev)?;
    /// assert_eq!(a.matmul(&b)?.shape(), &[8, 2, 5]);
    /// assert!(b.matmul(&a).is_err()); // inner dimensions differ
    /// # Ok::<(), tmath::Error>(())
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        self.check_device("matmul", other)?;
        let shape = matmul_shape(self.shape(), other.shape())?;
        self.derive(Op::MatMul, vec![self.clone(), other.clone()], shape)
    }
}
