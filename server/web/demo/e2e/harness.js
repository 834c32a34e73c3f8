// harness.js - the real pieces for the end-to-end tests: a `tandem serve
// --dev` child (binary from TANDEM_BIN) on a random loopback port with a
// temp data directory and the built demo (dist/) as its web root, and
// Debian's Chromium driven by playwright-core (no browser download).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const DEMO_DIR = resolve(here, '..');
export const DIST = join(DEMO_DIR, 'dist');
export const ARTIFACTS = resolve(process.env.TANDEM_E2E_ARTIFACTS || join(DEMO_DIR, 'e2e-artifacts'));
export const TANDEM_BIN = resolve(process.env.TANDEM_BIN || join(DEMO_DIR, '../../../build/cli/tandem'));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; throws with `what` after timeoutMs. */
export async function until(fn, what, timeoutMs = 15000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

/** A `tandem serve --dev` child that can be stopped and started again on the same port and data. */
export class Server {
  /** @param {{dev?: boolean, args?: string[]}} [o] dev: --dev (default); args: more options */
  constructor({ dev = true, args = [] } = {}) {
    this.dev = dev;
    this.args = args;
    if (!existsSync(TANDEM_BIN)) throw new Error(`TANDEM_BIN ${TANDEM_BIN} does not exist (build the C tree first)`);
    if (!existsSync(join(DIST, 'index.html'))) throw new Error(`${DIST}/index.html missing: run npm run build first`);
    this.dataDir = mkdtempSync(join(tmpdir(), 'tandem-e2e-'));
    this.port = 0;
    this.child = null;
    this.log = '';
  }

  get base() { return `http://127.0.0.1:${this.port}`; }

  async start() {
    for (let attempt = 0; attempt < 8; attempt++) {
      const port = this.port || 20000 + Math.floor(Math.random() * 30000);
      const child = spawn(TANDEM_BIN, ['serve', ...(this.dev ? ['--dev'] : []), '--host', '127.0.0.1', '--port', String(port),
        '--data', this.dataDir, '--web', DIST, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (d) => { this.log += d; });
      child.stderr.on('data', (d) => { this.log += d; });
      let exited = false;
      child.on('exit', () => { exited = true; });
      const end = Date.now() + 10000;
      while (Date.now() < end && !exited) {
        try {
          const r = await fetch(`http://127.0.0.1:${port}/healthz`);
          const j = await r.json();
          if (j.pid === child.pid) { this.port = port; this.child = child; return; }
        } catch { /* not up yet */ }
        await sleep(50);
      }
      if (!exited) child.kill('SIGKILL');
      if (this.port) { await sleep(300); } // same port for a restart: it may still be in TIME_WAIT use
    }
    throw new Error(`tandem serve did not start:\n${this.log}`);
  }

  async stop() {
    const c = this.child;
    if (!c) return;
    this.child = null;
    const done = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 8000);
    await done;
    clearTimeout(t);
  }

  async json(path) {
    const r = await fetch(this.base + path);
    if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
    return r.json();
  }

  async roomText(room) {
    return (await this.json(`/api/rooms/${encodeURIComponent(room)}/text`)).text;
  }

  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
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
