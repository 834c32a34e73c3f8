// push.test.js - the demo page's Web Push opt-in (src/notifications.js) and
// the service worker's push and notificationclick handlers (public/sw.js),
// against a real `tandem serve --dev` (its VAPID key generated at start-up)
// in Debian's Chromium.
//
// What is real and what is not:
// - Chromium's own pushManager.subscribe() does not work in these browser
//   contexts (playwright's contexts are incognito-like: "Registration failed -
//   permission denied"; there is no push service to register with either).
//   The first test checks that the page shows that as an error and stores
//   nothing. For the rest, an init script replaces only
//   PushManager.prototype.subscribe/getSubscription with a subscription whose
//   endpoint is a push service in this test (node:http on 127.0.0.1, which
//   --dev accepts) and whose keys (P-256, auth secret) the test made with
//   node:crypto. Everything else is real: the page's fetches, the server's
//   validation, storage, delivery to users not in the room, the aes128gcm
//   encryption and the VAPID header (decrypted and checked here, RFC 8291).
// - The decrypted payload is delivered to the page's real service worker as
//   a real push event (CDP ServiceWorker.deliverPushMessage), and the
//   notification it shows is read back with registration.getNotifications().
// - Headless Chromium has no notification UI to click: notificationclick is
//   dispatched in the worker, and since a synthetic event carries no user
//   activation, clients.openWindow and WindowClient.focus are replaced in the
//   worker by recorders for that step.
import { test, before, after } from 'node:test';
import { createServer } from 'node:http';
import { createECDH, createHmac, createDecipheriv, randomBytes, createPublicKey, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { Server, launchBrowser, VIEWPORT, until, shot } from './harness.js';

let server;
let browser;
let push; // the local push service

/* ------------------------------------------------------------ push service */

/** A push service on 127.0.0.1: records every POST /push/ID (headers, body) and answers 201. */
function startPushService() {
  const received = [];
  const srv = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(req.method === 'POST' && req.url.startsWith('/push/') ? 201 : 404).end();
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    received, port: srv.address().port, close: () => new Promise((r) => srv.close(r)),
  })));
}

/** A browser-side subscription's secrets: the P-256 key pair and the auth secret. */
function makeKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { ecdh, auth: randomBytes(16), p256dh: ecdh.getPublicKey().toString('base64url') };
}

const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

/** RFC 8291 decryption (aes128gcm, one record) with node:crypto: the payload as a string. */
function decrypt(body, keys) {
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  const asPublic = body.subarray(21, 21 + idlen);
  const ct = body.subarray(21 + idlen);
  assert.equal(idlen, 65, 'the key id is the sender\'s uncompressed P-256 key');
  assert.ok(ct.length <= rs, 'one record');
  const uaPublic = keys.ecdh.getPublicKey();
  const ecdhSecret = keys.ecdh.computeSecret(asPublic);
  const prkKey = hmac(keys.auth, ecdhSecret);
  const ikm = hmac(prkKey, Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic, Buffer.from([1])]));
  const prk = hmac(salt, ikm);
  const cek = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0\x01')).subarray(0, 16);
  const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0\x01')).subarray(0, 12);
  const d = createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(ct.subarray(ct.length - 16));
  const plain = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
  let end = plain.length;
  while (end > 0 && plain[end - 1] === 0) end--;
  assert.equal(plain[end - 1], 2, 'the last record ends with the 0x02 delimiter');
  return plain.subarray(0, end - 1).toString('utf8');
}

/** Checks "vapid t=JWT, k=KEY": k is the served key, the ES256 signature verifies, aud is the push service. */
function checkVapid(header, publicKey, origin) {
  const m = /^vapid t=([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+), ?k=([A-Za-z0-9_-]+)$/.exec(header || '');
  assert.ok(m, `a VAPID Authorization header: ${header}`);
  assert.equal(m[4], publicKey);
  const raw = Buffer.from(publicKey, 'base64url');
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') }, format: 'jwk' });
  const ok = verify('sha256', Buffer.from(`${m[1]}.${m[2]}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(m[3], 'base64url'));
  assert.ok(ok, 'the VAPID JWT signature verifies with the served public key');
  const claims = JSON.parse(Buffer.from(m[2], 'base64url'));
  assert.equal(claims.aud, origin);
}

/* ------------------------------------------------------------ the page side */

/**
 * The init script replacing the browser's push subscription (and only that):
 * subscribe() records its options and returns a PushSubscription-shaped
 * object for `endpoint` with the test's keys; it lasts in localStorage like a
 * real one lasts with its registration.
 */
function fakePush({ endpoint, p256dh, auth }) {
  const KEY = 'e2e.fakePushSubscription';
  const make = (saved) => ({
    endpoint: saved.endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true, applicationServerKey: new Uint8Array(saved.serverKey).buffer },
    toJSON: () => ({ endpoint: saved.endpoint, expirationTime: null, keys: { p256dh: saved.p256dh, auth: saved.auth } }),
    unsubscribe: async () => { localStorage.removeItem(KEY); window.e2eUnsubscribed = (window.e2eUnsubscribed || 0) + 1; return true; },
  });
  PushManager.prototype.getSubscription = async function getSubscription() {
    const saved = JSON.parse(localStorage.getItem(KEY) || 'null');
    return saved ? make(saved) : null;
  };
  PushManager.prototype.subscribe = async function subscribe(options) {
    if (Notification.permission !== 'granted') throw new DOMException('Registration failed - permission denied', 'NotAllowedError');
    const saved = { endpoint, p256dh, auth, serverKey: Array.from(new Uint8Array(options.applicationServerKey)), userVisibleOnly: options.userVisibleOnly };
    localStorage.setItem(KEY, JSON.stringify(saved));
    return make(saved);
  };
}

async function newContext(granted = true) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  if (granted) await context.grantPermissions(['notifications'], { origin: server.base });
  return context;
}

async function open(context, room) {
  const page = await context.newPage();
  page.on('pageerror', (e) => { page.errors = [...(page.errors || []), String(e)]; });
  await page.goto(`${server.base}/?room=${encodeURIComponent(room)}`);
  await page.waitForFunction(() => window.tandemDemo && window.tandemDemo.ready === true, null, { timeout: 15000 });
  return page;
}

const state = (page) => page.evaluate(() => window.tandemDemo.notifications.state());

/** Waits until the control is idle and in one of `states`; returns its state. */
const settled = (page, states, timeoutMs = 20000) => until(async () => {
  const s = await state(page);
  return !s.busy && states.includes(s.state) ? s : null;
}, `the notifications control in ${states.join('/')}`, timeoutMs);

async function token(page) {
  const { user, name } = await page.evaluate(() => window.tandemDemo.identity);
  return (await server.json(`/api/dev/token?${new URLSearchParams({ user, name })}`)).token;
}

async function serverSubs(page) {
  const r = await fetch(`${server.base}/api/push/subscriptions`, { headers: { Authorization: `Bearer ${await token(page)}` } });
  assert.equal(r.status, 200);
  return (await r.json()).subscriptions;
}

async function sendChat(page, text) {
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
  await until(() => page.evaluate((t) => window.tandemDemo.doc.messages.some((m) => m.text === t && m.id != null), text), `chat "${text}" stored`);
}

/* ------------------------------------------------------------ tests */

before(async () => {
  push = await startPushService();
  server = new Server();
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await push?.close();
});

test('Chromium\'s own pushManager.subscribe: the page reaches the key, shows the failure, stores nothing', async () => {
  const context = await newContext();
  const asked = [];
  context.on('request', (r) => { if (r.url().includes('/api/push/')) asked.push(new URL(r.url()).pathname); });
  const page = await open(context, 'real-push');
  await settled(page, ['off']);
  await page.click('#settings-btn');
  assert.equal(await page.textContent('#notifications-btn'), 'Enable notifications for this room');
  await page.click('#notifications-btn');
  const s = await settled(page, ['error', 'on']);
  if (s.state === 'on') {
    // a Chromium with a working push service: then the server has it
    assert.equal((await serverSubs(page)).length, 1);
  } else {
    assert.match(await page.textContent('#notifications-note'), /^Notifications: .+/);
    assert.deepEqual(await serverSubs(page), [], 'nothing stored');
  }
  assert.ok(asked.includes('/api/push/public-key'), `the page asked for the server's key: ${asked}`);
  assert.equal(await page.isEnabled('#notifications-btn'), true, 'it can be tried again');
  await shot(page, 'push-real-subscribe');
  assert.deepEqual(page.errors ?? [], []);
  await context.close();
});

test('opt-in, delivery to a user not in the room, the service worker\'s notification and click, opt-out', async () => {
  const keys = makeKeys();
  const endpoint = `http://127.0.0.1:${push.port}/push/alice`;
  const { public_key: serverKey } = await server.json('/api/push/public-key');
  const a = await newContext();
  await a.addInitScript(fakePush, { endpoint, p256dh: keys.p256dh, auth: keys.auth.toString('base64url') });

  // A enables notifications in room "news", then in "desk" as well
  let page = await open(a, 'news');
  await until(() => page.evaluate(() => !!navigator.serviceWorker.controller), 'the service worker controlling the page');
  await settled(page, ['off']);
  await page.click('#settings-btn');
  await page.click('#notifications-btn');
  await settled(page, ['on']);
  assert.match(await page.textContent('#notifications-note'), /on for this room/);
  assert.equal(await page.textContent('#notifications-btn'), 'Stop for this room');
  assert.equal(await page.isVisible('#notifications-off'), true);
  await shot(page, 'push-enabled');
  const used = await page.evaluate(() => JSON.parse(localStorage.getItem('e2e.fakePushSubscription')));
  assert.deepEqual(Buffer.from(used.serverKey).toString('base64url'), serverKey, 'subscribed with the server\'s VAPID key');
  assert.equal(used.userVisibleOnly, true);
  let subs = await serverSubs(page);
  assert.equal(subs.length, 1);
  assert.equal(subs[0].endpoint, endpoint);
  assert.deepEqual(subs[0].rooms, ['news']);

  await page.goto(`${server.base}/?room=desk`);
  await page.waitForFunction(() => window.tandemDemo?.ready === true);
  const other = await settled(page, ['other']);
  assert.deepEqual(other.rooms, ['news']);
  assert.match(await page.textContent('#notifications-note'), /on for “news”, not for this room/);
  await page.click('#settings-btn');
  await page.click('#notifications-btn');
  await settled(page, ['on']);
  subs = await serverSubs(page);
  assert.equal(subs.length, 1, 'the same subscription, one more room');
  assert.deepEqual([...subs[0].rooms].sort(), ['desk', 'news']);
  await page.keyboard.press('Escape');

  // B chats in "desk" (A is there: no push) and then in "news" (A is not: a push)
  const aName = await page.evaluate(() => window.tandemDemo.identity.name);
  const b = await newContext(false);
  const bDesk = await open(b, 'desk');
  await until(() => bDesk.evaluate(() => window.tandemDemo.doc.synced), 'B synced in desk');
  await sendChat(bDesk, 'A is here, no push for this');
  const bNews = await open(b, 'news');
  await until(() => bNews.evaluate(() => window.tandemDemo.doc.synced), 'B synced in news');
  await sendChat(bNews, `hello @${aName}, the news`);
  const req = await until(() => push.received[0], 'a push request at the push service', 20000);
  assert.equal(req.path, '/push/alice');
  assert.equal(req.headers['content-encoding'], 'aes128gcm');
  checkVapid(req.headers.authorization, serverKey, `http://127.0.0.1:${push.port}`);
  const payload = JSON.parse(decrypt(req.body, keys));
  const bName = await bNews.evaluate(() => window.tandemDemo.identity.name);
  assert.equal(payload.room, 'news', 'the first push is for "news": nothing for "desk", where A was connected');
  assert.equal(payload.url, '/?room=news');
  assert.equal(payload.body, `hello @${aName}, the news`);
  assert.equal(payload.title, `${bName} mentioned you in news`);
  assert.equal(payload.mention, true);

  // the payload through A's real service worker, as a push event
  const cdp = await a.newCDPSession(page);
  const regs = [];
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => regs.push(...e.registrations));
  await cdp.send('ServiceWorker.enable');
  const reg = await until(() => regs.find((r) => !r.isDeleted && r.scopeURL === `${server.base}/`), 'the service worker registration');
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.base, registrationId: reg.registrationId, data: JSON.stringify(payload) });
  const shown = await until(() => page.evaluate(async () => {
    const r = await navigator.serviceWorker.getRegistration('/');
    const l = await r.getNotifications();
    return l.length ? l.map((n) => ({ title: n.title, body: n.body, tag: n.tag, icon: n.icon, data: n.data })) : null;
  }), 'the notification shown');
  assert.equal(shown.length, 1);
  assert.equal(shown[0].title, payload.title);
  assert.equal(shown[0].body, payload.body);
  assert.equal(shown[0].tag, 'room:news');
  assert.equal(shown[0].data.url, '/?room=news');
  assert.match(shown[0].icon, /\/favicon\.svg$/);
  // a second message for the room replaces it (same tag); another room gets its own
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.base, registrationId: reg.registrationId, data: JSON.stringify({ ...payload, body: 'second' }) });
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.base, registrationId: reg.registrationId, data: JSON.stringify({ title: 'x in desk', body: 'in desk', url: '/?room=desk', room: 'desk' }) });
  const tags = await until(() => page.evaluate(async () => {
    const l = await (await navigator.serviceWorker.getRegistration('/')).getNotifications();
    return l.length === 2 ? l.map((n) => `${n.tag}=${n.body}`).sort() : null;
  }), 'two notifications, one per room');
  assert.deepEqual(tags, ['room:desk=in desk', 'room:news=second']);

  // notificationclick: "desk" is open in A's tab (focus it), "news" is not (open it)
  const [sw] = a.serviceWorkers();
  assert.ok(sw, 'the service worker');
  const clicks = await sw.evaluate(async () => {
    const calls = [];
    const realOpen = self.clients.openWindow;
    const realFocus = WindowClient.prototype.focus;
    self.clients.openWindow = async (url) => { calls.push(`open ${url}`); return null; };
    WindowClient.prototype.focus = async function focus() { calls.push(`focus ${this.url}`); return this; };
    try {
      const out = [];
      for (const tag of ['room:desk', 'room:news']) {
        const [n] = await self.registration.getNotifications({ tag });
        const ev = new NotificationEvent('notificationclick', { notification: n });
        let done = null;
        ev.waitUntil = (p) => { done = p; };
        self.dispatchEvent(ev);
        out.push(await done);
      }
      return { calls, out, left: (await self.registration.getNotifications()).length };
    } finally {
      self.clients.openWindow = realOpen;
      WindowClient.prototype.focus = realFocus;
    }
  });
  assert.deepEqual(clicks.calls, [`focus ${server.base}/?room=desk`, `open ${server.base}/?room=news`]);
  assert.deepEqual(clicks.out.map((o) => o.action), ['focus', 'open']);
  assert.equal(clicks.left, 0, 'a clicked notification is closed');

  // stop for "desk": "news" remains; turn off: the server forgets it, the browser unsubscribes
  await page.click('#settings-btn');
  assert.equal(await page.textContent('#notifications-btn'), 'Stop for this room');
  await page.click('#notifications-btn');
  await settled(page, ['other']);
  assert.deepEqual((await serverSubs(page))[0].rooms, ['news']);
  await page.click('#notifications-off');
  await settled(page, ['off']);
  assert.deepEqual(await serverSubs(page), []);
  assert.equal(await page.evaluate(() => window.e2eUnsubscribed), 1, 'the browser subscription was unsubscribed');
  assert.equal(await page.isVisible('#notifications-off'), false);
  await shot(page, 'push-off');
  assert.deepEqual(page.errors ?? [], []);
  assert.deepEqual(bNews.errors ?? [], []);
  await a.close();
  await b.close();
});

test('a browser whose push service never answers: an error after 20 s, nothing stored', async () => {
  const context = await newContext();
  // what a Chromium that cannot reach its push service does (a persistent
  // profile here waits for Google's service forever)
  await context.addInitScript(() => { PushManager.prototype.subscribe = () => new Promise(() => {}); });
  const page = await open(context, 'hanging');
  await settled(page, ['off']);
  await page.click('#settings-btn');
  await page.click('#notifications-btn');
  assert.equal((await state(page)).state, 'busy');
  await settled(page, ['error'], 30000);
  assert.match(await page.textContent('#notifications-note'), /push service did not answer in 20 s/);
  assert.equal(await page.isEnabled('#notifications-btn'), true);
  assert.deepEqual(await serverSubs(page), []);
  await context.close();
});

test('permission refused: the control says blocked and subscribes nothing', async () => {
  const context = await newContext(false);
  await context.addInitScript(() => {
    // what a browser answers after the person chose "Block"
    Object.defineProperty(Notification, 'permission', { get: () => 'denied' });
    Notification.requestPermission = async () => 'denied';
  });
  const page = await open(context, 'blocked');
  await settled(page, ['blocked']);
  assert.match(await page.textContent('#notifications-note'), /blocked/);
  assert.equal(await page.isDisabled('#notifications-btn'), true);
  assert.deepEqual(await serverSubs(page), []);
  await context.close();
});

test('a server without push (no VAPID key): 503 becomes a clear message, the button stays off', async () => {
  const prod = new Server({ dev: false });
  const secret = join(prod.dataDir, 'jwt.secret');
  writeFileSync(secret, 'x'.repeat(48));
  prod.args = ['--secret-file', secret];
  await prod.start();
  try {
    assert.equal((await fetch(`${prod.base}/api/push/public-key`)).status, 503);
    const context = await browser.newContext({ viewport: VIEWPORT });
    await context.grantPermissions(['notifications'], { origin: prod.base });
    const page = await context.newPage();
    await page.goto(`${prod.base}/?room=nopush`);
    await page.waitForFunction(() => window.tandemDemo?.ready === true);
    await settled(page, ['unavailable']);
    assert.match(await page.textContent('#notifications-note'), /push is not configured on it/);
    assert.equal(await page.isDisabled('#notifications-btn'), true);
    await context.close();
  } finally {
    await prod.close();
  }
});
