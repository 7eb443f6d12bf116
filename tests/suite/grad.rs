//! Gradients: every op's rule against central finite differences of an f64 model of the op,
//! comparisons and `where_cond`, the tie rules, second derivatives, the error cases, and a
//! training step that fuses and is cached.
//!
//! Each check takes `loss = Σ f(x…)·w` with fresh random inputs and weights `w`, asks the
//! library for `∂loss/∂x` (forward and backward in one evaluation), and compares it with
//! `(L(x + h) − L(x − h)) / 2h` computed entirely in f64 by the test's own model of `f` (so the
//! differences themselves are exact to ~1e-9). Tolerance: `tol·(1 + max|∂|)` absolute plus `tol`
//! relative, `tol = 2e-4` unless stated (f32 arithmetic of a few ops deep).

use super::check::*;
use tmath::{Device, JitMode, Tensor};

/// An f64 array: the test's model of a tensor.
#[derive(Clone, Debug)]
pub struct A {
    pub d: Vec<f64>,
    pub s: Vec<usize>,
}

impl A {
    fn new(d: Vec<f64>, s: &[usize]) -> A {
        assert_eq!(d.len(), numel(s));
        A { d, s: s.to_vec() }
    }
    fn map(&self, f: impl Fn(f64) -> f64) -> A {
        A::new(self.d.iter().map(|&x| f(x)).collect(), &self.s)
    }
    fn zip(&self, o: &A, f: impl Fn(f64, f64) -> f64) -> A {
        let out = broadcast_shape(&self.s, &o.s);
        let d = (0..numel(&out))
            .map(|i| {
                let idx = unravel(i, &out);
                f(
                    self.d[broadcast_index(&idx, &self.s)],
                    o.d[broadcast_index(&idx, &o.s)],
                )
            })
            .collect();
        A::new(d, &out)
    }
    fn reduce(&self, axes: &[usize], keep: bool, init: f64, f: impl Fn(f64, f64) -> f64) -> A {
        let kept: Vec<usize> = (0..self.s.len())
            .map(|d| if axes.contains(&d) { 1 } else { self.s[d] })
            .collect();
        let mut out = vec![init; numel(&kept)];
        for i in 0..self.d.len() {
            let mut idx = unravel(i, &self.s);
            for &a in axes {
                idx[a] = 0;
            }
            let o: usize = idx.iter().zip(strides(&kept)).map(|(a, b)| a * b).sum();
            out[o] = f(out[o], self.d[i]);
        }
        let shape: Vec<usize> = if keep {
            kept
        } else {
            (0..self.s.len())
                .filter(|d| !axes.contains(d))
                .map(|d| self.s[d])
                .collect()
        };
        A::new(out, &shape)
    }
    fn sum(&self, axes: &[usize], keep: bool) -> A {
        self.reduce(axes, keep, 0.0, |a, b| a + b)
    }
    fn softmax(&self, axis: usize, log: bool) -> A {
        let m = self.reduce(&[axis], true, f64::NEG_INFINITY, f64::max);
        let e = self.zip(&m, |x, m| (x - m).exp());
        let z = e.sum(&[axis], true);
        if log {
            self.zip(&m, |x, m| x - m).zip(&z, |x, z| x - z.ln())
        } else {
            e.zip(&z, |e, z| e / z)
        }
    }
    fn matmul(&self, o: &A) -> A {
        let (sa, sb) = (&self.s, &o.s);
        let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
        let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        let mut shape = broadcast_shape(ba, bb);
        shape.extend([m, n]);
        let batch = &shape[..shape.len() - 2];
        let mut out = vec![0.0; numel(&shape)];
        for bi in 0..numel(batch) {
            let idx = unravel(bi, batch);
            let (oa, ob) = (
                broadcast_index(&idx, ba) * m * k,
                broadcast_index(&idx, bb) * k * n,
            );
            for i in 0..m {
                for j in 0..n {
                    out[bi * m * n + i * n + j] = (0..k)
                        .map(|p| self.d[oa + i * k + p] * o.d[ob + p * n + j])
                        .sum();
                }
            }
        }
        A::new(out, &shape)
    }
    fn permute(&self, perm: &[usize]) -> A {
        let out: Vec<usize> = perm.iter().map(|&p| self.s[p]).collect();
        let st = strides(&self.s);
        let d = (0..numel(&out))
            .map(|i| {
                let idx = unravel(i, &out);
                self.d[(0..perm.len()).map(|k| idx[k] * st[perm[k]]).sum::<usize>()]
            })
            .collect();
        A::new(d, &out)
    }
    fn reshape(&self, s: &[usize]) -> A {
        A::new(self.d.clone(), s)
    }
}

/// Thin SVD in f64 by one-sided Jacobi (the test's own): `(U m×k, S k, Vᵀ k×n)`, S descending.
pub fn svd_f64(a: &A) -> (A, A, A) {
    let (m, n) = (a.s[0], a.s[1]);
    if m < n {
        let (u, s, vt) = svd_f64(&a.permute(&[1, 0]));
        return (vt.permute(&[1, 0]), s, u.permute(&[1, 0]));
    }
    // Columns of W = A·V are orthogonalized; V accumulates the rotations.
    let mut w = a.d.clone();
    let mut v: Vec<f64> = (0..n * n)
        .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
        .collect();
    for _sweep in 0..60 {
        let mut off = 0.0f64;
        for p in 0..n {
            for q in p + 1..n {
                let (mut alpha, mut beta, mut gamma) = (0.0, 0.0, 0.0);
                for i in 0..m {
                    let (x, y) = (w[i * n + p], w[i * n + q]);
                    alpha += x * x;
                    beta += y * y;
                    gamma += x * y;
                }
                if gamma.abs() <= 1e-300 {
                    continue;
                }
                off = off.max(gamma.abs() / (alpha * beta).sqrt());
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for i in 0..m {
                    let (x, y) = (w[i * n + p], w[i * n + q]);
                    w[i * n + p] = c * x - s * y;
                    w[i * n + q] = s * x + c * y;
                }
                for i in 0..n {
                    let (x, y) = (v[i * n + p], v[i * n + q]);
                    v[i * n + p] = c * x - s * y;
                    v[i * n + q] = s * x + c * y;
                }
            }
        }
        if off < 1e-15 {
            break;
        }
    }
    let norms: Vec<f64> = (0..n)
        .map(|j| (0..m).map(|i| w[i * n + j].powi(2)).sum::<f64>().sqrt())
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| norms[y].total_cmp(&norms[x]));
    let mut u = vec![0.0; m * n];
    let mut vt = vec![0.0; n * n];
    let mut s = vec![0.0; n];
    for (c, &j) in order.iter().enumerate() {
        s[c] = norms[j];
        for i in 0..m {
            u[i * n + c] = w[i * n + j] / norms[j];
        }
        for i in 0..n {
            vt[c * n + i] = v[i * n + j];
        }
    }
    (A::new(u, &[m, n]), A::new(s, &[n]), A::new(vt, &[n, n]))
}

type Build = fn(&[Tensor]) -> tmath::Result<Tensor>;
type Model = fn(&[A]) -> A;

/// One gradient check: the op under test, its f64 model, the input shapes and range.
struct Case {
    name: &'static str,
    shapes: &'static [&'static [usize]],
    range: (f64, f64),
    build: Build,
    model: Model,
    tol: f64,
}

const fn case(
    name: &'static str,
    shapes: &'static [&'static [usize]],
    range: (f64, f64),
    build: Build,
    model: Model,
) -> Case {
    Case {
        name,
        shapes,
        range,
        build,
        model,
        tol: 2e-4,
    }
}

fn all_axes(t: &Tensor) -> Vec<usize> {
    (0..t.ndim()).collect()
}

/// Random inputs kept at least 0.1 away from 0 (away from every kink the rules special-case).
fn inputs(shape: &[usize], seed: u64, (lo, hi): (f64, f64)) -> Vec<f32> {
    Rng::new(seed)
        .vec(numel(shape), lo, hi)
        .into_iter()
        .map(|x| {
            if x.abs() < 0.1 && lo < -0.1 {
                x + 0.2f32.copysign(x)
            } else {
                x
            }
        })
        .collect()
}

/// Checks `∂(Σ f·w)/∂x` for every input of `case` against central differences in f64.
async fn check_case(dev: &Device, case: &Case, seed: u64) {
    let data: Vec<Vec<f32>> = case
        .shapes
        .iter()
        .enumerate()
        .map(|(i, s)| inputs(s, seed + i as u64, case.range))
        .collect();
    let xs: Vec<Tensor> = data
        .iter()
        .zip(case.shapes)
        .map(|(d, s)| Tensor::from_vec(d.clone(), s, dev).expect("from_vec"))
        .collect();
    let y = (case.build)(&xs).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let w_data = Rng::new(seed + 100).vec(y.numel(), -1.0, 1.0);
    let w = Tensor::from_vec(w_data.clone(), y.shape(), dev).expect("weights");
    let loss = y.mul(&w).unwrap().sum(&all_axes(&y), false).unwrap();
    let refs: Vec<&Tensor> = xs.iter().collect();
    let grads = loss
        .grad(&refs)
        .unwrap_or_else(|e| panic!("{}: grad: {e}", case.name));
    let mut outs: Vec<&Tensor> = vec![&loss];
    outs.extend(grads.iter());
    tmath::eval_async(&outs)
        .await
        .unwrap_or_else(|e| panic!("{}: eval: {e}", case.name));

    let y_shape = y.shape().to_vec();
    let model = |xs: &[A]| -> f64 {
        let y = (case.model)(xs);
        assert_eq!(
            y.s, y_shape,
            "{}: the model's shape is the library's",
            case.name
        );
        y.d.iter().zip(&w_data).map(|(a, &b)| a * b as f64).sum()
    };
    let base: Vec<A> = data
        .iter()
        .zip(case.shapes)
        .map(|(d, s)| A::new(to_f64(d), s))
        .collect();
    // The loss itself first: the model and the library agree on the forward pass.
    let l = read(&loss, &[]).await[0] as f64;
    let lm = model(&base);
    assert!(
        (l - lm).abs() <= case.tol * 10.0 * (1.0 + lm.abs()),
        "{}: loss {l} vs model {lm}",
        case.name
    );
    for (i, g) in grads.iter().enumerate() {
        let got = read(g, case.shapes[i]).await;
        let fd: Vec<f64> = (0..got.len())
            .map(|j| {
                let x0 = base[i].d[j];
                let h = 1e-6 * x0.abs().max(1.0);
                let mut p = base.clone();
                p[i].d[j] = x0 + h;
                let mut q = base.clone();
                q[i].d[j] = x0 - h;
                (model(&p) - model(&q)) / (2.0 * h)
            })
            .collect();
        let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_close(
            &format!("{} ∂/∂x{i} on {dev:?}", case.name),
            &got,
            &fd,
            case.tol * (1.0 + scale),
            case.tol,
        );
    }
}

fn erf(x: f64) -> f64 {
    libm::erf(x)
}
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

const UNARY: &[Case] = &[
    case(
        "neg",
        &[&[2, 3]],
        (-2.0, 2.0),
        |x| x[0].neg(),
        |x| x[0].map(|v| -v),
    ),
    case(
        "abs",
        &[&[2, 3]],
        (-2.0, 2.0),
        |x| x[0].abs(),
        |x| x[0].map(f64::abs),
    ),
    case(
        "exp",
        &[&[2, 3]],
        (-2.0, 2.0),
        |x| x[0].exp(),
        |x| x[0].map(f64::exp),
    ),
    case(
        "log",
        &[&[2, 3]],
        (0.2, 4.0),
        |x| x[0].log(),
        |x| x[0].map(f64::ln),
    ),
    case(
        "sqrt",
        &[&[2, 3]],
        (0.2, 4.0),
        |x| x[0].sqrt(),
        |x| x[0].map(f64::sqrt),
    ),
    case(
        "rsqrt",
        &[&[2, 3]],
        (0.2, 4.0),
        |x| x[0].rsqrt(),
        |x| x[0].map(|v| 1.0 / v.sqrt()),
    ),
    case(
        "sin",
        &[&[2, 3]],
        (-3.0, 3.0),
        |x| x[0].sin(),
        |x| x[0].map(f64::sin),
    ),
    case(
        "cos",
        &[&[2, 3]],
        (-3.0, 3.0),
        |x| x[0].cos(),
        |x| x[0].map(f64::cos),
    ),
    case(
        "tanh",
        &[&[2, 3]],
        (-2.0, 2.0),
        |x| x[0].tanh(),
        |x| x[0].map(f64::tanh),
    ),
    case(
        "sigmoid",
        &[&[2, 3]],
        (-4.0, 4.0),
        |x| x[0].sigmoid(),
        |x| x[0].map(sigmoid),
    ),
    case(
        "relu",
        &[&[2, 3]],
        (-2.0, 2.0),
        |x| x[0].relu(),
        |x| x[0].map(|v| v.max(0.0)),
    ),
    case(
        "gelu",
        &[&[2, 3]],
        (-3.0, 3.0),
        |x| x[0].gelu(),
        |x| x[0].map(|v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))),
    ),
    case(
        "gelu_tanh",
        &[&[2, 3]],
        (-3.0, 3.0),
        |x| x[0].gelu_tanh(),
        |x| {
            x[0].map(|v| {
                0.5 * v
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
            })
        },
    ),
    case(
        "silu",
        &[&[2, 3]],
        (-4.0, 4.0),
        |x| x[0].silu(),
        |x| x[0].map(|v| v * sigmoid(v)),
    ),
    case(
        "erf",
        &[&[2, 3]],
        (-2.0, 2.0),
        |x| x[0].erf(),
        |x| x[0].map(erf),
    ),
];

const BINARY: &[Case] = &[
    case(
        "add",
        &[&[2, 3], &[3]],
        (-2.0, 2.0),
        |x| x[0].add(&x[1]),
        |x| x[0].zip(&x[1], |a, b| a + b),
    ),
    case(
        "sub",
        &[&[2, 1], &[2, 3]],
        (-2.0, 2.0),
        |x| x[0].sub(&x[1]),
        |x| x[0].zip(&x[1], |a, b| a - b),
    ),
    case(
        "mul",
        &[&[2, 3], &[]],
        (-2.0, 2.0),
        |x| x[0].mul(&x[1]),
        |x| x[0].zip(&x[1], |a, b| a * b),
    ),
    case(
        "div",
        &[&[2, 3], &[1, 3]],
        (0.3, 2.0),
        |x| x[0].div(&x[1]),
        |x| x[0].zip(&x[1], |a, b| a / b),
    ),
    case(
        "pow",
        &[&[2, 3], &[2, 3]],
        (0.3, 2.0),
        |x| x[0].pow(&x[1]),
        |x| x[0].zip(&x[1], f64::powf),
    ),
    case(
        "maximum",
        &[&[2, 3], &[3]],
        (-2.0, 2.0),
        |x| x[0].maximum(&x[1]),
        |x| x[0].zip(&x[1], f64::max),
    ),
    case(
        "minimum",
        &[&[2, 3], &[2, 1]],
        (-2.0, 2.0),
        |x| x[0].minimum(&x[1]),
        |x| x[0].zip(&x[1], f64::min),
    ),
    case(
        "where_cond",
        &[&[2, 3], &[3]],
        (-2.0, 2.0),
        |x| x[0].gt(&x[1])?.where_cond(&x[0].mul(&x[0])?, &x[1]),
        |x| {
            let sq = x[0].map(|v| v * v);
            let pick = x[0].zip(&x[1], |a, b| if a > b { 1.0 } else { 0.0 });
            let a = pick.zip(&sq, |p, s| p * s);
            let not = pick.map(|p| 1.0 - p);
            a.zip(&not.zip(&x[1], |p, b| p * b), |a, b| a + b)
        },
    ),
];

const STRUCTURE: &[Case] = &[
    case(
        "sum [1]",
        &[&[2, 3, 4]],
        (-2.0, 2.0),
        |x| x[0].sum(&[1], false),
        |x| x[0].sum(&[1], false),
    ),
    case(
        "sum []",
        &[&[2, 3]],
        (-2.0, 2.0),
        |x| x[0].sum(&[], false),
        |x| x[0].clone(),
    ),
    case(
        "mean [0,2] keepdim",
        &[&[2, 3, 4]],
        (-2.0, 2.0),
        |x| x[0].mean(&[0, 2], true),
        |x| x[0].sum(&[0, 2], true).map(|v| v / 8.0),
    ),
    case(
        "max [2]",
        &[&[2, 3, 4]],
        (-2.0, 2.0),
        |x| x[0].max(&[2], false),
        |x| x[0].reduce(&[2], false, f64::NEG_INFINITY, f64::max),
    ),
    case(
        "min [0,1] keepdim",
        &[&[3, 2, 2]],
        (-2.0, 2.0),
        |x| x[0].min(&[0, 1], true),
        |x| x[0].reduce(&[0, 1], true, f64::INFINITY, f64::min),
    ),
    case(
        "softmax",
        &[&[3, 4]],
        (-2.0, 2.0),
        |x| x[0].softmax(1),
        |x| x[0].softmax(1, false),
    ),
    case(
        "log_softmax",
        &[&[3, 4]],
        (-2.0, 2.0),
        |x| x[0].log_softmax(0),
        |x| x[0].softmax(0, true),
    ),
    case(
        "matmul",
        &[&[3, 4], &[4, 2]],
        (-1.0, 1.0),
        |x| x[0].matmul(&x[1]),
        |x| x[0].matmul(&x[1]),
    ),
    case(
        "matmul batched",
        &[&[2, 3, 4], &[4, 5]],
        (-1.0, 1.0),
        |x| x[0].matmul(&x[1]),
        |x| x[0].matmul(&x[1]),
    ),
    case(
        "matmul broadcast",
        &[&[2, 1, 3, 4], &[3, 4, 2]],
        (-1.0, 1.0),
        |x| x[0].matmul(&x[1]),
        |x| x[0].matmul(&x[1]),
    ),
    case(
        "permute",
        &[&[2, 3, 4]],
        (-2.0, 2.0),
        |x| x[0].permute(&[2, 0, 1])?.exp(),
        |x| x[0].permute(&[2, 0, 1]).map(f64::exp),
    ),
    case(
        "transpose reshape",
        &[&[2, 3]],
        (-2.0, 2.0),
        |x| x[0].transpose(0, 1)?.reshape(&[6])?.sin(),
        |x| x[0].permute(&[1, 0]).reshape(&[6]).map(f64::sin),
    ),
    case(
        "broadcast_to",
        &[&[3, 1]],
        (-2.0, 2.0),
        |x| x[0].broadcast_to(&[2, 3, 4])?.tanh(),
        |x| x[0].zip(&A::new(vec![0.0; 24], &[2, 3, 4]), |a, _| a.tanh()),
    ),
    case(
        "mlp",
        &[&[4, 3], &[3, 5], &[5]],
        (-1.0, 1.0),
        |x| x[0].matmul(&x[1])?.add(&x[2])?.gelu()?.log_softmax(1),
        |x| {
            x[0].matmul(&x[1])
                .zip(&x[2], |a, b| a + b)
                .map(|v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt())))
                .softmax(1, true)
        },
    ),
];

/// Weights that make a loss of U, S, Vᵀ invariant to each singular vector's sign.
fn svd_weights(x: &Tensor, m: usize, k: usize, n: usize) -> (Tensor, Tensor) {
    let cu: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3)
        .collect();
    let cv: Vec<f32> = (0..k * n)
        .map(|i| ((i * 3 % 4) as f32 - 1.5) * 0.4)
        .collect();
    (
        Tensor::from_vec(cu, &[m, k], &x.device()).unwrap(),
        Tensor::from_vec(cv, &[k, n], &x.device()).unwrap(),
    )
}

fn svd_build(x: &[Tensor]) -> tmath::Result<Tensor> {
    let (m, n) = (x[0].shape()[0], x[0].shape()[1]);
    let k = m.min(n);
    let (cu, cv) = svd_weights(&x[0], m, k, n);
    let (u, s, vt) = x[0].svd()?;
    // s + Σ_rows cu·U² + Σ_cols cv·Vᵀ² : every term is unchanged by a sign flip of a vector pair.
    s.add(&u.mul(&u)?.mul(&cu)?.sum(&[0], false)?)?
        .add(&vt.mul(&vt)?.mul(&cv)?.sum(&[1], false)?)
}

fn svd_model(x: &[A]) -> A {
    let (m, n) = (x[0].s[0], x[0].s[1]);
    let k = m.min(n);
    let cu: Vec<f64> = (0..m * k)
        .map(|i| (((i * 7 % 5) as f32 - 2.0) * 0.3) as f64)
        .collect();
    let cv: Vec<f64> = (0..k * n)
        .map(|i| (((i * 3 % 4) as f32 - 1.5) * 0.4) as f64)
        .collect();
    let (u, s, vt) = svd_f64(&x[0]);
    let tu = u
        .zip(&u, |a, b| a * b)
        .zip(&A::new(cu, &[m, k]), |a, b| a * b)
        .sum(&[0], false);
    let tv = vt
        .zip(&vt, |a, b| a * b)
        .zip(&A::new(cv, &[k, n]), |a, b| a * b)
        .sum(&[1], false);
    s.zip(&tu, |a, b| a + b).zip(&tv, |a, b| a + b)
}

const SVD: &[Case] = &[
    Case {
        tol: 2e-3,
        ..case("svd 5×3", &[&[5, 3]], (-1.0, 1.0), svd_build, svd_model)
    },
    Case {
        tol: 2e-3,
        ..case("svd 3×4", &[&[3, 4]], (-1.0, 1.0), svd_build, svd_model)
    },
    Case {
        tol: 2e-3,
        ..case(
            "svd 4×4, S only",
            &[&[4, 4]],
            (-1.0, 1.0),
            |x| Ok(x[0].svd()?.1),
            |x| svd_f64(&x[0]).1,
        )
    },
];

/// Every op's gradient against f64 central differences.
pub async fn gradients_match_finite_differences(dev: &Device) {
    for (i, case) in UNARY
        .iter()
        .chain(BINARY)
        .chain(STRUCTURE)
        .chain(SVD)
        .enumerate()
    {
        check_case(dev, case, 1000 + 10 * i as u64).await;
    }
}

/// Comparisons (1.0/0.0, NaN unordered) and `where_cond` with three-way broadcasting.
pub async fn comparisons_and_where(dev: &Device) {
    let mut a = Rng::new(5).vec(12, -2.0, 2.0);
    let mut b = Rng::new(6).vec(4, -2.0, 2.0);
    a[1] = b[1]; // equal pairs
    a[6] = b[2];
    a[3] = f32::NAN;
    b[3] = f32::NAN;
    a[9] = -0.0;
    let ta = Tensor::from_vec(a.clone(), &[3, 4], dev).unwrap();
    let tb = Tensor::from_vec(b.clone(), &[4], dev).unwrap();
    type Cmp = (
        &'static str,
        fn(&Tensor, &Tensor) -> tmath::Result<Tensor>,
        fn(f64, f64) -> bool,
    );
    let cases: &[Cmp] = &[
        ("lt", Tensor::lt, |x, y| x < y),
        ("le", Tensor::le, |x, y| x <= y),
        ("gt", Tensor::gt, |x, y| x > y),
        ("ge", Tensor::ge, |x, y| x >= y),
        ("eq", Tensor::eq, |x, y| x == y),
        ("ne", Tensor::ne, |x, y| x != y),
    ];
    for (name, f, r) in cases {
        let got = read(&f(&ta, &tb).unwrap(), &[3, 4]).await;
        let (want, _) = ref_binary(
            &a,
            &[3, 4],
            &b,
            &[4],
            |x, y| if r(x, y) { 1.0 } else { 0.0 },
        );
        assert_close(&format!("{name} on {dev:?}"), &got, &want, 0.0, 0.0);
    }
    // where_cond: condition [3, 1], a [1, 4], b [] (a NaN condition picks a).
    let cond = vec![1.0, 0.0, f32::NAN];
    let tc = Tensor::from_vec(cond.clone(), &[3, 1], dev).unwrap();
    let tx = Tensor::from_vec(b.iter().map(|v| v * 3.0).collect(), &[1, 4], dev).unwrap();
    let ty = Tensor::scalar(-7.5, dev).unwrap();
    let got = read(&tc.where_cond(&tx, &ty).unwrap(), &[3, 4]).await;
    let want: Vec<f64> = (0..12)
        .map(|i| {
            if cond[i / 4] != 0.0 {
                (b[i % 4] * 3.0) as f64
            } else {
                -7.5
            }
        })
        .collect();
    assert_close(&format!("where_cond on {dev:?}"), &got, &want, 0.0, 0.0);
    // Fused with arithmetic around it, and as a relu.
    let x = Tensor::from_vec(a.clone(), &[3, 4], dev).unwrap();
    let zero = Tensor::scalar(0.0, dev).unwrap();
    let r = x
        .gt(&zero)
        .unwrap()
        .where_cond(&x, &zero)
        .unwrap()
        .mul(&x)
        .unwrap();
    let got = read(&r, &[3, 4]).await;
    let want: Vec<f64> = a
        .iter()
        .map(|&v| {
            let v = v as f64;
            if v > 0.0 {
                v * v
            } else {
                0.0 * v
            }
        })
        .collect();
    assert_close(&format!("where relu on {dev:?}"), &got, &want, 1e-6, 1e-6);
    // Shapes that do not broadcast are errors naming the op.
    let e = expect_err(
        "where shapes",
        tc.where_cond(
            &ta,
            &Tensor::scalar(0.0, dev)
                .unwrap()
                .broadcast_to(&[5])
                .unwrap(),
        ),
    );
    assert!(e.to_string().contains("where_cond"), "{e}");
    let e = expect_err("broadcast_to", ta.broadcast_to(&[3, 5]));
    assert!(e.to_string().contains("broadcast_to"), "{e}");
}

/// The conventions, the error cases, gradients of intermediate and unrelated tensors, and
/// second derivatives.
pub async fn gradient_rules(dev: &Device) {
    let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s, dev).unwrap();
    // A loss with more than one element is an error naming grad and the shape.
    let x = t(vec![1.0, 2.0, 3.0], &[3]);
    let e = expect_err("non-scalar loss", x.exp().unwrap().grad(&[&x]));
    let msg = e.to_string();
    assert!(msg.contains("grad") && msg.contains("[3]"), "{msg}");
    // A one-element loss of shape [1, 1] is a scalar; an unrelated tensor gets zeros.
    let other = t(vec![5.0; 4], &[2, 2]);
    let loss = x
        .mul(&x)
        .unwrap()
        .sum(&[0], true)
        .unwrap()
        .reshape(&[1, 1])
        .unwrap();
    let g = loss.grad(&[&x, &other]).unwrap();
    assert_close(
        "Σx² ∂x",
        &read(&g[0], &[3]).await,
        &[2.0, 4.0, 6.0],
        1e-6,
        1e-6,
    );
    assert_close(
        "unrelated",
        &read(&g[1], &[2, 2]).await,
        &[0.0; 4],
        0.0,
        0.0,
    );
    // An intermediate tensor: ∂/∂(x²) of Σ sin(x²) is cos(x²).
    let sq = x.mul(&x).unwrap();
    let loss = sq.sin().unwrap().sum(&[0], false).unwrap();
    let g = loss.grad(&[&sq]).unwrap();
    let want: Vec<f64> = [1.0f64, 4.0, 9.0].iter().map(|v| v.cos()).collect();
    assert_close("intermediate", &read(&g[0], &[3]).await, &want, 1e-5, 1e-5);
    // Ties: max splits evenly between equal extremes, maximum between equal operands.
    let v = t(vec![1.0, 3.0, 3.0, -1.0], &[4]);
    let g = v.max(&[0], false).unwrap().grad(&[&v]).unwrap();
    assert_close(
        "max ties",
        &read(&g[0], &[4]).await,
        &[0.0, 0.5, 0.5, 0.0],
        0.0,
        0.0,
    );
    let w = t(vec![3.0, 0.0, 2.0, -1.0], &[4]);
    let loss = v.maximum(&w).unwrap().sum(&[0], false).unwrap();
    let g = loss.grad(&[&v, &w]).unwrap();
    assert_close(
        "maximum ∂a",
        &read(&g[0], &[4]).await,
        &[0.0, 1.0, 1.0, 0.5],
        0.0,
        0.0,
    );
    assert_close(
        "maximum ∂b",
        &read(&g[1], &[4]).await,
        &[1.0, 0.0, 0.0, 0.5],
        0.0,
        0.0,
    );
    // relu and abs: 0 at 0.
    let z = t(vec![-1.0, 0.0, 2.0], &[3]);
    let g = z
        .relu()
        .unwrap()
        .add(&z.abs().unwrap())
        .unwrap()
        .sum(&[0], false)
        .unwrap()
        .grad(&[&z])
        .unwrap();
    assert_close(
        "relu+abs at 0",
        &read(&g[0], &[3]).await,
        &[-1.0, 0.0, 2.0],
        0.0,
        0.0,
    );
    // The same tensor twice: contributions add.
    let loss = x
        .mul(&x)
        .unwrap()
        .add(&x)
        .unwrap()
        .sum(&[0], false)
        .unwrap();
    let g = loss.grad(&[&x, &x]).unwrap();
    for gi in &g {
        assert_close("x²+x", &read(gi, &[3]).await, &[3.0, 5.0, 7.0], 1e-6, 1e-6);
    }
    // Second order: d²/dx² of Σ w·f(x) for a few ops, against their analytic second derivative.
    let xs = Rng::new(77).vec(6, -1.5, 1.5);
    let x = t(xs.clone(), &[6]);
    type Second = (
        &'static str,
        fn(&Tensor) -> tmath::Result<Tensor>,
        fn(f64) -> f64,
    );
    let second: &[Second] = &[
        ("tanh", Tensor::tanh, |v| {
            let t = v.tanh();
            -2.0 * t * (1.0 - t * t)
        }),
        ("sin", Tensor::sin, |v| -v.sin()),
        ("exp", Tensor::exp, f64::exp),
        ("sigmoid", Tensor::sigmoid, |v| {
            let s = sigmoid(v);
            s * (1.0 - s) * (1.0 - 2.0 * s)
        }),
        ("gelu", Tensor::gelu, |v| {
            let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            pdf * (2.0 - v * v)
        }),
        ("cube", |x| x.mul(x)?.mul(x), |v| 6.0 * v),
    ];
    for (name, f, d2) in second {
        let g1 = f(&x)
            .unwrap()
            .sum(&[0], false)
            .unwrap()
            .grad(&[&x])
            .unwrap();
        let g2 = g1[0].sum(&[0], false).unwrap().grad(&[&x]).unwrap();
        let want: Vec<f64> = xs.iter().map(|&v| d2(v as f64)).collect();
        assert_close(
            &format!("{name}'' on {dev:?}"),
            &read(&g2[0], &[6]).await,
            &want,
            2e-5,
            2e-4,
        );
    }
}

/// A small MLP training step (forward, backward, SGD update) evaluated as one graph: the same
/// on this device as on the CPU, fused (fewer dispatches than ops), and cached after the first
/// step (no new pipelines).
pub async fn training_step_is_one_graph(dev: &Device) {
    let dev = super::fresh_device(dev).await;
    let cpu = Device::cpu().unwrap();
    let step = |d: &Device, w1: &Tensor, w2: &Tensor| -> (Tensor, Tensor, Tensor) {
        let x = Tensor::randn(&[16, 8], 3, d).unwrap();
        let labels: Vec<f32> = (0..16 * 4)
            .map(|i| if i % 4 == (i / 4) % 4 { 1.0 } else { 0.0 })
            .collect();
        let y = Tensor::from_vec(labels, &[16, 4], d).unwrap();
        let h = x.matmul(w1).unwrap().gelu().unwrap();
        let logp = h.matmul(w2).unwrap().log_softmax(1).unwrap();
        let loss = logp
            .mul(&y)
            .unwrap()
            .sum(&[0, 1], false)
            .unwrap()
            .mul(&Tensor::scalar(-1.0 / 16.0, d).unwrap())
            .unwrap();
        let g = loss.grad(&[w1, w2]).unwrap();
        let lr = Tensor::scalar(0.1, d).unwrap();
        let n1 = w1.sub(&g[0].mul(&lr).unwrap()).unwrap();
        let n2 = w2.sub(&g[1].mul(&lr).unwrap()).unwrap();
        (loss, n1, n2)
    };
    let init = |d: &Device| {
        (
            Tensor::randn(&[8, 32], 1, d)
                .unwrap()
                .mul(&Tensor::scalar(0.3, d).unwrap())
                .unwrap(),
            Tensor::randn(&[32, 4], 2, d)
                .unwrap()
                .mul(&Tensor::scalar(0.3, d).unwrap())
                .unwrap(),
        )
    };
    let (mut w1, mut w2) = init(&dev);
    let (mut c1, mut c2) = init(&cpu);
    let mut losses = vec![];
    for i in 0..3 {
        let before = dev.stats();
        let (loss, n1, n2) = step(&dev, &w1, &w2);
        tmath::eval_async(&[&loss, &n1, &n2]).await.unwrap();
        let after = dev.stats();
        let (closs, m1, m2) = step(&cpu, &c1, &c2);
        tmath::eval_async(&[&closs, &m1, &m2]).await.unwrap();
        let l = read(&loss, &[]).await[0];
        let lc = read(&closs, &[]).await[0] as f64;
        assert_close(
            &format!("loss of step {i} vs the CPU on {dev:?}"),
            &[l],
            &[lc],
            1e-5,
            1e-4,
        );
        let got = read(&n1, &[8, 32]).await;
        let want = to_f64(&read(&m1, &[8, 32]).await);
        assert_close(
            &format!("w1 after step {i} vs the CPU on {dev:?}"),
            &got,
            &want,
            1e-5,
            1e-4,
        );
        if dev.backend_name() == "wgpu" && dev.jit() == JitMode::On {
            let dispatches = after.dispatches - before.dispatches;
            assert!(dispatches < 20, "step {i}: {dispatches} dispatches (fusion should keep this well under the op count)");
            if i > 0 {
                assert_eq!(
                    after.compiles, before.compiles,
                    "step {i} compiled new pipelines"
                );
            }
        }
        losses.push(l);
        (w1, w2, c1, c2) = (n1, n2, m1, m2);
    }
    assert!(
        losses[2] < losses[0],
        "SGD should lower the loss: {losses:?}"
    );
}
