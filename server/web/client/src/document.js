// document.js - TandemDocument: one room edited as plain text in OT mode (the
// server's thin-client subscription, docs/PROTOCOL.md "OT mode"), with its
// awareness, chat and typing.
//
// The OT client follows the standard states (ot.js / ShareDB):
//   synchronized          nothing unacknowledged;
//   awaiting ack          one operation in flight (sent, not acked);
//   awaiting with buffer  one in flight plus local edits composed behind it.
// Local edits apply at once. A remote operation is transformed over the
// in-flight and the buffered operation (the server puts our operation LEFT of
// what it already had, so remote ops are transformed with side 'right').
// Offline edits compose into the buffer (or the in-flight op if none was
// sent), are saved in the storage adapter with the version they are based on,
// and go out after the reconnect's catch-up.
//
// Units: every position, count and operation of this class's API is in UTF-16
// code units (JS string indices, what editors use). The wire and the internal
// state use code points; conversion happens at the boundary (ot.js).

import { Emitter } from './emitter.js';
import { MSG, ERR, ERR_NAMES, MODE_OT, encodeAwareness, decodeAwareness } from './codec.js';
import * as ot from './ot.js';
import { storageKey, chatStorageKey } from './storage.js';

const utf8dec = new TextDecoder('utf-8', { fatal: true });
const utf8enc = new TextEncoder();

const AW_RENEW_MS = 15000;
const AW_TIMEOUT_MS = 30000;
const AW_MIN_GAP_MS = 50;
const TYPING_RENEW_MS = 2000;
const SEEN_CHAT_CAP = 10000;
const HISTORY_PAGE = 256;
const CHAT_OUTBOX_CAP = 1000; // messages waiting for CHAT_ACK per document

// First OT op id (odd) and chat msg id (even) of a document in this page load:
// 2048 ids per millisecond since 1970 (safe integers until 2109). A client id
// remembered across reloads (instanceKey) thus never reuses an id of an
// earlier load, which the server would take for a resend and drop.
function idBase() {
  return Date.now() * 2048;
}

const SUBSCRIBE_FAILURES = new Set([ERR.NOT_ALLOWED, ERR.UNKNOWN_DOCUMENT, ERR.LOAD_FAILED, ERR.SERVER_BUSY, ERR.RATE_LIMITED, ERR.TOO_BIG, ERR.INTERNAL]);

function validChat(text) {
  return text.length > 0 && utf8enc.encode(text).length <= 16384 && ot.isWellFormed(text);
}

export class TandemDocument extends Emitter {
  /**
   * Created by TandemClient.openDocument.
   * @param {import('./client.js').TandemClient} client
   * @param {number} channel
   * @param {string} room
   * @param {object} opts
   * @param {boolean} [opts.chatReplay] replay chat history on subscribe (default true)
   * @param {boolean} [opts.persist] keep unsent edits in the client's storage (default true)
   * @param {number} [opts.typingTimeout] ms after the last typing() before an automatic stop (3000)
   */
  constructor(client, channel, room, opts = {}) {
    super();
    this.client = client;
    this.channel = channel;
    this.room = room;
    this._o = { chatReplay: true, persist: true, typingTimeout: 3000, ...opts };
    this._key = storageKey(client.url, room, client.instanceKey);
    this._chatKey = chatStorageKey(client.url, room, client.instanceKey);
    const ids = idBase();

    // OT state (code points inside)
    this._text = ''; // local text: base + inflight + buffer
    this._base = ''; // the server's text at this.version
    /** @type {number|null} */
    this.version = null; // server version of _base; null until known
    this._inflight = null;
    this._inflightId = 0;
    this._inflightSent = false;
    this._inflightSrcs = []; // client ids the in-flight op was sent under
    this._buffer = null;
    this._nextOpId = ids + 1; // odd ids for OT ops, even for chat (an ERROR ref is unambiguous)
    this._target = 0; // version SUBSCRIBED named
    this._subscribed = false;
    this.synced = false;
    /** @type {0|1|2} 0 unknown, 1 read, 2 write */
    this.access = 0;
    this._snap = null; // OT_SNAPSHOT being received
    this._closed = false;
    this._retryTimer = null;

    // chat
    this._lastChatId = 0;
    this._seen = new Set();
    this._nextMsgId = ids + 2;
    /** @type {Map<number, {msgId: number, text: string, resolve: Function, reject: Function}>} */
    this._chatPending = new Map();
    this._historyQueue = []; // FIFO of {kind: 'replay'} | {kind: 'fetch', resolve, reject}
    /** @type {Array<ChatMessage>} */
    this.messages = [];

    // typing
    this._typingOn = false;
    this._typingSentAt = 0;
    this._typingStopTimer = null;
    /** @type {Map<string, {user: string, display: string, at: number}>} */
    this._typers = new Map();

    // awareness
    this.awareness = new Awareness(this);

    this._restore();
    this._restoreChat();
  }

  // ================================================================ text

  /** The local text (with local edits not yet acknowledged). */
  get text() {
    return this._text;
  }

  /** 'synchronized' | 'awaiting-ack' | 'awaiting-with-buffer' */
  get state() {
    if (!this._inflight) return 'synchronized';
    return this._buffer ? 'awaiting-with-buffer' : 'awaiting-ack';
  }

  /** True when local edits are not yet acknowledged by the server. */
  get hasPending() {
    return !!this._inflight;
  }

  /** Resolves when the document is caught up with the server (now if it is). */
  whenSynced() {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.once('synced', () => resolve()));
  }

  /** Resolves when every local edit so far is acknowledged (stored durably). */
  whenSaved() {
    if (!this._inflight) return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.on('ack', () => {
        if (!this._inflight) {
          off();
          resolve();
        }
      });
    });
  }

  /**
   * Apply a local edit given as an operation in UTF-16 units on the current
   * text: numbers > 0 retain, strings insert, numbers < 0 delete (trailing
   * retain may be omitted). Throws (and changes nothing) when it does not fit
   * the text, splits a surrogate pair or inserts a lone surrogate.
   * @param {Array<number|string>} op
   */
  applyLocal(op) {
    if (this._closed) throw new Error('document is closed');
    if (this.access === 1) throw new Error('read-only document');
    let u = ot.normalize(op);
    const used = u.reduce((n, c) => (typeof c === 'number' ? n + Math.abs(c) : n), 0);
    if (used < this._text.length) u = ot.normalize([...u, this._text.length - used]);
    const cp = ot.toCodePoints(u, this._text);
    this._applyLocalCp(cp, u);
  }

  /** Insert str at UTF-16 index pos. */
  insert(pos, str) {
    this._checkPos(pos);
    this.applyLocal([pos, str, this._text.length - pos]);
  }

  /** Delete n UTF-16 code units at pos. */
  delete(pos, n) {
    this._checkPos(pos);
    if (!Number.isInteger(n) || n < 0 || pos + n > this._text.length) throw new RangeError('delete past the end');
    this.applyLocal([pos, -n, this._text.length - pos - n]);
  }

  /** Replace the whole text by `text` with one minimal edit (common prefix and suffix kept). */
  setText(text) {
    const cp = ot.diff(this._text, text);
    if (ot.isNoop(cp)) return;
    this._applyLocalCp(cp, ot.toUtf16(cp, this._text));
  }

  _checkPos(pos) {
    if (!Number.isInteger(pos) || pos < 0 || pos > this._text.length) throw new RangeError(`position ${pos} outside the text`);
  }

  _applyLocalCp(cp, u16) {
    if (ot.isNoop(cp)) return;
    const before = this._text;
    this._text = ot.apply(cp, before);
    if (!this._inflight) {
      this._inflight = cp;
      this._inflightId = this._takeOpId();
      this._inflightSent = false;
      this._inflightSrcs = [];
    } else if (!this._inflightSent && this._inflightSrcs.length === 0 && !this._buffer) {
      this._inflight = ot.compose(this._inflight, cp); // never sent anywhere: compose into it
    } else {
      this._buffer = this._buffer ? ot.compose(this._buffer, cp) : cp;
    }
    this.awareness._transformCursors(cp, before);
    this._save();
    this.emit('change', { op: u16, changes: ot.toChanges(u16), remote: false, text: this._text });
    this._sendInflight();
  }

  _takeOpId() {
    const id = this._nextOpId;
    this._nextOpId += 2;
    return id;
  }

  // ================================================================ connection

  _subscribeFrame() {
    const after = this._o.chatReplay ? this._lastChatId : null;
    if (!this.client._send({ type: MSG.SUBSCRIBE, channel: this.channel, name: this.room, mode: MODE_OT, version: this.version, after })) return;
    this._subscribing = true;
    if (after !== null) this._historyQueue.push({ kind: 'replay' });
  }

  _onOnline() {
    if (this._closed) return;
    this._subscribed = false;
    this._snap = null;
    this._subscribeFrame();
  }

  _onOffline() {
    this._subscribed = false;
    this._subscribing = false;
    this._authRetried = false;
    this.synced = false;
    this._inflightSent = false;
    this._snap = null;
    clearTimeout(this._retryTimer);
    for (const h of this._historyQueue) if (h.kind === 'fetch') h.reject(new Error('disconnected'));
    this._historyQueue = [];
    for (const p of this._chatPending.values()) p.sent = false;
    if (this._typers.size) {
      this._typers.clear();
      this.emit('typing', this.typing);
    }
    this._typingOn = false;
    this.awareness._onOffline();
  }

  _sendInflight() {
    if (!this._inflight || this._inflightSent || !this._subscribed || this.version === null || this.version < this._target) return;
    if (this.access === 1) return;
    const sent = this.client._send({ type: MSG.OT_OP, channel: this.channel, version: this.version, opId: this._inflightId, op: this._inflight });
    if (sent) {
      this._inflightSent = true;
      if (!this._inflightSrcs.includes(this.client.clientId)) {
        this._inflightSrcs.push(this.client.clientId);
        this._save();
      }
    }
  }

  _caughtUp() {
    if (!this._subscribed || this.version === null || this.version < this._target) return;
    if (!this.synced) {
      this.synced = true;
      this.emit('synced', { version: this.version });
      this._resendChat();
      this.awareness._onSynced();
    }
    this._sendInflight();
  }

  _onMessage(m) {
    switch (m.type) {
      case MSG.SUBSCRIBED:
        this._subscribed = true;
        this._subscribing = false;
        this.access = m.access;
        this._target = m.version;
        this._serverChatId = m.chatId;
        this.emit('subscribed', { access: m.access === 2 ? 'write' : 'read', version: m.version, isNew: m.isNew });
        if (this.version !== null && this.version > this._target) {
          // the server is behind us (it lost history): start over from a snapshot
          this.version = null;
          this.client._send({ type: MSG.UNSUBSCRIBE, channel: this.channel });
          this._onOnline();
          return;
        }
        this._caughtUp();
        return;
      case MSG.OT_SNAPSHOT:
        return this._onSnapshot(m);
      case MSG.OT_REMOTE:
        return this._onRemote(m);
      case MSG.OT_ACK:
        if (!this._inflight || m.opId !== this._inflightId) return; // stale
        if (!this._subscribed || m.version > this.version + 1) return; // past a gap: the catch-up acks
        this._acked(m.version);
        return;
      case MSG.CHAT_ACK:
        return this._onChatAck(m);
      case MSG.CHAT_MSG:
        this._report({ id: m.chatId, timeMs: m.timeMs, user: m.user, display: m.display, text: m.text }, false);
        return;
      case MSG.CHAT_HISTORY_REPLY:
        return this._onHistory(m);
      case MSG.TYPING:
        return this._onTyping(m);
      case MSG.AWARENESS:
        return this.awareness._onRemote(m.data);
      default:
    }
  }

  _onSnapshot(m) {
    if (!this._snap || m.offset === 0) this._snap = { version: m.version, total: m.total, parts: [], got: 0 };
    const s = this._snap;
    if (m.offset !== s.got || m.total !== s.total) {
      this._snap = null;
      return;
    }
    s.parts.push(m.data);
    s.got += m.data.length;
    if (s.got < s.total) return;
    this._snap = null;
    const all = new Uint8Array(s.total);
    let off = 0;
    for (const p of s.parts) {
      all.set(p, off);
      off += p.length;
    }
    let snapText;
    try {
      snapText = utf8dec.decode(all);
    } catch {
      this.emit('error', { code: ERR.MALFORMED, name: 'MALFORMED', message: 'snapshot is not UTF-8' });
      return;
    }
    this._installSnapshot(snapText, s.version);
  }

  // Replace the base by a snapshot and rebase unsent local work over the
  // difference between the old base and the snapshot (a three-way merge by
  // one replace: our edits keep their places relative to unchanged text).
  _installSnapshot(snapText, version) {
    const before = this._text;
    let pending = this._inflight;
    if (pending && this._buffer) pending = ot.compose(pending, this._buffer);
    if (pending) {
      const d = ot.diff(this._base, snapText);
      pending = ot.transform(pending, d, 'left');
    }
    this._base = snapText;
    this.version = version;
    this._text = pending ? ot.apply(pending, snapText) : snapText;
    this._buffer = null;
    this._inflight = pending && !ot.isNoop(pending) ? pending : null;
    if (this._inflight) {
      this._inflightId = this._takeOpId();
      this._inflightSrcs = [];
    }
    this._inflightSent = false;
    this._save();
    if (before !== this._text) {
      const cp = ot.diff(before, this._text);
      this.awareness._transformCursors(cp, before);
      const u16 = ot.toUtf16(cp, before);
      this.emit('change', { op: u16, changes: ot.toChanges(u16), remote: true, snapshot: true, text: this._text });
    }
    this._caughtUp();
  }

  _isOwn(m) {
    if (!this._inflight || m.opId !== this._inflightId || !m.src) return false;
    const src = typeof m.src === 'bigint' ? m.src : BigInt(m.src);
    return this._inflightSrcs.some((id) => BigInt(id) === src);
  }

  _onRemote(m) {
    if (!this._subscribed || this.version === null || m.version <= this.version) return;
    if (m.version !== this.version + 1) {
      // a gap: catch up again from the version we hold
      this.client._send({ type: MSG.UNSUBSCRIBE, channel: this.channel });
      this._inflightSent = false;
      this._onOnline();
      return;
    }
    if (this._isOwn(m)) {
      this._acked(m.version);
      this._caughtUp();
      return;
    }
    let op;
    try {
      op = ot.normalize(m.op);
      const newBase = ot.apply(op, this._base);
      let inflight = this._inflight;
      let buffer = this._buffer;
      if (inflight) {
        const i2 = ot.transform(inflight, op, 'left');
        op = ot.transform(op, inflight, 'right');
        inflight = i2;
      }
      if (buffer) {
        const b2 = ot.transform(buffer, op, 'left');
        op = ot.transform(op, buffer, 'right');
        buffer = b2;
      }
      const before = this._text;
      const after = ot.apply(op, before);
      this._base = newBase;
      this._inflight = inflight;
      this._buffer = buffer;
      this._text = after;
      this.version = m.version;
      this.awareness._transformCursors(op, before);
      if (this._inflight) this._save();
      const u16 = ot.toUtf16(op, before);
      this.emit('change', { op: u16, changes: ot.toChanges(u16), remote: true, text: after, src: m.src });
    } catch (e) {
      // the server's op does not fit our text: resynchronize from a snapshot
      this.emit('error', { code: ERR.BAD_OPERATION, name: 'BAD_OPERATION', message: `remote op does not apply: ${e.message}` });
      this.version = null;
      this.client._send({ type: MSG.UNSUBSCRIBE, channel: this.channel });
      this._onOnline();
      return;
    }
    this._caughtUp();
  }

  _acked(version) {
    this._base = ot.apply(this._inflight, this._base);
    if (version > this.version) this.version = version;
    this._inflight = this._buffer;
    this._buffer = null;
    this._inflightSent = false;
    this._inflightSrcs = [];
    if (this._inflight) this._inflightId = this._takeOpId();
    this._save();
    this.emit('ack', { version: this.version, state: this.state });
    this._sendInflight();
  }

  _onError(m) {
    const err = { ...m, name: ERR_NAMES[m.code] ?? 'UNKNOWN' };
    const isOp = m.ref && m.ref % 2 === 1;
    const isChat = m.ref && m.ref % 2 === 0;
    if (!m.ref && !this._subscribed && this._subscribing && SUBSCRIBE_FAILURES.has(m.code)) {
      // the SUBSCRIBE was refused
      this._subscribing = false;
      this._historyQueue = this._historyQueue.filter((h) => h.kind !== 'replay');
      if (m.code === ERR.NOT_ALLOWED) {
        // a stale token (e.g. the server restarted with a new key): refresh once per connection
        if (this.client._getToken && !this._authRetried) {
          this._authRetried = true;
          this.client.refreshToken().catch(() => {});
        }
      } else if (m.code !== ERR.UNKNOWN_DOCUMENT && m.code !== ERR.TOO_BIG) {
        clearTimeout(this._resubTimer);
        this._resubTimer = setTimeout(() => {
          if (!this._closed && !this._subscribed && !this._subscribing && this.client.status === 'online') this._subscribeFrame();
        }, Math.max(m.retryMs || 0, 1000));
      }
      this.emit('error', { ...m, name: ERR_NAMES[m.code] ?? 'UNKNOWN' });
      return;
    }
    if (!m.ref && m.code === ERR.NOT_ALLOWED && this._subscribed) {
      // access revoked: the server left the channel
      this._subscribed = false;
      this.synced = false;
      this.access = 0;
    }
    switch (m.code) {
      case ERR.RATE_LIMITED:
      case ERR.SERVER_BUSY:
      case ERR.STORAGE:
        if (isOp && this._inflight && m.ref === this._inflightId && m.code !== ERR.STORAGE) {
          this._inflightSent = false;
          this._retryLater(m.retryMs);
        } else if (isChat && this._chatPending.has(m.ref)) {
          this._chatPending.get(m.ref).sent = false;
          this._retryLater(m.retryMs);
        } else if (!m.ref && m.code === ERR.STORAGE && this._historyQueue.length) {
          const h = this._historyQueue.shift();
          if (h.kind === 'fetch') h.reject(new Error(m.text));
        }
        break;
      case ERR.TOO_FAR_BEHIND:
        // a snapshot follows; _installSnapshot rebases the local work
        if (isOp && m.ref === this._inflightId) this._inflightSent = false;
        break;
      case ERR.NOT_ALLOWED:
        if (this._subscribed && isOp) {
          // a write on a read-only subscription: the op can never be applied
          this.access = 1;
        }
        break;
      case ERR.BAD_OPERATION:
        if (isOp && m.ref === this._inflightId) {
          // never acceptable: start over from a snapshot, rebasing our work
          this.version = null;
          this._inflightSent = false;
          this.client._send({ type: MSG.UNSUBSCRIBE, channel: this.channel });
          this._onOnline();
        }
        break;
      case ERR.MALFORMED:
        if (isChat && this._chatPending.has(m.ref)) {
          const p = this._chatPending.get(m.ref);
          this._chatPending.delete(m.ref);
          this._saveChat();
          p.reject(Object.assign(new Error(m.text), { code: m.code }));
        }
        break;
      default:
    }
    this.emit('error', err);
  }

  _retryLater(ms) {
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this.emit('retry', {});
      this._sendInflight();
      this._resendChat();
    }, Math.max(ms || 0, 50));
  }

  // ================================================================ persistence

  _save() {
    if (!this._o.persist) return;
    const st = this.client.storage;
    try {
      if (!this._inflight) {
        st.removeItem(this._key);
        return;
      }
      // the in-flight op keeps its id and the client ids it was sent under, so
      // that after a reload its echo in the catch-up is recognized as its ack
      const rec = {
        v: 1,
        version: this.version,
        base: this._base,
        inflight: this._inflight,
        buffer: this._buffer,
        opId: this._inflightId,
        srcs: this._inflightSrcs,
        nextOpId: this._nextOpId,
      };
      st.setItem(this._key, JSON.stringify(rec));
    } catch (e) {
      this.emit('error', { code: 0, name: 'STORAGE_ADAPTER', message: `could not save offline edits: ${e?.message ?? e}` });
    }
  }

  // The chat outbox: {v: 1, msgs: [{msgId, text}]} while messages wait for
  // their CHAT_ACK. Restored messages are resent with their msg ids; under the
  // same client id (rememberClientId) the server's dedup makes that exactly once.
  _saveChat() {
    if (!this._o.persist) return;
    const st = this.client.storage;
    try {
      if (this._chatPending.size === 0) {
        st.removeItem(this._chatKey);
        return;
      }
      const msgs = [...this._chatPending.values()].map((p) => ({ msgId: p.msgId, text: p.text }));
      st.setItem(this._chatKey, JSON.stringify({ v: 1, msgs }));
    } catch (e) {
      this.emit('error', { code: 0, name: 'STORAGE_ADAPTER', message: `could not save unsent chat: ${e?.message ?? e}` });
    }
  }

  _restoreChat() {
    if (!this._o.persist) return;
    let rec;
    try {
      rec = JSON.parse(this.client.storage.getItem(this._chatKey) ?? 'null');
    } catch {
      return; // damaged: ignored (overwritten at the next send)
    }
    if (rec?.v !== 1 || !Array.isArray(rec.msgs)) return;
    for (const m of rec.msgs.slice(0, CHAT_OUTBOX_CAP)) {
      if (!m || !Number.isSafeInteger(m.msgId) || m.msgId <= 0 || m.msgId % 2 !== 0 || this._chatPending.has(m.msgId)) continue;
      if (typeof m.text !== 'string' || !validChat(m.text)) continue;
      const p = { msgId: m.msgId, text: m.text, resolve: () => {}, reject: () => {}, sent: false, restored: true };
      this._chatPending.set(m.msgId, p);
      if (m.msgId >= this._nextMsgId) this._nextMsgId = m.msgId + 2; // new ids above the restored ones
    }
  }

  /** Chat messages sent but not yet acknowledged: [{msgId, text, restored}] (restored = from an earlier page load). */
  get pendingChat() {
    return [...this._chatPending.values()].map((p) => ({ msgId: p.msgId, text: p.text, restored: !!p.restored }));
  }

  _restore() {
    if (!this._o.persist) return;
    let rec;
    try {
      const raw = this.client.storage.getItem(this._key);
      if (!raw) return;
      rec = JSON.parse(raw);
      if (rec?.v !== 1 || typeof rec.base !== 'string') return;
      const inflight = ot.normalize(rec.inflight);
      const buffer = rec.buffer ? ot.normalize(rec.buffer) : null;
      let text = ot.apply(inflight, rec.base);
      if (buffer) text = ot.apply(buffer, text);
      if (ot.isNoop(inflight)) return;
      this._base = rec.base;
      this.version = Number.isSafeInteger(rec.version) ? rec.version : null;
      this._text = text;
      this._inflight = inflight;
      this._buffer = buffer;
      if (Number.isSafeInteger(rec.nextOpId) && rec.nextOpId % 2 === 1) this._nextOpId = Math.max(rec.nextOpId, this._nextOpId);
      if (Number.isSafeInteger(rec.opId) && rec.opId % 2 === 1 && Array.isArray(rec.srcs)) {
        this._inflightId = rec.opId;
        this._inflightSrcs = rec.srcs.filter((x) => Number.isSafeInteger(x));
      } else {
        this._inflightId = this._takeOpId();
      }
      this.restored = true;
    } catch {
      // a damaged record: ignore it (it is overwritten at the next edit)
    }
  }

  // ================================================================ chat

  /**
   * Send a chat message. Resolves with the stored message once the server
   * acknowledged it (it is resent after reconnects until then).
   * @param {string} text 1..16384 UTF-8 bytes
   * @returns {Promise<ChatMessage>}
   */
  sendChat(text) {
    if (typeof text !== 'string' || text.length === 0) return Promise.reject(new TypeError('chat text required'));
    if (utf8enc.encode(text).length > 16384) return Promise.reject(new RangeError('chat text over 16384 bytes'));
    if (!ot.isWellFormed(text)) return Promise.reject(new TypeError('chat text is not valid Unicode'));
    if (this._chatPending.size >= CHAT_OUTBOX_CAP) return Promise.reject(new RangeError(`over ${CHAT_OUTBOX_CAP} chat messages waiting for the server`));
    const msgId = this._nextMsgId;
    this._nextMsgId += 2;
    return new Promise((resolve, reject) => {
      const p = { msgId, text, resolve, reject, sent: false };
      this._chatPending.set(msgId, p);
      this._saveChat();
      this.emit('chat-pending', { msgId, text });
      if (this.synced) this._sendChat(p);
    });
  }

  _sendChat(p) {
    if (p.sent) return;
    p.sent = this.client._send({ type: MSG.CHAT_SEND, channel: this.channel, msgId: p.msgId, text: p.text });
  }

  _resendChat() {
    if (!this.synced) return;
    for (const p of this._chatPending.values()) this._sendChat(p);
  }

  _onChatAck(m) {
    const p = this._chatPending.get(m.msgId);
    if (!p) return;
    this._chatPending.delete(m.msgId);
    this._saveChat();
    const msg = { id: m.chatId, timeMs: m.timeMs, user: null, display: null, text: p.text, own: true, msgId: m.msgId };
    // always, even when the record was already reported (a replay carried it before this ack)
    this.emit('chat-acked', { msgId: m.msgId, id: m.chatId, timeMs: m.timeMs });
    this._report(msg, false);
    p.resolve(msg);
  }

  // report a chat record once (replays overlapping live messages are filtered by id)
  _report(rec, replay) {
    if (this._seen.has(rec.id)) return;
    this._seen.add(rec.id);
    if (this._seen.size > SEEN_CHAT_CAP) {
      const drop = [...this._seen].sort((a, b) => a - b).slice(0, SEEN_CHAT_CAP / 2);
      for (const id of drop) this._seen.delete(id);
    }
    if (rec.id > this._lastChatId) this._lastChatId = rec.id;
    const msg = { own: false, ...rec, replay };
    this.messages.push(msg);
    if (this.messages.length > SEEN_CHAT_CAP) this.messages.splice(0, this.messages.length - SEEN_CHAT_CAP);
    this.emit('chat', msg);
  }

  _onHistory(m) {
    const h = this._historyQueue.shift();
    if (!h) return;
    if (h.kind === 'fetch') {
      h.resolve({ messages: m.records, more: m.more });
      return;
    }
    for (const r of m.records) this._report(r, true);
    if (m.more && m.records.length) {
      this._historyQueue.push({ kind: 'replay' });
      this.client._send({ type: MSG.CHAT_HISTORY, channel: this.channel, after: m.records[m.records.length - 1].id, limit: HISTORY_PAGE });
    } else {
      this.emit('chat-replayed', { lastId: this._lastChatId });
    }
  }

  /**
   * Fetch chat records with id > after (over the protocol, up to 256).
   * Does not emit 'chat' events.
   * @param {{after?: number, limit?: number}} [q]
   * @returns {Promise<{messages: ChatRecord[], more: boolean}>}
   */
  fetchChatHistory({ after = 0, limit = 100 } = {}) {
    return new Promise((resolve, reject) => {
      if (!this._subscribed) return reject(new Error('not connected'));
      const lim = Math.max(1, Math.min(HISTORY_PAGE, limit | 0));
      this._historyQueue.push({ kind: 'fetch', resolve, reject });
      if (!this.client._send({ type: MSG.CHAT_HISTORY, channel: this.channel, after, limit: lim })) {
        this._historyQueue.pop();
        reject(new Error('not connected'));
      }
    });
  }

  // ================================================================ typing

  /** Users typing now (other connections): [{user, display}]. */
  get typing() {
    return [...this._typers.values()].map(({ user, display }) => ({ user, display }));
  }

  /**
   * Say "I am typing" (call on every keystroke). Renewed to the server at most
   * every 2 s; stops automatically typingTimeout ms after the last call.
   */
  startTyping() {
    const now = Date.now();
    if (!this._typingOn || now - this._typingSentAt >= TYPING_RENEW_MS) {
      if (this.synced && this.client._send({ type: MSG.TYPING, channel: this.channel, on: true })) {
        this._typingOn = true;
        this._typingSentAt = now;
      }
    }
    clearTimeout(this._typingStopTimer);
    this._typingStopTimer = setTimeout(() => this.stopTyping(), this._o.typingTimeout);
  }

  /** Say "I stopped typing". */
  stopTyping() {
    clearTimeout(this._typingStopTimer);
    this._typingStopTimer = null;
    if (!this._typingOn) return;
    this._typingOn = false;
    this.client._send({ type: MSG.TYPING, channel: this.channel, on: false });
  }

  _onTyping(m) {
    const had = this._typers.has(m.user);
    if (m.on) this._typers.set(m.user, { user: m.user, display: m.display, at: Date.now() });
    else this._typers.delete(m.user);
    if (had !== m.on || m.on) this.emit('typing', this.typing);
  }

  // ================================================================ lifetime

  /** Leave the room (UNSUBSCRIBE); unsent edits stay in storage. */
  close() {
    if (this._closed) return;
    this.stopTyping();
    this.awareness.setLocalState(null);
    this._closed = true;
    clearTimeout(this._retryTimer);
    clearTimeout(this._resubTimer);
    this.awareness._stop();
    this.client._send({ type: MSG.UNSUBSCRIBE, channel: this.channel });
    this._onOffline();
    this.client._forget(this);
  }
}

/**
 * Awareness of one document: who is here, with a JSON state each (user name,
 * colour, cursor). Yjs rules (clock per client, null = gone, 30 s expiry,
 * renewal every 15 s; the server removes a connection's entries when it
 * leaves). On the wire the state is UTF-8 JSON; a cursor travels as
 * {anchor, head} in code points; this API gives and takes UTF-16 indices.
 * Remote cursors are transformed through every later change of the local text
 * until the peer sends a new state (OT clients have no relative positions).
 */
export class Awareness extends Emitter {
  constructor(doc) {
    super();
    this.doc = doc;
    this.clientId = doc.client.clientId;
    this._clock = doc.client._awClockSaved; // above any clock an earlier load sent under this client id
    this._local = null; // state object (cursor in code points)
    /** @type {Map<string, {clientId: number|bigint, clock: number, state: any|null, at: number}>} */
    this._peers = new Map();
    this._timer = null;
  }

  /**
   * Set the local state (any JSON object; null = leave). A `cursor` field
   * {anchor, head} in UTF-16 indices of doc.text is sent in code points and
   * moved through later changes.
   * @param {object|null} state
   */
  setLocalState(state) {
    if (state === null) {
      if (this._local === null) return;
      this._local = null;
      this._clock++;
      this._broadcast();
      this.emit('change', { added: [], updated: [], removed: [String(this.clientId)], local: true });
      return;
    }
    const s = { ...state };
    if (s.cursor) s.cursor = this._cursorToCp(s.cursor);
    this._local = s;
    this._clock++;
    this._broadcast();
    this._arm();
    this.emit('change', { added: [], updated: [String(this.clientId)], removed: [], local: true });
  }

  /** Merge fields into the local state. */
  setLocalStateField(field, value) {
    const cur = this.getLocalState() ?? {};
    this.setLocalState({ ...cur, [field]: value });
  }

  /** Set the local cursor / selection (UTF-16 indices). */
  setCursor(anchor, head = anchor) {
    this.setLocalStateField('cursor', { anchor, head });
  }

  /** The local state (cursor in UTF-16 indices). */
  getLocalState() {
    if (!this._local) return null;
    const s = { ...this._local };
    if (s.cursor) s.cursor = this._cursorToU16(s.cursor);
    return s;
  }

  /**
   * The other clients present: [{clientId, state}] with cursors in UTF-16
   * indices of the current text.
   */
  get peers() {
    const out = [];
    for (const p of this._peers.values()) {
      if (p.state === null) continue;
      const state = { ...p.state };
      if (state.cursor) state.cursor = this._cursorToU16(state.cursor);
      out.push({ clientId: p.clientId, state });
    }
    return out;
  }

  _cursorToCp(c) {
    const t = this.doc.text;
    const clamp = (x) => Math.max(0, Math.min(t.length, x | 0));
    const fix = (x) => (ot.splitsPair(t, x) ? x - 1 : x);
    return { anchor: ot.utf16ToCpIndex(t, fix(clamp(c.anchor))), head: ot.utf16ToCpIndex(t, fix(clamp(c.head ?? c.anchor))) };
  }

  _cursorToU16(c) {
    const t = this.doc.text;
    const n = ot.cpLength(t);
    const conv = (x) => ot.cpToUtf16Index(t, Math.max(0, Math.min(n, Number.isInteger(x) ? x : 0)));
    return { anchor: conv(c.anchor), head: conv(c.head) };
  }

  // move cursors (code points) through an op (code points) on `before`
  _transformCursors(op) {
    const mv = (c) => ({ anchor: ot.transformPosition(c.anchor, op, 'right', 'cp'), head: ot.transformPosition(c.head, op, 'right', 'cp') });
    for (const p of this._peers.values()) if (p.state?.cursor) p.state.cursor = mv(p.state.cursor);
    if (this._local?.cursor) this._local.cursor = mv(this._local.cursor);
  }

  _encodeLocal() {
    const state = this._local === null ? null : utf8enc.encode(JSON.stringify(this._local));
    return encodeAwareness([[this.clientId, this._clock, state]]);
  }

  // Send the local entry; at most one frame per AW_MIN_GAP_MS (the server
  // rate-limits awareness per user): changes in between are coalesced into
  // one trailing frame carrying the latest state.
  _broadcast() {
    if (!this.doc.synced) return;
    const wait = (this._sentAt ?? 0) + AW_MIN_GAP_MS - Date.now();
    if (wait > 0) {
      if (!this._trailing) {
        this._trailing = setTimeout(() => {
          this._trailing = null;
          this._broadcast();
        }, wait);
      }
      return;
    }
    this.doc.client._noteAwarenessClock(this._clock);
    this.doc.client._send({ type: MSG.AWARENESS, channel: this.doc.channel, data: this._encodeLocal() });
    this._sentAt = Date.now();
  }

  _arm() {
    if (this._timer) return;
    this._timer = setInterval(() => this._tick(), 5000);
    this._timer.unref?.();
  }

  _tick() {
    const now = Date.now();
    if (this._local && now - (this._sentAt ?? 0) >= AW_RENEW_MS) {
      this._clock++;
      this._broadcast();
    }
    const removed = [];
    for (const [k, p] of this._peers) {
      if (p.state !== null && now - p.at >= AW_TIMEOUT_MS) {
        p.state = null;
        removed.push(k);
      }
    }
    if (removed.length) this.emit('change', { added: [], updated: [], removed, local: false });
  }

  _onSynced() {
    if (this._local) {
      this._clock++;
      this._broadcast();
    }
  }

  _onOffline() {
    // every peer is gone from our view until the server tells us again
    const removed = [...this._peers.entries()].filter(([, p]) => p.state !== null).map(([k]) => k);
    this._peers.clear();
    if (removed.length) this.emit('change', { added: [], updated: [], removed, local: false });
  }

  _stop() {
    clearInterval(this._timer);
    this._timer = null;
    clearTimeout(this._trailing);
    this._trailing = null;
  }

  _onRemote(data) {
    let entries;
    try {
      entries = decodeAwareness(data);
    } catch {
      return;
    }
    const added = [];
    const updated = [];
    const removed = [];
    const now = Date.now();
    for (const e of entries) {
      const key = String(e.client);
      if (key === String(this.clientId)) {
        // about us: never changes our state; a winning clock makes us re-announce
        if (e.clock > this._clock || (e.clock === this._clock && e.state === null && this._local)) {
          this._clock = e.clock + 1;
          if (this._local) this._broadcast();
        }
        continue;
      }
      let state = null;
      if (e.state) {
        try {
          state = JSON.parse(utf8dec.decode(e.state));
        } catch {
          state = { raw: true };
        }
      }
      const held = this._peers.get(key);
      if (!held) {
        this._peers.set(key, { clientId: e.client, clock: e.clock, state, at: now });
        if (state !== null) added.push(key);
        continue;
      }
      if (e.clock > held.clock || (e.clock === held.clock && e.state === null && held.state !== null)) {
        const was = held.state;
        held.clock = e.clock;
        held.at = now;
        held.state = state;
        if (state === null) {
          if (was !== null) removed.push(key);
        } else if (was === null) {
          added.push(key);
        } else if (JSON.stringify(was) !== JSON.stringify(state)) {
          updated.push(key);
        }
      }
    }
    if (added.length || updated.length || removed.length) {
      this._arm();
      this.emit('change', { added, updated, removed, local: false });
    }
  }
}
