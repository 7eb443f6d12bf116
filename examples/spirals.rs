//! Trains a 2-layer MLP (2 → 64 → 2, tanh) on the two-spirals set with Adam, written with the
//! library's own ops. Each training step — forward, backward (`loss.grad`) and the Adam update
//! of every parameter — is one graph, evaluated with one `tmath::eval`; the updated parameters
//! are detached so the next step starts from their values alone.
//!
//! `cargo run --release --example spirals -- [cpu|wgpu|best] [epochs]`

use std::time::Instant;
use tmath::{Device, Tensor};

/// Two interleaved spirals, `n` points each, with a little noise: inputs `[2n, 2]`, one-hot
/// labels `[2n, 2]`, and the class of each point.
fn two_spirals(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
    let mut state = seed;
    let mut noise = move || {
        // splitmix64 → uniform in [-1, 1)
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 52) as f32 - 1.0
    };
    let (mut x, mut y, mut class) = (vec![], vec![], vec![]);
    for c in 0..2 {
        for i in 0..n {
            let t = i as f32 / n as f32 * 3.0 * std::f32::consts::PI + 0.3;
            let sign = if c == 0 { 1.0 } else { -1.0 };
            let r = t / (3.0 * std::f32::consts::PI);
            x.push(sign * r * t.cos() + 0.02 * noise());
            x.push(sign * r * t.sin() + 0.02 * noise());
            y.extend(if c == 0 { [1.0, 0.0] } else { [0.0, 1.0] });
            class.push(c);
        }
    }
    (x, y, class)
}

/// One Adam-updated parameter with its moment estimates.
struct Param {
    w: Tensor,
    m: Tensor,
    v: Tensor,
}

impl Param {
    fn new(w: Tensor) -> tmath::Result<Param> {
        let zeros = Tensor::full(w.shape(), 0.0, &w.device())?;
        Ok(Param {
            m: zeros.clone(),
            v: zeros,
            w,
        })
    }
}

/// Adam (Kingma & Ba): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `w ← w − lr·m̂/(√v̂ + ε)` with bias-corrected `m̂`, `v̂` (the corrections folded into `lr_t`).
fn adam(p: &Param, g: &Tensor, lr_t: &Tensor, dev: &Device) -> tmath::Result<Param> {
    let s = |v: f32| Tensor::scalar(v, dev);
    let (b1, b2) = (0.9, 0.999);
    let m = p.m.mul(&s(b1)?)?.add(&g.mul(&s(1.0 - b1)?)?)?;
    let v = p.v.mul(&s(b2)?)?.add(&g.mul(g)?.mul(&s(1.0 - b2)?)?)?;
    let step = m.div(&v.sqrt()?.add(&s(1e-8)?)?)?.mul(lr_t)?;
    Ok(Param {
        w: p.w.sub(&step)?,
        m,
        v,
    })
}

fn main() -> tmath::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dev = match args.get(1).map(String::as_str) {
        Some("cpu") => Device::cpu()?,
        Some("wgpu") => Device::wgpu()?,
        None | Some("best") => Device::best()?,
        Some(other) => {
            eprintln!("unknown device {other:?}: expected cpu, wgpu or best");
            std::process::exit(2);
        }
    };
    let epochs: usize = args.get(2).and_then(|e| e.parse().ok()).unwrap_or(100);
    println!("device: {} ({})", dev.backend_name(), dev.adapter_name());

    let n = 200; // points per spiral
    let hidden = 64;
    let batch = 100;
    let (xs, ys, class) = two_spirals(n, 7);
    let rows = 2 * n;
    let x_all = Tensor::from_vec(xs.clone(), &[rows, 2], &dev)?;
    let scale = |t: Tensor, s: f32| t.mul(&Tensor::scalar(s, &dev)?);
    let mut params = vec![
        Param::new(scale(Tensor::randn(&[2, hidden], 1, &dev)?, 1.5)?)?,
        Param::new(Tensor::full(&[hidden], 0.0, &dev)?)?,
        Param::new(scale(Tensor::randn(&[hidden, 2], 2, &dev)?, 0.2)?)?,
        Param::new(Tensor::full(&[2], 0.0, &dev)?)?,
    ];
    let forward = |p: &[Param], x: &Tensor| -> tmath::Result<Tensor> {
        x.matmul(&p[0].w)?
            .add(&p[1].w)?
            .tanh()?
            .matmul(&p[2].w)?
            .add(&p[3].w)
    };

    // A fixed shuffle of the rows into batches.
    let order: Vec<usize> = (0..rows).map(|i| (i * 157) % rows).collect();
    let lr = 0.02f32;
    let mut t = 0i32;
    let started = Instant::now();
    let first_step_ms;
    {
        // Time the first step alone (it compiles the step's kernels).
        let t0 = Instant::now();
        let (bx, by) = batch_of(&xs, &ys, &order[..batch], &dev)?;
        let loss = cross_entropy(&forward(&params, &bx)?, &by, &dev)?;
        tmath::eval(&[&loss])?;
        loss.to_vec()?;
        first_step_ms = t0.elapsed().as_secs_f64() * 1e3;
    }
    for epoch in 0..epochs {
        let mut total = 0.0;
        for chunk in order.chunks(batch) {
            let (bx, by) = batch_of(&xs, &ys, chunk, &dev)?;
            let loss = cross_entropy(&forward(&params, &bx)?, &by, &dev)?;
            let wrt: Vec<&Tensor> = params.iter().map(|p| &p.w).collect();
            let grads = loss.grad(&wrt)?;
            t += 1;
            let lr_t = lr * (1.0 - 0.999f32.powi(t)).sqrt() / (1.0 - 0.9f32.powi(t));
            let lr_t = Tensor::scalar(lr_t, &dev)?;
            let next: Vec<Param> = params
                .iter()
                .zip(&grads)
                .map(|(p, g)| adam(p, g, &lr_t, &dev))
                .collect::<tmath::Result<_>>()?;
            // The whole step as one graph: loss, and every parameter and moment update.
            let mut outs: Vec<&Tensor> = vec![&loss];
            for p in &next {
                outs.extend([&p.w, &p.m, &p.v]);
            }
            tmath::eval(&outs)?;
            params = next
                .iter()
                .map(|p| {
                    Ok(Param {
                        w: p.w.detach()?,
                        m: p.m.detach()?,
                        v: p.v.detach()?,
                    })
                })
                .collect::<tmath::Result<_>>()?;
            total += loss.to_vec()?[0] as f64;
        }
        let steps = rows.div_ceil(batch) as f64;
        if epoch % 5 == 0 || epoch + 1 == epochs {
            println!("epoch {epoch:3}: loss {:.4}", total / steps);
        }
    }
    let logits = forward(&params, &x_all)?.to_vec()?;
    let correct = (0..rows)
        .filter(|&i| (logits[2 * i + 1] > logits[2 * i]) as usize == class[i])
        .count();
    let accuracy = correct as f64 / rows as f64;
    println!(
        "accuracy {:.1}% ({correct}/{rows}) after {epochs} epochs, {t} steps in {:.2} s (first step {first_step_ms:.0} ms); {:?}",
        accuracy * 100.0,
        started.elapsed().as_secs_f64(),
        dev.stats()
    );
    Ok(())
}

/// The rows `idx` of the data set as tensors.
fn batch_of(
    xs: &[f32],
    ys: &[f32],
    idx: &[usize],
    dev: &Device,
) -> tmath::Result<(Tensor, Tensor)> {
    let bx: Vec<f32> = idx
        .iter()
        .flat_map(|&i| [xs[2 * i], xs[2 * i + 1]])
        .collect();
    let by: Vec<f32> = idx
        .iter()
        .flat_map(|&i| [ys[2 * i], ys[2 * i + 1]])
        .collect();
    Ok((
        Tensor::from_vec(bx, &[idx.len(), 2], dev)?,
        Tensor::from_vec(by, &[idx.len(), 2], dev)?,
    ))
}

/// Mean softmax cross-entropy of `logits` against one-hot `labels`.
fn cross_entropy(logits: &Tensor, labels: &Tensor, dev: &Device) -> tmath::Result<Tensor> {
    let n = logits.shape()[0] as f32;
    logits
        .log_softmax(1)?
        .mul(labels)?
        .sum(&[0, 1], false)?
        .mul(&Tensor::scalar(-1.0 / n, dev)?)
}
