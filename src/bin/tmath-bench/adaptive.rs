//! Rows of the adaptive mode (`JitMode::Adaptive`) against `On` and `Off`: the first result at
//! a never-seen batch size of a seen graph, a sweep over many batch sizes, the steady state,
//! and tiny work (against the CPU device too).

use std::time::{Duration, Instant};

use tmath::{Device, JitMode, Tensor};

use crate::{Kind, Row};

/// The section of these rows in the report.
pub(crate) const SECTION: &str = "adaptive";

/// The inputs of [`layer`] at batch size `b`, realized (so timing covers the layer only).
fn inputs(dev: &Device, b: usize, width: usize, seed: u64) -> tmath::Result<Vec<Tensor>> {
    let v = vec![
        Tensor::randn(&[b, width], seed, dev)?,
        Tensor::randn(&[width, width], 1, dev)?,
        Tensor::randn(&[width], 2, dev)?,
        Tensor::randn(&[width, width], 3, dev)?,
        Tensor::randn(&[width], 4, dev)?,
        Tensor::scalar(0.05, dev)?,
    ];
    tmath::eval(&v.iter().collect::<Vec<_>>())?;
    Ok(v)
}

/// A 10-op MLP layer: `-(sum_0 log_softmax(relu(((gelu(x·w1 + b1))·w2 + b2)·s)))`.
fn layer(x: &[Tensor]) -> tmath::Result<Tensor> {
    let [x, w1, b1, w2, b2, s] = x else {
        unreachable!("six inputs")
    };
    let h = x.matmul(w1)?.add(b1)?.gelu()?;
    h.matmul(w2)?
        .add(b2)?
        .mul(s)?
        .relu()?
        .log_softmax(1)?
        .sum(&[0], false)?
        .neg()
}

/// Evaluates and waits; the wall time in ms.
fn timed(dev: &Device, t: &Tensor) -> tmath::Result<f64> {
    let t0 = Instant::now();
    tmath::eval(&[t])?;
    dev.synchronize()?;
    Ok(t0.elapsed().as_secs_f64() * 1e3)
}

fn mode_of(name: &str) -> JitMode {
    match name {
        "off" => JitMode::Off,
        "adaptive" => JitMode::Adaptive,
        _ => JitMode::On,
    }
}

fn row(dev: &Device, op: String, shape: Vec<usize>, mode: &'static str) -> Row {
    Row::bare(SECTION, op, shape, dev, mode)
}

/// Counts compiles on the caller's path and in the background between two snapshots.
fn compiles(row: &mut Row, before: &tmath::Stats, after: &tmath::Stats) {
    let bg = after.background_compiles - before.background_compiles;
    row.compiles = after.compiles - before.compiles - bg;
    row.background_compiles = Some(bg);
}

/// Evaluates `f` until no kernel runs on a generic pipeline any more (the adaptive mode's
/// specialized pipelines have arrived), at most `limit`; a no-op in other modes.
fn settle(dev: &Device, limit: Duration, f: &dyn Fn() -> tmath::Result<()>) -> tmath::Result<()> {
    if dev.jit() != JitMode::Adaptive {
        return Ok(());
    }
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let before = dev.stats().generic_dispatches;
        f()?;
        if dev.stats().generic_dispatches == before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub(crate) fn rows(kind: Kind, quick: bool, reps: usize) -> Vec<Row> {
    let mut rows = vec![];
    let width = if quick { 64 } else { 256 };
    let sweep = if quick { 12 } else { 200 };
    let run = |rows: &mut Vec<Row>, f: &dyn Fn() -> tmath::Result<Row>, what: &str| match f() {
        Ok(r) => rows.push(r),
        Err(e) => eprintln!("  adaptive: {what}: {e}"),
    };
    // 1. The first result at a never-seen batch size of a seen graph.
    for mode in ["on", "adaptive", "off"] {
        run(
            &mut rows,
            &|| {
                let dev = kind.make()?;
                dev.set_jit(mode_of(mode));
                let mut r = row(
                    &dev,
                    format!("mlp layer ({width} wide): first result at a new batch size"),
                    vec![97, width],
                    mode,
                );
                let seen = inputs(&dev, 96, width, 5)?;
                for _ in 0..3 {
                    timed(&dev, &layer(&seen)?)?;
                }
                let new = inputs(&dev, 97, width, 6)?;
                let before = dev.stats();
                r.times.push(timed(&dev, &layer(&new)?)?);
                compiles(&mut r, &before, &dev.stats());
                Ok(r)
            },
            "first result",
        );
    }
    // 2. Many batch sizes, each evaluated once.
    for mode in ["on", "adaptive", "off"] {
        let n = if mode == "off" {
            (sweep / 10).max(3)
        } else {
            sweep
        };
        run(
            &mut rows,
            &|| {
                let dev = kind.make()?;
                dev.set_jit(mode_of(mode));
                let mut r = row(
                    &dev,
                    format!("mlp layer ({width} wide): batch sizes 1..={n}, once each (total)"),
                    vec![n, width],
                    mode,
                );
                let all = (1..=n)
                    .map(|b| inputs(&dev, b, width, b as u64))
                    .collect::<tmath::Result<Vec<_>>>()?;
                dev.synchronize()?;
                let before = dev.stats();
                let t0 = Instant::now();
                for x in &all {
                    tmath::eval(&[&layer(x)?])?;
                }
                dev.synchronize()?;
                r.times.push(t0.elapsed().as_secs_f64() * 1e3);
                compiles(&mut r, &before, &dev.stats());
                Ok(r)
            },
            "sweep",
        );
    }
    // 3. The steady state after warm-up (one batch size, evaluated again and again). Both
    //    devices are measured in alternation, rep by rep, so drift in the host's submit time
    //    (which varies by tens of microseconds between runs) falls on both alike.
    let steady = || -> tmath::Result<Vec<Row>> {
        let modes = ["on", "adaptive"];
        let mut devs = vec![];
        for mode in modes {
            let dev = kind.make()?;
            dev.set_jit(mode_of(mode));
            let x = inputs(&dev, 256, width, 9)?;
            for _ in 0..3 {
                timed(&dev, &layer(&x)?)?;
            }
            settle(&dev, Duration::from_secs(20), &|| {
                timed(&dev, &layer(&x)?).map(|_| ())
            })?;
            let r = row(
                &dev,
                format!("mlp layer ({width} wide): steady state"),
                vec![256, width],
                mode,
            );
            devs.push((dev, x, r));
        }
        let before: Vec<tmath::Stats> = devs.iter().map(|d| d.0.stats()).collect();
        for _ in 0..reps.max(20) {
            for (dev, x, r) in devs.iter_mut() {
                r.times.push(timed(dev, &layer(x)?)?);
            }
        }
        Ok(devs
            .into_iter()
            .zip(before)
            .map(|((dev, _, mut r), b)| {
                compiles(&mut r, &b, &dev.stats());
                r
            })
            .collect())
    };
    match steady() {
        Ok(r) => rows.extend(r),
        Err(e) => eprintln!("  adaptive: steady state: {e}"),
    }
    // 4. Tiny work, against the CPU device.
    type Tiny = (
        &'static str,
        fn(&Device) -> tmath::Result<Vec<Tensor>>,
        fn(&[Tensor]) -> tmath::Result<Tensor>,
    );
    let tiny: [Tiny; 2] = [
        (
            "8×8 add",
            |d| {
                Ok(vec![
                    Tensor::randn(&[8, 8], 1, d)?,
                    Tensor::randn(&[8, 8], 2, d)?,
                ])
            },
            |x| x[0].add(&x[1]),
        ),
        (
            "16-element sum",
            |d| Ok(vec![Tensor::randn(&[16], 3, d)?]),
            |x| x[0].sum(&[0], false),
        ),
    ];
    for (name, make, op) in tiny {
        for (mode, k) in [("on", kind), ("adaptive", kind), ("cpu device", Kind::Cpu)] {
            run(
                &mut rows,
                &|| {
                    let dev = k.make()?;
                    if mode == "adaptive" {
                        dev.set_jit(JitMode::Adaptive);
                    }
                    let mut r = row(&dev, format!("tiny: {name}"), vec![], mode);
                    let x = make(&dev)?;
                    tmath::eval(&x.iter().collect::<Vec<_>>())?;
                    for _ in 0..3 {
                        op(&x)?.to_vec()?;
                    }
                    settle(&dev, Duration::from_secs(20), &|| {
                        op(&x)?.to_vec().map(|_| ())
                    })?;
                    for _ in 0..reps {
                        // The op and its read-back (what a user of tiny work waits for).
                        let t0 = Instant::now();
                        op(&x)?.to_vec()?;
                        r.times.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(r)
                },
                "tiny",
            );
        }
    }
    rows
}
