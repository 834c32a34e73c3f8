// sw.js - keeps the demo page loadable while the server is unreachable, so
// a reload during an outage still shows the editor and the unsent edits the
// client library kept in localStorage are sent when the server is back.
// Network first; the cache is only the fallback. The API, the WebSocket and
// the SSE stream are never touched.
const CACHE = 'tandem-demo-v1';

const assetsOf = (html) => new Set(['/favicon.svg', ...Array.from(html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g), (m) => m[1])]);

async function precache() {
  const cache = await caches.open(CACHE);
  const res = await fetch('/', { cache: 'no-store' });
  if (!res.ok) return;
  const html = await res.clone().text();
  await cache.put('/', res);
  await Promise.all([...assetsOf(html)].map(async (a) => {
    const r = await fetch(a, { cache: 'no-store' });
    if (r.ok) await cache.put(a, r);
  }));
}

// The cache holds one build: when a fresh page arrives, hashed assets it does
// not reference (an older build's) are dropped.
async function prune(html) {
  const keep = assetsOf(html);
  const cache = await caches.open(CACHE);
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname;
    if (path.startsWith('/assets/') && !keep.has(path)) await cache.delete(req);
  }
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
        if (key === '/') res.clone().text().then(prune).catch(() => {});
      }
      return res;
    } catch (err) {
      const hit = await caches.match(key);
      if (hit) return hit;
      throw err;
    }
  })());
});
