//! The MLX backend (cargo feature `mlx`): the plan is mapped onto mlx-rs operations, and with
//! [`JitMode::On`] each distinct program (graph structure + shapes) is traced once into an MLX
//! compiled function (`mlx_rs::transforms::compile`), kept in a cache and reused, so MLX fuses
//! and runs it (Metal on Apple Silicon, MLX's CPU backend elsewhere).
//!
//! MLX objects are not `Sync` and MLX's compile cache and default stream are per thread, so the
//! backend owns one worker thread that holds every MLX array and compiled function; the
//! `Device` talks to it through a channel and stays `Send + Sync`. Results stay in MLX memory
//! (unified memory on Apple Silicon) until read; a dropped tensor frees its array.
//!
//! Semantics stay ours: shapes are checked when ops are made (MLX sees only valid programs),
//! nothing runs before a read, and an MLX exception or panic comes back as [`Error::Device`].
//!
//! What is counted in [`Stats`](crate::Stats): a compile is a program traced into a new MLX
//! compiled function (its `compile_time` is that first, tracing call); a cache hit is a program
//! found compiled. MLX decides its own kernels, so `dispatches` counts what we hand to MLX: one
//! compiled-function call per evaluation with the JIT on, one per op with it off (each op then
//! evaluated on its own, as the old engine did).
//!
//! SVD uses MLX's `linalg::svd`, which MLX runs on its CPU stream only (also on Apple Silicon),
//! so programs that contain an SVD run as eager MLX ops, never compiled.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlx_rs::error::Exception;
use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{Array, Stream};

use super::{Backend, BoxFuture};
use crate::config::{Config, JitMode};
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::program::{downcast, Program as Lowered, Slot, Step, Storage, Value};
use crate::shape::Layout;

type Job = Box<dyn FnOnce(&mut State) + Send>;
type CompiledFn = Box<dyn for<'a> FnMut(&'a [Array]) -> std::result::Result<Vec<Array>, Exception>>;

/// One MLX array held by the worker; dropping the handle frees it there.
pub(crate) struct MlxBuffer {
    id: u64,
    tx: mpsc::Sender<Job>,
}

impl Drop for MlxBuffer {
    fn drop(&mut self) {
        let id = self.id;
        // The worker may be gone at process exit; then there is nothing left to free.
        let _ = self.tx.send(Box::new(move |s: &mut State| {
            s.arrays.remove(&id);
        }));
    }
}

/// A whole evaluation as MLX sees it: the lowered program's steps over input shapes; also the
/// compile cache's key (structure and shapes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Program {
    inputs: Vec<Vec<usize>>,
    steps: Vec<Step>,
    outputs: Vec<Slot>,
    /// A key of a shapeless trace (see [`Program::shapeless_key`]).
    shapeless: bool,
}

impl Program {
    fn has_svd(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.op, Op::Svd { .. }))
    }

    /// Whether MLX's shapeless compile (one trace for every shape of the structure) is valid:
    /// no step that writes a shape into the trace (reshape, broadcast_to, full, slice; SVDs run
    /// eagerly anyway), no empty input (softmax takes another branch there), and at most
    /// [`SHAPELESS_MAX_STEPS`] steps. The inputs are given their shapes before the call, so
    /// the trace reshapes nothing either.
    fn shapeless_ok(&self) -> bool {
        !self.steps.iter().any(|s| {
            matches!(
                s.op,
                Op::Svd { .. } | Op::Full { .. } | Op::Expand | Op::Reshape | Op::Slice { .. }
            )
        }) && self.inputs.iter().all(|s| !s.contains(&0))
            && self.steps.len() <= SHAPELESS_MAX_STEPS
    }

    /// The key of a shapeless trace: every size above 1 written as 2. Sizes are data there;
    /// which are 1 decides broadcasting, so that stays in the key.
    fn shapeless_key(&self) -> Program {
        let squash = |s: &[usize]| s.iter().map(|&d| d.min(2)).collect::<Vec<_>>();
        Program {
            inputs: self.inputs.iter().map(|s| squash(s)).collect(),
            steps: self
                .steps
                .iter()
                .map(|s| Step {
                    shape: squash(&s.shape),
                    ..s.clone()
                })
                .collect(),
            outputs: self.outputs.clone(),
            shapeless: true,
        }
    }
}

/// Programs longer than this are traced per shape: MLX's shapeless trace recurses along the
/// graph (a 10,000-op chain overflowed the worker's stack), the per-shape one does not.
const SHAPELESS_MAX_STEPS: usize = 512;

/// Everything MLX, owned by the worker thread.
struct State {
    arrays: HashMap<u64, Array>,
    next_id: u64,
    compiled: HashMap<Program, CompiledFn>,
    /// Programs in the order they were compiled, to evict the oldest past `MAX_COMPILED`.
    compiled_order: std::collections::VecDeque<Program>,
}

/// Compiled programs kept at most (like the wgpu pipeline cache, bounded).
const MAX_COMPILED: usize = 512;

/// What one evaluation did, for the device's counters.
struct Ran {
    outputs: Vec<u64>,
    compiled: bool,
    cache_hit: bool,
    compile_time: Duration,
    dispatches: u64,
    kernel_time: Duration,
}

pub(crate) struct MlxBackend {
    tx: mpsc::Sender<Job>,
    stream_name: &'static str,
}

/// The stream MLX work goes to: the GPU (Metal) on Apple Silicon, the CPU elsewhere. The GPU
/// stream is never touched on a CPU-only build of MLX (asking for it aborts there).
fn default_stream() -> (Stream, &'static str) {
    if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        (Stream::gpu(), "Metal GPU")
    } else {
        (Stream::cpu(), "CPU")
    }
}

fn mlx_err(what: &str, e: Exception) -> Error {
    Error::device(format!("mlx: {what}: {}", e.what()))
}

fn dims(shape: &[usize]) -> Vec<i32> {
    shape.iter().map(|&d| d as i32).collect()
}

fn axes_i32(axes: &[usize]) -> Vec<i32> {
    axes.iter().map(|&a| a as i32).collect()
}

/// Applies one step (the same code traces compiled functions and runs eager ones).
fn apply(step: &Step, slots: &[Array]) -> std::result::Result<Array, Exception> {
    use mlx_rs::ops;
    let arg = |i: usize| &slots[step.args[i]];
    Ok(match &step.op {
        Op::Unary(u) => u.mlx(arg(0))?,
        Op::Binary(b) => b.mlx(arg(0), arg(1))?,
        Op::Reduce { op, axes, keepdim } => {
            if axes.is_empty() {
                // numpy: reducing over no axis leaves the tensor as it is (MLX would reduce all).
                return Ok(arg(0).clone());
            }
            op.mlx(arg(0), &axes_i32(axes), *keepdim)?
        }
        Op::Softmax { axis, log } => {
            let x = arg(0);
            let axis = *axis as i32;
            if x.size() == 0 {
                // Nothing to normalize (MLX's compiled logsumexp fails on empty input).
                x.clone()
            } else if *log {
                x.subtract(x.logsumexp_axes(&[axis], true)?)?
            } else {
                ops::softmax_axis(x, axis, true)?
            }
        }
        Op::Where => ops::select(arg(0).ne(Array::from_f32(0.0))?, arg(1), arg(2))?,
        Op::Full { bits } => {
            Array::full::<f32>(&dims(&step.shape), Array::from_f32(f32::from_bits(*bits)))?
        }
        Op::Expand => ops::broadcast_to(arg(0), &dims(&step.shape))?,
        Op::MatMul => arg(0).matmul(arg(1))?,
        Op::Reshape => arg(0).reshape(&dims(&step.shape))?,
        Op::Permute(perm) => ops::transpose_axes(arg(0), &axes_i32(perm))?,
        Op::Svd { m, n } => {
            // Thin SVD packed as `U (m×k) | S (k) | Vᵀ (k×n)`, like every backend's.
            let k = (*m).min(*n) as i32;
            let (u, s, vt) = mlx_rs::with_stream(&Stream::cpu(), || mlx_rs::linalg::svd(arg(0)))?;
            let u = u.try_index((.., 0..k))?.reshape(&[-1])?;
            let vt = vt.try_index(0..k)?.reshape(&[-1])?;
            ops::concatenate(&[u, s, vt], 0)?
        }
        Op::Slice { offset } => {
            // The dense window `[offset, offset + numel(shape))` of the flat input.
            let len: usize = step.shape.iter().product();
            let (start, end) = (*offset as i32, (*offset + len) as i32);
            arg(0)
                .reshape(&[-1])?
                .try_index(start..end)?
                .reshape(&dims(&step.shape))?
        }
        // Sources are realized on the host before lowering (`lower` refuses them too).
        Op::Data | Op::Randn { .. } => {
            return Err(Exception::custom(format!(
                "internal: {} reached the MLX program",
                step.op.name()
            )))
        }
    })
}

/// Runs a program on its inputs; `each` is called after every step (eager mode evaluates
/// there). Outputs are made row-major contiguous so they can be read as slices.
fn run_program(
    p: &Program,
    inputs: &[Array],
    mut each: impl FnMut(&Array) -> std::result::Result<(), Exception>,
) -> std::result::Result<Vec<Array>, Exception> {
    let mut slots: Vec<Array> = Vec::with_capacity(inputs.len() + p.steps.len());
    for (a, shape) in inputs.iter().zip(&p.inputs) {
        // (No reshape where the array has the shape already: a shapeless trace must not
        // record one.)
        if a.shape() == dims(shape).as_slice() {
            slots.push(a.clone());
        } else {
            slots.push(a.reshape(&dims(shape))?);
        }
    }
    for step in &p.steps {
        let v = apply(step, &slots)?;
        each(&v)?;
        slots.push(v);
    }
    p.outputs.iter().map(|&o| slots[o].contiguous()).collect()
}

impl State {
    fn store(&mut self, a: Array) -> u64 {
        self.next_id += 1;
        self.arrays.insert(self.next_id, a);
        self.next_id
    }

    fn run(&mut self, p: Program, input_ids: &[u64], jit: JitMode, profile: bool) -> Result<Ran> {
        let mut inputs = input_ids
            .iter()
            .map(|id| {
                self.arrays
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Error::device("internal: an MLX input was freed"))
            })
            .collect::<Result<Vec<Array>>>()?;
        let mut ran = Ran {
            outputs: vec![],
            compiled: false,
            cache_hit: false,
            compile_time: Duration::ZERO,
            dispatches: 0,
            kernel_time: Duration::ZERO,
        };
        let t0 = Instant::now();
        let outs = if jit.caches() && !p.has_svd() {
            // The adaptive mode traces once per structure where MLX's shapeless compile is
            // valid: a new shape of it neither retraces nor recompiles.
            let shapeless = jit == JitMode::Adaptive && p.shapeless_ok();
            let key = if shapeless {
                // Uploads are flat: shaped here (a view), outside the trace.
                for (a, shape) in inputs.iter_mut().zip(&p.inputs) {
                    if a.shape() != dims(shape).as_slice() {
                        *a = a.reshape(&dims(shape)).map_err(|e| mlx_err("reshape", e))?;
                    }
                }
                p.shapeless_key()
            } else {
                p.clone()
            };
            let t_compile = Instant::now();
            let outs = match self.compiled.get_mut(&key) {
                Some(f) => {
                    ran.cache_hit = true;
                    f(&inputs)
                }
                None => {
                    let prog = p.clone();
                    let mut f: CompiledFn = Box::new(mlx_rs::transforms::compile::compile(
                        move |xs: &[Array]| run_program(&prog, xs, |_| Ok(())),
                        shapeless,
                    ));
                    let outs = f(&inputs);
                    ran.compiled = true;
                    ran.compile_time = t_compile.elapsed();
                    if self.compiled.len() >= MAX_COMPILED {
                        if let Some(old) = self.compiled_order.pop_front() {
                            self.compiled.remove(&old);
                        }
                    }
                    self.compiled_order.push_back(key.clone());
                    self.compiled.insert(key, f);
                    outs
                }
            }
            .map_err(|e| mlx_err("compiled call", e))?;
            ran.dispatches = 1;
            outs
        } else {
            // Eager: every op evaluated on its own.
            let mut n = 0;
            let outs = run_program(&p, &inputs, |a| {
                n += 1;
                a.eval()
            })
            .map_err(|e| {
                // LAPACK's failure (NaN or infinity in the input, or no convergence) is the
                // same `Numerical` error as on the other backends.
                if p.has_svd() && e.what().contains("SVD") {
                    Error::Numerical {
                        op: "svd",
                        message: format!(
                            "MLX's SVD failed (NaN or infinity in the input, or no convergence): {}",
                            e.what()
                        ),
                    }
                } else {
                    mlx_err("eager op", e)
                }
            })?;
            ran.dispatches = n;
            outs
        };
        mlx_rs::transforms::eval(outs.iter()).map_err(|e| mlx_err("eval", e))?;
        if profile {
            ran.kernel_time = t0.elapsed().saturating_sub(ran.compile_time);
        }
        ran.outputs = outs.into_iter().map(|a| self.store(a)).collect();
        Ok(ran)
    }
}

impl MlxBackend {
    pub fn new() -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("tmath-mlx".into())
            .spawn(move || {
                let started = catch_unwind(|| {
                    let (stream, name) = default_stream();
                    // A first array proves MLX loads and runs.
                    let probe = mlx_rs::with_stream(&stream, || {
                        let a = Array::from_slice(&[1.0f32, 2.0], &[2]);
                        a.add(&a).and_then(|b| b.eval().map(|_| b))
                    });
                    (
                        stream,
                        name,
                        probe.map(|_| ()).map_err(|e| e.what().to_string()),
                    )
                });
                let stream = match started {
                    Ok((stream, name, Ok(()))) => {
                        let _ = ready_tx.send(Ok(name));
                        stream
                    }
                    Ok((_, _, Err(e))) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err("MLX panicked while starting".into()));
                        return;
                    }
                };
                let mut state = State {
                    arrays: HashMap::new(),
                    next_id: 0,
                    compiled: HashMap::new(),
                    compiled_order: Default::default(),
                };
                mlx_rs::with_stream(&stream, || {
                    for job in rx {
                        job(&mut state);
                    }
                });
            })
            .map_err(|e| Error::Unavailable {
                backend: "mlx",
                message: format!("cannot start the MLX thread: {e}"),
            })?;
        let stream_name = ready_rx
            .recv()
            .map_err(|_| "the MLX thread stopped while starting".to_string())
            .and_then(|r| r)
            .map_err(|message| Error::Unavailable {
                backend: "mlx",
                message,
            })?;
        Ok(MlxBackend { tx, stream_name })
    }

    /// Runs `f` on the MLX thread and waits for its result; a panic there is an `Err`.
    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        self.tx
            .send(Box::new(move |s: &mut State| {
                let r = catch_unwind(AssertUnwindSafe(|| f(s)));
                let _ = rtx.send(r);
            }))
            .map_err(|_| Error::device("mlx: the MLX thread has stopped"))?;
        match rrx.recv() {
            Ok(Ok(r)) => r,
            Ok(Err(p)) => {
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(Error::device(format!("mlx: panicked: {what}")))
            }
            Err(_) => Err(Error::device("mlx: the MLX thread has stopped")),
        }
    }

    fn handle(&self, id: u64) -> Storage {
        Arc::new(MlxBuffer {
            id,
            tx: self.tx.clone(),
        })
    }
}

/// The MLX array id behind a value (values on this backend are always dense row-major).
fn mlx_id(v: &Value) -> Result<u64> {
    match downcast::<MlxBuffer>(&v.storage) {
        Some(b) if v.layout.is_contiguous() && v.layout.offset == 0 => Ok(b.id),
        Some(_) => Err(Error::device("internal: a strided MLX value")),
        None => Err(Error::DeviceMismatch { op: "mlx" }),
    }
}

/// The MLX program of a lowered program: its steps over the inputs' shapes, and the array ids
/// of its inputs. Returned input slots need no MLX work and are not among its outputs.
fn lower(p: &Lowered) -> Result<(Program, Vec<u64>)> {
    if let Some(s) = p
        .steps
        .iter()
        .find(|s| matches!(s.op, Op::Data | Op::Randn { .. }))
    {
        return Err(Error::device(format!(
            "internal: {} reached the MLX program",
            s.op.name()
        )));
    }
    let input_ids = p.inputs.iter().map(mlx_id).collect::<Result<Vec<_>>>()?;
    Ok((
        Program {
            inputs: p.inputs.iter().map(|v| v.layout.shape.clone()).collect(),
            steps: p.steps.clone(),
            outputs: p
                .returned
                .iter()
                .copied()
                .filter(|&r| r >= p.inputs.len())
                .collect(),
            shapeless: false,
        },
        input_ids,
    ))
}

impl Backend for MlxBackend {
    fn kind(&self) -> &'static str {
        "mlx"
    }

    fn adapter_name(&self) -> String {
        format!("MLX ({} stream)", self.stream_name)
    }

    fn upload(&self, data: Vec<f32>) -> Result<Storage> {
        let id = self.call(move |s| {
            let a = Array::from_slice(&data, &[data.len() as i32]);
            Ok(s.store(a))
        })?;
        Ok(self.handle(id))
    }

    fn execute(&self, p: &Lowered, cfg: &Config) -> Result<Vec<Value>> {
        for step in &p.steps {
            self.check_alloc(step.op.name(), crate::shape::numel(&step.shape) as u64 * 4)?;
        }
        let (program, input_ids) = lower(p)?;
        let jit = cfg.jit();
        let profile = cfg.profiling();
        let ran = self.call(move |s| s.run(program, &input_ids, jit, profile))?;
        cfg.record(|st| {
            if ran.compiled {
                st.compiles += 1;
                st.compile_time += ran.compile_time;
            }
            if ran.cache_hit {
                st.cache_hits += 1;
            }
            st.dispatches += ran.dispatches;
            st.kernel_time += ran.kernel_time;
        });
        let mut fresh = ran.outputs.into_iter();
        p.returned
            .iter()
            .map(|&r| {
                if r < p.inputs.len() {
                    return Ok(p.inputs[r].clone());
                }
                let id = fresh
                    .next()
                    .ok_or_else(|| Error::device("internal: MLX returned too few outputs"))?;
                Ok(Value {
                    storage: self.handle(id),
                    layout: Layout::contiguous(p.shape(r)),
                })
            })
            .collect()
    }

    fn synchronize(&self) -> Result<()> {
        self.call(|_| Ok(()))
    }

    fn read<'a>(&'a self, value: &'a Value, _cfg: &'a Config) -> BoxFuture<'a, Result<Vec<f32>>> {
        Box::pin(async move {
            let id = mlx_id(value)?;
            let n = value.layout.shape.iter().product::<usize>();
            if n == 0 {
                return Ok(vec![]);
            }
            let data = self.call(move |s| {
                let a = s
                    .arrays
                    .get(&id)
                    .ok_or_else(|| Error::device("internal: MLX array freed before read"))?;
                a.try_as_slice::<f32>()
                    .map(|x| x.to_vec())
                    .map_err(|e| Error::device(format!("mlx: read: {e}")))
            })?;
            if data.len() != n {
                return Err(Error::device("internal: MLX array of the wrong size"));
            }
            Ok(data)
        })
    }
}
