// Low-rank image compression by SVD, written against the public tmath API only.
import { Engine } from "tmath";

// Image size: ?n=… (default 128, at most 512).
const N = Math.max(8, Math.min(512, parseInt(new URLSearchParams(location.search).get("n"), 10) || 128));
const $ = (id) => document.getElementById(id);
const state = { ranks: [], state: "running" };
window.__demo = state;

function drawSource(ctx) {
  // A picture with edges, gradients and text: it needs many singular values to look right.
  ctx.scale(N / 128, N / 128);
  const g = ctx.createLinearGradient(0, 0, 128, 128);
  g.addColorStop(0, "#123"); g.addColorStop(1, "#eed");
  ctx.fillStyle = g; ctx.fillRect(0, 0, 128, 128);
  ctx.fillStyle = "#fa4"; ctx.beginPath(); ctx.arc(40, 44, 26, 0, 2 * Math.PI); ctx.fill();
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 3;
  for (let i = 0; i < 5; i++) { ctx.beginPath(); ctx.moveTo(70 + i * 11, 8); ctx.lineTo(60 + i * 13, 70); ctx.stroke(); }
  ctx.fillStyle = "#103"; ctx.font = "bold 30px sans-serif"; ctx.fillText("T-Math", 10, 112);
}

function toGray(ctx) {
  const px = ctx.getImageData(0, 0, N, N).data;
  const a = new Float32Array(N * N);
  for (let i = 0; i < N * N; i++) a[i] = (0.299 * px[4 * i] + 0.587 * px[4 * i + 1] + 0.114 * px[4 * i + 2]) / 255;
  return a;
}

function show(ctx, values) {
  const img = ctx.createImageData(N, N);
  for (let i = 0; i < N * N; i++) {
    const v = Math.max(0, Math.min(255, Math.round(values[i] * 255)));
    img.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

function drawSpectrum(s) {
  const c = $("spectrum").getContext("2d"), W = 320, H = 320;
  c.fillStyle = "#fff"; c.fillRect(0, 0, W, H);
  const lo = Math.log10(Math.max(s[s.length - 1], 1e-7)), hi = Math.log10(s[0]);
  c.strokeStyle = "#36c"; c.lineWidth = 2; c.beginPath();
  s.forEach((v, i) => {
    const x = 10 + (i / (s.length - 1)) * (W - 20);
    const y = H - 10 - ((Math.log10(Math.max(v, 1e-7)) - lo) / (hi - lo || 1)) * (H - 20);
    i ? c.lineTo(x, y) : c.moveTo(x, y);
  });
  c.stroke();
}

async function main() {
  for (const id of ["orig", "recon"]) Object.assign($(id), { width: N, height: N });
  for (const el of document.querySelectorAll(".n")) el.textContent = N;
  $("rank").max = N;
  const src = $("orig").getContext("2d", { willReadFrequently: true });
  drawSource(src);
  const gray = toGray(src);
  const tm = await Engine.create({ backend: new URLSearchParams(location.search).get("backend") || "auto" });
  state.backend = tm.backend;
  $("backend").textContent = tm.backend === "webgpu" ? "webgpu (the page's GPU)" : "cpu (no WebGPU here: the CPU fallback)";

  const A = tm.tensor(gray, [N, N]);
  let t0 = performance.now();
  const { u, s, vt } = A.svd();
  const sv = await s.data();
  const svdMs = performance.now() - t0;
  drawSpectrum(sv);
  const norm = Math.sqrt(gray.reduce((p, v) => p + v * v, 0));
  const recon = $("recon").getContext("2d", { willReadFrequently: true });
  const lines = [`svd ${N}×${N}: ${svdMs.toFixed(1)} ms (first call, includes compiling its kernels)`];

  async function render(r) {
    const mask = new Float32Array(N).map((_, i) => (i < r ? 1 : 0));
    const t = performance.now();
    const m = tm.tensor(mask, [N]);
    const sr = s.mul(m).reshape([1, N]);
    const R = u.mul(sr).matmul(vt);
    const d = R.sub(A);
    const e2 = d.mul(d).sum([0, 1]);
    const [vals, err2] = [await R.data(), (await e2.data())[0]];
    const ms = performance.now() - t;
    for (const x of [m, sr, R, d, e2]) x.dispose();
    show(recon, vals);
    const relErr = Math.sqrt(Math.max(err2, 0)) / norm;
    $("rankval").textContent = $("rankcap").textContent = r;
    $("kept").textContent = `${(100 * r * (2 * N + 1) / (N * N)).toFixed(1)}% of the numbers`;
    $("err").textContent = relErr.toFixed(4);
    return { rank: r, relErr, ms };
  }

  for (const r of [...[1, 2, 4, 8, 16, 32, 64].filter((r) => r < N), N]) {
    const before = tm.stats();
    const res = await render(r);
    const after = tm.stats();
    state.ranks.push(res);
    lines.push(`rank ${String(r).padStart(3)}: ${res.ms.toFixed(1).padStart(7)} ms  (compiles +${after.compiles - before.compiles}, cache hits +${after.cacheHits - before.cacheHits})`);
    $("timings").textContent = lines.join("\n");
  }
  const last = await render(16);
  lines.push(`slider (rank 16 again): ${last.ms.toFixed(1)} ms`);
  $("timings").textContent = lines.join("\n");
  const px = recon.getImageData(0, 0, N, N).data;
  let sum = 0, sum2 = 0;
  for (let i = 0; i < N * N; i++) { sum += px[4 * i]; sum2 += px[4 * i] ** 2; }
  state.canvasStd = Math.sqrt(sum2 / (N * N) - (sum / (N * N)) ** 2);
  state.svdMs = svdMs;
  state.state = "done";
  document.body.dataset.state = "done";

  const slider = $("rank");
  slider.disabled = false;
  let busy = false, want = 16;
  slider.oninput = async () => {
    want = +slider.value;
    if (busy) return;
    busy = true;
    while (true) {
      const r = want;
      const res = await render(r);
      $("timings").textContent = lines.concat(`slider (rank ${r}): ${res.ms.toFixed(1)} ms`).join("\n");
      if (r === want) break;
    }
    busy = false;
  };
}

main().catch((e) => {
  state.state = "error";
  state.error = String(e && e.stack || e);
  document.body.dataset.state = "error";
  $("timings").textContent = "error: " + state.error;
});
