// The JS API as users get it, in Node on the CPU backend (browsers: the wasm suite and, next,
// page-level tests). Values are checked against plain-JS references on seeded random inputs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import v8 from "node:v8";
import vm from "node:vm";
import { Engine, Tensor } from "../src/index.js";
import { op_names } from "../pkg/tmath.js";

const wasm = readFileSync(new URL("../pkg/tmath_bg.wasm", import.meta.url));

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function close(got, want, tol, what) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Number.isFinite(got[i]) && Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])), `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

test("engine, ops, broadcasting and reductions match plain JS", async () => {
  const tm = await Engine.create({ backend: "cpu", wasm });
  assert.equal(tm.backend, "cpu");
  const r = rng(7);
  const [m, k, n] = [5, 7, 3];
  const A = Array.from({ length: m * k }, r);
  const B = Array.from({ length: k * n }, r);
  const bias = Array.from({ length: n }, r);
  const a = tm.tensor(new Float32Array(A), [m, k]);
  const b = tm.tensor(B, [k, n]);
  assert.ok(a instanceof Tensor);
  assert.deepEqual(a.shape, [m, k]);
  const c = a.matmul(b).add(tm.tensor(bias, [n])).mul(0.5).relu();
  const want = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += A[i * k + p] * B[p * n + j];
      want.push(Math.max(0, (s + bias[j]) * 0.5));
    }
  }
  close(await c.data(), want, 1e-5, "relu((a@b + bias) * 0.5)");
  const rows = await a.softmax(1).sum([1], false).data();
  close(rows, new Array(m).fill(1), 1e-5, "softmax rows");
  // Axes left out: every axis (numpy's axis=None); an empty list reduces nothing.
  close(await a.sum().data(), [A.map(Math.fround).reduce((x, y) => x + y, 0)], 1e-5, "sum()");
  assert.deepEqual(a.mean().shape, []);
  assert.deepEqual(a.max(undefined, true).shape, [1, 1]);
  close(await a.sum([]).data(), A, 1e-7, "sum([])");
  const mx = await a.max([0, 1], true).data();
  close(mx, [Math.max(...A.map(Math.fround))], 0, "max");
  assert.deepEqual(a.max([0, 1], true).shape, [1, 1]);
  const g = await a.geluTanh().data();
  assert.equal(g.length, m * k);
  const s = tm.tensor([1.5], []);
  assert.deepEqual(s.shape, []);
  close(await s.exp().data(), [Math.exp(1.5)], 1e-6, "exp of a scalar");
  assert.throws(() => s.logSoftmax(0), /log_softmax/);
  close(await a.transpose(0, 1).permute([1, 0]).sub(a).abs().sum([0, 1]).data(), [0], 0, "views");
});

test("errors throw Error with the op and shapes; disposed tensors throw", async () => {
  const tm = await Engine.create({ backend: "cpu", wasm });
  const a = tm.randn([2, 3], 1);
  const b = tm.randn([4, 5], 2);
  assert.throws(() => a.matmul(b), (e) => e instanceof Error && /matmul/.test(e.message) && /\[2, 3\]/.test(e.message));
  assert.throws(() => a.add(b), /add/);
  assert.throws(() => a.sum([5]), /sum/);
  assert.throws(() => a.reshape([7]), /reshape/);
  assert.throws(() => tm.tensor([1, 2, 3], [2, 2]), /from_vec/);
  assert.throws(() => tm.tensor([1], [-1]), /non-negative integers/);
  assert.throws(() => tm.randn([3], 1).svd(), /svd/);
  await assert.rejects(Engine.create({ backend: "webgpu", wasm }), (e) => e instanceof Error && /WebGPU/.test(e.message));
  await assert.rejects(Engine.create({ backend: "metal", wasm }), /backend/);
  a.dispose();
  assert.ok(a.disposed);
  assert.throws(() => a.exp(), /disposed/);
  await assert.rejects(a.data(), /disposed/);
  a.dispose(); // twice is fine
});

test("randn, svd, eval and stats", async () => {
  const tm = await Engine.create({ backend: "cpu", wasm });
  const x = await tm.randn([4, 6], 42).data();
  const y = await tm.randn([4, 6], 42).data();
  assert.deepEqual(x, y);
  const a = tm.randn([6, 4], 3);
  const { u, s, vt } = a.svd();
  assert.deepEqual([u.shape, s.shape, vt.shape], [[6, 4], [4], [4, 4]]);
  const sv = await s.data();
  for (let i = 1; i < sv.length; i++) assert.ok(sv[i] <= sv[i - 1] && sv[i] >= 0);
  const back = u.mul(s).matmul(vt);
  close(await back.data(), await a.data(), 1e-4, "U·diag(S)·Vᵀ");
  const before = tm.stats();
  const h = a.exp();
  const p = h.add(1);
  const q = h.mul(2);
  await tm.eval([p, q]);
  const after = tm.stats();
  assert.equal(after.compiles, 0);
  assert.ok(after.dispatches > before.dispatches);
  assert.deepEqual(Object.keys(after).sort(), ["backgroundCompiles", "cacheHits", "compileMs", "compiles", "cpuDispatches", "dispatches", "genericDispatches", "liveTensors", "quickDispatches", "specializedDispatches"]);
  assert.equal(after.backgroundCompiles, 0);
  tm.setJit(false);
  tm.setJit("adaptive");
  close(await a.exp().add(1).data(), await p.data(), 0, "adaptive gives the same values");
  assert.throws(() => tm.setJit("fast"), /setJit: expected true, false or "adaptive"/);
  tm.setJit(true);
});

test("tensors never disposed are reclaimed by the garbage collector (FinalizationRegistry)", async () => {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc");
  const tm = await Engine.create({ backend: "cpu", wasm });
  const start = tm.stats().liveTensors;
  (() => {
    for (let i = 0; i < 200; i++) tm.tensor([i, i + 1], [2]).add(1);
  })();
  const made = tm.stats().liveTensors;
  assert.ok(made >= start + 400, `${made} live after making 400`);
  let left = made;
  for (let i = 0; i < 100 && left > start + 5; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
    left = tm.stats().liveTensors;
  }
  assert.ok(left <= start + 5, `liveTensors ${start} → ${made} → ${left}: unreferenced tensors were not freed`);
});

const camelCase = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

test("every op of the Rust op list is a Tensor method and declared in the generated types", async () => {
  await Engine.create({ backend: "cpu", wasm });
  const dts = readFileSync(new URL("../pkg/ops.d.ts", import.meta.url), "utf8");
  assert.match(readFileSync(new URL("../src/index.d.ts", import.meta.url), "utf8"), /interface Tensor extends TensorOps/);
  const names = op_names();
  assert.ok(names.length >= 25, `expected the whole op list, got ${names.length}`);
  for (const entry of names) {
    const js = camelCase(entry.split(":")[1]);
    assert.equal(typeof Tensor.prototype[js], "function", `Tensor.prototype.${js} (${entry})`);
    assert.match(dts, new RegExp(`\\b${js}\\(`), `pkg/ops.d.ts declares ${js} (${entry})`);
  }
});

test("gradients, comparisons and whereCond", async () => {
  const tm = await Engine.create({ backend: "cpu", wasm });
  const w = tm.tensor([1, -2, 3], [3]);
  const x = tm.tensor([0.5, 1.5, -1], [3]);
  // loss = Σ (w·x)² ; ∂/∂w = 2(w·x)·x, ∂/∂x = 2(w·x)·w
  const loss = w.mul(x).mul(w.mul(x)).sum([0]);
  const [gw, gx] = loss.grad([w, x]);
  const out = await tm.eval([loss, gw, gx]);
  assert.equal(out.length, 3);
  assert.ok(out.every((a) => a instanceof Float32Array));
  const wx = [0.5, -3, -3];
  close(out[0], [wx.reduce((s, v) => s + v * v, 0)], 1e-6, "loss");
  close(out[1], wx.map((v, i) => 2 * v * [0.5, 1.5, -1][i]), 1e-6, "∂w");
  close(out[2], wx.map((v, i) => 2 * v * [1, -2, 3][i]), 1e-6, "∂x");
  // An unrelated tensor gets zeros; a non-scalar loss throws naming grad.
  const other = tm.tensor([1, 2], [2]);
  close(await loss.grad([other])[0].data(), [0, 0], 0, "unrelated");
  assert.throws(() => w.exp().grad([w]), /grad.*\[3\]/);
  assert.throws(() => loss.grad(w), /grad: expected an array/);
  // Comparisons give 1/0 and take numbers; whereCond selects with broadcasting.
  close(await x.gt(0).data(), [1, 1, 0], 0, "gt");
  close(await x.le(tm.tensor([0.5, 0, 0], [3])).data(), [1, 0, 1], 0, "le");
  close(await x.gt(0).whereCond(x, -1).data(), [0.5, 1.5, -1], 0, "whereCond");
  close(await tm.tensor([1, 0], [2, 1]).whereCond(x, 7).data(), [0.5, 1.5, -1, 7, 7, 7], 0, "whereCond broadcast");
  assert.deepEqual(x.broadcastTo([2, 3]).shape, [2, 3]);
  assert.throws(() => x.broadcastTo([2]), /broadcast_to/);
});

test("the package README's training step runs as written and lowers the loss", async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const code = readme.split("### Training step")[1]?.match(/```js\n([\s\S]*?)```/)?.[1];
  assert.ok(code, "web/README.md has a training step");
  const tm = await Engine.create({ backend: "cpu", wasm });
  const logged = [];
  const AsyncFunction = (async () => {}).constructor;
  await new AsyncFunction("tm", "console", code)(tm, { log: (...a) => logged.push(a) });
  assert.deepEqual(logged.map((a) => a[0]), [0, 20, 40, 60, 80]);
  const losses = logged.map((a) => a[1]);
  assert.ok(losses.every(Number.isFinite) && losses[4] < 0.5 * losses[0], `losses ${losses}`);
});
