// Opens Jupyter through berth's gateway in Debian's headless Chromium, the way a user would:
// log in at /_berth/login with a project token, open a notebook, run a cell, and see the
// kernel's answer, which comes back over the notebook's websocket channel through the gateway.
// Usage: node jupyter.mjs BERTH_URL TOKEN PREFIX SCREENSHOT
import { chromium } from "playwright-core";

const [berthUrl, token, prefix, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(30000);
  await page.goto(`${berthUrl}/_berth/login?next=${prefix}/notebooks/berth.ipynb`);
  await page.fill("input[name=token]", token);
  await Promise.all([page.waitForURL(`**${prefix}/notebooks/berth.ipynb`), page.click("button")]);
  // The kernel is connected once Jupyter shows it idle.
  await page.waitForSelector("#kernel_indicator_icon.kernel_idle_icon", { timeout: 60000 });
  const cell = page.locator(".CodeMirror").first();
  await cell.click();
  await page.keyboard.type("print(6 * 7, 'from the kernel')");
  await page.keyboard.press("Shift+Enter");
  await page.waitForSelector("text=42 from the kernel", { timeout: 30000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("kernel answered through the gateway");
} catch (e) {
  failed = true;
  console.error(`browser test failed: ${e.message}`);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages.length) {
      await pages[0].screenshot({ path: screenshot, fullPage: true });
      console.error(`page at failure: ${pages[0].url()} (screenshot ${screenshot})`);
    }
  } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
