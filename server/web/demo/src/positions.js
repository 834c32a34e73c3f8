// positions.js - UTF-16 offsets (CodeMirror, JavaScript strings) versus
// Unicode code points (the unit of tandem's OT operations on the wire,
// docs/PROTOCOL.md "OT mode"). An astral character (an emoji) is two UTF-16
// units and one code point.

/** Code points in s[from, to) (UTF-16 offsets). */
export function cpLength(s, from = 0, to = s.length) {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** The UTF-16 offset reached by advancing `cps` code points from UTF-16 offset `from` (clamped). */
export function advanceCp(s, from, cps) {
  let i = from;
  while (cps > 0 && i < s.length) {
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
    cps--;
  }
  return i;
}

export const cpToUtf16 = (s, cp) => advanceCp(s, 0, cp);
export const utf16ToCp = (s, off) => cpLength(s, 0, Math.min(off, s.length));
