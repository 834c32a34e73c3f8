// storage.js - where documents keep unsent offline edits.
//
// A storage adapter has the synchronous localStorage shape:
//   getItem(key) -> string | null, setItem(key, value), removeItem(key).
// Browsers use window.localStorage by default; Node (or a browser without it)
// gets a MemoryStorage. Keys (instance = TandemClient's instanceKey option):
//   tandem[@instance]:<url>:<room>       a document's unsent OT edits
//   tandem-chat[@instance]:<url>:<room>  its chat messages not yet acknowledged
//   tandem-id@instance:<url>             the instance's client id (remembered ids only)

/** An in-memory storage adapter (a Map). Share one instance between clients to
 * simulate a page reload in tests. */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, string>} */
    this.map = new Map();
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}

/** localStorage when it exists and works, else a new MemoryStorage. */
export function defaultStorage() {
  try {
    const ls = globalThis.localStorage;
    if (ls) {
      const k = '__tandem_probe__';
      ls.setItem(k, '1');
      ls.removeItem(k);
      return ls;
    }
  } catch {
    // private mode or a sandboxed frame: fall through
  }
  return new MemoryStorage();
}

// "tandem" or "tandem@<instance>" (the instance key URI-encoded, so it holds no ':')
function scoped(prefix, instanceKey) {
  return instanceKey ? `${prefix}@${encodeURIComponent(instanceKey)}` : prefix;
}

/** The storage key of a document's unsent edits (instanceKey '' = the shared key). */
export function storageKey(url, room, instanceKey = '') {
  return `${scoped('tandem', instanceKey)}:${url}:${room}`;
}

/** The storage key of a document's chat outbox (messages not yet acknowledged). */
export function chatStorageKey(url, room, instanceKey = '') {
  return `${scoped('tandem-chat', instanceKey)}:${url}:${room}`;
}

/** The storage key of a client instance's remembered client id and awareness clock. */
export function identityStorageKey(url, instanceKey = '') {
  return `${scoped('tandem-id', instanceKey)}:${url}`;
}
