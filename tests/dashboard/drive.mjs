// Drives the meshbridge dashboard in headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core, for tests/dashboard.rs.
//
// Input: one JSON document in $DASHBOARD_DRIVE (see tests/dashboard.rs):
//   { url, artifacts, chromium, playwright, userDataDir,
//     expect: { nodes: [id...], edges: [[from, to]...], split, backends: {svc: declared%} },
//     edit:   { staged, target, backends: {svc: declared%} } }
// Steps: load the page and wait for live data; read every node, edge, split row, capability
// cell and object the page shows; screenshot; rename the staged edit into the watched
// directory and measure how long until the page shows the new declared weights (updated in
// place: same elements, no navigation); screenshot; show that an API error is reported
// (503 injected) and recovered from; show that the refused edge (the intruder's calls) is
// drawn red dashed and listed; screenshot.
// Output: progress on stderr; one JSON line on stdout (what the page showed, the latency,
// the screenshots). Exit 1 on any failure, with the reason on stderr.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const cfg = JSON.parse(process.env.DASHBOARD_DRIVE || 'null');
if (!cfg) fail('DASHBOARD_DRIVE (the JSON configuration) is not set');
const log = (...a) => console.error('[drive]', ...a);
function fail(msg) {
  console.error(`[drive] FAILED: ${msg}`);
  process.exit(1);
}

if (!fs.existsSync(cfg.chromium)) fail(`no Chromium at ${cfg.chromium} (apt-get install chromium)`);
const entry = path.join(cfg.playwright, 'index.mjs');
if (!fs.existsSync(entry)) fail(`no playwright-core at ${cfg.playwright} (npm install --prefix .tools/node playwright-core@1)`);
const { chromium } = await import(pathToFileURL(entry).href);

fs.mkdirSync(cfg.artifacts, { recursive: true });
const shots = [];
async function shot(page, name) {
  const p = path.join(cfg.artifacts, name);
  await page.screenshot({ path: p, fullPage: true });
  shots.push(p);
  log('screenshot', p);
}

const context = await chromium.launchPersistentContext(cfg.userDataDir, {
  executablePath: cfg.chromium,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  timeout: 30000,
});
const result = { shots };
try {
  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  let navigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });

  // 1. Load; wait for the first successful poll.
  await page.goto(cfg.url, { waitUntil: 'load', timeout: 15000 });
  await page.waitForFunction(() => document.getElementById('status').dataset.state === 'ok' &&
    Number(document.body.dataset.updates) >= 1, null, { timeout: 10000 });
  // Everything expected is on the page (the test sent the traffic before starting us, and
  // waited until the API counted it).
  const ex = cfg.expect;
  await page.waitForFunction((ex) => {
    const node = (id) => document.querySelector(`[data-node="${CSS.escape(id)}"]`);
    const edge = ([f, t]) => document.querySelector(`[data-edge="${CSS.escape(f + ' -> ' + t)}"]`);
    const card = document.querySelector(`[data-split="${CSS.escape(ex.split)}"]`);
    return ex.nodes.every(node) && ex.edges.every(edge) && card &&
      Object.entries(ex.backends).every(([svc, pct]) => {
        const r = card.querySelector(`[data-backend="${CSS.escape(svc)}"]`);
        return r && Number(r.dataset.declared) === pct && r.dataset.observed !== '';
      });
  }, ex, { timeout: 10000 }).catch(async (e) => {
    await shot(page, 'dashboard-missing.png');
    throw new Error(`the page never showed the expected workloads, edges and split ${JSON.stringify(ex)}: ${e.message}`);
  });
  result.before = await page.evaluate(readPage);
  await shot(page, 'dashboard.png');

  // 2. The edit: rename the staged file into the watched directory, then wait for the page
  // to show the new declared weights, with the same elements (updated in place).
  const genBefore = Number(result.before.generation);
  await page.evaluate((split) => { window.__card = document.querySelector(`[data-split="${CSS.escape(split)}"]`); }, ex.split);
  const navBefore = navigations;
  const t0 = performance.now();
  fs.renameSync(cfg.edit.staged, cfg.edit.target);
  await page.waitForFunction(({ split, backends }) => {
    const card = document.querySelector(`[data-split="${CSS.escape(split)}"]`);
    return card && Object.entries(backends).every(([svc, pct]) => {
      const r = card.querySelector(`[data-backend="${CSS.escape(svc)}"]`);
      return r && Number(r.dataset.declared) === pct;
    });
  }, { split: ex.split, backends: cfg.edit.backends }, { timeout: 10000, polling: 20 })
    .catch((e) => { throw new Error(`the edited weights ${JSON.stringify(cfg.edit.backends)} never showed: ${e.message}`); });
  result.editLatencyMs = Math.round(performance.now() - t0);
  log(`edit → page: ${result.editLatencyMs} ms`);
  result.sameElements = await page.evaluate((split) => window.__card === document.querySelector(`[data-split="${CSS.escape(split)}"]`), ex.split);
  result.navigationsDuringEdit = navigations - navBefore;
  result.after = await page.evaluate(readPage);
  if (!(Number(result.after.generation) > genBefore)) throw new Error(`the generation shown did not advance: ${genBefore} → ${result.after.generation}`);
  await shot(page, 'dashboard-edited.png');

  // 3. The API failing: a clear message, the last data kept (dimmed), then recovery.
  await page.route('**/api/dashboard', (r) => r.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'injected by the dashboard test' }) }));
  await page.waitForFunction(() => document.getElementById('status').dataset.state === 'error', null, { timeout: 5000 });
  result.errorStatus = await page.$eval('#status', (e) => e.textContent);
  result.errorStale = await page.evaluate(() => document.body.classList.contains('stale'));
  result.errorKeepsData = (await page.$$('[data-node]')).length;
  await shot(page, 'dashboard-error.png');
  await page.unroute('**/api/dashboard');
  await page.waitForFunction(() => document.getElementById('status').dataset.state === 'ok', null, { timeout: 5000 });
  result.recoveredStatus = await page.$eval('#status', (e) => e.textContent);

  // 4. The refused edge (the intruder's real calls, refused by its own sidecar): red
  // dashed, listed.
  const [rf, rt] = cfg.refused;
  await page.waitForSelector(`[data-edge="${rf} -> ${rt}"][data-refused="true"]`, { timeout: 5000 });
  result.refused = await page.evaluate(([f, t]) => {
    const g = document.querySelector(`[data-edge="${CSS.escape(f + ' -> ' + t)}"]`);
    const cs = getComputedStyle(g.querySelector('path'));
    return {
      dash: cs.strokeDasharray,
      stroke: cs.stroke,
      marker: g.querySelector('path').getAttribute('marker-end'),
      label: g.querySelector('.label').textContent,
      listed: Array.from(document.querySelectorAll('#refused li')).map((li) => li.textContent),
      listVisible: !document.getElementById('refused-box').hidden,
    };
  }, [rf, rt]);
  await shot(page, 'dashboard-refused.png');

  result.pageErrors = pageErrors;
  result.navigations = navigations;
} catch (e) {
  console.error(`[drive] FAILED: ${e.message}`);
  console.log(JSON.stringify({ ...result, error: e.message }));
  await context.close().catch(() => {});
  process.exit(1);
}
await context.close();
console.log(JSON.stringify(result));

// Runs in the page: what it shows, from the data attributes and texts.
function readPage() {
  const all = (sel) => Array.from(document.querySelectorAll(sel));
  const ds = (e) => ({ ...e.dataset });
  return {
    generation: document.getElementById('generation').textContent,
    timestamp: document.getElementById('timestamp').textContent,
    window: document.getElementById('window').textContent,
    status: document.getElementById('status').textContent,
    nodes: all('[data-node]').map((g) => ({ ...ds(g), text: Array.from(g.querySelectorAll('text')).map((t) => t.textContent) })),
    edges: all('[data-edge]').map((g) => ({ ...ds(g), label: g.querySelector('.label').textContent, dash: getComputedStyle(g.querySelector('path')).strokeDasharray })),
    splits: all('[data-split]').map((c) => ({
      split: c.dataset.split,
      object: c.dataset.object,
      backends: Array.from(c.querySelectorAll('[data-backend]')).map((r) => ({ ...ds(r), text: r.textContent })),
    })),
    capabilities: all('td[data-mesh][data-feature]').map(ds),
    meshes: all('th[data-mesh]').map(ds),
    objects: all('[data-object]').filter((e) => e.tagName === 'TR').map((r) => ({
      object: r.dataset.object,
      conditions: Array.from(r.querySelectorAll('[data-condition]')).map(ds),
      problems: Array.from(r.querySelectorAll('.problems li')).map((li) => li.textContent),
    })),
  };
}
