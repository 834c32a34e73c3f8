// emitter.js - a minimal event emitter (works the same in browsers and Node).

export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this._handlers = new Map();
  }
  /**
   * Listen to an event; returns a function that removes the listener.
   * @param {string} name
   * @param {Function} fn
   */
  on(name, fn) {
    let s = this._handlers.get(name);
    if (!s) this._handlers.set(name, (s = new Set()));
    s.add(fn);
    return () => this.off(name, fn);
  }
  /** Listen once. */
  once(name, fn) {
    const off = this.on(name, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }
  off(name, fn) {
    this._handlers.get(name)?.delete(fn);
  }
  /** @protected */
  emit(name, ...args) {
    const s = this._handlers.get(name);
    if (!s) return;
    for (const fn of [...s]) {
      try {
        fn(...args);
      } catch (e) {
        // a throwing listener must not break the client's state machine
        if (name !== 'listener-error') this.emit('listener-error', e, name);
        else queueMicrotask(() => { throw e; });
      }
    }
  }
}
