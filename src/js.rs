//! The JavaScript surface (feature `js`, wasm32): thin wasm-bindgen exports over the Rust API.
//! `web/src/index.js` wraps them into the documented `Engine` / `Tensor` classes (camelCase
//! names, numbers as scalars, `dispose`, errors as `Error`), so this layer stays mechanical.

use std::cell::Cell;

use wasm_bindgen::prelude::*;

use crate::ir::{BinaryOp, ReduceOp, UnaryOp};
use crate::{Device, JitMode, Tensor};

fn err(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// A device as JavaScript sees it.
#[wasm_bindgen]
pub struct RawEngine {
    dev: Device,
}

#[wasm_bindgen]
impl RawEngine {
    /// `backend`: `"webgpu"`, `"cpu"` or `"auto"` (WebGPU on a hardware adapter; the CPU where
    /// WebGPU is missing or the adapter is a fallback (software) one, such as SwiftShader, where
    /// the CPU backend is faster, as `Device::best()` decides natively).
    pub async fn create(backend: String) -> Result<RawEngine, JsError> {
        let dev = match backend.as_str() {
            "cpu" => Device::cpu().map_err(err)?,
            "webgpu" => Device::wgpu_async()
                .await
                .map_err(|e| JsError::new(&format!("WebGPU is not available here: {e}")))?,
            "auto" => match Device::wgpu_async().await {
                Ok(d) if !d.backend().is_software() => d,
                _ => Device::cpu().map_err(err)?,
            },
            other => {
                return Err(JsError::new(&format!(
                    "Engine.create: backend must be \"webgpu\", \"cpu\" or \"auto\", not {other:?}"
                )))
            }
        };
        Ok(RawEngine { dev })
    }

    /// `"webgpu"` or `"cpu"`.
    pub fn backend(&self) -> String {
        match self.dev.backend_name() {
            "wgpu" => "webgpu".into(),
            other => other.into(),
        }
    }

    /// A tensor from row-major data.
    pub fn tensor(&self, data: Vec<f32>, shape: Vec<usize>) -> Result<RawTensor, JsError> {
        Tensor::from_vec(data, &shape, &self.dev)
            .map(RawTensor::from)
            .map_err(err)
    }

    /// Standard-normal samples (same values as the Rust `Tensor::randn`).
    pub fn randn(&self, shape: Vec<usize>, seed: f64) -> Result<RawTensor, JsError> {
        if !(seed >= 0.0 && seed.fract() == 0.0 && seed <= 2f64.powi(53)) {
            return Err(JsError::new(&format!(
                "randn: seed must be a non-negative integer, got {seed}"
            )));
        }
        Tensor::randn(&shape, seed as u64, &self.dev)
            .map(RawTensor::from)
            .map_err(err)
    }

    /// Sets the JIT mode: `"on"`, `"off"` or `"adaptive"`.
    pub fn set_jit(&self, mode: &str) -> Result<(), JsError> {
        let mode = match mode {
            "on" => JitMode::On,
            "off" => JitMode::Off,
            "adaptive" => JitMode::Adaptive,
            other => {
                return Err(JsError::new(&format!(
                    "setJit: expected true, false or \"adaptive\", not {other:?}"
                )))
            }
        };
        self.dev.set_jit(mode);
        Ok(())
    }

    /// `[compiles, cacheHits, dispatches, compileMs, liveTensors, backgroundCompiles,
    /// genericDispatches, specializedDispatches, cpuDispatches, quickDispatches]`.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.dev.stats();
        vec![
            s.compiles as f64,
            s.cache_hits as f64,
            s.dispatches as f64,
            s.compile_time.as_secs_f64() * 1e3,
            LIVE.with(|n| n.get()) as f64,
            s.background_compiles as f64,
            s.generic_dispatches as f64,
            s.specialized_dispatches as f64,
            s.cpu_dispatches as f64,
            s.quick_dispatches as f64,
        ]
    }

    /// Evaluates several tensors in one schedule and reads them: a `Promise` of an array of
    /// `Float32Array`, in the order given.
    pub fn eval(&self, tensors: Vec<RawTensor>) -> js_sys::Promise {
        let ts: Vec<Tensor> = tensors.iter().map(|t| t.t.clone()).collect();
        wasm_bindgen_futures::future_to_promise(async move {
            let refs: Vec<&Tensor> = ts.iter().collect();
            crate::graph::eval::evaluate(&refs).map_err(|e| JsValue::from(err(e)))?;
            let out = js_sys::Array::new();
            for t in &ts {
                let a = to_f32_array(t).await?;
                out.push(&a);
            }
            Ok(out.into())
        })
    }
}

/// The op families `web/src/index.js` makes `Tensor` methods of: `"unary:neg"`,
/// `"binary:add"`, `"reduce:sum"`, … (the JS method is the camelCase of the name), straight
/// from the op lists of `crate::ir`, so a new op reaches JavaScript without a JS change.
#[wasm_bindgen]
pub fn op_names() -> Vec<String> {
    let unary = UnaryOp::ALL.iter().map(|o| format!("unary:{}", o.name()));
    let binary = BinaryOp::ALL.iter().map(|o| format!("binary:{}", o.name()));
    let reduce = ReduceOp::ALL.iter().map(|o| format!("reduce:{}", o.name()));
    unary.chain(binary).chain(reduce).collect()
}

/// The first paragraph of each op's Rust doc, in the order of [`op_names`] (for the generated
/// TypeScript declarations of the npm package).
#[wasm_bindgen]
pub fn op_docs() -> Vec<String> {
    let para = |d: &str| {
        d.lines()
            .map(str::trim)
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let unary = UnaryOp::ALL.iter().map(|o| para(o.doc()));
    let binary = BinaryOp::ALL.iter().map(|o| para(o.doc()));
    let reduce = ReduceOp::ALL.iter().map(|o| para(o.doc()));
    unary.chain(binary).chain(reduce).collect()
}

thread_local! {
    /// Tensor handles held by JavaScript (created and not yet freed), for `stats().liveTensors`.
    static LIVE: Cell<u64> = const { Cell::new(0) };
}

/// A tensor as JavaScript sees it.
#[wasm_bindgen]
pub struct RawTensor {
    t: Tensor,
}

impl From<Tensor> for RawTensor {
    fn from(t: Tensor) -> Self {
        LIVE.with(|n| n.set(n.get() + 1));
        RawTensor { t }
    }
}

impl Drop for RawTensor {
    fn drop(&mut self) {
        LIVE.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

#[wasm_bindgen]
impl RawTensor {
    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.t.shape().to_vec()
    }

    /// Another handle to the same tensor (JS keeps one per wrapper).
    pub fn handle(&self) -> RawTensor {
        RawTensor::from(self.t.clone())
    }

    /// An elementwise function by its Rust name (see [`op_names`]).
    pub fn unary(&self, op: &str) -> Result<RawTensor, JsError> {
        let op = UnaryOp::from_name(op)
            .ok_or_else(|| JsError::new(&format!("unknown unary op {op:?}")))?;
        self.t.unary_op(op).map(RawTensor::from).map_err(err)
    }

    /// A broadcasting binary op by its Rust name.
    pub fn binary(&self, op: &str, other: &RawTensor) -> Result<RawTensor, JsError> {
        let op = BinaryOp::from_name(op)
            .ok_or_else(|| JsError::new(&format!("unknown binary op {op:?}")))?;
        self.t
            .binary_op(op, &other.t)
            .map(RawTensor::from)
            .map_err(err)
    }

    /// A reduction by its Rust name.
    pub fn reduce(&self, op: &str, axes: Vec<usize>, keepdim: bool) -> Result<RawTensor, JsError> {
        let op = ReduceOp::from_name(op)
            .ok_or_else(|| JsError::new(&format!("unknown reduction {op:?}")))?;
        self.t
            .reduce_op(op, &axes, keepdim)
            .map(RawTensor::from)
            .map_err(err)
    }

    /// Softmax (or log-softmax) along `axis`.
    pub fn softmax(&self, axis: usize, log: bool) -> Result<RawTensor, JsError> {
        if log {
            self.t.log_softmax(axis)
        } else {
            self.t.softmax(axis)
        }
        .map(RawTensor::from)
        .map_err(err)
    }

    /// Matrix product.
    pub fn matmul(&self, other: &RawTensor) -> Result<RawTensor, JsError> {
        self.t.matmul(&other.t).map(RawTensor::from).map_err(err)
    }

    /// Same elements, new shape.
    pub fn reshape(&self, shape: Vec<usize>) -> Result<RawTensor, JsError> {
        self.t.reshape(&shape).map(RawTensor::from).map_err(err)
    }

    /// Swaps two dimensions.
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<RawTensor, JsError> {
        self.t.transpose(d0, d1).map(RawTensor::from).map_err(err)
    }

    /// Reorders dimensions.
    pub fn permute(&self, perm: Vec<usize>) -> Result<RawTensor, JsError> {
        self.t.permute(&perm).map(RawTensor::from).map_err(err)
    }

    /// `self != 0 ? a : b` elementwise, all three broadcast.
    pub fn where_cond(&self, a: &RawTensor, b: &RawTensor) -> Result<RawTensor, JsError> {
        self.t
            .where_cond(&a.t, &b.t)
            .map(RawTensor::from)
            .map_err(err)
    }

    /// The tensor broadcast to `shape` (a view).
    pub fn broadcast_to(&self, shape: Vec<usize>) -> Result<RawTensor, JsError> {
        self.t
            .broadcast_to(&shape)
            .map(RawTensor::from)
            .map_err(err)
    }

    /// Gradients of this scalar loss with respect to each of `wrt` (lazy tensors).
    pub fn grad(&self, wrt: Vec<RawTensor>) -> Result<Vec<RawTensor>, JsError> {
        let refs: Vec<&Tensor> = wrt.iter().map(|t| &t.t).collect();
        let g = self.t.grad(&refs).map_err(err)?;
        Ok(g.into_iter().map(RawTensor::from).collect())
    }

    /// The tensor's value as a new leaf without history (evaluated first if needed).
    pub fn detach(&self) -> Result<RawTensor, JsError> {
        self.t.detach().map(RawTensor::from).map_err(err)
    }

    /// Thin SVD: `[u, s, vt]`.
    pub fn svd(&self) -> Result<Vec<RawTensor>, JsError> {
        let (u, s, vt) = self.t.svd().map_err(err)?;
        Ok(vec![u.into(), s.into(), vt.into()])
    }

    /// Evaluates and reads the elements (a `Promise<Float32Array>`).
    pub fn data(&self) -> js_sys::Promise {
        let t = self.t.clone();
        wasm_bindgen_futures::future_to_promise(async move { Ok(to_f32_array(&t).await?.into()) })
    }
}

/// Evaluates `t` and copies its elements straight into a new `Float32Array`.
async fn to_f32_array(t: &Tensor) -> Result<js_sys::Float32Array, JsValue> {
    t.read_with(|d: &[f32]| js_sys::Float32Array::from(d))
        .await
        .map_err(|e| JsValue::from(err(e)))
}
