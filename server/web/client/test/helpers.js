// helpers.js - start the real `tandem serve --dev` for the integration tests.
//
// The binary comes from TANDEM_BIN (default ../../../build/cli/tandem relative
// to this package). Each server gets a random high port (retried when taken)
// and a mkdtemp data directory; readiness is /healthz answering with the
// child's pid, so a foreign server on the port is never mistaken for ours.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { TandemClient, MemoryStorage } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const TANDEM_BIN = path.resolve(here, '..', process.env.TANDEM_BIN ?? '../../../build/cli/tandem');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll fn until it returns a truthy value (or throw after ms). */
export async function waitFor(fn, what = 'condition', ms = 15000, every = 20) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last?.message ?? JSON.stringify(last)})`);
    await sleep(every);
  }
}

export class Server {
  constructor() {
    if (!existsSync(TANDEM_BIN)) throw new Error(`tandem binary not found at ${TANDEM_BIN} (set TANDEM_BIN)`);
    this.dir = mkdtempSync(path.join(tmpdir(), 'tandem-js-'));
    this.port = 0;
    this.proc = null;
    this.log = '';
  }

  get http() {
    return `http://127.0.0.1:${this.port}`;
  }
  get ws() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Start (or restart on the same port and data directory). */
  async start() {
    for (let tries = 0; tries < 20; tries++) {
      if (!this.port || tries > 0) this.port = 20000 + Math.floor(Math.random() * 30000);
      const proc = spawn(TANDEM_BIN, ['serve', '--dev', '--host', '127.0.0.1', '--port', String(this.port), '--data', this.dir], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise((r) => proc.once('exit', (code, sig) => r({ code, sig })));
      proc.stdout.on('data', (d) => (this.log += d));
      proc.stderr.on('data', (d) => (this.log += d));
      this.proc = proc;
      this.exited = exited;
      const ok = await Promise.race([
        waitFor(async () => {
          const r = await fetch(`${this.http}/healthz`);
          const j = await r.json();
          return j.pid === proc.pid;
        }, 'healthz', 10000).then(() => true, () => false),
        exited.then(() => false),
      ]);
      if (ok) return this;
      proc.kill('SIGKILL');
      await exited;
      this.proc = null;
      if (tries === 0 && this.restarting) {
        // the old port is taken now: a new one is picked
      }
    }
    throw new Error(`could not start tandem serve: ${this.log.slice(-2000)}`);
  }

  /** SIGTERM and wait for exit (acks are flushed, sessions closed with 1001). */
  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    const r = await this.exited;
    this.proc = null;
    return r;
  }

  /** Restart on the same port (keeps the data directory). */
  async restart() {
    await this.stop();
    this.restarting = true;
    return this.start();
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async token(user, name = user) {
    const r = await fetch(`${this.http}/api/dev/token?user=${encodeURIComponent(user)}&name=${encodeURIComponent(name)}`);
    if (r.status !== 200) throw new Error(`dev token: ${r.status}`);
    return (await r.json()).token;
  }

  async text(room) {
    const r = await fetch(`${this.http}/api/rooms/${encodeURIComponent(room)}/text`);
    if (r.status !== 200) throw new Error(`room text: ${r.status}`);
    return (await r.json()).text;
  }

  async json(p) {
    const r = await fetch(`${this.http}${p}`);
    return { status: r.status, body: await r.json() };
  }

  /** A TandemClient on `ws` with a fresh dev token for `user`. */
  async client(user, opts = {}) {
    // a fresh token before every connection attempt: a restarted --dev
    // server signs with a new key, so old tokens stop working
    const getToken = () => this.token(user);
    const c = new TandemClient({ url: this.ws, getToken, WebSocket, storage: opts.storage ?? new MemoryStorage(), minDelay: 100, maxDelay: 1000, ...opts });
    return c;
  }
}

/** Wait until a client is online. */
export function online(c) {
  return waitFor(() => c.status === 'online', `client ${c.clientId} online`);
}

/** Wait until every document is synced, has nothing pending and all texts agree. */
export async function converged(docs, what = 'convergence', ms = 20000) {
  return waitFor(
    () => docs.every((d) => d.synced && !d.hasPending) && docs.every((d) => d.text === docs[0].text) && docs[0].version !== null && docs.every((d) => d.version === docs[0].version),
    what,
    ms,
  );
}

export { rng } from './rng.js';
