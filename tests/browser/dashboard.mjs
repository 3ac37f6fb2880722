// Walks seed 001's MVI story, and then the Orchest and Neptune ones, in berth's dashboard in
// Debian's headless Chromium, the way a user would: log in with the admin token, deploy the
// hello scaffold as 1.0.0 from a folder, see it running, change greeting_phrase, call the
// entrypoint from the service's API docs tab and see the notification arrive live, deploy
// 1.1.0 as a shadow, assign it, kill 1.0.0, follow the logs, add Redis from the gallery, run
// a pipeline whose steps turn green (one red, its descendant aborted), start the ping recipe
// and see its throughput. Every view is checked with axe-core (no serious or critical
// violation) and kept as a screenshot; any script error or console error fails the walk.
// Last, VS Code from the gallery: open it through the gateway, type in a file of the project
// directory, save, and read the file back from disk.
// Then a project's token (PROJECT_TOKEN, of a project holding one service): it sees that
// project only, and the gateway charts (which cover every project) say they need an admin.
// Usage: node dashboard.mjs BERTH_URL TOKEN HELLO_DIR SHOT_DIR PROJECT_DIR PROJECT_TOKEN
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';

const [berthUrl, token, helloDir, shotDir, projectDir, projectToken] = process.argv.slice(2);
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
mkdirSync(shotDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
// The dashboard's CSP allows only its own scripts; axe is injected by the test, so the test's
// context bypasses it (the page itself is unchanged).
const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, bypassCSP: true });
const page = await context.newPage();
page.setDefaultTimeout(30000);
const problems = [];
page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
page.on('console', (m) => {
  // Chromium logs every answer >= 400 as "Failed to load resource"; the walk provokes some on
  // purpose (and the first page load asks whoami before login). Those are not script errors.
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
    problems.push(`console error: ${m.text()}`);
  }
});

let n = 0;
// axe-core on the view as it is, in the light and the dark theme (both follow the system).
async function view(name) {
  await page.addScriptTag({ path: axePath });
  let found = 0;
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ['violations'] });
      return r.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((x) => x.target.join(' ')).slice(0, 3).join(', ')}`);
    });
    for (const v of result) problems.push(`axe on ${name} (${scheme}): ${v}`);
    found += result.length;
    n += 1;
    await page.screenshot({ path: `${shotDir}/${String(n).padStart(2, '0')}-${name}-${scheme}.png`, fullPage: true });
  }
  await page.emulateMedia({ colorScheme: 'light' });
  console.log(`view ${name}: ${found} serious/critical accessibility violations (light and dark)`);
}

const step = (what) => console.log(`step: ${what}`);
const nav = (name) => page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name });
const rowOf = (text) => page.locator('tr', { hasText: text });
const versionRow = (v) => page.locator('table[aria-label=Versions] tr', { hasText: v });

let failed = false;
try {
  step('log in');
  await page.goto(berthUrl + '/');
  await page.getByLabel('Token').fill(token);
  await view('login');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Services' }).waitFor();

  step('deploy hello 1.0.0 from a folder');
  await page.getByRole('button', { name: 'Deploy…' }).click();
  await page.getByLabel('Service', { exact: true }).fill('hello');
  await page.getByLabel('Version', { exact: true }).fill('1.0.0');
  await page.setInputFiles('#deploy-folder', helloDir);
  await page.getByRole('button', { name: 'Deploy', exact: true }).click();
  const hello = rowOf('hello');
  await hello.locator('.badge', { hasText: 'running' }).waitFor({ timeout: 60000 });
  await hello.getByText('1/1').waitFor();
  await view('services');

  step('change greeting_phrase');
  await page.getByRole('link', { name: 'hello', exact: true }).click();
  await page.getByRole('heading', { name: /hello/ }).waitFor();
  await page.locator('table[aria-label=Instances] .badge', { hasText: 'running' }).first().waitFor();
  await view('service-overview');
  await page.getByRole('link', { name: 'Parameters' }).click();
  const phrase = page.getByLabel('greeting_phrase', { exact: true });
  await phrase.fill('Bonjour');
  await page.getByRole('button', { name: 'set greeting_phrase' }).click();
  await page.getByText('applied to 1 instance and stored').waitFor();
  await view('service-parameters');

  step('call the entrypoint from the service\'s API docs');
  await page.getByRole('link', { name: 'API docs', exact: true }).last().click();
  const docs = page.frameLocator('iframe.docs');
  await docs.locator('.op', { hasText: '/hello' }).click();
  const args = docs.locator('textarea').first();
  const send = docs.getByRole('button', { name: 'Send' }).first();
  await args.fill('{"name": "Ada"}');
  await send.click();
  await docs.getByText('Bonjour Ada').waitFor();
  await view('service-docs');

  step('the notification arrives live');
  await args.fill('{"name": "World"}');
  await send.click();
  await page.locator('header .count', { hasText: '1' }).waitFor();
  if (!(await page.title()).startsWith('(1)')) throw new Error(`tab title is "${await page.title()}"`);
  await nav(/Notifications/).click();
  await rowOf('Someone is trying to greet the World').getByText('WARNING').waitFor();
  await view('notifications');
  await page.request.post(`${berthUrl}/default-hello/hello`, { data: { name: 'World' } });
  await rowOf('Someone is trying to greet the World').locator('td', { hasText: /^2$/ }).waitFor();

  step('deploy 1.1.0 as a shadow, assign it, kill 1.0.0');
  await page.goto(`${berthUrl}/#/services/hello/versions`);
  await page.getByRole('button', { name: 'Deploy a version…' }).click();
  await page.getByLabel('Version', { exact: true }).fill('1.1.0');
  await page.setInputFiles('#deploy-folder', helloDir);
  await page.getByRole('button', { name: 'Deploy', exact: true }).click();
  await versionRow('1.1.0').locator('.badge', { hasText: 'running' }).waitFor({ timeout: 60000 });
  await view('service-versions');
  await page.getByRole('button', { name: 'assign 1.1.0' }).click();
  await versionRow('1.1.0').getByText('MAIN').waitFor();
  await page.getByRole('button', { name: 'kill 1.0.0' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Kill' }).click();
  await versionRow('1.0.0').waitFor({ state: 'detached' });

  step('follow the logs');
  await page.getByRole('link', { name: 'Logs' }).click();
  await page.getByText(/lines, following/).waitFor();
  await page.request.post(`${berthUrl}/default-hello/hello`, { data: { name: 'Grace' } });
  await page.locator('pre.logs', { hasText: 'Greeting someone with the name: Grace' }).waitFor();
  await view('service-logs');

  step('gateway figures of the service');
  await page.getByRole('link', { name: 'Metrics' }).click();
  for (let i = 0; i < 5; i++) await page.request.post(`${berthUrl}/default-hello/hello`, { data: { name: 'Lin' } });
  await page.locator('figcaption', { hasText: /Requests per second: [0-9.]+\/s/ }).waitFor();
  await view('service-metrics');

  step('add Redis from the gallery');
  await nav('Templates').click();
  await page.getByRole('button', { name: 'add redis' }).click();
  await page.getByRole('heading', { name: /redis/ }).waitFor();
  await page.locator('table[aria-label=Instances] .badge', { hasText: 'running' }).first().waitFor({ timeout: 60000 });
  await page.getByText(/internal only \(no gateway route\): 127\.[0-9.]+:6379/).waitFor();
  await nav('Templates').click();
  await page.getByRole('heading', { name: 'Templates' }).waitFor();
  await view('templates');

  step('a failure is shown with the server\'s message');
  await page.getByRole('button', { name: 'add redis' }).click();
  await page.locator('form[aria-label="template redis"] .error', { hasText: 'redis' }).waitFor();

  step('run a pipeline and watch its steps');
  const pipeline = {
    name: 'train',
    steps: [
      { name: 'prep', command: 'sleep 1; echo prepared' },
      { name: 'fit', command: 'sleep 1; echo fitted', after: ['prep'] },
      { name: 'broken', command: 'echo about to fail; exit 3', after: ['prep'] },
      { name: 'report', command: 'echo never', after: ['broken'] },
    ],
  };
  await nav('Pipelines').click();
  await page.getByLabel('Pipeline definition (YAML or JSON)').fill(JSON.stringify(pipeline, null, 2));
  await page.getByLabel(/Project directory/).fill(helloDir);
  await page.getByRole('button', { name: 'Create pipeline' }).click();
  await page.getByRole('region', { name: 'Pipelines' }).getByRole('link', { name: 'train' }).waitFor();
  await view('pipelines');
  await page.getByRole('status').getByRole('link', { name: 'train' }).click();
  await page.getByRole('heading', { name: 'Pipeline train' }).waitFor();
  // Steps are selected from the keyboard as well: Space on a focused step.
  await page.locator('[data-node="fit"]').focus();
  await page.keyboard.press('Space');
  await page.locator('[data-node="fit"][aria-pressed="true"]').waitFor();
  await page.keyboard.press('Space');
  await page.locator('[data-node="fit"][aria-pressed="false"]').waitFor();
  await page.getByRole('button', { name: 'Run all' }).click();
  // Seen while it runs, not only at the end: prep is started before it succeeds.
  await page.locator('[data-node="prep"].st-started').waitFor();
  await page.locator('[data-node="fit"].st-success').waitFor();
  await page.locator('[data-node="broken"].st-failure').waitFor();
  await page.locator('[data-node="report"].st-aborted').waitFor();
  await page.locator('[data-node="prep"].st-success').waitFor();
  await view('pipeline');
  await page.getByRole('link', { name: /^[0-9a-f]{8}/ }).first().click();
  await page.getByRole('heading', { name: /Run [0-9a-f]{8}.*FAILURE/ }).waitFor();
  await page.locator('[data-node="broken"]').click();
  await page.getByRole('region', { name: 'Logs of step broken' }).getByText('about to fail').waitFor();
  await view('pipeline-run');

  step('start the ping recipe and see its throughput');
  await nav('Recipes').click();
  await page.getByRole('link', { name: 'ping', exact: true }).click();
  await page.getByRole('heading', { name: /Recipe ping STOPPED/ }).waitFor();
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.getByRole('heading', { name: /Recipe ping STARTED/ }).waitFor();
  await page.getByRole('button', { name: 'Call' }).click();
  await page.getByRole('region', { name: 'Answer' }).getByText('pong').waitFor();
  for (let i = 0; i < 20; i++) await page.request.get(`${berthUrl}/api/v1/recipes/ping/serve`);
  await page.locator('.edge-label', { hasText: /[1-9][0-9.]*\/s/ }).first().waitFor();
  await view('recipe');
  await page.getByRole('button', { name: 'Stop', exact: true }).click();
  await page.getByRole('heading', { name: /Recipe ping STOPPED/ }).waitFor();
  await nav('Recipes').click();
  await view('recipes');

  step('open VS Code and type in a file of the project directory');
  const notes = `${projectDir}/notes.txt`;
  writeFileSync(notes, 'first line\n');
  const owner = statSync(projectDir);
  chownSync(notes, owner.uid, owner.gid); // the project's own user edits it
  await nav('Templates').click();
  await page.getByRole('button', { name: 'add vscode' }).click();
  await page.getByRole('heading', { name: /vscode/ }).waitFor();
  await page.locator('table[aria-label=Instances] .badge', { hasText: 'running' }).first().waitFor({ timeout: 90000 });
  const code = await context.newPage();
  code.setDefaultTimeout(60000);
  await code.goto(`${berthUrl}/default-vscode`); // the bare prefix, as a user types it
  await code.locator('.monaco-workbench').waitFor();
  await code.locator('.explorer-folders-view .monaco-list-row', { hasText: 'notes.txt' }).click();
  await code.locator('.tab.active', { hasText: 'notes.txt' }).waitFor();
  await code.locator('.editor-instance .monaco-editor .view-lines').click();
  await code.keyboard.press('Control+End');
  await code.keyboard.type('typed in VS Code through the gateway');
  await code.keyboard.press('Control+s');
  await code.locator('.tab.active:not(.dirty)', { hasText: 'notes.txt' }).waitFor();
  for (let i = 0; i < 100 && !readFileSync(notes, 'utf8').includes('typed in VS Code'); i++) {
    await code.waitForTimeout(100);
  }
  const saved = readFileSync(notes, 'utf8');
  if (!saved.includes('first line\ntyped in VS Code through the gateway')) {
    throw new Error(`notes.txt on disk holds ${JSON.stringify(saved)}`);
  }
  await code.screenshot({ path: `${shotDir}/${String(++n).padStart(2, '0')}-vscode.png` });
  await code.close();

  step('a project token sees its project only');
  const other = await browser.newContext({ viewport: { width: 1400, height: 900 }, bypassCSP: true });
  const tp = await other.newPage();
  tp.setDefaultTimeout(30000);
  tp.on('pageerror', (e) => problems.push(`script error (project token): ${e.message}`));
  await tp.goto(berthUrl + '/');
  await tp.getByLabel('Token').fill(projectToken);
  await tp.getByRole('button', { name: 'Log in' }).click();
  await tp.locator('header .project', { hasText: 'project team' }).waitFor();
  if (await tp.locator('header select').count()) throw new Error('a project token got the project picker');
  await tp.getByText('1 service in project team').waitFor();
  if (await tp.getByRole('link', { name: 'hello', exact: true }).count()) {
    throw new Error("a project token sees another project's service");
  }
  await tp.getByRole('link', { name: 'site', exact: true }).click();
  await tp.getByRole('link', { name: 'Metrics' }).click();
  await tp.getByRole('alert').getByText('use an admin token').waitFor();
  await other.close();

  console.log('the dashboard walk passed');
} catch (e) {
  failed = true;
  console.error(`browser test failed: ${e.message}`);
  try {
    await page.screenshot({ path: `${shotDir}/failure.png`, fullPage: true });
    console.error(`page at failure: ${page.url()} (screenshot ${shotDir}/failure.png)`);
  } catch {}
} finally {
  await browser.close();
}
for (const p of problems) console.error(p);
process.exit(failed || problems.length ? 1 : 0);
