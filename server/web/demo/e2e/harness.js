// harness.js - the real pieces for the end-to-end tests: a `tandem serve
// --dev` child (binary from TANDEM_BIN) on a random loopback port with a
// temp data directory and the built demo (dist/) as its web root, and
// Debian's Chromium driven by playwright-core (no browser download). The
// process handling is the shared TandemServer of ../../testkit/tandem-server.mjs.
import { mkdirSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { TandemServer, sleep, poll } from '../../testkit/tandem-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const DEMO_DIR = resolve(here, '..');
export const DIST = join(DEMO_DIR, 'dist');
export const ARTIFACTS = resolve(process.env.TANDEM_E2E_ARTIFACTS || join(DEMO_DIR, 'e2e-artifacts'));
export const TANDEM_BIN = resolve(process.env.TANDEM_BIN || join(DEMO_DIR, '../../../build/cli/tandem'));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export { sleep };

/** Polls fn until it returns a truthy value; throws with `what` after timeoutMs. */
export const until = (fn, what, timeoutMs = 15000, everyMs = 100) => poll(fn, what, timeoutMs, everyMs);

/** A `tandem serve --dev --web dist/` child that can be stopped and started again on the same port and data. */
export class Server extends TandemServer {
  /** @param {{dev?: boolean, args?: string[]}} [o] dev: --dev (default); args: more options */
  constructor({ dev = true, args = [] } = {}) {
    if (!existsSync(join(DIST, 'index.html'))) throw new Error(`${DIST}/index.html missing: run npm run build first`);
    super({ dev, args, label: 'e2e', bin: TANDEM_BIN });
  }

  /** --web dist/ always, before the `args` a test may set. */
  extraArgs() {
    return ['--web', DIST];
  }

  /** The running child (null when stopped). */
  get child() {
    return this.proc;
  }

  async json(path) {
    const r = await fetch(this.base + path);
    if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
    return r.json();
  }

  async roomText(room) {
    return (await this.json(`/api/rooms/${encodeURIComponent(room)}/text`)).text;
  }
}

export async function launchBrowser() {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

export const VIEWPORT = { width: 1360, height: 860 };

/** A fresh browser context (its own storage: one person) with one page open on room. */
export async function openPage(browser, server, room, { viewport = VIEWPORT } = {}) {
  const context = await browser.newContext({ viewport });
  return openIn(context, server, room);
}

/** Another tab of an existing browser context (shared localStorage) open on room. */
export async function openIn(context, server, room) {
  const page = await context.newPage();
  page.on('pageerror', (e) => { page.errors = [...(page.errors || []), String(e)]; });
  page.on('response', (r) => { if (process.env.TANDEM_E2E_VERBOSE && r.status() >= 400) console.log(`[page http] ${r.status()} ${r.url()}`); });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') page.logs = [...(page.logs || []).slice(-50), m.text()];
    if (process.env.TANDEM_E2E_VERBOSE) console.log(`[page ${m.type()}] ${m.text()}`);
  });
  await page.goto(`${server.base}/?room=${encodeURIComponent(room)}`);
  await page.waitForFunction(() => window.tandemDemo && window.tandemDemo.ready === true, null, { timeout: 15000 });
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** The editor text as CodeMirror holds it. */
export const editorText = (page) => page.evaluate(() => window.tandemDemo.view.state.doc.toString());

/** Put the caret at UTF-16 offset pos in the page's editor and focus it. */
export async function caretAt(page, pos) {
  await page.evaluate((p) => {
    const { view } = window.tandemDemo;
    view.focus();
    view.dispatch({ selection: { anchor: p === -1 ? view.state.doc.length : p } });
  }, pos);
}
