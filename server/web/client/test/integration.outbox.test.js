// Integration: the chat outbox and instance keys against the real
// `tandem serve --dev`. A chat message sent but not acknowledged is kept in
// the storage adapter (per server URL, room and client instance) and resent
// after a "page reload" (a new TandemClient of the same instance on the same
// storage) with the same client id and msg id, so the server's dedup by
// (user, client id, msg id) stores it exactly once:
//   - sent while the server is stopped, then reload, then restart;
//   - stored by the server but its CHAT_ACK never read (a `ws` wrapper holds
//     incoming frames back), then reload: once with the remembered client id,
//     and twice without it (the control: a new client id is a new message).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Server, waitFor } from './helpers.js';
import { MemoryStorage, chatStorageKey } from '../src/index.js';
import { decodeMessage, MSG } from '../src/codec.js';

let srv;
before(async () => {
  srv = await new Server().start();
});
after(async () => {
  await srv?.close();
});

async function messages(room) {
  const r = await srv.json(`/api/rooms/${encodeURIComponent(room)}/messages?after=0`);
  assert.equal(r.status, 200);
  return r.body.messages;
}

/** A WebSocket class whose incoming frames can be held back (and dropped). */
function gatedWebSocket(gate) {
  return class GatedWebSocket extends WebSocket {
    set onmessage(fn) {
      super.onmessage = fn
        ? (ev) => {
            if (gate.hold) {
              gate.seen.push(decodeMessage(ev.data));
              return;
            }
            fn(ev);
          }
        : fn;
    }
    get onmessage() {
      return super.onmessage;
    }
  };
}

test('chat sent while the server is stopped survives a reload and is stored exactly once', async () => {
  const storage = new MemoryStorage();
  const room = 'outbox/stopped';
  const a = await srv.client('ob-ann', { storage, instanceKey: 'tab-1' });
  const da = a.openDocument(room);
  await waitFor(() => da.synced, 'synced');
  await srv.stop();
  await waitFor(() => a.status !== 'online', 'client noticed the stop');
  a.on('error', () => {});
  da.sendChat('sent during the outage 😀').catch(() => {});
  const key = chatStorageKey(srv.ws, room, 'tab-1');
  assert.notEqual(storage.getItem(key), null, 'the outbox is in storage');
  a.destroy(); // the page goes away
  const b = await srv.client('ob-ann', { storage, instanceKey: 'tab-1' });
  assert.equal(b.clientId, a.clientId);
  const db = b.openDocument(room);
  assert.deepEqual(db.pendingChat.map((m) => [m.text, m.restored]), [['sent during the outage 😀', true]]);
  const own = [];
  db.on('chat', (m) => own.push(m));
  srv.restarting = true;
  await srv.start();
  await waitFor(() => db.pendingChat.length === 0, 'acked after the restart', 20000);
  assert.equal(storage.getItem(key), null, 'removed from storage on ack');
  const stored = await messages(room);
  assert.deepEqual(stored.map((m) => [m.user, m.text]), [['ob-ann', 'sent during the outage 😀']]);
  await waitFor(() => own.length === 1, 'reported once');
  assert.equal(own[0].own, true);
  b.destroy();
});

async function storedButNotAcked(room, opts) {
  const storage = new MemoryStorage();
  const gate = { hold: false, seen: [] };
  const a = await srv.client('ob-bob', { storage, WebSocket: gatedWebSocket(gate), ...opts });
  const da = a.openDocument(room);
  await waitFor(() => da.synced, 'synced');
  gate.hold = true;
  da.sendChat('exactly once?').catch(() => {});
  await waitFor(() => gate.seen.some((m) => m && m.type === MSG.CHAT_ACK), 'the CHAT_ACK on the wire');
  assert.equal(da.pendingChat.length, 1, 'the client has not seen its ack');
  a.destroy(); // reload before the ack is read
  const b = await srv.client('ob-bob', { storage, ...opts });
  const db = b.openDocument(room);
  assert.equal(db.pendingChat.length, 1);
  const seen = [];
  const acked = [];
  db.on('chat', (m) => seen.push(m));
  db.on('chat-acked', (e) => acked.push(e));
  await waitFor(() => db.pendingChat.length === 0, 'acked after the reload');
  const stored = await messages(room);
  await waitFor(() => seen.length === stored.length, 'every stored record reported');
  b.destroy();
  assert.equal(acked.length, 1, 'chat-acked once, for the restored message');
  assert.equal(acked[0].id, stored[stored.length - 1].id);
  return { a, b, stored, seen };
}

test('chat stored but not acked before a reload: resent with the same ids, stored once', async () => {
  const { a, b, stored, seen } = await storedButNotAcked('outbox/acklost', { instanceKey: 'tab-2' });
  assert.equal(b.clientId, a.clientId);
  assert.deepEqual(stored.map((m) => m.text), ['exactly once?']);
  // the replay after the reload carried it before the ack of the resend: reported once, by the replay
  assert.deepEqual(seen.map((m) => [m.text, m.replay]), [['exactly once?', true]]);
});

test('control: the same without a remembered client id stores the message twice', async () => {
  const { a, b, stored } = await storedButNotAcked('outbox/acklost-control', { instanceKey: 'tab-3', rememberClientId: false });
  assert.notEqual(b.clientId, a.clientId);
  assert.deepEqual(stored.map((m) => m.text), ['exactly once?', 'exactly once?']);
});

test('instances on one storage keep their unsent edits apart; a reloaded instance sends its own', async () => {
  const storage = new MemoryStorage();
  const room = 'outbox/tabs';
  const t1 = await srv.client('ob-cat', { storage, instanceKey: 'tab-A' });
  const d1 = t1.openDocument(room);
  await waitFor(() => d1.synced, 'synced');
  await srv.stop();
  await waitFor(() => t1.status !== 'online', 'offline');
  t1.on('error', () => {});
  d1.insert(0, '[A]');
  t1.destroy();
  const t2 = await srv.client('ob-cat', { storage, instanceKey: 'tab-B' });
  const d2 = t2.openDocument(room);
  assert.equal(d2.text, '', 'another instance does not take over the edits');
  d2.insert(0, '[B]');
  const t1b = await srv.client('ob-cat', { storage, instanceKey: 'tab-A' });
  const d1b = t1b.openDocument(room);
  assert.equal(d1b.text, '[A]');
  srv.restarting = true;
  await srv.start();
  await waitFor(() => d1b.synced && d2.synced && !d1b.hasPending && !d2.hasPending && d1b.text === d2.text && d1b.text.length === 6, 'merged', 20000);
  const text = await srv.text(room);
  assert.equal(text.split('[A]').length - 1, 1);
  assert.equal(text.split('[B]').length - 1, 1);
  t2.destroy();
  t1b.destroy();
});
