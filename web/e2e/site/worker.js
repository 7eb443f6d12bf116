// Module workers have no import maps: import the file package.json names, by path.
import { Engine } from "./node_modules/tmath/src/index.js";
import { runChecks } from "./checks.js";

try {
  const tm = await Engine.create({ backend: "webgpu" });
  const checks = await runChecks(tm);
  postMessage({ backend: tm.backend, wasmBuild: Engine.wasmBuild, checks });
} catch (e) {
  postMessage({ error: String(e && e.stack || e) });
}
