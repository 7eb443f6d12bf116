//! The JIT: results equal with it off, fused shapes, the pipeline cache, fusion counts.

#![allow(unused_imports)]

use super::check::*;
use super::fresh_device;
use tmath::{Device, Error, JitMode, Tensor};

pub async fn jit_mode_keeps_results(dev: &Device) {
    let (a, _) = rand_tensor(dev, &[24, 40], 8, -2.0, 2.0);
    let (b, _) = rand_tensor(dev, &[40], 9, -2.0, 2.0);
    let graph = |a: &Tensor| {
        a.add(&b)
            .unwrap()
            .gelu()
            .unwrap()
            .mul(a)
            .unwrap()
            .softmax(1)
            .unwrap()
            .sum(&[0], false)
            .unwrap()
    };
    // The device's mode (On, or Adaptive when the suite runs in it), then off, then back.
    let mode = dev.jit();
    assert!(matches!(mode, JitMode::On | JitMode::Adaptive), "{mode:?}");
    let on = read(&graph(&a), &[40]).await;
    dev.set_jit(JitMode::Off);
    let off = read(&graph(&a), &[40]).await;
    dev.set_jit(mode);
    assert_close("jit on vs off", &on, &to_f64(&off), 1e-5, 1e-5);
}

pub async fn elementwise_chain_fused_shapes(dev: &Device) {
    // A chain over several shapes with broadcasts, views and shared inputs: the kind of graph the
    // GPU backend fuses into few kernels.
    let (x, dx) = rand_tensor(dev, &[17, 23], 10, -3.0, 3.0);
    let (r, dr) = rand_tensor(dev, &[23], 11, 0.5, 1.5);
    let (c, dc) = rand_tensor(dev, &[17, 1], 12, -1.0, 1.0);
    let y = x
        .mul(&r)
        .unwrap()
        .add(&c)
        .unwrap()
        .tanh()
        .unwrap()
        .mul(&x)
        .unwrap()
        .sub(&x.abs().unwrap())
        .unwrap()
        .sigmoid()
        .unwrap();
    let z = y
        .transpose(0, 1)
        .unwrap()
        .exp()
        .unwrap()
        .add(&r.reshape(&[23, 1]).unwrap())
        .unwrap();
    let got = read(&z, &[23, 17]).await;
    let mut want = vec![0f64; 23 * 17];
    for i in 0..17 {
        for j in 0..23 {
            let xv = dx[i * 23 + j] as f64;
            let t = (xv * dr[j] as f64 + dc[i] as f64).tanh() * xv - xv.abs();
            let s = 1.0 / (1.0 + (-t).exp());
            want[j * 17 + i] = s.exp() + dr[j] as f64;
        }
    }
    assert_close("chain", &got, &want, 1e-5, 1e-5);
}

/// With `JitMode::On` a second evaluation of the same graph with other data compiles nothing;
/// a new shape compiles. The CPU device never compiles.
pub async fn jit_caches_pipelines(dev: &Device) {
    let gpu = dev.backend_name() != "cpu";
    let run = |m: usize, seed: u64| {
        let dev = dev.clone();
        async move {
            let (a, _) = rand_tensor(&dev, &[m, 24], seed, -1.0, 1.0);
            let (w, _) = rand_tensor(&dev, &[24, 16], seed + 1, -1.0, 1.0);
            let (b, _) = rand_tensor(&dev, &[16], seed + 2, -1.0, 1.0);
            let y = a.matmul(&w).unwrap().add(&b).unwrap().gelu().unwrap();
            let p = y
                .softmax(1)
                .unwrap()
                .mul(&y)
                .unwrap()
                .sum(&[0], false)
                .unwrap();
            read(&p, &[16]).await
        }
    };
    let s0 = dev.stats();
    let first = run(20, 1).await;
    let s1 = dev.stats();
    let second = run(20, 11).await;
    let s2 = dev.stats();
    assert_ne!(first, second, "new data must give new results");
    assert_eq!(
        s2.compiles - s2.background_compiles,
        s1.compiles - s1.background_compiles,
        "same graph, same shapes: nothing may compile (on the caller's path)"
    );
    if gpu {
        assert!(s1.compiles > s0.compiles, "the first evaluation compiles");
        assert!(
            s2.cache_hits > s1.cache_hits,
            "the second evaluation hits the cache"
        );
        #[cfg(not(target_arch = "wasm32"))]
        assert!(
            s1.compile_time > s0.compile_time,
            "compiling takes measurable time"
        );
    }
    run(21, 3).await;
    let s3 = dev.stats();
    let generic = tmath::debug::generic_kernels(dev) || dev.jit() == JitMode::Adaptive;
    let shapeless = dev.backend_name() == "mlx" && dev.jit() == JitMode::Adaptive;
    if (dev.backend_name() == "wgpu" && generic) || shapeless {
        assert_eq!(
            s3.compiles - s3.background_compiles,
            s2.compiles - s2.background_compiles,
            "a new shape compiles nothing on the caller's path (wgpu: generic kernels; MLX: \
             its shapeless trace)"
        );
    } else if gpu {
        assert!(s3.compiles > s2.compiles, "a new shape compiles");
    } else {
        assert_eq!(s3.compiles, 0, "the CPU device has no pipelines");
    }
}

/// Fusion: an 8-op elementwise chain is one dispatch with the JIT on and at least 8 with it
/// off (each rebuilt on every evaluation); softmax and matmul take their prologue/epilogue.
pub async fn jit_fuses_kernels(dev: &Device) {
    // Kernel counts are ours to check on wgpu only: MLX decides its own kernels, and counts one
    // compiled-function call per evaluation with the JIT on and one op per dispatch with it off.
    let gpu = dev.backend_name() == "wgpu";
    let (x, dx) = rand_tensor(dev, &[64, 48], 5, -1.0, 1.0);
    let c = Tensor::scalar(0.75, dev).unwrap();
    let chain = |x: &Tensor| {
        x.mul(&c)
            .unwrap()
            .add(&c)
            .unwrap()
            .tanh()
            .unwrap()
            .abs()
            .unwrap()
            .sqrt()
            .unwrap()
            .neg()
            .unwrap()
            .exp()
            .unwrap()
            .sigmoid()
            .unwrap()
    };
    let want: Vec<f64> = dx
        .iter()
        .map(|&v| {
            let t = (-(v as f64 * 0.75 + 0.75).tanh().abs().sqrt()).exp();
            1.0 / (1.0 + (-t).exp())
        })
        .collect();
    let dispatches = |f: &dyn Fn() -> Tensor, shape: Vec<usize>| {
        let dev = dev.clone();
        let t = f();
        async move {
            let before = dev.stats();
            let v = read(&t, &shape).await;
            let after = dev.stats();
            (
                v,
                after.dispatches - before.dispatches,
                after.compiles - before.compiles,
            )
        }
    };
    let (on, n_on, _) = dispatches(&|| chain(&x), vec![64, 48]).await;
    assert_close("chain (jit on)", &on, &want, 1e-6, 1e-5);
    dev.set_jit(JitMode::Off);
    let (off, n_off, c_off) = dispatches(&|| chain(&x), vec![64, 48]).await;
    let (_, _, c_off2) = dispatches(&|| chain(&x), vec![64, 48]).await;
    dev.set_jit(JitMode::On);
    assert_close("chain (jit off)", &off, &to_f64(&on), 1e-6, 1e-6);
    assert!(n_off >= 8, "JIT off: one dispatch per op, got {n_off}");
    if dev.backend_name() == "mlx" {
        assert_eq!(n_on, 1, "JIT on: one compiled MLX call");
        assert_eq!(
            (c_off, c_off2),
            (0, 0),
            "JIT off: MLX runs eagerly, compiles nothing"
        );
    }
    if gpu {
        assert!(
            c_off >= 8 && c_off2 >= 8,
            "JIT off rebuilds every pipeline on every evaluation ({c_off}, {c_off2})"
        );
    }
    // The GPU and the CPU run the same fused schedule.
    if gpu || dev.backend_name() == "cpu" {
        assert_eq!(n_on, 1, "JIT on: the 8-op chain must be one kernel");
        let (_, n, _) = dispatches(
            &|| x.mul(&c).unwrap().add(&c).unwrap().softmax(1).unwrap(),
            vec![64, 48],
        )
        .await;
        assert_eq!(n, 1, "softmax with its elementwise prologue is one kernel");
        let (_, n, _) = dispatches(
            &|| x.mul(&x).unwrap().sum(&[1], false).unwrap().sqrt().unwrap(),
            vec![64],
        )
        .await;
        assert_eq!(n, 1, "sum with prologue and epilogue is one kernel");
        let (w, _) = rand_tensor(dev, &[48, 32], 6, -1.0, 1.0);
        let (b, _) = rand_tensor(dev, &[32], 7, -1.0, 1.0);
        let (_, n, _) = dispatches(
            &|| x.matmul(&w).unwrap().add(&b).unwrap().gelu().unwrap(),
            vec![64, 32],
        )
        .await;
        assert_eq!(n, 1, "matmul + bias + gelu is one kernel");
    }
}

/// Lets background work run: natively a short sleep, in browsers a turn of the event loop.
pub async fn pause() {
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::sleep(std::time::Duration::from_millis(5));
    #[cfg(target_arch = "wasm32")]
    {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let global = js_sys::global();
            let f = js_sys::Reflect::get(&global, &"setTimeout".into()).unwrap();
            js_sys::Function::from(f)
                .call2(&global, &resolve, &5.into())
                .unwrap();
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
}

/// `JitMode::Adaptive`: the same results as `On`; on wgpu, after a structure's first
/// evaluation a new shape compiles nothing on the caller's path (tier 0, generic pipelines), a
/// kernel evaluated again gets its specialized pipeline in the background (tier 1), and then
/// runs on it with bit-identical results.
pub async fn adaptive_tiers(dev: &Device) {
    let wgpu = dev.backend_name() == "wgpu";
    let fresh = fresh_device(dev).await;
    let dev = &fresh;
    dev.set_jit(JitMode::Adaptive);
    let cpu = Device::cpu().unwrap();
    let layer = |d: &Device, m: usize, seed: u64| {
        let (x, _) = rand_tensor(d, &[m, 24], seed, -1.0, 1.0);
        let (w, _) = rand_tensor(d, &[24, 16], seed + 1, -1.0, 1.0);
        let (b, _) = rand_tensor(d, &[16], seed + 2, -1.0, 1.0);
        let y = x.matmul(&w).unwrap().add(&b).unwrap().gelu().unwrap();
        y.softmax(1)
            .unwrap()
            .mul(&y)
            .unwrap()
            .sum(&[0], false)
            .unwrap()
    };
    let run = |m: usize, seed: u64| {
        let (dev, cpu) = (dev.clone(), cpu.clone());
        async move {
            let got = read(&layer(&dev, m, seed), &[16]).await;
            let want = read(&layer(&cpu, m, seed), &[16]).await;
            assert_close(
                &format!("adaptive, batch {m}"),
                &got,
                &to_f64(&want),
                1e-5,
                1e-4,
            );
            got
        }
    };
    let caller = |s: &tmath::Stats| s.compiles - s.background_compiles;
    run(20, 1).await;
    let s1 = dev.stats();
    // New shapes of the seen structure: nothing compiles on the caller's path.
    // (All above 16 rows: the reduction over the batch keeps its variant, see ARCHITECTURE.md.)
    for (i, m) in [21, 17, 33, 64, 100].into_iter().enumerate() {
        run(m, 10 + i as u64).await;
    }
    let s2 = dev.stats();
    if dev.backend_name() == "mlx" {
        assert_eq!(
            s2.compiles, s1.compiles,
            "MLX's shapeless compile: new shapes of a traced structure do not retrace"
        );
    }
    if !wgpu {
        return;
    }
    assert!(
        caller(&s1) > 0,
        "the first structure compiles its generic pipelines"
    );
    assert_eq!(
        caller(&s2),
        caller(&s1),
        "new shapes of a seen structure compile nothing on the caller's path"
    );
    assert!(
        s2.generic_dispatches > s1.generic_dispatches,
        "new shapes run on generic pipelines"
    );
    // Batch 21 again: hot, so its specialized kernels compile in the background.
    let generic = run(21, 10).await;
    let mut waited = 0;
    loop {
        let s = dev.stats();
        let before = s.specialized_dispatches;
        let again = run(21, 10).await;
        if dev.stats().specialized_dispatches > before {
            assert_eq!(
                again, generic,
                "specialized kernels give the generic kernels' values"
            );
            break;
        }
        assert_eq!(again, generic, "the same evaluation gives the same values");
        waited += 1;
        assert!(
            waited < 2000,
            "the specialized pipelines never arrived ({s:?})"
        );
        pause().await;
    }
    let s3 = dev.stats();
    assert!(
        s3.background_compiles > 0,
        "specialized pipelines were compiled in the background"
    );
}

/// `JitMode::On` with quick first runs (`debug::set_quick_first`): a matmul's first run takes
/// the quick kernel, its specialized pipeline compiles in the background, and later runs take
/// it with the same values (the same multiply-adds in the same order). A batched matmul with a
/// transposed operand, a bias and GELU, at sizes the lane form does not take (N = 29).
pub async fn quick_first_matmul(dev: &Device) {
    if dev.backend_name() != "wgpu" {
        return;
    }
    let fresh = fresh_device(dev).await;
    let dev = &fresh;
    // (The suite also runs with TMATH_JIT=adaptive; quick first runs belong to `On`.)
    dev.set_jit(JitMode::On);
    tmath::debug::set_quick_first(dev, Some(true));
    let cpu = Device::cpu().unwrap();
    let graph = |d: &Device| {
        let (x, _) = rand_tensor(d, &[2, 37, 50], 71, -1.0, 1.0);
        let (w, _) = rand_tensor(d, &[29, 50], 72, -1.0, 1.0);
        let (b, _) = rand_tensor(d, &[29], 73, -1.0, 1.0);
        x.matmul(&w.transpose(0, 1).unwrap())
            .unwrap()
            .add(&b)
            .unwrap()
            .gelu()
            .unwrap()
    };
    let shape = [2, 37, 29];
    let want = read(&graph(&cpu), &shape).await;
    let s0 = dev.stats();
    let first = read(&graph(dev), &shape).await;
    let s1 = dev.stats();
    assert_close("quick matmul", &first, &to_f64(&want), 1e-5, 1e-5);
    assert_eq!(
        s1.quick_dispatches - s0.quick_dispatches,
        1,
        "the first run takes the quick kernel (a kernel the on-disk index knows from an earlier \
         process skips it: run with TMATH_HOT_KERNELS=off, as scripts/test does)"
    );
    let mut waited = 0;
    loop {
        let before = dev.stats();
        let again = read(&graph(dev), &shape).await;
        let after = dev.stats();
        assert_eq!(again, first, "the same values on either kernel");
        if after.quick_dispatches == before.quick_dispatches {
            assert!(
                after.background_compiles > s0.background_compiles,
                "the specialized pipeline was compiled in the background"
            );
            break;
        }
        waited += 1;
        assert!(
            waited < 2000,
            "the specialized pipeline never arrived ({after:?})"
        );
        pause().await;
    }
    // Never: the specialized pipeline on the caller's path, as without the switch.
    tmath::debug::set_quick_first(dev, Some(false));
    let (x, _) = rand_tensor(dev, &[40, 24], 74, -1.0, 1.0);
    let (w, _) = rand_tensor(dev, &[24, 31], 75, -1.0, 1.0);
    let s2 = dev.stats();
    let _ = read(&x.matmul(&w).unwrap(), &[40, 31]).await;
    let s3 = dev.stats();
    assert_eq!(s3.quick_dispatches, s2.quick_dispatches);
    assert_eq!(s3.background_compiles, s2.background_compiles);
}

/// `JitMode::Adaptive`'s route for tiny work: a graph whose inputs are small host data runs on
/// the CPU kernels (no pipeline, no GPU round trip) with the CPU device's results; its result
/// feeds GPU work like any other; a graph with a large input stays on the GPU.
pub async fn adaptive_cpu_route(dev: &Device) {
    let wgpu = dev.backend_name() == "wgpu";
    let fresh = fresh_device(dev).await;
    let dev = &fresh;
    dev.set_jit(JitMode::Adaptive);
    let (a, da) = rand_tensor(dev, &[8, 8], 31, -1.0, 1.0);
    let (b, db) = rand_tensor(dev, &[8], 32, -1.0, 1.0);
    let s0 = dev.stats();
    let c = a.add(&b).unwrap().tanh().unwrap();
    let got = read(&c, &[8, 8]).await;
    let s1 = dev.stats();
    let want: Vec<f64> = (0..64)
        .map(|i| (da[i] as f64 + db[i % 8] as f64).tanh())
        .collect();
    assert_close("tiny graph", &got, &want, 1e-6, 1e-6);
    // Large input: the GPU (or the device's own path elsewhere), fed by the tiny result.
    let (big, dbig) = rand_tensor(dev, &[8, 1024], 33, -1.0, 1.0);
    let d = c.matmul(&big).unwrap();
    let got_d = read(&d, &[8, 1024]).await;
    let s2 = dev.stats();
    let cw: Vec<f32> = want.iter().map(|&x| x as f32).collect();
    let (want_d, _) = ref_matmul(&cw, &[8, 8], &dbig, &[8, 1024]);
    assert_close("tiny result into a GPU matmul", &got_d, &want_d, 1e-4, 1e-4);
    if wgpu {
        assert_eq!(
            s1.cpu_dispatches - s0.cpu_dispatches,
            2,
            "add and tanh ran on the CPU"
        );
        assert_eq!(s1.compiles, s0.compiles, "the CPU route compiles nothing");
        assert_eq!(
            s2.cpu_dispatches, s1.cpu_dispatches,
            "a large input stays on the GPU"
        );
        assert!(s2.compiles > s1.compiles, "the GPU matmul compiled");
        // The numbers behind the decision are visible.
        let (rt, ns) = tmath::debug::cpu_route_cost(dev).expect("a GPU device has the route");
        assert!(
            rt > 0.0 && rt.is_finite() && ns > 0.0 && ns.is_finite(),
            "{rt} µs, {ns} ns"
        );
        assert!(
            128.0 * ns < rt * 1e3,
            "the graph went to the CPU: its work (add and tanh over 64) finishes before the round trip"
        );
    } else {
        assert_eq!(s2.cpu_dispatches, 0, "only GPU devices route to the CPU");
        assert!(tmath::debug::cpu_route_cost(dev).is_none());
    }
}
