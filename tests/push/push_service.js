#!/usr/bin/env node
// push_service.js - a Web Push service on 127.0.0.1 for tests/test_push.c.
//
// It plays the browser and the push service at once, with implementations
// independent of the server's: node:crypto makes each subscription's P-256
// key pair and auth secret, verifies the VAPID token (RFC 8292: ES256 with
// dsaEncoding 'ieee-p1363', aud = this origin, exp in the future and at most
// 24 h away, sub mailto:/https:, k = the public key the server serves), and
// npm http_ece decrypts the aes128gcm body (RFC 8291). Answers are scripted
// per subscription: 201 by default, or the next status of its script (410,
// 429 with Retry-After, 500, ...).
//
// Control (JSON over HTTP on the same port):
//   POST /control/config    {"vapid_public_key": "..."}  what k must be
//   POST /control/sub       {"id": "a"} -> a PushSubscription JSON for
//                           endpoint http://127.0.0.1:PORT/push/a
//   POST /control/script    {"id": "a", "statuses": [429, 500], "retry_after": 1}
//                           ("retry_after_date": S instead: Retry-After as an
//                           HTTP-date S seconds from now, e.g.
//                           "Sat, 28 Nov 2026 03:00:02 GMT")
//   GET  /control/log       every push received, in order
// Push endpoint:
//   POST /push/ID           checked, decrypted, logged, answered
//
// Usage: node push_service.js   (prints {"port": N} on stdout, then serves
// until stdin closes or SIGTERM).
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const ece = require('http_ece');

const subs = new Map(); // id -> {ecdh, auth, script: [], retryAfter, retryAfterDate}
const log = [];
let vapidKey = null;
let port = 0;

function b64u(buf) {
  return Buffer.from(buf).toString('base64url');
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > 1 << 20) reject(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// The VAPID header: "vapid t=JWT, k=KEY". Returns {ok, error, claims}.
function checkVapid(header) {
  if (!header) return { ok: false, error: 'no Authorization header' };
  const m = /^vapid t=([A-Za-z0-9_.-]+),\s*k=([A-Za-z0-9_-]+)$/.exec(header);
  if (!m) return { ok: false, error: 'Authorization is not "vapid t=..., k=...": ' + header };
  const [, jwt, k] = m;
  if (vapidKey && k !== vapidKey) return { ok: false, error: 'k is not the served public key' };
  const parts = jwt.split('.');
  if (parts.length !== 3) return { ok: false, error: 'JWT has no three parts' };
  let hdr, claims;
  try {
    hdr = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  } catch (e) {
    return { ok: false, error: 'JWT parts are not JSON' };
  }
  if (hdr.alg !== 'ES256') return { ok: false, error: 'alg is ' + hdr.alg };
  const sig = Buffer.from(parts[2], 'base64url');
  if (sig.length !== 64) return { ok: false, error: 'signature is ' + sig.length + ' bytes, not 64' };
  const raw = Buffer.from(k, 'base64url');
  if (raw.length !== 65 || raw[0] !== 4) return { ok: false, error: 'k is not an uncompressed point' };
  const jwk = { kty: 'EC', crv: 'P-256', x: b64u(raw.subarray(1, 33)), y: b64u(raw.subarray(33)) };
  const pub = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const good = crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]),
                             { key: pub, dsaEncoding: 'ieee-p1363' }, sig);
  if (!good) return { ok: false, error: 'ES256 signature does not verify' };
  const now = Math.floor(Date.now() / 1000);
  if (claims.aud !== 'http://127.0.0.1:' + port) return { ok: false, error: 'aud is ' + claims.aud };
  if (typeof claims.exp !== 'number' || claims.exp <= now || claims.exp > now + 86400)
    return { ok: false, error: 'exp is not within 24 h: ' + claims.exp };
  if (typeof claims.sub !== 'string' || !/^(mailto:|https:)/.test(claims.sub))
    return { ok: false, error: 'sub is ' + claims.sub };
  return { ok: true, claims };
}

async function onPush(req, res, id) {
  const body = await readBody(req);
  const sub = subs.get(id);
  const entry = {
    id, at_ms: Date.now(), status: 0, vapid_ok: false, vapid_error: null, payload: null,
    decrypt_error: null, ttl: req.headers['ttl'] || null, urgency: req.headers['urgency'] || null,
    topic: req.headers['topic'] || null, encoding: req.headers['content-encoding'] || null,
  };
  const v = checkVapid(req.headers['authorization']);
  entry.vapid_ok = v.ok;
  entry.vapid_error = v.error || null;
  if (sub) {
    try {
      const plain = ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh,
                                        authSecret: sub.auth });
      entry.payload = JSON.parse(plain.toString('utf8'));
    } catch (e) {
      entry.decrypt_error = String(e && e.message);
    }
  }
  let status = 201;
  const extra = {};
  if (!sub) status = 404;
  else if (!v.ok || entry.decrypt_error || entry.encoding !== 'aes128gcm') status = 400;
  else if (sub.script.length) status = sub.script.shift();
  if (status === 429 && sub && sub.retryAfter !== undefined) extra['Retry-After'] = String(sub.retryAfter);
  if (status === 429 && sub && sub.retryAfterDate !== undefined)
    extra['Retry-After'] = new Date(Date.now() + sub.retryAfterDate * 1000).toUTCString();
  if (extra['Retry-After']) entry.retry_after = extra['Retry-After'];
  entry.status = status;
  log.push(entry);
  res.writeHead(status, extra);
  res.end();
}

async function onControl(req, res, path) {
  const send = (code, obj) => {
    const b = Buffer.from(JSON.stringify(obj));
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': b.length });
    res.end(b);
  };
  if (req.method === 'GET' && path === '/control/log') return send(200, { pushes: log });
  const body = JSON.parse((await readBody(req)).toString() || '{}');
  if (path === '/control/config') {
    vapidKey = body.vapid_public_key;
    return send(200, { ok: true });
  }
  if (path === '/control/sub') {
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const auth = crypto.randomBytes(16);
    subs.set(body.id, { ecdh, auth, script: [], retryAfter: undefined });
    return send(200, {
      endpoint: 'http://127.0.0.1:' + port + '/push/' + body.id,
      expirationTime: null,
      keys: { p256dh: b64u(ecdh.getPublicKey()), auth: b64u(auth) },
    });
  }
  if (path === '/control/script') {
    const sub = subs.get(body.id);
    if (!sub) return send(404, { error: 'no such subscription' });
    sub.script = body.statuses || [];
    sub.retryAfter = body.retry_after;
    sub.retryAfterDate = body.retry_after_date;
    return send(200, { ok: true });
  }
  return send(404, { error: 'unknown control path' });
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  const done = (p) => p.catch((e) => {
    res.writeHead(500);
    res.end(String(e && e.message));
  });
  if (req.method === 'POST' && path.startsWith('/push/')) return done(onPush(req, res, path.slice(6)));
  if (path.startsWith('/control/')) return done(onControl(req, res, path));
  res.writeHead(404);
  res.end();
});

server.listen(0, '127.0.0.1', () => {
  port = server.address().port;
  process.stdout.write(JSON.stringify({ port }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
