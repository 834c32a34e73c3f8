// Integration: chat, typing, presence (awareness) and rate limits between
// TandemClients on Node's `ws` and the real `tandem serve --dev`; the SSE
// stats stream read with the `eventsource` package.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { Server, waitFor, sleep } from './helpers.js';
import WebSocket from 'ws';
import { MSG, TandemClient, MemoryStorage } from '../src/index.js';

let srv;
before(async () => {
  srv = await new Server().start();
});
after(async () => {
  await srv?.close();
});

async function pair(room, ua, ub, opts = {}) {
  const a = await srv.client(ua);
  const b = await srv.client(ub);
  const da = a.openDocument(room, opts);
  const db = b.openDocument(room, opts);
  await waitFor(() => da.synced && db.synced, 'both synced');
  return { a, b, da, db };
}

test('chat: sent, acked, received once, in history over the protocol and HTTP', async () => {
  const { a, b, da, db } = await pair('chat1', 'ann', 'bob');
  const got = [];
  db.on('chat', (m) => got.push(m));
  const m1 = await da.sendChat('hello 😀');
  assert.ok(m1.id > 0 && m1.own && m1.timeMs > 1.7e12);
  const m2 = await da.sendChat('second');
  assert.ok(m2.id > m1.id, 'monotonic ids');
  await waitFor(() => got.length === 2, 'bob received both');
  assert.deepEqual(got.map((m) => [m.id, m.user, m.text, m.replay]), [
    [m1.id, 'ann', 'hello 😀', false],
    [m2.id, 'ann', 'second', false],
  ]);
  const h = await db.fetchChatHistory({ after: 0, limit: 10 });
  assert.deepEqual(h.messages.map((r) => r.text), ['hello 😀', 'second']);
  assert.equal(h.more, false);
  const h1 = await db.fetchChatHistory({ after: 0, limit: 1 });
  assert.equal(h1.messages.length, 1);
  assert.equal(h1.more, true);
  const http = await srv.json('/api/rooms/chat1/messages?after=0');
  assert.deepEqual(http.body.messages.map((r) => [r.id, r.user, r.text]), [
    [m1.id, 'ann', 'hello 😀'],
    [m2.id, 'ann', 'second'],
  ]);
  a.close();
  b.close();
});

test('chat: a resend of the same msg id is acked with the same chat id and not broadcast again', async () => {
  const { a, b, da, db } = await pair('chat2', 'cid', 'dan');
  const got = [];
  db.on('chat', (m) => got.push(m));
  const acks = [];
  const origMsg = da._onMessage.bind(da);
  da._onMessage = (m) => {
    if (m.type === MSG.CHAT_ACK) acks.push(m);
    origMsg(m);
  };
  // the same frame twice, as a resend after a lost ack would be
  a._send({ type: MSG.CHAT_SEND, channel: da.channel, msgId: 1000, text: 'once' });
  a._send({ type: MSG.CHAT_SEND, channel: da.channel, msgId: 1000, text: 'once' });
  await waitFor(() => acks.length === 2, 'two acks');
  assert.equal(acks[0].chatId, acks[1].chatId);
  await sleep(200);
  assert.equal(got.filter((m) => m.text === 'once').length, 1, 'broadcast once');
  const http = await srv.json('/api/rooms/chat2/messages');
  assert.equal(http.body.messages.filter((m) => m.text === 'once').length, 1, 'stored once');
  a.close();
  b.close();
});

test('chat: messages missed while disconnected are replayed once after the reconnect; unacked sends are resent', async () => {
  const { a, b, da, db } = await pair('chat3', 'eve', 'fay');
  await da.sendChat('before');
  await waitFor(() => db.messages.length === 1, 'fay has the first');
  b.close(); // fay goes away
  await da.sendChat('missed 1');
  await da.sendChat('missed 2');
  // fay writes while offline: queued, sent once connected, acked
  const offline = db.sendChat('from offline');
  const replayed = [];
  db.on('chat', (m) => replayed.push(m));
  b.connect();
  const mine = await offline;
  await waitFor(() => replayed.filter((m) => !m.own).length >= 2, 'replay');
  const others = replayed.filter((m) => !m.own);
  assert.deepEqual(others.map((m) => [m.text, m.replay]), [
    ['missed 1', true],
    ['missed 2', true],
  ]);
  assert.equal(db.messages.filter((m) => m.text === 'before').length, 1, 'not replayed twice');
  assert.equal(mine.text, 'from offline');
  await waitFor(() => da.messages.some((m) => m.text === 'from offline'), 'eve gets the offline message');
  // a fresh client replays the whole history in id order
  const c = await srv.client('gil');
  const dc = c.openDocument('chat3');
  await waitFor(() => dc.messages.length === 4, 'full replay');
  const ids = dc.messages.map((m) => m.id);
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y));
  assert.ok(dc.messages.every((m) => m.replay));
  a.close();
  b.close();
  c.close();
});

test('chat: RATE_LIMITED sends are retried after retry_ms until all are acked', async () => {
  const { a, b, da } = await pair('chat4', 'spammer', 'reader');
  const limited = [];
  da.on('error', (e) => {
    if (e.name === 'RATE_LIMITED') limited.push(e);
  });
  // chat is 2/s with a burst of 10 per user: 14 at once must hit the limit
  const sends = [];
  for (let i = 0; i < 14; i++) sends.push(da.sendChat(`m${i}`));
  const acked = await Promise.all(sends);
  assert.ok(limited.length > 0, 'the limit was hit');
  assert.ok(limited.every((e) => e.retryMs > 0 && e.ref % 2 === 0), 'errors name a chat msg id and a retry time');
  assert.equal(new Set(acked.map((m) => m.id)).size, 14, 'fourteen distinct stored messages');
  const http = await srv.json('/api/rooms/chat4/messages?limit=100');
  assert.equal(http.body.messages.length, 14);
  a.close();
  b.close();
});

test('typing: start is seen by the other client, stops by itself after the timeout', async () => {
  const { a, b, da, db } = await pair('typing', 'tina', 'tom', { typingTimeout: 400 });
  const seen = [];
  db.on('typing', (list) => seen.push(list.map((u) => u.user)));
  da.startTyping();
  await waitFor(() => db.typing.some((u) => u.user === 'tina'), 'tom sees tina typing');
  assert.equal(db.typing[0].display, 'tina');
  await waitFor(() => db.typing.length === 0, 'auto stop', 5000);
  assert.deepEqual(seen[0], ['tina']);
  assert.deepEqual(seen[seen.length - 1], []);
  // explicit stop
  da.startTyping();
  await waitFor(() => db.typing.length === 1, 'typing again');
  da.stopTyping();
  await waitFor(() => db.typing.length === 0, 'explicit stop');
  a.close();
  b.close();
});

test('presence: join with name, colour and cursor; cursor moves with edits; removal on leave', async () => {
  const { a, b, da, db } = await pair('presence', 'pia', 'pat');
  da.insert(0, 'hello 😀 world');
  await waitFor(() => db.text === 'hello 😀 world', 'text');
  const changes = [];
  db.awareness.on('change', (e) => changes.push(e));
  da.awareness.setLocalState({ user: { name: 'Pia', color: '#e91e63' }, cursor: { anchor: 9, head: 14 } });
  await waitFor(() => db.awareness.peers.length === 1, 'pat sees pia');
  let p = db.awareness.peers[0];
  assert.equal(p.clientId, a.clientId);
  assert.deepEqual(p.state.user, { name: 'Pia', color: '#e91e63' });
  assert.deepEqual(p.state.cursor, { anchor: 9, head: 14 }, 'UTF-16 positions after the emoji survive the code-point wire');
  assert.deepEqual(changes[0].added, [String(a.clientId)]);
  // pat types at the start: pia's cursor (in pat's view) moves right by 3
  db.insert(0, '>> ');
  p = db.awareness.peers[0];
  assert.deepEqual(p.state.cursor, { anchor: 12, head: 17 });
  // pia's own view of her cursor moves too once the edit arrives
  await waitFor(() => da.text.startsWith('>> '), 'pia gets the edit');
  assert.deepEqual(da.awareness.getLocalState().cursor, { anchor: 12, head: 17 });
  // pia leaves: pat sees the removal at once (no ghost cursor)
  a.close();
  await waitFor(() => db.awareness.peers.length === 0, 'removal on leave', 5000);
  assert.ok(changes.some((e) => e.removed.includes(String(a.clientId))));
  b.close();
});

test('SSE /api/stream/stats through EventSource: connected, then stats-update with increasing ids', async () => {
  const es = new EventSource(`${srv.http}/api/stream/stats?interval_ms=250`);
  const events = [];
  const done = new Promise((resolve, reject) => {
    es.addEventListener('connected', (e) => events.push({ type: 'connected', id: e.lastEventId, data: JSON.parse(e.data) }));
    es.addEventListener('stats-update', (e) => {
      events.push({ type: 'stats-update', id: e.lastEventId, data: JSON.parse(e.data) });
      if (events.filter((x) => x.type === 'stats-update').length >= 2) resolve();
    });
    es.onerror = (e) => {
      if (events.length === 0) reject(new Error(`EventSource error: ${e.message}`));
    };
  });
  await Promise.race([done, sleep(10000).then(() => Promise.reject(new Error('no SSE events')))]);
  es.close();
  assert.equal(events[0].type, 'connected');
  assert.equal(events[0].data.interval_ms, 250);
  const ids = events.map((e) => Number(e.id));
  assert.equal(ids[0], 1);
  for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, 'consecutive ids');
  const s = events[1].data;
  for (const k of ['connections', 'rooms', 'sessions', 'sse_streams', 'updates_per_s', 'messages_per_s', 'bytes_per_s', 'memory', 'time_ms']) assert.ok(k in s, `${k} in stats-update`);
  assert.ok(s.sse_streams >= 1);
});

test('token refresh: a new HELLO on the open connection re-authorizes; a bad token revokes access', async () => {
  const t1 = await srv.token('before', 'Before');
  const a = new TandemClient({ url: srv.ws, token: t1, WebSocket, storage: new MemoryStorage() });
  const b = await srv.client('watcher');
  const da = a.openDocument('refresh');
  const db = b.openDocument('refresh');
  await waitFor(() => da.synced && db.synced, 'synced');
  const session = a.sessionId;
  await da.sendChat('one');
  await a.refreshToken(await srv.token('after', 'After'));
  await sleep(100);
  await da.sendChat('two');
  await waitFor(() => db.messages.length === 2, 'watcher got both');
  assert.deepEqual(db.messages.map((m) => [m.user, m.display, m.text]), [
    ['before', 'Before', 'one'],
    ['after', 'After', 'two'],
  ]);
  assert.equal(a.sessionId, session, 'same connection');
  // a token the server cannot verify: the subscription is closed with NOT_ALLOWED
  const errors = [];
  da.on('error', (e) => errors.push(e.name));
  await a.refreshToken('not.a.token');
  await waitFor(() => errors.includes('NOT_ALLOWED'), 'access revoked');
  assert.equal(da.synced, false);
  // edits stay local (queued) instead of reaching the room
  da.insert(0, 'x');
  await sleep(300);
  assert.equal(await srv.text('refresh'), '');
  assert.equal(da.hasPending, true);
  a.close();
  b.close();
});
