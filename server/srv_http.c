/* srv_http.c - protocols[0]: every HTTP request on the port, the refusal
 * of WebSocket upgrades without our subprotocol, and the inbox wake-up
 * (EVENT_WAIT_CANCELLED). Requests are routed by path:
 *   /api/stream/stats    Server-Sent Events (srv_sse.c)
 *   /metrics             Prometheus text (srv_metrics.c)
 *   /healthz, /api/...   JSON API (srv_api.c)
 *   anything else        static files under the web root (srv_static.c)
 * Every request and upgrade first passes the per-IP connection limit
 * (srv_access_connect; 429 with Retry-After past it).
 * Generated bodies are sent in pieces of SRV_HTTP_PIECE bytes, one lws_write
 * per HTTP_WRITEABLE callback. Service thread only. */
#include "srv_internal.h"
#include "srv_push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRV_HTTP_PIECE 32768u

static void req_reset(srv_http_req *q)
{
    free(q->body);
    q->body = NULL;
    q->len = q->off = 0;
    q->sending = false;
}

/* Does the upgrade request list SRV_SUBPROTOCOL in Sec-WebSocket-Protocol? */
static bool wants_our_protocol(struct lws *wsi)
{
    char buf[512];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) >= (int)sizeof buf) return false;
    if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_PROTOCOL) <= 0) return false;
    const size_t want = strlen(SRV_SUBPROTOCOL);
    for (char *p = buf; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t') e++;
        if ((size_t)(e - p) == want && memcmp(p, SRV_SUBPROTOCOL, want) == 0) return true;
        p = e;
    }
    return false;
}

/* retry_s > 0 adds Retry-After (429). */
static int send_headers(struct lws *wsi, unsigned status, const char *type, size_t len,
                        uint64_t retry_s)
{
    uint8_t hdr[LWS_PRE + 1024];
    uint8_t *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, status, type, len, &p, end)) return -1;
    static const char nosniff[] = "nosniff", nostore[] = "no-store";
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                    (const unsigned char *)nosniff, sizeof nosniff - 1, &p, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)nostore, sizeof nostore - 1, &p, end))
        return -1;
    if (retry_s) {
        char ra[24];
        int n = snprintf(ra, sizeof ra, "%llu", (unsigned long long)retry_s);
        if (lws_add_http_header_by_name(
                wsi, (const unsigned char *)"retry-after:", (const unsigned char *)ra, n, &p, end))
            return -1;
    }
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
    return 0;
}

/* Start sending r (ownership of r->body passes to q). */
static int respond(struct lws *wsi, srv_http_req *q, srv_resp *r)
{
    req_reset(q);
    q->body = r->body;
    q->len = r->len;
    r->body = NULL;
    if (send_headers(wsi, r->status, r->type, q->len, q->retry_s)) return -1;
    q->retry_s = 0;
    if (q->len == 0) {
        req_reset(q);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    q->sending = true;
    lws_callback_on_writable(wsi);
    return 0;
}

static int respond_error(struct lws *wsi, srv_http_req *q, unsigned status, const char *code,
                         const char *msg)
{
    srv_resp r = {0};
    if (srv_resp_error(&r, status, code, msg)) return -1;
    return respond(wsi, q, &r);
}

static int send_piece(struct lws *wsi, srv_http_req *q)
{
    if (!q->sending) return 0;
    size_t n = q->len - q->off;
    if (n > SRV_HTTP_PIECE) n = SRV_HTTP_PIECE;
    bool last = q->off + n == q->len;
    /* Bytes before body + LWS_PRE + off were sent already; lws may write there. */
    int w =
        lws_write(wsi, q->body + LWS_PRE + q->off, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (w < (int)n) return -1;
    q->off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    req_reset(q);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* The per-IP connection limit (before auth): 0 go on, 1 a 429 is being
 * sent, -1 close. An upgrade gets the whole answer now and is closed. */
static int limit_connect(srv *s, struct lws *wsi, srv_http_req *q, bool upgrade)
{
    uint64_t ms = srv_access_connect(s, wsi);
    if (!ms) return 0;
    uint64_t secs = (ms + 999u) / 1000u;
    srv_resp r = {0};
    char msg[96];
    snprintf(msg, sizeof msg, "too many connection attempts; retry in %llu s",
             (unsigned long long)secs);
    if (srv_resp_error(&r, 429, "rate_limited", msg)) return -1;
    if (!upgrade) {
        q->retry_s = secs;
        return respond(wsi, q, &r) ? -1 : 1;
    }
    /* Upgrade: headers, then the body in one final write; the caller closes. */
    if (!send_headers(wsi, 429, r.type, r.len, secs))
        (void)lws_write(wsi, r.body + LWS_PRE, r.len, LWS_WRITE_HTTP_FINAL);
    free(r.body);
    return -1;
}

static int serve_static(srv *s, struct lws *wsi, srv_http_req *q, const char *path)
{
    char real[4096];
    const char *type = NULL;
    unsigned st = srv_static_resolve(s, path, real, sizeof real, &type);
    if (st == 403) return respond_error(wsi, q, 403, "forbidden", "path not allowed");
    if (st) return respond_error(wsi, q, 404, "not_found", "no such file");
    static const char extra[] = "x-content-type-options: nosniff\r\n";
    int n = lws_serve_http_file(wsi, real, type, extra, (int)(sizeof extra - 1));
    if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi))) return -1;
    return 0;
}

/* POST: the body arrives in HTTP_BODY callbacks, kept up to
 * SRV_PUSH_BODY_MAX bytes (413 past it, from the Content-Length at once or
 * once the body is complete); HTTP_BODY_COMPLETION answers. */
static void post_reset(srv_http_req *q)
{
    free(q->in);
    q->in = NULL;
    q->in_len = 0;
    q->in_over = false;
    q->in_path[0] = '\0';
}

static int on_post(srv *s, struct lws *wsi, srv_http_req *q, const char *path)
{
    (void)s;
    post_reset(q);
    if (!path || !srv_push_is_post(path))
        return respond_error(wsi, q, 405, "method_not_allowed", "POST is not supported here");
    char cl[32];
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
        strtoull(cl, NULL, 10) > SRV_PUSH_BODY_MAX)
        return respond_error(wsi, q, 413, "too_large", "the request body is over 16 KiB");
    snprintf(q->in_path, sizeof q->in_path, "%s", path);
    return 0; /* wait for the body */
}

static int on_body(srv_http_req *q, const void *in, size_t len)
{
    if (!q->in_path[0] || q->in_over) return 0;
    if (q->in_len + len > SRV_PUSH_BODY_MAX) {
        free(q->in);
        q->in = NULL;
        q->in_over = true; /* the rest is read and dropped */
        return 0;
    }
    uint8_t *b = realloc(q->in, q->in_len + len + 1);
    if (!b) return -1;
    memcpy(b + q->in_len, in, len);
    q->in = b;
    q->in_len += len;
    return 0;
}

static int on_body_done(srv *s, struct lws *wsi, srv_http_req *q)
{
    if (!q->in_path[0]) return 0;
    if (q->in_over) {
        post_reset(q);
        return respond_error(wsi, q, 413, "too_large", "the request body is over 16 KiB");
    }
    srv_resp r = {0};
    tdm_err e =
        srv_push_post(s, wsi, q->in_path, q->in ? q->in : (const uint8_t *)"", q->in_len, &r);
    post_reset(q);
    if (e) {
        free(r.body);
        return respond_error(wsi, q, e == TDM_ETOOBIG ? 413 : 500, "internal", tdm_strerror(e));
    }
    return respond(wsi, q, &r);
}

static int on_http(srv *s, struct lws *wsi, srv_http_req *q, const char *path)
{
    s->n.http_requests++;
    req_reset(q);
    int lim = limit_connect(s, wsi, q, false);
    if (lim) return lim < 0 ? -1 : 0;
    char *uri;
    int ulen;
    int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    if (method == LWSHUMETH_POST) return on_post(s, wsi, q, path);
    if (method != LWSHUMETH_GET)
        return respond_error(wsi, q, 405, "method_not_allowed", "only GET is supported");
    if (!path || strlen(path) > SRV_PATH_MAX)
        return respond_error(wsi, q, 414, "uri_too_long", "request path too long");
    srv_resp r = {0};
    int sse = srv_sse_route(s, wsi, q, path, &r);
    if (sse < 0) return -1;
    if (sse == 2) return 0;
    if (sse == 1) return respond(wsi, q, &r);
    if (strcmp(path, "/metrics") == 0) {
        tdm_err e = srv_metrics(s, &r);
        if (e) return respond_error(wsi, q, 500, "internal", tdm_strerror(e));
        return respond(wsi, q, &r);
    }
    if (srv_api_route(s, wsi, path, &r)) {
        if (!r.body && r.len == 0 && r.status == 0)
            return respond_error(wsi, q, 500, "internal", "out of memory");
        return respond(wsi, q, &r);
    }
    return serve_static(s, wsi, q, path);
}

int srv_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    srv *s = ctx ? lws_context_user(ctx) : NULL;
    srv_http_req *q = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s && s->sync) srv_host_drain(s);
        if (s) srv_push_drain(s);
        return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return s && s->stopping ? -1 : 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* The per-IP limit first: every upgrade attempt takes a token. */
        if (s && limit_connect(s, wsi, q, true)) {
            s->n.ws_refused++;
            return -1;
        }
        /* Refuse a WebSocket upgrade without our subprotocol with a 400
         * (the same path lws takes for an unknown upgrade) and hang up. */
        if (in && strcmp((const char *)in, "websocket") == 0 && !wants_our_protocol(wsi)) {
            if (s) s->n.ws_refused++;
            lws_return_http_status(
                wsi, HTTP_STATUS_BAD_REQUEST,
                "WebSocket upgrades must offer Sec-WebSocket-Protocol: " SRV_SUBPROTOCOL);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* An upgrade that bound to protocols[0]: no subprotocol of ours. */
        if (s) s->n.ws_refused++;
        return -1;
    case LWS_CALLBACK_HTTP:
        return on_http(s, wsi, q, (const char *)in);
    case LWS_CALLBACK_HTTP_BODY:
        return q ? on_body(q, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return q ? on_body_done(s, wsi, q) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (q && q->sse) return srv_sse_writeable(s, wsi, q);
        return send_piece(wsi, q);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s && q) srv_sse_closed(s, q);
        if (q) req_reset(q), post_reset(q);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
