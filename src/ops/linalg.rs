//! Thin singular value decomposition.

use crate::error::{Error, Result};
use crate::graph::Op;
use crate::ops::movement::gather;
use crate::shape::Layout;
use crate::Tensor;

/// Length of the packed `U | S | Vᵀ` buffer of an `m × n` thin SVD.
pub(crate) fn packed_len(m: usize, n: usize) -> usize {
    let k = m.min(n);
    m * k + k + k * n
}

/// CPU kernel (faer's divide-and-conquer bidiagonal SVD): packs `U` (m×k, row-major), the
/// singular values (descending, ≥ 0) and `Vᵀ` (k×n, row-major).
pub(crate) fn cpu_svd(x: &[f32], layout: &Layout, m: usize, n: usize) -> Result<Vec<f32>> {
    let k = m.min(n);
    let a = gather(x, layout);
    let mut out = vec![0f32; packed_len(m, n)];
    if k == 0 {
        return Ok(out);
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical {
            op: "svd",
            message: format!("the {m}×{n} input contains NaN or infinity"),
        });
    }
    let svd = faer::MatRef::from_row_major_slice(&a, m, n)
        .thin_svd()
        .map_err(|e| Error::Numerical {
            op: "svd",
            message: format!("no convergence on the {m}×{n} input ({e:?})"),
        })?;
    let (u, s, v) = (svd.U(), svd.S(), svd.V());
    for i in 0..m {
        for j in 0..k {
            out[i * k + j] = u[(i, j)];
        }
    }
    let s = s.column_vector();
    for j in 0..k {
        out[m * k + j] = s[j];
    }
    let base = m * k + k;
    for i in 0..k {
        for j in 0..n {
            out[base + i * n + j] = v[(j, i)];
        }
    }
    Ok(out)
}

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
        let packed = self.derive(Op::Svd { m, n }, vec![self.clone()], vec![packed_len(m, n)])?;
        Ok((
            packed.slice_flat(0, &[m, k])?,
            packed.slice_flat(m * k, &[k])?,
            packed.slice_flat(m * k + k, &[k, n])?,
        ))
    }
}
