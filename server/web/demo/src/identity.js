// identity.js - who this tab is: a user id, a friendly display name and a
// colour. Each tab gets its own identity, remembered in localStorage under
// the tab's id (tabs.js: kept in sessionStorage, so a reload keeps the name
// and a second tab is a second person).
const ADJ = ['Amber', 'Brisk', 'Calm', 'Dapper', 'Eager', 'Fuzzy', 'Gentle', 'Happy', 'Jolly', 'Keen',
  'Lucky', 'Mellow', 'Nimble', 'Plucky', 'Quiet', 'Rapid', 'Sunny', 'Tidy', 'Vivid', 'Witty', 'Zesty'];
const ANIMAL = ['Otter', 'Falcon', 'Panda', 'Lynx', 'Heron', 'Koala', 'Badger', 'Marten', 'Ibex', 'Gecko',
  'Puffin', 'Walrus', 'Bison', 'Fox', 'Orca', 'Yak', 'Crane', 'Lemur', 'Newt', 'Tapir'];
export const COLORS = ['#ef4444', '#f97316', '#eab308', '#22c55e', '#14b8a6', '#06b6d4', '#3b82f6',
  '#6366f1', '#a855f7', '#ec4899'];

const pick = (a) => a[Math.floor(Math.random() * a.length)];

function randomHex(bytes) {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function safeGet(store, key) {
  try { return store.getItem(key); } catch { return null; }
}
function safeSet(store, key, value) {
  try { store.setItem(key, value); } catch { /* private mode: identity lasts for this page only */ }
}

/** The identity {user, name, color} of tab `tab` (tabs.js), created on first use. */
export function loadIdentity(tab) {
  const key = `tandem.demo.identity.${tab}`;
  try {
    const saved = JSON.parse(safeGet(localStorage, key) || 'null');
    if (saved && typeof saved.user === 'string' && typeof saved.name === 'string' && typeof saved.color === 'string')
      return { ...saved, key };
  } catch { /* corrupt: make a new one */ }
  const id = { user: `u-${randomHex(6)}`, name: `${pick(ADJ)} ${pick(ANIMAL)}`, color: pick(COLORS) };
  safeSet(localStorage, key, JSON.stringify(id));
  return { ...id, key };
}

export function saveIdentity(id) {
  safeSet(localStorage, id.key, JSON.stringify({ user: id.user, name: id.name, color: id.color }));
}

/** Up to two initials of a display name ("Sunny Otter" -> "SO"). */
export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = parts.slice(0, 2).map((p) => Array.from(p)[0].toUpperCase());
  return letters.join('') || '?';
}

/** A stable colour for a user id that did not announce one. */
export function colorFor(user) {
  let h = 0;
  for (const ch of String(user)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return COLORS[h % COLORS.length];
}

export function avatar(name, color) {
  const el = document.createElement('span');
  el.className = 'avatar';
  el.style.background = color;
  el.textContent = initials(name);
  el.title = name;
  return el;
}
