/* ws_client.c - see ws_client.h. */
#include "ws_client.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct wsc_msg {
    struct wsc_msg *next;
    size_t n;
    uint8_t data[]; /* LWS_PRE bytes of headroom, then the payload */
} wsc_msg;

struct wsc_conn {
    wsc_ctx *x;
    struct lws *wsi;
    wsc_state state;
    unsigned close_code;
    bool closing, dropping;
    bool close_seen;              /* the server's close frame arrived */
    unsigned after_close;         /* data frames received after it (a protocol violation) */
    wsc_msg *out_head, *out_tail; /* outbound */
    size_t out_bytes;
    wsc_msg *in_head, *in_tail; /* received */
    uint8_t *rx;                /* reassembly */
    size_t rx_len, rx_cap;
    struct wsc_conn *next;
};

struct wsc_ctx {
    struct lws_context *ctx;
    wsc_conn *conns;
    lws_sorted_usec_list_t sul;
};

static void msgs_free(wsc_msg *m)
{
    while (m) {
        wsc_msg *n = m->next;
        free(m);
        m = n;
    }
}

static void rx_push(wsc_conn *c)
{
    wsc_msg *m = malloc(sizeof *m + LWS_PRE + c->rx_len);
    if (!m) return;
    m->next = NULL;
    m->n = c->rx_len;
    memcpy(m->data + LWS_PRE, c->rx, c->rx_len);
    if (c->in_tail)
        c->in_tail->next = m;
    else
        c->in_head = m;
    c->in_tail = m;
    c->rx_len = 0;
}

static int on_rx(wsc_conn *c, struct lws *wsi, const void *in, size_t len)
{
    if (c->close_seen) { /* counted once per frame, never delivered */
        if (lws_is_first_fragment(wsi)) c->after_close++;
        return 0;
    }
    if (lws_is_first_fragment(wsi)) c->rx_len = 0;
    if (c->rx_len + len > WSC_MAX_MESSAGE) return -1;
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 4096;
        while (cap < c->rx_len + len) cap *= 2;
        uint8_t *p = realloc(c->rx, cap);
        if (!p) return -1;
        c->rx = p;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) rx_push(c);
    return 0;
}

static int on_writeable(wsc_conn *c, struct lws *wsi)
{
    if (c->dropping) return -1;
    wsc_msg *m = c->out_head;
    if (!m) {
        if (c->closing) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
            return -1;
        }
        return 0;
    }
    int w = lws_write(wsi, m->data + LWS_PRE, m->n, LWS_WRITE_BINARY);
    if (w < (int)m->n) return -1;
    c->out_head = m->next;
    if (!c->out_head) c->out_tail = NULL;
    c->out_bytes -= m->n;
    free(m);
    if (c->out_head || c->closing) lws_callback_on_writable(wsi);
    return 0;
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    wsc_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->state = WSC_OPEN;
        if (c->out_head || c->closing || c->dropping) lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c) {
            c->state = WSC_FAILED;
            c->wsi = NULL;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_rx(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        c->close_seen = true;
        if (len >= 2) {
            const uint8_t *p = in;
            c->close_code = (unsigned)p[0] << 8 | p[1];
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c) {
            if (c->state != WSC_FAILED) c->state = WSC_CLOSED;
            c->wsi = NULL;
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"tandem-test-client", cb, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

wsc_ctx *wsc_new(void)
{
    wsc_ctx *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = x;
    lws_set_log_level(LLL_ERR, NULL);
    x->ctx = lws_create_context(&info);
    if (!x->ctx) {
        free(x);
        return NULL;
    }
    return x;
}

void wsc_free(wsc_ctx *x)
{
    if (!x) return;
    lws_context_destroy(x->ctx); /* CLIENT_CLOSED for open connections */
    for (wsc_conn *c = x->conns, *n; c; c = n) {
        n = c->next;
        msgs_free(c->out_head);
        msgs_free(c->in_head);
        free(c->rx);
        free(c);
    }
    free(x);
}

wsc_conn *wsc_connect(wsc_ctx *x, const char *host, int port, const char *path,
                      const char *protocol)
{
    wsc_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->x = x;
    c->next = x->conns;
    x->conns = c;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = x->ctx;
    ci.address = host;
    ci.port = port;
    ci.path = path;
    ci.host = host;
    ci.origin = host;
    ci.protocol = protocol;
    ci.local_protocol_name = protocols[0].name;
    ci.userdata = c;
    ci.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&ci)) c->state = WSC_FAILED;
    return c;
}

wsc_state wsc_state_of(const wsc_conn *c)
{
    return c->state;
}

unsigned wsc_close_code(const wsc_conn *c)
{
    return c->close_code;
}

unsigned wsc_data_after_close(const wsc_conn *c)
{
    return c->after_close;
}

bool wsc_send(wsc_conn *c, const void *p, size_t n)
{
    if (c->state == WSC_CLOSED || c->state == WSC_FAILED) return false;
    if (c->out_bytes + n > WSC_MAX_QUEUE) return false;
    wsc_msg *m = malloc(sizeof *m + LWS_PRE + n);
    if (!m) return false;
    m->next = NULL;
    m->n = n;
    memcpy(m->data + LWS_PRE, p, n);
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    c->out_bytes += n;
    if (c->wsi && c->state == WSC_OPEN) lws_callback_on_writable(c->wsi);
    return true;
}

bool wsc_recv(wsc_conn *c, uint8_t **p, size_t *n)
{
    wsc_msg *m = c->in_head;
    if (!m) return false;
    c->in_head = m->next;
    if (!c->in_head) c->in_tail = NULL;
    *p = malloc(m->n ? m->n : 1);
    if (!*p) {
        free(m);
        return false;
    }
    memcpy(*p, m->data + LWS_PRE, m->n);
    *n = m->n;
    free(m);
    return true;
}

void wsc_close(wsc_conn *c)
{
    c->closing = true;
    if (c->wsi && c->state == WSC_OPEN) lws_callback_on_writable(c->wsi);
}

void wsc_drop(wsc_conn *c)
{
    c->dropping = true;
    if (c->wsi && c->state == WSC_OPEN) lws_callback_on_writable(c->wsi);
}

static void wake(lws_sorted_usec_list_t *sul)
{
    (void)sul;
}

void wsc_service(wsc_ctx *x, int ms)
{
    /* lws 4.1 sleeps until its next timer: arm one so this returns in time. */
    lws_sul_schedule(x->ctx, 0, &x->sul, wake, (lws_usec_t)(ms > 0 ? ms : 1) * LWS_US_PER_MS);
    lws_service(x->ctx, 0);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool wsc_wait(wsc_ctx *x, bool (*pred)(void *arg), void *arg, int timeout_ms)
{
    uint64_t end = mono_ms() + (uint64_t)timeout_ms;
    while (!pred(arg)) {
        if (mono_ms() >= end) return pred(arg);
        wsc_service(x, 10);
    }
    return true;
}
