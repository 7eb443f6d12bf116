//! Rows, device descriptions, and the three report files.

use std::fmt::Write;

use crate::Case;
use tmath::Device;

/// One measurement: an op at a shape on a device in one mode.
pub(crate) struct Row {
    pub section: &'static str,
    pub op: String,
    pub shape: Vec<usize>,
    pub device: String,
    pub backend: String,
    pub mode: &'static str,
    /// Wall time per call (ms): graph build, evaluation, wait.
    pub times: Vec<f64>,
    /// Kernel time per call (ms) from GPU timestamps (CPU: op time), when measured.
    pub kernel_ms: Option<f64>,
    pub flops: f64,
    pub bytes: f64,
    pub compiles: u64,
    pub compile_ms: f64,
    pub dispatches: u64,
    pub max_abs_err: Option<f64>,
    pub failed: Option<String>,
    /// Pipelines compiled off the caller's path (adaptive rows), when counted.
    pub background_compiles: Option<u64>,
}

impl Row {
    pub fn new(case: &Case, dev: &Device, mode: &'static str) -> Row {
        Row {
            section: case.section,
            op: case.op.clone(),
            shape: case.shape.clone(),
            device: dev.adapter_name(),
            backend: dev.backend_name().into(),
            mode,
            times: vec![],
            kernel_ms: None,
            flops: case.flops,
            bytes: case.bytes,
            compiles: 0,
            compile_ms: 0.0,
            dispatches: 0,
            max_abs_err: None,
            failed: None,
            background_compiles: None,
        }
    }

    /// A row that is not made from a [`Case`] (the adaptive rows).
    pub fn bare(
        section: &'static str,
        op: String,
        shape: Vec<usize>,
        dev: &Device,
        mode: &'static str,
    ) -> Row {
        Row {
            section,
            op,
            shape,
            device: dev.adapter_name(),
            backend: dev.backend_name().into(),
            mode,
            times: vec![],
            kernel_ms: None,
            flops: 0.0,
            bytes: 0.0,
            compiles: 0,
            compile_ms: 0.0,
            dispatches: 0,
            max_abs_err: None,
            failed: None,
            background_compiles: None,
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut t = self.times.clone();
        t.sort_by(|a, b| a.total_cmp(b));
        t
    }

    pub fn median(&self) -> f64 {
        let t = self.sorted();
        t.get(t.len() / 2).copied().unwrap_or(f64::NAN)
    }

    pub fn ok(&self) -> bool {
        self.failed.is_none() && !self.times.is_empty()
    }

    pub fn gflops(&self) -> Option<f64> {
        (self.ok() && self.flops > 0.0).then(|| self.flops / (self.median() * 1e6))
    }

    pub fn gbps(&self) -> Option<f64> {
        (self.ok() && self.bytes > 0.0).then(|| self.bytes / (self.median() * 1e6))
    }

    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn dims(&self) -> String {
        self.shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("×")
    }
}

/// A device of the run, with the ceilings its rows are compared against.
pub(crate) struct DeviceInfo {
    pub name: String,
    pub backend: String,
    pub limits: Vec<(&'static str, u64)>,
    pub copy_gbps: Option<f64>,
    pub peak_gflops: Option<f64>,
    pub peak_gbps: Option<f64>,
    pub peak_source: String,
    /// The adaptive mode's CPU-route cost model: (GPU round trip µs, CPU ns per element).
    pub cpu_route: Option<(f64, f64)>,
}

impl DeviceInfo {
    pub fn new(d: &Device, copy_gbps: Option<f64>, fma_gflops: Option<f64>) -> Self {
        let name = d.adapter_name();
        // Both ceilings measured in this run, on this device.
        let (peak_gflops, peak_gbps) = (fma_gflops, copy_gbps);
        let peak_source = format!(
            "ceilings measured in this run: bandwidth = the faster of a vec4 copy kernel and the \
             queue's buffer copy over 256 MiB (bytes read + written; CPU: all threads copying){}",
            if fma_gflops.is_some() {
                "; compute = a kernel of independent f32 FMA chains (2 flops each)"
            } else {
                ""
            }
        );
        DeviceInfo {
            name,
            backend: d.backend_name().into(),
            limits: d.limits(),
            copy_gbps,
            peak_gflops,
            peak_gbps,
            peak_source,
            cpu_route: tmath::debug::cpu_route_cost(d),
        }
    }

    /// The row's throughput as a fraction of this device's ceiling.
    pub fn fraction(&self, r: &Row) -> Option<f64> {
        match (r.gflops(), r.gbps()) {
            (Some(g), _) => self.peak_gflops.map(|p| g / p),
            (None, Some(b)) => self.peak_gbps.map(|p| b / p),
            _ => None,
        }
    }
}

fn ms(r: Option<&Row>) -> String {
    match r {
        None => "–".into(),
        Some(r) if !r.ok() => "**failed**".into(),
        Some(r) => format!("{:.3}", r.median()),
    }
}

fn find<'a>(rows: &'a [Row], like: &Row, mode: &str) -> Option<&'a Row> {
    rows.iter().find(|x| {
        x.section == like.section
            && x.op == like.op
            && x.shape == like.shape
            && x.device == like.device
            && x.mode == mode
    })
}

fn throughput(r: &Row) -> String {
    match (r.gflops(), r.gbps()) {
        (Some(g), _) => format!("{g:.1} GFLOP/s"),
        (None, Some(b)) => format!("{b:.1} GB/s"),
        _ => "–".into(),
    }
}

fn fraction(devices: &[DeviceInfo], r: &Row) -> String {
    devices
        .iter()
        .find(|d| d.name == r.device)
        .and_then(|d| d.fraction(r))
        .map_or("–".into(), |f| format!("{:.1}%", 100.0 * f))
}

pub(crate) fn markdown(rows: &[Row], devices: &[DeviceInfo]) -> String {
    let mut s = String::new();
    s += "## The original table, and more\n\n";
    s += "| operation | device | without JIT (ms) | JIT cold (ms) | JIT cached (ms) | kernel time (ms) | speed-up off→cached | throughput (cached) | of ceiling | kernels off / on | compile ms per pipeline |\n";
    s += "|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in rows
        .iter()
        .filter(|r| r.section == "table" && r.mode == "cached")
    {
        let (off, cold) = (find(rows, r, "off"), find(rows, r, "cold"));
        let speedup = match off {
            Some(o) if o.ok() && r.ok() => format!("{:.1}×", o.median() / r.median()),
            _ => "–".into(),
        };
        let compile = match cold {
            Some(c) if c.compiles > 0 => format!("{:.2} ({} pipelines)", c.compile_ms, c.compiles),
            _ => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            r.op,
            r.dims(),
            r.device,
            ms(off),
            ms(cold),
            ms(Some(r)),
            r.kernel_ms.map_or("–".into(), |k| format!("{k:.3}")),
            speedup,
            throughput(r),
            fraction(devices, r),
            off.map_or(0, |o| o.dispatches),
            r.dispatches,
            compile
        );
    }
    s += "\n## Fusion: an 8-op chain against one op over the same data (JIT cached)\n\n";
    s += "| device | gelu (1 op) ms | 8-op chain ms | ratio (fused: near 1) | 8-op chain unfused (JIT off) ms |\n|---|---|---|---|---|\n";
    for r in rows
        .iter()
        .filter(|r| r.section == "table" && r.op == "8-op elementwise chain" && r.mode == "cached")
    {
        let single = rows.iter().find(|x| {
            x.section == "table" && x.op == "gelu" && x.device == r.device && x.mode == "cached"
        });
        if let Some(g) = single.filter(|g| g.ok() && r.ok()) {
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.3} | {:.2} | {} |",
                r.device,
                g.median(),
                r.median(),
                r.median() / g.median(),
                ms(find(rows, r, "off"))
            );
        }
    }
    let disk: Vec<&Row> = rows
        .iter()
        .filter(|r| r.section == "pipeline cache")
        .collect();
    if !disk.is_empty() {
        s += "\n## On-disk pipeline cache: a cold first call in a new process (wgpu `PipelineCache`)\n\n| case | device | cold call ms | pipelines | compile ms per pipeline |\n|---|---|---|---|---|\n";
        for r in disk {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.2} |",
                r.op,
                r.device,
                ms(Some(r)),
                r.compiles,
                r.compile_ms
            );
        }
    }
    let training: Vec<&Row> = rows
        .iter()
        .filter(|r| r.section == "training" && r.mode == "cached")
        .collect();
    if !training.is_empty() {
        s += "\n## Training: an MLP step as one graph (`loss.grad`, forward + backward + SGD update)\n\n| case | B, I, H, O | device | JIT off ms | first step (cold) ms | cached ms | kernel ms | TFLOP/s (cached) | kernels per call (off / on) |\n|---|---|---|---|---|---|---|---|---|\n";
        for r in training {
            let off = find(rows, r, "off");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                r.op,
                r.dims(),
                r.device,
                ms(off),
                ms(find(rows, r, "cold")),
                ms(Some(r)),
                r.kernel_ms.map_or("–".into(), |k| format!("{k:.3}")),
                throughput(r),
                off.map_or(0, |o| o.dispatches),
                r.dispatches
            );
        }
    }
    for section in ["matmul sweep", "elementwise sweep", "softmax sweep"] {
        let _ = write!(s, "\n## {section} (JIT cached)\n\n| op | shape | device | median ms | kernel ms | throughput | of ceiling | max abs err |\n|---|---|---|---|---|---|---|---|\n");
        for r in rows.iter().filter(|r| r.section == section) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.op,
                r.dims(),
                r.device,
                ms(Some(r)),
                r.kernel_ms.map_or("–".into(), |k| format!("{k:.3}")),
                throughput(r),
                fraction(devices, r),
                r.max_abs_err.map_or("–".into(), |e| format!("{e:.1e}"))
            );
        }
    }
    let generic: Vec<&Row> = rows
        .iter()
        .filter(|r| r.section == "generic kernels" && r.mode == "cached")
        .collect();
    if !generic.is_empty() {
        s += "\n## Generic kernels (sizes as data: one pipeline per structure) vs specialized (sizes as literals)\n\n| op | shape | device | specialized ms | kernel ms | generic ms | kernel ms | generic / specialized (kernel) |\n|---|---|---|---|---|---|---|---|\n";
        for r in generic {
            let g = find(rows, r, "generic");
            let k = |x: Option<&Row>| {
                x.and_then(|x| x.kernel_ms)
                    .map_or("–".into(), |k| format!("{k:.3}"))
            };
            let ratio = match (r.kernel_ms, g.and_then(|g| g.kernel_ms)) {
                (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
                _ => "–".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.op,
                r.dims(),
                r.device,
                ms(Some(r)),
                k(Some(r)),
                ms(g),
                k(g),
                ratio
            );
        }
    }
    let adaptive: Vec<&Row> = rows
        .iter()
        .filter(|r| r.section == crate::adaptive::SECTION)
        .collect();
    if !adaptive.is_empty() {
        s += "\n## Adaptive execution (`JitMode::Adaptive`) against `On` and `Off`\n\n| case | device | mode | ms (median) | pipelines compiled on the caller's path | in the background |\n|---|---|---|---|---|---|\n";
        for r in adaptive {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.op,
                r.device,
                r.mode,
                ms(Some(r)),
                r.compiles,
                r.background_compiles.map_or("–".into(), |b| b.to_string())
            );
        }
    }
    s += "\n## Devices\n\n";
    for d in devices {
        let _ = writeln!(
            s,
            "- **{}** ({}): copy bandwidth {}; f32 FMA peak {} ({})",
            d.name,
            d.backend,
            d.copy_gbps.map_or("–".into(), |g| format!("{g:.0} GB/s")),
            d.peak_gflops.map_or("–".into(), |g| if g >= 1e3 {
                format!("{:.1} TFLOP/s", g / 1e3)
            } else {
                format!("{g:.1} GFLOP/s")
            }),
            d.peak_source
        );
        if let Some((rt, ns)) = d.cpu_route {
            let _ = writeln!(
                s,
                "  - adaptive mode's CPU route (measured at start-up): GPU round trip {rt:.0} µs, \
                 CPU {ns:.2} ns per element: graphs with host inputs and at most {} elements of \
                 work run on the CPU when they finish first (at most {:.0} elements here)",
                tmath::debug::CPU_ROUTE_MAX_WORK,
                (rt * 1e3 / ns).min(tmath::debug::CPU_ROUTE_MAX_WORK as f64)
            );
        }
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| r.failed.is_some()).collect();
    if !failed.is_empty() {
        s += "\n## Failed rows (not reported as times)\n\n";
        for r in failed {
            let _ = writeln!(
                s,
                "- {} {} on {} ({}): {}",
                r.op,
                r.dims(),
                r.device,
                r.mode,
                r.failed.as_deref().unwrap_or("")
            );
        }
    }
    s
}

/// The report's schema (`report.json`: the header object, then one object per row; the
/// browser bench page writes the same).
#[derive(serde::Serialize)]
struct JsonHeader<'a> {
    header: bool,
    crate_version: &'a str,
    date: &'a str,
    machine: String,
    quick: bool,
    method: &'a str,
    devices: Vec<JsonDevice<'a>>,
}

#[derive(serde::Serialize)]
struct JsonDevice<'a> {
    adapter: &'a str,
    backend: &'a str,
    limits: std::collections::BTreeMap<&'a str, u64>,
    copy_gbps: Option<f64>,
    peak_gflops: Option<f64>,
    peak_gbps: Option<f64>,
    peak_source: &'a str,
}

#[derive(serde::Serialize)]
struct JsonRow<'a> {
    section: &'a str,
    op: &'a str,
    shape: &'a [usize],
    device: &'a str,
    backend: &'a str,
    mode: &'a str,
    median_ms: Option<f64>,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
    kernel_ms: Option<f64>,
    reps: usize,
    gflops: Option<f64>,
    gbps: Option<f64>,
    fraction_of_ceiling: Option<f64>,
    compiles: u64,
    compile_ms_per_pipeline: Option<f64>,
    dispatches: u64,
    max_abs_err: Option<f64>,
    failed: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    background_compiles: Option<u64>,
}

/// `YYYY-MM-DDTHH:MM:SSZ` from the system clock (civil-from-days, proleptic Gregorian).
fn iso_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} threads, {}", std::env::consts::OS)
}

pub(crate) fn write_all(
    dir: &str,
    rows: &[Row],
    devices: &[DeviceInfo],
    md: &str,
    quick: bool,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let date = iso_now();
    let method = "Inputs are made and uploaded before timing. Each call builds the graph, evaluates it and waits for the device (wall time); median of the reps after a warm-up (up to 20 calls or a tenth of the time budget: the cache filled, the GPU's clocks up). cold = a fresh device, first evaluation, so pipeline compiles are included (our on-disk pipeline cache and NVIDIA's shader disk cache are off for these rows; the pipeline-cache section measures ours; on hardware adapters a matmul's first run takes its quick kernel while the specialized one compiles in the background, which compile_ms_per_pipeline may include); off = JitMode::Off (one kernel per op, pipelines rebuilt every call); cached = JitMode::On after warm-up, specialized pipelines from the first call (no quick kernels). kernel time = GPU timestamp queries around each compute pass where the adapter has them (CPU: time inside the ops), measured in a separate pass (median per call). Every GPU result is checked against the CPU device; a row that fails is marked failed, not timed.";
    let head = JsonHeader {
        header: true,
        crate_version: env!("CARGO_PKG_VERSION"),
        date: &date,
        machine: machine(),
        quick,
        method,
        devices: devices
            .iter()
            .map(|d| JsonDevice {
                adapter: &d.name,
                backend: &d.backend,
                limits: d.limits.iter().copied().collect(),
                copy_gbps: d.copy_gbps,
                peak_gflops: d.peak_gflops,
                peak_gbps: d.peak_gbps,
                peak_source: &d.peak_source,
            })
            .collect(),
    };
    let mut items = vec![serde_json::to_string(&head)?];
    for r in rows {
        let t = r.sorted();
        let ok = r.ok();
        items.push(serde_json::to_string(&JsonRow {
            section: r.section,
            op: &r.op,
            shape: &r.shape,
            device: &r.device,
            backend: &r.backend,
            mode: r.mode,
            median_ms: ok.then(|| r.median()),
            min_ms: t.first().copied().filter(|_| ok),
            max_ms: t.last().copied().filter(|_| ok),
            kernel_ms: r.kernel_ms,
            reps: t.len(),
            gflops: r.gflops(),
            gbps: r.gbps(),
            fraction_of_ceiling: devices
                .iter()
                .find(|d| d.name == r.device)
                .and_then(|d| d.fraction(r)),
            compiles: r.compiles,
            compile_ms_per_pipeline: (r.compiles > 0).then_some(r.compile_ms),
            dispatches: r.dispatches,
            max_abs_err: r.max_abs_err,
            failed: r.failed.as_deref(),
            background_compiles: r.background_compiles,
        })?);
    }
    let j = format!("[\n{}\n]\n", items.join(",\n"));
    std::fs::write(format!("{dir}/report.json"), j)?;
    let header = format!(
        "# T-Math benchmark\n\n{date} · tmath {} · {}\n\n{method}\n\n",
        env!("CARGO_PKG_VERSION"),
        machine()
    );
    std::fs::write(format!("{dir}/report.md"), format!("{header}{md}"))?;
    let plots = crate::plot::all(rows, devices);
    let mut html = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>T-Math benchmark</title><style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}figure{margin:1.5em 0}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}.method{color:#555;font-size:13px}</style></head><body>\n<h1>T-Math benchmark</h1>\n");
    let _ = writeln!(
        html,
        "<p>{date} · tmath {} · {}</p>",
        env!("CARGO_PKG_VERSION"),
        html_escape(&machine())
    );
    // The original table first, then the plots, then every other section.
    let second = md
        .find("## ")
        .and_then(|i| md[i + 3..].find("\n## ").map(|j| i + 3 + j + 1));
    let (first, rest) = md.split_at(second.unwrap_or(md.len()));
    html += &md_to_html(first);
    for (title, svg) in plots {
        let _ = writeln!(
            html,
            "<figure><figcaption><b>{title}</b></figcaption>\n{svg}\n</figure>"
        );
    }
    html += &md_to_html(rest);
    let _ = writeln!(
        html,
        "<p class=\"method\">{}</p></body></html>",
        html_escape(method)
    );
    std::fs::write(format!("{dir}/report.html"), html)?;
    Ok(())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The report's own Markdown (headings, pipe tables, list items, paragraphs) as HTML.
fn md_to_html(md: &str) -> String {
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split(" | ")
            .map(|c| html_escape(c.trim().trim_matches('|').trim()).replace('`', ""))
            .collect()
    };
    let mut out = String::new();
    let mut lines = md.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(h) = l.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", html_escape(h).replace('`', ""));
        } else if l.starts_with('|') {
            out += "<table>\n";
            let _ = writeln!(out, "<tr><th>{}</th></tr>", cells(l).join("</th><th>"));
            while let Some(row) = lines.next_if(|r| r.starts_with('|')) {
                if row.starts_with("|---") {
                    continue;
                }
                let _ = writeln!(out, "<tr><td>{}</td></tr>", cells(row).join("</td><td>"));
            }
            out += "</table>\n";
        } else if let Some(item) = l.strip_prefix("- ") {
            let _ = writeln!(out, "<p>• {}</p>", html_escape(item).replace("**", ""));
        } else if !l.trim().is_empty() {
            let _ = writeln!(out, "<p>{}</p>", html_escape(l));
        }
    }
    out
}
