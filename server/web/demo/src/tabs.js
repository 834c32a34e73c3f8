// tabs.js - one browser tab, one set of unsent edits.
//
// @tandem/client keeps a document's unsent edits under one storage key per
// server URL and room. Two tabs of the same browser share localStorage, so a
// tab opened while another still holds unsent edits (both offline, say) would
// restore that tab's edits as its own and both would send them: the text
// would appear twice. So each tab gets its own namespace, keyed by a tab id
// that lives in sessionStorage (a reload keeps it) and is held as a Web Lock
// while the tab is open (a duplicated tab, which copies sessionStorage, sees
// the lock taken and takes a new id). The edits of a tab that was closed
// before it could send them are adopted by the next tab that starts: its lock
// is free, so nobody else can send them.

const TAB_KEY = 'tandem.demo.tab';
const DATA = 'tandem.demo.tabdata.';

function randomId() {
  const b = new Uint8Array(6);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const lockName = (tab) => `tandem-demo-tab-${tab}`;

/** Holds the tab's lock until the page goes away; false when another tab has it. */
function hold(tab) {
  if (!navigator.locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks.request(lockName(tab), { ifAvailable: true }, (lock) => {
      resolve(!!lock);
      return lock ? new Promise(() => {}) : undefined;
    }).catch(() => resolve(true));
  });
}

/** Is the tab with this id open (holding its lock)? Unknown (no Web Locks): assume it is. */
function isAlive(tab) {
  if (!navigator.locks) return Promise.resolve(true);
  return navigator.locks.request(lockName(tab), { ifAvailable: true }, (lock) => !lock).catch(() => true);
}

/** This tab's id: the one from sessionStorage when no other open tab holds it, else a new one. */
export async function claimTab() {
  let tab = null;
  try { tab = sessionStorage.getItem(TAB_KEY); } catch { /* no sessionStorage */ }
  if (tab && !(await hold(tab))) tab = null;
  if (!tab) {
    tab = randomId();
    await hold(tab);
  }
  try { sessionStorage.setItem(TAB_KEY, tab); } catch { /* lasts for this page */ }
  return tab;
}

/**
 * The storage adapter (localStorage shape) for the client library: the
 * library's keys prefixed with this tab's namespace. First adopts the unsent
 * edits of closed tabs for keys this tab has none for.
 */
export async function tabStorage(tab) {
  let ls;
  try { ls = window.localStorage; ls.getItem(TAB_KEY); } catch { return undefined; } // the library falls back to memory
  const mine = `${DATA}${tab}|`;
  const others = [];
  for (let i = 0; i < ls.length; i++) {
    const k = ls.key(i);
    if (k && k.startsWith(DATA) && !k.startsWith(mine)) others.push(k);
  }
  for (const k of others) {
    const bar = k.indexOf('|');
    if (bar < 0) continue;
    const owner = k.slice(DATA.length, bar);
    const inner = k.slice(bar + 1);
    if (await isAlive(owner)) continue;
    const v = ls.getItem(k);
    if (v !== null && ls.getItem(mine + inner) === null) {
      ls.setItem(mine + inner, v);
      ls.removeItem(k);
    }
  }
  return {
    getItem: (k) => ls.getItem(mine + k),
    setItem: (k, v) => ls.setItem(mine + k, v),
    removeItem: (k) => ls.removeItem(mine + k),
  };
}

/**
 * Keeps localStorage bounded: when more than `max` identities of tabs are
 * stored, those of closed tabs (and their tokens) are removed.
 */
export async function pruneIdentities(max = 20) {
  let ls;
  try { ls = window.localStorage; } catch { return; }
  const prefix = 'tandem.demo.identity.';
  const tabs = new Set();
  for (let i = 0; i < ls.length; i++) {
    const k = ls.key(i);
    if (k && k.startsWith(prefix)) tabs.add(k.slice(prefix.length).split('.')[0]);
  }
  if (tabs.size <= max) return;
  for (const t of tabs) {
    if (await isAlive(t)) continue;
    ls.removeItem(prefix + t);
    ls.removeItem(`${prefix}${t}.token`);
  }
}
