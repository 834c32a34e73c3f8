// unit.binding.test.js - the editor binding's conversions without a browser:
// CodeMirror ChangeSets to OT operations and back, in UTF-16 units (what the
// page uses with @tandem/client) and in code points (the wire unit), with
// astral characters, checked against applying the operation by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeSet, Text } from '@codemirror/state';
import { opFromChanges, changesFromOp, toUtf16, fromUtf16 } from '../src/binding.js';
import { cpLength, advanceCp } from '../src/positions.js';

/** Applies an OT operation (unit 'utf16' or 'cp') to a string. */
function applyOp(op, s, unit) {
  let out = '';
  let i = 0;
  const adv = (n) => (unit === 'cp' ? advanceCp(s, i, n) : i + n);
  for (const c of op) {
    if (typeof c === 'string') out += c;
    else if (c > 0) { const j = adv(c); out += s.slice(i, j); i = j; }
    else i = adv(-c);
  }
  assert.equal(i, s.length, 'the operation covers the whole text');
  return out;
}

let seed = 42;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const ALPHABET = ['a', 'b', 'é', '😀', '\n', ' ', '𝄞', 'z'];
const randText = (n) => Array.from({ length: n }, () => ALPHABET[rnd(ALPHABET.length)]).join('');

/** A random CodeMirror change set on s that never splits a surrogate pair. */
function randChanges(s) {
  const cps = cpLength(s);
  const specs = [];
  let cp = 0;
  while (cp <= cps && specs.length < 4) {
    const from = cp + rnd(Math.max(1, cps - cp + 1));
    if (from > cps) break;
    const len = rnd(3);
    const to = Math.min(cps, from + len);
    specs.push({ from: advanceCp(s, 0, from), to: advanceCp(s, 0, to), insert: rnd(2) ? randText(rnd(4)) : '' });
    cp = to + 1;
  }
  return ChangeSet.of(specs, s.length);
}

test('opFromChanges: a ChangeSet as an operation, UTF-16 and code points', () => {
  for (let k = 0; k < 500; k++) {
    const s = randText(rnd(12));
    const cs = randChanges(s);
    const want = cs.apply(Text.of(s.split('\n'))).toString();
    for (const unit of ['utf16', 'cp']) {
      const op = opFromChanges(cs, s, unit);
      assert.equal(applyOp(op, s, unit), want, `${unit} ${JSON.stringify({ s, op })}`);
    }
  }
});

test('changesFromOp: an operation as CodeMirror changes, UTF-16 and code points', () => {
  for (let k = 0; k < 500; k++) {
    const s = randText(rnd(12));
    const cs = randChanges(s);
    const want = cs.apply(Text.of(s.split('\n'))).toString();
    for (const unit of ['utf16', 'cp']) {
      const op = opFromChanges(cs, s, unit);
      const back = ChangeSet.of(changesFromOp(op, s, unit), s.length);
      assert.equal(back.apply(Text.of(s.split('\n'))).toString(), want);
    }
  }
});

test('positions: code points and UTF-16 offsets around emoji', () => {
  const s = 'a😀b𝄞';
  assert.equal(cpLength(s), 4);
  assert.equal(toUtf16(s, 2, 'cp'), 3);
  assert.equal(toUtf16(s, 4, 'cp'), 6);
  assert.equal(toUtf16(s, 99, 'cp'), 6);
  assert.equal(fromUtf16(s, 3, 'cp'), 2);
  assert.equal(fromUtf16(s, 3, 'utf16'), 3);
  // an insert after the emoji in code points lands after both of its UTF-16 units
  assert.deepEqual(changesFromOp([2, 'X', 2], s, 'cp'), [{ from: 3, insert: 'X' }]);
  assert.deepEqual(opFromChanges(ChangeSet.of([{ from: 3, to: 4 }], s.length), s, 'cp'), [2, -1, 1]);
  // UTF-16 needs only the change set (the page passes no text)
  assert.deepEqual(opFromChanges(ChangeSet.of([{ from: 1, insert: 'x' }, { from: 3, to: 5 }], 6), null, 'utf16'), [1, 'x', 2, -2, 1]);
});
