//! The benchmark's cases: the original engine's table, softmax, fusion, epilogue, size sweeps
//! and generic vs specialized kernels, each with its inputs, graph, modes and tolerance.

use tmath::{Device, Tensor};

pub(crate) type Inputs = Box<dyn Fn(&Device) -> tmath::Result<Vec<Tensor>>>;
pub(crate) type Graph = Box<dyn Fn(&[Tensor]) -> tmath::Result<Vec<Tensor>>>;

/// One benchmark. Inputs are made and uploaded before timing; the timed part builds the graph,
/// evaluates it and waits for the device.
pub(crate) struct Case {
    pub section: &'static str,
    pub op: String,
    pub shape: Vec<usize>,
    /// Useful floating-point operations (for GFLOP/s), 0 if not meaningful.
    pub flops: f64,
    /// Bytes that must move (inputs read + output written), for GB/s; 0 if not meaningful.
    pub bytes: f64,
    pub modes: &'static [&'static str],
    /// Largest acceptable |error| against the CPU device, relative to max(1, max |reference|).
    pub tol: f64,
    /// Whether the CPU reference is affordable.
    pub check: bool,
    pub inputs: Inputs,
    pub graph: Graph,
}

const TABLE: &[&str] = &["off", "cold", "cached"];
const CACHED: &[&str] = &["cached"];
/// Specialized kernels (sizes as literals) against generic ones (sizes from metadata), both
/// cached: what one pipeline per structure costs at run time (wgpu only).
const VARIANTS: &[&str] = &["cached", "generic"];

pub(crate) fn cases(quick: bool) -> Vec<Case> {
    let (mm, svd, el) = if quick {
        (256, 64, 256)
    } else {
        (1024, 512, 1024)
    };
    let e = (el * el) as f64;
    let randn = |shape: Vec<usize>, seed: u64| -> Inputs {
        Box::new(move |d| Ok(vec![Tensor::randn(&shape, seed, d)?]))
    };
    let mut v = vec![
        Case {
            section: "table",
            op: "matmul".into(),
            shape: vec![mm, mm],
            flops: 2.0 * (mm as f64).powi(3),
            bytes: 0.0,
            modes: TABLE,
            tol: 1e-3,
            check: true,
            inputs: Box::new(move |d| {
                Ok(vec![
                    Tensor::randn(&[mm, mm], 1, d)?,
                    Tensor::randn(&[mm, mm], 2, d)?,
                ])
            }),
            graph: Box::new(|x| Ok(vec![x[0].matmul(&x[1])?])),
        },
        Case {
            section: "table",
            op: "svd".into(),
            shape: vec![svd, svd],
            flops: 0.0,
            bytes: 0.0,
            modes: TABLE,
            tol: 1e-3,
            check: true,
            inputs: randn(vec![svd, svd], 3),
            graph: Box::new(|x| {
                let (_, s, _) = x[0].svd()?;
                Ok(vec![s])
            }),
        },
        Case {
            section: "table",
            op: "gelu".into(),
            shape: vec![el, el],
            flops: 0.0,
            bytes: 8.0 * e,
            modes: TABLE,
            tol: 1e-5,
            check: true,
            inputs: randn(vec![el, el], 4),
            graph: Box::new(|x| Ok(vec![x[0].gelu()?])),
        },
        Case {
            section: "table",
            op: "softmax (last axis)".into(),
            shape: vec![el, el],
            flops: 0.0,
            bytes: 8.0 * e,
            modes: TABLE,
            tol: 1e-5,
            check: true,
            inputs: randn(vec![el, el], 5),
            graph: Box::new(|x| Ok(vec![x[0].softmax(1)?])),
        },
        Case {
            section: "table",
            op: "8-op elementwise chain".into(),
            shape: vec![el, el],
            flops: 0.0,
            bytes: 8.0 * e,
            modes: TABLE,
            tol: 1e-5,
            check: true,
            inputs: Box::new(move |d| {
                Ok(vec![
                    Tensor::randn(&[el, el], 6, d)?,
                    Tensor::scalar(0.5, d)?,
                ])
            }),
            graph: Box::new(|x| {
                let c = &x[1];
                Ok(vec![x[0]
                    .mul(c)?
                    .add(c)?
                    .tanh()?
                    .abs()?
                    .sqrt()?
                    .neg()?
                    .exp()?
                    .sigmoid()?])
            }),
        },
        Case {
            section: "table",
            op: "matmul + bias + gelu".into(),
            shape: vec![mm, mm],
            flops: 2.0 * (mm as f64).powi(3),
            bytes: 0.0,
            modes: TABLE,
            tol: 1e-3,
            check: true,
            inputs: Box::new(move |d| {
                Ok(vec![
                    Tensor::randn(&[mm, mm], 7, d)?,
                    Tensor::randn(&[mm, mm], 8, d)?,
                    Tensor::randn(&[mm], 9, d)?,
                ])
            }),
            graph: Box::new(|x| Ok(vec![x[0].matmul(&x[1])?.add(&x[2])?.gelu()?])),
        },
    ];
    v.extend(training(quick));
    let mm_sizes: &[usize] = if quick {
        &[64, 128, 256]
    } else {
        &[64, 128, 256, 512, 1024, 2048, 4096]
    };
    for &n in mm_sizes {
        v.push(Case {
            section: "matmul sweep",
            op: "matmul".into(),
            shape: vec![n, n],
            flops: 2.0 * (n as f64).powi(3),
            bytes: 0.0,
            modes: CACHED,
            tol: 1e-3,
            check: n <= 2048,
            inputs: Box::new(move |d| {
                Ok(vec![
                    Tensor::randn(&[n, n], 10, d)?,
                    Tensor::randn(&[n, n], 11, d)?,
                ])
            }),
            graph: Box::new(|x| Ok(vec![x[0].matmul(&x[1])?])),
        });
    }
    let el_sizes: &[usize] = if quick {
        &[1 << 10, 1 << 14, 1 << 18]
    } else {
        &[1 << 10, 1 << 14, 1 << 18, 1 << 22, 1 << 26]
    };
    for &n in el_sizes {
        v.push(Case {
            section: "elementwise sweep",
            op: "gelu".into(),
            shape: vec![n],
            flops: 0.0,
            bytes: 8.0 * n as f64,
            modes: CACHED,
            tol: 1e-5,
            check: n <= 1 << 22,
            inputs: randn(vec![n], 12),
            graph: Box::new(|x| Ok(vec![x[0].gelu()?])),
        });
        // torch_anchors.py's chain8 (its torch.compile row is the peer): one fused kernel.
        v.push(Case {
            section: "elementwise sweep",
            op: "8-op chain exp(2·tanh(√|1.5x + 0.25| − 0.5))".into(),
            shape: vec![n],
            flops: 0.0,
            bytes: 8.0 * n as f64,
            modes: CACHED,
            tol: 1e-5,
            check: n <= 1 << 22,
            inputs: Box::new(move |d| {
                let mut v = vec![Tensor::randn(&[n], 18, d)?];
                for c in [1.5, 0.25, 0.5, 2.0] {
                    v.push(Tensor::scalar(c, d)?);
                }
                Ok(v)
            }),
            graph: Box::new(|x| {
                Ok(vec![x[0]
                    .mul(&x[1])?
                    .add(&x[2])?
                    .abs()?
                    .sqrt()?
                    .sub(&x[3])?
                    .tanh()?
                    .mul(&x[4])?
                    .exp()?])
            }),
        });
        let rows = (n / 1024).max(1);
        v.push(Case {
            section: "softmax sweep",
            op: "softmax".into(),
            shape: vec![rows, 1024],
            flops: 0.0,
            bytes: 8.0 * (rows * 1024) as f64,
            modes: CACHED,
            tol: 1e-5,
            check: n <= 1 << 22,
            inputs: randn(vec![rows, 1024], 13),
            graph: Box::new(|x| Ok(vec![x[0].softmax(1)?])),
        });
    }
    // Generic vs specialized kernels: elementwise, softmax, matmul.
    let (g_small, g_large, g_sm, g_mm) = if quick {
        (1 << 12, 1 << 18, 256, 256)
    } else {
        (1 << 20, 1 << 26, 4096, 1024)
    };
    for n in [g_small, g_large] {
        v.push(Case {
            section: "generic kernels",
            op: "gelu".into(),
            shape: vec![n],
            flops: 0.0,
            bytes: 8.0 * n as f64,
            modes: VARIANTS,
            tol: 1e-5,
            check: n <= 1 << 22,
            inputs: randn(vec![n], 14),
            graph: Box::new(|x| Ok(vec![x[0].gelu()?])),
        });
    }
    v.push(Case {
        section: "generic kernels",
        op: "softmax".into(),
        shape: vec![g_sm, g_sm],
        flops: 0.0,
        bytes: 8.0 * (g_sm * g_sm) as f64,
        modes: VARIANTS,
        tol: 1e-5,
        check: true,
        inputs: randn(vec![g_sm, g_sm], 15),
        graph: Box::new(|x| Ok(vec![x[0].softmax(1)?])),
    });
    v.push(Case {
        section: "generic kernels",
        op: "matmul".into(),
        shape: vec![g_mm, g_mm],
        flops: 2.0 * (g_mm as f64).powi(3),
        bytes: 0.0,
        modes: VARIANTS,
        tol: 1e-3,
        check: true,
        inputs: Box::new(move |d| {
            Ok(vec![
                Tensor::randn(&[g_mm, g_mm], 16, d)?,
                Tensor::randn(&[g_mm, g_mm], 17, d)?,
            ])
        }),
        graph: Box::new(|x| Ok(vec![x[0].matmul(&x[1])?])),
    });
    v
}

/// One training step of a 2-layer MLP `I → H → O` (GELU, softmax cross-entropy, SGD), batch
/// `B`, as one graph: forward only (the loss), and forward + backward + update (the loss and
/// the four updated parameters). The same model as `../shared/anchors/torch_mlp.py`.
fn training(quick: bool) -> Vec<Case> {
    let (b, i, h, o) = if quick {
        (64, 128, 512, 128)
    } else {
        (256, 1024, 4096, 1024)
    };
    let fwd_flops = 2.0 * b as f64 * (i * h + h * o) as f64;
    let inputs = move |d: &Device| -> tmath::Result<Vec<Tensor>> {
        let labels: Vec<f32> = (0..b * o)
            .map(|k| if k % o == (k / o * 37) % o { 1.0 } else { 0.0 })
            .collect();
        Ok(vec![
            Tensor::randn(&[b, i], 20, d)?,
            Tensor::from_vec(labels, &[b, o], d)?,
            Tensor::randn(&[i, h], 21, d)?.mul(&Tensor::scalar(1.0 / (i as f32).sqrt(), d)?)?,
            Tensor::full(&[h], 0.0, d)?,
            Tensor::randn(&[h, o], 22, d)?.mul(&Tensor::scalar(1.0 / (h as f32).sqrt(), d)?)?,
            Tensor::full(&[o], 0.0, d)?,
        ])
    };
    fn loss(x: &[Tensor]) -> tmath::Result<Tensor> {
        let d = x[0].device();
        let n = x[0].shape()[0] as f32;
        let logits = x[0]
            .matmul(&x[2])?
            .add(&x[3])?
            .gelu()?
            .matmul(&x[4])?
            .add(&x[5])?;
        logits
            .log_softmax(1)?
            .mul(&x[1])?
            .sum(&[0, 1], false)?
            .mul(&Tensor::scalar(-1.0 / n, &d)?)
    }
    let shape = vec![b, i, h, o];
    vec![
        Case {
            section: "training",
            op: "MLP forward (loss)".into(),
            shape: shape.clone(),
            flops: fwd_flops,
            bytes: 0.0,
            modes: TABLE,
            tol: 1e-3,
            check: true,
            inputs: Box::new(inputs),
            graph: Box::new(|x| Ok(vec![loss(x)?])),
        },
        Case {
            section: "training",
            op: "MLP training step (forward + backward + SGD)".into(),
            shape,
            flops: 3.0 * fwd_flops,
            bytes: 0.0,
            modes: TABLE,
            tol: 1e-3,
            check: true,
            inputs: Box::new(inputs),
            graph: Box::new(|x| {
                let l = loss(x)?;
                let params = [&x[2], &x[3], &x[4], &x[5]];
                let g = l.grad(&params)?;
                let lr = Tensor::scalar(0.01, &x[0].device())?;
                let mut outs = vec![l];
                for (p, g) in params.iter().zip(&g) {
                    outs.push(p.sub(&g.mul(&lr)?)?);
                }
                Ok(outs)
            }),
        },
    ]
}
