/* sync_internal.h - the server-side objects shared by the sync sources (private).
 *
 * sync_server  owns rooms (hash by name), sessions (list), the pending-ack
 *              FIFO (ring in token order) and zombie channels.
 * sync_room    one document: crdt_doc, awareness, OT history ring, members.
 * sync_session one connection: state, outbound frame queue, channels.
 * sync_chan    one subscription (session x room): mode, access, user, owned
 *              awareness clients, typing, a chunked transfer, and frames held
 *              back to keep OT ordering (acks before later remote ops).
 * A channel whose session is gone while acks are still pending becomes a
 * zombie (sess NULL) until the last pending record that names it is released.
 */
#ifndef TANDEM_SYNC_INTERNAL_H
#define TANDEM_SYNC_INTERNAL_H

#include "session.h"
#include "awareness.h"
#include "ot.h"

/* ------------------------------------------------------------ frames */

/* a refcounted encoded frame shared by every queue it is in */
typedef struct sync_blob {
    size_t refs;
    size_t n;
    uint8_t data[];
} sync_blob;

#define SYNC_F_EPHEMERAL   0x01u /* awareness / typing: dropped first */
#define SYNC_F_PLACEHOLDER 0x02u /* held slot for an ack not yet durable (blob NULL) */
#define SYNC_F_ORDERED     0x04u /* OT frame: held while the channel holds (ack, snapshot) */

typedef struct sync_node {
    struct sync_node *next;
    sync_blob *blob;
    unsigned flags;
    uint64_t token; /* placeholder: the pending token */
} sync_node;

typedef struct sync_fq {
    sync_node *head, *tail;
    size_t count;
} sync_fq;

/* encode m into a new blob (refs 1). */
tdm_err sync__blob(const syncm *m, sync_blob **out);
void sync__blob_unref(sync_blob *b);
void sync__fq_push(sync_fq *q, sync_node *n);
sync_node *sync__fq_pop(sync_fq *q);
void sync__fq_free(sync_fq *q);

/* ------------------------------------------------------------ objects */

typedef struct sync_room sync_room;
typedef struct sync_chan sync_chan;

/* a chunked transfer (UPDATE_CHUNK or OT_SNAPSHOT) */
typedef struct sync_stream {
    uint8_t *buf;
    size_t len, off;
    syncm_type type;
    uint64_t id; /* sync id (UPDATE_CHUNK) or version (OT_SNAPSHOT) */
    bool active;
    bool started; /* at least one chunk sent (an empty transfer still sends one) */
} sync_stream;

#define SYNC_AW_PER_CHAN 16 /* awareness clients one channel may introduce */

struct sync_chan {
    uint32_t id;
    unsigned mode, access;
    sync_room *room;
    sync_session *sess;       /* NULL: zombie */
    sync_chan *rprev, *rnext; /* room member list */
    sync_auth auth;
    uint64_t aw_clients[SYNC_AW_PER_CHAN];
    size_t naw;
    bool typing;
    uint64_t typing_until;
    sync_stream stream;
    sync_fq hold;        /* OT frames held behind a pending ack or a snapshot */
    size_t npending;     /* pending records naming this channel */
    size_t hold_pending; /* unfilled placeholders in hold */
    bool dead;           /* left the room (unsubscribed / session gone) */
    uint64_t ot_client;  /* CRDT replica id the room edits as for this OT client (0: none yet) */
};

typedef struct sync_hist {
    ot_op *op;
    uint64_t src, op_id;
    size_t bytes;
} sync_hist;

struct sync_room {
    sync_server *srv;
    sync_room *hnext; /* hash chain */
    char name[SYNCM_MAX_NAME + 1];
    size_t name_len;
    uint64_t hash;
    crdt_doc *doc;
    aw_state *aw;
    uint64_t version;
    uint64_t last_chat_id;
    bool is_new;
    bool persist_failed;    /* a write failed: duplicates are persisted again */
    bool ot_persist_failed; /* persist_ot failed: stored history has a gap */
    sync_chan *members;
    size_t nmembers;
    size_t npending;
    uint64_t empty_since;
    /* OT history: hist[(hstart + i) % hcap] turns version hbase + i into
     * hbase + i + 1, for i < hcount; hbase + hcount == version */
    sync_hist *hist;
    size_t hcap, hstart, hcount, hbytes;
    uint64_t hbase;
    /* observer capture during one apply */
    ot_op *delta;
    bool delta_seen, delta_lost;
    /* awareness attribution during aw_apply */
    sync_chan *aw_origin;
};

typedef enum sync_pkind {
    SYNC_P_UPDATE = 1, /* ACK(seq) when durable */
    SYNC_P_BARRIER,    /* ACK(seq) of a duplicate: released in order, no write */
    SYNC_P_OT,         /* OT_ACK(op_id, version) into the channel's placeholder */
    SYNC_P_CHAT        /* CHAT_ACK + CHAT_MSG broadcast */
} sync_pkind;

typedef struct sync_pending {
    uint64_t token;
    sync_pkind kind;
    bool done, dup;
    tdm_err status;
    uint64_t id;
    sync_room *room;
    sync_chan *chan;
    uint64_t seq; /* UPDATE/BARRIER: seq; OT: op_id; CHAT: msg_id */
    uint64_t version;
    uint64_t time_ms;
    uint64_t client_id; /* CHAT: the sender's HELLO client id (room_event) */
    uint8_t *chat;      /* CHAT: user, display, text concatenated (owned) */
    uint16_t user_len, display_len;
    uint32_t text_len;
} sync_pending;

typedef enum sync_sstate { SYNC_S_NEW = 0, SYNC_S_READY } sync_sstate;

struct sync_session {
    sync_server *srv;
    sync_session *prev, *next;
    uint64_t id;
    sync_sstate state;
    sync_close_reason why;
    bool closing;
    uint8_t *token; /* malloc'd copy of the HELLO token (NULL: none) */
    size_t token_len;
    uint64_t client_id;
    uint64_t created_ms, last_recv_ms;
    sync_fq out;
    size_t out_bytes;
    sync_chan **chans; /* grows up to o.max_channels */
    size_t nchans, chans_cap;
    size_t pump_next; /* round robin over streaming channels */
    void *data;
};

struct sync_server {
    sync_host host;
    sync_server_opts o;
    sync_room **buckets;
    size_t nbuckets, nrooms;
    sync_session *sessions;
    size_t nsessions;
    uint64_t next_session_id;
    uint64_t next_token;
    sync_pending *pend; /* ring of o.max_pending */
    size_t pstart, pcount;
    size_t stream_bytes;
    size_t nstreams; /* channels with an active transfer (sync__pump does nothing at 0) */
    uint64_t now_ms;
    bool relaying; /* inside a sync_server_apply_remote / relay_* call (relay.c) */
    sync_server_stats st;
    tbuf scratch; /* encode buffer */
};

/* ------------------------------------------------------------ internal API */

/* server.c */
sync_room *sync__room_find(sync_server *srv, const char *name, size_t len);
tdm_err sync__pending_add(sync_server *srv, const sync_pending *p, uint64_t *token);
bool sync__pending_full(const sync_server *srv);
/* mark a record durable (or failed) and release what can be released */
tdm_err sync__pending_complete(sync_server *srv, uint64_t token, tdm_err status, uint64_t id,
                               bool dup);
/* release every completed record at the head of the FIFO */
void sync__pending_drain(sync_server *srv);
uint64_t sync__token(sync_server *srv);
uint64_t sync__hash(const sync_server *srv, const char *name, size_t len);
void sync__room_insert(sync_server *srv, sync_room *r);
/* free the idle room unused longest; false when every room is in use */
bool sync__room_evict_one(sync_server *srv);

/* room.c */
tdm_err sync__room_get(sync_server *srv, const char *name, size_t len, sync_room **out,
                       sync_errcode *code);
void sync__room_free(sync_room *r);
void sync__room_join(sync_room *r, sync_chan *c);
void sync__room_leave(sync_room *r, sync_chan *c, uint64_t now_ms);
/* queue m to every live member except `skip`, filtered by mode (-1: all) */
void sync__room_broadcast(sync_room *r, const syncm *m, sync_chan *skip, int mode, unsigned flags);
/* after an apply: record the captured delta as the next version, persist it,
 * send OT_REMOTE to OT members except origin */
void sync__room_commit(sync_room *r, sync_chan *origin, uint64_t src, uint64_t op_id);
tdm_err sync__room_awareness(sync_room *r, sync_chan *c, const uint8_t *p, size_t n,
                             uint64_t now_ms);
void sync__room_tick(sync_room *r, uint64_t now_ms);

/* session.c */
/* leave channel i (room, awareness, typing) and free it */
void sync__session_leave(sync_session *ss, size_t i, uint64_t now_ms);
/* free a session; leave: tell its rooms (else the server is going away) */
void sync__session_free(sync_session *ss, bool leave, uint64_t now_ms);
void sync__send(sync_session *ss, const syncm *m, unsigned flags);
void sync__send_blob(sync_session *ss, sync_blob *b, unsigned flags);
void sync__send_error(sync_session *ss, uint32_t channel, sync_errcode code, uint64_t ref,
                      uint64_t retry_ms, const char *text, const ot_op *op);
void sync__chan_send(sync_chan *c, const syncm *m, unsigned flags);
void sync__chan_send_blob(sync_chan *c, sync_blob *b, unsigned flags);
void sync__chan_flush_hold(sync_chan *c);
tdm_err sync__chan_hold_placeholder(sync_chan *c, uint64_t token);
void sync__chan_fill(sync_chan *c, uint64_t token, const syncm *m);
void sync__chan_free(sync_chan *c);
void sync__close(sync_session *ss, sync_close_reason why, const char *text);
tdm_err sync__stream_start(sync_chan *c, syncm_type type, uint64_t id, tbuf *data);
void sync__pump(sync_session *ss);
bool sync__rate(sync_session *ss, sync_chan *c, sync_rate_kind kind, uint32_t channel,
                uint64_t ref);

/* doc_sync.c */
tdm_err sync__on_update(sync_session *ss, sync_chan *c, const syncm *m);
tdm_err sync__on_sync_step(sync_session *ss, sync_chan *c, const syncm *m);
tdm_err sync__crdt_subscribed(sync_session *ss, sync_chan *c, const syncm *m);
/* send the CRDT members (except skip) what the room integrated since
 * `before` (appended to diff); false when nothing was */
bool sync__room_publish(sync_room *r, const crdt_sv *before, sync_chan *skip, tbuf *diff);
/* queue p (room set here) with the host's write of data[0..n); n == 0: no
 * write, p is complete at once (released in order). hold: put the ack's
 * placeholder in that channel's held frames first. */
void sync__persist(sync_room *r, sync_pending *p, const uint8_t *data, size_t n, sync_chan *hold);

/* ot_room.c */
tdm_err sync__on_ot_op(sync_session *ss, sync_chan *c, const syncm *m);
tdm_err sync__ot_subscribed(sync_session *ss, sync_chan *c, const syncm *m);
void sync__hist_push(sync_room *r, ot_op *op, uint64_t src, uint64_t op_id);
void sync__hist_clear(sync_room *r);
tdm_err sync__ot_snapshot(sync_chan *c);

/* chat.c */
tdm_err sync__on_chat_send(sync_session *ss, sync_chan *c, const syncm *m);
tdm_err sync__on_chat_history(sync_session *ss, sync_chan *c, uint64_t after, uint64_t limit);
tdm_err sync__on_typing(sync_session *ss, sync_chan *c, const syncm *m, uint64_t now_ms);
/* stop c's typing indicator (broadcast; room_event with why) */
void sync__typing_stop(sync_chan *c, sync_room_event_why why);

/* release of a durable pending record (server.c calls, per kind) */
void sync__release(sync_server *srv, sync_pending *p);

/* chan lifecycle helper: unreference after a pending record is released */
void sync__chan_unref(sync_chan *c);

#endif
