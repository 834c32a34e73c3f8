/* srv_redis.h - several tandem nodes serving the same rooms through Redis
 * (prefix srv_redis_; docs/SCALING.md). Only active with cfg.redis_url:
 * without it srv_redis_open does nothing, no thread starts and the host
 * table is left as it is.
 *
 * Each node relays what its local sessions change in a room (CRDT update
 * bytes, awareness, typing, durable chat records) on the Redis pub/sub
 * channel "tandem:room:<name>", tagged with its random node id, and applies
 * what the other nodes relay through sync/'s relay entry points
 * (sync_server_apply_remote, ...). Every node persists what it applies to
 * its own LMDB store. Nodes publish each open room's state vector and last
 * chat id when the room opens and every SRV_REDIS_SV_MS, and answer a
 * state vector that lacks something with the missing updates (from the room
 * in memory, or from the store for an opening room), so convergence does
 * not depend on pub/sub delivering everything. Chat ids come from Redis
 * (INCR tandem:chat:<name>, never below what a node has stored) and every
 * node appends chat records to its store in id order.
 *
 * Threads: two threads per node, each with its own blocking hiredis
 * connection: a subscriber (PSUBSCRIBE tandem:room:*) and a publisher
 * (PUBLISH, chat id allocation). Both reconnect with backoff (100 ms doubling
 * to 2 s), logging in again each time. They hand work to the service thread through a
 * mutex-protected queue and lws_cancel_service; the service thread never waits on Redis. Every
 * srv_redis_* function below runs on the service thread.
 */
#ifndef TANDEM_SRV_REDIS_H
#define TANDEM_SRV_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "session.h"

struct srv;

#define SRV_REDIS_SV_MS       2000u               /* state-vector announcement period per room */
#define SRV_REDIS_MSG_MAX     ((size_t)64 << 20)  /* largest relayed message */
#define SRV_REDIS_QUEUE_BYTES ((size_t)256 << 20) /* bytes queued each way; past it: dropped */
#define SRV_REDIS_CHAT_BUFFER 1024u               /* out-of-order chat records held per room */
#define SRV_REDIS_GAP_MS      5000u               /* a chat gap nobody fills this long is skipped */
#define SRV_REDIS_USER_MAX    128u                /* AUTH user name, bytes (decoded) */
#define SRV_REDIS_PASS_MAX    512u                /* AUTH password, bytes (decoded) */

/* srv_redis_open - when s->cfg.redis_url is set: parse it
 * (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], default port 6379, db 0;
 * USER and PASSWORD percent-encoded; the password may instead come from
 * the environment variable TANDEM_REDIS_PASSWORD, used when the URL has
 * none), connect once to check the login, pick a random node id and start
 * the two threads (they connect in the background). Every connection of
 * either thread sends AUTH (with a password), SELECT (db > 0) and PING
 * before anything else. The password is never printed or logged (messages
 * show the URL with its userinfo as "***"). TDM_EINVAL for a malformed URL
 * or a login Redis refuses at start (wrong or missing password, bad db;
 * message on stderr; Redis not reachable is not an error: the threads
 * retry), TDM_ENOMEM. Nothing without a URL. Later refused logins are
 * logged once per reason and retried with backoff. */
tdm_err srv_redis_open(struct srv *s);
/* srv_redis_host - wrap the host callbacks that relay (persist_update,
 * persist_chat, load_room, room_event, relay). No-op when not open. Call
 * after srv_host_make and before sync_server_new. */
void srv_redis_host(struct srv *s, sync_host *h);
/* srv_redis_drain - apply what the threads handed over (relayed changes,
 * chat ids, stored chat records, reconnects). Called by srv_host_drain;
 * what it queues for sessions is written at the end of the loop's turn. */
void srv_redis_drain(struct srv *s);
/* srv_redis_tick - periodic state-vector announcements. */
void srv_redis_tick(struct srv *s, uint64_t now_ms);
/* srv_redis_close - stop and join the threads, free everything. Chat
 * writes still waiting for an id fail (their durable calls are not made:
 * the sync server is going away). */
void srv_redis_close(struct srv *s);
/* srv_redis_connected - the subscriber connection is up. */
bool srv_redis_connected(const struct srv *s);

/* Counters for /metrics (tandem_redis_*). */
typedef struct srv_redis_counters {
    bool connected;          /* the subscriber connection is up */
    uint64_t relayed_in;     /* messages from other nodes handled */
    uint64_t relayed_out;    /* messages queued for Redis */
    uint64_t dropped;        /* messages dropped (a queue over its cap, Redis away) */
    uint64_t chat_gaps;      /* chat id gaps skipped (SRV_REDIS_GAP_MS) */
    uint64_t chat_id_shifts; /* chat records stored with another id than Redis gave */
} srv_redis_counters;
/* srv_redis_counters_get - fill *c (zeros when not open). */
void srv_redis_counters_get(const struct srv *s, srv_redis_counters *c);

#endif
