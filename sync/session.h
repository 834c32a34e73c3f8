/* session.h - the server side of the sync protocol (prefix sync_): a hub of
 * rooms (sync_server) and one state machine per connection (sync_session).
 *
 * Transport-agnostic: the host feeds each inbound frame to
 * sync_session_recv() and drains outbound frames with sync_session_next_out()
 * / sync_session_consume(). Nothing here does I/O, reads a clock (time comes
 * in as now_ms; use Unix milliseconds, because chat records carry it), starts
 * a thread or touches a global. Storage, authorization and rate limits are the
 * host's, reached through the sync_host function table below.
 *
 * Rooms. A room is one document by name, shared by every session subscribed
 * to it. It is loaded through host->load_room BEFORE anything about it is
 * answered (no "synced" before the load), and a failed load refuses the
 * subscribe without creating a document that could later be saved over the
 * real one. When the last session leaves, the room stays for room_idle_ms and
 * is then freed (or earlier, when the room cap needs the slot).
 *
 * Durability. Every change accepted from a client is handed to the host
 * (persist_update / persist_chat, each with a token) and acknowledged to the
 * sender only after the host calls sync_server_durable(token): ACK (CRDT),
 * OT_ACK (OT) and CHAT_ACK come after the commit. Acks are released in the
 * order the changes were accepted, server-wide. Broadcasting a document change
 * to the other sessions does not wait for durability; chat broadcasts do (they
 * carry the id the host assigns). Re-sending an update the room already holds
 * changes nothing, is not persisted again, and is acked once everything
 * accepted before it is durable.
 *
 * Backpressure. Each session's outbound queue has a hard byte cap
 * (max_out_bytes). Ephemeral frames (awareness, typing) are not queued once
 * the queue is half full and are the first dropped when a frame does not fit;
 * when a non-ephemeral frame still does not fit, the session is marked for
 * closing (sync_session_closing) with SYNC_CLOSE_BACKPRESSURE, a final ERROR
 * CLOSING frame is queued (it may take the queue a few bytes past the cap:
 * the peer learns why it is closed) and nothing else is. Large transfers (the first
 * sync of a document, OT snapshots) are cut into UPDATE_CHUNK / OT_SNAPSHOT
 * frames of at most SYNCM_CHUNK_FRAME bytes that are produced only as the
 * queue drains.
 *
 * Threads: one thread (the host's event loop) makes every sync_* call on a
 * server and its sessions, and every host callback runs on that thread, inside
 * the sync_* call that needs it. Callbacks must not call back into sync_*
 * (except where a callback's comment says so); sync_server_durable may be
 * called from the event loop at any later time (e.g. after a storage thread
 * posts the result back). No locks are taken.
 *
 * Errors: tdm_err (crdt/error.h). Protocol problems are answered to the peer
 * with an ERROR frame (codes in msg.h, docs/PROTOCOL.md) and do not change any
 * state; the tdm_err returned from sync_session_recv only tells the host what
 * happened (for logs).
 */
#ifndef TANDEM_SYNC_SESSION_H
#define TANDEM_SYNC_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"
#include "doc.h"
#include "msg.h"

typedef struct sync_server sync_server;
typedef struct sync_session sync_session;

#define SYNC_TYPING_MS 3000u /* a typing indicator expires this long after the last start */

/* What authorize() decides for one session and document. */
typedef struct sync_auth {
    unsigned access;                  /* SYNC_ACCESS_NONE / READ / WRITE */
    char user[SYNCM_MAX_USER + 1];    /* user id, NUL-terminated (rate limits, chat, typing) */
    char display[SYNCM_MAX_USER + 1]; /* display name, NUL-terminated */
    const char *why; /* access NONE: a static reason for the ERROR text (NULL: "not allowed") */
} sync_auth;

/* Outcome of load_room(). */
typedef enum sync_load_result {
    SYNC_LOAD_OK = 0,  /* *doc holds the stored document */
    SYNC_LOAD_NEW,     /* no such document: start an empty one (created on first write) */
    SYNC_LOAD_UNKNOWN, /* no such document and it may not be created: UNKNOWN_DOCUMENT */
    SYNC_LOAD_ERROR    /* storage failed: the subscribe is refused (LOAD_FAILED) */
} sync_load_result;

/* What load_room() reports besides the document. */
typedef struct sync_room_info {
    uint64_t version;      /* the document's version (OT history: next version number) */
    uint64_t last_chat_id; /* highest chat id stored for the room (0: none) */
} sync_room_info;

/* Which action a rate_limit() call is about. */
typedef enum sync_rate_kind {
    SYNC_RATE_SUBSCRIBE = 0,
    SYNC_RATE_UPDATE,
    SYNC_RATE_OT,
    SYNC_RATE_AWARENESS,
    SYNC_RATE_CHAT,
    SYNC_RATE_TYPING,
    SYNC_RATE_OTHER
} sync_rate_kind;

/* One chat record. Strings are not terminated; they point into memory valid
 * only during the call that passes them. */
typedef struct sync_chat_rec {
    uint64_t id;        /* server-assigned, monotonic per room (0 in persist_chat) */
    uint64_t time_ms;   /* the now_ms of the CHAT_SEND */
    uint64_t client_id; /* the sender's HELLO client id (dedup key part) */
    uint64_t msg_id;    /* the sender's client message id (dedup key part) */
    const uint8_t *user;
    size_t user_len;
    const uint8_t *display;
    size_t display_len;
    const uint8_t *text;
    size_t text_len;
} sync_chat_rec;

/* Sinks the host calls from inside chat_history() / ot_history(). A non-OK
 * return means "stop": the host returns it. */
typedef tdm_err (*sync_chat_emit)(void *arg, const sync_chat_rec *rec);
/* sync_ot_emit: the operation turning `version` into version + 1 and its
 * submitter as persist_ot received them (src, op_id 0 when unknown, e.g. a
 * record stored before the host kept them). */
typedef tdm_err (*sync_ot_emit)(void *arg, uint64_t version, const uint8_t *op, size_t n,
                                uint64_t src, uint64_t op_id);

/* What a room_event() call reports. */
typedef enum sync_room_event_kind {
    SYNC_ROOM_CHAT = 1,      /* a new chat record is durable: ev->chat (id assigned) */
    SYNC_ROOM_PRESENCE,      /* an awareness entry was added or its state changed */
    SYNC_ROOM_PRESENCE_LEFT, /* an awareness entry was removed (ev->why) */
    SYNC_ROOM_TYPING         /* a user started (ev->on) or stopped typing (ev->why) */
} sync_room_event_kind;

/* Why an entry went away or typing stopped. */
typedef enum sync_room_event_why {
    SYNC_WHY_CLIENT = 0, /* the client said so (null awareness state, TYPING off) */
    SYNC_WHY_LEFT,       /* its connection left the room (unsubscribed or closed) */
    SYNC_WHY_EXPIRED     /* timed out (awareness AW_TIMEOUT_MS, typing SYNC_TYPING_MS) */
} sync_room_event_why;

/* One room event. Pointers are valid only during the room_event() call. */
typedef struct sync_room_event {
    sync_room_event_kind kind;
    sync_room_event_why why;   /* PRESENCE_LEFT, TYPING with on == false */
    const sync_chat_rec *chat; /* CHAT: the record as stored (id, time, client/msg id) */
    uint64_t client;           /* PRESENCE*: the awareness client id */
    const uint8_t *state;      /* PRESENCE: the entry's state bytes (opaque; may be NULL) */
    size_t state_len;
    const char *user;    /* PRESENCE*: user of the connection that introduced the entry ("" when
                            unknown); TYPING: the typist. NUL-terminated */
    const char *display; /* display name that goes with user ("" when unknown) */
    bool on;             /* TYPING: started (true) or stopped */
} sync_room_event;

/* What a relay() call carries (hosts running several nodes, docs/SCALING.md). */
typedef enum sync_relay_kind {
    SYNC_RELAY_AWARENESS = 1 /* an awareness update (aw wire form) for the other nodes */
} sync_relay_kind;

/* The host interface. Every callback runs on the event-loop thread inside a
 * sync_* call; `ctx` is passed back unchanged; names are NUL-terminated UTF-8
 * of 1..SYNCM_MAX_NAME bytes. NULL callbacks: authorize NULL grants write to
 * everyone (user "anon"); rate_limit NULL never limits; chat_history /
 * ot_history NULL have nothing stored; persist_* NULL are durable at once;
 * room_closed / room_event NULL are not called. load_room and fresh_client_id
 * are required. */
typedef struct sync_host {
    void *ctx;
    /* authorize - may `session` (token from its HELLO, possibly empty) open
     * document `name`? Fill *out (zeroed by the caller); access NONE refuses.
     * Called at SUBSCRIBE and again for every channel when the session sends
     * a new HELLO (token refresh) or the host calls sync_session_reauthorize. */
    tdm_err (*authorize)(void *ctx, const sync_session *session, const uint8_t *token,
                         size_t token_len, const char *name, sync_auth *out);
    /* fresh_client_id - a CRDT replica id never used before for any document
     * (e.g. 63 random bits). Each room's document gets one when it is created,
     * and each OT subscription gets its own at its first operation (the room
     * applies that client's operations as edits of that id); reusing an id
     * across restarts could fork the document. */
    uint64_t (*fresh_client_id)(void *ctx);
    /* load_room - load document `name` into a new document created with
     * crdt_doc_new_opts(opts) (the host may use its own loader with the same
     * opts, e.g. store_doc_load) and store it in *doc (ownership passes to
     * sync); fill *info (zeroed by the caller). SYNC_LOAD_NEW / UNKNOWN /
     * ERROR leave *doc NULL (a document returned anyway is freed); with NEW,
     * info->version is the first version number (normally left 0). */
    sync_load_result (*load_room)(void *ctx, const char *name, const crdt_doc_opts *opts,
                                  crdt_doc **doc, sync_room_info *info);
    /* persist_update - start making update bytes p[0..n) of room `name`
     * durable (append to its log). Asynchronous: the host later calls
     * sync_server_durable(server, token, status, 0, false) exactly once, from
     * the event loop, never from inside this call. Returning an error means
     * nothing was queued (the sender gets ERROR STORAGE) and durable must not
     * be called for the token. Tokens increase; completing them in order is
     * cheapest (acks are released in order). */
    tdm_err (*persist_update)(void *ctx, const char *name, const uint8_t *p, size_t n,
                              uint64_t token);
    /* persist_ot - record the OT operation (ot_op wire form) that turns
     * version `version` of room `name` into version + 1, for every visible
     * change (OT or CRDT), with its submitter: `src` the OT client's HELLO
     * client id and `op_id` its operation id as OT_REMOTE carries them (both
     * 0 for a CRDT change); ot_history must give them back (catch-ups after
     * a restart show a client its own operation, and duplicates are
     * recognized). Queued, no callback: it must become durable no later than
     * the persist_update of the same room that follows it (the server host
     * stores both in one transaction: a crash cannot separate them). Errors
     * are remembered (history from then on is memory-only). */
    tdm_err (*persist_ot)(void *ctx, const char *name, uint64_t version, const uint8_t *op,
                          size_t n, uint64_t src, uint64_t op_id);
    /* persist_chat - store a chat record (rec->id is 0). Asynchronous like
     * persist_update; the durable call passes the assigned id (monotonic per
     * room) and duplicate = true when (user, client_id, msg_id) was stored
     * before (then id is the earlier record's id and nothing new is stored). */
    tdm_err (*persist_chat)(void *ctx, const char *name, const sync_chat_rec *rec, uint64_t token);
    /* chat_history - emit up to `limit` stored records of room `name` with
     * id > after, in increasing id order (synchronous read). */
    tdm_err (*chat_history)(void *ctx, const char *name, uint64_t after, size_t limit,
                            sync_chat_emit emit, void *arg);
    /* ot_history - emit the stored operations of room `name` with version >=
     * from, in order, with the src / op_id persist_ot got (synchronous read). TDM_ERANGE (or fewer
     * operations than asked) when `from` is older than what is kept: the client is too far behind.
     */
    tdm_err (*ot_history)(void *ctx, const char *name, uint64_t from, sync_ot_emit emit, void *arg);
    /* rate_limit - 0 to allow one action of `kind` by `user` now, else the
     * number of milliseconds after which to retry (sent as ERROR
     * RATE_LIMITED; the action is not performed). */
    uint64_t (*rate_limit)(void *ctx, const sync_session *session, const char *user,
                           sync_rate_kind kind, uint64_t now_ms);
    /* room_closed - the room was freed from memory (idle or evicted). */
    void (*room_closed)(void *ctx, const char *name);
    /* session_output - optional: a frame was queued on `session` (or it was
     * marked closing), so the host should drain it (sync_session_next_out)
     * soon, e.g. by asking its transport for a writable callback. Called
     * from inside the sync_* call that queued it, once per frame queued (so
     * cheap flags belong in the host); it may call sync_session_data and
     * nothing else of sync_*. With it a host never has to scan every session
     * for output. NULL: not called. */
    void (*session_output)(void *ctx, sync_session *session);
    /* room_event - optional: something watchers of room `name` may want to
     * see happened (NULL: nothing is reported and nothing extra is done).
     * Called from inside the sync_* call that caused it:
     *   CHAT            when a chat record is released as durable with its
     *                   assigned id (sync_server_durable, or at once without
     *                   persist_chat), after the sender's CHAT_ACK and the
     *                   CHAT_MSG broadcast were queued; never for a duplicate
     *                   or a failed write. Ids increase per room.
     *   PRESENCE        an awareness entry was added or its state bytes
     *                   changed (renewals that only bump the clock are not
     *                   reported).
     *   PRESENCE_LEFT   an entry was removed: by its client (why CLIENT), when
     *                   the connection that introduced it left the room or
     *                   closed (LEFT), or when it expired (EXPIRED).
     *   TYPING          a user started typing (on; renewals are not
     *                   reported), stopped (CLIENT), left (LEFT) or the
     *                   indicator expired after SYNC_TYPING_MS (EXPIRED).
     * Events come only while the room is loaded (some session subscribed to
     * it, or it is idle before being freed). The callback must not call any
     * sync_* function. */
    void (*room_event)(void *ctx, const char *name, const sync_room_event *ev);
    /* relay - optional, for several nodes serving the same rooms
     * (docs/SCALING.md): bytes p[0..n) that the other nodes must apply to
     * room `name`. SYNC_RELAY_AWARENESS: an awareness update a local session
     * sent (as sent, renewals included), or the removal of the entries a
     * local connection introduced when it left the room. Never called for
     * what came in through sync_server_relay_* / sync_server_apply_remote.
     * (Document updates reach the host through persist_update, chat through
     * persist_chat, typing through room_event.) Must not call sync_*. */
    void (*relay)(void *ctx, const char *name, sync_relay_kind kind, const uint8_t *p, size_t n);
} sync_host;

/* Server limits; 0 means the default in brackets. */
typedef struct sync_server_opts {
    size_t max_rooms;          /* rooms in memory [1000] */
    size_t max_sessions;       /* sessions [10000] */
    size_t max_channels;       /* subscriptions per session [100] */
    size_t max_frame;          /* inbound frame cap after HELLO [SYNCM_DEFAULT_FRAME] */
    size_t max_hello_frame;    /* inbound frame cap before HELLO [8192] */
    size_t max_out_bytes;      /* outbound queue cap per session [4 MiB; at least 256 KiB] */
    size_t max_pending;        /* changes waiting for durability, server-wide [65536] */
    size_t max_stream_bytes;   /* bytes held for chunked transfers, server-wide [512 MiB] */
    size_t ot_history;         /* OT operations kept in memory per room [1000] */
    size_t ot_history_bytes;   /* their encoded bytes per room [4 MiB] */
    size_t max_doc_bytes;      /* largest update/snapshot a room accepts [64 MiB] */
    uint64_t room_idle_ms;     /* a room without sessions is freed after this [30000] */
    uint64_t hello_timeout_ms; /* a session must HELLO within this [10000] */
    uint64_t idle_timeout_ms;  /* a session silent this long is closed [120000] */
    uint64_t aw_timeout_ms;    /* awareness entries not renewed this long are removed and the
                                  removal broadcast [AW_TIMEOUT_MS] */
    uint64_t caps;             /* SYNC_CAP_* the server offers [SYNC_CAP_ALL] */
    uint64_t hash_seed;        /* random bits for the room table and awareness tables */
} sync_server_opts;

/* Why a session is to be closed. */
typedef enum sync_close_reason {
    SYNC_CLOSE_NONE = 0,
    SYNC_CLOSE_BACKPRESSURE, /* the outbound queue cap was reached */
    SYNC_CLOSE_PROTOCOL,     /* version mismatch or a frame that cannot be answered */
    SYNC_CLOSE_HELLO_TIMEOUT,
    SYNC_CLOSE_IDLE,
    SYNC_CLOSE_INTERNAL /* out of memory */
} sync_close_reason;

typedef struct sync_server_stats {
    size_t rooms, sessions, pending, stream_bytes;
    uint64_t frames_in, frames_out, dropped_ephemeral, errors_sent;
} sync_server_stats;

/* sync_server_new - a server with host callbacks (copied) and options (NULL:
 * defaults). Errors: TDM_EINVAL (NULL host or missing required callback),
 * TDM_ENOMEM. */
tdm_err sync_server_new(const sync_host *host, const sync_server_opts *opts, sync_server **out);
/* sync_server_free - free every session (no broadcasts), room and pending
 * record. Tokens still outstanding are forgotten (later durable calls are
 * not allowed: the server is gone). NULL is a no-op. */
void sync_server_free(sync_server *srv);
/* sync_server_tick - timers: typing expiry (SYNC_TYPING_MS), awareness
 * expiry (aw_timeout_ms; the removal is broadcast to the room like a
 * leaving connection's), idle rooms, HELLO and idle timeouts. Call every
 * ~500 ms. */
tdm_err sync_server_tick(sync_server *srv, uint64_t now_ms);
/* sync_server_durable - the host finished persisting `token`: status TDM_OK
 * (durable) or an error; id and duplicate as described at persist_chat (0 /
 * false for updates). Releases acks in order. TDM_ENOTFOUND for an unknown
 * or already completed token. */
tdm_err sync_server_durable(sync_server *srv, uint64_t token, tdm_err status, uint64_t id,
                            bool duplicate);
/* sync_server_get_stats - counters. */
void sync_server_get_stats(const sync_server *srv, sync_server_stats *st);
/* sync_server_room_text - the text of a room in memory, appended to out (for
 * hosts and tests). TDM_ENOTFOUND when the room is not loaded. */
tdm_err sync_server_room_text(sync_server *srv, const char *name, tbuf *out);
/* sync_server_room_doc - the room's document (borrowed; valid until the next
 * sync_* call) or NULL. The caller must not modify it. */
crdt_doc *sync_server_room_doc(sync_server *srv, const char *name);
/* sync_server_room_version - the room's version, or 0 when not loaded. */
uint64_t sync_server_room_version(sync_server *srv, const char *name);
/* sync_room_event_fn - receives one event of sync_server_room_presence. */
typedef void (*sync_room_event_fn)(void *arg, const sync_room_event *ev);
/* sync_server_room_presence - who is in room `name` now, as room_event would
 * have announced it to a host that watched from the start: one
 * SYNC_ROOM_PRESENCE event per awareness entry present (client id, state,
 * and the user / display name of the connection that introduced it; ""
 * when none here does, e.g. an entry relayed from another node), then one
 * SYNC_ROOM_TYPING event with on == true per member typing now. emit runs
 * inside the call; the events' pointers are valid only during emit, which
 * must not call sync_*. Errors: TDM_EINVAL (NULL argument), TDM_ENOTFOUND
 * (the room is not loaded: nobody is present). Event-loop thread, outside
 * any sync callback. Reads only: nothing is sent or changed. */
tdm_err sync_server_room_presence(sync_server *srv, const char *name, sync_room_event_fn emit,
                                  void *arg);
/* sync_room_user_fn - receives the user id and display name of one member. */
typedef void (*sync_room_user_fn)(void *arg, const char *user, const char *display);
/* sync_server_room_users - one emit per live member (subscribed channel) of
 * room `name`, with the user its token named (a user with several
 * connections comes several times). emit runs inside the call; the strings
 * are valid only during emit, which must not call sync_*. Errors: TDM_EINVAL
 * (NULL argument), TDM_ENOTFOUND (not loaded: no members). Event-loop thread;
 * it only reads, so it may also be called from inside a host callback such
 * as room_event. */
tdm_err sync_server_room_users(sync_server *srv, const char *name, sync_room_user_fn emit,
                               void *arg);

/* ---- several nodes (relay.c; docs/SCALING.md) ------------------------------
 * A host that runs several nodes for the same rooms passes on what its local
 * sessions change (persist_update bytes, host->relay awareness, room_event
 * typing, durable chat records) and puts what other nodes changed in with
 * the calls below, on the event-loop thread, outside any callback. Each works
 * on a room only while it is loaded here (TDM_ENOTFOUND otherwise: the
 * node's store catches up when the room is loaded and compared). Nothing put
 * in through these calls is passed to host->relay, and room_event callbacks
 * made from inside them see sync_server_relaying() true. */

/* sync_server_apply_remote - apply update bytes p[0..n) (untrusted; another
 * node's CRDT update) to room `name`: the local CRDT members get what the
 * room integrated (UPDATE), OT members the change (OT_REMOTE), and the bytes
 * are handed to host->persist_update (no ack is waited for: no local sender)
 * when they changed anything. *changed (may be NULL): the document grew or
 * operations were held pending (dependencies missing: compare state
 * vectors to repair). Errors: TDM_ENOTFOUND (not loaded), TDM_ETOOBIG (too
 * many writes pending), TDM_EINVAL, and crdt_doc_apply's (a prefix may have
 * been applied and is then stored). */
tdm_err sync_server_apply_remote(sync_server *srv, const char *name, const uint8_t *p, size_t n,
                                 bool *changed);
/* sync_server_room_sv - append the room's encoded state vector
 * (crdt_sv_encode) to out. TDM_ENOTFOUND, TDM_ENOMEM. */
tdm_err sync_server_room_sv(sync_server *srv, const char *name, tbuf *out);
/* sync_server_room_compare - compare another node's encoded state vector
 * sv[0..n) (untrusted) with the room: when the other node lacks something,
 * append an update holding exactly that to diff (else diff is unchanged);
 * *behind (may be NULL): this room lacks something the other node has.
 * Errors: TDM_ENOTFOUND, TDM_EMALFORMED (bad sv), TDM_ENOMEM, TDM_ETOOBIG. */
tdm_err sync_server_room_compare(sync_server *srv, const char *name, const uint8_t *sv, size_t n,
                                 tbuf *diff, bool *behind);
/* sync_server_relay_awareness - merge another node's awareness update
 * p[0..n) (untrusted) into the room and send it to every local member.
 * Errors: TDM_ENOTFOUND, TDM_EINVAL, aw_apply's (nothing changed). */
tdm_err sync_server_relay_awareness(sync_server *srv, const char *name, const uint8_t *p, size_t n,
                                    uint64_t now_ms);
/* sync_server_awareness_local - append an awareness update holding every
 * entry a local connection introduced (for periodic re-announcement) to
 * out; nothing when there is none. TDM_ENOTFOUND, aw_encode's errors. */
tdm_err sync_server_awareness_local(sync_server *srv, const char *name, tbuf *out);
/* sync_server_relay_typing - a user on another node started (on) or stopped
 * typing: TYPING to every local member, room_event TYPING. user 1..
 * SYNCM_MAX_USER bytes, display up to SYNCM_MAX_USER. TDM_ENOTFOUND,
 * TDM_EINVAL. */
tdm_err sync_server_relay_typing(sync_server *srv, const char *name, const char *user,
                                 const char *display, bool on);
/* sync_server_relay_chat - a chat record another node made durable, already
 * stored here with the same id (rec->id > 0): CHAT_MSG to every local member
 * and room_event CHAT, unless the room has seen that id (then nothing).
 * TDM_ENOTFOUND, TDM_EINVAL. */
tdm_err sync_server_relay_chat(sync_server *srv, const char *name, const sync_chat_rec *rec);
/* sync_server_relaying - true inside one of the calls above. */
bool sync_server_relaying(const sync_server *srv);
/* sync_room_fn - one room in memory and its member count. */
typedef void (*sync_room_fn)(void *arg, const char *name, size_t members);
/* sync_server_active_rooms - call fn (may be NULL) for every room in memory;
 * returns how many there are. fn must not call sync_*. */
size_t sync_server_active_rooms(sync_server *srv, sync_room_fn fn, void *arg);

/* sync_session_new - a session for a new connection. It expects HELLO first.
 * Errors: TDM_ETOOBIG (max_sessions reached), TDM_ENOMEM. */
tdm_err sync_session_new(sync_server *srv, uint64_t now_ms, sync_session **out);
/* sync_session_recv - process one inbound frame p[0..n) (untrusted). Replies
 * and broadcasts are queued. Returns TDM_OK, or the error that was answered
 * with an ERROR frame (TDM_EMALFORMED, TDM_ETOOBIG, ...); no state changed
 * for a refused frame. Frames to a closing session are ignored (TDM_OK). */
tdm_err sync_session_recv(sync_session *ss, const uint8_t *p, size_t n, uint64_t now_ms);
/* sync_session_next_out - the next outbound frame (borrowed until
 * sync_session_consume) or false when there is none now. */
bool sync_session_next_out(sync_session *ss, const uint8_t **p, size_t *n);
/* sync_session_consume - drop the frame next_out returned (it was sent); may
 * produce the next chunk of a large transfer. */
void sync_session_consume(sync_session *ss);
/* sync_session_out_bytes - bytes queued (incl. frames held for ordering). */
size_t sync_session_out_bytes(const sync_session *ss);
/* sync_session_closing - true when the host should close the connection
 * (after sending what is queued); *why (may be NULL) gets the reason. */
bool sync_session_closing(const sync_session *ss, sync_close_reason *why);
/* sync_session_reauthorize - run authorize again for every channel (e.g.
 * after a permission was revoked): channels now refused are unsubscribed with
 * ERROR NOT_ALLOWED; access changes take effect at once. */
tdm_err sync_session_reauthorize(sync_session *ss, uint64_t now_ms);
/* sync_session_close - the connection is gone: leave every room (awareness
 * entries the session introduced are removed and the removal broadcast;
 * typing stopped and broadcast) and free the session, its queue included (a
 * frame borrowed from next_out is gone too). Acks still pending are dropped;
 * their writes still complete through sync_server_durable. NULL is a no-op. */
void sync_session_close(sync_session *ss, uint64_t now_ms);
uint64_t sync_session_id(const sync_session *ss);
/* A slot for the host (its connection object). */
void sync_session_set_data(sync_session *ss, void *data);
void *sync_session_data(const sync_session *ss);

#endif
