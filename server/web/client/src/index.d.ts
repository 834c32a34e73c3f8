// Type declarations of @tandem/client (hand-written; docs/CLIENT.md).
//
// Units: every position, count and operation in TandemDocument's API is in
// UTF-16 code units (JS string indices). The `ot` module's functions work in
// Unicode code points (the wire unit) unless their name says otherwise.

/** An OT operation: n > 0 retain n, string insert, n < 0 delete -n. */
export type Op = Array<number | string>;

export type Status = 'connecting' | 'online' | 'offline' | 'reconnecting';

export interface StorageAdapter {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface TandemError {
  /** protocol error code (ERR), 0 for client-side problems */
  code: number;
  /** ERR name, or TOKEN / CONNECT / STORAGE_ADAPTER for client-side problems */
  name: string;
  /** channel of the document (0: the connection) */
  channel?: number;
  /** the refused OT op id (odd) or chat msg id (even), 0 = none */
  ref?: number;
  retryMs?: number;
  text?: string;
  message?: string;
  op?: Op | null;
}

export interface TandemClientOptions {
  /** WebSocket URL, e.g. "ws://127.0.0.1:8080/ws" */
  url: string;
  /** a token (JWT) sent in HELLO */
  token?: string;
  /** called before every connection attempt and ~60 s before the token expires */
  getToken?: () => string | Promise<string>;
  /** a WebSocket constructor; default globalThis.WebSocket (in Node pass the `ws` package) */
  WebSocket?: any;
  /** where unsent edits are kept; default localStorage when present, else a MemoryStorage */
  storage?: StorageAdapter;
  /** replica id for HELLO; default random 53 bits, or the remembered one (rememberClientId) */
  clientId?: number;
  /**
   * scopes every storage key of this client (pending edits, chat outbox, client id), e.g. one per
   * browser tab; '' (default) = the shared keys "tandem:<url>:<room>". At most 256 characters.
   * One live client per instance key at a time (a duplicated tab copies sessionStorage).
   */
  instanceKey?: string;
  /**
   * remember the client id in storage and reuse it on the next load (default: true when instanceKey
   * is set and clientId is not given): chat restored after a reload is then resent under the same
   * client id and msg id, which the server deduplicates (exactly once)
   */
  rememberClientId?: boolean;
  /** connect in the constructor (default true) */
  autoConnect?: boolean;
  /** first reconnect delay in ms (1000) */
  minDelay?: number;
  /** reconnect delay cap in ms (30000) */
  maxDelay?: number;
  /** ms between PINGs (25000) */
  pingInterval?: number;
  /** ms to wait for WELCOME before giving up on an attempt (10000) */
  connectTimeout?: number;
  /** jitter source, default Math.random */
  random?: () => number;
}

export class Emitter {
  /** Listen; returns a function that removes the listener. */
  on(name: string, fn: (...args: any[]) => void): () => void;
  once(name: string, fn: (...args: any[]) => void): () => void;
  off(name: string, fn: (...args: any[]) => void): void;
}

export class TandemClient extends Emitter {
  constructor(opts: TandemClientOptions);
  readonly url: string;
  readonly clientId: number;
  readonly storage: StorageAdapter;
  /** the instanceKey option ('' = shared keys) */
  readonly instanceKey: string;
  status: Status;
  sessionId: number | bigint | null;
  connect(): void;
  close(): void;
  destroy(): void;
  openDocument(room: string, opts?: DocumentOptions): TandemDocument;
  refreshToken(token?: string): Promise<void>;
  /** the delay before reconnect attempt n (0-based), ms, with jitter */
  backoffDelay(attempt: number): number;

  on(name: 'status', fn: (s: Status) => void): () => void;
  on(name: 'error', fn: (e: TandemError) => void): () => void;
  on(name: 'reconnect-scheduled', fn: (e: { attempt: number; delay: number }) => void): () => void;
  on(name: 'close', fn: (e: { code: number; reason: string }) => void): () => void;
  on(name: 'disconnect', fn: (e: { wasOnline: boolean }) => void): () => void;
  on(name: string, fn: (...args: any[]) => void): () => void;
}

export interface DocumentOptions {
  /** replay chat history after (re)subscribing (default true) */
  chatReplay?: boolean;
  /** keep unsent edits in the client's storage (default true) */
  persist?: boolean;
  /** ms after the last startTyping() before an automatic stop (3000) */
  typingTimeout?: number;
}

export interface Change {
  /** UTF-16 index in the text before the change */
  from: number;
  to: number;
  insert: string;
}

export interface ChangeEvent {
  /** the operation in UTF-16 units on the text before it */
  op: Op;
  /** the same as {from, to, insert} ranges of the text before it (CodeMirror ChangeSpec) */
  changes: Change[];
  remote: boolean;
  /** true when a snapshot replaced the text (a rebase after TOO_FAR_BEHIND) */
  snapshot?: boolean;
  /** the text after the change */
  text: string;
  /** remote: the submitter's client id (0 for CRDT clients) */
  src?: number | bigint;
}

export interface ChatRecord {
  id: number;
  timeMs: number;
  user: string | null;
  display: string | null;
  text: string;
}

export interface ChatMessage extends ChatRecord {
  /** our own message (acked); user/display are null then */
  own: boolean;
  /** came from a history replay */
  replay: boolean;
  msgId?: number;
}

export class TandemDocument extends Emitter {
  readonly client: TandemClient;
  readonly channel: number;
  readonly room: string;
  /** the local text, with local edits not yet acknowledged */
  readonly text: string;
  readonly state: 'synchronized' | 'awaiting-ack' | 'awaiting-with-buffer';
  readonly hasPending: boolean;
  /** the server version the confirmed text is at; null until known */
  version: number | null;
  /** caught up with the server on this connection */
  synced: boolean;
  /** 0 unknown, 1 read, 2 write */
  access: 0 | 1 | 2;
  /** restored unsent edits from storage when opened */
  restored?: boolean;
  /** chat messages sent but not yet acknowledged (restored: kept from an earlier page load, resent once synced) */
  readonly pendingChat: Array<{ msgId: number; text: string; restored: boolean }>;
  readonly awareness: Awareness;
  /** chat messages seen (replayed, received, own acked), oldest first */
  messages: ChatMessage[];
  /** who else is typing now */
  readonly typing: Array<{ user: string; display: string }>;

  /** resolves when caught up with the server */
  whenSynced(): Promise<void>;
  /** resolves when every local edit so far is acknowledged (durable) */
  whenSaved(): Promise<void>;
  applyLocal(op: Op): void;
  insert(pos: number, text: string): void;
  delete(pos: number, n: number): void;
  setText(text: string): void;

  sendChat(text: string): Promise<ChatMessage>;
  fetchChatHistory(q?: { after?: number; limit?: number }): Promise<{ messages: ChatRecord[]; more: boolean }>;
  startTyping(): void;
  stopTyping(): void;
  close(): void;

  on(name: 'change', fn: (e: ChangeEvent) => void): () => void;
  on(name: 'synced', fn: (e: { version: number }) => void): () => void;
  on(name: 'subscribed', fn: (e: { access: 'read' | 'write'; version: number; isNew: boolean }) => void): () => void;
  on(name: 'ack', fn: (e: { version: number; state: string }) => void): () => void;
  on(name: 'chat', fn: (m: ChatMessage) => void): () => void;
  on(name: 'chat-pending', fn: (e: { msgId: number; text: string }) => void): () => void;
  /** a message of ours was stored (every ack, also of a restored message the replay already reported) */
  on(name: 'chat-acked', fn: (e: { msgId: number; id: number; timeMs: number }) => void): () => void;
  on(name: 'chat-replayed', fn: (e: { lastId: number }) => void): () => void;
  on(name: 'typing', fn: (users: Array<{ user: string; display: string }>) => void): () => void;
  on(name: 'error', fn: (e: TandemError) => void): () => void;
  on(name: string, fn: (...args: any[]) => void): () => void;
}

export interface Cursor {
  anchor: number;
  head: number;
}

export interface Peer {
  clientId: number | bigint;
  /** the peer's JSON state; state.cursor in UTF-16 indices of the current text */
  state: { user?: { name?: string; color?: string }; cursor?: Cursor; [k: string]: any };
}

export class Awareness extends Emitter {
  readonly clientId: number;
  setLocalState(state: Record<string, any> | null): void;
  setLocalStateField(field: string, value: any): void;
  setCursor(anchor: number, head?: number): void;
  getLocalState(): Record<string, any> | null;
  readonly peers: Peer[];
  on(name: 'change', fn: (e: { added: string[]; updated: string[]; removed: string[]; local: boolean }) => void): () => void;
  on(name: string, fn: (...args: any[]) => void): () => void;
}

export class MemoryStorage implements StorageAdapter {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}
export function defaultStorage(): StorageAdapter;
/** key of a document's unsent edits: "tandem[@instance]:<url>:<room>" */
export function storageKey(url: string, room: string, instanceKey?: string): string;
/** key of a document's chat outbox: "tandem-chat[@instance]:<url>:<room>" */
export function chatStorageKey(url: string, room: string, instanceKey?: string): string;
/** key of a client instance's remembered client id: "tandem-id[@instance]:<url>" */
export function identityStorageKey(url: string, instanceKey?: string): string;

export const MSG: Readonly<Record<string, number>>;
export const ERR: Readonly<Record<string, number>>;
export const ERR_NAMES: Readonly<Record<number, string>>;
export const CAPS: Readonly<Record<string, number>>;
export const SUBPROTOCOL: 'tandem.v1';
export const PROTOCOL_VERSION: 1;
export class CodecError extends Error {}
export function encodeMessage(m: { type: number; [k: string]: any }): Uint8Array;
export function decodeMessage(data: Uint8Array | ArrayBuffer): null | { type: number; [k: string]: any };

export namespace ot {
  type Op = Array<number | string>;
  class OTError extends Error {}
  class OpBuilder {
    ops: Op;
    retain(n: number): this;
    insert(s: string): this;
    delete(n: number): this;
    done(): Op;
  }
  function normalize(op: unknown): Op;
  function apply(op: Op, text: string): string;
  function compose(a: Op, b: Op): Op;
  function transform(a: Op, b: Op, side: 'left' | 'right'): Op;
  function invert(op: Op, text: string): Op;
  function diff(a: string, b: string): Op;
  function baseLength(op: Op): number;
  function targetLength(op: Op): number;
  function isNoop(op: Op): boolean;
  function cpLength(s: string): number;
  function cpAdvance(s: string, from: number, cps: number): number;
  function splitsPair(s: string, i: number): boolean;
  function utf16ToCpIndex(text: string, i: number): number;
  function cpToUtf16Index(text: string, cp: number): number;
  function isWellFormed(s: string): boolean;
  function toCodePoints(op: Op, text: string): Op;
  function toUtf16(op: Op, text: string): Op;
  function toChanges(op: Op): Change[];
  function transformPosition(pos: number, op: Op, assoc?: 'left' | 'right', units?: 'utf16' | 'cp'): number;
}
