/* store_internal.h - shared internals of storage/ (prefix store__). Not part
 * of the public API; included only by the storage sources.
 *
 * Layout of the environment (docs/STORAGE.md has the byte-level details):
 *   info   "format" -> u32, "next_doc" -> u64            (store-wide records)
 *   names  name bytes -> doc id u64                       (name -> id)
 *   docs   doc id u64 -> framed 'M' metadata             (id -> meta + name)
 *   log    doc id u64 | seq u64 -> framed 'L' update
 *   snap   doc id u64 -> framed 'S' snapshot
 *   chat   doc id u64 | msg id u64 -> framed 'C' CBOR record
 *   cdedup doc id u64 | user len u8 | user | cmid -> msg id u64
 *   ot     doc id u64 | version u64 -> framed 'O' op bytes
 *   push   user len u8 | user | FNV-1a-64(endpoint) u64 -> framed 'P' CBOR record
 *   jrnl   seq u64 -> framed 'J' journal record (store_jrnl.c): updates and
 *          OT records on their way to log and ot (format 2)
 * All integers big-endian. A framed value is: tag u8 | crc32 u32 | payload,
 * where crc32 (zlib) covers the tag byte and the payload.
 */
#ifndef TANDEM_STORE_INTERNAL_H
#define TANDEM_STORE_INTERNAL_H

#include "store.h"

#include <lmdb.h>
#include <pthread.h>

#define STORE_FORMAT 2u /* 2: the journal; format 1 is upgraded on a writable open */

#define STORE_TAG_META  'M'
#define STORE_TAG_LOG   'L'
#define STORE_TAG_SNAP  'S'
#define STORE_TAG_CHAT  'C'
#define STORE_TAG_OT    'O' /* OT record, format 1: the operation */
#define STORE_TAG_OT2   'o' /* OT record, format 2: src u64, op_id u64, operation */
#define STORE_TAG_PUSH  'P'
#define STORE_TAG_JRNL  'J'
#define STORE_FRAME_HDR 5u

/* Most documents auto-compaction remembers per batch (the rest wait for
 * their next append). */
#define STORE_TOUCHED_MAX 256u
/* The journal moves to the trees at this many records, bytes (of leaf and
 * overflow pages) or age of its oldest record, whichever comes first
 * (defaults of opts.journal_records and opts.journal_ms). */
#define STORE_JRNL_MIGRATE_RECS  4096u
#define STORE_JRNL_MIGRATE_BYTES ((uint64_t)4 << 20)
#define STORE_JRNL_MIGRATE_MS    1000u
/* Largest key we build (push: 1 + 255 + 8; dedup: 8 + 1 + 255 + 64). */
#define STORE_KEY_MAX 400u
/* An internal return code of job executors: undo the batch and redo it
 * without this job (it failed after writing). */
#define STORE_RC_REDO (-1)

/* Metadata as stored: the public part, the auto-compaction hold-off and the
 * name (so listings by id can show it). */
typedef struct store__meta {
    store_doc_meta pub;
    uint64_t auto_after_seq; /* no automatic compaction before next_seq reaches this */
    uint8_t name[STORE_NAME_MAX];
    size_t name_len;
} store__meta;

typedef enum store__job_kind {
    STORE_JOB_APPEND,
    STORE_JOB_CHAT,
    STORE_JOB_OT,
    STORE_JOB_APPEND_OT, /* update (data, n) + OT record (data2, n2: a framed payload) */
    STORE_JOB_CREATE,
    STORE_JOB_DELETE,
    STORE_JOB_COMPACT,    /* by name */
    STORE_JOB_COMPACT_ID, /* auto-compaction, by id (arg) */
    STORE_JOB_HOLDOFF,    /* set auto_after_seq of doc id `arg` to `arg2` */
    STORE_JOB_PUSH_PUT,
    STORE_JOB_PUSH_DEL,
    STORE_JOB_NOP, /* store_flush: only waits its turn */
} store__job_kind;

/* One queued write. Allocated as one block: the struct, then key bytes
 * (document name, or push user), then the payload. */
typedef struct store__job {
    struct store__job *next;
    store__job_kind kind;
    store_done_fn cb;
    void *ctx;
    uint64_t arg;  /* OT version / doc id */
    uint64_t arg2; /* chat: time ms; holdoff: seq */
    const uint8_t *key;
    size_t key_len;
    const uint8_t *data;
    size_t n;
    const uint8_t *data2; /* APPEND_OT: the OT record payload (after data) */
    size_t n2;
    uint8_t tag2; /* OT jobs: STORE_TAG_OT or STORE_TAG_OT2 */
    size_t cost;  /* bytes counted against the queue */
    /* results, reset before each attempt */
    tdm_err err;
    uint64_t id;
    bool dup;
    bool skip; /* failed after writing once: left out of redone batches */
} store__job;

/* Gate: every transaction (read or write) holds it shared; a map resize holds
 * it exclusively (mdb_env_set_mapsize needs no transaction open in the
 * process). */
typedef struct store__gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned active;
    bool resizing; /* a resize waits for active to reach 0 */
    bool mapping;  /* mdb_env_set_mapsize is running: nobody may enter */
} store__gate;

struct store {
    MDB_env *env;
    MDB_dbi db_info, db_names, db_docs, db_log, db_snap, db_chat, db_dedup, db_ot, db_push;
    MDB_dbi db_jrnl;
    bool has_jrnl; /* false: a read-only handle of a format-1 store */
    store_opts opts;
    bool read_only;
    store__gate gate;

    /* writer queue, guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;  /* jobs arrived or stopping */
    pthread_cond_t cv_space; /* room in the queue */
    pthread_cond_t cv_done;  /* a synchronous job finished */
    store__job *head, *tail;
    size_t queued, queued_bytes;
    bool stopping;
    bool writer_started;
    pthread_t writer;
    store_stats stats; /* counters updated under mu */

    /* writer-thread-only state */
    uint64_t touched[STORE_TOUCHED_MAX];
    size_t ntouched;
    uint64_t compact[STORE_TOUCHED_MAX]; /* committed, waiting for auto-compaction */
    size_t ncompact;
    uint64_t jrnl_first_ms; /* monotonic ms of the oldest unmigrated put (0: none) */
    bool jrnl_direct;       /* opts.no_journal and the journal was empty at start */
    bool batch_direct;      /* this transaction writes into the trees (store_writer.c) */
    bool jrnl_stuck;        /* a record could not move: no more migration */
    tbuf scratch;
};

/* ---- store.c ---- */
tdm_err store__err(int rc);
int64_t store__now_ms(void);
/* CLOCK_MONOTONIC in nanoseconds (intervals: gathering, the journal's age). */
uint64_t store__mono_ns(void);
/* Read transactions: gate + MDB_RDONLY txn (retries after MDB_MAP_RESIZED). */
tdm_err store__rd_begin(store *st, MDB_txn **txn);
void store__rd_end(store *st, MDB_txn *txn);
/* Whether the calling thread may wait for the writer (not in a callback). */
bool store__may_wait(store *st);
void store__gate_enter(store *st);
void store__gate_leave(store *st);
/* store__resize - under the exclusive gate: size 0 adopts another process's
 * size; otherwise sets the map to `size`. */
int store__resize(store *st, size_t size);

/* ---- store_codec.c ---- */
void store__put_u64(uint8_t *p, uint64_t v);
uint64_t store__get_u64(const uint8_t *p);
void store__put_u32(uint8_t *p, uint32_t v);
uint32_t store__get_u32(const uint8_t *p);
/* key of 16 bytes: id | n */
void store__key2(uint8_t k[16], uint64_t id, uint64_t n);
/* Frame header for payload p[0..n) with tag into hdr[5]. */
void store__frame_hdr(uint8_t hdr[STORE_FRAME_HDR], uint8_t tag, const uint8_t *p, size_t n);
/* Check a framed value; on success *p, *n is the payload. TDM_ECORRUPT otherwise. */
tdm_err store__unframe(const MDB_val *v, uint8_t tag, const uint8_t **p, size_t *n);
/* mdb_put of a framed value built from payload p[0..n) (MDB_RESERVE). */
int store__put_framed(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, uint8_t tag, const uint8_t *p,
                      size_t n, unsigned flags);
tdm_err store__meta_decode(const MDB_val *v, store__meta *m);
int store__meta_put(MDB_txn *txn, store *st, const store__meta *m);
/* Look up name -> id. TDM_ENOTFOUND, TDM_ECORRUPT, TDM_EIO. */
tdm_err store__name_lookup(store *st, MDB_txn *txn, const void *name, size_t name_len,
                           uint64_t *id);
/* Metadata of doc id. */
tdm_err store__meta_get(store *st, MDB_txn *txn, uint64_t id, store__meta *m);
/* name -> id and meta in one go. */
tdm_err store__doc_find(store *st, MDB_txn *txn, const void *name, size_t name_len, store__meta *m);
bool store__name_ok(const void *name, size_t name_len);
/* TDM_EINVAL for NULL/empty, TDM_ETOOBIG past STORE_NAME_MAX. */
tdm_err store__name_check(const void *name, size_t name_len);
uint64_t store__fnv64(const uint8_t *p, size_t n);

/* ---- store_writer.c ---- */
tdm_err store__writer_start(store *st);
void store__writer_stop(store *st);
/* Allocate a job with room for key and payload copies. */
store__job *store__job_new(store__job_kind kind, const void *key, size_t key_len, const void *data,
                           size_t n);
/* Queue a job (takes ownership, also on error). block: wait for room. */
tdm_err store__enqueue(store *st, store__job *j, bool block);
/* Queue a job and wait for its outcome. */
tdm_err store__run_sync(store *st, store__job *j, uint64_t *id, bool *dup);

/* ---- store_log.c ---- */
/* store__job_doc - find or create the job's document (j->key) in a write txn
 * into *m; *created tells. Returns an LMDB error (abort the txn), else 0 with
 * j->err set when the job fails on its own (j->err is TDM_OK on entry). */
int store__job_doc(store *st, MDB_txn *txn, store__job *j, store__meta *m, bool *created);
/* The log half of an append: find or create the document into *m, check
 * its next key is free, number the update (j->id) and account it in *m; the
 * caller puts the record and *m, then calls store__append_done. */
int store__append_prep(store *st, MDB_txn *txn, store__job *j, store__meta *m, bool *created);
/* After the put: remember the document for auto-compaction when due. */
void store__append_done(store *st, const store__meta *m);
int store__exec_append(store *st, MDB_txn *txn, store__job *j);
int store__exec_create(store *st, MDB_txn *txn, store__job *j);
int store__exec_delete(store *st, MDB_txn *txn, store__job *j);

/* Replay snapshot and log of doc id into doc. Per entry: cb (may be NULL)
 * after it applied. Stops at the first bad entry with its error;
 * *bad_seq (may be NULL) names it (0: the snapshot). */
typedef struct store__replay {
    uint64_t entries, bytes; /* log entries replayed */
    uint64_t first_seq, last_seq;
    uint64_t cut_seq;          /* last seq after which nothing was pending (0: none) */
    uint64_t kept, kept_bytes; /* entries after cut_seq */
    uint64_t bad_seq;
    bool bad_snapshot;
} store__replay;
tdm_err store__replay_doc(store *st, MDB_txn *txn, uint64_t id, crdt_doc *doc, store__replay *r);

/* ---- store_compact.c ---- */
int store__exec_compact(store *st, MDB_txn *txn, store__job *j);
int store__exec_holdoff(store *st, MDB_txn *txn, store__job *j);
/* auto-compaction threshold */
bool store__wants_compact(const store *st, const store__meta *m);

/* ---- store_jrnl.c ---- */
/* One journal record: an update (upd non-NULL, at log seq `seq`), an OT
 * record (ot non-NULL: tag and framed payload, at `version`), or both. */
typedef struct store__jrec {
    uint64_t jseq; /* decoded records: the journal key */
    uint64_t doc, seq, version;
    const uint8_t *upd;
    size_t upd_n;
    uint8_t ot_tag;
    bool ot_replace; /* the OT record may overwrite (first of an empty history) */
    const uint8_t *ot;
    size_t ot_n;
} store__jrec;
/* The framed value of r: store__jrnl_size bytes written by
 * store__jrnl_encode into b (caller-owned). store__jrnl_decode of it gives r
 * back (jseq aside; ot_replace only with an OT record). */
size_t store__jrnl_size(const store__jrec *r);
void store__jrnl_encode(const store__jrec *r, uint8_t *b);
/* Append r to the journal (or, jrnl_direct or batch_direct, to the trees).
 * LMDB error. */
int store__jrnl_put(store *st, MDB_txn *txn, const store__jrec *r);
/* Decode journal entry (k, v); pointers into v. TDM_ECORRUPT. */
tdm_err store__jrnl_decode(const MDB_val *k, const MDB_val *v, store__jrec *r);
/* fn for every journal record of doc, oldest first, until it returns
 * nonzero. A damaged record stops the walk with TDM_ECORRUPT; *bad (may be
 * NULL) is then its key. */
typedef int (*store__jrnl_fn)(void *ctx, const store__jrec *r);
tdm_err store__jrnl_walk(store *st, MDB_txn *txn, uint64_t doc, store__jrnl_fn fn, void *ctx,
                         uint64_t *bad);
/* Whether this handle put records into the journal that have not moved
 * yet and will (not stuck, not writing straight into the trees). */
static inline bool store__jrnl_waiting(const store *st)
{
    return st->jrnl_first_ms && !st->jrnl_stuck && !st->jrnl_direct;
}
/* Whether the journal should move now (size or age). Writer thread. */
bool store__jrnl_due(store *st, MDB_txn *txn);
/* Move every journal record to the trees in a child transaction of txn.
 * A record that cannot move (damaged, key taken) leaves the journal as it
 * is and sets jrnl_stuck. Returns an LMDB error (abort txn) or 0. */
int store__jrnl_migrate(store *st, MDB_txn *txn);
/* Delete every readable journal record of doc (deleting a document while
 * the journal is stuck). LMDB error. */
int store__jrnl_drop_doc(store *st, MDB_txn *txn, uint64_t doc);

/* ---- store_chat.c / store_ot.c / store_push.c ---- */
int store__exec_chat(store *st, MDB_txn *txn, store__job *j);
int store__exec_ot(store *st, MDB_txn *txn, store__job *j);
/* STORE_JOB_APPEND_OT: the update, then (only if it was stored) the OT record. */
int store__exec_append_ot(store *st, MDB_txn *txn, store__job *j);
/* Check a stored OT value (either format) and decode it into *r (version
 * not set). TDM_ECORRUPT for a bad frame or a short format-2 payload. */
tdm_err store__ot_unframe(const MDB_val *v, store_ot_rec *r);
/* The same for an unframed payload p[0..n) of format `tag`. */
tdm_err store__ot_payload(uint8_t tag, const uint8_t *p, size_t n, store_ot_rec *r);
int store__exec_push_put(store *st, MDB_txn *txn, store__job *j);
int store__exec_push_del(store *st, MDB_txn *txn, store__job *j);
/* Decode a chat record payload. */
tdm_err store__chat_decode(const uint8_t *p, size_t n, store_chat_msg *m);

#endif
