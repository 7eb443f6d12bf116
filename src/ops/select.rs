//! The `Tensor` methods of selection and broadcasting: `where_cond` and `broadcast_to`.

use crate::error::{Error, Result};
use crate::ir::Op;
use crate::shape::{broadcast_shapes, checked_numel};
use crate::Tensor;

impl Tensor {
    /// Elementwise `self != 0 ? a : b` (this tensor is the condition, as comparisons such as
    /// [`Tensor::lt`] give it). The three shapes broadcast together as in numpy; a NaN condition
    /// selects `a` (NaN is not 0). Shapes that do not broadcast are an
    /// [`Error::Shape`](crate::Error::Shape).
    ///
    /// ```
    /// use tmath::{Device, Tensor};
    /// let dev = Device::cpu()?;
    /// let x = Tensor::from_vec(vec![-2.0, 0.5, 3.0], &[3], &dev)?;
    /// let zero = Tensor::scalar(0.0, &dev)?;
    /// let relu = x.gt(&zero)?.where_cond(&x, &zero)?;
    /// assert_eq!(relu.to_vec()?, vec![0.0, 0.5, 3.0]);
    /// # Ok::<(), tmath::Error>(())
    /// ```
    pub fn where_cond(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.check_device("where_cond", a)?;
        self.check_device("where_cond", b)?;
        let ab = broadcast_shapes("where_cond", a.shape(), b.shape())?;
        let shape = broadcast_shapes("where_cond", self.shape(), &ab).map_err(|_| {
            Error::shape(
                "where_cond",
                format!(
                    "condition {:?}, a {:?} and b {:?} cannot be broadcast together",
                    self.shape(),
                    a.shape(),
                    b.shape()
                ),
            )
        })?;
        self.derive(Op::Where, vec![self.clone(), a.clone(), b.clone()], shape)
    }

    /// This tensor broadcast to `shape` (numpy rules: missing leading dims and dims of size 1
    /// repeat). A view: no data is copied. A shape it does not broadcast to is an
    /// [`Error::Shape`](crate::Error::Shape).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        checked_numel("broadcast_to", shape)?;
        let fits = shape.len() >= self.ndim()
            && self
                .shape()
                .iter()
                .zip(&shape[shape.len() - self.ndim()..])
                .all(|(&d, &t)| d == t || d == 1);
        if !fits {
            return Err(Error::shape(
                "broadcast_to",
                format!("{:?} cannot be broadcast to {shape:?}", self.shape()),
            ));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        self.derive(Op::Expand, vec![self.clone()], shape.to_vec())
    }

    /// A lazy constant of `shape` on this tensor's device: no buffer until a kernel needs one,
    /// and fused kernels inline it.
    pub(crate) fn constant(&self, value: f32, shape: &[usize]) -> Result<Tensor> {
        self.derive(
            Op::Full {
                bits: value.to_bits(),
            },
            vec![],
            shape.to_vec(),
        )
    }
}
