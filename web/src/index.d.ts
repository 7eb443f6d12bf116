import type { TensorOps } from "../pkg/ops.js";

/** Options of {@link Engine.create}. */
export interface EngineOptions {
  /** "webgpu" (reject where WebGPU is missing), "cpu", or "auto" (default: WebGPU when granted, else CPU). */
  backend?: "webgpu" | "cpu" | "auto";
  /** The WebAssembly module's bytes or URL, when it is not next to `pkg/tmath.js` (e.g. in Node). */
  wasm?: BufferSource | URL | string | WebAssembly.Module;
}

/** Counters of an engine since it started. */
export interface Stats {
  /** Compute pipelines created (always 0 on the CPU backend). */
  compiles: number;
  /** Kernels taken from the pipeline cache instead of compiled. */
  cacheHits: number;
  /** Compute kernels launched. */
  dispatches: number;
  /** Time spent compiling pipelines, in milliseconds. */
  compileMs: number;
  /** Tensor handles not yet freed (by `dispose()` or the garbage collector) in this module. */
  liveTensors: number;
  /** Of `compiles`, the pipelines created off the caller's path (the "adaptive" JIT). */
  backgroundCompiles: number;
  /** Kernels launched on a generic pipeline (sizes as data; the "adaptive" JIT's first tier). */
  genericDispatches: number;
  /** Kernels launched on a specialized pipeline in the "adaptive" JIT. */
  specializedDispatches: number;
  /** Ops a WebGPU engine ran on the CPU instead (the "adaptive" JIT's route for tiny work). */
  cpuDispatches: number;
  /** Kernels launched on a quick pipeline: a matmul's first runs while its specialized pipeline compiles in the background. */
  quickDispatches: number;
}

/** A device to compute on: WebGPU, or the CPU fallback. */
export class Engine {
  /** Loads the module (once) and starts an engine. Rejects with an Error for backend "webgpu" where WebGPU is missing. */
  static create(options?: EngineOptions): Promise<Engine>;
  /**
   * Which WebAssembly build was loaded: "relaxed-simd" (fused multiply-adds in the CPU backend's
   * matrix product; chosen where the engine validates relaxed SIMD), "simd128" (every other
   * engine), "given" (the module passed to `create`), or null before the first `create`.
   */
  static readonly wasmBuild: "relaxed-simd" | "simd128" | "given" | null;
  /** Which backend runs this engine. */
  readonly backend: "webgpu" | "cpu";
  /** A tensor from row-major data; `shape` [] is a scalar. Throws if the length does not match the shape. */
  tensor(data: Float32Array | number[], shape: number[]): Tensor;
  /** Standard-normal samples, a pure function of (shape, seed): the same values on every backend. */
  randn(shape: number[], seed?: number): Tensor;
  /** JIT on (default) or off: one kernel per op, rebuilt every evaluation (to measure the gain). */
  setJit(mode: boolean | "adaptive"): void;
  /** The engine's counters. */
  stats(): Stats;
  /** Evaluates several tensors in one schedule (shared work once; a loss with its gradients runs forward and backward together) and resolves to their elements, in order. */
  eval(tensors: Tensor[]): Promise<Float32Array[]>;
}

/** The elementwise and reduction methods (add, gelu, sum, …), generated from the op list. */
export interface Tensor extends TensorOps {}

/**
 * A lazy n-dimensional f32 array. Ops return new tensors at once and compute nothing until
 * `data()` or `Engine.eval`. A bad shape or axis throws an Error naming the op and the shapes.
 * Binary ops broadcast as in numpy and take a tensor or a plain number.
 */
export class Tensor {
  /** The shape. */
  readonly shape: number[];
  /** True once `dispose()` was called. */
  readonly disposed: boolean;
  /** Frees the tensor now (tensors never disposed are freed when garbage-collected). Using it afterwards throws. */
  dispose(): void;
  /** Evaluates and reads the elements, row-major. */
  data(): Promise<Float32Array>;

  /** Softmax along `axis` (numerically stable). */ softmax(axis: number): Tensor;
  /** Log-softmax along `axis`. */ logSoftmax(axis: number): Tensor;
  /** Matrix product, 2-D or batched with broadcast batch dims. */ matmul(other: Tensor): Tensor;
  /** Same elements, new shape of the same size. */ reshape(shape: number[]): Tensor;
  /** Swaps two dimensions. */ transpose(d0: number, d1: number): Tensor;
  /** Reorders dimensions. */ permute(perm: number[]): Tensor;
  /** Thin SVD of a 2-D tensor: u (m×k), s (k, descending), vt (k×n). */ svd(): { u: Tensor; s: Tensor; vt: Tensor };
  /** `this != 0 ? a : b` elementwise; all three broadcast. */ whereCond(a: Tensor | number, b: Tensor | number): Tensor;
  /** This tensor's value as a new tensor without history (evaluated first if needed, not copied): gradients stop here. */ detach(): Tensor;
  /** This tensor broadcast to `shape` (numpy rules; a view). */ broadcastTo(shape: number[]): Tensor;
  /** Gradients of this scalar loss with respect to each of `wrt`: lazy tensors of their shapes (zeros where the loss does not depend on one). A loss with more than one element throws. */ grad(wrt: Tensor[]): Tensor[];
}
