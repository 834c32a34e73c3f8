// editor.js - the CodeMirror 6 editor: line numbers, history, markdown
// highlighting, a dark theme, plus the remote-cursor field from binding.js.
import { EditorState, Compartment } from '@codemirror/state';
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, dropCursor, rectangularSelection, highlightSpecialChars, placeholder,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { syntaxHighlighting, defaultHighlightStyle, HighlightStyle, indentOnInput, bracketMatching } from '@codemirror/language';
import { markdown } from '@codemirror/lang-markdown';
import { tags as t } from '@lezer/highlight';
import { remoteCursors } from './binding.js';

const darkHighlight = HighlightStyle.define([
  { tag: t.heading, color: '#c4b5fd', fontWeight: '700' },
  { tag: [t.strong], fontWeight: '700', color: '#f0abfc' },
  { tag: [t.emphasis], fontStyle: 'italic', color: '#fbcfe8' },
  { tag: [t.link, t.url], color: '#67e8f9', textDecoration: 'underline' },
  { tag: [t.monospace], color: '#fcd34d' },
  { tag: [t.quote], color: '#94a3b8', fontStyle: 'italic' },
  { tag: [t.list], color: '#a5b4fc' },
  { tag: [t.processingInstruction, t.meta], color: '#64748b' },
]);

const theme = EditorView.theme({
  '&': { backgroundColor: 'transparent', color: '#e6e8ef' },
  '.cm-content': { caretColor: '#e6e8ef', padding: '14px 0' },
  '.cm-cursor, .cm-dropCursor': { borderLeftColor: '#e6e8ef', borderLeftWidth: '2px' },
  '&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection': { backgroundColor: '#334155 !important' },
  '.cm-gutters': { backgroundColor: 'transparent', color: '#4b5563', border: 'none' },
  '.cm-activeLine': { backgroundColor: 'rgba(99,102,241,.06)' },
  '.cm-activeLineGutter': { backgroundColor: 'transparent', color: '#9ca3af' },
  '.cm-line': { padding: '0 16px 0 8px' },
  '.cm-placeholder': { color: '#4b5563' },
}, { dark: true });

/** Holds the read-only switch (a subscription with read access only). */
export const readOnly = new Compartment();
export const readOnlyExtension = (ro) => [EditorState.readOnly.of(ro), EditorView.editable.of(!ro)];

/**
 * A new editor in parent. extra: more extensions (the binding's listener).
 * @returns {EditorView}
 */
export function createEditor(parent, doc, extra = []) {
  return new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        drawSelection(),
        dropCursor(),
        EditorState.allowMultipleSelections.of(true),
        indentOnInput(),
        syntaxHighlighting(darkHighlight),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        bracketMatching(),
        rectangularSelection(),
        highlightActiveLine(),
        keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
        markdown(),
        EditorView.lineWrapping,
        placeholder('Start typing — everyone in this room sees it live.'),
        theme,
        remoteCursors,
        readOnly.of(readOnlyExtension(false)),
        ...extra,
      ],
    }),
  });
}
