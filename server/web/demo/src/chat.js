// chat.js - the chat panel: messages in chat-id order (pending ones, not yet
// acknowledged by the server, at the end and dimmed), timestamps, and the
// "X is typing…" line.
import { avatar, colorFor } from './identity.js';

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

function stamp(ms) {
  const d = new Date(ms);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeFmt.format(d) : dayFmt.format(d);
}

export class ChatView {
  /** @param {{log: HTMLElement, typing: HTMLElement, colorOf: (user:string)=>string|undefined}} o */
  constructor(o) {
    this.log = o.log;
    this.typingEl = o.typing;
    this.colorOf = o.colorOf;
    this.byKey = new Map(); // key -> message
    this.render();
  }

  /** Adds or replaces a message {key, id?, time, user, name, text, pending?}. */
  upsert(m) {
    this.byKey.set(m.key, m);
    this.render();
  }

  remove(key) {
    if (this.byKey.delete(key)) this.render();
  }

  render() {
    const msgs = [...this.byKey.values()].sort((a, b) => {
      if (!!a.pending !== !!b.pending) return a.pending ? 1 : -1;
      return (a.id ?? 0) - (b.id ?? 0) || a.time - b.time;
    });
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    if (msgs.length === 0) {
      const li = document.createElement('li');
      li.className = 'chat-empty';
      li.textContent = 'No messages yet. Say hello!';
      this.log.replaceChildren(li);
      return;
    }
    this.log.replaceChildren(...msgs.map((m) => {
      const li = document.createElement('li');
      li.className = 'chat-msg' + (m.pending ? ' pending' : '');
      if (m.id != null) li.dataset.id = String(m.id);
      li.append(avatar(m.name || m.user, this.colorOf(m.user) || colorFor(m.user)));
      const body = document.createElement('div');
      const meta = document.createElement('div');
      meta.className = 'meta';
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = m.name || m.user;
      const t = document.createElement('time');
      t.dateTime = new Date(m.time).toISOString();
      t.textContent = m.pending ? 'sending…' : stamp(m.time);
      t.title = new Date(m.time).toLocaleString();
      meta.append(who, t);
      const text = document.createElement('div');
      text.className = 'text';
      text.textContent = m.text;
      body.append(meta, text);
      li.append(body);
      return li;
    }));
    if (atBottom || msgs[msgs.length - 1].mine) this.log.scrollTop = this.log.scrollHeight;
  }

  /** names: display names of the people typing now (not you). */
  setTyping(names) {
    let s = '';
    if (names.length === 1) s = `${names[0]} is typing…`;
    else if (names.length === 2) s = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) s = `${names.length} people are typing…`;
    this.typingEl.textContent = s;
  }
}
