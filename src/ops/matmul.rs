//! Matrix product, 2-D and batched (`[.., m, k] × [.., k, n]` with numpy-broadcast batch dims).

use crate::error::{Error, Result};
use crate::graph::Op;
use crate::shape::{broadcast_shapes, for_each_offsets, Layout};
use crate::Tensor;

/// The output shape of `a × b`, or the error that names both shapes.
pub(crate) fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.len() < 2 || b.len() < 2 {
        return Err(Error::shape(
            "matmul",
            format!("both operands must be at least 2-D, got {a:?} × {b:?}"),
        ));
    }
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(Error::shape(
            "matmul",
            format!("inner dimensions differ: {a:?} × {b:?} ({k} vs {k2})"),
        ));
    }
    let batch = broadcast_shapes("matmul", &a[..a.len() - 2], &b[..b.len() - 2]).map_err(|_| {
        Error::shape(
            "matmul",
            format!("batch dimensions of {a:?} × {b:?} cannot be broadcast together"),
        )
    })?;
    let mut out = batch;
    out.extend([m, n]);
    Ok(out)
}

/// The layout of the batch dims of `l` (rank ≥ 2) broadcast to `batch`.
pub(crate) fn batch_layout(l: &Layout, batch: &[usize]) -> Layout {
    let r = l.shape.len() - 2;
    Layout {
        shape: l.shape[..r].to_vec(),
        strides: l.strides[..r].to_vec(),
        offset: l.offset,
    }
    .broadcast_to(batch)
}

/// CPU kernel: one faer GEMM per batch entry, reading strided operands in place.
pub(crate) fn cpu(a: &[f32], la: &Layout, b: &[f32], lb: &Layout, out_shape: &[usize]) -> Vec<f32> {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let k = la.shape[la.shape.len() - 1];
    let batch = &out_shape[..r - 2];
    let mut out = vec![0f32; out_shape.iter().product()];
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
    // Layouts come from our own views of these very buffers; check once to keep the raw views sound.
    assert!(
        la.extent() <= a.len() && lb.extent() <= b.len(),
        "matmul: layout exceeds its buffer"
    );
    let (ars, acs) = (
        la.strides[la.shape.len() - 2] as isize,
        la.strides[la.shape.len() - 1] as isize,
    );
    let (brs, bcs) = (
        lb.strides[lb.shape.len() - 2] as isize,
        lb.strides[lb.shape.len() - 1] as isize,
    );
    #[cfg(not(target_arch = "wasm32"))]
    let par = if m * n * k >= 96 * 96 * 96 {
        faer::Par::rayon(0)
    } else {
        faer::Par::Seq
    };
    #[cfg(target_arch = "wasm32")]
    let par = faer::Par::Seq;
    let mut chunks = out.chunks_mut(m * n);
    for_each_offsets(
        [&batch_layout(la, batch), &batch_layout(lb, batch)],
        |[oa, ob]| {
            let dst = chunks.next().expect("one output block per batch entry");
            // SAFETY: every index oa + i*ars + j*acs (i < m, j < k) is below la.extent() ≤ a.len(),
            // likewise for b; the slices outlive the views.
            let (lhs, rhs) = unsafe {
                (
                    faer::MatRef::from_raw_parts(a.as_ptr().add(oa), m, k, ars, acs),
                    faer::MatRef::from_raw_parts(b.as_ptr().add(ob), k, n, brs, bcs),
                )
            };
            let dst = faer::MatMut::from_row_major_slice_mut(dst, m, n);
            faer::linalg::matmul::matmul(dst, faer::Accum::Replace, lhs, rhs, 1.0f32, par);
        },
    );
    out
}

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
