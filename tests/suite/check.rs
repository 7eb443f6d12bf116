//! Test helpers: a test-local RNG (independent of the crate's), f64 references, comparisons.

#![allow(dead_code)]

use tmath::{Device, Tensor};

/// splitmix64: reproducible test data that does not depend on the crate under test.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (lo + (hi - lo) * u) as f32
    }
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// A tensor of uniform random values in [lo, hi) and its host copy.
pub fn rand_tensor(
    dev: &Device,
    shape: &[usize],
    seed: u64,
    lo: f64,
    hi: f64,
) -> (Tensor, Vec<f32>) {
    let data = Rng::new(seed).vec(numel(shape), lo, hi);
    (
        Tensor::from_vec(data.clone(), shape, dev).expect("from_vec"),
        data,
    )
}

/// Reads a tensor back (async, as browsers require) and checks its shape.
pub async fn read(t: &Tensor, shape: &[usize]) -> Vec<f32> {
    assert_eq!(t.shape(), shape, "shape of {t:?}");
    let v = t
        .to_vec_async()
        .await
        .unwrap_or_else(|e| panic!("evaluating {t:?} failed: {e}"));
    assert_eq!(v.len(), numel(shape), "length of {t:?}");
    v
}

/// `|got - want| <= atol + rtol·|want|` elementwise. NaN passes only where the reference is NaN,
/// an infinity only where the reference is the same infinity.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]: got {g}, want {w}");
            continue;
        }
        assert!(g.is_finite(), "{what}[{i}]: got {g}, want {w}");
        let err = (g - w).abs();
        let excess = err - (atol + rtol * w.abs());
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    if worst.0 > 0.0 {
        let i = worst.1;
        panic!(
            "{what}[{i}]: got {}, want {} (atol {atol}, rtol {rtol})",
            got[i], want[i]
        );
    }
}

/// f64 row-major strides.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Multi-index of flat index `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// Flat index in `shape` of the broadcast source for output index `idx` (numpy rules).
pub fn broadcast_index(idx: &[usize], shape: &[usize]) -> usize {
    let lead = idx.len() - shape.len();
    let st = strides(shape);
    (0..shape.len())
        .map(|d| {
            if shape[d] == 1 {
                0
            } else {
                idx[lead + d] * st[d]
            }
        })
        .sum()
}

/// The numpy broadcast of two shapes (the caller knows they broadcast).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    try_broadcast(a, b).expect("shapes broadcast")
}

/// The numpy broadcast of two shapes, `None` when they do not broadcast: the test's own model
/// of the rule, independent of the crate's.
pub fn try_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let db = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// f64 reference of a broadcast binary op.
pub fn ref_binary(
    a: &[f32],
    sa: &[usize],
    b: &[f32],
    sb: &[usize],
    f: impl Fn(f64, f64) -> f64,
) -> (Vec<f64>, Vec<usize>) {
    let out = broadcast_shape(sa, sb);
    let v = (0..numel(&out))
        .map(|i| {
            let idx = unravel(i, &out);
            f(
                a[broadcast_index(&idx, sa)] as f64,
                b[broadcast_index(&idx, sb)] as f64,
            )
        })
        .collect();
    (v, out)
}

/// f64 reference matmul of row-major `[batch.., m, k] × [batch.., k, n]` with batch broadcast.
pub fn ref_matmul(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
    let ba = &sa[..sa.len() - 2];
    let bb = &sb[..sb.len() - 2];
    let batch = broadcast_shape(ba, bb);
    let mut out = vec![0f64; numel(&batch) * m * n];
    for bi in 0..numel(&batch) {
        let idx = unravel(bi, &batch);
        let oa = broadcast_index(&idx, ba) * m * k;
        let ob = broadcast_index(&idx, bb) * k * n;
        for i in 0..m {
            for j in 0..n {
                out[bi * m * n + i * n + j] = (0..k)
                    .map(|p| a[oa + i * k + p] as f64 * b[ob + p * n + j] as f64)
                    .sum();
            }
        }
    }
    let mut shape = batch;
    shape.extend([m, n]);
    (out, shape)
}

/// f64 reference of a transposed/permuted copy.
pub fn ref_permute(x: &[f32], shape: &[usize], perm: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let st = strides(shape);
    let v = (0..numel(&out))
        .map(|i| {
            let idx = unravel(i, &out);
            x[(0..perm.len()).map(|d| idx[d] * st[perm[d]]).sum::<usize>()]
        })
        .collect();
    (v, out)
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Runs `f` and checks it neither panicked nor succeeded, returning the error.
pub fn expect_err<T: std::fmt::Debug>(what: &str, r: tmath::Result<T>) -> tmath::Error {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty(), "{what}: empty message");
            e
        }
    }
}
