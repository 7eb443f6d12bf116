//! The matmul autotuner: which register tile of the matmul template
//! ([`MATMUL_TILES`]) runs a matmul shape fastest on this adapter.
//!
//! The first time a shape (`KernelDesc::matmul_shape`: `m, n, k`, batch, copy orders) is seen
//! with the JIT caching, the executor queues it on the compile thread and goes on with the size
//! rule's tile. The job compiles the shape's specialized kernel in every tile, times each on
//! scratch buffers of the shape's sizes (the same number of dispatches a submission, the best
//! of [`TRIALS`] submissions), and records the fastest — the size rule's tile unless another is
//! at least [`MARGIN`] faster, so noise does not flip a choice. The losers' pipelines are
//! dropped; the winner's stays in the cache, where the next call finds it. A shape is measured
//! once per process and adapter: natively the choices are kept in a small text file beside the
//! hot kernels (`tune-…`, one per adapter, driver and crate version), read when the backend
//! starts; in browsers they last as long as the page's device (the job runs on the event loop
//! and waits for each timed submission through `onSubmittedWorkDone`).
//! A tuning that cannot run (scratch too large, a compile or an allocation failing) leaves the
//! size rule in place.
//!
//! Every tile computes each output as the same chain of `fma` over `k` in order, so the choice
//! never changes a result, only its speed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::context::Context;
use super::lock;
use super::pipelines::{web_time_now, Pipelines};
use crate::codegen::{Groups, KernelDesc, Variant, MATMUL_TILES};
use crate::config::Stats;

/// Timed submissions per tile; each tile's time is its best.
const TRIALS: usize = 3;
/// How much faster (fraction of its time) a tile must be than the size rule's to replace it.
const MARGIN: f64 = 0.03;
/// Matmuls with less work (multiply-adds) are not tuned: the tile barely matters there.
pub(crate) const MIN_WORK: usize = 1 << 21;
/// Scratch (output and input) above this many bytes is not allocated for a tuning: it is
/// allocated beside the caller's own buffers, in the background (4096² takes 128 MiB).
const MAX_SCRATCH: u64 = 256 << 20;
/// The dispatches of one timed submission run about this long (at most [`MAX_REPS`]).
const TARGET: Duration = Duration::from_millis(2);
const MAX_REPS: usize = 32;
/// A shape whose one dispatch takes longer is not tuned (its tuning would hold the GPU for
/// seconds).
const MAX_DISPATCH: Duration = Duration::from_millis(50);
/// The file's first line: format and crate version (another version's file is ignored).
const HEADER: &str = concat!("tmath autotune 1 ", env!("CARGO_PKG_VERSION"));

/// A matmul shape, as `KernelDesc::matmul_shape` gives it.
pub(crate) type Shape = [usize; 6];

/// The tuned tiles of this adapter, and the shapes queued or tried in this process.
pub(crate) struct Tuner {
    state: Mutex<State>,
    /// `TMATH_AUTOTUNE=off`: nothing is claimed (choices on file still apply).
    off: bool,
}

struct State {
    chosen: HashMap<Shape, (u8, u8)>,
    claimed: HashSet<Shape>,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    path: Option<PathBuf>,
    dirty: bool,
}

impl Tuner {
    /// A tuner with the choices of `path` (the file need not exist; `None`: memory only).
    pub fn open(path: Option<PathBuf>) -> Tuner {
        let chosen = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|s| parse(&s))
            .unwrap_or_default();
        Tuner {
            state: Mutex::new(State {
                chosen,
                claimed: HashSet::new(),
                path,
                dirty: false,
            }),
            off: std::env::var("TMATH_AUTOTUNE").is_ok_and(|v| v == "off"),
        }
    }

    /// The tile measured fastest for `shape`, if it was measured.
    pub fn choice(&self, shape: &Shape) -> Option<(u8, u8)> {
        lock(&self.state).chosen.get(shape).copied()
    }

    /// Claims `shape` for tuning: true the first time it is neither measured nor claimed
    /// (the caller then queues its tuning); always false under `TMATH_AUTOTUNE=off`.
    pub fn claim(&self, shape: &Shape) -> bool {
        if self.off {
            return false;
        }
        let mut s = lock(&self.state);
        !s.chosen.contains_key(shape) && s.claimed.insert(*shape)
    }

    fn record(&self, shape: Shape, tile: (u8, u8)) {
        let mut s = lock(&self.state);
        s.chosen.insert(shape, tile);
        s.dirty = true;
    }

    /// Writes the file if choices were added: merged with what another process wrote since,
    /// atomically (natively).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self) {
        let mut s = lock(&self.state);
        let Some(path) = s.path.clone() else { return };
        if !std::mem::take(&mut s.dirty) {
            return;
        }
        let mut all = std::fs::read_to_string(&path)
            .map(|t| parse(&t))
            .unwrap_or_default();
        all.extend(s.chosen.iter().map(|(k, v)| (*k, *v)));
        super::pipelines::write_atomically(&path, write(&all).as_bytes());
    }
}

/// `HEADER`, then one line per shape: `m n k batch a_along_k b_along_k rows cols`.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn write(chosen: &HashMap<Shape, (u8, u8)>) -> String {
    let mut lines: Vec<String> = chosen
        .iter()
        .map(|(s, (r, c))| {
            let s: Vec<String> = s.iter().map(|v| v.to_string()).collect();
            format!("{} {r} {c}", s.join(" "))
        })
        .collect();
    lines.sort();
    format!("{HEADER}\n{}", lines.join("\n") + "\n")
}

/// The choices of a file `write` made: nothing for another format or version; malformed lines
/// and tiles the template does not render are skipped.
fn parse(s: &str) -> HashMap<Shape, (u8, u8)> {
    let mut out = HashMap::new();
    let Some(rest) = s.strip_prefix(HEADER).and_then(|r| r.strip_prefix('\n')) else {
        return out;
    };
    for line in rest.lines() {
        let v: Vec<usize> = match line.split(' ').map(str::parse).collect() {
            Ok(v) => v,
            Err(_) => continue,
        };
        let [m, n, k, b, ak, bk, r, c] = v[..] else {
            continue;
        };
        let tile = (r.min(255) as u8, c.min(255) as u8);
        if MATMUL_TILES.contains(&tile) {
            out.insert([m, n, k, b, ak, bk], tile);
        }
    }
    out
}

/// The tuning job of `desc` (a matmul claimed with [`Tuner::claim`]): measures its tiles and
/// records the fastest; counted in `stats` (`tunes_done`) whether it could measure or not.
pub(crate) async fn run(
    ctx: &Context,
    pipelines: &Pipelines,
    desc: &KernelDesc,
    stats: &Mutex<Stats>,
) {
    if let (Some(shape), Some(tile)) = (
        desc.matmul_shape(),
        measure(ctx, pipelines, desc, stats).await,
    ) {
        pipelines.tuner.record(shape, tile);
    }
    lock(stats).tunes_done += 1;
}

/// The fastest tile of `desc`'s shape, or `None` when it cannot be measured.
async fn measure(
    ctx: &Context,
    pipelines: &Pipelines,
    desc: &KernelDesc,
    stats: &Mutex<Stats>,
) -> Option<(u8, u8)> {
    let mut rule = desc.clone();
    rule.tile = None;
    let (r, c) = rule.matmul_tile()?;
    let rule_tile = (r as u8, c as u8);
    // Scratch: the output, and one buffer every input binds (as large as the largest input's
    // extent), holding a fixed pattern (the speed of a product does not depend on its values).
    let out_elems = crate::shape::numel(&desc.out_shape).max(4) as u64;
    let in_elems = desc.slots.iter().map(|l| l.extent()).max()?.max(4) as u64;
    if (out_elems + in_elems) * 4 > MAX_SCRATCH
        || out_elems.max(in_elems) * 4 > ctx.max_binding_bytes()
    {
        return None;
    }
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let storage = |bytes: u64| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tmath tune scratch"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let out = storage(out_elems * 4);
    let input = storage(in_elems * 4);
    let pattern: Vec<f32> = (0..in_elems as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 20) as f32 / 4096.0 - 0.5)
        .collect();
    ctx.queue
        .write_buffer(&input, 0, bytemuck::cast_slice(&pattern));
    drop(pattern);
    if scope.pop().await.is_some() {
        return None;
    }
    // Every tile's pipeline (compiled now unless cached) and grid.
    let mut cands = vec![];
    for &tile in &MATMUL_TILES {
        let mut d = desc.clone();
        d.tile = Some(tile);
        let pipeline = pipelines.compile_candidate(ctx, &d, stats).await?;
        let Groups::Grid(g) = d.launch_as(Variant::Specialized).groups else {
            return None;
        };
        let g = ctx.launch_grid("matmul", Groups::Grid(g)).ok()?;
        cands.push((tile, d, pipeline, g));
    }
    let launch = desc.launch();
    let (bgl, _) = pipelines.layout(ctx, launch.bindings, false);
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: out.as_entire_binding(),
    }];
    entries.extend(
        (1..=desc.slots.len() as u32).map(|binding| wgpu::BindGroupEntry {
            binding,
            resource: input.as_entire_binding(),
        }),
    );
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("tmath tune"),
        layout: &bgl,
        entries: &entries,
    });
    let time = |p: &wgpu::ComputePipeline, [x, y, z]: [u32; 3], reps: usize| {
        let mut enc = ctx.new_encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(p);
            pass.set_bind_group(0, &bg, &[]);
            for _ in 0..reps {
                pass.dispatch_workgroups(x, y, z);
            }
        }
        let t0 = web_time_now();
        let index = ctx.queue.submit([enc.finish()]);
        async move {
            super::readback::work_done(ctx, index).await.ok()?;
            Some(web_time_now().saturating_sub(t0))
        }
    };
    // Warm-up (first runs load the pipelines), then the rule's tile once for the repetitions.
    for (_, _, p, g) in &cands {
        time(p, *g, 1).await?;
    }
    let rule_at = cands.iter().position(|c| c.0 == rule_tile)?;
    let one = time(&cands[rule_at].2, cands[rule_at].3, 1).await?;
    if one > MAX_DISPATCH {
        return None;
    }
    let reps =
        (TARGET.as_secs_f64() / one.as_secs_f64().max(1e-6)).clamp(1.0, MAX_REPS as f64) as usize;
    let mut best = vec![Duration::MAX; cands.len()];
    for _ in 0..TRIALS {
        for (i, (_, _, p, g)) in cands.iter().enumerate() {
            best[i] = best[i].min(time(p, *g, reps).await?);
        }
    }
    let fastest = (0..cands.len()).min_by_key(|&i| best[i])?;
    let win = if best[fastest].as_secs_f64() < best[rule_at].as_secs_f64() * (1.0 - MARGIN) {
        fastest
    } else {
        rule_at
    };
    for (i, (_, d, _, _)) in cands.iter().enumerate() {
        if i != win {
            pipelines.forget(d);
        }
    }
    Some(cands[win].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format_round_trips_and_rejects_garbage() {
        let mut m = HashMap::new();
        m.insert([1024, 1024, 1024, 1, 1, 0], (8, 4));
        m.insert([100, 7, 3000, 12, 0, 1], (4, 8));
        assert_eq!(parse(&write(&m)), m);
        // Another version's file, a malformed line, a tile the template has not.
        assert!(parse("tmath autotune 0 0.0.1\n1 1 1 1 1 1 8 8\n").is_empty());
        let w = write(&m) + "1 2 x\n5 5 5 1 1 1 6 6\n";
        assert_eq!(parse(&w), m);
    }
}
