/* store.h - durable storage of documents, chat, push subscriptions and OT
 * history in one LMDB environment (prefix store_).
 *
 * One data directory holds one LMDB environment (data.mdb, lock.mdb). A store
 * handle owns the environment and, unless opened read-only, one writer thread.
 *
 * Documents are named by a byte string of 1..STORE_NAME_MAX bytes (for the
 * server: the room name). A name is mapped once to a compact 64-bit document
 * id; chat and OT history hang off the same id, so a "room" is a document.
 * Per document the store keeps an append-only log of CRDT updates (sequence
 * numbers 1, 2, 3, ...), at most one snapshot, metadata, chat messages and OT
 * operations. docs/STORAGE.md gives the key layout byte by byte.
 *
 * Durability. Every write is made by the writer thread. A write is durable
 * when its callback (async functions) reports TDM_OK or its synchronous
 * function returns TDM_OK: its transaction has committed with fsync (LMDB
 * without MDB_NOSYNC/MDB_NOMETASYNC). Group commit: the writer takes every job
 * queued while it was busy (up to STORE_BATCH_MAX jobs / STORE_BATCH_BYTES),
 * writes them in ONE transaction, commits, and only then calls the callbacks,
 * in the order the jobs were queued. Jobs commit in queue order: when a job's
 * callback runs, every job queued before it has been decided. With
 * opts.gather_us (off by default; the server sets 20 ms) the writer starts a
 * transaction at most that often under load: fewer, larger commits (fewer
 * fsyncs and page writes per job) for up to that much later callbacks; a job
 * arriving at an idle store commits at once.
 *
 * The journal. Updates and OT records are first appended to one store-wide
 * journal (so the records of a commit share a few pages) and moved to their
 * documents' logs in one transaction once its oldest record is
 * opts.journal_ms old (also when the writer is idle), at opts.journal_records
 * records or 4 MiB, before a compaction or deletion, at close, and at open
 * (a journal a crash left behind).
 * A batch whose records would fill more journal pages than their documents'
 * own last pages (a few documents written many times) goes straight into the
 * trees when the journal is empty. Every read sees the journal too: nothing
 * about it shows in the API except store_stats and opts.no_journal.
 *
 * Map size. The map starts large (opts.map_size, default 1 GiB; the file is
 * sparse). When a write transaction hits MDB_MAP_FULL the writer aborts it,
 * doubles the map (capped at opts.map_max) and retries the whole batch. When
 * the cap is reached the batch fails with TDM_EFULL and nothing of it is
 * written; earlier data stays intact and readable.
 *
 * Compaction. After a commit that brings a document's log past
 * opts.compact_updates entries or opts.compact_bytes bytes (and to at least
 * 1/opts.compact_share of the snapshot's size), the writer merges
 * snapshot + log into a new snapshot and deletes the log entries it
 * supersedes, in one transaction: the text and state vector loaded afterwards
 * are identical. store_compact_doc/store_compact_all do the same on demand.
 *
 * Stored data is trusted only after validation: every value carries a CRC-32
 * and a format byte; a mismatch is TDM_ECORRUPT, never a partial result.
 *
 * Errors (tdm_err, crdt/error.h). LMDB and errno codes are mapped here once:
 *   TDM_EINVAL    bad argument, a write on a read-only store, or a call that
 *                 would wait for the writer from a thread where that deadlocks
 *                 (a store callback);
 *   TDM_ETOOBIG   a name, value or record over its cap, or a full queue;
 *   TDM_ENOTFOUND an unknown document (or push subscription);
 *   TDM_EFULL     the map cannot grow further (opts.map_max, or the disk);
 *   TDM_ECORRUPT  a stored value failed validation (CRC, format, decoding);
 *   TDM_EIO       any other LMDB or file-system failure;
 *   TDM_ENOMEM    allocation failed.
 *
 * Threads. store_open and store_close are called by one owning thread, with
 * no other call in progress on the handle during store_close. Every other
 * function may be called from any thread, concurrently. Read functions run
 * their own read-only transaction (MDB_NOTLS) and never wait for the writer;
 * the only exception is a map resize, which briefly waits for transactions in
 * progress to finish. Callbacks:
 *   - store_done_fn (async writes) runs on the writer thread after the commit.
 *     It may call read functions and the *_async functions (which then never
 *     block: a full queue is TDM_ETOOBIG), but not the synchronous write
 *     functions (TDM_EINVAL) or store_close (which returns nothing: calling
 *     it there is a caller bug). Keep it short: the next batch
 *     waits for it.
 *   - enumeration callbacks (list, range, verify problems) run on the calling
 *     thread inside a read transaction. They may call read functions; calling
 *     a synchronous write function from them is TDM_EINVAL (it could deadlock
 *     with a map resize). Pointers they receive are valid only during the call.
 *   - the store_compact_all progress callback runs on the calling thread
 *     between documents, outside any transaction: it may call anything but
 *     store_close.
 * Multiple processes may open the same directory (LMDB serializes writers
 * across processes); a map grown by another process is picked up. LMDB rules:
 * never open one directory twice in one process, never fork with a store open
 * and use it in the child.
 */
#ifndef TANDEM_STORE_H
#define TANDEM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"
#include "doc.h"

/* Hard caps. */
#define STORE_NAME_MAX          255u               /* document / room name bytes */
#define STORE_UPDATE_MAX        ((size_t)64 << 20) /* one update or OT op, bytes */
#define STORE_CHAT_USER_MAX     255u               /* chat user id bytes */
#define STORE_CHAT_NAME_MAX     255u               /* chat display name bytes */
#define STORE_CHAT_CMID_MAX     64u                /* chat client message id bytes */
#define STORE_CHAT_TEXT_MAX     16384u             /* chat text bytes */
#define STORE_PUSH_USER_MAX     255u               /* push subscription user id bytes */
#define STORE_PUSH_ENDPOINT_MAX 2048u              /* push endpoint URL bytes */
#define STORE_PUSH_KEY_MAX      128u               /* p256dh and auth, bytes each */
#define STORE_PUSH_ROOMS_MAX    256u               /* followed rooms per subscription */
#define STORE_BATCH_MAX         16384u             /* jobs per write transaction */
#define STORE_BATCH_BYTES       ((size_t)32 << 20) /* payload bytes per write transaction */

typedef struct store store;

typedef struct store_opts {
    size_t map_size;  /* initial map size, bytes; 0 = 1 GiB (raised to cover the file's data) */
    size_t map_max;   /* growth cap, bytes; 0 = 1 TiB; <= map_size disables growth */
    bool read_only;   /* open MDB_RDONLY: no writer thread; writes are TDM_EINVAL */
    bool no_create;   /* TDM_ENOTFOUND when dir holds no database (never creates) */
    size_t queue_max; /* async jobs queued at most; 0 = 65536 */
    size_t queue_max_bytes;   /* payload bytes queued at most; 0 = 64 MiB */
    bool queue_block;         /* full queue: *_async blocks (true) or TDM_ETOOBIG (false) */
    uint64_t compact_updates; /* auto-compact past this many log entries; 0 = 1000 */
    uint64_t compact_bytes;   /* ... or this many log payload bytes; 0 = 1 MiB */
    uint64_t compact_share;   /* ... and only once log bytes >= snapshot bytes / compact_share
                                 (amortizes rewriting big snapshots); 0 = 1 */
    bool no_auto_compact;     /* never compact automatically */
    bool compact_gc;          /* compaction drops deleted text (crdt_doc_gc) */
    uint64_t ot_retention;    /* OT versions kept per document; 0 = 10000 */
    uint64_t chat_retention;  /* chat messages kept per room; 0 = 100000 */
    unsigned max_readers;     /* concurrent read transactions; 0 = 126 */
    uint32_t gather_us;       /* 0 = off. Under load (the last batch or the queue held more
                                 than one job), start a write transaction at most this often
                                 (capped at STORE_GATHER_MAX_US): jobs queued less than gather_us
                                 after the previous commit started wait for the rest of that
                                 interval, so one fsync covers more jobs (an idle store, or
                                 one caller writing synchronously one job at a time, commits
                                 at once). For many independent writers (the server); it
                                 slows a caller that waits for its callbacks before queueing
                                 more (a window of W jobs: at most W per gather_us).
                                 TANDEM_STORE_GATHER_US in the environment (decimal
                                 microseconds, 0 = off) overrides it, for measurements. */
    uint32_t journal_records; /* the journal moves at this many records; 0 = 4096 */
    uint32_t journal_ms;      /* ... or when its oldest record is this old; 0 = 1000 */
    bool journal_always;      /* never write a dense batch straight into the trees (tests that
                                 need records in the journal, e.g. at a crash) */
    bool no_journal;          /* write updates and OT records straight into the documents' trees
                                 (once a journal left by an earlier run has moved); for
                                 measurements. TANDEM_STORE_JOURNAL=0 in the environment sets it. */
} store_opts;

#define STORE_GATHER_MAX_US 1000000u /* opts.gather_us at most (1 s) */

/* store_open - open (and unless opts->no_create or read_only, create) the
 * database in directory `dir`, creating the directory (mode 0700) when needed.
 * opts may be NULL (all defaults). Clears stale reader slots of dead processes
 * (mdb_reader_check). Starts the writer thread unless read-only.
 * On success *out is a new handle the caller releases with store_close.
 * Errors: TDM_EINVAL (NULL args, opts out of range), TDM_ENOTFOUND (no_create
 * or read_only and no database there), TDM_EVERSION (a newer storage format),
 * TDM_ECORRUPT (not an LMDB file or a bad format record), TDM_EIO, TDM_ENOMEM. */
tdm_err store_open(const char *dir, const store_opts *opts, store **out);

/* store_close - commit everything still queued (callbacks run), stop the
 * writer, close the environment and free the handle. NULL is a no-op. Must not
 * be called from a store callback. Jobs queued after closing began (also from
 * callbacks run while draining) are refused with TDM_EINVAL. */
void store_close(store *st);

/* store_flush - wait until every job queued before this call (by any thread)
 * has been decided and its callback has run. Errors: TDM_EINVAL (read-only,
 * closed, or called from a store callback). */
tdm_err store_flush(store *st);

/* ---- Document metadata ------------------------------------------------- */

typedef struct store_doc_meta {
    uint64_t id;             /* compact document id (never reused) */
    int64_t created_ms;      /* Unix time, ms */
    int64_t updated_ms;      /* last change of log or snapshot */
    uint64_t updates;        /* log entries held now (not yet merged into the snapshot) */
    uint64_t log_bytes;      /* update bytes of those entries */
    uint64_t snapshot_bytes; /* bytes of the snapshot; 0 = none */
    uint64_t next_seq;       /* sequence number of the next update (first is 1) */
    uint64_t clients;        /* clients in the state vector as of the last compaction */
    uint64_t text_len;       /* code points of text as of the last compaction */
    uint64_t compactions;    /* compactions done */
    uint64_t chat_count;     /* chat messages held */
    uint64_t chat_next_id;   /* id of the next chat message (first is 1) */
    uint64_t ot_first;       /* OT versions held: [ot_first, ot_next) */
    uint64_t ot_next;
} store_doc_meta;

/* store_doc_create - make sure document `name` exists (an empty document with
 * no log or snapshot). *created (may be NULL) tells whether it was new.
 * Synchronous (waits for the writer). Errors: TDM_EINVAL, TDM_ETOOBIG (name),
 * TDM_EFULL, TDM_EIO. */
tdm_err store_doc_create(store *st, const void *name, size_t name_len, bool *created);

/* store_doc_info - the metadata of one document. TDM_ENOTFOUND if unknown,
 * TDM_ECORRUPT for a bad metadata record. */
tdm_err store_doc_info(store *st, const void *name, size_t name_len, store_doc_meta *meta);

/* store_doc_fn - one document of a listing; return non-zero to stop. */
typedef int (*store_doc_fn)(void *ctx, const uint8_t *name, size_t name_len,
                            const store_doc_meta *meta);
/* store_list_docs - call fn for every document in name byte order, inside one
 * read transaction (a consistent view). Stopping early is TDM_OK.
 * *count (may be NULL) receives the number of documents visited. */
tdm_err store_list_docs(store *st, store_doc_fn fn, void *ctx, size_t *count);

/* store_doc_delete - remove a document for good: log, snapshot, metadata,
 * chat and OT history, in one transaction. Synchronous. TDM_ENOTFOUND if
 * unknown. The id is not reused. */
tdm_err store_doc_delete(store *st, const void *name, size_t name_len);

/* ---- Update log ---------------------------------------------------------- */

/* store_done_fn - the outcome of an async job, on the writer thread, after
 * the commit. err TDM_OK: durable, and `id` is the assigned number (update
 * sequence, chat message id, OT version). `duplicate` is true only for a chat
 * message whose (user, client message id) was stored before: nothing new was
 * written and `id` is the earlier message's id. */
typedef void (*store_done_fn)(void *ctx, tdm_err err, uint64_t id, bool duplicate);

/* store_append_async - queue update bytes p[0..n) (a CRDT update the caller
 * has validated, e.g. one crdt_doc_apply accepted) for document `name`,
 * creating the document if needed. Name and bytes are copied; cb (may be
 * NULL) is called once with the sequence number or the error, unless this
 * function itself returns an error (then the job was not queued and cb is
 * never called). A full queue (opts.queue_max / queue_max_bytes) returns
 * TDM_ETOOBIG immediately, or blocks until there is room when
 * opts.queue_block is set (never from the writer thread).
 * Errors: TDM_EINVAL (n == 0, closed or read-only), TDM_ETOOBIG, TDM_ENOMEM.
 * Errors in cb: TDM_EFULL, TDM_EIO, TDM_ENOMEM, TDM_ECORRUPT (bad metadata). */
tdm_err store_append_async(store *st, const void *name, size_t name_len, const uint8_t *p, size_t n,
                           store_done_fn cb, void *ctx);

/* store_append - synchronous store_append_async: returns when the update is
 * durable (or failed); *seq (may be NULL) receives its sequence number.
 * Blocks while the queue is full. Same errors. */
tdm_err store_append(store *st, const void *name, size_t name_len, const uint8_t *p, size_t n,
                     uint64_t *seq);

/* store_update_fn - one log entry; return non-zero to stop. */
typedef int (*store_update_fn)(void *ctx, uint64_t seq, const uint8_t *p, size_t n);
/* store_log_range - call fn for every log entry of a document with sequence
 * >= from_seq, in order (entries merged into the snapshot are gone).
 * TDM_ENOTFOUND (unknown document), TDM_ECORRUPT (bad entry: fn is not
 * called for it and the walk stops). */
tdm_err store_log_range(store *st, const void *name, size_t name_len, uint64_t from_seq,
                        store_update_fn fn, void *ctx);

/* store_doc_load - rebuild a document from its snapshot and log into a NEW
 * document created with dopts (NULL: client 0, default options); on success
 * *out is the document (the caller frees it with crdt_doc_free) and *meta (may
 * be NULL) the metadata of the same read transaction. Updates whose causal
 * dependencies are missing stay pending in the document as crdt_doc_apply
 * holds them.
 * On any error *out is set to NULL and nothing was allocated for the caller,
 * so a failed load can never be mistaken for an empty document and saved over
 * the real one. Errors: TDM_ENOTFOUND (no such document; a document that
 * exists but holds nothing loads as an empty document), TDM_ECORRUPT (a value
 * failed its CRC/format check, or the snapshot or an update does not decode),
 * TDM_EVERSION (a snapshot or update in a newer CRDT format),
 * TDM_EPENDING_FULL / TDM_ETOOBIG (dopts limits too small), TDM_ENOMEM, TDM_EIO. */
tdm_err store_doc_load(store *st, const void *name, size_t name_len, const crdt_doc_opts *dopts,
                       crdt_doc **out, store_doc_meta *meta);

/* ---- Compaction ---------------------------------------------------------- */

/* store_compact_doc - merge the log of one document into its snapshot now, on
 * the writer thread, in one transaction; returns when it has committed. The
 * text and state vector loaded before and after are identical. Log entries
 * after the last point where nothing was pending are kept (their pending
 * operations are not part of a snapshot). A document with an empty log is left
 * alone (TDM_OK). The new snapshot is loaded back and must give the same text
 * and state vector before the log is dropped. Errors: TDM_ENOTFOUND,
 * TDM_ECORRUPT (a bad entry, or a snapshot that does not read back; nothing
 * changes),
 * TDM_EFULL, TDM_EIO, TDM_ENOMEM, TDM_EINVAL (read-only, callback thread). */
tdm_err store_compact_doc(store *st, const void *name, size_t name_len);

/* store_progress_fn - called after each document: done of total, and the
 * name just handled with its result. Return non-zero to stop. */
typedef int (*store_progress_fn)(void *ctx, size_t done, size_t total, const uint8_t *name,
                                 size_t name_len, tdm_err err);
/* store_compact_all - store_compact_doc for every document with log entries,
 * calling progress (may be NULL) on the calling thread after each one.
 * Continues past a document that fails and returns the first error (TDM_OK
 * when all succeeded); *compacted (may be NULL) counts documents compacted. */
tdm_err store_compact_all(store *st, store_progress_fn progress, void *ctx, size_t *compacted);

/* store_copy_compact - write a compacted copy of the whole environment
 * (mdb_env_copy2 with MDB_CP_COMPACT: free pages left out) into directory
 * `dst_dir`, which must exist and hold no data.mdb. Works on a read-only store
 * and while writes go on (the copy is one consistent read transaction).
 * Errors: TDM_EINVAL, TDM_EIO (e.g. dst_dir missing or not empty). */
tdm_err store_copy_compact(store *st, const char *dst_dir);

/* ---- Verification -------------------------------------------------------- */

/* store_problem_fn - one problem found by store_verify_doc: a static message,
 * the log sequence / chat id / OT version it concerns (0 when none) and the
 * error code. */
typedef void (*store_problem_fn)(void *ctx, const char *what, uint64_t at, tdm_err err);
/* store_verify_doc - check one document in one read transaction: metadata
 * decodes and agrees with the log (entry count, bytes, sequence bounds); the
 * snapshot and every update pass their CRC and replay into a fresh document;
 * nothing is left pending; chat records and OT entries pass their CRC and
 * decode. Reports each problem through fn (may be NULL); *problems (may be
 * NULL) receives their number. Returns TDM_OK when the document is sound, the
 * first problem's code otherwise (TDM_ECORRUPT, TDM_EPENDING_FULL for pending
 * operations), TDM_ENOTFOUND for an unknown document. */
tdm_err store_verify_doc(store *st, const void *name, size_t name_len, store_problem_fn fn,
                         void *ctx, size_t *problems);

/* ---- Chat ------------------------------------------------------------------ */

/* store_chat_msg - one chat message. Strings are byte ranges (not
 * terminated); in records passed to callbacks they point into the database and
 * are valid only during the call. */
typedef struct store_chat_msg {
    uint64_t id;     /* server-assigned, per room, 1, 2, 3, ... (ignored on append) */
    int64_t time_ms; /* Unix time, ms; 0 on append: the store's clock */
    const uint8_t *user;
    size_t user_len; /* 1..STORE_CHAT_USER_MAX */
    const uint8_t *display;
    size_t display_len; /* 0..STORE_CHAT_NAME_MAX */
    const uint8_t *cmid;
    size_t cmid_len; /* client message id, 0..STORE_CHAT_CMID_MAX; 0 = no dedup */
    const uint8_t *text;
    size_t text_len; /* 0..STORE_CHAT_TEXT_MAX (UTF-8 is the caller's concern) */
} store_chat_msg;

/* store_chat_append_async - queue a chat message for room `room` (created if
 * needed); cb receives the assigned id. With a non-empty cmid, a message from
 * the same user with the same cmid that is still held is not stored again: cb
 * gets its id with duplicate = true. When a room holds more than
 * opts.chat_retention messages the oldest are deleted in the same
 * transaction. Errors as store_append_async (TDM_ETOOBIG for a field over its
 * cap). */
tdm_err store_chat_append_async(store *st, const void *room, size_t room_len,
                                const store_chat_msg *msg, store_done_fn cb, void *ctx);
/* store_chat_append - synchronous variant; *id and *duplicate may be NULL. */
tdm_err store_chat_append(store *st, const void *room, size_t room_len, const store_chat_msg *msg,
                          uint64_t *id, bool *duplicate);

/* store_chat_fn - one message; return non-zero to stop. */
typedef int (*store_chat_fn)(void *ctx, const store_chat_msg *msg);
/* store_chat_range - call fn for up to `limit` messages (0 = no limit) of a
 * room with id > after_id, in increasing id order. TDM_ENOTFOUND for an
 * unknown room, TDM_ECORRUPT for a bad record (the walk stops there). */
tdm_err store_chat_range(store *st, const void *room, size_t room_len, uint64_t after_id,
                         size_t limit, store_chat_fn fn, void *ctx);
/* store_chat_count - messages held for a room (0 for a room without chat).
 * TDM_ENOTFOUND for an unknown room. */
tdm_err store_chat_count(store *st, const void *room, size_t room_len, uint64_t *count);

/* ---- OT version history ---------------------------------------------------- */

/* store_ot_append_async - queue OT operation bytes p[0..n) (ot_op wire form;
 * the caller validated them) as the operation that turns version `version` of
 * document `name` into version + 1. The history is contiguous: when it is not
 * empty, version must equal the current ot_next, else cb gets TDM_ECONFLICT;
 * an empty history starts at any version. Once more than
 * opts.ot_retention + opts.ot_retention / 16 versions are held, those older
 * than ot_next - opts.ot_retention are deleted in the same transaction (in
 * batches: a document keeps at least ot_retention versions). cb gets
 * `version` as id. Errors as store_append_async. */
tdm_err store_ot_append_async(store *st, const void *name, size_t name_len, uint64_t version,
                              const uint8_t *p, size_t n, store_done_fn cb, void *ctx);
/* store_ot_append - synchronous variant. */
tdm_err store_ot_append(store *st, const void *name, size_t name_len, uint64_t version,
                        const uint8_t *p, size_t n);

/* store_ot_fn - one operation (version -> version + 1); non-zero stops. */
typedef int (*store_ot_fn)(void *ctx, uint64_t version, const uint8_t *p, size_t n);
/* store_ot_range - call fn for every stored operation with version >=
 * from_version, in order. TDM_ENOTFOUND for an unknown document; TDM_ERANGE
 * when from_version is older than the oldest version held (trimmed: the
 * client is too far behind) or newer than ot_next; TDM_ECORRUPT for a bad
 * entry. from_version == ot_next calls fn zero times. */
tdm_err store_ot_range(store *st, const void *name, size_t name_len, uint64_t from_version,
                       store_ot_fn fn, void *ctx);

/* store_ot_rec - one stored OT operation with its submitter. Records
 * written with src and op_id both 0 (CRDT changes, store_ot_append) use the
 * first record format (the operation alone); others the second (submitter's
 * client id and op id, then the operation: docs/STORAGE.md). Records of the
 * first format read back with src = op_id = 0. */
typedef struct store_ot_rec {
    uint64_t version;  /* the operation turns version into version + 1 */
    uint64_t src;      /* the submitter's client id (OT_REMOTE src); 0 = none */
    uint64_t op_id;    /* the submitter's operation id; 0 = none */
    const uint8_t *op; /* ot_op wire form (validated by the caller); in */
    size_t op_len;     /* records passed to callbacks it points into the
                        * database and is valid only during the call */
} store_ot_rec;

/* store_ot_put_async / store_ot_put - store_ot_append(_async) of a record
 * with its submitter. */
tdm_err store_ot_put_async(store *st, const void *name, size_t name_len, const store_ot_rec *rec,
                           store_done_fn cb, void *ctx);
tdm_err store_ot_put(store *st, const void *name, size_t name_len, const store_ot_rec *rec);

/* store_append_ot_async - one change of a room: append update bytes
 * p[0..n) to the log of `name` (as store_append_async) and store `rec` in
 * its OT history (as store_ot_put_async) in ONE job, so they are committed
 * in the same transaction (group commit as usual): after a crash either
 * both are stored or neither. cb gets the update's result (its sequence
 * number as id); the OT record is not stored when the update is not, and an
 * OT-only failure (TDM_ECONFLICT, a gap) does not fail the update: the
 * history then stops there, as with store_ot_append_async. Errors as
 * store_append_async. Any thread (see the top of this file). */
tdm_err store_append_ot_async(store *st, const void *name, size_t name_len, const uint8_t *p,
                              size_t n, const store_ot_rec *rec, store_done_fn cb, void *ctx);

/* store_ot_rec_fn - one record; non-zero stops. */
typedef int (*store_ot_rec_fn)(void *ctx, const store_ot_rec *rec);
/* store_ot_range_rec - store_ot_range with the submitter of each record. */
tdm_err store_ot_range_rec(store *st, const void *name, size_t name_len, uint64_t from_version,
                           store_ot_rec_fn fn, void *ctx);

/* ---- Push subscriptions ---------------------------------------------------- */

typedef struct store_bytes {
    const uint8_t *p;
    size_t n;
} store_bytes;

/* store_push_sub - one Web Push subscription of a user. Pointers as in
 * store_chat_msg. A user holds any number of subscriptions, one per endpoint. */
typedef struct store_push_sub {
    const uint8_t *endpoint;
    size_t endpoint_len;   /* 1..STORE_PUSH_ENDPOINT_MAX */
    const uint8_t *p256dh; /* the subscription's public key, 1..STORE_PUSH_KEY_MAX bytes */
    size_t p256dh_len;
    const uint8_t *auth; /* its auth secret, 1..STORE_PUSH_KEY_MAX bytes */
    size_t auth_len;
    const store_bytes *rooms; /* followed rooms (each 1..STORE_NAME_MAX bytes) */
    size_t nrooms;            /* 0..STORE_PUSH_ROOMS_MAX */
    int64_t created_ms;       /* 0 on put: the store's clock */
    const uint8_t *display;   /* the user's display name (Web Push mentions), or NULL */
    size_t display_len;       /* 0 (none) or 1..STORE_PUSH_USER_MAX */
} store_push_sub;

/* store_push_put - add or replace (same user and endpoint) a subscription.
 * Synchronous. Errors: TDM_EINVAL, TDM_ETOOBIG (a field over its cap),
 * TDM_ECONFLICT (another endpoint of this user has the same 64-bit hash),
 * TDM_EFULL, TDM_EIO. */
tdm_err store_push_put(store *st, const void *user, size_t user_len, const store_push_sub *sub);
/* store_push_del - remove the user's subscription for `endpoint`.
 * Synchronous. TDM_ENOTFOUND when there is none. */
tdm_err store_push_del(store *st, const void *user, size_t user_len, const void *endpoint,
                       size_t endpoint_len);
/* store_push_fn - one subscription; non-zero stops. */
typedef int (*store_push_fn)(void *ctx, const uint8_t *user, size_t user_len,
                             const store_push_sub *sub);
/* store_push_list - every subscription of one user (user NULL: of every
 * user), in key order. TDM_ECORRUPT for a bad record (the walk stops). */
tdm_err store_push_list(store *st, const void *user, size_t user_len, store_push_fn fn, void *ctx);

/* ---- Statistics -------------------------------------------------------------- */

typedef struct store_stats {
    uint64_t map_size;  /* current map size, bytes */
    uint64_t map_used;  /* bytes of the map in use (last page + 1) */
    uint64_t docs;      /* documents */
    uint64_t batches;   /* write transactions committed by this handle */
    uint64_t jobs;      /* jobs committed by this handle */
    uint64_t max_batch; /* largest batch */
    uint64_t grows;     /* map growths by this handle */
    uint64_t auto_compactions;
    uint64_t compact_failures;
    uint64_t journal_migrations; /* journal moves to the trees committed */
    uint64_t journal_moved;      /* records they moved */
    uint64_t direct_batches;     /* batches written straight into the trees (dense, with the
                                    journal empty) */
    bool journal_stuck;          /* a journal record could not move (damaged): the journal
                                    stays as it is; store_verify_doc names the record */
    size_t queued;               /* jobs waiting now */
} store_stats;

/* store_get_stats - a snapshot of the counters. */
tdm_err store_get_stats(store *st, store_stats *out);

#endif
