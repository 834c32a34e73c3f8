// demo.test.js - the demo page end to end: a real `tandem serve --dev`
// (TANDEM_BIN) serving the built page (dist/), Debian's Chromium through
// playwright-core, several browser contexts (one person each) in one room.
// Screenshots go to e2e-artifacts/ (or TANDEM_E2E_ARTIFACTS).
import { test, before, after } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { Server, launchBrowser, openPage, openIn, shot, editorText, caretAt, until, VIEWPORT } from './harness.js';

let server;
let browser;

before(async () => {
  server = new Server();
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (server && process.env.TANDEM_E2E_KEEP !== '1') await server.close();
  else if (server) await server.stop();
});

const synced = (page) => until(() => page.evaluate(() => {
  const { doc, client } = window.tandemDemo;
  return client.status === 'online' && doc.synced && !doc.hasPending;
}), 'the page to be online, synced and without pending edits', 20000);

const sorted = (s) => Array.from(s).sort().join('');

/** All pages show the same text, the server's text, with nothing pending; returns it. */
async function converged(pages, room, timeoutMs = 20000) {
  return until(async () => {
    const texts = await Promise.all(pages.map(editorText));
    const pending = await Promise.all(pages.map((p) => p.evaluate(() => window.tandemDemo.doc.hasPending)));
    const server_ = await server.roomText(room);
    const docs = await Promise.all(pages.map((p) => p.evaluate(() => window.tandemDemo.doc.text)));
    if (pending.some(Boolean) || texts.some((t) => t !== server_) || docs.some((t) => t !== server_)) {
      const status = await Promise.all(pages.map((p) => p.evaluate(() => `${window.tandemDemo.client.status}/${window.tandemDemo.doc.state}`)));
      return Promise.reject(new Error(JSON.stringify({ server: server_, texts, pending, status })));
    }
    return { text: server_ };
  }, `pages in ${room} to converge with the server`, timeoutMs).then((r) => r.text);
}

async function closeAll(pages) {
  await Promise.all(pages.map((p) => p.context().close()));
}

test('three pages typing concurrently, at the same spot too, converge to the server text', async () => {
  const room = 'team/converge 1'; // a slash and a space: ?room= and /api/rooms/{id} both encode it
  const pages = await Promise.all([0, 1, 2].map(() => openPage(browser, server, room)));
  await Promise.all(pages.map(synced));
  await caretAt(pages[0], 0);
  await pages[0].keyboard.type('shared line: [] end\n');
  const base = await converged(pages, room);
  assert.equal(base, 'shared line: [] end\n');

  // all three at the same spot (inside the brackets), typing at once
  const spot = base.indexOf('[') + 1;
  const words = ['alpha-', 'BRAVO+', 'c😀c~'];
  await Promise.all(pages.map((p) => caretAt(p, spot)));
  await Promise.all(pages.map((p, i) => p.keyboard.type(words[i], { delay: 15 })));
  // and each somewhere else as well
  await Promise.all(pages.map(async (p, i) => {
    await caretAt(p, i === 0 ? 0 : -1);
    await p.keyboard.type(`<${i}>`, { delay: 10 });
  }));
  const text = await converged(pages, room);
  await Promise.all(pages.map((p, i) => shot(p, `converge-${i}`)));
  const expected = base + words.join('') + '<0><1><2>';
  assert.equal(sorted(text), sorted(expected), 'every typed character is there exactly once');
  assert.ok(text.startsWith('<0>shared line: ['), text);
  assert.ok(text.endsWith(' end\n<1><2>') || text.endsWith(' end\n<2><1>'), text);
  assert.ok(text.includes('😀'), 'the astral character survived as a whole');
  for (const p of pages) assert.deepEqual(p.errors ?? [], []);
  await closeAll(pages);
});

test('a remote cursor is drawn at the other person\'s caret, emoji before it', async () => {
  const room = 'cursors';
  const [a, b] = await Promise.all([openPage(browser, server, room), openPage(browser, server, room)]);
  await Promise.all([synced(a), synced(b)]);
  await caretAt(a, 0);
  await a.keyboard.type('😀😀 one\ntwo three\n');
  await converged([a, b], room);
  const aUser = await a.evaluate(() => window.tandemDemo.identity.user);
  const aName = await a.evaluate(() => window.tandemDemo.identity.name);
  const want = '😀😀 one\ntwo'.length; // UTF-16 offset (emoji are two units each)
  await caretAt(a, want);
  const pos = await until(() => b.evaluate((u) => {
    const c = window.tandemDemo.remoteCursors().find((x) => x.user === u);
    return c ? c.pos : null;
  }, aUser).then((p) => (p === want ? p : null)), 'A\'s cursor at the right place in B', 10000);
  assert.equal(pos, want);
  // the widget is in B's DOM, labelled with A's name, at that document position
  const dom = await b.evaluate((u) => {
    const el = document.querySelector(`.cm-remote-caret[data-user="${u}"]`);
    if (!el) return null;
    return { label: el.querySelector('.cm-remote-label')?.textContent, pos: window.tandemDemo.view.posAtDOM(el) };
  }, aUser);
  assert.ok(dom, 'the caret widget is in the DOM');
  assert.equal(dom.label, aName);
  assert.equal(dom.pos, want);
  // B types before A's cursor: the cursor moves with the text
  await caretAt(b, 0);
  await b.keyboard.type('>> ');
  await converged([a, b], room);
  await until(() => b.evaluate((u) => window.tandemDemo.remoteCursors().find((x) => x.user === u)?.pos, aUser)
    .then((p) => p === want + 3), 'A\'s cursor moved by B\'s insert', 10000);
  // undo is per person: A types after B; B's Ctrl+Z takes back B's insert, not A's newer one
  await caretAt(a, -1);
  await a.keyboard.type('!');
  await converged([a, b], room);
  await b.focus('.cm-content');
  await b.keyboard.press('Control+z');
  await until(() => editorText(b).then((t) => t === '😀😀 one\ntwo three\n!'), 'only B\'s insert undone in B');
  await converged([a, b], room);
  // a selection is drawn as a highlighted range
  await a.evaluate(() => { const { view } = window.tandemDemo; view.dispatch({ selection: { anchor: 3, head: 10 } }); });
  await until(() => b.evaluate((u) => !!document.querySelector(`.cm-remote-selection[data-user="${u}"]`), aUser), 'A\'s selection drawn in B');
  // A leaves: the cursor disappears
  await shot(b, 'cursors');
  await a.context().close();
  await until(() => b.evaluate((u) => !window.tandemDemo.remoteCursors().some((x) => x.user === u), aUser), 'A\'s cursor gone after A left');
  await b.context().close();
});

test('chat: sent in one page, shown in the other, kept after a reload; typing indicator shows and clears', async () => {
  const room = 'chatroom';
  const [a, b] = await Promise.all([openPage(browser, server, room), openPage(browser, server, room)]);
  await Promise.all([synced(a), synced(b)]);
  const aName = await a.evaluate(() => window.tandemDemo.identity.name);
  const bName = await b.evaluate(() => window.tandemDemo.identity.name);

  // typing indicator: B types in the chat box, A sees it in the chat and the people list
  await b.click('#chat-input');
  await b.keyboard.type('hello A, this is B', { delay: 5 });
  await until(() => a.textContent('#chat-typing').then((t) => t.includes(`${bName} is typing`)), 'the typing line in A');
  await until(() => a.evaluate(() => !!document.querySelector('.person.typing')), 'a typing avatar in A\'s people list');
  await shot(a, 'chat-typing');
  await b.keyboard.press('Enter');
  await until(() => a.textContent('#chat-typing').then((t) => t === ''), 'the typing line cleared after sending');
  assert.equal(await a.evaluate(() => !!document.querySelector('.person.typing')), false);

  // the message reached A, with a timestamp
  const msg = await until(() => a.evaluate(() => [...document.querySelectorAll('.chat-msg')]
    .map((li) => ({ who: li.querySelector('.who').textContent, text: li.querySelector('.text').textContent, time: li.querySelector('time').textContent, pending: li.classList.contains('pending') }))
    .find((m) => m.text === 'hello A, this is B')), 'B\'s message in A');
  assert.equal(msg.who, bName);
  assert.match(msg.time, /\d/);
  assert.equal(msg.pending, false);

  await a.fill('#chat-input', 'hi B 👋');
  await a.press('#chat-input', 'Enter');
  await until(() => b.evaluate(() => [...document.querySelectorAll('.chat-msg .text')].some((e) => e.textContent === 'hi B 👋')), 'A\'s reply in B');

  // a reload replays the history, in order, with names
  await b.reload();
  await b.waitForFunction(() => window.tandemDemo?.ready === true);
  const history = await until(() => b.evaluate(() => {
    const rows = [...document.querySelectorAll('.chat-msg')].map((li) => `${li.querySelector('.who').textContent}: ${li.querySelector('.text').textContent}`);
    return rows.length >= 2 ? rows : null;
  }), 'chat history after the reload');
  assert.deepEqual(history, [`${bName}: hello A, this is B`, `${aName}: hi B 👋`]);
  const api = await server.json(`/api/rooms/${encodeURIComponent(room)}/messages`);
  assert.deepEqual(api.messages.map((m) => m.text), ['hello A, this is B', 'hi B 👋']);
  await shot(b, 'chat-after-reload');

  // a draft that is never sent: the indicator clears by itself (3 s after the last key)
  await a.fill('#chat-input', '');
  await a.click('#chat-input');
  await a.keyboard.type('a draft', { delay: 5 });
  await until(() => b.textContent('#chat-typing').then((t) => t.includes(`${aName} is typing`)), 'A typing in B');
  await until(() => b.textContent('#chat-typing').then((t) => t === ''), 'the typing line cleared without a send', 10000);
  await closeAll([a, b]);
});

test('the dashboard follows the SSE stats stream: connections and traffic move', async () => {
  const room = 'dash';
  const a = await openPage(browser, server, room);
  await synced(a);
  const first = await until(() => a.evaluate(() => window.tandemDemo.dash.last), 'a first stats-update');
  const b = await openPage(browser, server, room);
  await synced(b);
  await until(() => a.evaluate(() => window.tandemDemo.dash.last.connections)
    .then((n) => n >= first.connections + 1), 'the connection count going up in A');
  assert.ok(Number(await a.textContent('#stat-connections')) >= 2);
  await caretAt(b, 0);
  const typing = b.keyboard.type('some traffic for the dashboard '.repeat(3), { delay: 20 });
  await until(() => a.evaluate(() => window.tandemDemo.dash.recent.some((s) => s.updates_per_s > 0 && s.messages_per_s > 0 && s.bytes_per_s > 0)),
    'updates/s, messages/s and bytes/s above zero', 15000);
  await typing;
  const shown = await a.evaluate(() => ({
    events: Number(document.querySelector('.dashboard').dataset.events),
    memory: document.getElementById('stat-memory').textContent,
  }));
  assert.ok(shown.events >= 2);
  assert.match(shown.memory, /\d+(\.\d)? (KiB|MiB|GiB)/);
  await shot(a, 'dashboard');
  await closeAll([a, b]);
});

test('offline: edits made with the network cut and across a reload are merged when it is back', async () => {
  const room = 'offline-net';
  const [a, b] = await Promise.all([openPage(browser, server, room), openPage(browser, server, room)]);
  await Promise.all([synced(a), synced(b)]);
  await caretAt(a, 0);
  await a.keyboard.type('start\n');
  await converged([a, b], room);
  // the service worker controls A, so a reload works without the network
  await until(() => a.evaluate(() => !!navigator.serviceWorker.controller), 'the service worker controlling A');

  // the cache keeps one build: an asset of an older build is dropped when a fresh page arrives
  await a.evaluate(() => caches.open('tandem-demo-v1').then((c) => c.put('/assets/older-build.js', new Response('//'))));
  await a.reload();
  await a.waitForFunction(() => window.tandemDemo?.ready === true);
  await until(() => a.evaluate(() => caches.match('/assets/older-build.js').then((r) => !r)), 'the older build\'s asset pruned');
  assert.ok(await a.evaluate(() => caches.match('/').then((r) => !!r)), 'the page itself is cached');
  await synced(a);

  await a.context().setOffline(true);
  await until(() => a.evaluate(() => window.tandemDemo.client.status === 'offline'), 'A offline');
  await caretAt(a, -1);
  await a.keyboard.type('typed offline by A\n');
  await caretAt(b, 0);
  await b.keyboard.type('B meanwhile: ');
  assert.equal(await a.evaluate(() => window.tandemDemo.doc.hasPending), true);
  assert.equal(await a.textContent('#conn .label').then((t) => t.includes('Offline')), true);
  await shot(a, 'offline-before-reload');

  await a.reload(); // no network: the page comes from the service worker's cache
  await a.waitForFunction(() => window.tandemDemo?.ready === true);
  assert.equal(await editorText(a), 'start\ntyped offline by A\n', 'the unsent edits are restored after the reload');
  await caretAt(a, -1);
  await a.keyboard.type('and after the reload');
  await a.context().setOffline(false);
  const text = await converged([a, b], room, 30000);
  assert.equal(text, 'B meanwhile: start\ntyped offline by A\nand after the reload');
  await shot(a, 'offline-merged');
  await closeAll([a, b]);
});

test('server stopped: both keep typing, one reloads, everything is merged after the restart', async () => {
  const room = 'outage';
  const [a, b] = await Promise.all([openPage(browser, server, room), openPage(browser, server, room)]);
  await Promise.all([synced(a), synced(b)]);
  await caretAt(a, 0);
  await a.keyboard.type('line one\n');
  await converged([a, b], room);
  await until(() => a.evaluate(() => !!navigator.serviceWorker.controller), 'the service worker controlling A');

  await server.stop();
  await until(() => Promise.all([a, b].map((p) => p.evaluate(() => window.tandemDemo.client.status)))
    .then((s) => s.every((x) => x === 'reconnecting' || x === 'connecting')), 'both pages reconnecting');
  await caretAt(a, -1);
  await a.keyboard.type('A during the outage\n');
  await caretAt(b, 0);
  await b.keyboard.type('B during the outage\n');
  await shot(b, 'outage');
  // a chat message sent during the outage waits in the library's outbox
  await a.fill('#chat-input', 'chat during the outage');
  await a.press('#chat-input', 'Enter');
  const chatRows = (p) => p.evaluate(() => [...document.querySelectorAll('.chat-msg')]
    .map((li) => ({ text: li.querySelector('.text').textContent, pending: li.classList.contains('pending') })));
  await until(() => chatRows(a).then((r) => r.some((m) => m.text === 'chat during the outage' && m.pending)), 'the pending message in A');
  await a.reload(); // the server is down: the page comes from the service worker's cache
  await a.waitForFunction(() => window.tandemDemo?.ready === true);
  assert.equal(await editorText(a), 'line one\nA during the outage\n');
  assert.deepEqual(await chatRows(a), [{ text: 'chat during the outage', pending: true }], 'still pending after the reload');
  await caretAt(a, -1);
  await a.keyboard.type('A after reload');

  await server.start(); // same port, same data
  const text = await converged([a, b], room, 40000);
  assert.equal(text, 'B during the outage\nline one\nA during the outage\nA after reload');
  // the message restored from the outbox is stored once, shown once and no longer pending
  await until(() => chatRows(a).then((r) => r.length === 1 && !r[0].pending), 'the message acked in A', 20000);
  await until(() => chatRows(b).then((r) => r.length === 1), 'the message in B', 20000);
  const api = await server.json(`/api/rooms/${encodeURIComponent(room)}/messages`);
  assert.deepEqual(api.messages.map((m) => m.text), ['chat during the outage']);
  await shot(a, 'outage-merged');
  await closeAll([a, b]);
});

test('tabs of one browser during an outage: unsent edits are neither doubled nor lost', async () => {
  const room = 'tabs';
  const context = await browser.newContext({ viewport: VIEWPORT });
  const a = await openIn(context, server, room);
  const peer = await openPage(browser, server, room); // someone else, elsewhere
  await Promise.all([synced(a), synced(peer)]);
  await caretAt(a, 0);
  await a.keyboard.type('start\n');
  await converged([a, peer], room);
  await until(() => a.evaluate(() => !!navigator.serviceWorker.controller), 'the service worker controlling A');

  await server.stop();
  await until(() => a.evaluate(() => window.tandemDemo.client.status !== 'online'), 'A disconnected');
  await caretAt(a, -1);
  await a.keyboard.type('A1 ');
  // a second tab opens while A still holds unsent edits: it must not take them over
  const b = await openIn(context, server, room);
  assert.notEqual(await a.evaluate(() => window.tandemDemo.tab), await b.evaluate(() => window.tandemDemo.tab));
  assert.equal(await editorText(b), '', 'a new tab does not restore another open tab\'s edits');
  await caretAt(b, 0);
  await b.keyboard.type('B1 ');
  // A is closed before it could send; the next tab adopts its edits
  await a.close();
  const c = await openIn(context, server, room);
  assert.equal(await editorText(c), 'start\nA1 ', 'the closed tab\'s unsent edits are adopted');
  await shot(c, 'tabs-adopted');

  await server.start();
  const text = await converged([b, c, peer], room, 40000);
  const count = (needle) => text.split(needle).length - 1;
  assert.equal(count('A1 '), 1, text);
  assert.equal(count('B1 '), 1, text);
  assert.equal(count('start'), 1, text);
  await context.close();
  await peer.context().close();
});

test('a server without --dev: the page says it has no token instead of failing silently', async () => {
  const prod = new Server({ dev: false });
  const secret = join(prod.dataDir, 'jwt.secret');
  writeFileSync(secret, 'x'.repeat(48));
  prod.args = ['--secret-file', secret];
  await prod.start();
  try {
    const page = await openPage(browser, prod, 'closed');
    await until(() => page.evaluate(() => !document.getElementById('notice').hidden), 'the notice', 10000);
    assert.match(await page.textContent('#notice'), /not in development mode/);
    assert.equal(await page.evaluate(() => window.tandemDemo.doc.synced), false);
    await shot(page, 'no-dev-notice');
    await page.context().close();
  } finally {
    await prod.close();
  }
});

test('a large paste reaches the other page; one too large for a frame is refused with a message', async () => {
  const room = 'big';
  const [a, b] = await Promise.all([openPage(browser, server, room), openPage(browser, server, room)]);
  await Promise.all([synced(a), synced(b)]);
  const paste = (page, n) => page.evaluate((len) => {
    const { view } = window.tandemDemo;
    const line = 'lorem ipsum dolor sit amet, 😀 consectetur adipiscing elit\n';
    let text = line.repeat(Math.ceil(len / line.length)).slice(0, len);
    if (/[\ud800-\udbff]$/.test(text)) text = text.slice(0, -1) + 'x'; // never half an emoji
    view.dispatch(view.state.replaceSelection(text), { userEvent: 'input.paste' });
  }, n);
  await paste(a, 100000);
  const text = await converged([a, b], room, 30000);
  assert.equal(text.length, 100000);
  await paste(a, 300000);
  await until(() => a.evaluate(() => [...document.querySelectorAll('.toast')].some((t) => t.textContent.includes('too large'))), 'the refusal message');
  assert.equal((await editorText(a)).length, 100000, 'the refused paste changed nothing');
  assert.equal((await converged([a, b], room)).length, 100000);
  assert.equal(await a.evaluate(() => window.tandemDemo.client.status), 'online');
  await closeAll([a, b]);
});
