/* client.h - the client side of the sync protocol (prefix sync_client_), for
 * native clients and tests.
 *
 * One sync_client is one connection's worth of state that survives
 * reconnects: its channels (CRDT documents it syncs, OT texts it edits), the
 * CRDT updates sent but not yet acked, the OT operation in flight and the one
 * buffered behind it, the chat messages not yet acked, the last chat id seen.
 * Like the server it is bytes in, bytes out: feed every frame from the server
 * to sync_client_recv and send what sync_client_next_out returns.
 *
 * Lifecycle: sync_client_connect queues HELLO and a SUBSCRIBE for every
 * channel; after each SUBSCRIBED the client resends what the server has not
 * acknowledged (CRDT updates with their original sequence numbers, the OT
 * operation in flight once caught up, unacked chat messages: all idempotent
 * on the server) and then whatever changed locally while offline.
 * sync_client_disconnect drops the frames not yet sent and every partial
 * transfer. Calls that send while disconnected only change local state.
 *
 * CRDT channels borrow a crdt_doc owned by the caller. The caller edits it
 * and then calls sync_client_flush, which sends the local operations not yet
 * sent as one UPDATE with the next sequence number; remote updates are
 * applied to the document by sync_client_recv. Do not install a document
 * observer expecting to be the only one: the client does not use it.
 *
 * OT channels keep their own text and version and follow the standard OT
 * client states: synchronized, awaiting an ack (one operation in flight), or
 * awaiting with a buffer (local edits composed behind it). Remote operations
 * are transformed over both before they are applied to the text.
 *
 * Ownership: strings and operations handed to callbacks are valid only during
 * the call. Threads: one thread at a time per client (no locks, no globals,
 * no I/O, no clock reads; time comes in as now_ms).
 * Errors: tdm_err. TDM_EINVAL for a bad argument or unknown channel,
 * TDM_ETOOBIG when a cap would be passed (the local state stays as it was
 * unless said otherwise), TDM_ENOMEM.
 */
#ifndef TANDEM_SYNC_CLIENT_H
#define TANDEM_SYNC_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"
#include "buf.h"
#include "doc.h"
#include "ot.h"
#include "msg.h"

typedef struct sync_client sync_client;

/* OT client states. */
typedef enum sync_ot_state {
    SYNC_OT_SYNCHRONIZED = 0,
    SYNC_OT_AWAITING_ACK,
    SYNC_OT_AWAITING_WITH_BUFFER
} sync_ot_state;

/* Callbacks (any may be NULL); `ctx` is passed back. They may read the
 * client and its documents but must not call sync_client_* functions that
 * change state. */
typedef struct sync_client_events {
    void *ctx;
    /* WELCOME received. */
    void (*on_welcome)(void *ctx, const syncm *m);
    /* SUBSCRIBED received for `channel` (m->access, m->version, m->is_new). */
    void (*on_subscribed)(void *ctx, uint32_t channel, const syncm *m);
    /* a chunked transfer advanced: done of total bytes. */
    void (*on_progress)(void *ctx, uint32_t channel, uint64_t done, uint64_t total);
    /* the channel is in sync: the first transfer applied (CRDT), or the text
     * caught up with the version SUBSCRIBED named (OT). */
    void (*on_synced)(void *ctx, uint32_t channel);
    /* an ERROR frame (m->op: an OT operation the server gave back). Also
     * called with a synthesized TOO_FAR_BEHIND error carrying the local OT
     * operations that a snapshot made the client drop. */
    void (*on_error)(void *ctx, const syncm *m);
    /* the server acknowledged (durably stored) UPDATE `seq`. */
    void (*on_ack)(void *ctx, uint32_t channel, uint64_t seq);
    /* a remote change was applied: CRDT (op NULL) or OT (the op applied to
     * the local text). */
    void (*on_remote)(void *ctx, uint32_t channel, const ot_op *op);
    /* AWARENESS bytes (the crdt awareness wire form) for the app's aw_state. */
    void (*on_awareness)(void *ctx, uint32_t channel, const uint8_t *p, size_t n);
    /* a chat record (live CHAT_MSG or history), each id once, in id order. */
    void (*on_chat)(void *ctx, uint32_t channel, const syncm_chat *rec);
    /* the server stored our message msg_id as chat_id. */
    void (*on_chat_ack)(void *ctx, uint32_t channel, uint64_t msg_id, uint64_t chat_id);
    /* someone started (on) or stopped typing. Starts expire SYNC_TYPING_MS
     * after the last one unless renewed; the server also sends the stop. */
    void (*on_typing)(void *ctx, uint32_t channel, const syncm_str *user, const syncm_str *display,
                      bool on);
} sync_client_events;

typedef struct sync_client_opts {
    uint64_t client_id;        /* sent in HELLO; identifies our OT ops and chat resends */
    const uint8_t *token;      /* auth token (copied), may be NULL */
    size_t token_len;          /* <= SYNCM_MAX_TOKEN */
    size_t max_out_bytes;      /* outbound queue cap [16 MiB] */
    size_t max_unacked_bytes;  /* CRDT updates kept until acked, per client [64 MiB] */
    size_t max_frame;          /* inbound frame cap [64 MiB] */
    size_t max_transfer_bytes; /* reassembly cap of one chunked transfer [256 MiB] */
    size_t max_channels;       /* [64] */
    size_t max_chat_pending;   /* chat messages not yet acked [256] */
} sync_client_opts;

/* sync_client_new - a disconnected client. Errors: TDM_EINVAL, TDM_ENOMEM. */
tdm_err sync_client_new(const sync_client_opts *opts, const sync_client_events *ev,
                        sync_client **out);
/* sync_client_free - free the client (not the borrowed documents). NULL ok. */
void sync_client_free(sync_client *c);

/* sync_client_connect - a new connection: queue HELLO and re-SUBSCRIBE every
 * channel (CRDT: the document's state vector; OT: the version held, if any;
 * chat replay after the last id seen). */
tdm_err sync_client_connect(sync_client *c, uint64_t now_ms);
/* sync_client_disconnect - the connection is gone: drop queued frames and
 * partial transfers; keep everything that must be resent. */
void sync_client_disconnect(sync_client *c);
bool sync_client_connected(const sync_client *c);
/* sync_client_set_token - replace the token; when connected a new HELLO
 * refreshes it on the server without reconnecting. */
tdm_err sync_client_set_token(sync_client *c, const uint8_t *token, size_t n);

/* sync_client_subscribe_crdt - sync document `name` into `doc` (borrowed;
 * must outlive the channel). chat_replay: ask for the chat history too.
 * *channel gets the channel id. Sent now when connected, else at connect. */
tdm_err sync_client_subscribe_crdt(sync_client *c, const char *name, crdt_doc *doc,
                                   bool chat_replay, uint32_t *channel);
/* sync_client_subscribe_ot - edit document `name` as OT text. */
tdm_err sync_client_subscribe_ot(sync_client *c, const char *name, bool chat_replay,
                                 uint32_t *channel);
/* sync_client_unsubscribe - leave and forget the channel (unacked state too). */
tdm_err sync_client_unsubscribe(sync_client *c, uint32_t channel);

/* sync_client_flush - CRDT: send the document's local operations not yet
 * sent as one UPDATE (next sequence number), kept until acked. Nothing new:
 * TDM_OK without a frame. TDM_ETOOBIG past max_unacked_bytes (nothing sent;
 * retry after acks). */
tdm_err sync_client_flush(sync_client *c, uint32_t channel);
/* sync_client_sync_step - CRDT: ask for everything the document lacks. */
tdm_err sync_client_sync_step(sync_client *c, uint32_t channel);
/* sync_client_unacked - CRDT updates sent and not acked on the channel. */
size_t sync_client_unacked(const sync_client *c, uint32_t channel);

/* sync_client_ot_edit - OT: apply op (based on the current local text) to
 * the text and send it, or buffer it behind the operation in flight.
 * TDM_EBASELEN when op does not fit the text (nothing changes). */
tdm_err sync_client_ot_edit(sync_client *c, uint32_t channel, const ot_op *op);
/* sync_client_ot_text - append the local OT text to out. */
tdm_err sync_client_ot_text(const sync_client *c, uint32_t channel, tbuf *out);
/* sync_client_ot_version - the version the local text is based on. */
uint64_t sync_client_ot_version(const sync_client *c, uint32_t channel);
sync_ot_state sync_client_ot_state(const sync_client *c, uint32_t channel);

/* sync_client_synced - the channel finished its first sync since connect. */
bool sync_client_synced(const sync_client *c, uint32_t channel);

/* sync_client_awareness - send an awareness update (aw_encode_local bytes). */
tdm_err sync_client_awareness(sync_client *c, uint32_t channel, const uint8_t *p, size_t n);
/* sync_client_chat_send - send a chat message; *msg_id (may be NULL) gets its
 * client message id. Kept and resent until CHAT_ACK. */
tdm_err sync_client_chat_send(sync_client *c, uint32_t channel, const char *text, size_t n,
                              uint64_t *msg_id);
/* sync_client_chat_history - ask for `limit` records after chat id `after`. */
tdm_err sync_client_chat_history(sync_client *c, uint32_t channel, uint64_t after, uint64_t limit);
/* sync_client_chat_last - the highest chat id seen on the channel. */
uint64_t sync_client_chat_last(const sync_client *c, uint32_t channel);
/* sync_client_typing - tell the room we started (renew every ~2 s while
 * typing) or stopped typing. */
tdm_err sync_client_typing(sync_client *c, uint32_t channel, bool on);
/* sync_client_retry - resend what the server refused for now (RATE_LIMITED,
 * SERVER_BUSY, STORAGE errors name it): call after the error's retry_ms. */
tdm_err sync_client_retry(sync_client *c);
/* sync_client_ping - queue a PING. */
tdm_err sync_client_ping(sync_client *c, uint64_t nonce);

/* sync_client_recv - process one frame from the server (untrusted).
 * Malformed frames are dropped (TDM_EMALFORMED) without changing state. */
tdm_err sync_client_recv(sync_client *c, const uint8_t *p, size_t n, uint64_t now_ms);
/* sync_client_next_out / consume - the outbound queue, as on the server. */
bool sync_client_next_out(sync_client *c, const uint8_t **p, size_t *n);
void sync_client_consume(sync_client *c);

#endif
