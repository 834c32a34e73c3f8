// codec.js - the tandem.v1 wire messages (docs/PROTOCOL.md) on cbor-x.
//
// encodeMessage(msg) turns a message object into one CBOR frame;
// decodeMessage(bytes) is the one validating decoder for frames from the
// server: it checks the shape of every message this client uses and returns
// null for an unknown message type (ignored, as the protocol says). Malformed
// frames throw CodecError. Unsigned integers above 2^53 - 1 (only replica ids
// may be) come out as BigInt.

import { Encoder } from 'cbor-x';

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL = 'tandem.v1';

/** Message type numbers (docs/PROTOCOL.md, message catalogue). */
export const MSG = Object.freeze({
  HELLO: 1,
  WELCOME: 2,
  ERROR: 3,
  PING: 4,
  PONG: 5,
  SUBSCRIBE: 10,
  SUBSCRIBED: 11,
  UNSUBSCRIBE: 12,
  SYNC_STEP: 20,
  UPDATE_CHUNK: 21,
  UPDATE: 22,
  ACK: 23,
  AWARENESS: 24,
  OT_OP: 30,
  OT_ACK: 31,
  OT_REMOTE: 32,
  OT_SNAPSHOT: 33,
  CHAT_SEND: 40,
  CHAT_ACK: 41,
  CHAT_MSG: 42,
  CHAT_HISTORY: 43,
  CHAT_HISTORY_REPLY: 44,
  TYPING: 50,
});

/** ERROR codes (docs/PROTOCOL.md, error codes). */
export const ERR = Object.freeze({
  MALFORMED: 1,
  NOT_ALLOWED: 2,
  RATE_LIMITED: 3,
  TOO_BIG: 4,
  UNKNOWN_DOCUMENT: 5,
  SERVER_BUSY: 6,
  VERSION_MISMATCH: 7,
  TOO_FAR_BEHIND: 8,
  UNKNOWN_CHANNEL: 9,
  CHANNEL_IN_USE: 10,
  BAD_STATE: 11,
  STORAGE: 12,
  BAD_OPERATION: 13,
  LOAD_FAILED: 14,
  INTERNAL: 15,
  CLOSING: 16,
});

export const ERR_NAMES = Object.freeze(
  Object.fromEntries(Object.entries(ERR).map(([k, v]) => [v, k])),
);

/** Capability bits (HELLO.caps). */
export const CAPS = Object.freeze({ CRDT: 0x01, OT: 0x02, AWARENESS: 0x04, CHAT: 0x08, TYPING: 0x10 });

export const MODE_OT = 1;

export class CodecError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'CodecError';
  }
}

const cbor = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  variableMapSize: true,
});

// cbor-x writes integers past 32 bits as floats; the protocol wants unsigned
// integers, so those go out as BigInt (encoded as a 64-bit integer).
function wireInt(n) {
  if (typeof n === 'bigint') return n;
  if (!Number.isSafeInteger(n) || n < 0) throw new CodecError(`not an unsigned integer: ${n}`);
  return n > 0xffffffff ? BigInt(n) : n;
}

const utf8 = new TextEncoder();

/**
 * Encode one message object into a frame.
 * @param {{type: number} & Record<string, any>} m
 * @returns {Uint8Array}
 */
export function encodeMessage(m) {
  const u = wireInt;
  const opt = (v) => (v === null || v === undefined ? null : u(v));
  let arr;
  switch (m.type) {
    case MSG.HELLO:
      arr = [MSG.HELLO, u(m.proto ?? PROTOCOL_VERSION), u(m.caps), u(m.clientId), utf8.encode(m.token ?? '')];
      break;
    case MSG.PING:
    case MSG.PONG:
      arr = [m.type, u(m.nonce)];
      break;
    case MSG.SUBSCRIBE:
      arr = [MSG.SUBSCRIBE, u(m.channel), m.name, u(m.mode), null, opt(m.version), opt(m.after)];
      break;
    case MSG.UNSUBSCRIBE:
      arr = [MSG.UNSUBSCRIBE, u(m.channel)];
      break;
    case MSG.AWARENESS:
      arr = [MSG.AWARENESS, u(m.channel), m.data];
      break;
    case MSG.OT_OP:
      arr = [MSG.OT_OP, u(m.channel), u(m.version), u(m.opId), m.op];
      break;
    case MSG.CHAT_SEND:
      arr = [MSG.CHAT_SEND, u(m.channel), u(m.msgId), m.text];
      break;
    case MSG.CHAT_HISTORY:
      arr = [MSG.CHAT_HISTORY, u(m.channel), u(m.after), u(m.limit)];
      break;
    case MSG.TYPING:
      arr = [MSG.TYPING, u(m.channel), !!m.on, '', ''];
      break;
    default:
      throw new CodecError(`cannot encode message type ${m.type}`);
  }
  return cbor.encode(arr);
}

// ---------------------------------------------------------------- decoding

function fail(what) {
  throw new CodecError(`malformed frame: ${what}`);
}

// an unsigned integer: a safe Number, or a BigInt past 2^53 - 1
function uint(v, what) {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) fail(what);
    return v;
  }
  if (typeof v === 'bigint') {
    if (v < 0n) fail(what);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  return fail(what);
}
function num(v, what) {
  const n = uint(v, what);
  if (typeof n !== 'number') fail(what);
  return n;
}
function text(v, what) {
  if (typeof v !== 'string') fail(what);
  return v;
}
function bytes(v, what) {
  if (!(v instanceof Uint8Array)) fail(what);
  return v;
}
function bool(v, what) {
  if (typeof v !== 'boolean') fail(what);
  return v;
}
function wireOp(v, what) {
  if (!Array.isArray(v)) fail(what);
  for (const c of v) {
    if (typeof c === 'string') {
      if (c === '') fail(what);
    } else if (typeof c === 'number') {
      if (!Number.isSafeInteger(c) || c === 0) fail(what);
    } else {
      fail(what);
    }
  }
  return v;
}
function need(a, n, what) {
  if (a.length < n) fail(`${what}: missing fields`);
}

/**
 * Decode one frame from the server. Returns null for a message type this
 * client does not know (to be ignored). Throws CodecError when malformed.
 * @param {Uint8Array|ArrayBuffer} data
 * @returns {null | {type: number} & Record<string, any>}
 */
export function decodeMessage(data) {
  const buf = data instanceof Uint8Array ? data : new Uint8Array(data);
  let a;
  try {
    a = cbor.decode(buf);
  } catch (e) {
    return fail(`not one CBOR item (${e.message})`);
  }
  if (!Array.isArray(a) || a.length < 1) fail('not an array');
  const type = num(a[0], 'type');
  switch (type) {
    case MSG.WELCOME:
      need(a, 5, 'WELCOME');
      return { type, proto: num(a[1], 'proto'), sessionId: uint(a[2], 'session'), caps: num(a[3], 'caps'), maxFrame: num(a[4], 'max_frame') };
    case MSG.ERROR:
      need(a, 7, 'ERROR');
      return {
        type,
        code: num(a[1], 'code'),
        channel: num(a[2], 'channel'),
        ref: num(a[3], 'ref'),
        retryMs: num(a[4], 'retry_ms'),
        text: text(a[5], 'text'),
        op: a[6] === null ? null : wireOp(a[6], 'op'),
      };
    case MSG.PING:
    case MSG.PONG:
      need(a, 2, 'PING');
      return { type, nonce: uint(a[1], 'nonce') };
    case MSG.SUBSCRIBED:
      need(a, 8, 'SUBSCRIBED');
      return {
        type,
        channel: num(a[1], 'channel'),
        access: num(a[2], 'access'),
        mode: num(a[3], 'mode'),
        version: num(a[4], 'version'),
        chatId: num(a[5], 'chat_id'),
        isNew: bool(a[6], 'is_new'),
      };
    case MSG.AWARENESS:
      need(a, 3, 'AWARENESS');
      return { type, channel: num(a[1], 'channel'), data: bytes(a[2], 'data') };
    case MSG.OT_ACK:
      need(a, 4, 'OT_ACK');
      return { type, channel: num(a[1], 'channel'), opId: num(a[2], 'op_id'), version: num(a[3], 'version') };
    case MSG.OT_REMOTE:
      need(a, 6, 'OT_REMOTE');
      return {
        type,
        channel: num(a[1], 'channel'),
        version: num(a[2], 'version'),
        op: wireOp(a[3], 'op'),
        src: uint(a[4], 'src'),
        opId: num(a[5], 'op_id'),
      };
    case MSG.OT_SNAPSHOT: {
      need(a, 6, 'OT_SNAPSHOT');
      const m = {
        type,
        channel: num(a[1], 'channel'),
        version: num(a[2], 'version'),
        offset: num(a[3], 'offset'),
        total: num(a[4], 'total'),
        data: bytes(a[5], 'data'),
      };
      if (m.offset + m.data.length > m.total) fail('OT_SNAPSHOT chunk outside its transfer');
      return m;
    }
    case MSG.CHAT_ACK:
      need(a, 5, 'CHAT_ACK');
      return { type, channel: num(a[1], 'channel'), msgId: num(a[2], 'msg_id'), chatId: num(a[3], 'chat_id'), timeMs: num(a[4], 'time_ms') };
    case MSG.CHAT_MSG:
      need(a, 7, 'CHAT_MSG');
      return {
        type,
        channel: num(a[1], 'channel'),
        chatId: num(a[2], 'chat_id'),
        timeMs: num(a[3], 'time_ms'),
        user: text(a[4], 'user'),
        display: text(a[5], 'display'),
        text: text(a[6], 'text'),
      };
    case MSG.CHAT_HISTORY_REPLY: {
      need(a, 4, 'CHAT_HISTORY_REPLY');
      if (!Array.isArray(a[3])) fail('records');
      const records = a[3].map((r) => {
        if (!Array.isArray(r) || r.length < 5) fail('record');
        return { id: num(r[0], 'id'), timeMs: num(r[1], 'time'), user: text(r[2], 'user'), display: text(r[3], 'display'), text: text(r[4], 'text') };
      });
      return { type, channel: num(a[1], 'channel'), more: bool(a[2], 'more'), records };
    }
    case MSG.TYPING:
      need(a, 5, 'TYPING');
      return { type, channel: num(a[1], 'channel'), on: bool(a[2], 'on'), user: text(a[3], 'user'), display: text(a[4], 'display') };
    default:
      return null; // unknown or not for an OT client: ignored
  }
}

/**
 * Awareness wire form (docs/CRDT.md, "Awareness"): [[client, clock, state|null], ...].
 * @param {Array<[number|bigint, number, Uint8Array|null]>} entries
 */
export function encodeAwareness(entries) {
  return cbor.encode(entries.map(([c, k, s]) => [wireInt(c), wireInt(k), s]));
}

/** @returns {Array<{client: number|bigint, clock: number, state: Uint8Array|null}>} */
export function decodeAwareness(data) {
  let a;
  try {
    a = cbor.decode(data instanceof Uint8Array ? data : new Uint8Array(data));
  } catch (e) {
    return fail(`awareness: ${e.message}`);
  }
  if (!Array.isArray(a)) fail('awareness: not an array');
  return a.map((e) => {
    if (!Array.isArray(e) || e.length !== 3) fail('awareness entry');
    const state = e[2] === null ? null : bytes(e[2], 'awareness state');
    return { client: uint(e[0], 'awareness client'), clock: num(e[1], 'awareness clock'), state };
  });
}

/** Encode any value with the same CBOR settings (tests and tools). */
export function encodeRaw(v) {
  return cbor.encode(v);
}
/** Decode any CBOR item with the same settings (tests and tools). */
export function decodeRaw(b) {
  return cbor.decode(b);
}
