//! Reverse-mode gradients as graph nodes. [`Tensor::grad`] walks the graph behind a scalar
//! loss once, from the loss back towards the inputs, and writes each op's vector-Jacobian
//! product (VJP) with ordinary ops. Nothing runs: the gradients are lazy tensors like any
//! other, so forward and backward evaluate as one schedule (fused and cached like every graph),
//! and a gradient's own gradient works wherever the rules below use differentiable ops.
//!
//! Every op of the vocabulary has its rule in one exhaustive `match` (a new op without one does
//! not compile). Conventions where the derivative is not defined: `relu`, `abs` and the
//! comparisons' callers take the derivative 0 at 0; `maximum`/`minimum` split the gradient
//! evenly between equal operands; `max`/`min` reductions split it evenly between the elements
//! that equal the extreme; comparisons and the condition of `where_cond` have no gradient.
//! The SVD's rule holds for distinct, non-zero singular values (see [`svd_vjp`]).

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::ir::{BinaryOp, Op, ReduceOp, UnaryOp};
use crate::Tensor;

impl Tensor {
    /// The gradients of this scalar loss with respect to each of `wrt`, as lazy tensors of
    /// their shapes: new graph nodes, so evaluating them with the loss
    /// ([`crate::eval`]`(&[&loss, &g[0], ..])`) runs forward and backward as one schedule.
    ///
    /// `wrt` may hold any tensors of the loss's graph (inputs or intermediate results); one
    /// the loss does not depend on gets zeros of its shape. A loss with more than one element
    /// is an [`Error::Shape`] naming `grad` and the shape. Gradients are differentiable again
    /// (`g.sum(..)?.grad(..)` gives second derivatives) wherever the ops' rules are.
    ///
    /// Conventions where a derivative is not defined: `relu` and `abs` take 0 at 0;
    /// `maximum`/`minimum` split the gradient evenly between equal operands, and the `max`/`min`
    /// reductions between all elements equal to the extreme; comparisons and the condition of
    /// [`Tensor::where_cond`] pass no gradient. The SVD's gradient assumes distinct, non-zero
    /// singular values (repeated ones give the terms that divide by `sᵢ² − sⱼ²` the value 0).
    ///
    /// ```
    /// use tmath::{Device, Tensor};
    /// let dev = Device::cpu()?;
    /// let w = Tensor::from_vec(vec![1.0, -2.0, 3.0], &[3], &dev)?;
    /// let loss = w.mul(&w)?.sum(&[0], false)?; // Σ w²
    /// let g = loss.grad(&[&w])?;
    /// tmath::eval(&[&loss, &g[0]])?;             // forward and backward together
    /// assert_eq!(g[0].to_vec()?, vec![2.0, -4.0, 6.0]);
    /// # Ok::<(), tmath::Error>(())
    /// ```
    pub fn grad(&self, wrt: &[&Tensor]) -> Result<Vec<Tensor>> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "grad",
                format!(
                    "the loss must be a scalar (shape [] or one element), got shape {:?}",
                    self.shape()
                ),
            ));
        }
        for w in wrt {
            self.check_device("grad", w)?;
        }
        let targets: HashSet<u64> = wrt.iter().map(|w| w.node().id).collect();
        let order = topological(self);
        // The nodes on a path from a target to the loss: only they need a gradient.
        let mut depends: HashSet<u64> = HashSet::new();
        for t in &order {
            let n = t.node();
            if targets.contains(&n.id) || n.inputs.iter().any(|i| depends.contains(&i.node().id)) {
                depends.insert(n.id);
            }
        }
        let mut grads = Grads::default();
        grads.add(self, self.constant(1.0, self.shape())?)?;
        for t in order.iter().rev() {
            let node = t.node();
            if !depends.contains(&node.id) {
                continue;
            }
            let contributions = match node.op {
                Op::Svd { m, n } => match grads.svd.remove(&node.id) {
                    Some(parts) => vec![Some(svd_vjp(t, m, n, parts)?)],
                    None => continue,
                },
                _ => match grads.of(node.id) {
                    Some(g) => {
                        let needed: Vec<bool> = node
                            .inputs
                            .iter()
                            .map(|i| depends.contains(&i.node().id))
                            .collect();
                        vjp(t, &g, &needed, &mut grads)?
                    }
                    None => continue,
                },
            };
            for (input, g) in node.inputs.iter().zip(contributions) {
                if let Some(g) = g {
                    grads.add(input, g)?;
                }
            }
        }
        wrt.iter()
            .map(|w| match grads.of(w.node().id) {
                Some(g) => Ok(g),
                None => w.constant(0.0, w.shape()),
            })
            .collect()
    }
}

/// The cotangents found so far: one tensor per node, and the parts of each SVD's packed result
/// (`U`, `S`, `Vᵀ` are windows of one node; their rule needs all three together).
#[derive(Default)]
struct Grads {
    of: HashMap<u64, Tensor>,
    svd: HashMap<u64, SvdParts>,
}

impl Grads {
    fn of(&self, id: u64) -> Option<Tensor> {
        self.of.get(&id).cloned()
    }

    /// Adds `g` to the cotangent of `t` (which must have `t`'s shape).
    fn add(&mut self, t: &Tensor, g: Tensor) -> Result<()> {
        if g.shape() != t.shape() {
            return Err(Error::device(format!(
                "internal: the gradient of {} has shape {:?}, not {:?}",
                t.node().op.name(),
                g.shape(),
                t.shape()
            )));
        }
        let id = t.node().id;
        let sum = match self.of.remove(&id) {
            Some(prev) => prev.add(&g)?,
            None => g,
        };
        self.of.insert(id, sum);
        Ok(())
    }
}

/// The cotangents of an SVD's three results (absent: that result is not used).
#[derive(Default)]
struct SvdParts {
    u: Option<Tensor>,
    s: Option<Tensor>,
    vt: Option<Tensor>,
}

/// Every node behind `root`, inputs before consumers (without recursion: node ids grow with
/// creation and every input is older than its consumers, so sorting by id is an order).
fn topological(root: &Tensor) -> Vec<Tensor> {
    let mut seen: HashSet<u64> = HashSet::from([root.node().id]);
    let mut stack = vec![root.clone()];
    let mut all = vec![];
    while let Some(t) = stack.pop() {
        for i in &t.node().inputs {
            if seen.insert(i.node().id) {
                stack.push(i.clone());
            }
        }
        all.push(t);
    }
    all.sort_by_key(|t| t.node().id);
    all
}

/// `g` summed over the dimensions that broadcasting added, back to `shape`.
fn sum_to(g: Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g);
    }
    let lead = g.ndim() - shape.len();
    let axes: Vec<usize> = (0..g.ndim())
        .filter(|&d| d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1))
        .collect();
    g.sum(&axes, true)?.reshape(shape)
}

/// The cotangents of node `t`'s inputs given its own, `g` (`None` where `needed` is false or
/// the input gets no gradient).
fn vjp(t: &Tensor, g: &Tensor, needed: &[bool], grads: &mut Grads) -> Result<Vec<Option<Tensor>>> {
    let node = t.node();
    let x = |i: usize| &node.inputs[i];
    let c = |v: f32| t.constant(v, &[]);
    let only = |i: usize, v: Tensor| -> Vec<Option<Tensor>> {
        (0..needed.len())
            .map(|k| (k == i).then(|| v.clone()))
            .collect()
    };
    Ok(match &node.op {
        Op::Data | Op::Randn { .. } | Op::Full { .. } => vec![],
        Op::Unary(u) => only(0, unary_vjp(*u, x(0), t, g)?),
        Op::Binary(b) => {
            let (a, bb) = (x(0), x(1));
            let pair = binary_vjp(*b, a, bb, t, g, needed)?;
            vec![
                pair.0.map(|d| sum_to(d, a.shape())).transpose()?,
                pair.1.map(|d| sum_to(d, bb.shape())).transpose()?,
            ]
        }
        Op::Where => {
            let cond = x(0);
            let zero = c(0.0)?;
            let a = needed[1]
                .then(|| sum_to(cond.where_cond(g, &zero)?, x(1).shape()))
                .transpose()?;
            let b = needed[2]
                .then(|| sum_to(cond.where_cond(&zero, g)?, x(2).shape()))
                .transpose()?;
            vec![None, a, b]
        }
        Op::Reduce { op, axes, keepdim } => {
            let xs = x(0).shape();
            let kept: Vec<usize> = (0..xs.len())
                .map(|d| if axes.contains(&d) { 1 } else { xs[d] })
                .collect();
            let gk = if *keepdim {
                g.clone()
            } else {
                g.reshape(&kept)?
            };
            let dx = match op {
                ReduceOp::Sum => gk.broadcast_to(xs)?,
                ReduceOp::Mean => {
                    let n: usize = axes.iter().map(|&a| xs[a]).product();
                    gk.mul(&c(1.0 / n as f32)?)?.broadcast_to(xs)?
                }
                ReduceOp::Max | ReduceOp::Min => {
                    let yk = if *keepdim {
                        t.clone()
                    } else {
                        t.reshape(&kept)?
                    };
                    let mask = x(0).eq(&yk)?;
                    let count = mask.sum(axes, true)?;
                    mask.mul(&gk.div(&count)?)?
                }
            };
            only(0, dx)
        }
        Op::Softmax { axis, log } => {
            let dx = if *log {
                let total = g.sum(&[*axis], true)?;
                g.sub(&t.exp()?.mul(&total)?)?
            } else {
                let dot = g.mul(t)?.sum(&[*axis], true)?;
                t.mul(&g.sub(&dot)?)?
            };
            only(0, dx)
        }
        Op::MatMul => {
            let (a, b) = (x(0), x(1));
            let da = needed[0]
                .then(|| sum_to(g.matmul(&last_two_swapped(b)?)?, a.shape()))
                .transpose()?;
            let db = needed[1].then(|| matmul_db(a, b, g)).transpose()?;
            vec![da, db]
        }
        Op::Reshape => only(0, g.reshape(x(0).shape())?),
        Op::Permute(perm) => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            only(0, g.permute(&inverse)?)
        }
        Op::Expand => only(0, sum_to(g.clone(), x(0).shape())?),
        Op::Slice { offset } => {
            let packed = x(0);
            let Op::Svd { m, n } = packed.node().op else {
                return Err(Error::device(
                    "internal: grad met a slice that is not an SVD result",
                ));
            };
            let k = m.min(n);
            let parts = grads.svd.entry(packed.node().id).or_default();
            let part = match *offset {
                0 => &mut parts.u,
                o if o == m * k => &mut parts.s,
                _ => &mut parts.vt,
            };
            *part = Some(match part.take() {
                Some(prev) => prev.add(g)?,
                None => g.clone(),
            });
            vec![]
        }
        Op::Svd { .. } => return Err(Error::device("internal: the SVD's rule runs on its parts")),
    })
}

/// `d/dx` of a unary op times `g`; `y` is the op's result.
fn unary_vjp(u: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let c = |v: f32| x.constant(v, &[]);
    let one = c(1.0)?;
    let zero = c(0.0)?;
    match u {
        UnaryOp::Neg => g.neg(),
        UnaryOp::Abs => g.mul(&x.gt(&zero)?.sub(&x.lt(&zero)?)?),
        UnaryOp::Exp => g.mul(y),
        UnaryOp::Log => g.div(x),
        UnaryOp::Sqrt => g.div(&y.mul(&c(2.0)?)?),
        UnaryOp::Rsqrt => g.mul(&y.mul(y)?.mul(y)?.mul(&c(-0.5)?)?),
        UnaryOp::Sin => g.mul(&x.cos()?),
        UnaryOp::Cos => g.mul(&x.sin()?.neg()?),
        UnaryOp::Tanh => g.mul(&one.sub(&y.mul(y)?)?),
        UnaryOp::Sigmoid => g.mul(&y.mul(&one.sub(y)?)?),
        UnaryOp::Relu => x.gt(&zero)?.where_cond(g, &zero),
        UnaryOp::Gelu => {
            // Φ(x) + x·φ(x)
            let cdf = x
                .mul(&c(std::f32::consts::FRAC_1_SQRT_2)?)?
                .erf()?
                .add(&one)?
                .mul(&c(0.5)?)?;
            let pdf = x.mul(x)?.mul(&c(-0.5)?)?.exp()?.mul(&c(0.398_942_3)?)?;
            g.mul(&cdf.add(&x.mul(&pdf)?)?)
        }
        UnaryOp::GeluTanh => {
            // t = tanh(c(x + a·x³)): ½(1 + t) + ½x(1 − t²)·c(1 + 3a·x²)
            const A: f32 = 0.044_715;
            const C: f32 = 0.797_884_6;
            let x2 = x.mul(x)?;
            let th = x.add(&x2.mul(x)?.mul(&c(A)?)?)?.mul(&c(C)?)?.tanh()?;
            let left = th.add(&one)?.mul(&c(0.5)?)?;
            let slope = x2.mul(&c(3.0 * A)?)?.add(&one)?.mul(&c(C * 0.5)?)?;
            let right = x.mul(&one.sub(&th.mul(&th)?)?)?.mul(&slope)?;
            g.mul(&left.add(&right)?)
        }
        UnaryOp::Silu => {
            // s·(1 + x(1 − s))
            let s = x.sigmoid()?;
            g.mul(&s.mul(&x.mul(&one.sub(&s)?)?.add(&one)?)?)
        }
        UnaryOp::Erf => {
            let e = x.mul(x)?.neg()?.exp()?;
            g.mul(&e.mul(&c(std::f32::consts::FRAC_2_SQRT_PI)?)?)
        }
    }
}

/// The cotangents of a binary op's operands at the result's shape (summed to the operands'
/// shapes by the caller).
fn binary_vjp(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
    g: &Tensor,
    needed: &[bool],
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let c = |v: f32| a.constant(v, &[]);
    let (na, nb) = (needed[0], needed[1]);
    let lazy = |need: bool, f: &dyn Fn() -> Result<Tensor>| need.then(f).transpose();
    let even_split = |first: Tensor| -> Result<(Option<Tensor>, Option<Tensor>)> {
        // first: 1 where `a` alone is the result; ties split evenly.
        let share = first.add(&a.eq(b)?.mul(&c(0.5)?)?)?;
        Ok((
            lazy(na, &|| g.mul(&share))?,
            lazy(nb, &|| g.mul(&c(1.0)?.sub(&share)?))?,
        ))
    };
    match op {
        BinaryOp::Add => Ok((na.then(|| g.clone()), nb.then(|| g.clone()))),
        BinaryOp::Sub => Ok((na.then(|| g.clone()), lazy(nb, &|| g.neg())?)),
        BinaryOp::Mul => Ok((lazy(na, &|| g.mul(b))?, lazy(nb, &|| g.mul(a))?)),
        BinaryOp::Div => Ok((
            lazy(na, &|| g.div(b))?,
            lazy(nb, &|| g.mul(y)?.div(b)?.neg())?,
        )),
        BinaryOp::Pow => Ok((
            lazy(na, &|| g.mul(b)?.mul(&a.pow(&b.sub(&c(1.0)?)?)?))?,
            // d/db aᵇ = aᵇ·ln a, taken as 0 at a = 0 (where aᵇ is 0 or 1 for every b ≥ 0).
            lazy(nb, &|| {
                let zero = c(0.0)?;
                g.mul(&a.eq(&zero)?.where_cond(&zero, &y.mul(&a.log()?)?)?)
            })?,
        )),
        BinaryOp::Maximum => even_split(a.gt(b)?),
        BinaryOp::Minimum => even_split(a.lt(b)?),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq | BinaryOp::Ne => {
            Ok((None, None))
        }
    }
}

/// `t` with its last two dimensions swapped (a view).
fn last_two_swapped(t: &Tensor) -> Result<Tensor> {
    let n = t.ndim();
    t.transpose(n - 2, n - 1)
}

/// `∂(a·b)/∂b` given `g`: `aᵀ·g`, summed over broadcast batch dimensions. A 2-D `b` under a
/// batched `a` (a linear layer over a batch) is one matmul of the flattened batch.
fn matmul_db(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<Tensor> {
    if b.ndim() == 2 && a.ndim() > 2 {
        let k = a.shape()[a.ndim() - 1];
        let n = g.shape()[g.ndim() - 1];
        let rows = a.numel() / k.max(1);
        let a2 = a.reshape(&[rows, k])?;
        let g2 = g.reshape(&[rows, n])?;
        return last_two_swapped(&a2)?.matmul(&g2);
    }
    sum_to(last_two_swapped(a)?.matmul(g)?, b.shape())
}

/// The SVD's rule (Townsend, "Differentiating the singular value decomposition", 2016), with
/// `V = (Vᵀ)ᵀ`, `F_ij = 1/(s_j² − s_i²)` off the diagonal and 0 on it:
///
/// `Ā = [U·(F∘(UᵀŪ − ŪᵀU))·S + U·diag(S̄) + U·S·(F∘(VᵀV̄ − V̄ᵀV)) + (I − UUᵀ)·Ū·S⁻¹]·Vᵀ
///      + U·S⁻¹·V̄ᵀ·(I − VVᵀ)`.
///
/// Exact for distinct, non-zero singular values; where two are equal, `F` is 0 there (the
/// true gradient is undefined unless the loss is invariant to rotations within that space).
fn svd_vjp(packed: &Tensor, m: usize, n: usize, parts: SvdParts) -> Result<Tensor> {
    let k = m.min(n);
    let u = packed.slice_flat(0, &[m, k])?;
    let s = packed.slice_flat(m * k, &[k])?;
    let vt = packed.slice_flat(m * k + k, &[k, n])?;
    let c = |v: f32| packed.constant(v, &[]);
    let zero = c(0.0)?;
    let s_row = s.reshape(&[1, k])?;
    let s_col = s.reshape(&[k, 1])?;
    let inv_s_row = c(1.0)?.div(&s_row)?;
    let f = {
        let s2 = s.mul(&s)?;
        let d = s2.reshape(&[1, k])?.sub(&s2.reshape(&[k, 1])?)?;
        d.eq(&zero)?.where_cond(&zero, &c(1.0)?.div(&d)?)?
    };
    let skew = |x: &Tensor| x.sub(&last_two_swapped(x)?);
    // M (m × k) is everything multiplied by Vᵀ on the right.
    let mut acc: Option<Tensor> = None;
    let mut push = |t: Tensor| -> Result<()> {
        acc = Some(match acc.take() {
            Some(a) => a.add(&t)?,
            None => t,
        });
        Ok(())
    };
    let mut inner: Option<Tensor> = None;
    if let Some(gu) = &parts.u {
        let utgu = last_two_swapped(&u)?.matmul(gu)?;
        inner = Some(f.mul(&skew(&utgu)?)?.mul(&s_row)?);
        if m > k {
            push(gu.sub(&u.matmul(&utgu)?)?.mul(&inv_s_row)?)?;
        }
    }
    if let Some(gs) = &parts.s {
        push(u.mul(&gs.reshape(&[1, k])?)?)?;
    }
    if let Some(gvt) = &parts.vt {
        let vtv = vt.matmul(&last_two_swapped(gvt)?)?; // Vᵀ·V̄
        let term = s_col.mul(&f.mul(&skew(&vtv)?)?)?;
        inner = Some(match inner {
            Some(i) => i.add(&term)?,
            None => term,
        });
    }
    if let Some(i) = inner {
        push(u.matmul(&i)?)?;
    }
    let mut da = match acc {
        Some(mm) => Some(mm.matmul(&vt)?),
        None => None,
    };
    if let (Some(gvt), true) = (&parts.vt, n > k) {
        let proj = gvt.sub(&gvt.matmul(&last_two_swapped(&vt)?)?.matmul(&vt)?)?;
        let term = u.matmul(&c(1.0)?.div(&s_col)?.mul(&proj)?)?;
        da = Some(match da {
            Some(d) => d.add(&term)?,
            None => term,
        });
    }
    match da {
        Some(d) => Ok(d),
        None => packed.constant(0.0, &[m, n]),
    }
}
