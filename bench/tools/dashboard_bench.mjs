// Loads the dashboard's services view in Debian's headless Chromium, N times per project, and
// prints the medians of: first contentful paint, first paint of the table (its first row on
// screen), and time to interactive (every visible row's status filled in and no long task
// since). Run by bench/dashboard.sh, which makes the projects.
// Usage: node dashboard_bench.mjs BERTH_URL TOKEN ROUNDS PROJECT...
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { chromium } = createRequire(path.join(repo, 'tests/browser/package.json'))('playwright-core');
const [url, token, rounds, ...projects] = process.argv.slice(2);

// In the page before its own scripts: note when the table first shows a row and when the
// visible rows' status column is filled, and every long task (>50 ms of main thread).
const probe = () => {
  window.__bench = { longTaskEnd: 0 };
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) window.__bench.longTaskEnd = Math.max(window.__bench.longTaskEnd, e.startTime + e.duration);
  }).observe({ type: 'longtask', buffered: true });
  const check = () => {
    const rows = document.querySelectorAll('.vtable tbody tr[aria-rowindex]');
    if (rows.length && !window.__bench.table) {
      // The frame after the one that inserted the row is when it is on screen.
      const at = performance.now();
      requestAnimationFrame(() => (window.__bench.table = Math.max(at, performance.now())));
    }
    if (rows.length && !window.__bench.ready && [...rows].every((r) => !r.children[3].textContent.includes('…'))) {
      window.__bench.ready = performance.now();
    }
    if (!window.__bench.ready) requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
};

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = {};
try {
  for (const project of projects) {
    const m = { fcp: [], table: [], tti: [], rows: 0 };
    for (let i = 0; i < Number(rounds) + 1; i++) {
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      await context.addInitScript((p) => localStorage.setItem('berth.project', p), project);
      await context.addInitScript(probe);
      const login = await context.request.post(`${url}/_berth/login`, {
        form: { token, next: '/' },
        headers: { Accept: 'application/json' },
      });
      if (!login.ok()) throw new Error(`login: ${login.status()} ${await login.text()}`);
      const page = await context.newPage();
      await page.goto(`${url}/#/services`);
      await page.waitForFunction(() => window.__bench.ready, null, { timeout: 60000 });
      // Interactive once the view is complete and the main thread has been free for 50 ms.
      await page.waitForTimeout(300);
      const r = await page.evaluate(() => ({
        fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
        table: window.__bench.table,
        tti: Math.max(window.__bench.ready, window.__bench.longTaskEnd),
        count: document.querySelector('.vtable table').getAttribute('aria-rowcount') - 1,
      }));
      await context.close();
      if (i === 0) continue; // the first round warms the daemon and the browser's caches
      m.fcp.push(r.fcp);
      m.table.push(r.table);
      m.tti.push(r.tti);
      m.rows = r.count;
    }
    out[project] = { services: m.rows, fcp: median(m.fcp), table: median(m.table), tti: median(m.tti) };
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
