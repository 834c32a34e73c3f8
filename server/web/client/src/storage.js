// storage.js - where documents keep unsent offline edits.
//
// A storage adapter has the synchronous localStorage shape:
//   getItem(key) -> string | null, setItem(key, value), removeItem(key).
// Browsers use window.localStorage by default; Node (or a browser without it)
// gets a MemoryStorage. Keys are "tandem:" + server url + ":" + room.

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

/** The storage key of a document. */
export function storageKey(url, room) {
  return `tandem:${url}:${room}`;
}
