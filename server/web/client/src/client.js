// client.js - TandemClient: one WebSocket connection to a tandem server
// (subprotocol tandem.v1) carrying any number of documents.
//
// Connection states (the 'status' event): 'connecting' (socket opening or
// HELLO sent), 'online' (WELCOME received), 'reconnecting' (waiting for the
// next attempt after a drop), 'offline' (not connected and not trying: closed
// by close(), the browser reports offline, or the server refused the protocol).
// Reconnects use exponential backoff with jitter: 1 s doubling to 30 s, each
// delay drawn uniformly in [delay/2, delay].
//
// Threads: JavaScript's one; every callback runs on the event loop.

import { Emitter } from './emitter.js';
import { encodeMessage, decodeMessage, MSG, ERR, ERR_NAMES, CAPS, SUBPROTOCOL, PROTOCOL_VERSION, CodecError } from './codec.js';
import { TandemDocument } from './document.js';
import { defaultStorage, identityStorageKey } from './storage.js';

const DEFAULTS = {
  minDelay: 1000,
  maxDelay: 30000,
  pingInterval: 25000,
  connectTimeout: 10000,
};

function randomClientId() {
  // 53 random bits, never 0 (a JS-safe 64-bit replica id)
  const hi = Math.floor(Math.random() * 0x200000);
  const lo = Math.floor(Math.random() * 0x100000000);
  return hi * 0x100000000 + lo || 1;
}

/** Seconds-since-epoch expiry of a JWT, or null. */
function jwtExpiry(token) {
  try {
    const part = token.split('.')[1];
    if (!part) return null;
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = typeof atob === 'function' ? atob(b64) : Buffer.from(b64, 'base64').toString('binary');
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp : null;
  } catch {
    return null;
  }
}

export class TandemClient extends Emitter {
  /**
   * @param {object} opts
   * @param {string} opts.url WebSocket URL, e.g. ws://127.0.0.1:8080/ws
   * @param {string} [opts.token] a token (JWT) sent in HELLO
   * @param {() => string | Promise<string>} [opts.getToken] called before every connect and before expiry
   * @param {any} [opts.WebSocket] a WebSocket constructor (Node: the `ws` package); default globalThis.WebSocket
   * @param {{getItem(k: string): string|null, setItem(k: string, v: string): void, removeItem(k: string): void}} [opts.storage]
   * @param {number} [opts.clientId] replica id for HELLO (default random, 53 bits, or the remembered one)
   * @param {string} [opts.instanceKey] scopes every storage key of this client (one per tab, say); '' = the shared keys
   * @param {boolean} [opts.rememberClientId] keep the client id in storage and reuse it on the next load
   *   (default: true when instanceKey is set), so unacknowledged chat is resent under the same id
   * @param {boolean} [opts.autoConnect] connect in the constructor (default true)
   * @param {number} [opts.minDelay] first reconnect delay, ms (1000)
   * @param {number} [opts.maxDelay] reconnect delay cap, ms (30000)
   * @param {number} [opts.pingInterval] ms between PINGs (25000)
   * @param {() => number} [opts.random] jitter source (Math.random)
   */
  constructor(opts) {
    super();
    if (!opts || typeof opts.url !== 'string') throw new TypeError('TandemClient: url is required');
    this.url = opts.url;
    this._token = opts.token ?? '';
    this._getToken = opts.getToken ?? null;
    this._WS = opts.WebSocket ?? globalThis.WebSocket;
    if (!this._WS) throw new TypeError('TandemClient: no WebSocket implementation (pass opts.WebSocket)');
    this.storage = opts.storage ?? defaultStorage();
    if (opts.instanceKey !== undefined && (typeof opts.instanceKey !== 'string' || opts.instanceKey.length > 256)) {
      throw new TypeError('TandemClient: instanceKey must be a string of at most 256 characters');
    }
    this.instanceKey = opts.instanceKey ?? '';
    this._idKey = identityStorageKey(this.url, this.instanceKey);
    this._remember = opts.clientId === undefined && (opts.rememberClientId ?? this.instanceKey !== '');
    this._awClockSaved = 0; // highest awareness clock sent (remembered ids: every document starts above it)
    this.clientId = opts.clientId ?? (this._remember ? this._loadIdentity() : null) ?? randomClientId();
    if (this._remember) this._saveIdentity();
    this._o = { ...DEFAULTS, ...opts };
    this._random = opts.random ?? Math.random;
    /** @type {'connecting'|'online'|'offline'|'reconnecting'} */
    this.status = 'offline';
    /** @type {Map<number, TandemDocument>} */
    this._docs = new Map();
    this._nextChannel = 1;
    this._ws = null;
    this._attempt = 0;
    this._timer = null;
    this._pingTimer = null;
    this._refreshTimer = null;
    this._closedByUser = false;
    this._browserOffline = false;
    this._nonce = 0;
    this.sessionId = null;
    this._installOnlineListeners();
    if (opts.autoConnect !== false) this.connect();
  }

  // ------------------------------------------------------------ identity

  // The remembered client id (and the highest awareness clock it sent, so a
  // reloaded page's presence wins over the tombstone its last load left on
  // the server). null when none or damaged.
  _loadIdentity() {
    try {
      const rec = JSON.parse(this.storage.getItem(this._idKey) ?? 'null');
      if (rec?.v !== 1 || !Number.isSafeInteger(rec.clientId) || rec.clientId <= 0) return null;
      if (Number.isSafeInteger(rec.clock) && rec.clock > 0 && rec.clock < 0xffffffff) this._awClockSaved = rec.clock;
      return rec.clientId;
    } catch {
      return null;
    }
  }

  _saveIdentity() {
    try {
      this.storage.setItem(this._idKey, JSON.stringify({ v: 1, clientId: this.clientId, clock: this._awClockSaved }));
    } catch (e) {
      this.emit('error', { code: 0, name: 'STORAGE_ADAPTER', message: `could not save the client id: ${e?.message ?? e}` });
    }
  }

  // an awareness frame with this clock is going out
  _noteAwarenessClock(clock) {
    if (!this._remember || clock <= this._awClockSaved) return;
    this._awClockSaved = clock;
    this._saveIdentity();
  }

  // ------------------------------------------------------------ public API

  /** Start connecting (also after close()). */
  connect() {
    this._closedByUser = false;
    if (this._ws || this.status === 'connecting') return;
    clearTimeout(this._timer);
    this._timer = null;
    this._open();
  }

  /** Close the connection and stop reconnecting. Documents keep their state. */
  close() {
    this._closedByUser = true;
    clearTimeout(this._timer);
    this._timer = null;
    this._drop(1000, 'closed by the client');
    this._setStatus('offline');
  }

  /** Close, leave every document and remove the online/offline listeners. */
  destroy() {
    for (const d of [...this._docs.values()]) d.close();
    this.close();
    this._removeOnlineListeners?.();
  }

  /**
   * Open (subscribe to) document `room` in OT mode. Opening the same room
   * twice returns the same document.
   * @param {string} room
   * @param {object} [opts] see TandemDocument
   * @returns {TandemDocument}
   */
  openDocument(room, opts = {}) {
    for (const d of this._docs.values()) if (d.room === room) return d;
    if (typeof room !== 'string' || room.length === 0) throw new TypeError('room name required');
    if (new TextEncoder().encode(room).length > 255 || room.includes('\0')) throw new RangeError('room name: 1..255 bytes, no NUL');
    const channel = this._nextChannel++;
    if (channel > 65535) throw new RangeError('too many documents on one client');
    const doc = new TandemDocument(this, channel, room, opts);
    this._docs.set(channel, doc);
    if (this.status === 'online') doc._onOnline();
    return doc;
  }

  /**
   * Send a new token now (a HELLO on the open connection: every subscription
   * is authorized again). Without an argument, asks getToken().
   * @param {string} [token]
   */
  async refreshToken(token) {
    if (token === undefined && this._getToken) token = await this._getToken();
    if (token !== undefined) this._token = token;
    if (this._ws && this._helloSent) this._sendHello();
    this._scheduleRefresh();
  }

  // ------------------------------------------------------------ internals

  _setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.emit('status', s);
  }

  async _open() {
    this._setStatus('connecting');
    const attemptWs = {};
    this._pendingOpen = attemptWs;
    if (this._getToken) {
      try {
        let timer;
        const timeout = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out')), this._o.connectTimeout);
        });
        try {
          this._token = await Promise.race([this._getToken(), timeout]);
        } finally {
          clearTimeout(timer);
        }
      } catch (e) {
        this.emit('error', { code: 0, name: 'TOKEN', message: `getToken failed: ${e?.message ?? e}` });
        if (this._pendingOpen === attemptWs) this._scheduleReconnect();
        return;
      }
    }
    if (this._pendingOpen !== attemptWs || this._closedByUser) return;
    let ws;
    try {
      ws = new this._WS(this.url, SUBPROTOCOL);
    } catch (e) {
      this.emit('error', { code: 0, name: 'CONNECT', message: String(e?.message ?? e) });
      this._scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._helloSent = false;
    const connectTimer = setTimeout(() => {
      if (this._ws !== ws || this.status === 'online') return;
      this._drop(4000, 'connect timeout');
      this._scheduleReconnect();
    }, this._o.connectTimeout);
    ws.onopen = () => {
      if (this._ws !== ws) return;
      this._sendHello();
    };
    ws.onmessage = (ev) => {
      if (this._ws !== ws) return;
      this._lastFrameAt = Date.now();
      this._onFrame(ev.data);
    };
    ws.onerror = () => {
      // a close event follows
    };
    ws.onclose = (ev) => {
      clearTimeout(connectTimer);
      if (this._ws !== ws) return;
      this._onClosed(ev.code, ev.reason);
    };
    this._connectTimer = connectTimer;
  }

  _sendHello() {
    const caps = CAPS.OT | CAPS.AWARENESS | CAPS.CHAT | CAPS.TYPING;
    this._send({ type: MSG.HELLO, proto: PROTOCOL_VERSION, caps, clientId: this.clientId, token: this._token || '' });
    this._helloSent = true;
  }

  /** @internal send one message; false when not connected. */
  _send(m) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    if (m.type !== MSG.HELLO && this.status !== 'online') return false;
    ws.send(encodeMessage(m));
    return true;
  }

  _onFrame(data) {
    let m;
    try {
      if (typeof data === 'string') throw new CodecError('text frame');
      m = decodeMessage(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
    } catch (e) {
      this.emit('error', { code: ERR.MALFORMED, name: 'MALFORMED', message: `bad frame from server: ${e.message}` });
      return;
    }
    if (!m) return; // unknown type: ignored
    switch (m.type) {
      case MSG.WELCOME:
        this.sessionId = m.sessionId;
        this.maxFrame = m.maxFrame;
        this._attempt = 0;
        this._setStatus('online');
        this._startPing();
        this._scheduleRefresh();
        // after a token refresh (a second HELLO) only the documents not
        // subscribed (e.g. refused with the old token) subscribe again
        for (const d of this._docs.values()) if (!d._subscribed && !d._subscribing) d._onOnline();
        return;
      case MSG.PING:
        this._send({ type: MSG.PONG, nonce: m.nonce });
        return;
      case MSG.PONG:
        return;
      case MSG.ERROR:
        if (m.channel === 0 || !this._docs.has(m.channel)) {
          const err = { ...m, name: ERR_NAMES[m.code] ?? 'UNKNOWN' };
          if (m.code === ERR.VERSION_MISMATCH) this._fatal = true;
          this.emit('error', err);
          return;
        }
        this._docs.get(m.channel)._onError(m);
        return;
      default: {
        const d = this._docs.get(m.channel);
        if (d) d._onMessage(m);
      }
    }
  }

  _startPing() {
    clearInterval(this._pingTimer);
    this._lastFrameAt = Date.now();
    this._pingTimer = setInterval(() => {
      // the server answers every PING: silence for two intervals means a dead
      // connection the OS has not reported yet (no FIN): drop it and reconnect
      if (Date.now() - this._lastFrameAt > 2.5 * this._o.pingInterval) {
        this._drop(4000, 'no answer to PING');
        this._scheduleReconnect();
        return;
      }
      this._send({ type: MSG.PING, nonce: ++this._nonce });
    }, this._o.pingInterval);
    this._pingTimer.unref?.();
  }

  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    if (!this._getToken || !this._token) return;
    const exp = jwtExpiry(this._token);
    if (!exp) return;
    const ms = Math.max(5000, exp * 1000 - Date.now() - 60000);
    this._refreshTimer = setTimeout(() => {
      this.refreshToken().catch((e) => this.emit('error', { code: 0, name: 'TOKEN', message: String(e?.message ?? e) }));
    }, Math.min(ms, 0x7fffffff));
    this._refreshTimer.unref?.();
  }

  // close the socket (if any) without scheduling anything
  _drop(code, reason) {
    const ws = this._ws;
    this._pendingOpen = null;
    if (!ws) return;
    this._ws = null;
    clearTimeout(this._connectTimer);
    clearInterval(this._pingTimer);
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
    this._afterDisconnect();
  }

  _afterDisconnect() {
    const wasOnline = this.status === 'online';
    clearInterval(this._pingTimer);
    clearTimeout(this._refreshTimer);
    for (const d of this._docs.values()) d._onOffline();
    this.emit('disconnect', { wasOnline });
  }

  _onClosed(code, reason) {
    this._ws = null;
    clearInterval(this._pingTimer);
    this._afterDisconnect();
    this.emit('close', { code, reason });
    // 1002: the server does not speak our protocol version: retrying cannot help
    if (code === 1002 || this._fatal) {
      this._closedByUser = true;
      this._setStatus('offline');
      return;
    }
    this._scheduleReconnect();
  }

  /** The delay before reconnect attempt n (0-based): [d/2, d] with d = min(max, min * 2^n). */
  backoffDelay(attempt) {
    const d = Math.min(this._o.maxDelay, this._o.minDelay * 2 ** Math.min(attempt, 30));
    return Math.round(d / 2 + (this._random() * d) / 2);
  }

  _scheduleReconnect() {
    if (this._closedByUser) {
      this._setStatus('offline');
      return;
    }
    if (this._browserOffline) {
      this._setStatus('offline');
      return;
    }
    const delay = this.backoffDelay(this._attempt);
    this.emit('reconnect-scheduled', { attempt: this._attempt + 1, delay });
    this._attempt++;
    this._setStatus('reconnecting');
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (!this._closedByUser && !this._ws) this._open();
    }, delay);
  }

  _installOnlineListeners() {
    const g = globalThis;
    if (typeof g.addEventListener !== 'function' || typeof g.navigator === 'undefined' || !('onLine' in g.navigator)) return;
    const onOffline = () => {
      this._browserOffline = true;
      clearTimeout(this._timer);
      this._drop(1000, 'browser offline');
      this._setStatus('offline');
    };
    const onOnline = () => {
      this._browserOffline = false;
      if (this._closedByUser || this._ws) return;
      this._attempt = 0;
      clearTimeout(this._timer);
      this._open();
    };
    g.addEventListener('offline', onOffline);
    g.addEventListener('online', onOnline);
    this._browserOffline = g.navigator.onLine === false;
    this._removeOnlineListeners = () => {
      g.removeEventListener('offline', onOffline);
      g.removeEventListener('online', onOnline);
    };
  }

  /** @internal */
  _forget(doc) {
    this._docs.delete(doc.channel);
  }
}
