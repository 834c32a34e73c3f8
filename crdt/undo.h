/* undo.h - undo/redo of a document's local edits (prefix crdt_undo_).
 *
 * An undo manager follows the local edits of one document (its own client is
 * the local origin). After local edits the application calls
 * crdt_undo_record(um, now_ms): the edits made since the previous record join
 * the newest undo step when they come within the capture window of it (500 ms
 * by default), else they start a new step. Time is passed in; nothing here
 * reads a clock.
 *
 * crdt_undo_undo reverts the newest step with new local edits: characters the
 * step inserted are deleted wherever they now are (those already deleted stay
 * deleted), and text the step deleted is inserted again where it stood
 * (anchored to the deleted characters, so remote edits made in between
 * survive). crdt_undo_redo reverts the undo the same way. A new recorded edit
 * clears the redo stack. Undoing text deletions needs that text: with
 * opts.gc the document drops it at deletion, before the manager can copy it,
 * so such parts cannot be restored (crdt_undo_undo reports TDM_ENOTFOUND after
 * doing the rest).
 *
 * Bounds: at most `max_steps` steps per stack are kept (oldest dropped), and
 * the deleted text held by all steps is kept under `max_bytes` by dropping the
 * oldest steps, redo first; the newest undo step is always kept, so one step
 * larger than max_bytes still undoes.
 * Threads: the manager follows its document's rule (one thread at a time) and
 * must be freed before the document.
 */
#ifndef TANDEM_UNDO_H
#define TANDEM_UNDO_H

#include <stddef.h>
#include <stdint.h>
#include "doc.h"

typedef struct crdt_undo crdt_undo;

typedef struct crdt_undo_opts {
    uint64_t capture_ms; /* group edits closer than this (0 = 500) */
    size_t max_steps;    /* 0 = 100 */
    size_t max_bytes;    /* deleted text kept for undo; 0 = 16 MiB */
} crdt_undo_opts;

/* crdt_undo_new - a manager for doc's edits from now on (opts may be NULL). */
tdm_err crdt_undo_new(crdt_doc *doc, const crdt_undo_opts *opts, crdt_undo **out);
void crdt_undo_free(crdt_undo *um);
/* crdt_undo_record - capture the local edits made since the last call. */
tdm_err crdt_undo_record(crdt_undo *um, uint64_t now_ms);
/* crdt_undo_stop_capturing - the next recorded edit starts a new step even
 * within the capture window (e.g. after the cursor moved). */
void crdt_undo_stop_capturing(crdt_undo *um);
/* crdt_undo_undo / crdt_undo_redo - revert the newest step; *did (may be NULL)
 * tells whether there was a step. Unrecorded local edits are recorded first. */
tdm_err crdt_undo_undo(crdt_undo *um, uint64_t now_ms, bool *did);
tdm_err crdt_undo_redo(crdt_undo *um, uint64_t now_ms, bool *did);
size_t crdt_undo_depth(const crdt_undo *um); /* undo steps */
size_t crdt_undo_redo_depth(const crdt_undo *um);
/* crdt_undo_clear - drop every step. */
void crdt_undo_clear(crdt_undo *um);

#endif
