//! `tmath-bench`: the main job. Reproduces the original engine's table (matmul 1024², SVD 512²,
//! GELU 1024²) on every device this build has, with JIT off, cold (fresh device, compile
//! included) and cached, and writes `report.json` and `report.md`.
//!
//! Flags: `--device cpu|wgpu|all` (default all available), `--quick` (small sizes, few reps),
//! `--out DIR` (default `target/tmath-report`).

use std::time::{Duration, Instant};

use tmath::{Device, JitMode, Tensor};

struct Args {
    device: String,
    quick: bool,
    out: String,
    only: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        device: "all".into(),
        quick: false,
        out: "target/tmath-report".into(),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--device" => args.device = it.next().ok_or("--device needs a value")?,
            "--quick" => args.quick = true,
            "--only" => args.only = Some(it.next().ok_or("--only needs a value")?),
            "--out" => args.out = it.next().ok_or("--out needs a value")?,
            "-h" | "--help" => {
                println!("tmath-bench [--device cpu|wgpu|all] [--quick] [--only OP] [--out DIR]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// A named way to get a device; "cold" rows need a fresh one per measurement.
#[derive(Clone, Copy)]
enum Kind {
    Cpu,
    #[cfg(feature = "wgpu")]
    Wgpu,
}

impl Kind {
    fn make(self) -> tmath::Result<Device> {
        match self {
            Kind::Cpu => Device::cpu(),
            #[cfg(feature = "wgpu")]
            Kind::Wgpu => Device::wgpu(),
        }
    }
}

struct Row {
    op: String,
    shape: Vec<usize>,
    device: String,
    backend: String,
    mode: &'static str,
    times: Vec<f64>,
    flops: f64,
    bytes: f64,
    compiles: u64,
    compile_ms: f64,
    dispatches: u64,
    max_abs_err: Option<f64>,
    failed: Option<String>,
}

impl Row {
    fn median(&self) -> f64 {
        let mut t = self.times.clone();
        t.sort_by(|a, b| a.total_cmp(b));
        if t.is_empty() {
            f64::NAN
        } else {
            t[t.len() / 2]
        }
    }
}

type Build = fn(&Device, usize) -> tmath::Result<(Vec<Tensor>, Vec<Tensor>)>;

/// One benchmark: inputs made (and uploaded) before timing; the timed part builds the graph and
/// evaluates it to completion.
struct Case {
    op: &'static str,
    n: usize,
    shape: Vec<usize>,
    flops: f64,
    /// Bytes that must move (inputs read + output written), for GB/s.
    bytes: f64,
    inputs: Build,
    graph: fn(&[Tensor]) -> tmath::Result<Vec<Tensor>>,
}

fn time_once(
    dev: &Device,
    inputs: &[Tensor],
    graph: fn(&[Tensor]) -> tmath::Result<Vec<Tensor>>,
) -> tmath::Result<(f64, Vec<Tensor>)> {
    let t0 = Instant::now();
    let outs = graph(inputs)?;
    let refs: Vec<&Tensor> = outs.iter().collect();
    tmath::eval(&refs)?;
    dev.synchronize()?;
    Ok((t0.elapsed().as_secs_f64() * 1e3, outs))
}

fn max_err(got: &[Tensor], want: &[Tensor]) -> tmath::Result<f64> {
    let mut err = 0f64;
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.to_vec()?.iter().zip(w.to_vec()?) {
            err = err.max((*a as f64 - b as f64).abs());
        }
    }
    Ok(err)
}

fn run_case(kind: Kind, case: &Case, reps: usize, reference: Option<&[Tensor]>) -> Vec<Row> {
    let mut rows = vec![];
    for mode in ["off", "cold", "cached"] {
        let dev = match kind.make() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("  {}: {e}", case.op);
                return rows;
            }
        };
        let mut row = Row {
            op: case.op.into(),
            shape: case.shape.clone(),
            device: dev.adapter_name(),
            backend: dev.backend_name().into(),
            mode,
            times: vec![],
            flops: case.flops,
            bytes: case.bytes,
            compiles: 0,
            compile_ms: 0.0,
            dispatches: 0,
            max_abs_err: None,
            failed: None,
        };
        let result = (|| -> tmath::Result<()> {
            let inputs = (case.inputs)(&dev, case.n)?.0;
            tmath::eval(&inputs.iter().collect::<Vec<_>>())?;
            dev.synchronize()?;
            if mode == "off" {
                dev.set_jit(JitMode::Off);
            }
            let n = if mode == "cold" { 1 } else { reps };
            if mode == "cached" {
                time_once(&dev, &inputs, case.graph)?; // warm-up: compiles, fills the cache
            }
            let before = dev.stats();
            let mut last = vec![];
            for _ in 0..n {
                let (ms, outs) = time_once(&dev, &inputs, case.graph)?;
                row.times.push(ms);
                last = outs;
            }
            let after = dev.stats();
            row.compiles = (after.compiles - before.compiles) / n as u64;
            if after.compiles > before.compiles {
                row.compile_ms = (after.compile_time - before.compile_time).as_secs_f64() * 1e3
                    / (after.compiles - before.compiles) as f64;
            }
            row.dispatches = (after.dispatches - before.dispatches) / n as u64;
            if let Some(want) = reference {
                row.max_abs_err = Some(max_err(&last, want)?);
            }
            Ok(())
        })();
        if let Err(e) = result {
            row.failed = Some(e.to_string());
        }
        rows.push(row);
    }
    rows
}

fn cases(quick: bool) -> Vec<Case> {
    let (mm, svd, el) = if quick {
        (256, 64, 256)
    } else {
        (1024, 512, 1024)
    };
    let e = (el * el) as f64;
    vec![
        Case {
            op: "matmul",
            n: mm,
            shape: vec![mm, mm],
            flops: 2.0 * (mm as f64).powi(3),
            bytes: 0.0,
            inputs: |d, n| {
                Ok((
                    vec![Tensor::randn(&[n, n], 1, d)?, Tensor::randn(&[n, n], 2, d)?],
                    vec![],
                ))
            },
            graph: |x| Ok(vec![x[0].matmul(&x[1])?]),
        },
        Case {
            op: "svd",
            n: svd,
            shape: vec![svd, svd],
            flops: 0.0,
            bytes: 0.0,
            inputs: |d, n| Ok((vec![Tensor::randn(&[n, n], 3, d)?], vec![])),
            graph: |x| {
                let (_, s, _) = x[0].svd()?;
                Ok(vec![s])
            },
        },
        Case {
            op: "gelu",
            n: el,
            shape: vec![el, el],
            flops: 0.0,
            bytes: 8.0 * e,
            inputs: |d, n| Ok((vec![Tensor::randn(&[n, n], 4, d)?], vec![])),
            graph: |x| Ok(vec![x[0].gelu()?]),
        },
        Case {
            op: "softmax (last axis)",
            n: el,
            shape: vec![el, el],
            flops: 0.0,
            bytes: 8.0 * e,
            inputs: |d, n| Ok((vec![Tensor::randn(&[n, n], 5, d)?], vec![])),
            graph: |x| Ok(vec![x[0].softmax(1)?]),
        },
        Case {
            op: "8-op elementwise chain",
            n: el,
            shape: vec![el, el],
            flops: 0.0,
            bytes: 8.0 * e,
            inputs: |d, n| {
                Ok((
                    vec![Tensor::randn(&[n, n], 6, d)?, Tensor::scalar(0.5, d)?],
                    vec![],
                ))
            },
            graph: |x| {
                let c = &x[1];
                let y = x[0]
                    .mul(c)?
                    .add(c)?
                    .tanh()?
                    .abs()?
                    .sqrt()?
                    .neg()?
                    .exp()?
                    .sigmoid()?;
                Ok(vec![y])
            },
        },
        Case {
            op: "matmul + bias + gelu",
            n: mm,
            shape: vec![mm, mm],
            flops: 2.0 * (mm as f64).powi(3),
            bytes: 0.0,
            inputs: |d, n| {
                Ok((
                    vec![
                        Tensor::randn(&[n, n], 7, d)?,
                        Tensor::randn(&[n, n], 8, d)?,
                        Tensor::randn(&[n], 9, d)?,
                    ],
                    vec![],
                ))
            },
            graph: |x| Ok(vec![x[0].matmul(&x[1])?.add(&x[2])?.gelu()?]),
        },
    ]
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut kinds: Vec<(&str, Kind)> = vec![];
    if matches!(args.device.as_str(), "all" | "cpu") {
        kinds.push(("cpu", Kind::Cpu));
    }
    #[cfg(feature = "wgpu")]
    if matches!(args.device.as_str(), "all" | "wgpu") {
        match Device::wgpu() {
            Ok(_) => kinds.push(("wgpu", Kind::Wgpu)),
            Err(e) if args.device == "wgpu" => {
                eprintln!("{e}");
                std::process::exit(1);
            }
            Err(e) => eprintln!("skipping wgpu: {e}"),
        }
    }
    if kinds.is_empty() {
        eprintln!("no device matches --device {}", args.device);
        std::process::exit(2);
    }
    let reps = if args.quick { 3 } else { 10 };
    let mut cases = cases(args.quick);
    if let Some(only) = &args.only {
        cases.retain(|c| c.op.contains(only.as_str()));
    }
    let total = kinds.len() * cases.len();
    let mut rows: Vec<Row> = vec![];
    let cpu = Device::cpu().expect("cpu");
    for (ci, case) in cases.iter().enumerate() {
        // The CPU device's result is the reference for every other device.
        let reference = (case.inputs)(&cpu, case.n).and_then(|(i, _)| (case.graph)(&i));
        for (ki, (name, kind)) in kinds.iter().enumerate() {
            println!(
                "[{}/{}] {} {:?} on {name}",
                ci * kinds.len() + ki + 1,
                total,
                case.op,
                case.shape
            );
            let reference = if *name == "cpu" {
                None
            } else {
                reference.as_ref().ok().map(|v| v.as_slice())
            };
            rows.extend(run_case(*kind, case, reps, reference));
        }
    }
    let md = markdown(&rows);
    println!("\n{md}");
    if let Err(e) = write_reports(&args.out, &rows, &md, args.quick) {
        eprintln!("writing the report failed: {e}");
        std::process::exit(1);
    }
    println!("report: {}/report.md, {}/report.json", args.out, args.out);
}

fn fmt_ms(r: Option<&Row>) -> String {
    match r {
        None => "–".into(),
        Some(r) if r.failed.is_some() => "failed".into(),
        Some(r) => format!("{:.3}", r.median()),
    }
}

fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| operation | device | without JIT (ms) | JIT cold (ms) | JIT cached (ms) | speed-up off→cached | GFLOP/s or GB/s (cached) | kernels off / on | compile ms per pipeline |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut seen = vec![];
    for r in rows {
        let key = (r.op.clone(), r.shape.clone(), r.device.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key.clone());
        let get = |m: &str| {
            rows.iter()
                .find(|x| (x.op.clone(), x.shape.clone(), x.device.clone()) == key && x.mode == m)
        };
        let (off, cold, cached) = (get("off"), get("cold"), get("cached"));
        let speedup = match (off, cached) {
            (Some(o), Some(c)) if o.failed.is_none() && c.failed.is_none() => {
                format!("{:.1}×", o.median() / c.median())
            }
            _ => "–".into(),
        };
        let gflops = match cached {
            Some(c) if c.flops > 0.0 && c.failed.is_none() => {
                format!("{:.1} GFLOP/s", c.flops / (c.median() * 1e6))
            }
            Some(c) if c.bytes > 0.0 && c.failed.is_none() => {
                format!("{:.1} GB/s", c.bytes / (c.median() * 1e6))
            }
            _ => "–".into(),
        };
        let kernels = format!(
            "{} / {}",
            off.map_or(0, |r| r.dispatches),
            cached.map_or(0, |r| r.dispatches)
        );
        let compile = match cold {
            Some(c) if c.compiles > 0 => format!("{:.2} ({} pipelines)", c.compile_ms, c.compiles),
            _ => "–".into(),
        };
        let dims: Vec<String> = r.shape.iter().map(|d| d.to_string()).collect();
        s += &format!(
            "| {} {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.op,
            dims.join("×"),
            r.device,
            fmt_ms(off),
            fmt_ms(cold),
            fmt_ms(cached),
            speedup,
            gflops,
            kernels,
            compile
        );
    }
    s
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            '\n' => o += "\\n",
            c if (c as u32) < 0x20 => o += &format!("\\u{:04x}", c as u32),
            c => o.push(c),
        }
    }
    o + "\""
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

fn write_reports(dir: &str, rows: &[Row], md: &str, quick: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let mut j = format!(
        "[\n{{\"header\": true, \"crate_version\": {}, \"unix_time\": {secs}, \"os\": {}, \"arch\": {}, \"quick\": {quick}, \"method\": {}}}",
        json_str(env!("CARGO_PKG_VERSION")),
        json_str(std::env::consts::OS),
        json_str(std::env::consts::ARCH),
        json_str("inputs uploaded before timing; each rep builds the graph, evaluates it and waits for the device; wall time; median of reps; cold = fresh device, first evaluation (compiles included); off = JitMode::Off")
    );
    for r in rows {
        let mut t = r.times.clone();
        t.sort_by(|a, b| a.total_cmp(b));
        let shape: Vec<String> = r.shape.iter().map(|d| d.to_string()).collect();
        j += &format!(
            ",\n{{\"op\": {}, \"shape\": [{}], \"device\": {}, \"backend\": {}, \"mode\": {}, \"median_ms\": {}, \"min_ms\": {}, \"max_ms\": {}, \"reps\": {}, \"gflops\": {}, \"gbps\": {}, \"compiles\": {}, \"compile_ms_per_pipeline\": {}, \"dispatches\": {}, \"max_abs_err\": {}, \"failed\": {}}}",
            json_str(&r.op),
            shape.join(", "),
            json_str(&r.device),
            json_str(&r.backend),
            json_str(r.mode),
            json_num(r.median()),
            json_num(t.first().copied().unwrap_or(f64::NAN)),
            json_num(t.last().copied().unwrap_or(f64::NAN)),
            t.len(),
            if r.flops > 0.0 { json_num(r.flops / (r.median() * 1e6)) } else { "null".into() },
            if r.bytes > 0.0 { json_num(r.bytes / (r.median() * 1e6)) } else { "null".into() },
            r.compiles,
            if r.compiles > 0 { json_num(r.compile_ms) } else { "null".into() },
            r.dispatches,
            r.max_abs_err.map(json_num).unwrap_or("null".into()),
            r.failed.as_deref().map(json_str).unwrap_or("null".into()),
        );
    }
    j += "\n]\n";
    std::fs::write(format!("{dir}/report.json"), j)?;
    std::fs::write(
        format!("{dir}/report.md"),
        format!("# T-Math benchmark\n\n{md}"),
    )?;
    Ok(())
}
