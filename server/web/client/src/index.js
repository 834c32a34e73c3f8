// @tandem/client - the JavaScript client of the tandem sync server.
// See docs/CLIENT.md in the tandem repository.
export { TandemClient } from './client.js';
export { Emitter } from './emitter.js';
export { TandemDocument, Awareness } from './document.js';
export { MemoryStorage, defaultStorage, storageKey, chatStorageKey, identityStorageKey } from './storage.js';
export { MSG, ERR, ERR_NAMES, CAPS, SUBPROTOCOL, PROTOCOL_VERSION, CodecError, encodeMessage, decodeMessage } from './codec.js';
export * as ot from './ot.js';
