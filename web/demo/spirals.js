// Two-spirals classification with an MLP and Adam, written against the public tmath API only.
import { Engine } from "tmath";

const params = new URLSearchParams(location.search);
const EPOCHS = Math.max(1, parseInt(params.get("epochs"), 10) || 100);
const $ = (id) => document.getElementById(id);
const state = { state: "running", losses: [] };
window.__spirals = state;

function twoSpirals(n, seed) {
  let s = seed >>> 0;
  const noise = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const x = [], y = [], cls = [];
  for (let c = 0; c < 2; c++) {
    for (let i = 0; i < n; i++) {
      const t = (i / n) * 3 * Math.PI + 0.3;
      const sign = c === 0 ? 1 : -1;
      const r = t / (3 * Math.PI);
      x.push(sign * r * Math.cos(t) + 0.02 * noise(), sign * r * Math.sin(t) + 0.02 * noise());
      y.push(c === 0 ? 1 : 0, c === 0 ? 0 : 1);
      cls.push(c);
    }
  }
  return { x, y, cls };
}

function draw(grid, res, data) {
  const c = $("plot").getContext("2d"), W = 360;
  const cell = W / res;
  for (let i = 0; i < res; i++) {
    for (let j = 0; j < res; j++) {
      const p = grid[i * res + j]; // probability of class 1
      c.fillStyle = `rgb(${Math.round(255 - 90 * p)}, ${Math.round(225 - 40 * Math.abs(p - 0.5))}, ${Math.round(165 + 90 * p)})`;
      c.fillRect(j * cell, i * cell, cell + 1, cell + 1);
    }
  }
  for (let k = 0; k < data.cls.length; k++) {
    c.fillStyle = data.cls[k] ? "#1649b0" : "#b03216";
    c.beginPath();
    c.arc((data.x[2 * k] * 0.5 + 0.5) * W, (0.5 - data.x[2 * k + 1] * 0.5) * W, 2.2, 0, 2 * Math.PI);
    c.fill();
  }
}

async function main() {
  const tm = await Engine.create({ backend: params.get("backend") || "auto" });
  state.backend = tm.backend;
  $("backend").textContent = tm.backend;
  const n = 200, hidden = 64, batch = 100, rows = 2 * n, lr = 0.02;
  const data = twoSpirals(n, 7);
  let p = [
    tm.randn([2, hidden], 1).mul(1.5),
    tm.tensor(new Float32Array(hidden), [hidden]),
    tm.randn([hidden, 2], 2).mul(0.2),
    tm.tensor(new Float32Array(2), [2]),
  ].map((w) => ({ w, m: tm.tensor(new Float32Array(w.shape.reduce((a, b) => a * b, 1)), w.shape), v: tm.tensor(new Float32Array(w.shape.reduce((a, b) => a * b, 1)), w.shape) }));
  const forward = (p, x) => x.matmul(p[0].w).add(p[1].w).tanh().matmul(p[2].w).add(p[3].w);
  const order = Array.from({ length: rows }, (_, i) => (i * 157) % rows);
  const log = [];
  let t = 0;
  const t0 = performance.now();
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    let total = 0;
    for (let b = 0; b < rows; b += batch) {
      const idx = order.slice(b, b + batch);
      const bx = tm.tensor(idx.flatMap((i) => [data.x[2 * i], data.x[2 * i + 1]]), [idx.length, 2]);
      const by = tm.tensor(idx.flatMap((i) => [data.y[2 * i], data.y[2 * i + 1]]), [idx.length, 2]);
      const loss = forward(p, bx).logSoftmax(1).mul(by).sum([0, 1]).mul(-1 / idx.length);
      const grads = loss.grad(p.map((q) => q.w));
      t += 1;
      const lrT = (lr * Math.sqrt(1 - 0.999 ** t)) / (1 - 0.9 ** t);
      const next = p.map((q, k) => {
        const g = grads[k];
        const m = q.m.mul(0.9).add(g.mul(0.1));
        const v = q.v.mul(0.999).add(g.mul(g).mul(0.001));
        return { w: q.w.sub(m.div(v.sqrt().add(1e-8)).mul(lrT)), m, v };
      });
      // The whole step — loss, every parameter and moment — as one evaluation.
      const [l] = await tm.eval([loss, ...next.flatMap((q) => [q.w, q.m, q.v])]);
      total += l[0];
      p = next.map((q) => ({ w: q.w.detach(), m: q.m.detach(), v: q.v.detach() }));
    }
    const mean = total / (rows / batch);
    state.losses.push(mean);
    if (epoch % 10 === 0 || epoch + 1 === EPOCHS) {
      log.push(`epoch ${String(epoch).padStart(3)}: loss ${mean.toFixed(4)}`);
      $("log").textContent = log.join("\n");
      $("status").textContent = `training… epoch ${epoch + 1}/${EPOCHS}`;
    }
  }
  const ms = performance.now() - t0;
  const logits = await forward(p, tm.tensor(data.x, [rows, 2])).data();
  let correct = 0;
  for (let i = 0; i < rows; i++) if ((logits[2 * i + 1] > logits[2 * i] ? 1 : 0) === data.cls[i]) correct++;
  state.accuracy = correct / rows;
  const res = 60, grid = [];
  for (let i = 0; i < res; i++) for (let j = 0; j < res; j++) grid.push((j + 0.5) / res * 2 - 1, 1 - (i + 0.5) / res * 2);
  const probs = await forward(p, tm.tensor(grid, [res * res, 2])).softmax(1).data();
  draw(Array.from({ length: res * res }, (_, k) => probs[2 * k + 1]), res, data);
  log.push(`accuracy ${(state.accuracy * 100).toFixed(1)}% after ${EPOCHS} epochs (${t} steps, ${(ms / t).toFixed(2)} ms per step)`);
  $("log").textContent = log.join("\n");
  $("status").textContent = "done";
  state.msPerStep = ms / t;
  state.state = "done";
  document.body.dataset.state = "done";
}

main().catch((e) => {
  state.state = "error";
  state.error = String(e && e.stack || e);
  $("status").textContent = `error: ${e}`;
  document.body.dataset.state = "error";
});
