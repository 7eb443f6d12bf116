//! The CPU backend: the reference implementation of every op and the fallback device. With the
//! JIT on it runs the GPU's schedule, each fused kernel as loops over chunks (`fused.rs`); with
//! it off it interprets the program one op at a time with the kernels of `kernels.rs`.

mod buffers;
mod fused;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod gemm128;
pub(crate) mod kernels;

pub(crate) use buffers::HostBuffer;

use std::sync::Arc;

use super::{Backend, BoxFuture};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::program::{downcast, Program, Step, Storage, Value};
use crate::shape::{numel, Layout};

pub(crate) struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }
}

/// A CPU value's buffer and layout.
pub(crate) fn host(v: &Value) -> Result<(&[f32], &Layout)> {
    match downcast::<HostBuffer>(&v.storage) {
        Some(data) => Ok((data, &v.layout)),
        None => Err(Error::DeviceMismatch { op: "cpu" }),
    }
}

/// A dense row-major result.
pub(crate) fn dense(data: Vec<f32>, shape: &[usize]) -> Value {
    Value {
        storage: Arc::new(HostBuffer::new(data)),
        layout: Layout::contiguous(shape),
    }
}

fn run_step(node: &Step, inputs: &[Value]) -> Result<Value> {
    let input = |i: usize| host(&inputs[i]);
    // Every result is checked against the host's memory before its kernel allocates it.
    super::check_host(node.op.name(), numel(&node.shape) as u64 * 4)?;
    let out = match &node.op {
        Op::Unary(u) => {
            let (x, l) = input(0)?;
            kernels::unary(*u, x, l)
        }
        Op::Binary(b) => {
            let (a, la) = input(0)?;
            let (c, lc) = input(1)?;
            kernels::binary(*b, a, la, c, lc, &node.shape)
        }
        Op::Where => kernels::select([input(0)?, input(1)?, input(2)?], &node.shape),
        Op::Full { bits } => {
            crate::shape::try_vec("full", numel(&node.shape), f32::from_bits(*bits))?
        }
        Op::Reduce { op, axes, .. } => {
            let (x, l) = input(0)?;
            kernels::reduce(*op, x, l, axes)
        }
        Op::Softmax { axis, log } => {
            let (x, l) = input(0)?;
            kernels::softmax(x, l, *axis, *log)
        }
        Op::MatMul => {
            let (a, la) = input(0)?;
            let (b, lb) = input(1)?;
            kernels::matmul(a, la, b, lb, &node.shape)
        }
        Op::Reshape => {
            let (x, l) = input(0)?;
            kernels::gather(x, l)
        }
        Op::Svd { m, n } => {
            let (x, l) = input(0)?;
            kernels::svd(x, l, *m, *n)?
        }
        Op::Data | Op::Randn { .. } | Op::Permute(_) | Op::Slice { .. } | Op::Expand => {
            return Err(Error::device(format!(
                "internal: {} reached the CPU kernels",
                node.op.name()
            )))
        }
    };
    Ok(dense(out, &node.shape))
}

impl Backend for CpuBackend {
    fn kind(&self) -> &'static str {
        "cpu"
    }

    fn adapter_name(&self) -> String {
        format!("cpu ({})", std::env::consts::ARCH)
    }

    fn upload(&self, data: Vec<f32>) -> Result<Storage> {
        Ok(Arc::new(HostBuffer::new(data)))
    }

    fn execute(&self, program: &Program, cfg: &Config) -> Result<Vec<Value>> {
        if cfg.jit().caches() {
            return fused::execute(program, cfg);
        }
        #[cfg(not(target_arch = "wasm32"))]
        let profiling = cfg.profiling();
        program.interpret(|step, inputs| {
            #[cfg(not(target_arch = "wasm32"))]
            let t0 = profiling.then(std::time::Instant::now);
            let v = run_step(step, inputs)?;
            cfg.record(|s| {
                s.dispatches += 1;
                #[cfg(not(target_arch = "wasm32"))]
                if let Some(t0) = t0 {
                    s.kernel_time += t0.elapsed();
                }
            });
            Ok(v)
        })
    }

    fn host_slice<'a>(&self, value: &'a Value) -> Option<&'a [f32]> {
        let (data, layout) = host(value).ok()?;
        super::contiguous_slice(data, layout)
    }

    fn read<'a>(&'a self, value: &'a Value, _cfg: &'a Config) -> BoxFuture<'a, Result<Vec<f32>>> {
        Box::pin(async move {
            let (data, layout) = host(value)?;
            Ok(kernels::gather(data, layout))
        })
    }
}
