// The benchmark table in the browser, through the public tmath API. Writes the report in the
// schema of tmath-bench's report.json (a header object, then one object per row).
import { Engine } from "tmath";

const params = new URLSearchParams(location.search);
const quick = params.has("quick");
const full = params.has("full");
const backends = (params.get("backends") || "webgpu,cpu").split(",");
// `?peer=tfjs`: TF.js' wasm backend (XNNPACK, SIMD, one thread) on the same cases, as peer rows,
// where `node bench/peer.mjs` installed it into bench/peer/ (it is not a dependency of the
// package); `?peer=tfjs-webgpu` TF.js' WebGPU backend on the page's adapter (both: a comma list).
const peers = (params.get("peer") || "").split(",").filter((p) => p);
const reps = +(params.get("reps") || (quick ? 2 : 5));
const status = document.getElementById("status");
const say = (s) => { status.textContent += (status.textContent ? "\n" : "") + s; };
const started = performance.now();
// The progress bar: steps done of the total, elapsed time, and an estimate of what is left.
function progress(done, total, what) {
  const bar = document.getElementById("bar");
  bar.max = total;
  bar.value = done;
  const elapsed = (performance.now() - started) / 1000;
  const left = done > 0 ? (elapsed / done) * (total - done) : NaN;
  document.getElementById("progress-text").textContent =
    `${done}/${total} ${what} · ${elapsed.toFixed(0)} s elapsed` + (Number.isFinite(left) && done < total ? ` · about ${left.toFixed(0)} s left` : "");
}

const pick = (q, d, f) => (quick ? q : full ? f : d);
const MM = pick(128, 512, 1024), SVD = pick(32, 128, 512), EW = pick(256, 1024, 1024);

function rand(n, seed) {
  let x = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; out[i] = (x / 2 ** 32) * 2 - 1; }
  return out;
}

// Each case: inputs (made and uploaded before timing) and the graph (built inside the timed call);
// `tfjs`: the same graph in TF.js, for the optional peer rows (`?peer=tfjs`).
// (TF.js' core bundle has no chained methods: its functions are used.)
const tfGelu = (tf, x) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
const CASES = [
  { op: "matmul", shape: [MM, MM], flops: 2 * MM ** 3, bytes: 12 * MM * MM,
    inputs: (tm) => [tm.tensor(rand(MM * MM, 1), [MM, MM]), tm.tensor(rand(MM * MM, 2), [MM, MM])],
    graph: ([a, b]) => [a.matmul(b)], tfjs: (tf, [a, b]) => [tf.matMul(a, b)] },
  { op: "svd", shape: [SVD, SVD], flops: 0, bytes: 0, tol: 1e-3,
    inputs: (tm) => [tm.tensor(rand(SVD * SVD, 3), [SVD, SVD])],
    graph: ([a]) => [a.svd().s] },
  { op: "gelu", shape: [EW, EW], flops: 0, bytes: 8 * EW * EW,
    inputs: (tm) => [tm.tensor(rand(EW * EW, 4), [EW, EW])],
    graph: ([a]) => [a.gelu()], tfjs: (tf, [x]) => [tfGelu(tf, x)] },
  { op: "softmax", shape: [EW, EW], flops: 0, bytes: 8 * EW * EW,
    inputs: (tm) => [tm.tensor(rand(EW * EW, 5), [EW, EW])],
    graph: ([a]) => [a.softmax(1)], tfjs: (tf, [x]) => [tf.softmax(x, 1)] },
  { op: "8-op chain", shape: [EW, EW], flops: 0, bytes: 8 * EW * EW,
    inputs: (tm) => [tm.tensor(rand(EW * EW, 6), [EW, EW])],
    graph: ([x]) => [x.mul(0.75).add(0.75).tanh().abs().sqrt().neg().exp().sigmoid()],
    tfjs: (tf, [x]) => [tf.sigmoid(tf.exp(tf.neg(tf.sqrt(tf.abs(tf.tanh(tf.add(tf.mul(x, 0.75), 0.75)))))))] },
  { op: "matmul + bias + gelu", shape: [MM, MM], flops: 2 * MM ** 3, bytes: 12 * MM * MM,
    inputs: (tm) => [tm.tensor(rand(MM * MM, 7), [MM, MM]), tm.tensor(rand(MM * MM, 8), [MM, MM]), tm.tensor(rand(MM, 9), [MM])],
    graph: ([a, b, c]) => [a.matmul(b).add(c).gelu()], tfjs: (tf, [a, b, c]) => [tfGelu(tf, tf.add(tf.matMul(a, b), c))] },
];

// The adaptive mode (setJit("adaptive")) against JIT on, as in the main job's adaptive section:
// a 10-op MLP layer, its first result at a never-seen batch size, a sweep over batch sizes, the
// steady state after warm-up; compiles on the caller's path vs in the background.
const WIDTH = pick(32, 64, 256), SWEEP = pick(6, 24, 48);
const ADAPTIVE_STEPS = 6;
function layerInputs(tm, b) {
  return [tm.tensor(rand(b * WIDTH, 11 + b), [b, WIDTH]), tm.tensor(rand(WIDTH * WIDTH, 12), [WIDTH, WIDTH]).mul(0.1),
    tm.tensor(rand(WIDTH, 13), [WIDTH]), tm.tensor(rand(WIDTH * WIDTH, 14), [WIDTH, WIDTH]).mul(0.1), tm.tensor(rand(WIDTH, 15), [WIDTH])];
}
const layer = ([x, w1, b1, w2, b2]) => x.matmul(w1).add(b1).gelu().matmul(w2).add(b2).mul(0.05).relu().logSoftmax(1).sum([0]).neg();
const turns = (n) => new Promise((r) => { let k = 0; const f = () => (++k >= n ? r() : setTimeout(f, 0)); setTimeout(f, 0); });
async function* adaptiveRows(device) {
  const row = (op, shape, mode) => ({ section: "adaptive", op, shape, device, backend: "wgpu", mode, median_ms: null, min_ms: null, max_ms: null,
    kernel_ms: null, reps: 0, gflops: null, gbps: null, fraction_of_ceiling: null, compiles: 0, background_compiles: 0, compile_ms_per_pipeline: null,
    dispatches: 0, max_abs_err: null, failed: null });
  const timed = async (inputs) => { const t0 = performance.now(); await layer(inputs).data(); return performance.now() - t0; };
  const engines = {};
  for (const mode of ["on", "adaptive"]) {
    const tm = await Engine.create({ backend: "webgpu" });
    tm.setJit(mode === "adaptive" ? "adaptive" : true);
    const seen = layerInputs(tm, 32);
    for (let i = 0; i < 3; i++) await timed(seen);
    await turns(20); // the adaptive mode's background compiles run between evaluations
    engines[mode] = { tm, seen };
    // 1. The first result at a never-seen batch size.
    const r = row(`mlp layer (${WIDTH} wide): first result at a new batch size`, [33, WIDTH], mode);
    const fresh = layerInputs(tm, 33);
    const s0 = tm.stats();
    r.median_ms = r.min_ms = r.max_ms = await timed(fresh);
    const s1 = tm.stats();
    Object.assign(r, { reps: 1, background_compiles: s1.backgroundCompiles - s0.backgroundCompiles });
    r.compiles = s1.compiles - s0.compiles - r.background_compiles;
    yield r;
    // 2. A sweep over batch sizes, once each.
    const w = row(`mlp layer (${WIDTH} wide): batch sizes 1..=${SWEEP}, once each (total)`, [SWEEP, WIDTH], mode);
    const inputs = Array.from({ length: SWEEP }, (_, b) => layerInputs(tm, b + 1));
    const w0 = tm.stats();
    const t0 = performance.now();
    for (const x of inputs) await layer(x).data();
    w.median_ms = w.min_ms = w.max_ms = performance.now() - t0;
    const w1 = tm.stats();
    Object.assign(w, { reps: 1, background_compiles: w1.backgroundCompiles - w0.backgroundCompiles });
    w.compiles = w1.compiles - w0.compiles - w.background_compiles;
    yield w;
  }
  // 3. The steady state, both engines in alternation (drift falls on both alike).
  const steady = {};
  for (const mode of ["on", "adaptive"]) steady[mode] = { times: [], s0: engines[mode].tm.stats() };
  await turns(20);
  for (const mode of ["on", "adaptive"]) steady[mode].s0 = engines[mode].tm.stats();
  for (let i = 0; i < pick(5, 15, 25); i++) {
    for (const mode of ["on", "adaptive"]) steady[mode].times.push(await timed(engines[mode].seen));
  }
  for (const mode of ["on", "adaptive"]) {
    const r = row(`mlp layer (${WIDTH} wide): steady state`, [32, WIDTH], mode);
    const { times, s0 } = steady[mode];
    const s1 = engines[mode].tm.stats();
    Object.assign(r, { median_ms: median(times), min_ms: Math.min(...times), max_ms: Math.max(...times), reps: times.length,
      background_compiles: s1.backgroundCompiles - s0.backgroundCompiles });
    r.compiles = s1.compiles - s0.compiles - r.background_compiles;
    yield r;
  }
}

async function call(tm, c, inputs) {
  const t0 = performance.now();
  const outs = c.graph(inputs);
  const data = [];
  for (const o of outs) data.push(await o.data());
  const ms = performance.now() - t0;
  outs.forEach((o) => o.dispose());
  return { ms, data };
}

function maxErr(got, want) {
  let e = 0, scale = 1;
  for (const w of want) for (const v of w) scale = Math.max(scale, Math.abs(v));
  got.forEach((g, i) => g.forEach((v, j) => { const d = Math.abs(v - want[i][j]); e = Number.isNaN(d) ? Infinity : Math.max(e, d); }));
  return { abs: e, rel: e / scale };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

async function adapterName(backend) {
  if (backend === "cpu") return `cpu (wasm32, ${navigator.hardwareConcurrency} threads available, 1 used)`;
  const a = await navigator.gpu.requestAdapter();
  const i = a.info || {};
  return [i.vendor, i.architecture, i.description].filter(Boolean).join(" ") || "WebGPU adapter";
}

async function run() {
  const rows = [], devices = [];
  const cpu = await Engine.create({ backend: "cpu" });
  const reference = new Map();
  const total = backends.length * CASES.length * 3 + (backends.includes("webgpu") ? ADAPTIVE_STEPS : 0);
  let done = 0;
  for (const backend of backends) {
    let probe;
    try { probe = await Engine.create({ backend }); } catch (e) { say(`skipping ${backend}: ${e.message}`); done += CASES.length * 3; continue; }
    const device = await adapterName(backend);
    devices.push({ adapter: device, backend: probe.backend === "webgpu" ? "wgpu" : "cpu", limits: {}, copy_gbps: null, peak_gflops: null, peak_gbps: null, peak_source: "not measured in the browser" });
    for (const c of CASES) {
      if (!reference.has(c.op)) reference.set(c.op, (await call(cpu, c, c.inputs(cpu))).data);
      for (const mode of ["off", "cold", "cached"]) {
        const what = `${c.op} ${c.shape.join("×")} on ${backend} (${mode})`;
        say(what);
        progress(done, total, what);
        const row = { section: "table", op: c.op, shape: c.shape, device, backend: probe.backend === "webgpu" ? "wgpu" : "cpu", mode,
          median_ms: null, min_ms: null, max_ms: null, kernel_ms: null, reps: 0, gflops: null, gbps: null, fraction_of_ceiling: null,
          compiles: 0, compile_ms_per_pipeline: null, dispatches: 0, max_abs_err: null, failed: null };
        try {
          const times = [];
          let last, stats0, stats1;
          if (mode === "cold") {
            for (let r = 0; r < Math.min(reps, 3); r++) {
              const tm = await Engine.create({ backend });
              const inputs = c.inputs(tm);
              stats0 = tm.stats();
              last = await call(tm, c, inputs);
              stats1 = tm.stats();
              times.push(last.ms);
              inputs.forEach((t) => t.dispose());
            }
          } else {
            const tm = probe;
            tm.setJit(mode !== "off");
            const inputs = c.inputs(tm);
            await call(tm, c, inputs); // warm-up
            stats0 = tm.stats();
            for (let r = 0; r < reps; r++) { last = await call(tm, c, inputs); times.push(last.ms); }
            stats1 = tm.stats();
            tm.setJit(true);
            inputs.forEach((t) => t.dispose());
          }
          const n = mode === "cold" ? 1 : reps;
          const err = maxErr(last.data, reference.get(c.op));
          row.max_abs_err = err.abs;
          if (!(err.rel <= (c.tol || 1e-4))) throw new Error(`result differs from the CPU device by ${err.abs}`);
          const med = median(times);
          Object.assign(row, { median_ms: med, min_ms: Math.min(...times), max_ms: Math.max(...times), reps: times.length,
            gflops: c.flops ? c.flops / (med * 1e6) : null, gbps: c.bytes ? c.bytes / (med * 1e6) : null,
            compiles: Math.round((stats1.compiles - stats0.compiles) / n),
            dispatches: Math.round((stats1.dispatches - stats0.dispatches) / n) });
          const compiles = stats1.compiles - stats0.compiles;
          if (compiles > 0) row.compile_ms_per_pipeline = (stats1.compileMs - stats0.compileMs) / compiles;
        } catch (e) {
          row.failed = String(e.message || e);
          say(`  failed: ${row.failed}`);
        }
        rows.push(row);
        done += 1;
        render([{ header: true, devices }, ...rows]); // results so far, first on the page
      }
    }
  }
  for (const peer of peers) {
    const backend = { tfjs: "wasm", "tfjs-webgpu": "webgpu" }[peer];
    if (!backend) throw new Error(`unknown peer ${peer} (tfjs, tfjs-webgpu)`);
    for await (const row of tfjsRows(reference, devices, backend)) {
      rows.push(row);
      render([{ header: true, devices }, ...rows]);
    }
  }
  if (backends.includes("webgpu") && devices.some((d) => d.backend === "wgpu")) {
    const device = devices.find((d) => d.backend === "wgpu").adapter;
    for await (const row of adaptiveRows(device)) {
      rows.push(row);
      done += 1;
      progress(done, total, row.op);
      render([{ header: true, devices }, ...rows]);
    }
  }
  progress(done, total, "done");
  const header = { header: true, crate_version: "npm", date: new Date().toISOString(), machine: navigator.userAgent, quick,
    method: "Browser run of the main job's table through the npm package. Inputs are made and uploaded before timing; each call builds the graph, evaluates it and reads the result back (await data(): browsers can only wait for the GPU by reading), median of the reps after one warm-up. cold = a new Engine's first call (compiles included); off = setJit(false); cached = JIT on after warm-up. Every result is checked against the CPU backend. compile_ms_per_pipeline is the time spent creating pipelines as the page sees it; browsers may finish compiling later, which the cold rows include.",
    devices };
  return [header, ...rows];
}

// TF.js from bench/peer/node_modules (its UMD builds define the global `tf`), on `backend`
// ("wasm" or "webgpu"); the scripts load once.
let tfLoaded = false;
async function loadTfjs(backend) {
  const base = new URL("./peer/node_modules/@tensorflow/", location.href);
  const files = ["tfjs-core/dist/tf-core.min.js", "tfjs-backend-wasm/dist/tf-backend-wasm.min.js", "tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js"];
  for (const f of tfLoaded ? [] : files) {
    await new Promise((ok, bad) => {
      const s = document.createElement("script");
      s.src = new URL(f, base).href;
      s.onload = ok;
      s.onerror = () => bad(new Error(`cannot load ${s.src}: run \`node bench/peer.mjs\` from web/`));
      document.head.append(s);
    });
  }
  const tf = globalThis.tf;
  if (!tfLoaded) tf.wasm.setWasmPaths(new URL("tfjs-backend-wasm/dist/", base).href);
  tfLoaded = true;
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js: the ${backend} backend did not start`);
  await tf.ready();
  return tf;
}

// The peer rows: each case's `tfjs` graph, timed like the cached rows (build, evaluate, read
// back; median after a warm-up), its result checked against the CPU backend's.
async function* tfjsRows(reference, devices, backend) {
  const tf = await loadTfjs(backend);
  let device;
  if (backend === "wasm") {
    const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
    const threads = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
    device = `TF.js ${tf.version_core} wasm (${simd ? "SIMD" : "no SIMD"}, ${threads ? "threads" : "1 thread"})`;
  } else {
    const info = (await (await navigator.gpu?.requestAdapter())?.requestAdapterInfo?.()) || {};
    device = `TF.js ${tf.version_core} webgpu (${info.vendor || info.architecture || "adapter"})`;
  }
  const name = `tfjs-${backend}`;
  devices.push({ adapter: device, backend: name, limits: {}, copy_gbps: null, peak_gflops: null, peak_gbps: null, peak_source: "a peer library, not measured" });
  for (const c of CASES) {
    if (!c.tfjs || !reference.has(c.op)) continue;
    say(`${c.op} ${c.shape.join("×")} on TF.js ${backend}`);
    const row = { section: "table", op: c.op, shape: c.shape, device, backend: name, mode: "cached",
      median_ms: null, min_ms: null, max_ms: null, kernel_ms: null, reps: 0, gflops: null, gbps: null, fraction_of_ceiling: null,
      compiles: 0, compile_ms_per_pipeline: null, dispatches: 0, max_abs_err: null, failed: null };
    try {
      // The same inputs as tmath's (the same generator and seeds), as TF.js tensors.
      const cpu = await Engine.create({ backend: "cpu" });
      const mine = c.inputs(cpu);
      const inputs = [];
      for (const t of mine) inputs.push(tf.tensor(await t.data(), t.shape));
      mine.forEach((t) => t.dispose());
      const once = async () => {
        const t0 = performance.now();
        const outs = tf.tidy(() => c.tfjs(tf, inputs));
        const data = [];
        for (const o of outs) data.push(await o.data());
        const ms = performance.now() - t0;
        outs.forEach((o) => o.dispose());
        return { ms, data };
      };
      await once();
      const times = [];
      let last;
      for (let r = 0; r < reps; r++) { last = await once(); times.push(last.ms); }
      inputs.forEach((t) => t.dispose());
      const err = maxErr(last.data, reference.get(c.op));
      row.max_abs_err = err.abs;
      if (!(err.rel <= (c.tol || 1e-4))) throw new Error(`result differs from the CPU device by ${err.abs}`);
      const med = median(times);
      Object.assign(row, { median_ms: med, min_ms: Math.min(...times), max_ms: Math.max(...times), reps: times.length,
        gflops: c.flops ? c.flops / (med * 1e6) : null, gbps: c.bytes ? c.bytes / (med * 1e6) : null });
    } catch (e) {
      row.failed = String(e.message || e);
      say(`  failed: ${row.failed}`);
    }
    yield row;
  }
}

function render(report) {
  const rows = report.slice(1).filter((r) => r.section !== "adaptive");
  const key = (r) => `${r.op}|${r.shape.join("×")}|${r.backend}`;
  const groups = new Map();
  for (const r of rows) { if (!groups.has(key(r))) groups.set(key(r), {}); groups.get(key(r))[r.mode] = r; }
  const fmt = (r) => (!r ? "–" : r.failed ? "failed" : r.median_ms.toFixed(r.median_ms < 10 ? 2 : 1));
  let html = "<tr><th>op</th><th>shape</th><th>backend</th><th>JIT off</th><th>JIT cold</th><th>JIT cached</th><th>off / cached</th><th>dispatches off → cached</th></tr>";
  for (const [k, g] of groups) {
    const [op, shape, backend] = k.split("|");
    const sp = g.off && g.cached && !g.off.failed && !g.cached.failed ? (g.off.median_ms / g.cached.median_ms).toFixed(1) + "×" : "–";
    html += `<tr><td>${op}</td><td>${shape}</td><td>${backend}</td><td>${fmt(g.off)}</td><td>${fmt(g.cold)}</td><td>${fmt(g.cached)}</td><td>${sp}</td><td>${g.off?.dispatches ?? "–"} → ${g.cached?.dispatches ?? "–"}</td></tr>`;
  }
  document.getElementById("table").innerHTML = html;
  const adaptive = report.slice(1).filter((r) => r.section === "adaptive");
  let ah = adaptive.length ? "<tr><th>case</th><th>mode</th><th>ms</th><th>pipelines compiled on the caller's path</th><th>in the background</th></tr>" : "";
  for (const r of adaptive) ah += `<tr><td>${r.op}</td><td>${r.mode}</td><td>${fmt(r)}</td><td>${r.compiles}</td><td>${r.background_compiles}</td></tr>`;
  document.getElementById("adaptive").innerHTML = ah;

  // Grouped bars, log scale: off / cold / cached per op and backend.
  const W = 1060, H = 360, pad = 50, entries = [...groups];
  const all = rows.filter((r) => !r.failed).map((r) => r.median_ms);
  if (all.length === 0) return;
  const lo = Math.floor(Math.log10(Math.min(...all))), hi = Math.ceil(Math.log10(Math.max(...all)));
  const y = (v) => H - pad - ((Math.log10(v) - lo) / (hi - lo || 1)) * (H - 2 * pad);
  const colors = { off: "#d62728", cold: "#ff7f0e", cached: "#2ca02c" };
  const gw = (W - 2 * pad) / Math.max(entries.length, 1);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 40}" font-family="sans-serif" font-size="11">`;
  for (let e = lo; e <= hi; e++) svg += `<line x1="${pad}" x2="${W - pad}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#eee"/><text x="${pad - 6}" y="${y(10 ** e) + 4}" text-anchor="end">${10 ** e} ms</text>`;
  entries.forEach(([k, g], i) => {
    ["off", "cold", "cached"].forEach((m, j) => {
      const r = g[m];
      if (!r || r.failed) return;
      const x = pad + i * gw + 6 + j * ((gw - 12) / 3);
      svg += `<rect x="${x}" y="${y(r.median_ms)}" width="${(gw - 12) / 3 - 2}" height="${H - pad - y(r.median_ms)}" fill="${colors[m]}"><title>${k} ${m}: ${r.median_ms.toFixed(2)} ms</title></rect>`;
    });
    const [op, , backend] = k.split("|");
    svg += `<text x="${pad + i * gw + gw / 2}" y="${H - pad + 14}" text-anchor="middle">${op}</text><text x="${pad + i * gw + gw / 2}" y="${H - pad + 27}" text-anchor="middle" fill="#666">${backend}</text>`;
  });
  Object.entries(colors).forEach(([m, c], i) => { svg += `<rect x="${W - pad - 220 + i * 75}" y="8" width="12" height="12" fill="${c}"/><text x="${W - pad - 204 + i * 75}" y="18">${m}</text>`; });
  svg += "</svg>";
  document.getElementById("plot").innerHTML = svg;
  const blob = new Blob([JSON.stringify(report, null, 1)], { type: "application/json" });
  document.getElementById("download").href = URL.createObjectURL(blob);
}

run().then(
  (report) => { render(report); say("done"); window.__bench = report; },
  (e) => { say("error: " + (e.stack || e)); window.__bench = { error: String(e.stack || e) }; },
);
