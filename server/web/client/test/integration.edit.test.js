// Integration: TandemClient on Node's `ws` against the real `tandem serve
// --dev` (TANDEM_BIN): concurrent editing by 2 and 10 clients converges with
// each other and GET /api/rooms/{id}/text; emoji survive the code-point wire;
// edits made while the server is stopped are merged after it restarts
// (including a "page reload" that restores them from storage); reconnect
// backoff doubles with jitter and resets once online.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, online, converged, waitFor, sleep } from './helpers.js';
import { MemoryStorage, ot } from '../src/index.js';
import { rng } from './rng.js';

let srv;
before(async () => {
  srv = await new Server().start();
});
after(async () => {
  await srv?.close();
});

const ALPHA = ['a', 'b', 'c', ' ', 'é', '😀', '\n', 'Z'];
// one code point per client (circled letters), never deleted by the random edits
const marker = (i) => String.fromCodePoint(0x24b6 + i);
const MARKERS = /[\u24b6-\u24cf]/;

async function randomEdits(doc, r, n, marker) {
  for (let i = 0; i < n; i++) {
    const t = doc.text;
    const cps = ot.cpLength(t);
    const pos = ot.cpToUtf16Index(t, Math.floor(r() * (cps + 1)));
    if (i === Math.floor(n / 2)) {
      doc.insert(pos, marker);
    } else if (cps > 4 && r() < 0.3) {
      const endCp = Math.min(cps, ot.utf16ToCpIndex(t, pos) + 1 + Math.floor(r() * 2));
      const end = ot.cpToUtf16Index(t, endCp);
      // never delete a marker
      if (!MARKERS.test(t.slice(pos, end))) doc.delete(pos, end - pos);
    } else {
      doc.insert(pos, ALPHA[Math.floor(r() * ALPHA.length)]);
    }
    await sleep(r() < 0.5 ? 0 : Math.floor(r() * 4));
  }
}

async function editRound(nClients, room, editsEach, seed) {
  const clients = [];
  for (let i = 0; i < nClients; i++) clients.push(await srv.client(`u${seed}-${i}`));
  await Promise.all(clients.map(online));
  const docs = clients.map((c) => c.openDocument(room));
  await converged(docs, 'initial sync');
  // remote ops that arrived while the receiver had its own op in flight: real concurrency
  let concurrent = 0;
  for (const d of docs) d.on('change', (e) => { if (e.remote && d.hasPending) concurrent++; });
  await Promise.all(docs.map((d, i) => randomEdits(d, rng(seed * 100 + i), editsEach, marker(i))));
  await converged(docs, `${nClients} clients converge`, 30000);
  assert.ok(concurrent > 0, 'some remote ops were transformed over pending local ops');
  const serverText = await srv.text(room);
  for (const d of docs) assert.equal(d.text, serverText);
  for (let i = 0; i < nClients; i++) assert.equal(serverText.split(marker(i)).length - 1, 1, `marker of client ${i} once in ${JSON.stringify(serverText)}`);
  const info = await srv.json(`/api/rooms/${encodeURIComponent(room)}`);
  assert.equal(info.body.version, docs[0].version, 'the server version matches the clients');
  clients.forEach((c) => c.close());
  return serverText;
}

test('two clients edit one room concurrently and converge with GET /text', async () => {
  const text = await editRound(2, 'two', 120, 1);
  assert.ok(text.length > 50);
});

test('ten clients edit one room concurrently and converge with GET /text', async () => {
  await editRound(10, 'ten', 40, 2);
});

test('a late joiner gets the text; astral characters round-trip the code-point wire', async () => {
  const a = await srv.client('emoji-a');
  const da = a.openDocument('emoji');
  await da.whenSynced();
  assert.equal(da.synced, true);
  da.insert(0, 'x😀y');
  da.insert(3, '👍🏽'); // after the grinning face (UTF-16 index 3)
  const saved = da.whenSaved();
  assert.equal(da.hasPending, true);
  await saved;
  assert.equal(da.hasPending, false);
  assert.equal(await srv.text('emoji'), 'x😀👍🏽y');
  const b = await srv.client('emoji-b');
  const db = b.openDocument('emoji');
  await waitFor(() => db.synced, 'b synced');
  assert.equal(db.text, 'x😀👍🏽y');
  const seen = [];
  db.on('change', (e) => seen.push(e));
  da.delete(1, 2); // the grinning face, 2 UTF-16 units
  await waitFor(() => db.text === 'x👍🏽y', 'b sees the delete');
  assert.deepEqual(seen[0].changes, [{ from: 1, to: 3, insert: '' }]);
  a.close();
  b.close();
});

test('offline edits made while the server is stopped are merged after it restarts', async () => {
  const storage = new MemoryStorage();
  const a = await srv.client('off-a', { storage });
  const b = await srv.client('off-b');
  const c = await srv.client('off-c', { storage: new MemoryStorage() });
  const [da, db, dc] = [a, b, c].map((x) => x.openDocument('offline'));
  await converged([da, db, dc], 'initial');
  da.insert(0, 'shared base\n');
  await converged([da, db, dc], 'base');

  const statuses = [];
  a.on('status', (s) => statuses.push(s));
  await srv.stop();
  await waitFor(() => [a, b, c].every((x) => x.status !== 'online'), 'clients see the drop');

  // edits while the server is down
  da.insert(0, '[A offline]');
  db.insert(db.text.length, '[B offline 😀]');
  dc.insert(6, '[C]');
  dc.insert(0, '[C2]');
  assert.ok(da.hasPending && db.hasPending && dc.hasPending);
  // client c "reloads the page": its document is closed, a new client restores it
  const cText = dc.text;
  c.destroy();
  await srv.restart();
  const c2 = await srv.client('off-c', { storage: c.storage });
  const dc2 = c2.openDocument('offline');
  assert.equal(dc2.restored, true);
  assert.equal(dc2.text, cText, 'the reloaded page shows its unsent edits at once');

  await converged([da, db, dc2], 'after restart', 30000);
  const t = await srv.text('offline');
  for (const m of ['[A offline]', '[B offline 😀]', '[C]', '[C2]', 'shared', 'base']) assert.equal(t.split(m).length - 1, 1, `${m} once in ${JSON.stringify(t)}`);
  assert.equal(da.text, t);
  assert.ok(statuses.includes('reconnecting') && statuses[statuses.length - 1] === 'online', statuses.join(','));
  [a, b, c2].forEach((x) => x.close());
});

test('reconnect backoff: delays double from minDelay with jitter, capped, reset when online', async () => {
  const a = await srv.client('backoff', { minDelay: 100, maxDelay: 800 });
  const d = a.openDocument('backoff');
  await waitFor(() => d.synced, 'synced');
  const sched = [];
  a.on('reconnect-scheduled', (e) => sched.push({ ...e, at: Date.now() }));
  await srv.stop();
  await waitFor(() => sched.length >= 5, 'five attempts', 20000);
  for (const s of sched.slice(0, 5)) {
    const cap = Math.min(800, 100 * 2 ** (s.attempt - 1));
    assert.ok(s.delay >= cap / 2 && s.delay <= cap, `attempt ${s.attempt}: ${s.delay} ms within [${cap / 2}, ${cap}]`);
  }
  assert.deepEqual(sched.slice(0, 5).map((s) => s.attempt), [1, 2, 3, 4, 5]);
  // the attempts really waited: the gaps between schedules are at least the delays
  for (let i = 1; i < 5; i++) assert.ok(sched[i].at - sched[i - 1].at >= sched[i - 1].delay - 5, 'waited before retrying');
  await srv.start();
  await waitFor(() => a.status === 'online' && d.synced, 'online again', 20000);
  assert.equal(a._attempt, 0, 'attempts reset after WELCOME');
  a.close();
  assert.equal(a.status, 'offline');
});
