//! Generic kernels (sizes read from metadata): every kernel kind at many shapes — odd sizes,
//! broadcasting, transposed views, tall and wide — against the CPU device, with exactly one
//! pipeline per kernel structure on wgpu (the specialized kernels compile one per shape).

use super::check::*;
use tmath::{Device, Tensor};

/// A graph family: builds the outputs from inputs made on `dev` from `data` (one slice per
/// input of `input_shapes(p)`), for a size parameter `p`.
struct Family {
    name: &'static str,
    /// Size parameters; each gives different sizes of the same structure.
    params: &'static [[usize; 3]],
    inputs: fn([usize; 3]) -> Vec<Vec<usize>>,
    build: fn(&[Tensor]) -> Vec<Tensor>,
    /// Pipelines the family needs on wgpu, whatever the number of shapes.
    pipelines: u64,
    atol: f64,
    rtol: f64,
}

fn families() -> Vec<Family> {
    vec![
        Family {
            name: "elementwise: (xᵀ · bias + c).gelu() over a transposed view and a broadcast row",
            params: &[
                [3, 5, 0],
                [7, 33, 0],
                [64, 100, 0],
                [1000, 3, 0],
                [17, 17, 0],
                [5, 1024, 0],
            ],
            inputs: |[a, b, _]| vec![vec![b, a], vec![b], vec![]],
            build: |t| {
                let y = t[0].transpose(0, 1).unwrap().mul(&t[1]).unwrap();
                vec![y.add(&t[2]).unwrap().gelu().unwrap()]
            },
            pipelines: 1,
            atol: 1e-5,
            rtol: 1e-5,
        },
        Family {
            name: "reduce: exp(x).sum(1) + c, rows longer than the small-reduce limit",
            params: &[
                [3, 17, 0],
                [10, 100, 0],
                [2, 1000, 0],
                [257, 33, 0],
                [64, 64, 0],
            ],
            inputs: |[a, b, _]| vec![vec![a, b], vec![]],
            build: |t| {
                let s = t[0].exp().unwrap().sum(&[1], false).unwrap();
                vec![s.add(&t[1]).unwrap()]
            },
            pipelines: 1,
            atol: 1e-5,
            rtol: 2e-5,
        },
        Family {
            name: "reduce: mean over axes 0 and 2 of a 3-D tensor",
            params: &[[4, 4, 5], [7, 2, 9], [20, 13, 3], [2, 50, 11], [9, 9, 9]],
            inputs: |[a, b, c]| vec![vec![a, b, c]],
            build: |t| vec![t[0].mean(&[0, 2], false).unwrap()],
            pipelines: 1,
            atol: 1e-6,
            rtol: 1e-5,
        },
        Family {
            name: "softmax along the last axis and log-softmax along the first",
            params: &[
                [3, 5, 0],
                [8, 100, 0],
                [33, 7, 0],
                [2, 1000, 0],
                [100, 2, 0],
            ],
            inputs: |[a, b, _]| vec![vec![a, b]],
            build: |t| vec![t[0].softmax(1).unwrap(), t[0].log_softmax(0).unwrap()],
            pipelines: 2,
            atol: 1e-6,
            rtol: 1e-5,
        },
        Family {
            name: "matmul + bias + relu, and a batched matmul with a broadcast operand",
            params: &[
                [3, 5, 7],
                [33, 17, 65],
                [100, 200, 50],
                [64, 64, 64],
                [9, 1, 130],
            ],
            inputs: |[m, k, n]| vec![vec![m, k], vec![k, n], vec![n], vec![3, m, k]],
            build: |t| {
                let y = t[0]
                    .matmul(&t[1])
                    .unwrap()
                    .add(&t[2])
                    .unwrap()
                    .relu()
                    .unwrap();
                vec![y, t[3].matmul(&t[1]).unwrap()]
            },
            pipelines: 2,
            atol: 1e-4,
            rtol: 1e-4,
        },
    ]
}

/// Runs `f` at each of its shapes against the CPU device; returns every output read back.
async fn run_family(dev: &Device, cpu: &Device, f: &Family, seed: u64) -> Vec<Vec<f32>> {
    let wgpu = dev.backend_name() == "wgpu";
    let before = dev.stats().compiles;
    let mut outputs = vec![];
    for (i, &p) in f.params.iter().enumerate() {
        let shapes = (f.inputs)(p);
        let data: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(j, s)| Rng::new(seed + 16 * i as u64 + j as u64).vec(numel(s), -2.0, 2.0))
            .collect();
        let make = |d: &Device| -> Vec<Tensor> {
            data.iter()
                .zip(&shapes)
                .map(|(v, s)| Tensor::from_vec(v.clone(), s, d).unwrap())
                .collect()
        };
        let got = (f.build)(&make(dev));
        let want = (f.build)(&make(cpu));
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let g = read(g, w.shape()).await;
            let w = read(w, w.shape()).await;
            assert_close(
                &format!("{} at {p:?}, output {k}", f.name),
                &g,
                &to_f64(&w),
                f.atol,
                f.rtol,
            );
            outputs.push(g);
        }
    }
    if wgpu {
        assert_eq!(
            dev.stats().compiles - before,
            f.pipelines,
            "{}: {} shapes must share {} generic pipeline(s)",
            f.name,
            f.params.len(),
            f.pipelines
        );
    }
    outputs
}

/// SVD stages generic: tall, wide and square matrices of different sizes share the six
/// stage pipelines; U·diag(S)·Vᵀ reconstructs the input and S matches the CPU device.
async fn svd_generic(dev: &Device, cpu: &Device) {
    let wgpu = dev.backend_name() == "wgpu";
    let before = dev.stats().compiles;
    let shapes = [[8, 5], [20, 13], [6, 6], [50, 40], [9, 30]];
    for (i, &[m, n]) in shapes.iter().enumerate() {
        let (a, data) = rand_tensor(dev, &[m, n], 900 + i as u64, -1.0, 1.0);
        let k = m.min(n);
        let (u, s, vt) = a.svd().unwrap();
        let (u, s, vt) = (
            read(&u, &[m, k]).await,
            read(&s, &[k]).await,
            read(&vt, &[k, n]).await,
        );
        let ac = Tensor::from_vec(data.clone(), &[m, n], cpu).unwrap();
        let want_s = read(&ac.svd().unwrap().1, &[k]).await;
        assert_close(
            &format!("svd S at {m}×{n}"),
            &s,
            &to_f64(&want_s),
            1e-5,
            1e-4,
        );
        let mut rec = vec![0f64; m * n];
        for r in 0..m {
            for c in 0..n {
                rec[r * n + c] = (0..k)
                    .map(|j| u[r * k + j] as f64 * s[j] as f64 * vt[j * n + c] as f64)
                    .sum();
            }
        }
        assert_close(&format!("svd U·S·Vᵀ at {m}×{n}"), &data, &rec, 1e-4, 1e-4);
    }
    if wgpu {
        assert_eq!(
            dev.stats().compiles - before,
            6,
            "{} SVD shapes must share the six generic stage pipelines",
            shapes.len()
        );
    }
}

/// Every kernel kind rendered generic, each at ≥ 5 shapes, one pipeline per structure.
pub async fn generic_kernels(dev: &Device) {
    let cpu = Device::cpu().unwrap();
    let fresh = super::fresh_device(dev).await;
    let dev = &fresh;
    tmath::debug::set_generic_kernels(dev, true);
    let mut generic = vec![];
    for (i, f) in families().iter().enumerate() {
        generic.push(run_family(dev, &cpu, f, 500 + 100 * i as u64).await);
    }
    svd_generic(dev, &cpu).await;
    // Back to specialized: a seen shape of a seen structure now compiles its own pipeline.
    tmath::debug::set_generic_kernels(dev, false);
    if dev.backend_name() == "wgpu" {
        // Softmax's reductions add in the same order in both variants (its specialized kernel
        // shares a short row among fewer threads): bit-identical results.
        let (i, f) = families()
            .into_iter()
            .enumerate()
            .find(|(_, f)| f.name.starts_with("softmax"))
            .unwrap();
        let specialized = Family {
            pipelines: 2 * f.params.len() as u64,
            ..f
        };
        let got = run_family(dev, &cpu, &specialized, 500 + 100 * i as u64).await;
        for (k, (s, g)) in got.iter().zip(&generic[i]).enumerate() {
            let differ = s
                .iter()
                .zip(g)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differ, 0,
                "softmax output {k}: specialized and generic kernels differ in {differ} values"
            );
        }
        let f = &families()[0];
        let before = dev.stats().compiles;
        run_family_specialized(dev, &cpu, f).await;
        assert!(
            dev.stats().compiles - before >= 2,
            "specialized kernels compile per shape"
        );
    }
}

async fn run_family_specialized(dev: &Device, cpu: &Device, f: &Family) {
    // Two shapes of the elementwise family, specialized: each is its own pipeline.
    let g = Family {
        params: &f.params[..2],
        pipelines: 2,
        ..families().remove(0)
    };
    run_family(dev, cpu, &g, 7).await;
}
