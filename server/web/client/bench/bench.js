// bench.js - rough numbers for @tandem/client (not a test; prints one JSON line).
//
//   TANDEM_BIN=../../../build/cli/tandem npm run bench
//
// ot:      transform + compose of random operation pairs on a 10,000-code-point text
// apply:   one remote insert applied to a 100,000-character document the way
//          TandemDocument does it (apply to base and text, UTF-16 conversion),
//          for text without astral characters and with an emoji every 30
// ack:     one client typing one character at a time against the real server,
//          waiting for each OT_ACK: median and p99 round trip, edits per second
// typing:  10 clients typing concurrently into one room for 3 s (each sends its
//          next op when the previous is acked, composing what was typed meanwhile):
//          edits made per second in total, and the time to converge afterwards

import { performance } from 'node:perf_hooks';
import * as ot from '../src/ot.js';
import { Server, online, converged, waitFor } from '../test/helpers.js';
import { rng } from '../test/rng.js';

const r = rng(1);
const out = {};

function randomText(n) {
  const a = 'abcdefghij klmnopqrstuvwxyz\n😀é';
  let s = '';
  for (let i = 0; i < n; i++) s += [...a][Math.floor(r() * 30)];
  return s;
}

// --- ot
{
  const text = randomText(10000);
  const len = ot.cpLength(text);
  const mk = () => {
    const p = Math.floor(r() * len);
    return r() < 0.5 ? [p, 'xy', len - p] : [p, -1, len - p - 1];
  };
  const pairs = Array.from({ length: 2000 }, () => [mk(), mk()]);
  const t0 = performance.now();
  for (const [a, b] of pairs) ot.compose(a, ot.transform(b, a, 'right'));
  out.ot_pairs_per_s = Math.round(pairs.length / ((performance.now() - t0) / 1000));
}

// --- apply (best of 5 rounds of 200 ops; text without and with astral characters)
for (const [name, every] of [['apply_100k_bmp_us', 0], ['apply_100k_emoji_us', 30]]) {
  let text = '';
  const a = 'abcdefghij klmnopqrstuvwxyz\n';
  for (let i = 0; i < 100000; i++) text += every && i % every === 0 ? '😀' : a[i % a.length];
  const len = ot.cpLength(text);
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) {
      const p = Math.floor(r() * len);
      const op = [p, 'z', len - p];
      ot.toChanges(ot.toUtf16(op, text));
      ot.apply(op, text);
      ot.apply(op, text); // the document applies to its base and its text
    }
    best = Math.min(best, ((performance.now() - t0) * 1000) / 200);
  }
  out[name] = Math.round(best);
}

// --- real server
const srv = await new Server().start();
try {
  {
    const c = await srv.client('bench-ack');
    await online(c);
    const d = c.openDocument('bench-ack');
    await waitFor(() => d.synced, 'synced');
    const rtts = [];
    const n = 500;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      const acked = new Promise((res) => d.once('ack', res));
      d.insert(d.text.length, 'a');
      await acked;
      rtts.push(performance.now() - s);
    }
    const secs = (performance.now() - t0) / 1000;
    rtts.sort((x, y) => x - y);
    out.ack_median_ms = +rtts[n >> 1].toFixed(3);
    out.ack_p99_ms = +rtts[Math.floor(n * 0.99)].toFixed(3);
    out.ack_edits_per_s = Math.round(n / secs);
    c.close();
  }
  {
    const cs = [];
    for (let i = 0; i < 10; i++) cs.push(await srv.client(`bench-t${i}`));
    await Promise.all(cs.map(online));
    const docs = cs.map((c) => c.openDocument('bench-typing'));
    await converged(docs, 'initial');
    let edits = 0;
    const end = performance.now() + 3000;
    await Promise.all(
      docs.map(async (d) => {
        while (performance.now() < end) {
          const t = d.text;
          const p = ot.cpToUtf16Index(t, Math.floor(r() * (ot.cpLength(t) + 1)));
          d.insert(p, 'k');
          edits++;
          await new Promise((res) => setTimeout(res, 5));
        }
      }),
    );
    const t1 = performance.now();
    await converged(docs, 'typing converged', 60000);
    out.typing_clients = 10;
    out.typing_edits_per_s = Math.round(edits / 3);
    out.typing_converge_ms = Math.round(performance.now() - t1);
    out.typing_text_ok = docs[0].text === (await srv.text('bench-typing'));
    cs.forEach((c) => c.close());
  }
} finally {
  await srv.close();
}
console.log(JSON.stringify(out));
