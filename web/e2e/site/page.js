import { Engine } from "tmath";
import { runChecks } from "./checks.js";

const log = document.getElementById("log");
async function main() {
  const result = {};
  const tm = await Engine.create({ backend: "webgpu" });
  result.backend = tm.backend;
  result.wasmBuild = Engine.wasmBuild;
  result.page = await runChecks(tm);
  const cpu = await Engine.create({ backend: "cpu" });
  result.cpuBackend = cpu.backend;
  result.cpu = await runChecks(cpu);
  // "auto": WebGPU on a hardware adapter, the CPU on a fallback (software) one.
  const adapter = await navigator.gpu.requestAdapter();
  result.fallbackAdapter = !!(adapter && (adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter));
  result.autoBackend = (await Engine.create({ backend: "auto" })).backend;
  try {
    await Engine.create({ backend: "tpu" });
    throw new Error("Engine.create accepted an unknown backend");
  } catch (e) {
    if (!(e instanceof Error) || !/backend/.test(e.message)) throw e;
    result.badBackend = e.message;
  }
  // A module worker importing the same package.
  const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  result.worker = await new Promise((resolve, reject) => {
    worker.onmessage = (e) => (e.data.error ? reject(new Error("worker: " + e.data.error)) : resolve(e.data));
    worker.onerror = (e) => reject(new Error("worker error: " + e.message));
  });
  worker.terminate();
  return result;
}

main().then(
  (r) => { window.__tmath = { ok: true, ...r }; log.textContent = JSON.stringify(r, null, 1); },
  (e) => { window.__tmath = { ok: false, error: String(e && e.stack || e) }; log.textContent = String(e); },
);
