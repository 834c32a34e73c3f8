// run.mjs - replay the sequential editing traces through peer CRDT engines
// (Yjs, diamond-types, Loro, Automerge) and through tandem-bench-trace, on this
// machine, side by side.
//
//   cd bench/peers && npm ci && node run.mjs [--rounds N] [--runs N] [--am-runs N]
//        [--am-sync-runs N] [--am-sync-budget-s S]
//        [--engines yjs,dt,loro,automerge] [--traces automerge-paper,friendsforever_flat]
//        [--no-tandem] [--no-write]
//
// Every engine x trace runs in its own child process (node --expose-gc; a full
// GC before every run, outside the timed region), so one engine's heap or wasm
// memory does not slow the next. Per engine and trace it measures, as medians
// over --runs timed runs (default 5; Automerge --am-runs, default 3, because one
// replay takes ~16 s) after one untimed warm-up run, with performance.now():
//   replay_ms       (a) local replay, one transaction (commit/change) per patch
//   replay_encode_ms (b0) as (a), and encode the incremental update of every patch
//                   (not applied anywhere)
//   replay_sync_ms  (b) as (a), and after every patch encode an incremental
//                   update and apply it to a second document (method per engine
//                   in SYNC_METHOD below); both documents are checked at the end.
//                   Automerge: --am-sync-runs (default 1) runs without warm-up, each
//                   stopped after --am-sync-budget-s (default 200) seconds, because
//                   applying one change at a time is quadratic there
//   replay_sync_event_ms  Loro only: (b) with subscribeLocalUpdates instead of
//                   export({mode:"update", from})
//   load_ms         (c) load the whole encoded document into an empty document
//   load_text_ms    (c) + read the text back (Loro decodes snapshot state lazily)
// and the encoded document size(s). matched: the final text of every replayed,
// synced and loaded document equals endContent.
//
// After the peers of a round, the same round runs ../../build-h7/bench/tandem-bench-trace
// (override with TANDEM_BENCH=path) on each trace. The whole thing repeats
// --rounds times (default 2) because the machine is shared; RESULTS.md reports
// every round. One JSON line per engine per trace per round goes to stdout.
import { spawnSync, execSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const TRACE_DIR = join(ROOT, 'tests/traces/sequential_traces');
const ALL_TRACES = ['automerge-paper', 'friendsforever_flat'];
const ALL_ENGINES = ['yjs', 'dt', 'loro', 'automerge'];
const PKG = { yjs: 'yjs', dt: 'diamond-types-node', loro: 'loro-crdt', automerge: '@automerge/automerge' };
const NAME = { yjs: 'Yjs', dt: 'diamond-types (wasm)', loro: 'Loro', automerge: 'Automerge' };
const SYNC_METHOD = {
  yjs: "doc.on('update') (v1 update of the transaction) -> Y.applyUpdate(doc2)",
  dt: 'doc.getPatchSince(prevVersion) -> doc2.mergeBytes',
  loro: "doc.export({mode:'update', from: prevOplogVersion}) -> doc2.import",
  automerge: 'A.getLastLocalChange(doc) -> A.applyChanges(doc2, [change])',
};
const TANDEM = process.env.TANDEM_BENCH || join(ROOT, 'build-h7/bench/tandem-bench-trace');

function parseArgs(argv) {
  const o = { worker: null, rounds: 2, runs: 5, amRuns: 3, amSyncRuns: 1, amSyncBudgetS: 200, sync: {}, engines: ALL_ENGINES, traces: ALL_TRACES, tandem: true, write: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const int = (min) => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < min) throw new Error(`${a} needs an integer >= ${min}`);
      return v;
    };
    if (a === '--rounds') o.rounds = int(1);
    else if (a === '--runs') o.runs = int(o.worker ? 1 : 5);
    else if (a === '--am-runs') o.amRuns = int(1);
    else if (a === '--am-sync-runs') o.amSyncRuns = int(1);
    else if (a === '--am-sync-budget-s') o.amSyncBudgetS = int(1);
    else if (a === '--sync-runs') o.sync.runs = int(1); // worker: (b) runs, without warm-up
    else if (a === '--sync-budget-s') o.sync.budgetS = int(1); // worker: (b) time budget per run
    else if (a === '--engines') o.engines = argv[++i].split(',');
    else if (a === '--traces') o.traces = argv[++i].split(',');
    else if (a === '--no-tandem') o.tandem = false;
    else if (a === '--no-write') o.write = false;
    else if (a === '--worker') { o.worker = argv[++i]; o.trace = argv[++i]; }
    else throw new Error(`unknown argument ${a}`);
  }
  for (const e of o.engines) if (!ALL_ENGINES.includes(e)) throw new Error(`unknown engine ${e}`);
  return o;
}

// ---------------------------------------------------------------- worker side

function loadTrace(name) {
  const t = JSON.parse(gunzipSync(readFileSync(join(TRACE_DIR, `${name}.json.gz`))));
  if (t.startContent !== '') throw new Error('startContent is not empty');
  const pos = [], del = [], ins = [];
  for (const txn of t.txns)
    for (const [p, d, s] of txn.patches) { pos.push(p); del.push(d); ins.push(s); }
  return { name, n: pos.length, pos: Int32Array.from(pos), del: Int32Array.from(del), ins, end: t.endContent };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b), n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

// fn() returns the elapsed ms of one run (and checks its result itself); `warm`
// untimed warm-up runs first.
function measure(runs, fn, warm = 1) {
  const times = [];
  for (let i = 0; i < warm + runs; i++) {
    globalThis.gc?.();
    times.push(fn());
  }
  const timed = times.slice(warm);
  return { median: median(timed), min: Math.min(...timed), max: Math.max(...timed), warmup: warm ? times[0] : null, runs: timed };
}

// One engine adapter per peer:
//   replay(tr) -> {ms, text, doc}                       (a)
//   sync(tr, apply, budgetMs) -> {ms, done, texts, bytes}  (b) apply=true; (b0) apply=false:
//       encode the update of every patch but do not apply it anywhere. A run stops
//       early (done < n) once it has taken budgetMs (only ever hit by Automerge).
//   encode(doc) -> {name: Uint8Array}; load(bytes) -> {ms, textMs, text}; free(doc)
const EVERY = 1023; // check the budget every 1024 patches
// Replica ids as the engines pick them by default (random), but fixed so sizes repeat:
// Yjs a random uint32 clientID (5-byte varint), Loro a random u64 peer id, Automerge a
// random 16-byte actor. diamond-types has no default agent: short names. (tandem-bench-trace
// uses client ids 1, 2, 3; Yjs sizes with clientID 1 are reported too.)
const ID = {
  yjs: [0, 0x9e3779b9, 0x7f4a7c15, 0x6c8e9cf5],
  loro: [0n, 0x9e3779b97f4a7c15n, 0xbf58476d1ce4e5b9n, 0x94d049bb133111ebn],
  automerge: ['', '9e3779b97f4a7c15bf58476d1ce4e5b9', '94d049bb133111eb2545f4914f6cdd1d', '6a09e667f3bcc908b2fb1366ea957d3e'],
};
async function adapter(engine) {
  if (engine === 'yjs') {
    const Y = await import('yjs');
    const mk = (id) => { const d = new Y.Doc(); d.clientID = id; return d; };
    const ID_ = ID.yjs;
    return {
      replay(tr) {
        const doc = mk(ID_[1]), t = doc.getText('text');
        const { n, pos, del, ins } = tr;
        const t0 = performance.now();
        for (let i = 0; i < n; i++) {
          const p = pos[i], d = del[i], s = ins[i];
          doc.transact(() => { if (d) t.delete(p, d); if (s) t.insert(p, s); });
        }
        const ms = performance.now() - t0;
        return { ms, text: t.toString(), doc };
      },
      sync(tr, apply, budget) {
        const doc = mk(ID_[1]), doc2 = apply ? mk(ID_[2]) : null, t = doc.getText('text'), t2 = doc2?.getText('text');
        const { n, pos, del, ins } = tr;
        let bytes = 0, i = 0;
        const t0 = performance.now(), deadline = t0 + budget;
        doc.on('update', apply ? (u) => { bytes += u.length; Y.applyUpdate(doc2, u); } : (u) => { bytes += u.length; });
        for (; i < n; i++) {
          if ((i & EVERY) === 0 && performance.now() > deadline) break;
          const p = pos[i], d = del[i], s = ins[i];
          doc.transact(() => { if (d) t.delete(p, d); if (s) t.insert(p, s); });
        }
        const ms = performance.now() - t0;
        const texts = apply ? [t.toString(), t2.toString()] : [t.toString()];
        doc.destroy(); doc2?.destroy();
        return { ms, done: i, texts, bytes };
      },
      encode: (doc) => ({ v1: Y.encodeStateAsUpdate(doc), v2: Y.encodeStateAsUpdateV2(doc) }),
      // Untimed: the same replay with clientID 1 (as tandem-bench-trace uses), for sizes only.
      smallIdSizes(tr) {
        const doc = mk(1), t = doc.getText('text');
        let bytes = 0;
        doc.on('update', (u) => { bytes += u.length; });
        for (let i = 0; i < tr.n; i++) {
          const p = tr.pos[i], d = tr.del[i], s = tr.ins[i];
          doc.transact(() => { if (d) t.delete(p, d); if (s) t.insert(p, s); });
        }
        const r = { v1: Y.encodeStateAsUpdate(doc).length, v2: Y.encodeStateAsUpdateV2(doc).length, update_bytes: bytes, ok: t.toString() === tr.end };
        doc.destroy();
        return r;
      },
      load(enc, which) {
        const doc = mk(ID_[3]);
        const t0 = performance.now();
        if (which === 'v2') Y.applyUpdateV2(doc, enc); else Y.applyUpdate(doc, enc);
        const t1 = performance.now();
        const text = doc.getText('text').toString();
        const t2 = performance.now();
        doc.destroy();
        return { ms: t1 - t0, textMs: t2 - t0, text };
      },
      free(doc) { doc.destroy(); },
    };
  }
  if (engine === 'dt') {
    const { Doc } = (await import('diamond-types-node')).default;
    return {
      replay(tr) {
        const doc = new Doc('a');
        const { n, pos, del, ins } = tr;
        const t0 = performance.now();
        for (let i = 0; i < n; i++) {
          const p = pos[i], d = del[i], s = ins[i];
          if (d) doc.del(p, d);
          if (s) doc.ins(p, s);
        }
        const ms = performance.now() - t0;
        return { ms, text: doc.get(), doc };
      },
      sync(tr, apply, budget) {
        const doc = new Doc('a'), doc2 = apply ? new Doc('b') : null;
        const { n, pos, del, ins } = tr;
        let bytes = 0, i = 0;
        const t0 = performance.now(), deadline = t0 + budget;
        let v = doc.getLocalVersion();
        for (; i < n; i++) {
          if ((i & EVERY) === 0 && performance.now() > deadline) break;
          const p = pos[i], d = del[i], s = ins[i];
          if (d) doc.del(p, d);
          if (s) doc.ins(p, s);
          const u = doc.getPatchSince(v);
          bytes += u.length;
          if (apply) doc2.mergeBytes(u);
          v = doc.getLocalVersion();
        }
        const ms = performance.now() - t0;
        const texts = apply ? [doc.get(), doc2.get()] : [doc.get()];
        doc.free(); doc2?.free();
        return { ms, done: i, texts, bytes };
      },
      encode: (doc) => ({ bytes: doc.toBytes() }),
      load(enc) {
        const t0 = performance.now();
        const doc = Doc.fromBytes(enc, 'c');
        const t1 = performance.now();
        const text = doc.get();
        const t2 = performance.now();
        doc.free();
        return { ms: t1 - t0, textMs: t2 - t0, text };
      },
      free(doc) { doc.free(); },
    };
  }
  if (engine === 'loro') {
    const { LoroDoc } = await import('loro-crdt');
    const mk = (id) => { const d = new LoroDoc(); d.setPeerId(id); return d; };
    const ID_ = ID.loro;
    return {
      replay(tr) {
        const doc = mk(ID_[1]), t = doc.getText('text');
        const { n, pos, del, ins } = tr;
        const t0 = performance.now();
        for (let i = 0; i < n; i++) {
          const p = pos[i], d = del[i], s = ins[i];
          if (d) t.delete(p, d);
          if (s) t.insert(p, s);
          doc.commit();
        }
        const ms = performance.now() - t0;
        return { ms, text: t.toString(), doc };
      },
      sync(tr, apply, budget) {
        const doc = mk(ID_[1]), doc2 = apply ? mk(ID_[2]) : null, t = doc.getText('text'), t2 = doc2?.getText('text');
        const { n, pos, del, ins } = tr;
        let bytes = 0, i = 0;
        const t0 = performance.now(), deadline = t0 + budget;
        let vv = doc.oplogVersion();
        for (; i < n; i++) {
          if ((i & EVERY) === 0 && performance.now() > deadline) break;
          const p = pos[i], d = del[i], s = ins[i];
          if (d) t.delete(p, d);
          if (s) t.insert(p, s);
          doc.commit();
          const u = doc.export({ mode: 'update', from: vv });
          bytes += u.length;
          if (apply) doc2.import(u);
          vv.free();
          vv = doc.oplogVersion();
        }
        const ms = performance.now() - t0;
        const texts = apply ? [t.toString(), t2.toString()] : [t.toString()];
        vv.free(); doc.free(); doc2?.free();
        return { ms, done: i, texts, bytes };
      },
      // (b) via the local-update event instead of export-from-version.
      syncEvent(tr, apply, budget) {
        const doc = mk(ID_[1]), doc2 = mk(ID_[2]), t = doc.getText('text'), t2 = doc2.getText('text');
        const { n, pos, del, ins } = tr;
        let bytes = 0, i = 0, pending = null;
        const t0 = performance.now(), deadline = t0 + budget;
        const unsub = doc.subscribeLocalUpdates((u) => { pending = u; });
        for (; i < n; i++) {
          if ((i & EVERY) === 0 && performance.now() > deadline) break;
          const p = pos[i], d = del[i], s = ins[i];
          if (d) t.delete(p, d);
          if (s) t.insert(p, s);
          doc.commit();
          bytes += pending.length;
          doc2.import(pending);
          pending = null;
        }
        const ms = performance.now() - t0;
        unsub();
        const texts = [t.toString(), t2.toString()];
        doc.free(); doc2.free();
        return { ms, done: i, texts, bytes };
      },
      encode: (doc) => ({ snapshot: doc.export({ mode: 'snapshot' }), updates: doc.export({ mode: 'update' }) }),
      load(enc) {
        const doc = new LoroDoc();
        const t0 = performance.now();
        doc.import(enc);
        const t1 = performance.now();
        const text = doc.getText('text').toString();
        const t2 = performance.now();
        doc.free();
        return { ms: t1 - t0, textMs: t2 - t0, text };
      },
      free(doc) { doc.free(); },
    };
  }
  if (engine === 'automerge') {
    const A = await import('@automerge/automerge');
    return {
      replay(tr) {
        let doc = A.from({ text: '' }, { actor: ID.automerge[1] });
        const { n, pos, del, ins } = tr;
        const t0 = performance.now();
        for (let i = 0; i < n; i++) {
          const p = pos[i], d = del[i], s = ins[i];
          doc = A.change(doc, (x) => A.splice(x, ['text'], p, d, s));
        }
        const ms = performance.now() - t0;
        return { ms, text: doc.text, doc };
      },
      sync(tr, apply, budget) {
        let doc = A.from({ text: '' }, { actor: ID.automerge[1] });
        let doc2 = apply ? A.load(A.save(doc), { actor: ID.automerge[2] }) : null; // shares the initial change
        const { n, pos, del, ins } = tr;
        let bytes = 0, i = 0;
        const t0 = performance.now(), deadline = t0 + budget;
        for (; i < n; i++) {
          if ((i & EVERY) === 0 && performance.now() > deadline) break;
          const p = pos[i], d = del[i], s = ins[i];
          doc = A.change(doc, (x) => A.splice(x, ['text'], p, d, s));
          const c = A.getLastLocalChange(doc);
          bytes += c.length;
          if (apply) [doc2] = A.applyChanges(doc2, [c]);
        }
        const ms = performance.now() - t0;
        const texts = apply ? [doc.text, doc2.text] : [doc.text];
        A.free(doc); if (doc2) A.free(doc2);
        return { ms, done: i, texts, bytes };
      },
      encode: (doc) => ({ save: A.save(doc) }),
      load(enc) {
        const t0 = performance.now();
        const doc = A.load(enc, { actor: ID.automerge[3] });
        const t1 = performance.now();
        const text = doc.text;
        const t2 = performance.now();
        A.free(doc);
        return { ms: t1 - t0, textMs: t2 - t0, text };
      },
      free(doc) { A.free(doc); },
    };
  }
  throw new Error(engine);
}

async function worker(engine, traceName, runs, sync) {
  const tr = loadTrace(traceName);
  const ad = await adapter(engine);
  const version = JSON.parse(readFileSync(join(HERE, 'node_modules', PKG[engine], 'package.json'))).version;
  const out = {
    engine, name: NAME[engine], package: PKG[engine], version, trace: traceName, runs, ops: tr.n,
    final_len: null, replay_ms: null, replay_encode_ms: null, replay_sync_ms: null, replay_sync_event_ms: null,
    load_ms: null, load_text_ms: null, load_v2_ms: null, load_v2_text_ms: null,
    encoded_bytes: {}, encode_update_bytes: null, replay_sync_update_bytes: null, sync_method: SYNC_METHOD[engine],
    spread: {}, loadavg_start: os.loadavg().map((x) => +x.toFixed(2)), matched: true, mismatches: [],
  };
  const check = (what, text) => { if (text !== tr.end) { out.matched = false; if (!out.mismatches.includes(what)) out.mismatches.push(what); } };
  const keep = (key, m) => { out[key] = +m.median.toFixed(3); out.spread[key] = [+m.min.toFixed(3), +m.max.toFixed(3)]; };

  // (a) local replay; keep the last run's document for encoding.
  let last = null;
  const a = measure(runs, () => {
    const r = ad.replay(tr);
    check('replay', r.text);
    if (last) ad.free(last);
    last = r.doc;
    out.final_len = r.text.length;
    return r.ms;
  });
  keep('replay_ms', a);

  // (b0) replay + encode one incremental update per patch (not applied anywhere).
  const b0 = measure(runs, () => {
    const r = ad.sync(tr, false, Infinity);
    check('encode-only (source)', r.texts[0]);
    out.encode_update_bytes = r.bytes;
    return r.ms;
  });
  keep('replay_encode_ms', b0);

  // (b) replay + one encoded incremental update per patch applied to a second doc.
  // Automerge: fewer runs (default 1, no warm-up) and a time budget per run, because
  // every applyChanges call on the replica costs time proportional to the document.
  const syncRun = (fn, key, what) => {
    const sr = sync.runs ?? runs, budget = sync.budgetS ? sync.budgetS * 1e3 : Infinity;
    const m = measure(sr, () => {
      const r = fn(tr, true, budget);
      if (r.done < tr.n) {
        out.timed_out = out.timed_out || {};
        out.timed_out[key] = { budget_s: sync.budgetS, patches_done: r.done, ms: +r.ms.toFixed(0) };
      } else {
        check(`${what} (source)`, r.texts[0]);
        check(`${what} (replica)`, r.texts[1]);
      }
      out[`${key.replace(/_ms$/, '')}_update_bytes`] = r.bytes;
      return r.done < tr.n ? NaN : r.ms;
    }, sync.runs != null ? sync.warm : 1);
    if (out.timed_out?.[key]) out[key] = null;
    else keep(key, m);
    out.sync_runs = sr;
  };
  syncRun(ad.sync, 'replay_sync_ms', 'sync');
  if (ad.syncEvent) syncRun(ad.syncEvent, 'replay_sync_event_ms', 'sync-event');

  // (c) encode the whole document, load it into an empty document.
  const enc = ad.encode(last);
  for (const [k, v] of Object.entries(enc)) out.encoded_bytes[k] = v.length;
  const primary = enc.v1 || enc.bytes || enc.snapshot || enc.save;
  let textMs = [];
  const c = measure(runs, () => { const r = ad.load(primary); check('load', r.text); textMs.push(r.textMs); return r.ms; });
  keep('load_ms', c);
  out.load_text_ms = +median(textMs.slice(1)).toFixed(3);
  if (enc.v2) {
    textMs = [];
    const c2 = measure(runs, () => { const r = ad.load(enc.v2, 'v2'); check('load v2', r.text); textMs.push(r.textMs); return r.ms; });
    keep('load_v2_ms', c2);
    out.load_v2_text_ms = +median(textMs.slice(1)).toFixed(3);
  }
  ad.free(last);
  if (ad.smallIdSizes) {
    const r = ad.smallIdSizes(tr);
    if (!r.ok) { out.matched = false; (out.mismatches ||= []).push('small-id replay'); }
    delete r.ok;
    out.small_id_sizes = r;
  }
  out.loadavg_end = os.loadavg().map((x) => +x.toFixed(2));
  if (!out.mismatches.length) delete out.mismatches;
  return out;
}

// ---------------------------------------------------------------- parent side

function runWorker(engine, trace, runs, extra = []) {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--worker', engine, trace, '--runs', String(runs), ...extra],
    { cwd: HERE, encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    return { engine, name: NAME[engine], trace, runs, matched: false, error: `worker failed (status ${r.status}): ${r.stderr.trim().slice(-500)}` };
  }
}

function runTandem(trace) {
  if (!existsSync(TANDEM))
    return { engine: 'tandem', trace: `${trace}.json.gz`, matched: false, error: `${TANDEM} not built (cmake --build build-h7 --target tandem-bench-trace)` };
  const r = spawnSync(TANDEM, [join(TRACE_DIR, `${trace}.json.gz`)], { encoding: 'utf8' });
  try {
    return { engine: 'tandem', ...JSON.parse(r.stdout.trim()), loadavg_end: os.loadavg().map((x) => +x.toFixed(2)) };
  } catch {
    return { engine: 'tandem', trace, matched: false, error: `status ${r.status}: ${r.stderr.trim()}` };
  }
}

const sh = (cmd) => { try { return execSync(cmd, { encoding: 'utf8', cwd: ROOT }).trim(); } catch { return '(unavailable)'; } };
const fmt = (v, d = 0) => (v == null ? '–' : Number(v).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const ms = (v) => (v == null ? '–' : v < 10 ? fmt(v, 2) : v < 100 ? fmt(v, 1) : fmt(v, 0));
const both = (rs, key) => rs.map((r) => ms(r?.[key])).join(' / ');
function noise(rs, keys) {
  // largest round-to-round difference over the given keys, relative to the smaller median
  let worst = null;
  for (const k of keys) {
    const vs = rs.map((r) => r?.[k]).filter((v) => v != null && v > 0);
    if (vs.length < 2) continue;
    const d = (Math.max(...vs) / Math.min(...vs) - 1) * 100;
    if (worst == null || d > worst.d) worst = { d, k };
  }
  return worst ? `${worst.d.toFixed(0)}% (${worst.k.replace(/_ms$/, '')})` : '–';
}

function writeResults(opts, rounds, meta) {
  const L = [];
  const R = rounds.length;
  const rr = Array.from({ length: R }, (_, i) => `round ${i + 1}`).join(' / ');
  L.push('# Peer CRDT engines vs tandem on this machine', '');
  L.push(`Generated by \`bench/peers/run.mjs\` on ${meta.date}. Commands:`, '');
  L.push('```', 'cmake -S /work/main -B /work/main/build-h7 -DCMAKE_BUILD_TYPE=Release && cmake --build /work/main/build-h7 --target tandem-bench-trace',
    'cd bench/peers && npm ci && node run.mjs', '```', '');
  L.push(`The whole set ran ${R} time(s) in one session; every time cell is **${rr}**. In each round the peers ran first,`,
    'then `build-h7/bench/tandem-bench-trace` on each trace right after them.',
    `Times are medians (ms, \`performance.now()\`) of ${opts.runs} timed runs after one warm-up run, except: Automerge (a), (b0) and (c) ${opts.amRuns} runs`,
    `after a warm-up (one replay takes seconds), Automerge (b) ${opts.amSyncRuns} run without warm-up and a budget of ${opts.amSyncBudgetS} s per run`,
    '(see the notes), tandem its default of 7 runs after a warm-up (CLOCK_MONOTONIC).',
    'Each peer engine x trace ran in a fresh `node --expose-gc` process, with a full GC before every run (not timed).',
    '"noise" = the largest round-to-round difference among the time columns of that row.', '');
  for (const trace of opts.traces) {
    const all = rounds.flatMap((r) => r.peers).filter((p) => p.trace === trace);
    const ops = all.find((p) => p.ops)?.ops, fin = all.find((p) => p.final_len)?.final_len;
    L.push(`## ${trace} (${fmt(ops)} patches, one transaction each; final text ${fmt(fin)} chars)`, '');
    L.push('| engine | version | (a) replay | (b0) + encode an update per patch | (b) + encode and apply it to a 2nd doc | (c) load encoded doc | (c) load + read text | noise |');
    L.push('|---|---|---:|---:|---:|---:|---:|---:|');
    const sizes = [];
    for (const e of opts.engines) {
      const rs = rounds.map((r) => r.peers.find((p) => p.engine === e && p.trace === trace));
      const f = rs.find((r) => r && !r.error) || rs[0] || {};
      const err = rs.find((r) => r?.error);
      let sync = both(rs, 'replay_sync_ms');
      const to = rs.map((r) => r?.timed_out?.replay_sync_ms).filter(Boolean);
      if (to.length) sync = rs.map((r) => { const t = r?.timed_out?.replay_sync_ms; return t ? `not finished: ${fmt(t.patches_done)} of ${fmt(ops)} patches in ${t.budget_s} s` : ms(r?.replay_sync_ms); }).join(' / ');
      if (e === 'automerge' && !to.length) sync += ` (${f.sync_runs} run)`;
      if (e === 'loro') sync = `${sync} (export from version); ${both(rs, 'replay_sync_event_ms')} (subscribeLocalUpdates)`;
      let load = both(rs, 'load_ms'), loadT = both(rs, 'load_text_ms');
      if (e === 'yjs') { load = `v1 ${load}; v2 ${both(rs, 'load_v2_ms')}`; loadT = `v1 ${loadT}; v2 ${both(rs, 'load_v2_text_ms')}`; }
      L.push(`| ${NAME[e]}${err ? ` (ERROR: ${err.error})` : ''} | ${f.version ?? '–'} | ${both(rs, 'replay_ms')} | ${both(rs, 'replay_encode_ms')} | ${sync} | ${load} | ${loadT} | ${noise(rs, ['replay_ms', 'replay_encode_ms', 'replay_sync_ms', 'load_ms'])} |`);
      const enc = f.encoded_bytes || {};
      let encs = '–';
      const sm = f.small_id_sizes;
      if (e === 'yjs') encs = `${fmt(enc.v1)} (v1) / ${fmt(enc.v2)} (v2)${sm ? `; with clientID 1: ${fmt(sm.v1)} / ${fmt(sm.v2)}` : ''}`;
      else if (e === 'loro') encs = `${fmt(enc.snapshot)} (snapshot); ${fmt(enc.updates)} (all updates)`;
      else if (e === 'automerge') encs = `${fmt(enc.save)} (save())`;
      else if (e === 'dt') encs = `${fmt(enc.bytes)} (toBytes())`;
      const per = (b) => (b == null || !ops ? '–' : fmt(b / ops, 1));
      sizes.push(`| ${NAME[e]} | ${encs} | ${fmt(f.encode_update_bytes)} (${per(f.encode_update_bytes)} B/patch)${e === 'yjs' && sm ? `; with clientID 1: ${fmt(sm.update_bytes)} (${per(sm.update_bytes)} B/patch)` : ''} | ${rs.every((r) => r?.matched) ? 'yes' : 'NO'}${rs.some((r) => r?.mismatches) ? ` (${rs.flatMap((r) => r?.mismatches || []).join(', ')})` : ''}${to.length ? '; (b) replica not checked (unfinished)' : ''} |`);
    }
    if (opts.tandem) {
      const rs = rounds.map((r) => r.tandem.find((t) => t.trace === `${trace}.json.gz`));
      const f = rs.find((r) => r && !r.error) || rs[0] || {};
      const err = rs.find((r) => r?.error);
      L.push(`| **tandem** (C, this repo)${err ? ` (ERROR: ${err.error})` : ''} | ${meta.commit} | ${both(rs, 'replay_ms')} | – | ${both(rs, 'replay_sync_ms')} (crdt_doc_diff + crdt_doc_apply) | ${both(rs, 'load_ms')} (GC'd snapshot); ${both(rs, 'load_keep_ms')} (kept) | – | ${noise(rs, ['replay_ms', 'replay_sync_ms', 'load_ms'])} |`);
      L.push(`| plain gap buffer (C, no CRDT) | – | ${both(rs, 'gapbuf_ms')} | – | – | – | – | ${noise(rs, ['gapbuf_ms'])} |`);
      const per = (b) => (b == null || !ops ? '–' : fmt(b / ops, 1));
      sizes.push(`| **tandem** | ${fmt(f.snapshot_bytes)} (snapshot after GC); ${fmt(f.snapshot_bytes_keep)} (before GC) | ${fmt(f.sync_update_bytes)} (${per(f.sync_update_bytes)} B/patch, crdt_doc_diff) | ${rs.every((r) => r?.matched) ? 'yes' : 'NO'} |`);
    }
    L.push('', '| engine | encoded doc bytes | update bytes, sum over all patches | text = endContent (a, b, c; every run and round) |', '|---|---|---|---|', ...sizes, '');
  }
  L.push('## What is measured', '',
    '* (a) local replay, one transaction per patch: Yjs `doc.transact(() => { delete; insert })`; Loro `text.delete/insert` then `doc.commit()`;',
    '  Automerge `doc = A.change(doc, d => A.splice(d, ["text"], pos, del, ins))`; diamond-types `Doc.del/ins` (no transaction API: every call is its own op);',
    '  tandem: delete then insert on one `crdt_doc` per patch.',
    '* (b0) as (a), and after every patch encode the incremental update of that patch (not applied anywhere): the encoding half of (b).',
    '* (b) as (a), and after every patch encode the incremental update and apply it to a second document (both documents checked at the end):');
  for (const e of opts.engines) L.push(`  * ${NAME[e]}: ${SYNC_METHOD[e]}`);
  L.push('  * Loro, second figure: `doc.subscribeLocalUpdates` (the bytes of each commit, delivered by an event like Yjs\'s) -> `doc2.import`.',
    '  * tandem: `crdt_doc_diff` to the replica + `crdt_doc_apply` there (tests/support/replay.h); tandem has no encode-only figure.',
    '  * Yjs: not `Y.encodeStateAsUpdate(doc, prevStateVector)` per patch: that re-encodes the whole delete set every time (quadratic); the `update` event is what y-websocket sends.',
    '  * No engine was skipped: all four can encode and apply incremental updates from JS.',
    `  * Automerge: every \`A.applyChanges(doc2, [change])\` costs time that grows with the document (also when calling the wasm backend's \`applyChanges\` directly, and with \`saveIncremental\`/\`loadIncremental\`; applying the same changes in one batch is fast), so (b) is quadratic: it runs ${opts.amSyncRuns} time(s) without warm-up, and a run that exceeds ${opts.amSyncBudgetS} s is stopped and reported as "not finished" with the patches done.`,
    '* (c) `load`: decode the whole encoded document into a fresh empty document (Yjs `applyUpdate` / `applyUpdateV2`, Loro `import` of the snapshot,',
    '  Automerge `A.load`, diamond-types `Doc.fromBytes`, tandem `crdt_doc_load`); `load + read text`: the same plus reading the text back',
    '  (Loro materialises snapshot state lazily, so its `load` alone understates the work).',
    '* encoded doc: Yjs `encodeStateAsUpdate` (v1) / `encodeStateAsUpdateV2`; Loro `export({mode: "snapshot"})` (and `{mode: "update"}` = all updates);',
    '  Automerge `save()`; diamond-types `toBytes()`; tandem `crdt_doc_snapshot` after / before `crdt_doc_gc`.',
    '* update bytes: the sum over all patches of the per-patch updates of (b0) (the same bytes as (b); tandem: its diff bytes).',
    '* replica ids: the peers use ids of the size each engine picks by default (random), fixed so sizes repeat: Yjs clientIDs 0x9e3779b9 / 0x7f4a7c15',
    '  (a random uint32 is a 5-byte varint in every v1 struct and every update), Loro 64-bit peer ids, Automerge 16-byte actors (in every change),',
    '  diamond-types agent names "a"/"b" (it has no default). tandem-bench-trace uses client ids 1/2/3, so Yjs sizes with clientID 1 are given too',
    '  (an extra untimed replay). Automerge `save()` varies by a few bytes between runs (changes carry a wall-clock timestamp).', '');
  L.push('## Versions', '');
  for (const e of opts.engines) L.push(`* ${PKG[e]} ${meta.versions[PKG[e]] ?? '?'}`);
  for (const [k, v] of Object.entries(meta.versions)) if (!Object.values(PKG).includes(k)) L.push(`* ${k} ${v} (dependency)`);
  L.push(`* node ${process.version}, npm ${meta.npm}`,
    `* tandem: \`build-h7/bench/tandem-bench-trace\` built ${meta.built ?? '?'} from commit ${meta.commitFull}${meta.dirty ? ` plus uncommitted changes then in the shared working tree (${meta.dirty})` : ''}; ${meta.cc}, CMAKE_BUILD_TYPE=Release`, '');
  L.push('## Machine', '', '```', `$ nproc`, meta.nproc, `$ lscpu | head`, meta.lscpu, `$ node --version`, process.version, `$ uname -sr`, meta.uname, `$ date -u`, meta.dateU, '```', '');
  L.push('## Noise', '',
    'The machine is shared with other work (other sessions build, test and fuzz on the same 2 vCPUs), so treat differences under ~2x between',
    'engines with care. 1-minute load average at the start -> end of each round: ' +
    rounds.map((r, i) => `round ${i + 1}: ${r.load0.toFixed(2)} -> ${r.load1.toFixed(2)} (${r.secs.toFixed(0)} s)`).join('; ') + '.',
    'Per-run min/max of every median are in the JSON lines printed by run.mjs (`spread`), with the load average around each engine (`loadavg_start`/`loadavg_end`).', '');
  // Hand-written notes after the marker survive a rerun (they may describe an older run: check them).
  const MARK = '<!-- hand-written notes: run.mjs keeps everything below this line -->';
  const file = join(HERE, 'RESULTS.md');
  const prev = existsSync(file) ? readFileSync(file, 'utf8') : '';
  L.push(MARK, prev.includes(MARK) ? prev.slice(prev.indexOf(MARK) + MARK.length).replace(/^\n/, '') : '');
  writeFileSync(file, L.join('\n'));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.worker) {
    const sync = opts.sync.runs != null ? { ...opts.sync, warm: 0 } : { budgetS: opts.sync.budgetS };
    console.log(JSON.stringify(await worker(opts.worker, opts.trace, opts.runs, sync)));
    return;
  }
  // What tandem-bench-trace was built from (the working tree may hold uncommitted work).
  const git = { commit: sh('git rev-parse --short HEAD'), commitFull: sh('git rev-parse HEAD'),
    dirty: sh('git diff --name-only HEAD').split('\n').filter((l) => l && l !== '(unavailable)').join(', '),
    built: existsSync(TANDEM) ? new Date(statSync(TANDEM).mtimeMs).toISOString() : null };
  const rounds = [];
  for (let round = 1; round <= opts.rounds; round++) {
    const R = { peers: [], tandem: [], load0: os.loadavg()[0], t0: performance.now() };
    for (const trace of opts.traces)
      for (const e of opts.engines) {
        const r = e === 'automerge'
          ? runWorker(e, trace, opts.amRuns, ['--sync-runs', String(opts.amSyncRuns), '--sync-budget-s', String(opts.amSyncBudgetS)])
          : runWorker(e, trace, opts.runs);
        r.round = round;
        console.log(JSON.stringify(r));
        R.peers.push(r);
      }
    if (opts.tandem)
      for (const trace of opts.traces) {
        const r = runTandem(trace);
        r.round = round;
        console.log(JSON.stringify(r));
        R.tandem.push(r);
      }
    R.load1 = os.loadavg()[0];
    R.secs = (performance.now() - R.t0) / 1e3;
    rounds.push(R);
  }
  const lock = JSON.parse(readFileSync(join(HERE, 'package-lock.json'), 'utf8'));
  const versions = {};
  for (const [k, v] of Object.entries(lock.packages || {})) if (k.startsWith('node_modules/')) versions[k.slice(13)] = v.version;
  const meta = {
    date: new Date().toISOString(), dateU: sh('date -u'), versions, npm: sh('npm --version'), nproc: sh('nproc'), lscpu: sh('lscpu | head'), uname: sh('uname -sr'),
    ...git,
    cc: sh(`cat ${join(ROOT, 'build-h7/CMakeFiles')}/*/CMakeCCompiler.cmake | sed -n 's/^set(CMAKE_C_COMPILER_\\(ID\\|VERSION\\) "\\(.*\\)")$/\\2/p' | tr '\\n' ' '`) || 'C compiler ?',
  };
  if (opts.write) writeResults(opts, rounds, meta);
  const bad = rounds.some((r) => [...r.peers, ...r.tandem].some((x) => !x.matched));
  process.exitCode = bad ? 1 : 0;
}

main().catch((e) => { console.error(e); process.exitCode = 2; });
