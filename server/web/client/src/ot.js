// ot.js - plain-text OT operations (the ot.js algorithms), as on tandem's wire.
//
// An operation is an array of components walking a base text from start to end:
//   a positive integer n  retain n
//   a non-empty string s  insert s
//   a negative integer -n delete n
// This is exactly the CBOR wire form (docs/CRDT.md, "OT operations"), so an
// operation decoded from a frame is used as is.
//
// Units. The functions named without a suffix count in Unicode CODE POINTS (the
// wire unit: what the server and the C library use). The JS API of
// TandemDocument counts in UTF-16 code units (what JS strings, <textarea> and
// CodeMirror use); toCodePoints / toUtf16 convert an operation between the two
// against the text it applies to, and refuse to split a surrogate pair.
//
// Every function is pure: it never mutates its arguments. Results are in the
// normal form of crdt/ot.h: no empty components, adjacent components of one
// kind merged, an insert before an adjacent delete. Trailing retains are kept
// (they are significant, as in ot.js).

/** @typedef {Array<number|string>} Op */

export class OTError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'OTError';
  }
}

const isRetain = (c) => typeof c === 'number' && c > 0;
const isDelete = (c) => typeof c === 'number' && c < 0;
const isInsert = (c) => typeof c === 'string';

// any surrogate: the fast paths below skip the per-unit loop for text without
// one (a native regex scan instead of a JavaScript loop)
const SURROGATE = /[\ud800-\udfff]/;

/** Number of code points in a string. */
export function cpLength(s) {
  if (!SURROGATE.test(s)) return s.length;
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** UTF-16 index in s after `cps` code points starting at UTF-16 index `from`. */
export function cpAdvance(s, from, cps) {
  const end = from + cps;
  if (end <= s.length && !SURROGATE.test(s.slice(from, end))) return end;
  let i = from;
  while (cps > 0) {
    if (i >= s.length) throw new OTError('operation is longer than the text');
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      i += d >= 0xdc00 && d <= 0xdfff ? 2 : 1;
    } else {
      i++;
    }
    cps--;
  }
  return i;
}

/** True when index i of s falls between the two halves of a surrogate pair. */
export function splitsPair(s, i) {
  if (i <= 0 || i >= s.length) return false;
  const a = s.charCodeAt(i - 1);
  const b = s.charCodeAt(i);
  return a >= 0xd800 && a <= 0xdbff && b >= 0xdc00 && b <= 0xdfff;
}

/** Code-point index of UTF-16 index i in text (i must not split a pair). */
export function utf16ToCpIndex(text, i) {
  if (i < 0 || i > text.length) throw new OTError('position out of range');
  if (splitsPair(text, i)) throw new OTError('position splits a surrogate pair');
  return cpLength(text.slice(0, i));
}

/** UTF-16 index of code-point index cp in text. */
export function cpToUtf16Index(text, cp) {
  return cpAdvance(text, 0, cp);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** True when s is valid Unicode (no lone surrogates): it encodes as strict UTF-8. */
export function isWellFormed(s) {
  return !LONE_SURROGATE.test(s);
}

/** A normalizing builder (the ot.js TextOperation builder). */
export class OpBuilder {
  constructor() {
    /** @type {Op} */
    this.ops = [];
  }
  /** @param {number} n */
  retain(n) {
    if (n <= 0) return this;
    const o = this.ops;
    if (o.length && isRetain(o[o.length - 1])) o[o.length - 1] += n;
    else o.push(n);
    return this;
  }
  /** @param {string} s */
  insert(s) {
    if (s === '') return this;
    const o = this.ops;
    const last = o[o.length - 1];
    if (isInsert(last)) {
      o[o.length - 1] = last + s;
    } else if (isDelete(last)) {
      // the insert goes before an adjacent delete
      if (isInsert(o[o.length - 2])) o[o.length - 2] += s;
      else o.splice(o.length - 1, 0, s);
    } else {
      o.push(s);
    }
    return this;
  }
  /** @param {number} n */
  delete(n) {
    if (n <= 0) return this;
    const o = this.ops;
    if (o.length && isDelete(o[o.length - 1])) o[o.length - 1] -= n;
    else o.push(-n);
    return this;
  }
  /** @returns {Op} */
  done() {
    return this.ops;
  }
}

/**
 * Check an operation's shape; returns a normalized copy.
 * @param {unknown} op
 * @returns {Op}
 */
export function normalize(op) {
  if (!Array.isArray(op)) throw new OTError('an operation is an array');
  const b = new OpBuilder();
  for (const c of op) {
    if (typeof c === 'string') {
      if (c === '') throw new OTError('empty insert');
      if (!isWellFormed(c)) throw new OTError('insert is not valid Unicode (lone surrogate)');
      b.insert(c);
    } else if (typeof c === 'number' && Number.isSafeInteger(c)) {
      // 0 is a no-op here (builder semantics); the wire decoder refuses it
      if (c > 0) b.retain(c);
      else b.delete(-c);
    } else {
      throw new OTError('component is not an integer or a non-empty string');
    }
  }
  return b.done();
}

/** Base length (code points: retains + deletes). */
export function baseLength(op) {
  let n = 0;
  for (const c of op) if (isRetain(c)) n += c;
  else if (isDelete(c)) n -= c;
  return n;
}

/** Target length (code points: retains + inserts). */
export function targetLength(op) {
  let n = 0;
  for (const c of op) if (isRetain(c)) n += c;
  else if (isInsert(c)) n += cpLength(c);
  return n;
}

/** True when the operation changes nothing (only retains). */
export function isNoop(op) {
  return op.every(isRetain);
}

/**
 * Apply op (code points) to text.
 * @param {Op} op
 * @param {string} text
 * @returns {string}
 */
export function apply(op, text) {
  const parts = [];
  let i = 0;
  for (const c of op) {
    if (isRetain(c)) {
      const j = cpAdvance(text, i, c);
      parts.push(text.slice(i, j));
      i = j;
    } else if (isInsert(c)) {
      parts.push(c);
    } else {
      i = cpAdvance(text, i, -c);
    }
  }
  if (i !== text.length) throw new OTError('operation base length differs from the text length');
  return parts.join('');
}

// A read cursor over an operation handing out pieces of components.
class Cursor {
  constructor(op) {
    this.op = op;
    this.i = 0;
    this.load();
  }
  load() {
    const c = this.op[this.i];
    if (c === undefined) {
      this.kind = 0;
    } else if (isInsert(c)) {
      this.kind = 2;
      this.str = c;
      this.pos = 0; // UTF-16 index inside str
      this.left = cpLength(c);
    } else if (c > 0) {
      this.kind = 1;
      this.left = c;
    } else {
      this.kind = 3;
      this.left = -c;
    }
  }
  // take up to max code points; returns the count (and sets this.piece for inserts)
  take(max) {
    const n = max < this.left ? max : this.left;
    if (this.kind === 2) {
      const end = n === this.left ? this.str.length : cpAdvance(this.str, this.pos, n);
      this.piece = this.str.slice(this.pos, end);
      this.pos = end;
    }
    this.left -= n;
    if (this.left === 0) {
      this.i++;
      this.load();
    }
    return n;
  }
}

/**
 * compose(a, b): one operation with the effect of a then b.
 * @param {Op} a
 * @param {Op} b
 * @returns {Op}
 */
export function compose(a, b) {
  if (targetLength(a) !== baseLength(b)) throw new OTError('compose: lengths differ');
  const r = new OpBuilder();
  const ka = new Cursor(a);
  const kb = new Cursor(b);
  for (;;) {
    if (ka.kind === 3) {
      // a deleted it; b never sees it
      r.delete(ka.take(Infinity));
    } else if (kb.kind === 2) {
      // b's inserts do not touch a's output
      kb.take(Infinity);
      r.insert(kb.piece);
    } else if (!ka.kind || !kb.kind) {
      break;
    } else if (ka.kind === 1) {
      const tb = kb.kind;
      const n = ka.take(kb.left);
      kb.take(n);
      if (tb === 1) r.retain(n);
      else r.delete(n);
    } else {
      // a inserts; b retains or deletes that text
      const tb = kb.kind;
      const n = ka.take(kb.left);
      const piece = ka.piece;
      kb.take(n);
      if (tb === 1) r.insert(piece);
    }
  }
  return r.done();
}

/**
 * transform(a, b, side): a rebased over a concurrent b (same base) so that it
 * applies after b. side 'left': a's insert goes first at a tie; 'right': b's.
 * @param {Op} a
 * @param {Op} b
 * @param {'left'|'right'} side
 * @returns {Op}
 */
export function transform(a, b, side) {
  if (baseLength(a) !== baseLength(b)) throw new OTError('transform: base lengths differ');
  const r = new OpBuilder();
  const ka = new Cursor(a);
  const kb = new Cursor(b);
  for (;;) {
    if (ka.kind === 2 && (side === 'left' || kb.kind !== 2)) {
      ka.take(Infinity);
      r.insert(ka.piece);
    } else if (kb.kind === 2) {
      r.retain(kb.take(Infinity));
    } else if (!ka.kind || !kb.kind) {
      break;
    } else {
      const ta = ka.kind;
      const tb = kb.kind;
      const n = ka.take(kb.left);
      kb.take(n);
      if (tb === 1) {
        if (ta === 1) r.retain(n);
        else r.delete(n);
      }
    }
  }
  return r.done();
}

/**
 * invert(op, text): the operation that undoes op applied to text.
 * @param {Op} op
 * @param {string} text the base text of op
 * @returns {Op}
 */
export function invert(op, text) {
  const r = new OpBuilder();
  let i = 0;
  for (const c of op) {
    if (isRetain(c)) {
      i = cpAdvance(text, i, c);
      r.retain(c);
    } else if (isInsert(c)) {
      r.delete(cpLength(c));
    } else {
      const j = cpAdvance(text, i, -c);
      r.insert(text.slice(i, j));
      i = j;
    }
  }
  return r.done();
}

/**
 * The one-replace operation turning text a into text b (common prefix and
 * suffix kept), in code points.
 * @param {string} a
 * @param {string} b
 * @returns {Op}
 */
export function diff(a, b) {
  let p = 0;
  const max = Math.min(a.length, b.length);
  while (p < max && a.charCodeAt(p) === b.charCodeAt(p)) p++;
  if (p > 0 && (splitsPair(a, p) || splitsPair(b, p))) p--;
  let s = 0;
  while (s < max - p && a.charCodeAt(a.length - 1 - s) === b.charCodeAt(b.length - 1 - s)) s++;
  if (s > 0 && (splitsPair(a, a.length - s) || splitsPair(b, b.length - s))) s--;
  const r = new OpBuilder();
  r.retain(cpLength(a.slice(0, p)));
  r.insert(b.slice(p, b.length - s));
  r.delete(cpLength(a.slice(p, a.length - s)));
  r.retain(cpLength(a.slice(a.length - s)));
  return r.done();
}

/**
 * Convert an operation counted in UTF-16 code units (on `text`) to code points.
 * Throws OTError when it does not fit the text or splits a surrogate pair.
 * @param {Op} op
 * @param {string} text
 * @returns {Op}
 */
export function toCodePoints(op, text) {
  const r = new OpBuilder();
  let i = 0;
  for (const c of normalize(op)) {
    if (isInsert(c)) {
      r.insert(c);
      continue;
    }
    const n = Math.abs(c);
    const j = i + n;
    if (j > text.length) throw new OTError('operation is longer than the text');
    if (splitsPair(text, j)) throw new OTError('operation splits a surrogate pair');
    const cps = cpLength(text.slice(i, j));
    if (c > 0) r.retain(cps);
    else r.delete(cps);
    i = j;
  }
  if (i !== text.length) throw new OTError('operation base length differs from the text length');
  return r.done();
}

/**
 * Convert an operation counted in code points (on `text`) to UTF-16 code units.
 * @param {Op} op
 * @param {string} text
 * @returns {Op}
 */
export function toUtf16(op, text) {
  const r = new OpBuilder();
  let i = 0;
  for (const c of op) {
    if (isInsert(c)) {
      r.insert(c);
      continue;
    }
    const j = cpAdvance(text, i, Math.abs(c));
    if (c > 0) r.retain(j - i);
    else r.delete(j - i);
    i = j;
  }
  return r.done();
}

/**
 * The changes of an operation as a list of {from, to, insert}, positions in
 * the units of the operation and relative to the text BEFORE the operation
 * (the CodeMirror ChangeSpec convention). Apply them right to left, or all at
 * once with a ChangeSet.
 * @param {Op} op
 * @returns {{from: number, to: number, insert: string}[]}
 */
export function toChanges(op) {
  const out = [];
  let pos = 0;
  for (const c of op) {
    if (isRetain(c)) {
      pos += c;
    } else if (isInsert(c)) {
      const last = out[out.length - 1];
      if (last && last.to === pos) last.insert += c;
      else out.push({ from: pos, to: pos, insert: c });
    } else {
      const last = out[out.length - 1];
      if (last && last.to === pos) last.to = pos - c;
      else out.push({ from: pos, to: pos - c, insert: '' });
      pos -= c;
    }
  }
  return out;
}

/**
 * Move a position (an index into the base text of op) through op. Retain and
 * delete counts and the position are in one unit; `units` says how inserted
 * text is counted: 'utf16' (default, for ops from toUtf16) or 'cp'.
 * assoc 'right' (default) moves the position past text inserted exactly at it
 * (a caret typing there); 'left' keeps it before.
 * @param {number} pos
 * @param {Op} op
 * @param {'left'|'right'} [assoc]
 * @param {'utf16'|'cp'} [units]
 * @returns {number}
 */
export function transformPosition(pos, op, assoc = 'right', units = 'utf16') {
  let at = 0; // position in the base text
  let out = 0; // position in the result
  for (const c of op) {
    if (isRetain(c)) {
      if (pos < at + c || (pos === at + c && assoc === 'left')) return out + (pos - at);
      at += c;
      out += c;
    } else if (isInsert(c)) {
      if (pos === at && assoc === 'left') return out;
      out += units === 'cp' ? cpLength(c) : c.length;
    } else {
      const n = -c;
      if (pos < at + n) return out;
      at += n;
    }
  }
  return out + Math.max(0, pos - at);
}
