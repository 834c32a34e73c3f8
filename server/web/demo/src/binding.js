// binding.js - CodeMirror 6 <-> a tandem OT document.
//
// Local transactions become OT operations (docs/CRDT.md "OT operations":
// an array of components, n > 0 retain, a string insert, -n delete); remote
// operations become CodeMirror changes dispatched with the `remote`
// annotation, so the update listener does not send them back. Operations on
// the wire count Unicode code points, CodeMirror counts UTF-16 units: `unit`
// says which one the document's API uses ('cp' or 'utf16') and the
// conversions below go through the editor text before the change.
import { Annotation, StateEffect, StateField } from '@codemirror/state';
import { Decoration, EditorView, WidgetType } from '@codemirror/view';
import { advanceCp, cpLength } from './positions.js';

export const remote = Annotation.define();

/**
 * The OT operation (in `unit`) equivalent to a CodeMirror ChangeSet applied
 * to oldText. In UTF-16 the text is not read (pass null: no O(document)
 * string per keystroke); code points need it.
 */
export function opFromChanges(changes, oldText, unit = 'cp') {
  const op = [];
  const oldLen = changes.length; // the length of the document the changes apply to
  const len = (from, to) => (unit === 'cp' ? cpLength(oldText, from, to) : to - from);
  const push = (c) => {
    const last = op[op.length - 1];
    if (typeof c === 'number' && c > 0 && typeof last === 'number' && last > 0) op[op.length - 1] += c;
    else if (typeof c === 'number' && c < 0 && typeof last === 'number' && last < 0) op[op.length - 1] += c;
    else if (typeof c === 'string' && typeof last === 'string') op[op.length - 1] += c;
    else op.push(c);
  };
  let pos = 0;
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    if (fromA > pos) push(len(pos, fromA));
    const ins = inserted.toString();
    if (ins) push(ins);
    if (toA > fromA) push(-len(fromA, toA));
    pos = toA;
  });
  if (pos < oldLen) push(len(pos, oldLen));
  return op;
}

/** CodeMirror change specs (UTF-16, positions in oldText) for an OT operation in `unit`. */
export function changesFromOp(op, oldText, unit = 'cp') {
  const out = [];
  let pos = 0; // UTF-16 offset in oldText
  const adv = (n) => (unit === 'cp' ? advanceCp(oldText, pos, n) : Math.min(oldText.length, pos + n));
  for (const c of op) {
    if (typeof c === 'string') {
      if (c) out.push({ from: pos, insert: c });
    } else if (c > 0) {
      pos = adv(c);
    } else if (c < 0) {
      const to = adv(-c);
      out.push({ from: pos, to });
      pos = to;
    }
  }
  return out;
}

/** A UTF-16 offset in text for a position given in `unit`. */
export function toUtf16(text, p, unit = 'cp') {
  const n = Math.max(0, Math.floor(Number(p) || 0));
  return unit === 'cp' ? advanceCp(text, 0, n) : Math.min(text.length, n);
}

/** A position in `unit` for a UTF-16 offset in text. */
export function fromUtf16(text, off, unit = 'cp') {
  return unit === 'cp' ? cpLength(text, 0, Math.min(off, text.length)) : off;
}

/* ---- remote cursors: a decoration field replaced wholesale by an effect ---- */

class CaretWidget extends WidgetType {
  constructor(name, color, user) {
    super();
    this.name = name;
    this.color = color;
    this.user = user;
  }
  eq(o) { return o.name === this.name && o.color === this.color && o.user === this.user; }
  toDOM() {
    const el = document.createElement('span');
    el.className = 'cm-remote-caret';
    el.style.setProperty('--c', this.color);
    el.dataset.user = this.user;
    el.setAttribute('aria-label', `${this.name}'s cursor`);
    const label = document.createElement('span');
    label.className = 'cm-remote-label';
    label.textContent = this.name;
    el.appendChild(label);
    el.appendChild(document.createTextNode('\u2060'));
    return el;
  }
  ignoreEvent() { return true; }
}

export const setRemoteCursors = StateEffect.define();

/**
 * Remote cursors: the effect carries [{user, name, color, anchor, head}]
 * with UTF-16 offsets in the current document; between effects the
 * decorations are mapped through every change, so they stay in place while
 * text is typed before them.
 */
export const remoteCursors = StateField.define({
  create: () => Decoration.none,
  update(deco, tr) {
    deco = deco.map(tr.changes);
    for (const e of tr.effects) {
      if (!e.is(setRemoteCursors)) continue;
      const len = tr.state.doc.length;
      const ranges = [];
      for (const c of e.value) {
        const head = Math.min(Math.max(0, c.head), len);
        const anchor = Math.min(Math.max(0, c.anchor ?? c.head), len);
        const from = Math.min(anchor, head), to = Math.max(anchor, head);
        if (to > from) {
          ranges.push(Decoration.mark({
            class: 'cm-remote-selection',
            attributes: { style: `--c: ${c.color}`, 'data-user': c.user },
          }).range(from, to));
        }
        ranges.push(Decoration.widget({ widget: new CaretWidget(c.name, c.color, c.user), side: 1 }).range(head));
      }
      deco = Decoration.set(ranges, true);
    }
    return deco;
  },
  provide: (f) => EditorView.decorations.from(f),
});

/** The remote cursors' UTF-16 positions as the editor state holds them (tests read this). */
export function remoteCursorPositions(state) {
  const out = [];
  state.field(remoteCursors).between(0, state.doc.length, (from, _to, d) => {
    if (d.spec.widget) out.push({ user: d.spec.widget.user, name: d.spec.widget.name, pos: from });
  });
  return out;
}
