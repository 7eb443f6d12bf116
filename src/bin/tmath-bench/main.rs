//! `tmath-bench`: the main job. Reproduces the original engine's table (matmul 1024², SVD 512²,
//! GELU 1024²) on every device this build has, JIT off / cold / cached, adds softmax, fusion and
//! epilogue rows and size sweeps, and writes `report.json`, `report.md` and `report.html`.
//!
//! `tmath-bench --help` lists the arguments (clap).
//!
//! On a software GPU (lavapipe, SwiftShader, WARP) the quick sizes are the default (`--full`
//! asks for the full ones); every mode of a case stops repeating once its time budget is spent.

mod adaptive;
mod cases;
mod plot;
mod report;

use std::time::Instant;

use tmath::{Device, JitMode, Tensor};

pub(crate) use cases::Case;
use cases::{cases, Graph};
pub(crate) use report::Row;

/// The T-Math benchmark report: the original engine's table, softmax, fusion, epilogue and
/// size sweeps, generic vs specialized kernels, and the adaptive mode, on every device this
/// build has; writes report.json, report.md and report.html.
#[derive(clap::Parser)]
#[command(name = "tmath-bench", version)]
struct Args {
    /// Devices to measure: cpu, wgpu, mlx or all, or a comma list (a device named explicitly
    /// must start).
    #[arg(long, default_value = "all", value_parser = parse_devices)]
    device: String,
    /// Small sizes (the default on a software GPU: lavapipe, SwiftShader, WARP).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The full sizes even on a software GPU.
    #[arg(long)]
    full: bool,
    /// Only cases whose "section/op" contains one of these comma-separated strings.
    #[arg(long, value_name = "SECTION/OP[,..]")]
    only: Option<String>,
    /// Repetitions per mode of a case (default 10; 3 with quick sizes).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    reps: Option<u64>,
    /// Seconds of repetitions per mode of a case; at least one rep always runs.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS", value_parser = parse_budget)]
    budget: f64,
    /// Output directory.
    #[arg(long, default_value = "target/tmath-report", value_name = "DIR")]
    out: String,
}

/// Progress a person can read: a bar with the case, the elapsed time and an estimate of what
/// is left when stdout is a terminal; plain lines otherwise (CI logs).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}, about {eta} left] {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar, total }
    }

    /// Case `done` (0-based) starts.
    fn step(&self, done: usize, what: &str, elapsed: f64) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(what.to_string());
            }
            None => {
                let eta = if done > 0 {
                    format!(
                        ", about {:.0} s left",
                        elapsed / done as f64 * (self.total - done) as f64
                    )
                } else {
                    String::new()
                };
                println!("[{}/{}] {what} [{elapsed:.0} s{eta}]", done + 1, self.total);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn parse_devices(s: &str) -> Result<String, String> {
    if s.split(',')
        .all(|d| matches!(d, "cpu" | "wgpu" | "mlx" | "all"))
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "must be cpu, wgpu, mlx or all (or a comma list), not {s:?}"
        ))
    }
}

fn parse_budget(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(b) if b > 0.0 && b.is_finite() => Ok(b),
        _ => Err(format!("must be a positive number of seconds, not {s:?}")),
    }
}

impl Args {
    /// Whether `--device` asks for `name` (named, or `all`).
    fn wants(&self, name: &str) -> bool {
        self.device.split(',').any(|d| d == name || d == "all")
    }

    /// Whether `name` was named explicitly (then failing to start it is an error).
    fn requires(&self, name: &str) -> bool {
        self.device.split(',').any(|d| d == name)
    }
}

/// A way to get a fresh device ("cold" rows need one per measurement).
#[derive(Clone, Copy)]
enum Kind {
    Cpu,
    Wgpu,
    #[cfg(feature = "mlx")]
    Mlx,
}

impl Kind {
    fn make(self) -> tmath::Result<Device> {
        match self {
            Kind::Cpu => Device::cpu(),
            Kind::Wgpu => Device::wgpu(),
            #[cfg(feature = "mlx")]
            Kind::Mlx => Device::mlx(),
        }
    }
}

fn time_once(dev: &Device, inputs: &[Tensor], graph: &Graph) -> tmath::Result<(f64, Vec<Tensor>)> {
    let t0 = Instant::now();
    let outs = graph(inputs)?;
    tmath::eval(&outs.iter().collect::<Vec<_>>())?;
    dev.synchronize()?;
    Ok((t0.elapsed().as_secs_f64() * 1e3, outs))
}

fn max_err(got: &[Tensor], want: &[Vec<f32>]) -> tmath::Result<(f64, f64)> {
    let (mut err, mut scale) = (0f64, 1f64);
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.to_vec()?.iter().zip(w) {
            let d = (*a as f64 - *b as f64).abs();
            err = if d.is_nan() {
                f64::INFINITY
            } else {
                err.max(d)
            };
            scale = scale.max((*b as f64).abs());
        }
    }
    Ok((err, scale))
}

fn run_case(
    kind: Kind,
    case: &Case,
    modes: &[&'static str],
    reps: usize,
    budget: f64,
    reference: Option<&[Vec<f32>]>,
) -> Vec<Row> {
    let mut rows = vec![];
    for &mode in modes {
        let dev = match kind.make() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("  {}: {e}", case.op);
                return rows;
            }
        };
        let mut row = Row::new(case, &dev, mode);
        let result = (|| -> tmath::Result<()> {
            let inputs = (case.inputs)(&dev)?;
            tmath::eval(&inputs.iter().collect::<Vec<_>>())?;
            dev.synchronize()?;
            if mode == "off" {
                dev.set_jit(JitMode::Off);
            }
            if mode == "generic" {
                tmath::debug::set_generic_kernels(&dev, true);
            }
            if mode != "cold" {
                // Steady state: specialized pipelines from the first call, not a quick kernel
                // while they compile in the background (cold rows keep the default).
                tmath::debug::set_quick_first(&dev, Some(false));
            }
            let n = if mode == "cold" { 1 } else { reps };
            if mode != "cold" {
                // Warm-up: the first call fills the cache (JIT on); more calls, up to 20 or a
                // tenth of the budget, bring the GPU's clocks up from idle before timing.
                // The matmul autotuner measures a new shape in the background after its first
                // call; the timed calls take its choice (waited for, up to 30 s).
                time_once(&dev, &inputs, &case.graph)?;
                let started = Instant::now();
                while dev.stats().tunes_done < dev.stats().tunes_requested
                    && started.elapsed().as_secs_f64() < 30.0
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                let started = Instant::now();
                for _ in 0..20 {
                    time_once(&dev, &inputs, &case.graph)?;
                    if started.elapsed().as_secs_f64() > budget / 10.0 {
                        break;
                    }
                }
            }
            let before = dev.stats();
            let mut last = vec![];
            let started = Instant::now();
            for _ in 0..n {
                let (ms, outs) = time_once(&dev, &inputs, &case.graph)?;
                row.times.push(ms);
                last = outs;
                if started.elapsed().as_secs_f64() > budget {
                    break; // the time budget is spent: the reps that ran are the row's
                }
            }
            let n = row.times.len();
            let after = dev.stats();
            row.compiles = (after.compiles - before.compiles) / n as u64;
            if after.compiles > before.compiles {
                row.compile_ms = (after.compile_time - before.compile_time).as_secs_f64() * 1e3
                    / (after.compiles - before.compiles) as f64;
            }
            row.dispatches = (after.dispatches - before.dispatches) / n as u64;
            if mode == "cached" || mode == "generic" {
                // Kernel time alone (GPU timestamps / CPU op time), a separate pass.
                // The median over the calls, as for wall time.
                dev.set_profiling(true);
                let (started, mut kts) = (Instant::now(), vec![]);
                while kts.len() < n {
                    let k0 = dev.stats().kernel_time;
                    time_once(&dev, &inputs, &case.graph)?;
                    kts.push((dev.stats().kernel_time - k0).as_secs_f64() * 1e3);
                    if started.elapsed().as_secs_f64() > budget {
                        break;
                    }
                }
                dev.set_profiling(false);
                kts.sort_by(f64::total_cmp);
                let kt = kts[kts.len() / 2];
                row.kernel_ms = (kt > 0.0).then_some(kt);
            }
            if let Some(want) = reference {
                let (err, scale) = max_err(&last, want)?;
                row.max_abs_err = Some(err);
                if err > case.tol * scale {
                    row.failed = Some(format!(
                        "max |error| {err:.3e} against the CPU device exceeds {:.1e}",
                        case.tol * scale
                    ));
                }
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

fn main() {
    let args = <Args as clap::Parser>::parse();
    // The adaptive rows measure a fresh process: no hot kernels of earlier runs on disk (set
    // TMATH_HOT_KERNELS=on to measure with them).
    if std::env::var_os("TMATH_HOT_KERNELS").is_none() {
        std::env::set_var("TMATH_HOT_KERNELS", "off");
    }
    #[cfg(not(feature = "mlx"))]
    if args.requires("mlx") {
        eprintln!(
            "--device mlx: this build has no MLX backend (build with `--features bench,mlx`)"
        );
        std::process::exit(1);
    }
    // "cold" means a compile from scratch: keep the driver's disk cache out of the table rows
    // (the disk-cache section below measures what it saves).
    std::env::set_var("TMATH_PIPELINE_CACHE", "off");
    // NVIDIA's driver keeps compiled shaders on disk across processes; without this, "off" and
    // "cold" would be served from it after the first run.
    std::env::set_var("__GL_SHADER_DISK_CACHE", "0");
    // Each device asked for and available; one that was named explicitly must start.
    #[allow(unused_mut)]
    let mut known = vec![("cpu", Kind::Cpu), ("wgpu", Kind::Wgpu)];
    #[cfg(feature = "mlx")]
    known.push(("mlx", Kind::Mlx));
    let mut kinds: Vec<(&str, Kind)> = vec![];
    for (name, kind) in known.into_iter().filter(|(n, _)| args.wants(n)) {
        match kind.make() {
            Ok(_) => kinds.push((name, kind)),
            Err(e) if args.requires(name) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
            Err(e) => eprintln!("skipping {name}: {e}"),
        }
    }
    // A software GPU gets the quick sizes unless the full ones were asked for.
    let software: Vec<String> = kinds
        .iter()
        .filter(|(n, _)| *n == "wgpu")
        .filter_map(|(_, k)| k.make().ok())
        .filter(tmath::debug::is_software)
        .map(|d| d.adapter_name())
        .collect();
    let quick = args.quick || (!software.is_empty() && !args.full);
    let mut notes = vec![];
    if quick && !args.quick {
        notes.push(format!(
            "Quick sizes: the GPU here is a software adapter ({}); `--full` measures the full sizes.",
            software.join(", ")
        ));
    }
    notes.push(format!(
        "Each mode of a case repeats at most {} times and stops once {} s are spent; a row's `reps` says how many ran.",
        args.reps.map_or(if quick { 3 } else { 10 }, |r| r as usize),
        args.budget
    ));
    for n in &notes {
        println!("{n}");
    }
    let reps = args.reps.map_or(if quick { 3 } else { 10 }, |r| r as usize);
    let mut cases = cases(quick);
    if let Some(only) = &args.only {
        let wanted: Vec<&str> = only
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        cases.retain(|c| {
            wanted
                .iter()
                .any(|w| format!("{}/{}", c.section, c.op).contains(w))
        });
    }
    // Generic kernels exist on wgpu only.
    let runs = |c: &Case, name: &str| c.section != "generic kernels" || name == "wgpu";
    let total: usize = cases
        .iter()
        .map(|c| kinds.iter().filter(|(n, _)| runs(c, n)).count())
        .sum();
    let mut rows: Vec<Row> = vec![];
    let cpu = Device::cpu().expect("the CPU device");
    let mut done = 0;
    let t_start = Instant::now();
    let progress = Progress::new(total);
    for case in &cases {
        // The CPU device's result is the reference for every other device.
        let needs_reference = case.check && kinds.iter().any(|(n, _)| *n != "cpu" && runs(case, n));
        let reference: Option<Vec<Vec<f32>>> = needs_reference
            .then(|| {
                (case.inputs)(&cpu)
                    .and_then(|i| (case.graph)(&i))
                    .and_then(|outs| outs.iter().map(|t| t.to_vec()).collect())
            })
            .and_then(|r| r.ok());
        for (name, kind) in kinds.iter().filter(|(n, _)| runs(case, n)) {
            progress.step(
                done,
                &format!("{} {:?} on {name} ({})", case.op, case.shape, case.section),
                t_start.elapsed().as_secs_f64(),
            );
            done += 1;
            let reference = if *name == "cpu" {
                None
            } else {
                reference.as_deref()
            };
            let reps = if case.section == "table" {
                reps
            } else {
                reps.min(5)
            };
            rows.extend(run_case(
                *kind,
                case,
                case.modes,
                reps,
                args.budget,
                reference,
            ));
        }
    }
    progress.finish();
    // What the on-disk pipeline cache saves: a cold first call in a new process, without and with
    // the cache a previous process left (a fresh directory, filled by the first call).
    if kinds.iter().any(|(n, _)| *n == "wgpu") {
        if let Some(case) = cases
            .iter()
            .find(|c| c.section == "table" && c.op == "matmul + bias + gelu")
        {
            let dir =
                std::env::temp_dir().join(format!("tmath-bench-cache-{}", std::process::id()));
            std::env::set_var("TMATH_CACHE_DIR", &dir);
            std::env::remove_var("TMATH_PIPELINE_CACHE");
            for label in ["disk cache: empty", "disk cache: warm"] {
                println!("[pipeline cache] {} {:?} ({label})", case.op, case.shape);
                let mut r = run_case(Kind::Wgpu, case, &["cold"], 1, args.budget, None).pop();
                if let Some(r) = r.as_mut() {
                    r.section = "pipeline cache";
                    r.op = format!("{} ({label})", case.op);
                }
                rows.extend(r);
            }
            std::env::set_var("TMATH_PIPELINE_CACHE", "off");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // The adaptive mode against On and Off (GPU devices: the modes differ only there).
    let wanted = |s: &str| {
        args.only.as_deref().map_or(true, |o| {
            o.split(',')
                .any(|w| !w.trim().is_empty() && s.contains(w.trim()))
        })
    };
    if wanted(adaptive::SECTION) {
        for (name, kind) in kinds.iter().filter(|(n, _)| *n == "wgpu") {
            println!("[adaptive] rows on {name}");
            rows.extend(adaptive::rows(*kind, quick, reps));
        }
    }
    let mut devices = vec![];
    for (_, kind) in &kinds {
        if let Ok(d) = kind.make() {
            let bytes = d.max_tensor_bytes().unwrap_or(u64::MAX).min(256 << 20) as usize;
            let copy = tmath::debug::copy_gbps(&d, bytes).ok().flatten();
            let fma = tmath::debug::fma_gflops(&d).ok().flatten();
            devices.push(report::DeviceInfo::new(&d, copy, fma));
        }
    }
    let md = format!(
        "{}\n\n{}",
        notes.join("\n"),
        report::markdown(&rows, &devices)
    );
    println!("\n{md}");
    if let Err(e) = report::write_all(&args.out, &rows, &devices, &md, quick) {
        eprintln!("writing the report failed: {e}");
        std::process::exit(1);
    }
    println!(
        "report: {0}/report.md, {0}/report.json, {0}/report.html",
        args.out
    );
}
