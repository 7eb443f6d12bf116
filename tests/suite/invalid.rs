//! Bad input, as a property: random calls with random shapes (zero-sized, size-1, huge, counts
//! that overflow), random axes, lengths and permutations, and data with NaN and infinities. Each
//! call must give a typed error that names its op exactly when the test's own model of the rules
//! says it is invalid, or else a result of the right shape whose values match the float64
//! reference; never a panic, an abort or a hang; and the device works afterwards.

use super::check::try_broadcast as broadcast;
use super::check::*;
use super::fuzz::{self, Graph, Node, SPECIAL_SEEDS};
use tmath::{Device, Error, JitMode, Tensor};

/// Calls per device (natively; browsers run fewer).
#[cfg(not(target_arch = "wasm32"))]
const CALLS: usize = 400;
#[cfg(target_arch = "wasm32")]
const CALLS: usize = 120;

const DIMS: &[usize] = &[0, 1, 1, 2, 3, 5, 7];

fn shape(rng: &mut Rng) -> Vec<usize> {
    let rank = (rng.next_u64() % 5) as usize;
    (0..rank)
        .map(|_| DIMS[(rng.next_u64() % DIMS.len() as u64) as usize])
        .collect()
}

/// A shape whose element count overflows `usize`, or whose bytes exceed what one allocation
/// can hold.
fn overflowing(rng: &mut Rng) -> Vec<usize> {
    let h = 1usize << (usize::BITS / 2);
    match rng.next_u64() % 4 {
        0 => vec![h, h],
        1 => vec![usize::MAX, 2],
        2 => vec![usize::MAX / 2 + 2, 2],
        _ => vec![3, usize::MAX / 4 + 1],
    }
}

/// A shape that counts (no overflow) but is far beyond every device's memory (64-bit only).
fn huge() -> Option<Vec<usize>> {
    #[cfg(target_pointer_width = "64")]
    return Some(vec![1 << 20, 1 << 20]);
    #[cfg(not(target_pointer_width = "64"))]
    None
}

fn count(s: &[usize]) -> Option<usize> {
    s.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// What the model says a call gives: the output shape, or `None` for an error.
enum Call {
    Unary(&'static str),
    Binary(&'static str),
    Reduce(&'static str, Vec<usize>, bool),
    Softmax(usize, bool),
    MatMul,
    Reshape(Vec<usize>),
    Permute(Vec<usize>),
    Transpose(usize, usize),
    Svd,
}

fn model(call: &Call, a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let valid_axes = |axes: &[usize]| {
        axes.iter().all(|&x| x < a.len()) && (0..axes.len()).all(|i| !axes[..i].contains(&axes[i]))
    };
    match call {
        Call::Unary(_) => Some(a.to_vec()),
        Call::Binary(_) => broadcast(a, b),
        Call::Reduce(op, axes, keep) => {
            if !valid_axes(axes) {
                return None;
            }
            if (*op == "max" || *op == "min") && axes.iter().any(|&x| a[x] == 0) {
                return None; // no identity
            }
            Some(
                a.iter()
                    .enumerate()
                    .filter_map(|(d, &n)| {
                        if !axes.contains(&d) {
                            Some(n)
                        } else if *keep {
                            Some(1)
                        } else {
                            None
                        }
                    })
                    .collect(),
            )
        }
        Call::Softmax(axis, _) => (*axis < a.len()).then(|| a.to_vec()),
        Call::MatMul => {
            if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
                return None;
            }
            let mut s = broadcast(&a[..a.len() - 2], &b[..b.len() - 2])?;
            s.extend([a[a.len() - 2], b[b.len() - 1]]);
            count(&s)?;
            Some(s)
        }
        Call::Reshape(s) => (count(s)? == count(a)?).then(|| s.clone()),
        Call::Permute(p) => {
            let ok = p.len() == a.len() && valid_axes(p);
            ok.then(|| p.iter().map(|&d| a[d]).collect())
        }
        Call::Transpose(x, y) => {
            if *x >= a.len() || *y >= a.len() {
                return None;
            }
            let mut s = a.to_vec();
            s.swap(*x, *y);
            Some(s)
        }
        Call::Svd => {
            if a.len() != 2 {
                return None;
            }
            Some(vec![a[0], a[0].min(a[1])])
        }
    }
}

fn random_call(rng: &mut Rng, a: &[usize]) -> Call {
    let pick = |rng: &mut Rng, l: &[&'static str]| l[(rng.next_u64() % l.len() as u64) as usize];
    let axis = |rng: &mut Rng| (rng.next_u64() % (a.len() as u64 + 2)) as usize;
    match rng.next_u64() % 9 {
        0 => Call::Unary(pick(
            rng,
            &["exp", "log", "sqrt", "gelu", "sin", "relu", "tanh"],
        )),
        1 => Call::Binary(pick(rng, &["add", "sub", "mul", "div", "pow", "maximum"])),
        2 => {
            let n = rng.next_u64() % 4;
            let axes = (0..n).map(|_| axis(rng)).collect();
            Call::Reduce(
                pick(rng, &["sum", "mean", "max", "min"]),
                axes,
                rng.next_u64() & 1 == 0,
            )
        }
        3 => Call::Softmax(axis(rng), rng.next_u64() & 1 == 0),
        4 => Call::MatMul,
        5 => {
            // Often the right count in another arrangement, sometimes not, sometimes overflowing.
            let mut s: Vec<usize> = a.iter().rev().copied().collect();
            match rng.next_u64() % 4 {
                0 => s.push(2),
                1 => s = vec![count(a).unwrap_or(0)],
                2 => s = vec![usize::MAX, usize::MAX, 3],
                _ => {}
            }
            Call::Reshape(s)
        }
        6 => {
            let mut p: Vec<usize> = (0..a.len()).rev().collect();
            if rng.next_u64() % 3 == 0 {
                p.push(0);
            } else if rng.next_u64() % 3 == 0 && !p.is_empty() {
                p[0] = a.len();
            }
            Call::Permute(p)
        }
        7 => Call::Transpose(axis(rng), axis(rng)),
        _ => Call::Svd,
    }
}

fn apply(call: &Call, a: &Tensor, b: &Tensor) -> tmath::Result<Tensor> {
    match call {
        Call::Unary(op) => super::precision::unary_op(op)(a),
        Call::Binary(op) => super::precision::binary_op(op)(a, b),
        Call::Reduce(op, axes, keep) => match *op {
            "sum" => a.sum(axes, *keep),
            "mean" => a.mean(axes, *keep),
            "max" => a.max(axes, *keep),
            _ => a.min(axes, *keep),
        },
        Call::Softmax(axis, log) => {
            if *log {
                a.log_softmax(*axis)
            } else {
                a.softmax(*axis)
            }
        }
        Call::MatMul => a.matmul(b),
        Call::Reshape(s) => a.reshape(s),
        Call::Permute(p) => a.permute(p),
        Call::Transpose(x, y) => a.transpose(*x, *y),
        Call::Svd => a.svd().map(|(u, _, _)| u),
    }
}

fn name(call: &Call) -> &'static str {
    match call {
        Call::Unary(op) | Call::Binary(op) | Call::Reduce(op, _, _) => op,
        Call::Softmax(_, true) => "log_softmax",
        Call::Softmax(_, false) => "softmax",
        Call::MatMul => "matmul",
        Call::Reshape(_) => "reshape",
        Call::Permute(_) => "permute",
        Call::Transpose(..) => "transpose",
        Call::Svd => "svd",
    }
}

/// The call as a fuzz graph, so its values are checked against the same f64 reference.
fn as_graph(call: &Call, sa: &[usize], sb: &[usize], seeds: (u64, u64)) -> Option<Graph> {
    let a = Node::Input {
        shape: sa.to_vec(),
        seed: seeds.0,
    };
    let b = Node::Input {
        shape: sb.to_vec(),
        seed: seeds.1,
    };
    let node = match call {
        Call::Unary(op) => Node::Unary(op, 0),
        Call::Binary(op) => Node::Binary(op, 0, 1),
        Call::Reduce(op, axes, keep) => {
            let mut axes = axes.clone();
            axes.sort_unstable();
            Node::Reduce(op, 0, axes, *keep)
        }
        Call::Softmax(axis, log) => Node::Softmax(0, *axis, *log),
        Call::MatMul => Node::MatMul(0, 1),
        Call::Reshape(s) => Node::Reshape(0, s.clone()),
        Call::Permute(p) => Node::Permute(0, p.clone()),
        Call::Transpose(x, y) => {
            let mut p: Vec<usize> = (0..sa.len()).collect();
            p.swap(*x, *y);
            Node::Permute(0, p)
        }
        Call::Svd => return None,
    };
    Some(Graph {
        nodes: vec![a, b, node],
        outputs: vec![2],
    })
}

pub async fn invalid_calls_are_errors(dev: &Device) {
    let mut rng = Rng::new(4242);
    let (mut errors, mut values) = (0, 0);
    for trial in 0..CALLS {
        // Operands: small shapes with zero and one dims; now and then an overflowing or a huge
        // shape (lazy, so making it is fine), or a length that does not match.
        let sa = shape(&mut rng);
        let sb = if rng.next_u64() % 2 == 0 {
            sa.clone()
        } else {
            shape(&mut rng)
        };
        match rng.next_u64() % 12 {
            0 => {
                let s = overflowing(&mut rng);
                let e = Tensor::randn(&s, 1, dev).expect_err("an overflowing randn is an error");
                assert!(matches!(e, Error::TooLarge { op: "randn", .. }), "{e:?}");
                let e = Tensor::from_vec(vec![1.0, 2.0], &s, dev).expect_err("from_vec");
                assert!(matches!(e, Error::TooLarge { op: "from_vec", .. }), "{e:?}");
                let e = Tensor::full(&s, 1.0, dev).expect_err("full");
                assert!(e.to_string().starts_with("full"), "{e}");
                errors += 3;
                continue;
            }
            1 => {
                let n = count(&sa).unwrap();
                let got = Tensor::from_vec(vec![0.5; n + 1], &sa, dev);
                assert!(
                    matches!(got, Err(Error::Length { op: "from_vec", .. })),
                    "{got:?}"
                );
                errors += 1;
                continue;
            }
            2 => {
                if let Some(h) = huge() {
                    // Made lazily; evaluating it (or anything of it) is a TooLarge error, checked
                    // before anything is allocated.
                    let t = Tensor::randn(&h, 3, dev).unwrap();
                    let call = random_call(&mut rng, &h);
                    let small = Tensor::randn(&sb, 4, dev).unwrap();
                    if let Ok(r) = apply(&call, &t, &small) {
                        let e = r.to_vec_async().await.expect_err("beyond memory");
                        assert!(
                            matches!(e, Error::TooLarge { .. }),
                            "{}: {e:?}",
                            name(&call)
                        );
                    }
                    let e = Tensor::full(&h, 1.0, dev).expect_err("full beyond memory");
                    assert!(matches!(e, Error::TooLarge { op: "full", .. }), "{e:?}");
                    errors += 2;
                }
                continue;
            }
            _ => {}
        }
        let call = random_call(&mut rng, &sa);
        let seeds = (
            SPECIAL_SEEDS + trial as u64 * 2,
            SPECIAL_SEEDS + trial as u64 * 2 + 1,
        );
        let a = Tensor::from_vec(fuzz::input_data(&sa, seeds.0), &sa, dev).unwrap();
        let b = Tensor::from_vec(fuzz::input_data(&sb, seeds.1), &sb, dev).unwrap();
        let want = model(&call, &sa, &sb);
        let what = format!("{} of {sa:?} (and {sb:?})", name(&call));
        match (apply(&call, &a, &b), want) {
            (Err(e), None) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with(name(&call)) || msg.contains(name(&call)),
                    "{what}: the error does not name the op: {msg}"
                );
                errors += 1;
            }
            (Err(e), Some(s)) => panic!("{what}: valid (result {s:?}) but got {e}"),
            (Ok(t), None) => panic!("{what}: invalid but got {t:?}"),
            (Ok(t), Some(s)) => {
                assert_eq!(t.shape(), &s[..], "{what}: shape");
                values += 1;
                match as_graph(&call, &sa, &sb, seeds) {
                    Some(g) => {
                        for mode in [JitMode::On, JitMode::Off] {
                            if let Err(e) = fuzz::check(&g, dev, mode).await {
                                panic!("{what}: {e}\n{}", g.text());
                            }
                        }
                    }
                    None => {
                        // SVD of data with NaN/inf: a Numerical error naming svd, or values.
                        match t.to_vec_async().await {
                            Ok(v) => assert_eq!(v.len(), s.iter().product::<usize>()),
                            Err(e) => assert!(e.to_string().contains("svd"), "{what}: {e}"),
                        }
                    }
                }
            }
        }
    }
    assert!(
        errors > CALLS / 4 && values > CALLS / 4,
        "{errors} errors, {values} values"
    );
    // The device still works, and right.
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2], dev).unwrap();
    let y = x.matmul(&x).unwrap().sum(&[1], false).unwrap();
    assert_eq!(read(&y, &[2]).await, vec![17.0, 37.0]);
}

/// The reproductions from the reliability issue, one by one: element counts that overflow
/// `usize` are errors where the shape is given (never a wrapped count), and tensors beyond
/// memory fail with `TooLarge` when evaluated (never a panic or an abort).
pub async fn sizes_beyond_limits(dev: &Device) {
    let h = 1usize << (usize::BITS / 2);
    let too_large = |r: tmath::Result<Tensor>, op: &str| match r {
        Err(Error::TooLarge { op: o, message }) => {
            assert_eq!(o, op, "{message}");
            assert!(
                message.contains("element") || message.contains("bytes"),
                "{message}"
            );
        }
        other => panic!("{op}: want TooLarge, got {other:?}"),
    };
    too_large(
        Tensor::from_vec(vec![1.0, 2.0], &[usize::MAX / 2 + 2, 2], dev),
        "from_vec",
    );
    too_large(Tensor::from_vec(vec![], &[h, h], dev), "from_vec");
    too_large(Tensor::randn(&[h, h], 1, dev), "randn");
    too_large(Tensor::randn(&[usize::MAX, 2], 1, dev), "randn");
    too_large(Tensor::full(&[usize::MAX, 2], 0.0, dev), "full");
    let x = Tensor::randn(&[2, 3], 1, dev).unwrap();
    too_large(x.reshape(&[usize::MAX, usize::MAX, 6]), "reshape");
    // Broadcasting and matmul whose results would overflow.
    let col = Tensor::randn(&[h, 1], 1, dev).unwrap();
    let row = Tensor::randn(&[1, h], 2, dev).unwrap();
    too_large(col.add(&row), "add");
    too_large(col.matmul(&row), "matmul");
    if let Some(big) = huge() {
        let t = Tensor::randn(&big, 1, dev).unwrap();
        for r in [
            t.to_vec_async().await,
            t.sum(&[0, 1], false).unwrap().to_vec_async().await,
        ] {
            assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
        }
        too_large(Tensor::full(&big, 1.0, dev), "full");
    }
    // Nothing is lost: what was computed before still reads, and the device evaluates.
    let before = x.to_vec_async().await.unwrap();
    assert_eq!(before.len(), 6);
    let y = x.exp().unwrap().sum(&[0, 1], false).unwrap();
    let want: f64 = before.iter().map(|&v| (v as f64).exp()).sum();
    assert_close("after errors", &read(&y, &[]).await, &[want], 1e-5, 1e-5);
}
