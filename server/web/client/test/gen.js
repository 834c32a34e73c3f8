// gen.js - random texts (with astral characters) and random operations on them.

import * as ot from '../src/ot.js';

const ALPHABET = ['a', 'b', 'c', 'é', '😀', '👍', ' ', '\n'];
export function randomText(r, max = 12) {
  let s = '';
  const n = Math.floor(r() * max);
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
  return s;
}

/** A random operation on text (code points). */
export function randomOp(r, text) {
  const len = ot.cpLength(text);
  const b = new ot.OpBuilder();
  let left = len;
  while (left > 0) {
    const x = r();
    const n = 1 + Math.floor(r() * Math.min(left, 4));
    if (x < 0.2) b.insert(randomText(r, 4) || 'x');
    else if (x < 0.45) {
      b.delete(n);
      left -= n;
    } else {
      b.retain(n);
      left -= n;
    }
  }
  if (r() < 0.3) b.insert(randomText(r, 4) || 'y');
  return b.done();
}
