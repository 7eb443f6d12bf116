//! The precision contract: README.md's table of error bounds against float64, checked here on
//! every device (and so on every adapter CI has: the CPU, lavapipe, SwiftShader, WebKit's CPU
//! fallback, MLX). The table is read from README.md itself, so the documented bounds are the
//! tested ones.

use super::check::*;
use tmath::{Device, JitMode, Tensor};

/// One row of the table: inputs uniform (and log-spaced where the range spans decades) in
/// `[from, to]`; `|got − f64| ≤ abs + rel·|f64|`.
#[derive(Debug)]
pub struct Bound {
    pub op: String,
    /// A row for one backend only (`` `exp` (mlx) ``): it replaces that op's general row of the
    /// same range there.
    pub backend: Option<String>,
    pub from: f64,
    pub to: f64,
    pub abs: f64,
    pub rel: f64,
}

const README: &str = include_str!("../../README.md");

/// The rows between `<!-- precision-table -->` and `<!-- /precision-table -->`:
/// `| op | from | to | abs | rel | note |`.
pub fn table() -> Vec<Bound> {
    let start = README
        .find("<!-- precision-table -->")
        .expect("README.md has a precision table");
    let end = README[start..]
        .find("<!-- /precision-table -->")
        .expect("the precision table ends")
        + start;
    README[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let num = |i: usize| -> f64 {
                let c = cells[i].replace(['−', '–'], "-").replace(' ', "");
                c.parse()
                    .unwrap_or_else(|_| panic!("precision table: bad number {:?} in {l}", cells[i]))
            };
            let (op, backend) = match cells[0].split_once(' ') {
                Some((op, b)) => (op, Some(b.trim_matches(['(', ')']).to_string())),
                None => (cells[0], None),
            };
            Bound {
                op: op.trim_matches('`').to_string(),
                backend,
                from: num(1),
                to: num(2),
                abs: num(3),
                rel: num(4),
            }
        })
        .collect()
}

/// The rows that hold on `backend` (`"cpu"`, `"wgpu"`, `"mlx"`): the general rows, each
/// replaced by that backend's own row for the same op and range where there is one.
pub fn table_for(backend: &str) -> Vec<Bound> {
    let all = table();
    let own: Vec<&Bound> = all
        .iter()
        .filter(|b| b.backend.as_deref() == Some(backend))
        .collect();
    let mut rows = vec![];
    for b in all.iter().filter(|b| b.backend.is_none()) {
        let pick = own
            .iter()
            .find(|o| o.op == b.op && o.from == b.from && o.to == b.to)
            .copied()
            .unwrap_or(b);
        rows.push(Bound {
            op: pick.op.clone(),
            backend: pick.backend.clone(),
            from: pick.from,
            to: pick.to,
            abs: pick.abs,
            rel: pick.rel,
        });
    }
    rows
}

/// Inputs spread over `[from, to]`: a grid, uniform samples, and log-spaced magnitudes (so
/// tiny and huge arguments are both tried where the range has them), plus the range's ends.
pub fn samples(from: f64, to: f64, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut v = Vec::with_capacity(n);
    for i in 0..n / 3 {
        v.push((from + (to - from) * i as f64 / (n / 3 - 1).max(1) as f64) as f32);
    }
    while v.len() < 2 * n / 3 {
        v.push(rng.uniform(from, to));
    }
    let big = from.abs().max(to.abs());
    while v.len() < n {
        let mag = (1e-6f64.max(big * 1e-12).ln()
            + (big.ln() - 1e-6f64.max(big * 1e-12).ln()) * rng.uniform(0.0, 1.0) as f64)
            .exp();
        let x = if rng.next_u64() & 1 == 0 { mag } else { -mag };
        if x >= from && x <= to {
            v.push(x as f32);
        } else {
            v.push(rng.uniform(from, to));
        }
    }
    v.push(from as f32);
    v.push(to as f32);
    v
}

type Unary = fn(&Tensor) -> tmath::Result<Tensor>;
type Binary = fn(&Tensor, &Tensor) -> tmath::Result<Tensor>;
type Ref1 = fn(f64) -> f64;
type Ref2 = fn(f64, f64) -> f64;

fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt()))
}

fn gelu_tanh64(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn unary(op: &str) -> Option<(Unary, Ref1)> {
    Some(match op {
        "neg" => (Tensor::neg, |x| -x),
        "abs" => (Tensor::abs, f64::abs),
        "exp" => (Tensor::exp, f64::exp),
        "log" => (Tensor::log, f64::ln),
        "sqrt" => (Tensor::sqrt, f64::sqrt),
        "rsqrt" => (Tensor::rsqrt, |x| 1.0 / x.sqrt()),
        "sin" => (Tensor::sin, f64::sin),
        "cos" => (Tensor::cos, f64::cos),
        "tanh" => (Tensor::tanh, f64::tanh),
        "sigmoid" => (Tensor::sigmoid, sigmoid64),
        "relu" => (Tensor::relu, |x| x.max(0.0)),
        "gelu" => (Tensor::gelu, gelu64),
        "gelu_tanh" => (Tensor::gelu_tanh, gelu_tanh64),
        "silu" => (Tensor::silu, |x| x * sigmoid64(x)),
        "erf" => (Tensor::erf, libm::erf),
        _ => return None,
    })
}

fn binary(op: &str) -> Option<(Binary, Ref2)> {
    Some(match op {
        "add" => (Tensor::add, |a, b| a + b),
        "sub" => (Tensor::sub, |a, b| a - b),
        "mul" => (Tensor::mul, |a, b| a * b),
        "div" => (Tensor::div, |a, b| a / b),
        "pow" => (Tensor::pow, f64::powf),
        "maximum" => (Tensor::maximum, f64::max),
        "minimum" => (Tensor::minimum, f64::min),
        _ => return None,
    })
}

/// The op and its f64 reference, by name (the fuzzer builds graphs from these).
pub fn unary_op(op: &str) -> Unary {
    unary(op)
        .unwrap_or_else(|| panic!("unknown unary op {op}"))
        .0
}

/// See [`unary_op`].
pub fn unary_ref(op: &str) -> fn(f64) -> f64 {
    unary(op)
        .unwrap_or_else(|| panic!("unknown unary op {op}"))
        .1
}

/// See [`unary_op`].
pub fn binary_op(op: &str) -> Binary {
    binary(op)
        .unwrap_or_else(|| panic!("unknown binary op {op}"))
        .0
}

/// See [`unary_op`].
pub fn binary_ref(op: &str) -> fn(f64, f64) -> f64 {
    binary(op)
        .unwrap_or_else(|| panic!("unknown binary op {op}"))
        .1
}

/// The worst `|got − want| − (abs + rel·|want|)` and where; NaN or a wrong infinity counts as
/// infinitely bad.
fn worst(got: &[f32], want: &[f64], b: &Bound) -> (f64, usize, f64) {
    let mut w = (f64::NEG_INFINITY, 0usize, 0.0f64);
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        let err = if r.is_infinite() && g == r {
            0.0
        } else if g.is_finite() {
            (g - r).abs()
        } else {
            f64::INFINITY
        };
        let excess = err - (b.abs + b.rel * r.abs());
        if excess > w.0 {
            w = (excess, i, err);
        }
    }
    w
}

pub async fn precision_contract(dev: &Device) {
    let rows = table_for(dev.backend_name());
    assert!(rows.len() >= 21, "the table covers every elementwise op");
    let mut failures = vec![];
    for (i, b) in rows.iter().enumerate() {
        let xs = samples(b.from, b.to, 3000, 500 + i as u64);
        let n = xs.len();
        let x = Tensor::from_vec(xs.clone(), &[n], dev).unwrap();
        let (got, want) = if let Some((f, r)) = unary(&b.op) {
            let want: Vec<f64> = xs.iter().map(|&v| r(v as f64)).collect();
            (read(&f(&x).unwrap(), &[n]).await, want)
        } else if let Some((f, r)) = binary(&b.op) {
            // The second operand: the same range (pow: exponents in [-3, 3]), other samples.
            let ys = if b.op == "pow" {
                samples(-3.0, 3.0, 3000, 900 + i as u64)
            } else {
                samples(b.from, b.to, 3000, 900 + i as u64)
            };
            let y = Tensor::from_vec(ys.clone(), &[n], dev).unwrap();
            let want: Vec<f64> = xs
                .iter()
                .zip(&ys)
                .map(|(&a, &c)| r(a as f64, c as f64))
                .collect();
            (read(&f(&x, &y).unwrap(), &[n]).await, want)
        } else {
            panic!("precision table: unknown op {}", b.op);
        };
        if std::env::var("TMATH_PRECISION_REPORT").is_ok() {
            let (mut ea, mut er) = (0f64, 0f64);
            for (&g, &w) in got.iter().zip(&want) {
                let e = if g as f64 == w {
                    0.0
                } else {
                    (g as f64 - w).abs()
                };
                ea = ea.max(e);
                if w.abs() > 1e-30 {
                    er = er.max(e / w.abs());
                }
            }
            eprintln!(
                "precision {dev:?} {} [{}, {}]: max abs {ea:.3e}, max rel {er:.3e}",
                b.op, b.from, b.to
            );
        }
        let (excess, at, err) = worst(&got, &want, b);
        if excess > 0.0 {
            failures.push(format!(
                "{} on [{}, {}]: error {err:e} at x = {:e} (f64 {:e}, got {:e}) exceeds {:e} + {:e}·|f64|",
                b.op, b.from, b.to, xs[at], want[at], got[at], b.abs, b.rel
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{dev:?} misses the precision table:\n{}",
        failures.join("\n")
    );
    // Reductions: a sum of n terms is within 2⁻²²·log₂(n)·Σ|xᵢ| (+ a tiny absolute) of f64 —
    // the README's bound for tree and pairwise sums — on rows of several lengths; mean likewise
    // relative to Σ|xᵢ|/n; max/min exactly.
    for (len, seed) in [(7usize, 1u64), (1000, 2), (4099, 3), (65_536, 4)] {
        let (x, data) = rand_tensor(dev, &[3, len], 40 + seed, -100.0, 100.0);
        let sums = read(&x.sum(&[1], false).unwrap(), &[3]).await;
        let means = read(&x.mean(&[1], false).unwrap(), &[3]).await;
        let maxs = read(&x.max(&[1], false).unwrap(), &[3]).await;
        for r in 0..3 {
            let row = &data[r * len..(r + 1) * len];
            let exact: f64 = row.iter().map(|&v| v as f64).sum();
            let mass: f64 = row.iter().map(|&v| (v as f64).abs()).sum();
            let bound = 2f64.powi(-22) * (len as f64).log2().max(1.0) * mass + 1e-30;
            assert!(
                (sums[r] as f64 - exact).abs() <= bound,
                "{dev:?}: sum of {len}: error {:e} > {bound:e}",
                (sums[r] as f64 - exact).abs()
            );
            assert!(
                (means[r] as f64 - exact / len as f64).abs() <= bound / len as f64 * 1.01,
                "{dev:?}: mean of {len}"
            );
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            assert_eq!(maxs[r], m, "{dev:?}: max of {len}");
        }
    }
}

/// IEEE special values survive the shader compiler: `x − x`, `x · 0`, `x / x`, `x + (−x)` with
/// NaN and infinite inputs give what IEEE arithmetic gives (compilers that assume finite values
/// fold them to 0 or 1), in both JIT modes and through fused chains.
// The references compute `x - x` etc. on purpose: that is the IEEE result under test.
#[allow(clippy::eq_op)]
pub async fn ieee_special_values(dev: &Device) {
    let vals = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -1.0,
        0.0,
        -0.0,
        2.5,
        1e30,
        1e-30,
    ];
    let n = vals.len();
    let x = Tensor::from_vec(vals.to_vec(), &[n], dev).unwrap();
    let zero = Tensor::from_vec(vec![0.0; n], &[n], dev).unwrap();
    let zs = Tensor::scalar(0.0, dev).unwrap();
    // The reference is IEEE f32 arithmetic itself (the host's), so overflow matches too.
    type Case = (
        &'static str,
        fn(&Tensor, &Tensor, &Tensor) -> Tensor,
        fn(f32) -> f32,
    );
    let cases: &[Case] = &[
        ("x - x", |x, _, _| x.sub(x).unwrap(), |v| v - v),
        (
            "x + (-x)",
            |x, _, _| x.add(&x.neg().unwrap()).unwrap(),
            |v| v + -v,
        ),
        ("x * 0", |x, z, _| x.mul(z).unwrap(), |v| v * 0.0),
        ("x * scalar 0", |x, _, s| x.mul(s).unwrap(), |v| v * 0.0),
        ("x / x", |x, _, _| x.div(x).unwrap(), |v| v / v),
        ("0 / x", |x, z, _| z.div(x).unwrap(), |v| 0.0 / v),
        ("x / 0", |x, z, _| x.div(z).unwrap(), |v| v / 0.0),
        (
            "x * x - x * x",
            |x, _, _| x.mul(x).unwrap().sub(&x.mul(x).unwrap()).unwrap(),
            |v| v * v - v * v,
        ),
        (
            "(x - x) * 0 + x",
            |x, z, _| x.sub(x).unwrap().mul(z).unwrap().add(x).unwrap(),
            |v| (v - v) * 0.0 + v,
        ),
        (
            "exp(x) - exp(x)",
            |x, _, _| x.exp().unwrap().sub(&x.exp().unwrap()).unwrap(),
            |v| v.exp() - v.exp(),
        ),
        (
            "sin(x) / x",
            |x, _, _| x.sin().unwrap().div(x).unwrap(),
            |v| v.sin() / v,
        ),
        (
            "cos(x) * 0",
            |x, z, _| x.cos().unwrap().mul(z).unwrap(),
            |v| v.cos() * 0.0,
        ),
    ];
    for mode in [JitMode::On, JitMode::Off] {
        dev.set_jit(mode);
        for (name, f, r) in cases {
            let got = read(&f(&x, &zero, &zs), &[n]).await;
            for (i, &g) in got.iter().enumerate() {
                let w = r(vals[i]);
                let ok = if w.is_nan() {
                    g.is_nan()
                } else if w.is_infinite() {
                    g == w
                } else if name.contains("sin") || name.contains("cos") {
                    // Beyond the table's ±8192, trigonometry is the adapter's: finite is all.
                    g.is_finite() && (vals[i].abs() > 8192.0 || (g - w).abs() <= 1e-6 * w.abs())
                } else {
                    g.is_finite() && (g - w).abs() <= 1e-6 * w.abs()
                };
                assert!(
                    ok,
                    "{dev:?} ({mode:?}): {name} at x = {:e}: got {g:e}, IEEE gives {w:e}",
                    vals[i]
                );
            }
        }
    }
    dev.set_jit(JitMode::On);
}
