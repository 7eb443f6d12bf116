// Checks of the public JS API written only against MISSION.md's contract, shared by the page and
// the module worker. Each check compares with a plain-JS reference on random inputs.

export function rand(n, seed) {
  // xorshift32, uniform in [-1, 1)
  let x = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x / 2 ** 32) * 2 - 1;
  }
  return out;
}

function erf(x) {
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)
  const s = Math.sign(x), t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return s * y;
}

function matmul(a, b, m, k, n) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) {
    const v = a[i * k + p];
    for (let j = 0; j < n; j++) c[i * n + j] += v * b[p * n + j];
  }
  return c;
}

function close(name, got, want, tol) {
  if (got.length !== want.length) throw new Error(`${name}: length ${got.length}, want ${want.length}`);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(got[i]) || Number.isNaN(want[i])) throw new Error(`${name}: NaN at ${i}`);
    const err = Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i]));
    if (!(err <= tol)) throw new Error(`${name}: element ${i} is ${got[i]}, want ${want[i]}`);
    worst = Math.max(worst, err);
  }
  return worst;
}

function throws(name, f, pattern) {
  try { f(); } catch (e) {
    if (!(e instanceof Error)) throw new Error(`${name}: threw a non-Error ${e}`);
    if (pattern && !pattern.test(e.message)) throw new Error(`${name}: message "${e.message}" lacks ${pattern}`);
    return e.message;
  }
  throw new Error(`${name}: did not throw`);
}

/** Runs every check on `tm`; returns { name: detail } or throws on the first failure. */
export async function runChecks(tm) {
  const out = {};
  const [m, k, n] = [33, 20, 17];
  const da = rand(m * k, 1), db = rand(k * n, 2), dbias = rand(n, 3);
  const a = tm.tensor(da, [m, k]), b = tm.tensor(db, [k, n]), bias = tm.tensor(dbias, [n]);

  // matmul + bias + gelu (exact, erf)
  const y = a.matmul(b).add(bias).gelu();
  const mm = matmul(da, db, m, k, n);
  const want = Array.from(mm, (v, i) => { const x = v + dbias[i % n]; return 0.5 * x * (1 + erf(x / Math.SQRT2)); });
  out.matmul_bias_gelu = close("matmul+bias+gelu", await y.data(), want, 1e-4);

  // products across the CPU kernel's blocks (4×8 micro-tiles, 256 deep, 64 rows, 512 columns):
  // ragged edges, a transposed operand, a batch
  const products = [];
  for (const [pm, pk, pn, seed] of [[70, 300, 9, 11], [5, 513, 130, 12], [129, 257, 521, 13]]) {
    const xa = rand(pm * pk, seed), xb = rand(pk * pn, seed + 100);
    const got = await tm.tensor(xa, [pm, pk]).matmul(tm.tensor(xb, [pk, pn])).data();
    products.push(close(`matmul ${pm}×${pk}×${pn}`, got, matmul(xa, xb, pm, pk, pn), 1e-5));
  }
  {
    // (2, 17, 40) · (40, 11)ᵀᵀ: B given as its transpose (11, 40), transposed back as a view
    const xa = rand(2 * 17 * 40, 14), xbt = rand(11 * 40, 15);
    const xb = new Float32Array(40 * 11);
    for (let p = 0; p < 40; p++) for (let j = 0; j < 11; j++) xb[p * 11 + j] = xbt[j * 40 + p];
    const got = await tm.tensor(xa, [2, 17, 40]).matmul(tm.tensor(xbt, [11, 40]).transpose(0, 1)).data();
    const want = [...matmul(xa.subarray(0, 680), xb, 17, 40, 11), ...matmul(xa.subarray(680), xb, 17, 40, 11)];
    products.push(close("batched matmul, transposed operand", got, want, 1e-5));
  }
  out.matmul_blocks = Math.max(...products);

  // softmax rows, a scalar tensor and a plain number operand, reductions
  const sm = await a.mul(0.5).add(tm.tensor([1.5], [])).softmax(1).data();
  const smWant = [];
  for (let i = 0; i < m; i++) {
    const row = Array.from(da.slice(i * k, (i + 1) * k), (v) => v * 0.5 + 1.5);
    const mx = Math.max(...row), e = row.map((v) => Math.exp(v - mx)), s = e.reduce((p, q) => p + q);
    smWant.push(...e.map((v) => v / s));
  }
  out.softmax = close("softmax", sm, smWant, 1e-5);
  const sums = a.sum([0], true);
  if (JSON.stringify(sums.shape) !== JSON.stringify([1, k])) throw new Error(`sum shape ${sums.shape}`);
  const sumWant = Array.from({ length: k }, (_, j) => { let s = 0; for (let i = 0; i < m; i++) s += da[i * k + j]; return s; });
  out.sum = close("sum", await sums.data(), sumWant, 1e-5);

  // SVD: u * s @ vt reconstructs, s descending
  const { u, s, vt } = a.svd();
  const sv = await s.data();
  for (let i = 1; i < sv.length; i++) if (sv[i] > sv[i - 1]) throw new Error("svd: s not descending");
  const rec = await u.mul(s.reshape([1, k])).matmul(vt).data();
  out.svd = close("svd reconstruction", rec, da, 1e-4);

  // errors: typed, with a message naming the op and shapes; nothing computed is lost
  out.err_matmul = throws("matmul shape", () => a.matmul(a), /matmul/);
  out.err_length = throws("tensor length", () => tm.tensor(new Float32Array(5), [2, 3]));
  out.err_axis = throws("bad axis", () => a.sum([2]), /sum/);
  const d = tm.tensor([1, 2, 3], [3]);
  d.dispose();
  out.err_disposed = throws("disposed tensor", () => d.exp(), /dispos/);
  out.still_readable = close("y after errors", await y.data(), want, 1e-4);

  // JIT: same graph again compiles nothing; off runs one kernel per op
  const s0 = tm.stats();
  await a.matmul(b).add(bias).gelu().data();
  const s1 = tm.stats();
  if (s1.compiles !== s0.compiles) throw new Error("same shapes compiled again");
  tm.setJit(false);
  await a.mul(2).exp().neg().data();
  tm.setJit(true);
  const s2 = tm.stats();
  if (s2.dispatches - s1.dispatches < 3) throw new Error("JIT off: one dispatch per op expected");
  out.stats = s2;

  // dispose frees: the live tensor count goes back down
  const before = tm.stats().liveTensors;
  const base = Array.from({ length: 50 }, (_, i) => tm.randn([64], i));
  const many = base.map((t) => t.exp());
  await tm.eval(many);
  const during = tm.stats().liveTensors;
  [...base, ...many].forEach((t) => t.dispose());
  const after = tm.stats().liveTensors;
  // (Compared across the synchronous dispose only: finalizers of older garbage may run during
  // the awaits above, so `before` is not an exact baseline.)
  if (!(during - after === 100 && after <= before)) throw new Error(`liveTensors ${before} → ${during} → ${after}`);
  out.dispose = { before, during, after };

  // The safety net: tensors never disposed are freed once garbage-collected (FinalizationRegistry).
  // Chromium runs with --js-flags=--expose-gc, so the check can ask for a collection.
  if (typeof globalThis.gc === "function") {
    const start = tm.stats().liveTensors;
    (() => {
      for (let i = 0; i < 100; i++) tm.tensor([i, i + 1], [2]).add(1);
    })();
    const made = tm.stats().liveTensors;
    let left = made;
    for (let i = 0; i < 100 && left > start + 5; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 20));
      left = tm.stats().liveTensors;
    }
    if (!(made >= start + 200 && left <= start + 5)) throw new Error(`unreferenced tensors not reclaimed: liveTensors ${start} → ${made} → ${left}`);
    out.reclaimed = { start, made, left };
  } else {
    throw new Error("gc() is not exposed: the page test must run Chromium with --js-flags=--expose-gc");
  }
  for (const t of [a, b, bias, y, sums, u, s, vt]) t.dispose();
  return out;
}
