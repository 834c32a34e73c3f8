// main.js - the tandem demo page: a CodeMirror 6 editor bound to a room of
// the sync server through @tandem/client (OT mode), remote cursors, the
// people in the room, chat with typing indicators, the connection state and
// a live server dashboard (SSE). The room comes from the URL: /?room=NAME.
import './style.css';
import { TandemClient } from '@tandem/client';
import { createEditor, readOnly, readOnlyExtension } from './editor.js';
import { EditorView } from '@codemirror/view';
import { EditorState, Transaction } from '@codemirror/state';
import { remote, opFromChanges, setRemoteCursors, remoteCursorPositions } from './binding.js';
import { loadIdentity, saveIdentity, avatar, colorFor } from './identity.js';
import { makeTokenSource } from './auth.js';
import { claimTab, tabStorage, pruneIdentities } from './tabs.js';
import { renderPeople } from './people.js';
import { ChatView } from './chat.js';
import { startDashboard } from './dashboard.js';
import { initNotifications } from './notifications.js';

const $ = (id) => document.getElementById(id);
const DEFAULT_ROOM = 'welcome';

/** The room named by ?room= (1..255 UTF-8 bytes, no control characters), else the default. */
function roomFromUrl() {
  const raw = new URLSearchParams(location.search).get('room');
  if (raw === null) return null;
  const name = raw.trim();
  if (!name || /[\u0000-\u001f\u007f]/.test(name) || new TextEncoder().encode(name).length > 255) return null;
  return name;
}

let room = roomFromUrl();
if (!room) {
  room = DEFAULT_ROOM;
  history.replaceState(null, '', `/?room=${encodeURIComponent(room)}`);
}
document.title = `${room} — tandem`;
$('room-name').textContent = room;
$('doc-title').textContent = room;

const tab = await claimTab();
const identity = loadIdentity(tab);
pruneIdentities();
const getToken = makeTokenSource(identity);

function renderMe() {
  $('me').replaceChildren(avatar(identity.name, identity.color), Object.assign(document.createElement('span'), { textContent: identity.name }));
}
renderMe();

/* ------------------------------------------------------------ connection */

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
// the tab's storage namespace is its instance: its client id is remembered there, so
// chat restored from the outbox after a reload is resent under the same id (exactly once)
const client = new TandemClient({ url: wsUrl, getToken, storage: await tabStorage(tab), rememberClientId: true });
const doc = client.openDocument(room);

const conn = $('conn');
let retryAt = 0;
let retryTimer = null;
function renderConn() {
  const s = client.status;
  conn.dataset.status = s;
  let label = { online: 'Online', connecting: 'Connecting…', offline: 'Offline', reconnecting: 'Reconnecting…' }[s] || s;
  if (s === 'reconnecting' && retryAt > Date.now()) label = `Reconnecting in ${Math.ceil((retryAt - Date.now()) / 1000)} s`;
  if (s === 'online' && !doc.synced) label = 'Syncing…';
  if (doc.hasPending && s !== 'online') label += ' · edits kept locally';
  conn.querySelector('.label').textContent = label;
  conn.title = doc.hasPending ? 'Some edits are not yet stored by the server' : 'All edits are stored';
}
client.on('status', () => { renderConn(); renderPeopleNow(); });
// a click on the indicator while not connected retries at once instead of waiting for the backoff
conn.addEventListener('click', () => { if (client.status === 'reconnecting') client.connect(); });
client.on('reconnect-scheduled', ({ delay }) => {
  retryAt = Date.now() + delay;
  clearInterval(retryTimer);
  retryTimer = setInterval(() => { renderConn(); if (Date.now() > retryAt) clearInterval(retryTimer); }, 500);
});
client.on('error', (e) => console.warn('tandem:', e.name, e.message ?? e.text ?? ''));
let lastReauth = 0;
doc.on('error', (e) => {
  console.warn(`tandem ${room}:`, e.name, e.message ?? e.text ?? '');
  // a token the server no longer accepts (a --dev server restarted with a new
  // secret): ask for a fresh one, at most every 10 s
  if (e.name === 'NOT_ALLOWED' && getToken.mode === 'none') {
    $('notice').textContent = 'This server is not in development mode and the page has no token for it: '
      + 'start it with --dev (make run does) or serve the page with a token of your own (docs/AUTH.md).';
    $('notice').hidden = false;
  } else if (e.name === 'NOT_ALLOWED' && Date.now() - lastReauth > 10000) {
    lastReauth = Date.now();
    client.refreshToken().catch(() => {});
  }
});

/* ------------------------------------------------------------ editor */

let cursorTimer = null;
function sendCursor(view) {
  // at most ~12 awareness frames a second (the server rate-limits awareness per user)
  if (cursorTimer) return;
  cursorTimer = setTimeout(() => {
    cursorTimer = null;
    const r = view.state.selection.main;
    doc.awareness.setLocalState({
      user: { id: identity.user, name: identity.name, color: identity.color },
      cursor: { anchor: r.anchor, head: r.head },
    });
  }, 80);
}

const binding = EditorView.updateListener.of((u) => {
  for (const tr of u.transactions) {
    if (!tr.docChanged || tr.annotation(remote)) continue;
    try {
      doc.applyLocal(opFromChanges(tr.changes, null, 'utf16'));
    } catch (e) {
      // cannot happen for CodeMirror's own edits; if it does, the document's text wins
      console.error('tandem: local edit refused', e);
      queueMicrotask(resyncEditor);
    }
  }
  if (u.docChanged || u.selectionSet) sendCursor(u.view);
  if (u.docChanged) renderStats();
});

// One local edit travels as one OT_OP frame, and the server closes a connection
// whose frame is over 1 MiB (the op would be resent forever): refuse an edit
// that inserts more than MAX_EDIT_CHARS (3 UTF-8 bytes each at most) at once.
const MAX_EDIT_CHARS = 256 * 1024;
const editCap = EditorState.transactionFilter.of((tr) => {
  if (!tr.docChanged || tr.annotation(remote)) return tr;
  let ins = 0;
  tr.changes.iterChanges((_fa, _ta, _fb, _tb, text) => { ins += text.length; });
  if (ins <= MAX_EDIT_CHARS) return tr;
  queueMicrotask(() => toast(`That edit is too large to send at once (${Math.round(ins / 1024)} K characters; at most ${MAX_EDIT_CHARS / 1024} K)`));
  return [];
});

const view = createEditor($('editor'), doc.text, [editCap, binding]);

function resyncEditor() {
  const cur = view.state.doc.toString();
  if (cur === doc.text) return;
  view.dispatch({ changes: { from: 0, to: cur.length, insert: doc.text }, annotations: [remote.of(true), Transaction.addToHistory.of(false)] });
}

const editingUntil = new Map(); // client id -> ms until which they count as editing
doc.on('change', (e) => {
  if (e.remote) {
    // not in the undo history: Ctrl+Z undoes only this person's edits (mapped through the others')
    view.dispatch({ changes: e.changes, annotations: [remote.of(true), Transaction.addToHistory.of(false)] });
    if (view.state.doc.length !== e.text.length) resyncEditor();
    if (e.src) {
      editingUntil.set(String(e.src), Date.now() + 3000);
      setTimeout(renderPeopleNow, 3100);
    }
    renderCursors();
    renderPeopleNow();
  }
  renderStats();
  renderConn();
});
doc.on('synced', () => { $('notice').hidden = true; });
doc.on('synced', () => { resyncEditor(); renderConn(); renderStats(); sendCursor(view); });
doc.on('ack', () => { renderConn(); renderStats(); });
doc.on('subscribed', (s) => {
  view.dispatch({ effects: readOnly.reconfigure(readOnlyExtension(s.access === 'read')) });
  $('doc-stats').dataset.access = s.access;
});

function renderStats() {
  const n = view.state.doc.length;
  const v = doc.version == null ? '–' : doc.version;
  const state = doc.hasPending ? 'saving…' : doc.synced ? 'saved' : 'not synced';
  const ro = doc.access === 1 ? ' · read only' : '';
  $('doc-stats').textContent = `${view.state.doc.lines} lines · ${n} chars · v${v} · ${state}${ro}`;
}

/* ------------------------------------------------------------ presence */

function peerList() {
  return doc.awareness.peers
    .filter((p) => p.state && p.state.user)
    .map((p) => ({
      key: String(p.clientId),
      user: String(p.state.user.id ?? p.clientId),
      name: String(p.state.user.name ?? 'Someone').slice(0, 60),
      color: /^#[0-9a-f]{6}$/i.test(p.state.user.color ?? '') ? p.state.user.color : colorFor(p.clientId),
      cursor: p.state.cursor,
    }));
}

function renderCursors() {
  const len = view.state.doc.length;
  const cursors = peerList()
    .filter((p) => p.cursor && Number.isInteger(p.cursor.head))
    .map((p) => ({ user: p.user, name: p.name, color: p.color, anchor: Math.min(p.cursor.anchor, len), head: Math.min(p.cursor.head, len) }));
  view.dispatch({ effects: setRemoteCursors.of(cursors) });
}

function renderPeopleNow() {
  const typing = new Set(doc.typing.map((t) => t.user));
  const now = Date.now();
  for (const [k, until] of editingUntil) if (until <= now) editingUntil.delete(k);
  const people = [{ key: 'me', user: identity.user, name: identity.name, color: identity.color, me: true, typing: false }];
  const seen = new Set();
  for (const p of peerList()) {
    seen.add(p.user);
    people.push({ ...p, typing: typing.has(p.user), editing: (editingUntil.get(p.key) ?? 0) > now });
  }
  // someone typing in the chat without an editor presence (another client kind)
  for (const t of doc.typing) if (!seen.has(t.user) && t.user !== identity.user) people.push({ key: `t:${t.user}`, user: t.user, name: t.display || t.user, color: colorFor(t.user), typing: true });
  renderPeople($('people'), $('people-count'), people);
}

doc.awareness.on('change', () => { renderCursors(); renderPeopleNow(); });

/* ------------------------------------------------------------ chat */

const colors = () => new Map(peerList().map((p) => [p.user, p.color]).concat([[identity.user, identity.color]]));
const chat = new ChatView({ log: $('chat-log'), typing: $('chat-typing'), colorOf: (u) => colors().get(u) });

function showMessage(m) {
  const mine = m.own || m.user === identity.user;
  if (m.own && m.msgId != null) chat.remove(`p${m.msgId}`);
  chat.upsert({
    key: `c${m.id}`, id: m.id, time: m.timeMs, mine,
    user: m.own ? identity.user : m.user || '?',
    name: m.own ? identity.name : m.display || m.user || '?',
    text: m.text,
  });
}
for (const m of doc.messages) showMessage(m);
doc.on('chat', showMessage);
const showPending = ({ msgId, text }) => chat.upsert({ key: `p${msgId}`, pending: true, mine: true, time: Date.now(), user: identity.user, name: identity.name, text });
doc.pendingChat.forEach(showPending); // kept from before a reload, resent once synced
doc.on('chat-pending', showPending);
doc.on('chat-acked', ({ msgId }) => chat.remove(`p${msgId}`));
doc.on('typing', (list) => {
  chat.setTyping(list.filter((t) => t.user !== identity.user).map((t) => t.display || t.user));
  renderPeopleNow();
});

$('chat-input').addEventListener('input', (e) => { if (e.target.value) doc.startTyping(); else doc.stopTyping(); });
$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  doc.stopTyping();
  doc.sendChat(text).catch((err) => toast(`Message not sent: ${err.message}`));
});

/* ------------------------------------------------------------ header, settings */

function toast(text) {
  const t = Object.assign(document.createElement('div'), { className: 'toast', textContent: text });
  document.body.append(t);
  setTimeout(() => t.remove(), 2500);
}

$('share-btn').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(location.href);
    toast('Link copied — open it in another window to edit together');
  } catch {
    toast(location.href);
  }
});
$('room-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('room-input').value.trim();
  if (name) location.search = `?room=${encodeURIComponent(name)}`;
});

const dlg = $('settings');
$('settings-btn').addEventListener('click', () => {
  $('settings-name').value = identity.name;
  $('settings-color').value = identity.color;
  dlg.showModal();
});
dlg.addEventListener('close', () => {
  if (dlg.returnValue !== 'save') return;
  const name = $('settings-name').value.trim().slice(0, 60);
  if (!name) return;
  const renamed = name !== identity.name;
  identity.name = name;
  identity.color = $('settings-color').value;
  saveIdentity(identity);
  renderMe();
  sendCursor(view);
  renderPeopleNow();
  if (renamed) client.refreshToken().catch(() => {}); // chat and typing carry the token's name
});

/* ------------------------------------------------------------ start */

const dash = startDashboard({ intervalMs: 1000 });
const notifications = initNotifications({ room, getToken, toast });
renderConn();
renderStats();
renderPeopleNow();
if (import.meta.env.PROD && 'serviceWorker' in navigator && !new URLSearchParams(location.search).has('nosw')) {
  navigator.serviceWorker.register('/sw.js').catch(() => {});
}

// For the end-to-end tests and for poking around in the console.
window.tandemDemo = {
  client, doc, view, identity, room, dash, tab, notifications,
  remoteCursors: () => remoteCursorPositions(view.state),
  ready: true,
};
