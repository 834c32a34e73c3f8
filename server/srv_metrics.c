/* srv_metrics.c - GET /metrics: the Prometheus text exposition format
 * (text/plain; version=0.0.4): `# HELP`, `# TYPE`, then `name value` lines.
 * No token is needed (like /healthz). Service thread only. */
#define _XOPEN_SOURCE 700 /* sysconf */
#include "srv_internal.h"
#include "srv_push.h"
#include "srv_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRV_METRICS_MAX 16384u

uint64_t srv_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, rss = 0;
    int n = fscanf(f, "%llu %llu", &size, &rss);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (n != 2 || page <= 0) return 0;
    return (uint64_t)rss * (uint64_t)page;
}

typedef struct mbuf {
    char *p;
    size_t len;
    bool full;
} mbuf;

static void put(mbuf *b, const char *name, const char *type, const char *help, double v)
{
    int n = snprintf(b->p + b->len, SRV_METRICS_MAX - b->len,
                     "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, v);
    if (n < 0 || (size_t)n >= SRV_METRICS_MAX - b->len) {
        b->full = true;
        return;
    }
    b->len += (size_t)n;
}

#define COUNTER(b, name, help, v) put(b, "tandem_" name, "counter", help, (double)(v))
#define GAUGE(b, name, help, v)   put(b, "tandem_" name, "gauge", help, (double)(v))

tdm_err srv_metrics(srv *s, srv_resp *r)
{
    char *text = malloc(SRV_METRICS_MAX);
    if (!text) return TDM_ENOMEM;
    mbuf b = {text, 0, false};
    sync_server_stats st;
    sync_server_get_stats(s->sync, &st);
    const srv_counters *n = &s->n;
    GAUGE(&b, "uptime_seconds", "Seconds since the server started.",
          (double)(srv_now_ms() - s->started_ms) / 1000.0);
    GAUGE(&b, "connections", "Open WebSocket connections.", s->nconns);
    GAUGE(&b, "rooms", "Rooms in memory.", st.rooms);
    GAUGE(&b, "sessions", "Sync sessions.", st.sessions);
    GAUGE(&b, "pending", "Changes waiting for durability.", st.pending);
    GAUGE(&b, "sse_streams", "Open Server-Sent Events streams.", s->nsse);
    COUNTER(&b, "ws_accepted_total", "WebSocket connections accepted.", n->ws_accepted);
    COUNTER(&b, "ws_refused_total", "WebSocket upgrades refused.", n->ws_refused);
    COUNTER(&b, "ws_closed_total", "WebSocket connections closed.", n->ws_closed);
    COUNTER(&b, "messages_in_total", "WebSocket messages received.", n->frames_in);
    COUNTER(&b, "messages_out_total", "WebSocket messages sent.", n->frames_out);
    COUNTER(&b, "bytes_in_total", "WebSocket payload bytes received.", n->bytes_in);
    COUNTER(&b, "bytes_out_total", "WebSocket payload bytes sent.", n->bytes_out);
    COUNTER(&b, "updates_persisted_total", "Document updates stored.", n->updates_persisted);
    COUNTER(&b, "chats_persisted_total", "Chat messages stored.", n->chats_persisted);
    COUNTER(&b, "storage_errors_total", "Failed storage jobs.", n->storage_errors);
    COUNTER(&b, "auth_refused_total", "Sessions refused by authentication.", n->auth_refused);
    COUNTER(&b, "too_big_total", "Inbound messages over the frame cap.", n->too_big);
    COUNTER(&b, "connect_limited_total", "Requests and upgrades refused by the per-IP limit (429).",
            n->connect_limited);
    COUNTER(&b, "pre_hello_closed_total", "WebSockets closed for too much before HELLO (4004).",
            n->pre_hello_closed);
    COUNTER(&b, "protocol_errors_total", "Protocol errors.", n->protocol_errors);
    COUNTER(&b, "http_requests_total", "HTTP requests.", n->http_requests);
    COUNTER(&b, "sse_opened_total", "SSE streams started.", n->sse_opened);
    COUNTER(&b, "sse_refused_total", "SSE streams refused (cap).", n->sse_refused);
    COUNTER(&b, "sse_closed_total", "SSE streams closed.", n->sse_closed);
    COUNTER(&b, "sse_reaped_total", "SSE streams whose client vanished (socket peek).",
            n->sse_reaped);
    COUNTER(&b, "sse_expired_total", "SSE streams ended at their maximum lifetime.",
            n->sse_expired);
    srv_push_counters pc; /* Web Push (srv_push.h, docs/PUSH.md) */
    srv_push_counters_get(s, &pc);
    COUNTER(&b, "push_subscribed_total", "Push subscriptions stored.", pc.subscribed);
    COUNTER(&b, "push_unsubscribed_total", "Push subscriptions removed by users.", pc.unsubscribed);
    COUNTER(&b, "push_events_total", "Durable chat messages handed to the push worker.", pc.events);
    COUNTER(&b, "push_events_lost_total", "Chat messages not notified (push queue full).",
            pc.events_lost);
    COUNTER(&b, "push_skipped_total", "Followers skipped (connected to the room, or the sender).",
            pc.skipped);
    COUNTER(&b, "push_sent_total", "Notifications accepted by push services.", pc.sent);
    COUNTER(&b, "push_retried_total", "Notification retries scheduled (429, 5xx, network).",
            pc.retried);
    COUNTER(&b, "push_failed_total", "Notifications given up.", pc.failed);
    COUNTER(&b, "push_removed_total", "Subscriptions deleted after 404/410.", pc.removed);
    COUNTER(&b, "push_capped_total", "Notifications held back by the per-user cap.", pc.capped);
    COUNTER(&b, "push_coalesced_total", "Notifications merged into a queued one.", pc.coalesced);
    COUNTER(&b, "push_dropped_total", "Notifications dropped (delivery queue full).", pc.dropped);
    GAUGE(&b, "push_queued", "Notifications waiting to be sent.", pc.queued);
    if (s->redis) { /* several nodes (srv_redis.h, docs/SCALING.md); only with --redis */
        srv_redis_counters rc;
        srv_redis_counters_get(s, &rc);
        GAUGE(&b, "redis_connected", "1 while the Redis subscriber connection is up.",
              rc.connected ? 1 : 0);
        COUNTER(&b, "redis_relayed_in_total", "Messages from other nodes handled.", rc.relayed_in);
        COUNTER(&b, "redis_relayed_out_total", "Messages queued for the other nodes.",
                rc.relayed_out);
        COUNTER(&b, "redis_dropped_total", "Relay messages dropped (queue cap, Redis away).",
                rc.dropped);
        COUNTER(&b, "redis_chat_gaps_total", "Chat id gaps skipped after SRV_REDIS_GAP_MS.",
                rc.chat_gaps);
        COUNTER(&b, "redis_chat_id_shifts_total",
                "Chat records stored under another id than Redis allocated.", rc.chat_id_shifts);
    }
    put(&b, "process_resident_memory_bytes", "gauge", "Resident set size in bytes.",
        (double)srv_rss_bytes());
    tdm_err e =
        b.full ? TDM_ETOOBIG
               : srv_resp_bytes(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, b.len);
    free(text);
    return e;
}
