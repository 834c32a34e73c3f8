// sw.js - keeps the demo page loadable while the server is unreachable, so
// a reload during an outage still shows the editor and the unsent edits the
// client library kept in localStorage are sent when the server is back.
// Network first; the cache is only the fallback. The API, the WebSocket and
// the SSE stream are never touched.
// It also shows the server's Web Push notifications (docs/PUSH.md: payload
// {title, body, url, room, ...}; the opt-in is src/notifications.js) and
// opens the room when one is clicked.
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

/* ------------------------------------------------------------ Web Push */

const sameOriginPath = (u) => {
  try {
    const url = new URL(String(u), self.location.origin);
    return url.origin === self.location.origin ? url.pathname + url.search : '/';
  } catch {
    return '/';
  }
};

/** The notification for a push payload (a JSON object; anything else gets a generic text). */
function notificationOf(data) {
  let p = null;
  try { p = data ? data.json() : null; } catch { /* not JSON */ }
  if (!p || typeof p !== 'object') p = { body: data ? String(data.text()).slice(0, 240) : '' };
  const room = typeof p.room === 'string' ? p.room : null;
  const url = sameOriginPath(typeof p.url === 'string' ? p.url : room !== null ? `/?room=${encodeURIComponent(room)}` : '/');
  return {
    title: typeof p.title === 'string' && p.title ? p.title.slice(0, 200) : 'tandem',
    options: {
      body: typeof p.body === 'string' ? p.body : '',
      icon: typeof p.icon === 'string' ? p.icon : '/favicon.svg',
      // one notification per room: a newer message replaces the older one (renotify: it alerts again)
      tag: `room:${room ?? url}`,
      renotify: true,
      data: { url, room, chat_id: p.chat_id ?? null, mention: p.mention === true },
    },
  };
}

/** Shows the notification of one push message (also called by the e2e tests). */
async function showPush(data) {
  const n = notificationOf(data);
  await self.registration.showNotification(n.title, n.options);
  return n;
}

self.addEventListener('push', (e) => {
  e.waitUntil(showPush(e.data));
});

/**
 * A click: focuses a tab already open on the notification's room, else opens
 * one. Returns what it did ({action: 'focus'|'open', url}).
 */
async function openRoom(notification) {
  notification.close();
  const path = sameOriginPath(notification.data && notification.data.url);
  const target = new URL(path, self.location.origin).href;
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const same = (c) => {
    const u = new URL(c.url);
    return u.origin === self.location.origin && u.pathname + u.search === path;
  };
  const open = wins.find(same);
  if (open) {
    await open.focus();
    return { action: 'focus', url: target };
  }
  await self.clients.openWindow(target);
  return { action: 'open', url: target };
}

self.addEventListener('notificationclick', (e) => {
  e.waitUntil(openRoom(e.notification));
});
