// Unit tests of src/ot.js: normal form, apply/compose/transform/invert on the
// examples of docs/CRDT.md, TP1 and compose on random operations over texts
// with astral characters, UTF-16 <-> code point conversion, and the CBOR
// vectors of docs/CRDT.md / docs/PROTOCOL.md (produced by the C library).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ot from '../src/ot.js';
import { encodeMessage, decodeMessage, MSG, encodeRaw, decodeRaw } from '../src/codec.js';
import { rng } from './rng.js';
import { randomText, randomOp } from './gen.js';

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

test('builder keeps the normal form of crdt/ot.h', () => {
  const b = new ot.OpBuilder().retain(3).delete(2).insert('ab');
  assert.deepEqual(b.done(), [3, 'ab', -2]);
  assert.deepEqual(ot.normalize([-2, 'ab']), ['ab', -2]);
  assert.deepEqual(ot.normalize([1, 1, -1, -1]), [2, -2]);
  assert.deepEqual(ot.normalize([0, 'x', 0]), ['x']);
  assert.throws(() => ot.normalize(['']), ot.OTError);
  assert.throws(() => ot.normalize([1.5]), ot.OTError);
  assert.throws(() => ot.normalize(['\ud800']), /lone surrogate/);
  assert.throws(() => ot.normalize('abc'), ot.OTError);
});

test('docs/CRDT.md example: transform, compose, invert', () => {
  const a = [1, 'X', 2];
  const b = [1, 'Y', 1, -1];
  assert.deepEqual(ot.transform(a, b, 'left'), [1, 'X', 2]);
  assert.deepEqual(ot.transform(b, a, 'right'), [2, 'Y', 1, -1]);
  assert.equal(ot.apply(ot.transform(b, a, 'right'), ot.apply(a, 'abc')), 'aXYb');
  assert.equal(ot.apply(ot.transform(a, b, 'left'), ot.apply(b, 'abc')), 'aXYb');
  assert.deepEqual(ot.invert(b, 'abc'), [1, -1, 1, 'c']);
  assert.deepEqual(ot.compose(a, ot.transform(b, a, 'right')), [1, 'XY', 1, -1]);
});

test('apply counts code points and refuses a wrong base length', () => {
  assert.equal(ot.apply([1, 'é', 2], 'a😀b'), 'aé😀b');
  assert.equal(ot.apply([1, -1, 1], 'a😀b'), 'ab');
  assert.throws(() => ot.apply([5], 'abc'), ot.OTError);
  assert.throws(() => ot.apply([2], 'abc'), ot.OTError);
  assert.equal(ot.cpLength('a😀b'), 3);
  assert.equal(ot.baseLength([3, 'ab', -2]), 5);
  assert.equal(ot.targetLength([1, '😀😀', -2]), 3);
});

test('UTF-16 <-> code points, surrogate pairs never split', () => {
  const t = 'x😀y👍z';
  // insert after the emoji: UTF-16 index 3, code point index 2
  assert.deepEqual(ot.toCodePoints([3, '!', 4], t), [2, '!', 3]);
  assert.deepEqual(ot.toUtf16([2, '!', 3], t), [3, '!', 4]);
  // delete the thumbs-up (2 units, 1 code point)
  assert.deepEqual(ot.toCodePoints([4, -2, 1], t), [3, -1, 1]);
  assert.throws(() => ot.toCodePoints([2, 'a', 5], t), /surrogate/);
  assert.throws(() => ot.toCodePoints([1, -1, 5], t), /surrogate/);
  assert.throws(() => ot.toCodePoints([3], t), /length/);
  assert.equal(ot.utf16ToCpIndex(t, 3), 2);
  assert.equal(ot.cpToUtf16Index(t, 2), 3);
  assert.throws(() => ot.utf16ToCpIndex(t, 2), /surrogate/);
  assert.deepEqual(ot.toChanges([3, '!', 1, -2, 1]), [{ from: 3, to: 3, insert: '!' }, { from: 4, to: 6, insert: '' }]);
  assert.deepEqual(ot.toChanges(['ab', -3]), [{ from: 0, to: 3, insert: 'ab' }]);
});

test('diff is one replace that turns a into b, pairs kept whole', () => {
  for (const [a, b] of [
    ['hello world', 'hello brave world'],
    ['abc', ''],
    ['', 'xyz'],
    ['a😀b', 'a😁b'],
    ['😀', '😀😀'],
    ['same', 'same'],
  ]) {
    const d = ot.diff(a, b);
    assert.equal(ot.apply(d, a), b, `${a} -> ${b}`);
    assert.ok(ot.toChanges(d).length <= 1);
  }
});

test('transformPosition moves carets through edits', () => {
  assert.equal(ot.transformPosition(2, [2, 'ab', 3]), 4);
  assert.equal(ot.transformPosition(2, [2, 'ab', 3], 'left'), 2);
  assert.equal(ot.transformPosition(3, [1, -3, 1]), 1);
  assert.equal(ot.transformPosition(5, [1, -3, 1]), 2);
  assert.equal(ot.transformPosition(1, [1, '😀', 1], 'right', 'cp'), 2);
  assert.equal(ot.transformPosition(1, [1, '😀', 1], 'right', 'utf16'), 3);
});

// ------------------------------------------------------------ random ops

test('TP1 and compose on 3000 random pairs (astral characters included)', () => {
  const r = rng(42);
  for (let i = 0; i < 3000; i++) {
    const s = randomText(r);
    const a = randomOp(r, s);
    const b = randomOp(r, s);
    const ab = ot.apply(ot.transform(b, a, 'right'), ot.apply(a, s));
    const ba = ot.apply(ot.transform(a, b, 'left'), ot.apply(b, s));
    assert.equal(ab, ba, `TP1: s=${JSON.stringify(s)} a=${JSON.stringify(a)} b=${JSON.stringify(b)}`);
    // compose(a, b') has the effect of a then b'
    const b2 = ot.transform(b, a, 'right');
    assert.equal(ot.apply(ot.compose(a, b2), s), ab);
    // invert undoes
    assert.equal(ot.apply(ot.invert(a, s), ot.apply(a, s)), s);
    // results are normalized
    const c = ot.compose(a, b2);
    assert.deepEqual(ot.normalize(c), c);
    // UTF-16 round trip
    assert.deepEqual(ot.toCodePoints(ot.toUtf16(a, s), s), a);
  }
});

// ------------------------------------------------------------ CBOR vectors

test('operation wire vectors of docs/CRDT.md', () => {
  assert.equal(hex(encodeRaw([3, 'ab', -2])), '830362616221');
  assert.equal(hex(encodeRaw([1, 'é', 2, -24])), '840162c3a90237');
  assert.equal(hex(encodeRaw([])), '80');
  assert.equal(hex(encodeRaw([1, 'Y', 1, -1])), '8401615901' + '20');
  assert.deepEqual(ot.normalize(decodeRaw(unhex('82 21 62 61 62'))), ['ab', -2]);
  assert.deepEqual(ot.normalize(decodeRaw(unhex('84 01 01 20 20'))), [2, -2]);
});

test('message vectors of docs/PROTOCOL.md (encode and decode)', () => {
  assert.equal(hex(encodeMessage({ type: MSG.HELLO, caps: 31, clientId: 0x1234, token: 'tok' })), '850101181f19123443746f6b');
  assert.equal(hex(encodeMessage({ type: MSG.HELLO, caps: 2, clientId: 0 })), '850101020040');
  assert.equal(hex(encodeMessage({ type: MSG.OT_OP, channel: 2, version: 41, opId: 9, op: [5, ', ', -1, 5] })), '85181e021829098405622c202005');
  assert.equal(hex(encodeMessage({ type: MSG.SUBSCRIBE, channel: 2, name: 'notes', mode: 1, version: 41, after: null })), '870a02656e6f74657301f61829f6');
  assert.equal(hex(encodeMessage({ type: MSG.SUBSCRIBE, channel: 3, name: 'new', mode: 1, version: null, after: null })), '870a03636e657701f6f6f6');
  assert.equal(hex(encodeMessage({ type: MSG.CHAT_SEND, channel: 1, msgId: 1, text: 'hi' })), '8418280101626869');
  assert.equal(hex(encodeMessage({ type: MSG.CHAT_HISTORY, channel: 1, after: 10, limit: 50 })), '84182b010a1832');
  assert.equal(hex(encodeMessage({ type: MSG.TYPING, channel: 1, on: true })), '85183201f56060');
  assert.equal(hex(encodeMessage({ type: MSG.PING, nonce: 5 })), '820405');
  assert.equal(hex(encodeMessage({ type: MSG.UNSUBSCRIBE, channel: 1 })), '820c01');
  // a 64-bit client id goes out as an unsigned integer, not a float
  assert.equal(hex(encodeMessage({ type: MSG.HELLO, caps: 2, clientId: 2 ** 40 })).slice(0, 24), '850101021b00000100000000');

  assert.deepEqual(decodeMessage(unhex('85 02 01 11 18 1f 1a 00 10 00 00')), { type: 2, proto: 1, sessionId: 17, caps: 31, maxFrame: 1048576 });
  assert.deepEqual(decodeMessage(unhex('87 03 08 02 09 00 6e 74 6f 6f 20 66 61 72 20 62 65 68 69 6e 64 84 05 62 2c 20 20 05')), {
    type: 3, code: 8, channel: 2, ref: 9, retryMs: 0, text: 'too far behind', op: [5, ', ', -1, 5],
  });
  assert.deepEqual(decodeMessage(unhex('84 18 1f 02 09 18 3a')), { type: 31, channel: 2, opId: 9, version: 58 });
  assert.deepEqual(decodeMessage(unhex('86 18 20 02 18 3b 84 05 62 2c 20 20 05 19 12 34 03')), {
    type: 32, channel: 2, version: 59, op: [5, ', ', -1, 5], src: 0x1234, opId: 3,
  });
  const snap = decodeMessage(unhex('86 18 21 02 18 39 00 05 45 68 65 6c 6c 6f'));
  assert.equal(Buffer.from(snap.data).toString(), 'hello');
  assert.deepEqual(decodeMessage(unhex('88 0b 02 01 01 18 39 0c f4 f6')), { type: 11, channel: 2, access: 1, mode: 1, version: 57, chatId: 12, isNew: false });
  assert.deepEqual(decodeMessage(unhex('85 18 29 01 01 0d 1b 00 00 01 8b cf e5 68 00')), { type: 41, channel: 1, msgId: 1, chatId: 13, timeMs: 1700000000000 });
  assert.deepEqual(decodeMessage(unhex('87 18 2a 01 0d 1b 00 00 01 8b cf e5 68 00 63 61 6e 6e 63 41 6e 6e 62 68 69')), {
    type: 42, channel: 1, chatId: 13, timeMs: 1700000000000, user: 'ann', display: 'Ann', text: 'hi',
  });
  assert.deepEqual(decodeMessage(unhex('84 18 2c 01 f4 81 85 0d 1b 00 00 01 8b cf e5 68 00 63 61 6e 6e 63 41 6e 6e 62 68 69')), {
    type: 44, channel: 1, more: false, records: [{ id: 13, timeMs: 1700000000000, user: 'ann', display: 'Ann', text: 'hi' }],
  });
  assert.deepEqual(decodeMessage(unhex('85 18 32 01 f4 63 61 6e 6e 63 41 6e 6e')), { type: 50, channel: 1, on: false, user: 'ann', display: 'Ann' });
  // unknown types are ignored, extra fields skipped
  assert.equal(decodeMessage(unhex('82 18 63 01')), null);
  assert.deepEqual(decodeMessage(unhex('85 18 1f 02 09 18 3a 07')), { type: 31, channel: 2, opId: 9, version: 58 });
});

test('the decoder refuses malformed frames', () => {
  for (const bad of ['', 'ff', '01', '80', '83 18 1f 02', '84 18 1f 02 09 61 61', '86 18 20 02 18 3b 81 00 00 00', '86 18 21 02 00 05 02 43 61 62 63', '84 18 1f 02 09 18']) {
    assert.throws(() => decodeMessage(unhex(bad)), /malformed/, bad);
  }
});
