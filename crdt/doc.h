/* doc.h - the text document: a FugueMax sequence CRDT over Unicode code points
 * (prefix crdt_doc_).
 *
 * A crdt_doc is one replica of one text. Local edits (insert, delete) take
 * code-point positions; each inserted character gets an id (client, clock) and
 * each deleted character costs the deleter one clock. Replicas exchange updates:
 * crdt_doc_diff(remote state vector) encodes exactly the operations the remote
 * lacks, crdt_doc_apply() merges one. Applying is idempotent and commutative;
 * an update whose causal dependencies are missing is held pending (bounded) and
 * applied when they arrive. Concurrent inserts at one place never interleave
 * (FugueMax; see docs/CRDT.md).
 *
 * Ownership: the document owns everything it holds; output goes into caller
 * buffers (tbuf, crdt_sv, crdt_ds). Input bytes are only read during the call.
 * Errors: every function that can fail returns a tdm_err and, on error, leaves
 * the document exactly as it was, with one exception: running out of memory
 * (TDM_ENOMEM) or a size cap (TDM_ETOOBIG) in the middle of applying a change
 * can leave a prefix of that change applied. The document stays consistent and
 * convergent; a state-vector resync fetches the rest.
 * Threads: a document is single-threaded: one thread at a time may call any
 * function on it (no internal locking, no globals, no I/O).
 */
#ifndef TANDEM_DOC_H
#define TANDEM_DOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"
#include "buf.h"
#include "ids.h"

typedef struct crdt_doc crdt_doc;
struct ot_op;

typedef struct crdt_doc_opts {
    uint64_t client;          /* this replica's client id (any value; unique per replica) */
    bool gc;                  /* drop the content of deleted text (length-only tombstones) */
    size_t max_pending_ops;   /* operations held pending; 0 = 100000 */
    size_t max_pending_bytes; /* text bytes held pending; 0 = 16 MiB */
    size_t max_update_bytes;  /* largest update/snapshot accepted; 0 = 256 MiB */
} crdt_doc_opts;

/* crdt_doc_new - an empty document for client `client` with default options. */
tdm_err crdt_doc_new(uint64_t client, crdt_doc **out);
/* crdt_doc_new_opts - an empty document with options. */
tdm_err crdt_doc_new_opts(const crdt_doc_opts *opts, crdt_doc **out);
void crdt_doc_free(crdt_doc *doc);
uint64_t crdt_doc_client(const crdt_doc *doc);

/* crdt_doc_insert - insert UTF-8 text[0..n) at code-point position pos
 * (0 <= pos <= len). TDM_EUTF8 for invalid UTF-8, TDM_ERANGE past the end. */
tdm_err crdt_doc_insert(crdt_doc *doc, size_t pos, const char *text, size_t n);
/* crdt_doc_delete - delete `count` code points starting at pos. */
tdm_err crdt_doc_delete(crdt_doc *doc, size_t pos, size_t count);

/* Lengths of the visible text. */
size_t crdt_doc_len(const crdt_doc *doc);       /* code points */
size_t crdt_doc_len_utf16(const crdt_doc *doc); /* UTF-16 code units */
size_t crdt_doc_len_bytes(const crdt_doc *doc); /* UTF-8 bytes */

/* crdt_doc_text - append the whole text (UTF-8, no terminator) to out. */
tdm_err crdt_doc_text(crdt_doc *doc, tbuf *out);
/* crdt_doc_text_range - append code points [pos, pos+count) to out. */
tdm_err crdt_doc_text_range(crdt_doc *doc, size_t pos, size_t count, tbuf *out);

/* crdt_doc_state_vector - set sv to this document's state vector. */
tdm_err crdt_doc_state_vector(const crdt_doc *doc, crdt_sv *sv);
/* crdt_doc_delete_set - set ds to the ids of every deleted character. */
tdm_err crdt_doc_delete_set(crdt_doc *doc, crdt_ds *ds);

/* crdt_doc_diff - append an update holding every operation this document has
 * and `remote` lacks (remote NULL: everything). Operations held pending are not
 * included. */
tdm_err crdt_doc_diff(crdt_doc *doc, const crdt_sv *remote, tbuf *out);
/* crdt_doc_diff_range - like crdt_doc_diff, but only operations below `upto`
 * (for each client c, clocks < upto[c]; upto NULL: no bound). With a causally
 * complete `upto` (a state vector some replica had) the result brings a
 * replica at `remote` to exactly that version, except that text this document
 * has garbage-collected travels as deleted tombstones (its content is gone),
 * so an old version that still showed it cannot be rebuilt from a gc'd doc. */
tdm_err crdt_doc_diff_range(crdt_doc *doc, const crdt_sv *remote, const crdt_sv *upto, tbuf *out);
/* crdt_doc_apply - merge an update (untrusted bytes). Already-known operations
 * are skipped; operations with missing dependencies are held pending (a
 * re-sent waiting operation is held once).
 * Errors: TDM_EMALFORMED / TDM_EVERSION / TDM_EUTF8 for bad bytes;
 * TDM_ETOOBIG for an update over max_update_bytes or one that would take the
 * document past 2^31-1 characters (tombstones included); TDM_EPENDING_FULL
 * when the pending bound would be exceeded. On these errors nothing from the
 * update is applied; only TDM_ENOMEM in the middle (see the file comment) can
 * leave a prefix applied. */
tdm_err crdt_doc_apply(crdt_doc *doc, const uint8_t *p, size_t n);
/* crdt_doc_pending - operations currently held pending. */
size_t crdt_doc_pending(const crdt_doc *doc);

/* crdt_doc_snapshot - append the whole document in the compact snapshot form. */
tdm_err crdt_doc_snapshot(crdt_doc *doc, tbuf *out);
/* crdt_doc_load - load a snapshot (untrusted) into an EMPTY document
 * (TDM_EINVAL otherwise). The document keeps its own client id. */
tdm_err crdt_doc_load(crdt_doc *doc, const uint8_t *p, size_t n);

/* crdt_doc_gc - drop the content of every deleted character now and compact
 * the text store. Convergence is unaffected. */
tdm_err crdt_doc_gc(crdt_doc *doc);

/* crdt_doc_observer_fn - receives one change of the visible text as an OT
 * operation (ot.h) whose base is the text before the change: applying every
 * delta, in order, to a copy of the old text gives the new text exactly.
 * Called at the end of crdt_doc_insert, crdt_doc_delete, crdt_doc_apply (one
 * operation for the whole update, released pending operations included) and
 * crdt_doc_load; not called when the visible text did not change. `delta` is
 * owned by the document and valid only during the call; clone it to keep it.
 * When the delta could not be built (out of memory), or a crdt_doc_apply_ot
 * failed part-way, the call has delta NULL and err set: the observer must
 * re-read the text. `local` is true for
 * crdt_doc_insert/delete. The observer must not modify the document. */
typedef void (*crdt_doc_observer_fn)(void *ctx, const struct ot_op *delta, tdm_err err, bool local);
/* crdt_doc_observe - set the one observer of the document (fn NULL: none). */
void crdt_doc_observe(crdt_doc *doc, crdt_doc_observer_fn fn, void *ctx);

/* crdt_doc_apply_ot - apply an OT operation (ot.h) over the visible text as
 * local edits of this document's client: a client that speaks OT can edit a
 * CRDT document. TDM_EBASELEN when the operation's base length is not the
 * document's length (nothing changes). The observer sees the operation as one
 * local change. */
tdm_err crdt_doc_apply_ot(crdt_doc *doc, const struct ot_op *op);
/* crdt_doc_apply_ot_as - the same, but the edits are made with ids of
 * `client` (e.g. a thin OT client the server edits for), continuing that
 * client's clocks in this document. Only one replica may ever make edits as
 * a given client id: give each OT client its own fresh id. TDM_ETOOBIG when
 * the client table is full. */
tdm_err crdt_doc_apply_ot_as(crdt_doc *doc, uint64_t client, const struct ot_op *op);

/* crdt_doc_ot_between - the OT operation that turns the text at version `a`
 * into the text at version `b` (state vectors this document covers; a need not
 * precede b). *out is a new operation the caller frees with ot_op_free.
 * TDM_ENOTFOUND when the document lacks one of the versions, or when text
 * visible in b but not in a was garbage-collected.
 * Cost: O((items + D) log D) for D delete records. */
tdm_err crdt_doc_ot_between(crdt_doc *doc, const crdt_sv *a, const crdt_sv *b, struct ot_op **out);

typedef struct crdt_doc_stats {
    size_t items;         /* runs in the sequence */
    size_t clients;       /* known clients */
    size_t content_bytes; /* bytes held in the text store */
    size_t mem_bytes;     /* heap bytes held by the document */
} crdt_doc_stats;
void crdt_doc_get_stats(const crdt_doc *doc, crdt_doc_stats *st);

#endif
