// The browser bench's CPU rows beside TF.js' wasm backend (XNNPACK, SIMD, one thread), in
// headless Chromium on this machine, one page, one after the other: the side-by-side table the
// CPU backend is measured by. TF.js is installed into bench/peer/ (git-ignored), not into the
// package. Usage, from web/ after `npm run build`:
//   node bench/peer.mjs [--full] [--reps N] [--backends cpu,webgpu] [--peers tfjs,tfjs-webgpu] [--out DIR]
// (`--peers tfjs-webgpu`: TF.js' WebGPU backend on the page's adapter, beside `--backends webgpu`.)
// Writes DIR/bench-peer.json (the report schema) and prints the table (median ms per call).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "../e2e/serve.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, "..");
const arg = (name) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : null; };
const out = resolve(arg("--out") || join(web, "..", "target", "web-peer"));
mkdirSync(out, { recursive: true });
const peerDir = join(here, "peer");
if (!existsSync(join(peerDir, "node_modules", "@tensorflow", "tfjs-backend-webgpu"))) {
  mkdirSync(peerDir, { recursive: true });
  writeFileSync(join(peerDir, "package.json"), JSON.stringify({ name: "tmath-bench-peer", private: true }));
  execFileSync("npm", ["install", "--silent", "--no-audit", "--no-fund", "@tensorflow/tfjs-core@^4.22", "@tensorflow/tfjs-backend-wasm@^4.22", "@tensorflow/tfjs-backend-webgpu@^4.22", "playwright-core@^1.50"], { cwd: peerDir, stdio: "inherit" });
}
const { chromium: pw } = createRequire(join(peerDir, "package.json"))("playwright-core");

const site = await serve(web);
const browser = await pw.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--enable-unsafe-webgpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"],
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.log(`[pageerror] ${e.message}`));
  const q = new URLSearchParams({ peer: arg("--peers") || "tfjs", backends: arg("--backends") || "cpu" });
  if (process.argv.includes("--full")) q.set("full", "1");
  if (arg("--reps")) q.set("reps", arg("--reps"));
  await page.goto(`${site.url}/bench/index.html?${q}`);
  await page.waitForFunction(() => window.__bench, null, { timeout: 1_800_000 });
  const rep = await page.evaluate(() => window.__bench);
  if (rep.error) throw new Error(rep.error);
  writeFileSync(join(out, "bench-peer.json"), JSON.stringify(rep, null, 1));
  console.log(`${rep[0].machine}\n${rep[0].devices.map((d) => d.adapter).join("; ")}`);
  console.log("| op | shape | backend | mode | median ms | max abs err |\n|---|---|---|---|---|---|");
  for (const r of rep.slice(1)) {
    console.log(`| ${r.op} | ${r.shape.join("×")} | ${r.backend} | ${r.mode} | ${r.failed ? `failed: ${r.failed}` : r.median_ms.toFixed(2)} | ${r.max_abs_err ?? "–"} |`);
  }
  console.log(`report: ${join(out, "bench-peer.json")}`);
} finally {
  await browser.close();
  site.server.close();
}
