// Page-level tests of the npm package as users get it, in headless Chromium (WebGPU on
// SwiftShader), driven by playwright-core:
//  1. `npm pack` → install the tarball into a fresh temporary project → serve a page and a module
//     worker that import it (site/) → results match plain-JS references, backend is "webgpu",
//     errors throw, dispose frees;
//  2. web/demo/: renders, a screenshot is taken and its result checked; the spirals training demo converges;
//  3. web/bench/ (?quick): produces a report in the main job's JSON schema, progress bar and
//     results first;
//  4. with --report: the main job's report.html renders (plots, the original table first, no
//     console errors), screenshot kept.
// Usage: node e2e/run.mjs [--out DIR] [--report report.html]   (from web/, after `npm run build`)
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "./serve.mjs";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, "..");
const outArg = process.argv.indexOf("--out");
const reportArg = process.argv.indexOf("--report");
const out = resolve(outArg > 0 ? process.argv[outArg + 1] : join(web, "..", "target", "web-e2e"));
mkdirSync(out, { recursive: true });
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "inherit"] }).toString().trim();

// 1. Pack and install into a fresh project.
const project = mkdtempSync(join(tmpdir(), "tmath-e2e-"));
const tarball = join(project, sh("npm", ["pack", "--silent", "--pack-destination", project], web).split("\n").pop());
const wasm = readFileSync(join(web, "pkg", "tmath_bg.wasm"));
const sizes = { tarball: statSync(tarball).size, wasm: wasm.length, wasmGzip: gzipSync(wasm, { level: 9 }).length };
console.log(`package: ${tarball} (${sizes.tarball} bytes); wasm ${sizes.wasm} bytes, ${sizes.wasmGzip} gzipped`);
writeFileSync(join(project, "package.json"), JSON.stringify({ name: "tmath-e2e", private: true, type: "module" }));
sh("npm", ["install", "--silent", "--no-audit", "--no-fund", tarball, "playwright-core@^1.50", "typescript@^5"], project);
cpSync(join(here, "site"), project, { recursive: true });
// The README's JavaScript quick start, verbatim, as a page of the fresh project.
const readme = readFileSync(join(web, "..", "README.md"), "utf8");
const quickstart = readme.match(/```js\n([\s\S]*?)```/);
if (!quickstart) throw new Error("README.md has no ```js quick start");
writeFileSync(join(project, "quickstart.js"), `${quickstart[1]}\nwindow.__quickstart = { backend: tm.backend, out: Array.from(out.slice(0, 4)) };\n`);
writeFileSync(
  join(project, "quickstart.html"),
  `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "tmath": "./node_modules/tmath/src/index.js" } }</script></head>
<body><script type="module">import("./quickstart.js").catch((e) => { window.__quickstart = { error: String(e && e.stack || e) }; });</script></body></html>`,
);

// 2. The package's TypeScript declarations (index.d.ts + the generated pkg/ops.d.ts) as a
// TypeScript user compiles against them, strict; the @ts-expect-error lines prove it checks.
writeFileSync(
  join(project, "types-check.ts"),
  `import { Engine, Tensor, type Stats } from "tmath";
const tm: Engine = await Engine.create({ backend: "cpu" });
const x: Tensor = tm.tensor([1, 2, 3, 4], [2, 2]);
const y: Tensor = x.geluTanh().add(1).mul(x).maximum(0.5).sum([1], true).softmax(0);
const z: Tensor = x.matmul(x).mean().relu();
const d: Promise<Float32Array> = y.data();
const s: Stats = tm.stats();
// @ts-expect-error: not an op
x.notAnOp();
// @ts-expect-error: a reduction takes axes, not a string
x.sum("all");
void [z, d, s];
`,
);
sh(join(project, "node_modules", ".bin", "tsc"), ["--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--lib", "es2022,dom", "types-check.ts"], project);
console.log("ok   types: a strict TypeScript consumer compiles against index.d.ts + pkg/ops.d.ts");
const { chromium: pw } = createRequire(join(project, "package.json"))("playwright-core");

const browser = await pw.launch({
  executablePath: chromium,
  headless: true,
  args: ["--js-flags=--expose-gc", "--no-sandbox", "--disable-gpu-sandbox", "--enable-unsafe-webgpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"],
});
const failures = [];
async function open(url, what) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  page.errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") {
      page.errors.push(m.text());
      console.log(`[${what} console] ${m.text()}`);
    }
  });
  page.on("pageerror", (e) => {
    page.errors.push(e.message);
    console.log(`[${what} pageerror] ${e.message}`);
  });
  await page.goto(url);
  return page;
}
function check(what, cond, detail) {
  console.log(`${cond ? "ok  " : "FAIL"} ${what}${detail ? `: ${detail}` : ""}`);
  if (!cond) failures.push(what);
}

const pkgSite = await serve(project);
const webSite = await serve(web);
try {
  // 1. The packed package in a page and a module worker.
  {
    const page = await open(`${pkgSite.url}/index.html`, "package");
    await page.waitForFunction(() => window.__tmath, null, { timeout: 600_000 });
    const r = await page.evaluate(() => window.__tmath);
    writeFileSync(join(out, "package-page.json"), JSON.stringify(r, null, 1));
    check("package page ran its checks", r.ok, r.error);
    if (r.ok) {
      check('page: tm.backend === "webgpu"', r.backend === "webgpu", r.backend);
      check('page: backend "cpu" works too', r.cpuBackend === "cpu");
      // Chromium validates relaxed SIMD: the package loads that build (the checks above ran on it).
      check('page and worker load the relaxed-SIMD build', r.wasmBuild === "relaxed-simd" && r.worker.wasmBuild === "relaxed-simd", `${r.wasmBuild}, ${r.worker.wasmBuild}`);
      check(`page: backend "auto" picks ${r.fallbackAdapter ? "the CPU on this fallback adapter" : "WebGPU on this hardware adapter"}`, r.autoBackend === (r.fallbackAdapter ? "cpu" : "webgpu"), `${r.autoBackend} (isFallbackAdapter ${r.fallbackAdapter})`);
      check("page: unknown backend rejects with an Error", !!r.badBackend, r.badBackend);
      // (the page compares across the synchronous dispose: finalizers of older garbage may run in
      // the awaits before it, so `before` is an upper bound, not an exact baseline)
      check("page: dispose frees", r.page.dispose.during - r.page.dispose.after === 100 && r.page.dispose.after <= r.page.dispose.before, JSON.stringify(r.page.dispose));
      check("page: tensors never disposed are reclaimed after gc (FinalizationRegistry)", !!r.page.reclaimed, JSON.stringify(r.page.reclaimed));
      check('worker: tm.backend === "webgpu"', r.worker.backend === "webgpu", r.worker.backend);
      check("worker: checks passed", !!r.worker.checks.svd);
      console.log(`     stats (webgpu page): ${JSON.stringify(r.page.stats)}`);
    }
    await page.close();
  }
  // 1b. The README's JavaScript quick start, as written, in the installed package.
  {
    const page = await open(`${pkgSite.url}/quickstart.html`, "quickstart");
    await page.waitForFunction(() => window.__quickstart, null, { timeout: 300_000 });
    const q = await page.evaluate(() => window.__quickstart);
    check("README quick start (JS) runs in a page", q && !q.error && q.out.length === 4 && q.out.every(Number.isFinite), q && (q.error || JSON.stringify(q)));
    check("README quick start (JS): no console errors", page.errors.length === 0, page.errors.join("; "));
    await page.close();
  }
  // 2. The demo: rendered, screenshot, result checked.
  {
    const page = await open(`${webSite.url}/demo/index.html?backend=webgpu`, "demo");
    await page.waitForFunction(() => document.body.dataset.state === "done" || document.body.dataset.state === "error", null, { timeout: 600_000 });
    const d = await page.evaluate(() => window.__demo);
    await page.screenshot({ path: join(out, "demo.png"), fullPage: true });
    check("demo rendered", d && d.state === "done", d && d.error);
    if (d && d.state === "done") {
      check('demo: backend shown is "webgpu"', d.backend === "webgpu" && (await page.textContent("#backend")).includes("webgpu"));
      const errs = d.ranks.map((r) => r.relErr);
      check("demo: error falls as the rank grows", errs.every((e, i) => i === 0 || e <= errs[i - 1] + 1e-6), errs.map((e) => e.toFixed(4)).join(" "));
      check("demo: full rank reconstructs the image", errs[errs.length - 1] < 1e-3, errs[errs.length - 1]);
      check("demo: the reconstruction canvas is drawn", d.canvasStd > 5, `pixel std ${d.canvasStd}`);
      check("demo: timings on screen", /ms/.test(await page.textContent("#timings")));
    }
    await page.close();
  }
  // 2b. The training demo: an MLP on two spirals, forward + backward + Adam as one graph per step.
  {
    const page = await open(`${webSite.url}/demo/spirals.html?epochs=40`, "spirals");
    await page.waitForFunction(() => document.body.dataset.state === "done" || document.body.dataset.state === "error", null, { timeout: 600_000 });
    const d = await page.evaluate(() => window.__spirals);
    await page.screenshot({ path: join(out, "spirals.png"), fullPage: true });
    check("spirals demo trained", d && d.state === "done", d && d.error);
    if (d && d.state === "done") {
      const l = d.losses;
      check("spirals: the loss falls", l[l.length - 1] < 0.75 * l[0], l.map((v) => v.toFixed(3)).join(" "));
      check("spirals: most points classified right", d.accuracy > 0.7, d.accuracy);
      console.log(`     spirals (${d.backend}): loss ${l[0].toFixed(3)} → ${l[l.length - 1].toFixed(3)}, accuracy ${(d.accuracy * 100).toFixed(1)}%, ${d.msPerStep.toFixed(2)} ms per step`);
    }
    await page.close();
  }
  // 3. The browser benchmark (quick sizes).
  {
    const page = await open(`${webSite.url}/bench/index.html?quick=1`, "bench");
    await page.waitForFunction(() => window.__bench, null, { timeout: 900_000 });
    const rep = await page.evaluate(() => window.__bench);
    writeFileSync(join(out, "bench-quick.json"), JSON.stringify(rep, null, 1));
    await page.screenshot({ path: join(out, "bench.png"), fullPage: true });
    const rows = Array.isArray(rep) ? rep.slice(1) : [];
    check("bench: header in the report schema", Array.isArray(rep) && rep[0].header === true && Array.isArray(rep[0].devices), rep.error);
    check("bench: rows for off / cold / cached", ["off", "cold", "cached"].every((m) => rows.some((r) => r.mode === m)), `${rows.length} rows`);
    check("bench: no row failed", rows.length > 0 && rows.every((r) => r.failed === null && r.median_ms > 0), rows.filter((r) => r.failed).map((r) => `${r.op}: ${r.failed}`).join("; "));
    const tableRows = rows.filter((r) => r.section === "table");
    check("bench: table and plot on the page", (await page.$$("#table tr")).length > tableRows.length / 3 && (await page.$$("#plot svg rect")).length > 0);
    const ad = rows.filter((r) => r.section === "adaptive");
    const adFirst = ad.find((r) => r.mode === "adaptive" && /new batch size/.test(r.op));
    const adSteady = ad.find((r) => r.mode === "adaptive" && /steady/.test(r.op));
    check("bench: adaptive rows (first result at a new shape, sweep, steady state)", ad.length === 6, ad.map((r) => `${r.op} ${r.mode}: ${r.median_ms?.toFixed(2)} ms, ${r.compiles} + ${r.background_compiles} bg`).join("; "));
    check("bench: adaptive: a new shape of a seen graph compiles nothing on the caller's path", adFirst && adFirst.compiles === 0, adFirst && JSON.stringify(adFirst));
    check("bench: adaptive: no evaluation after warm-up waits on a compile", adSteady && adSteady.compiles === 0, adSteady && JSON.stringify(adSteady));
    for (const r of ad) console.log(`     ${r.op} (${r.mode}): ${r.median_ms.toFixed(2)} ms, ${r.compiles} compiles on the caller's path, ${r.background_compiles} in the background`);
    const layout = await page.evaluate(() => ({
      bar: [document.getElementById("bar").value, document.getElementById("bar").max],
      tableTop: document.getElementById("table").getBoundingClientRect().top,
      logTop: document.querySelector("details").getBoundingClientRect().top,
    }));
    check("bench: the progress bar ran to the end", layout.bar[0] === layout.bar[1] && layout.bar[1] > 0, JSON.stringify(layout.bar));
    check("bench: results above the log", layout.tableTop < layout.logTop && layout.tableTop < 800, JSON.stringify(layout));
    await page.close();
  }
  // 4. The main job's report.html (from the benchmark smoke run): renders, has its plots, the
  //    original table first, no console errors.
  if (reportArg > 0) {
    const file = resolve(process.argv[reportArg + 1]);
    const page = await open(`file://${file}`, "report");
    await page.screenshot({ path: join(out, "report.png"), fullPage: true });
    const r = await page.evaluate(() => ({
      figures: document.querySelectorAll("figure svg").length,
      tables: document.querySelectorAll("table").length,
      firstH2: document.querySelector("h2")?.textContent || "",
      tableBeforePlots: (() => {
        const t = document.querySelector("table"), f = document.querySelector("figure");
        return !!t && !!f && (t.compareDocumentPosition(f) & Node.DOCUMENT_POSITION_FOLLOWING) !== 0;
      })(),
    }));
    check("report.html: its plots render", r.figures >= 3, `${r.figures} SVG plots`);
    check("report.html: the original table first, then the plots", /original table/.test(r.firstH2) && r.tableBeforePlots && r.tables >= 3, JSON.stringify(r));
    check("report.html: no console errors", page.errors.length === 0, page.errors.join("; "));
    await page.close();
  }
} finally {
  await browser.close();
  pkgSite.server.close();
  webSite.server.close();
}
writeFileSync(join(out, "sizes.json"), JSON.stringify(sizes));
if (failures.length) {
  console.log(`${failures.length} page-level check(s) failed`);
  process.exit(1);
}
console.log(`page-level tests passed (screenshots and reports in ${out})`);
