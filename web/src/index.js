// T-Math for JavaScript: the documented Engine / Tensor API over the wasm-bindgen exports.
// Plain ESM, no runtime dependencies; works in pages, module workers and Node (CPU backend).

import init, { RawEngine, op_names } from "../pkg/tmath.js";

let loading = null;
let wasmBuild = null;

// A module whose one function is f32x4.relaxed_madd: valid exactly where the engine has relaxed SIMD.
const RELAXED_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 0x60, 3, 0x7b, 0x7b, 0x7b, 1, 0x7b, 3, 2, 1, 0, 10, 13, 1, 11, 0, 0x20, 0, 0x20, 1, 0x20, 2, 0xfd, 0x85, 0x02, 0x0b]);

function hasRelaxedSimd() {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

// Without a given module: the relaxed-SIMD build (fused multiply-adds in the matrix product)
// where the engine validates it, else the SIMD build every current engine runs.
function load(wasm) {
  if (!loading) {
    let source = wasm;
    if (wasm === undefined) {
      wasmBuild = hasRelaxedSimd() ? "relaxed-simd" : "simd128";
      source = wasmBuild === "relaxed-simd" ? new URL("../pkg/tmath_relaxed_bg.wasm", import.meta.url) : undefined;
    } else {
      wasmBuild = "given";
    }
    loading = init(source === undefined ? undefined : { module_or_path: source }).then(installOps);
  }
  return loading;
}

// Tensors that are never disposed are freed when garbage-collected; dispose() is still the way.
const registry = typeof FinalizationRegistry === "function" ? new FinalizationRegistry((raw) => raw.free()) : null;

function checkDims(what, dims) {
  if (!Array.isArray(dims) || !dims.every((d) => Number.isInteger(d) && d >= 0 && d < 2 ** 32)) {
    throw new Error(`${what}: expected an array of non-negative integers, got ${JSON.stringify(dims)}`);
  }
  return Uint32Array.from(dims);
}

export class Engine {
  /**
   * Starts an engine. `backend`: "webgpu", "cpu" or "auto" (WebGPU on a hardware adapter; the CPU
   * where WebGPU is missing or the only adapter is a fallback (software) one, e.g. SwiftShader,
   * where the CPU backend is faster). `wasm` optionally gives the module's bytes or URL.
   */
  static async create({ backend = "auto", wasm } = {}) {
    await load(wasm);
    return new Engine(await RawEngine.create(backend));
  }

  constructor(raw) {
    this._raw = raw;
  }

  /**
   * Which WebAssembly build this page or process loaded: "relaxed-simd" (fused multiply-adds in
   * the CPU backend's matrix product; chosen where the engine validates relaxed SIMD), "simd128"
   * (every other engine), or "given" (the module passed to `create`); null before the first
   * `create`.
   */
  static get wasmBuild() {
    return wasmBuild;
  }

  /** "webgpu" or "cpu". */
  get backend() {
    return this._raw.backend();
  }

  /** A tensor from a Float32Array or an array of numbers, row-major; shape [] is a scalar. */
  tensor(data, shape) {
    const dims = checkDims("tensor", shape);
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    return new Tensor(this, this._raw.tensor(values, dims));
  }

  /** Standard-normal samples; the same values as Rust's Tensor::randn(shape, seed). */
  randn(shape, seed = 0) {
    return new Tensor(this, this._raw.randn(checkDims("randn", shape), seed));
  }

  /**
   * JIT on (true, the default), off (false: one kernel per op, rebuilt every time), or
   * "adaptive" (no compile stall at a new shape; specialized kernels compiled between
   * evaluations).
   */
  setJit(mode) {
    if (mode === "adaptive") this._raw.set_jit("adaptive");
    else if (typeof mode === "boolean") this._raw.set_jit(mode ? "on" : "off");
    else throw new Error(`setJit: expected true, false or "adaptive", got ${JSON.stringify(mode)}`);
  }

  /**
   * Counters since the engine started, and `liveTensors`: tensor handles not yet freed (by
   * dispose() or the garbage collector) in this module.
   */
  stats() {
    const [compiles, cacheHits, dispatches, compileMs, liveTensors, backgroundCompiles, genericDispatches, specializedDispatches, cpuDispatches, quickDispatches] = this._raw.stats();
    return { compiles, cacheHits, dispatches, compileMs, liveTensors, backgroundCompiles, genericDispatches, specializedDispatches, cpuDispatches, quickDispatches };
  }

  /**
   * Evaluates several tensors in one schedule (shared work once: a loss and its gradients run
   * forward and backward together) and resolves to their elements, one Float32Array each.
   */
  async eval(tensors) {
    return await this._raw.eval(tensors.map((t) => t._live().handle()));
  }

  _operand(x) {
    if (x instanceof Tensor) return x._live();
    if (typeof x === "number") return this._raw.tensor(Float32Array.of(x), new Uint32Array(0));
    throw new Error(`expected a Tensor or a number, got ${typeof x}`);
  }
}

export class Tensor {
  constructor(engine, raw) {
    this._engine = engine;
    this._raw = raw;
    registry?.register(this, raw, this);
  }

  _live() {
    if (!this._raw) throw new Error("this tensor was disposed");
    return this._raw;
  }

  _wrap(raw) {
    return new Tensor(this._engine, raw);
  }

  /** The shape, an array of numbers. */
  get shape() {
    return Array.from(this._live().shape());
  }

  /** True once dispose() was called. */
  get disposed() {
    return this._raw === null;
  }

  /** Frees the tensor now; using it afterwards throws. */
  dispose() {
    if (this._raw) {
      registry?.unregister(this);
      this._raw.free();
      this._raw = null;
    }
  }

  /** Evaluates and reads the elements, row-major. */
  async data() {
    return await this._live().data();
  }

  matmul(other) {
    return this._wrap(this._live().matmul(this._engine._operand(other)));
  }
  softmax(axis) {
    return this._wrap(this._live().softmax(axis, false));
  }
  logSoftmax(axis) {
    return this._wrap(this._live().softmax(axis, true));
  }
  reshape(shape) {
    return this._wrap(this._live().reshape(checkDims("reshape", shape)));
  }
  transpose(d0, d1) {
    return this._wrap(this._live().transpose(d0, d1));
  }
  permute(perm) {
    return this._wrap(this._live().permute(checkDims("permute", perm)));
  }
  /** `this != 0 ? a : b` elementwise (tensors or numbers; all three broadcast). */
  whereCond(a, b) {
    const ra = this._engine._operand(a);
    const rb = this._engine._operand(b);
    try {
      return this._wrap(this._live().where_cond(ra, rb));
    } finally {
      if (!(a instanceof Tensor)) ra.free();
      if (!(b instanceof Tensor)) rb.free();
    }
  }
  /** This tensor broadcast to `shape` (numpy rules; a view). */
  broadcastTo(shape) {
    return this._wrap(this._live().broadcast_to(checkDims("broadcastTo", shape)));
  }
  /**
   * Gradients of this scalar loss with respect to each tensor of `wrt`: lazy tensors of their
   * shapes (zeros where the loss does not depend on one). Evaluate them with the loss in one
   * `engine.eval([loss, ...grads])`.
   */
  grad(wrt) {
    if (!Array.isArray(wrt)) throw new Error("grad: expected an array of tensors");
    for (const t of wrt) {
      if (!(t instanceof Tensor)) throw new Error("grad: expected an array of tensors");
    }
    return this._live()
      .grad(wrt.map((t) => t._live().handle()))
      .map((raw) => this._wrap(raw));
  }
  /**
   * This tensor's value as a new tensor without history (evaluated first if needed; no copy):
   * gradients stop here, and the graph behind it can be freed. Training loops detach their
   * updated parameters each step.
   */
  detach() {
    return this._wrap(this._live().detach());
  }
  /** Thin SVD: { u, s, vt }, singular values descending. */
  svd() {
    const [u, s, vt] = this._live().svd();
    return { u: this._wrap(u), s: this._wrap(s), vt: this._wrap(vt) };
  }
}

/** "gelu_tanh" → "geluTanh". */
function camelCase(name) {
  return name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

// The elementwise and reduction methods come from the engine's own op list (Rust's `op_names`,
// made from the op vocabulary), so a new op reaches JavaScript without a change here.
function installOps() {
  for (const entry of op_names()) {
    const [family, rust] = entry.split(":");
    const js = camelCase(rust);
    if (family === "unary") {
      Tensor.prototype[js] = function () {
        return this._wrap(this._live().unary(rust));
      };
    } else if (family === "binary") {
      Tensor.prototype[js] = function (other) {
        const rhs = this._engine._operand(other);
        try {
          return this._wrap(this._live().binary(rust, rhs));
        } finally {
          if (!(other instanceof Tensor)) rhs.free();
        }
      };
    } else if (family === "reduce") {
      // Axes left out: every axis, as numpy's `axis=None` and TF.js (an empty array reduces
      // nothing, as in numpy).
      Tensor.prototype[js] = function (axes, keepdim = false) {
        const dims = axes === undefined ? this.shape.map((_, i) => i) : axes;
        return this._wrap(this._live().reduce(rust, checkDims(js, dims), !!keepdim));
      };
    }
  }
}
