// tandem-server.mjs - a real `tandem serve` child for the JavaScript tests,
// shared by the client's integration tests (server/web/client/test/helpers.js)
// and the demo's end-to-end tests (server/web/demo/e2e/harness.js).
//
// Node builtins only: no package.json and no install of its own (.mjs, so it
// is an ES module without one). Not imported by any src/, so vite never sees it.
//
// Each server gets a random high loopback port (another one is tried when it
// is taken) and a mkdtemp data directory; readiness is /healthz answering
// with the child's pid, so a foreign server on the port is never mistaken for
// ours. start() after stop() (or after a kill) reuses the same port and data.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** TANDEM_BIN (relative to the working directory) or the default build tree's binary. */
export const DEFAULT_TANDEM_BIN = path.resolve(process.env.TANDEM_BIN || path.join(here, '../../../build/cli/tandem'));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value (errors count as falsy); throws with `what` after ms. */
export async function poll(fn, what = 'condition', ms = 15000, every = 20) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(every);
  }
}

/** A `tandem serve` child that can be stopped (or killed) and started again on the same port and data. */
export class TandemServer {
  /**
   * @param {{dev?: boolean, args?: string[], label?: string, bin?: string}} [o]
   *   dev: --dev (default); args: more options (read at every start);
   *   label: the temp directory is tandem-<label>-XXXXXX; bin: the binary
   */
  constructor({ dev = true, args = [], label = 'test', bin = DEFAULT_TANDEM_BIN } = {}) {
    if (!existsSync(bin)) throw new Error(`tandem binary not found at ${bin} (set TANDEM_BIN, build the C tree first)`);
    this.bin = bin;
    this.dev = dev;
    this.args = args;
    this.dataDir = mkdtempSync(path.join(tmpdir(), `tandem-${label}-`));
    this.port = 0;
    /** the running child, null when stopped */
    this.proc = null;
    /** resolves with {code, sig} when the current child exits */
    this.exited = null;
    this.log = '';
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Options a subclass always adds after --data (before `args`). */
  extraArgs() {
    return [];
  }

  /** Start (or restart on the same port and data directory). */
  async start() {
    for (let tries = 0; tries < 20; tries++) {
      const port = this.port || 20000 + Math.floor(Math.random() * 30000);
      const proc = spawn(this.bin, ['serve', ...(this.dev ? ['--dev'] : []), '--host', '127.0.0.1', '--port', String(port),
        '--data', this.dataDir, ...this.extraArgs(), ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise((r) => proc.once('exit', (code, sig) => r({ code, sig })));
      proc.stdout.on('data', (d) => { this.log += d; });
      proc.stderr.on('data', (d) => { this.log += d; });
      const ok = await Promise.race([
        poll(async () => {
          const r = await fetch(`http://127.0.0.1:${port}/healthz`);
          return (await r.json()).pid === proc.pid;
        }, 'healthz', 10000).then(() => true, () => false),
        exited.then(() => false),
      ]);
      if (ok) {
        this.port = port;
        this.proc = proc;
        this.exited = exited;
        return this;
      }
      proc.kill('SIGKILL');
      await exited;
      if (this.port) await sleep(300); // same port for a restart: it may still be in TIME_WAIT use
    }
    throw new Error(`could not start tandem serve:\n${this.log.slice(-2000)}`);
  }

  /** SIGTERM (SIGKILL after 8 s) and wait for the exit; resolves with {code, sig}. */
  async stop() {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 8000);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  /** Stop and start again on the same port (keeps the data directory). */
  async restart() {
    await this.stop();
    return this.start();
  }

  /** Stop and remove the data directory. */
  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
