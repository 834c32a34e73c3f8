// sw.js - keeps the demo page loadable while the server is unreachable, so
// a reload during an outage still shows the editor and the unsent edits the
// client library kept in localStorage are sent when the server is back.
// Network first; the cache is only the fallback. The API, the WebSocket and
// the SSE stream are never touched.
const CACHE = 'tandem-demo-v1';

async function precache() {
  const cache = await caches.open(CACHE);
  const res = await fetch('/', { cache: 'no-store' });
  if (!res.ok) return;
  const html = await res.clone().text();
  await cache.put('/', res);
  const assets = new Set(['/favicon.svg']);
  for (const m of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) assets.add(m[1]);
  await Promise.all([...assets].map(async (a) => {
    const r = await fetch(a, { cache: 'no-store' });
    if (r.ok) await cache.put(a, r);
  }));
}

self.addEventListener('install', (e) => {
  e.waitUntil(precache().catch(() => {}).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/api/') || url.pathname === '/healthz' || url.pathname === '/metrics' || url.pathname === '/ws') return;
  const key = req.mode === 'navigate' ? '/' : url.pathname;
  e.respondWith((async () => {
    try {
      const res = await fetch(req);
      if (res.ok) {
        const copy = res.clone();
        caches.open(CACHE).then((c) => c.put(key, copy)).catch(() => {});
      }
      return res;
    } catch (err) {
      const hit = await caches.match(key);
      if (hit) return hit;
      throw err;
    }
  })());
});
