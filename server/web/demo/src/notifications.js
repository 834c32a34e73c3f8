// notifications.js - the opt-in for Web Push notifications of chat messages
// (docs/PUSH.md), in the settings dialog. One browser push subscription (per
// service worker registration, so shared by the tabs of this browser) is
// registered with the server for this tab's user, with the rooms it follows:
//
//   GET  /api/push/public-key      the server's VAPID key (503: push is off)
//   pushManager.subscribe({userVisibleOnly: true, applicationServerKey})
//   POST /api/push/subscribe       {...subscription.toJSON(), rooms: [...]}
//   GET  /api/push/subscriptions   which rooms this endpoint follows
//   POST /api/push/unsubscribe     {endpoint}, with subscription.unsubscribe()
//
// "Enable for this room" adds the room to the rooms the subscription follows
// (subscribing first when there is none), "Stop for this room" removes it
// (the last room removed unsubscribes entirely), "Turn off" unsubscribes the
// browser subscription and the server's record. The server calls are made
// with the tab's token (auth.js). public/sw.js shows what arrives.
//
// State shown in #notifications (data-state): 'unsupported' (no service
// worker / Push API / Notification, or not a secure context), 'unavailable'
// (the server answers 503: no VAPID key), 'blocked' (permission denied),
// 'off', 'on' (this room followed), 'other' (other rooms followed, not this
// one), 'busy', 'error' (with the message). Everything runs on the page's
// main thread.

const MAX_ROOMS = 64; // the server's limit per subscription (docs/PUSH.md)
const SW_READY_MS = 10000;
// pushManager.subscribe() asks the browser's push service (FCM, autopush, ...)
// and never settles when that cannot be reached (a Chromium without Google's
// services, no network): give up after this long with a message.
const SUBSCRIBE_MS = 20000;

/** base64url (unpadded) -> Uint8Array; throws on anything else. */
export function b64uDecode(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*={0,2}$/.test(s)) throw new Error('not base64url');
  const b64 = s.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const sameBytes = (a, b) => a && b && a.byteLength === b.byteLength
  && new Uint8Array(a).every((x, i) => x === new Uint8Array(b)[i]);

/** An Error carrying the HTTP status and the server's error code. */
class PushApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const UNAVAILABLE = 'This server does not send notifications: push is not configured on it '
  + '(no VAPID key; an operator makes one with `tandem vapid-keys`, docs/PUSH.md).';

/**
 * Wires the notifications section of the settings dialog.
 * @param {{room: string, getToken: () => Promise<string>, toast?: (s: string) => void}} o
 *   room: this page's room; getToken: the tab's token source (auth.js).
 * @returns {{refresh: () => Promise<void>, state: () => object}} the control (also for the e2e tests)
 */
export function initNotifications({ room, getToken, toast = () => {} }) {
  const $ = (id) => document.getElementById(id);
  const section = $('notifications');
  const note = $('notifications-note');
  const btn = $('notifications-btn');
  const off = $('notifications-off');
  let st = { state: 'busy', rooms: [], message: '' };
  let busy = false;

  function render(next) {
    st = { ...st, ...next };
    section.dataset.state = st.state;
    const others = st.rooms.filter((r) => r !== room);
    const list = (a) => a.map((r) => `“${r}”`).join(', ');
    note.textContent = {
      unsupported: 'This browser cannot receive push notifications here (it needs a service worker, the Push API and a secure context: https or localhost).',
      unavailable: UNAVAILABLE,
      blocked: 'Notifications are blocked for this site: allow them in the browser\'s site settings, then try again.',
      off: others.length ? `Notifications are on for ${list(others)}, not for this room.` : 'Get a notification for chat messages in this room while you are not here.',
      other: `Notifications are on for ${list(others)}, not for this room.`,
      on: `Notifications are on for this room${others.length ? ` and ${list(others)}` : ''}: chat messages while you are not in the room arrive as notifications.`,
      busy: 'Checking notifications…',
      error: `Notifications: ${st.message}`,
    }[st.state] ?? '';
    const following = st.rooms.includes(room);
    btn.textContent = following ? 'Stop for this room' : 'Enable notifications for this room';
    btn.disabled = busy || ['unsupported', 'unavailable', 'blocked', 'busy'].includes(st.state);
    off.hidden = st.rooms.length === 0;
    off.disabled = busy;
  }

  const supported = () => window.isSecureContext && 'serviceWorker' in navigator
    && 'PushManager' in window && 'Notification' in window;

  async function api(method, path, body) {
    const headers = {};
    const token = await getToken().catch(() => '');
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new PushApiError(0, 'network', `the server cannot be reached (${e.message})`);
    }
    let j = null;
    try { j = await r.json(); } catch { /* not JSON */ }
    if (r.status === 503) throw new PushApiError(503, j?.error ?? 'push_disabled', UNAVAILABLE);
    if (!r.ok) throw new PushApiError(r.status, j?.error ?? 'http', `${method} ${path}: ${j?.message ?? `HTTP ${r.status}`}`);
    return j;
  }

  /** p, or a rejection with `message` after ms. */
  async function within(p, ms, message) {
    let timer;
    const late = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(message)), ms); });
    try {
      return await Promise.race([p, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The service worker registration (registering public/sw.js when the page has none). */
  async function registration() {
    let reg = await navigator.serviceWorker.getRegistration('/');
    if (!reg) reg = await navigator.serviceWorker.register('/sw.js');
    if (reg.active) return reg;
    return within(navigator.serviceWorker.ready, SW_READY_MS, 'the service worker did not start');
  }

  /** The server's key as bytes (throws PushApiError 503 when push is off). */
  async function publicKey() {
    const j = await api('GET', '/api/push/public-key');
    const key = b64uDecode(j?.public_key ?? '');
    if (key.length !== 65 || key[0] !== 4) throw new Error('the server\'s public key is not a P-256 point');
    return key;
  }

  /** The rooms the server has for this endpoint and this user ([] when none). */
  async function serverRooms(endpoint) {
    const j = await api('GET', '/api/push/subscriptions');
    const s = (j?.subscriptions ?? []).find((x) => x.endpoint === endpoint);
    return s && Array.isArray(s.rooms) ? s.rooms.map(String) : [];
  }

  function fail(e) {
    if (e instanceof PushApiError && e.status === 503) return render({ state: 'unavailable', rooms: [] });
    if (window.Notification && Notification.permission === 'denied') return render({ state: 'blocked' });
    console.warn('tandem notifications:', e);
    render({ state: 'error', message: e && e.message ? e.message : String(e) });
  }

  async function refresh() {
    if (busy) return;
    if (!supported()) return render({ state: 'unsupported', rooms: [] });
    busy = true;
    render({}); // the buttons wait until the state is known
    try {
      await publicKey(); // 503 -> unavailable
      if (Notification.permission === 'denied') return render({ state: 'blocked', rooms: [] });
      const reg = await navigator.serviceWorker.getRegistration('/');
      const sub = reg ? await reg.pushManager.getSubscription() : null;
      const rooms = sub ? await serverRooms(sub.endpoint) : [];
      render({ state: rooms.includes(room) ? 'on' : rooms.length ? 'other' : 'off', rooms });
    } catch (e) {
      fail(e);
    } finally {
      busy = false;
      render({});
    }
  }

  async function post(sub, rooms) {
    const j = await api('POST', '/api/push/subscribe', { ...sub.toJSON(), rooms });
    if (!j || j.subscribed !== true) throw new Error('the server did not confirm the subscription');
  }

  async function enable() {
    const perm = await Notification.requestPermission();
    if (perm === 'denied') return render({ state: 'blocked' });
    if (perm !== 'granted') return render({ state: 'error', message: 'permission was not given (the browser\'s prompt was dismissed)' });
    const key = await publicKey();
    const reg = await registration();
    let sub = await reg.pushManager.getSubscription();
    // a subscription made for another key (the server's key was replaced) is useless: start over
    if (sub && sub.options && sub.options.applicationServerKey && !sameBytes(sub.options.applicationServerKey, key)) {
      await sub.unsubscribe().catch(() => {});
      sub = null;
    }
    let rooms = [];
    if (sub) rooms = await serverRooms(sub.endpoint);
    else {
      sub = await within(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), SUBSCRIBE_MS,
        `the browser's push service did not answer in ${SUBSCRIBE_MS / 1000} s (is this browser able to receive push messages?)`);
    }
    if (!rooms.includes(room)) rooms = [...rooms, room];
    if (rooms.length > MAX_ROOMS) throw new Error(`at most ${MAX_ROOMS} rooms per browser; stop one first`);
    await post(sub, rooms);
    render({ state: 'on', rooms });
    toast('Notifications enabled for this room');
  }

  async function disableAll() {
    const reg = await navigator.serviceWorker.getRegistration('/');
    const sub = reg ? await reg.pushManager.getSubscription() : null;
    if (sub) {
      try {
        await api('POST', '/api/push/unsubscribe', { endpoint: sub.endpoint });
      } catch (e) {
        if (!(e instanceof PushApiError && e.status === 404)) throw e; // 404: the server had none for us
      }
      await sub.unsubscribe();
    }
    render({ state: 'off', rooms: [] });
    toast('Notifications turned off');
  }

  async function stopRoom() {
    const rest = st.rooms.filter((r) => r !== room);
    if (rest.length === 0) return disableAll();
    const reg = await navigator.serviceWorker.getRegistration('/');
    const sub = reg ? await reg.pushManager.getSubscription() : null;
    if (!sub) return render({ state: 'off', rooms: [] });
    await post(sub, rest);
    render({ state: 'other', rooms: rest });
  }

  const run = (fn) => async () => {
    if (busy) return;
    busy = true;
    render({ state: 'busy' });
    try {
      await fn();
    } catch (e) {
      fail(e);
    } finally {
      busy = false;
      render({});
    }
  };
  btn.addEventListener('click', run(() => (st.rooms.includes(room) ? stopRoom() : enable())));
  off.addEventListener('click', run(disableAll));
  $('settings-btn')?.addEventListener('click', () => { refresh(); });
  render({});
  refresh();
  return { refresh, state: () => ({ ...st, busy }) };
}
