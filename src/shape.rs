//! Shapes, broadcasting, and strided layouts (views without copies).

use crate::error::{Error, Result};

/// Number of elements of a shape (`[]` is a scalar: 1 element). Only for shapes already
/// checked by [`checked_numel`] (every tensor's shape is, when its node is made).
pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The most bytes one tensor may need: what a single allocation can hold on this target
/// (`isize::MAX`, Rust's limit for one allocation).
pub(crate) const MAX_TENSOR_BYTES: u64 = isize::MAX as u64;

/// The element count of `shape`, or an [`Error::TooLarge`] when the count overflows or its f32
/// data could not be held in one allocation. Every shape a user gives goes through this before
/// anything is allocated or any node is made.
pub(crate) fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    let limit = format!(
        "one tensor holds at most {} elements ({MAX_TENSOR_BYTES} bytes)",
        MAX_TENSOR_BYTES / 4
    );
    let too_large = |what: String| Error::TooLarge {
        op,
        message: format!("shape {shape:?} {what}; {limit}"),
    };
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| too_large("has more elements than a usize can count".into()))?;
    match (n as u64).checked_mul(4) {
        Some(bytes) if bytes <= MAX_TENSOR_BYTES => Ok(n),
        _ => Err(too_large(format!(
            "has {n} elements ({} bytes)",
            (n as u128) * 4
        ))),
    }
}

/// Checks that `bytes` fit within `limit` (a device's or the host's), before anything is
/// allocated: an [`Error::TooLarge`] naming both otherwise.
pub(crate) fn check_bytes(op: &'static str, bytes: u64, limit: u64, what: &str) -> Result<()> {
    if bytes > limit {
        return Err(Error::TooLarge {
            op,
            message: format!("{bytes} bytes needed, {what} holds at most {limit} bytes"),
        });
    }
    Ok(())
}

/// A host vector of `n` copies of `value`, or an [`Error::TooLarge`] when the allocation
/// fails (never an abort).
pub(crate) fn try_vec(op: &'static str, n: usize, value: f32) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::TooLarge {
        op,
        message: format!("allocating {} bytes of host memory failed", (n as u128) * 4),
    })?;
    v.resize(n, value);
    Ok(v)
}

/// Row-major strides of a contiguous tensor of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// Numpy broadcasting of two shapes: align on the right, a dimension of 1 stretches.
pub(crate) fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() {
            1
        } else {
            a[i - (rank - a.len())]
        };
        let db = if i < rank - b.len() {
            1
        } else {
            b[i - (rank - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape(
                    op,
                    format!("shapes {a:?} and {b:?} cannot be broadcast together (dimension {i} of the result: {da} vs {db})"),
                ))
            }
        };
    }
    Ok(out)
}

/// Checks a list of axes against a rank: each in range, none repeated.
pub(crate) fn check_axes(op: &'static str, axes: &[usize], shape: &[usize]) -> Result<()> {
    let mut seen = vec![false; shape.len()];
    for &ax in axes {
        if ax >= shape.len() {
            return Err(Error::axis(
                op,
                format!(
                    "axis {ax} is out of range for shape {shape:?} (rank {})",
                    shape.len()
                ),
            ));
        }
        if seen[ax] {
            return Err(Error::axis(
                op,
                format!("axis {ax} is repeated in {axes:?} (shape {shape:?})"),
            ));
        }
        seen[ax] = true;
    }
    Ok(())
}

/// How a tensor's elements sit in a flat buffer: element `idx` is at
/// `offset + Σ idx[d] * strides[d]`. Broadcast dimensions have stride 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Layout {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl Layout {
    /// A dense row-major layout of `shape` at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// A dense row-major layout of `shape` starting at `offset`.
    pub fn contiguous_at(shape: &[usize], offset: usize) -> Self {
        Layout {
            offset,
            ..Layout::contiguous(shape)
        }
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// True when the elements are dense and in row-major order (offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != acc {
                return false;
            }
            acc *= self.shape[i];
        }
        true
    }

    /// The view with dimensions reordered by `perm` (already validated).
    pub fn permute(&self, perm: &[usize]) -> Layout {
        Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        }
    }

    /// The view of this layout broadcast to `shape` (numpy rules; already validated).
    /// The layout of the batch dims of a matrix layout (rank ≥ 2) broadcast to `batch`.
    pub fn batch_to(&self, batch: &[usize]) -> Layout {
        let r = self.shape.len() - 2;
        Layout {
            shape: self.shape[..r].to_vec(),
            strides: self.strides[..r].to_vec(),
            offset: self.offset,
        }
        .broadcast_to(batch)
    }

    pub fn broadcast_to(&self, shape: &[usize]) -> Layout {
        let lead = shape.len() - self.shape.len();
        let strides = (0..shape.len())
            .map(|i| {
                if i < lead || self.shape[i - lead] == 1 && shape[i] != 1 {
                    0
                } else {
                    self.strides[i - lead]
                }
            })
            .collect();
        Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        }
    }

    /// The same elements seen with `shape`, without a copy, when the strides allow it.
    /// Works for any layout whose dimensions can be merged into the new ones (e.g. contiguous
    /// tensors, and splitting or merging runs of dense dimensions of a strided view).
    pub fn reshape(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout::contiguous_at(shape, self.offset));
        }
        // Merge the old dims into maximal dense runs; each new dim must fit inside one run.
        let old: Vec<(usize, usize)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(&d, _)| d != 1)
            .map(|(&d, &s)| (d, s))
            .collect();
        let mut strides = vec![0; shape.len()];
        let mut oi = 0; // current old dim
        let mut remaining = 1usize; // elements left in the current old dim
        let mut stride = 0usize; // stride of one step at the current position
        for (ni, &nd) in shape.iter().enumerate().rev() {
            if nd == 1 {
                strides[ni] = 0;
                continue;
            }
            // Walk old dims from the innermost.
            if remaining == 1 {
                let (d, s) = *old.get(old.len().checked_sub(oi + 1)?)?;
                oi += 1;
                remaining = d;
                stride = s;
            }
            let mut need = nd;
            strides[ni] = stride;
            while need > 1 {
                if remaining % need == 0 {
                    remaining /= need;
                    stride *= need;
                    need = 1;
                } else if need % remaining == 0 {
                    // Merge with the next outer old dim, which must continue densely.
                    need /= remaining;
                    let (d, s) = *old.get(old.len().checked_sub(oi + 1)?)?;
                    if s != stride * remaining {
                        return None;
                    }
                    oi += 1;
                    stride = s;
                    remaining = d;
                } else {
                    return None;
                }
            }
        }
        if remaining != 1 || oi != old.len() {
            return None;
        }
        Some(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Calls `f` with the buffer offset of every element, in row-major order of `shape`.
    pub fn for_each_offset(&self, mut f: impl FnMut(usize)) {
        for_each_offsets([self], |[o]| f(o));
    }

    /// The largest buffer offset this layout touches, plus one (0 for an empty tensor).
    pub fn extent(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.offset
            + self
                .shape
                .iter()
                .zip(&self.strides)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }
}

/// Walks `N` layouts of the same shape together in row-major order, calling `f` with the
/// buffer offset of the current element in each.
pub(crate) fn for_each_offsets<const N: usize>(
    layouts: [&Layout; N],
    mut f: impl FnMut([usize; N]),
) {
    let shape = &layouts[0].shape;
    if numel(shape) == 0 {
        return;
    }
    let rank = shape.len();
    let mut base: [usize; N] = std::array::from_fn(|k| layouts[k].offset);
    if rank == 0 {
        f(base);
        return;
    }
    let inner = shape[rank - 1];
    let inner_strides: [usize; N] = std::array::from_fn(|k| layouts[k].strides[rank - 1]);
    let mut idx = vec![0usize; rank];
    loop {
        let mut o = base;
        for _ in 0..inner {
            f(o);
            for k in 0..N {
                o[k] += inner_strides[k];
            }
        }
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            for k in 0..N {
                base[k] += layouts[k].strides[d];
            }
            if idx[d] < shape[d] {
                break;
            }
            for k in 0..N {
                base[k] -= layouts[k].strides[d] * idx[d];
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(l: &Layout) -> Vec<usize> {
        let mut v = vec![];
        l.for_each_offset(|o| v.push(o));
        v
    }

    #[test]
    fn broadcast_rules() {
        assert_eq!(broadcast_shapes("t", &[3, 1], &[4]).unwrap(), vec![3, 4]);
        assert_eq!(broadcast_shapes("t", &[], &[2, 3]).unwrap(), vec![2, 3]);
        assert!(broadcast_shapes("t", &[3], &[4]).is_err());
    }

    #[test]
    fn permuted_offsets() {
        let l = Layout::contiguous(&[2, 3]).permute(&[1, 0]);
        assert_eq!(offsets(&l), vec![0, 3, 1, 4, 2, 5]);
        assert!(!l.is_contiguous());
    }

    #[test]
    fn reshape_views() {
        // A transposed view cannot be flattened without a copy.
        let t = Layout::contiguous(&[2, 3]).permute(&[1, 0]);
        assert!(t.reshape(&[6]).is_none());
        // Splitting a strided dim is a view.
        let t = Layout::contiguous(&[4, 6]).permute(&[1, 0]); // [6,4] strides [1,6]
        let r = t.reshape(&[2, 3, 4]).unwrap();
        let mut want = vec![];
        t.for_each_offset(|o| want.push(o));
        assert_eq!(offsets(&r), want);
        // Merging two dims of a [a,b,c] -> [b,a,c] permute where (a,c) not adjacent: no view.
        let p = Layout::contiguous(&[2, 3, 4]).permute(&[1, 0, 2]);
        assert!(p.reshape(&[6, 4]).is_none());
        let q = p.reshape(&[3, 2, 2, 2]).unwrap();
        let mut want = vec![];
        p.for_each_offset(|o| want.push(o));
        assert_eq!(offsets(&q), want);
    }

    #[test]
    fn broadcast_layout() {
        let l = Layout::contiguous(&[3, 1]).broadcast_to(&[2, 3, 4]);
        assert_eq!(l.strides, vec![0, 1, 0]);
        assert_eq!(offsets(&l).len(), 24);
    }
}
