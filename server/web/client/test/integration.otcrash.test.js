// Integration: an OT operation that the real `tandem serve --dev` made
// durable, but whose OT_ACK never reached the client because the server was
// SIGKILLed in between, ends up in the text exactly once: after the restart
// the catch-up from storage carries the operation's src (our client id) and
// op id, and the document takes it as its ack instead of applying it again
// and resending it. Once with the same client reconnecting, once across a
// "page reload" (the pending operation, its op id and the client ids it was
// sent under are restored from the storage adapter; the new page has a new
// client id).
//
// The ack is held back at the WebSocket: a wrapper of `ws` sees every frame
// but, while `hold` is set, does not hand it to the client. The server sends
// OT_ACK only once the operation is durable, so seeing it on the wire is the
// moment to kill.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Server, converged, waitFor } from './helpers.js';
import { MemoryStorage } from '../src/index.js';
import { decodeMessage, MSG } from '../src/codec.js';

let srv;
before(async () => {
  srv = await new Server().start();
});
after(async () => {
  await srv?.close();
});

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

async function kill9() {
  srv.proc.kill('SIGKILL');
  const r = await srv.exited;
  assert.equal(r.sig, 'SIGKILL');
  srv.proc = null;
}

async function restartSamePlace() {
  srv.restarting = true;
  await srv.start();
}

const count = (t, s) => t.split(s).length - 1;

/** Edit, wait until the server acked on the wire (durable), SIGKILL. */
async function editAndKillBeforeAck(o, doc, gate, pos, str) {
  gate.hold = true;
  doc.insert(pos, str);
  await waitFor(() => gate.seen.some((m) => m && m.type === MSG.OT_ACK), 'the OT_ACK on the wire');
  assert.ok(doc.hasPending, 'the client has not seen its ack');
  await kill9();
  gate.hold = false;
}

test('an op stored but not acked before a SIGKILL is applied once after the restart (reconnect)', async () => {
  const gate = { hold: false, seen: [] };
  const a = await srv.client('otk-a');
  const o = await srv.client('otk-o', { WebSocket: gatedWebSocket(gate), storage: new MemoryStorage() });
  const da = a.openDocument('otkill');
  const dO = o.openDocument('otkill');
  await converged([da, dO], 'initial');
  da.insert(0, 'hello');
  await converged([da, dO], 'base');

  await editAndKillBeforeAck(o, dO, gate, 5, ' world');
  await restartSamePlace();
  assert.equal(await srv.text('otkill'), 'hello world', 'the op survived the kill');
  await waitFor(() => a.status === 'online' && da.synced, 'a back online', 20000);
  da.insert(0, '> ');
  await converged([da, dO], 'after restart', 30000);
  const t = await srv.text('otkill');
  assert.equal(t, '> hello world');
  assert.equal(count(t, 'world'), 1);
  assert.equal(dO.text, t);
  assert.equal(dO.state, 'synchronized');
  a.close();
  o.close();
});

test('an op stored but not acked before a SIGKILL is applied once after a page reload', async () => {
  const gate = { hold: false, seen: [] };
  const storage = new MemoryStorage();
  const a = await srv.client('otr-a');
  const o = await srv.client('otr-o', { WebSocket: gatedWebSocket(gate), storage });
  const da = a.openDocument('otreload');
  const dO = o.openDocument('otreload');
  await converged([da, dO], 'initial');
  da.insert(0, 'abc');
  await converged([da, dO], 'base');

  await editAndKillBeforeAck(o, dO, gate, 3, '+mine');
  const firstId = o.clientId;
  o.destroy(); // the page goes away with its op unacknowledged
  await restartSamePlace();
  const o2 = await srv.client('otr-o', { storage });
  assert.notEqual(o2.clientId, firstId, 'the new page has its own client id');
  const d2 = o2.openDocument('otreload');
  assert.equal(d2.restored, true);
  assert.equal(d2.text, 'abc+mine');
  await waitFor(() => a.status === 'online' && da.synced, 'a back online', 20000);
  await converged([da, d2], 'after reload', 30000);
  const t = await srv.text('otreload');
  assert.equal(t, 'abc+mine');
  assert.equal(count(t, '+mine'), 1);
  assert.equal(d2.text, t);
  assert.equal(storage.getItem(d2._key), null, 'the pending record is gone once acknowledged');
  a.close();
  o2.close();
});
