//! The `Tensor` method of the thin singular value decomposition.

use crate::error::{Error, Result};
use crate::ir::{svd_packed_len, Op};
use crate::Tensor;

impl Tensor {
    /// Thin SVD of a 2-D `m × n` matrix: `(U, S, Vᵀ)` with `U: m×k`, `S: k`, `Vᵀ: k×n`,
    /// `k = min(m, n)`, singular values descending and non-negative, `A ≈ U·diag(S)·Vᵀ`.
    /// Anything but a 2-D tensor is an [`Error::Shape`](crate::Error::Shape). The three results
    /// come from one decomposition: evaluating any of them computes all three.
    ///
    /// ```
    /// # let dev = tmath::Device::cpu()?;
    /// let a = tmath::Tensor::randn(&[6, 4], 3, &dev)?;
    /// let (u, s, vt) = a.svd()?;
    /// assert_eq!((u.shape(), s.shape(), vt.shape()), (&[6, 4][..], &[4][..], &[4, 4][..]));
    /// # Ok::<(), tmath::Error>(())
    /// ```
    pub fn svd(&self) -> Result<(Tensor, Tensor, Tensor)> {
        let &[m, n] = self.shape() else {
            return Err(Error::shape(
                "svd",
                format!("expects a 2-D matrix, got shape {:?}", self.shape()),
            ));
        };
        let k = m.min(n);
        // m·n is a checked element count and k ≤ min(m, n), so the packed length cannot overflow.
        let packed = self.derive(
            Op::Svd { m, n },
            vec![self.clone()],
            vec![svd_packed_len(m, n)],
        )?;
        Ok((
            packed.slice_flat(0, &[m, k])?,
            packed.slice_flat(m * k, &[k])?,
            packed.slice_flat(m * k + k, &[k, n])?,
        ))
    }
}
