// helpers.js - the real `tandem serve --dev` for the integration tests.
//
// The binary comes from TANDEM_BIN (default ../../../build/cli/tandem relative
// to this package). The process handling (random port, temp data directory,
// readiness by /healthz pid, restart on the same port) is the shared
// TandemServer of ../../testkit/tandem-server.mjs; this adds the client's
// helpers (dev tokens, room text, TandemClient factory, convergence waits).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { TandemClient, MemoryStorage } from '../src/index.js';
import { TandemServer, sleep, poll as waitFor } from '../../testkit/tandem-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const TANDEM_BIN = path.resolve(here, '..', process.env.TANDEM_BIN ?? '../../../build/cli/tandem');

/** waitFor(fn, what, ms = 15000, every = 20): poll fn until it returns a truthy value (or throw after ms). */
export { sleep, waitFor };

/** The shared TandemServer (../../testkit) with `serve --dev`, plus the client tests' helpers. */
export class Server extends TandemServer {
  constructor() {
    super({ dev: true, label: 'js', bin: TANDEM_BIN });
  }

  /** The data directory. */
  get dir() {
    return this.dataDir;
  }
  get http() {
    return this.base;
  }
  get ws() {
    return `ws://127.0.0.1:${this.port}/ws`;
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
