/* bench_load.c - tandem-bench-load: a load generator for `tandem serve`
 * (issue 5). Not a test: it measures; bench/load.sh runs the scenarios and
 * docs/PERFORMANCE.md ("Server load") records the results.
 *
 * One libwebsockets client context (CONTEXT_PORT_NO_LISTEN), one thread,
 * non-blocking, many connections. Every connection is a real sync client
 * (sync/client.h state machine: HELLO, SUBSCRIBE in CRDT mode, the first
 * sync) on its own crdt_doc replica. Connection i joins room i % R.
 *
 * Load mode: the first W connections of each room are writers. Each writer
 * gets its own development token (GET /api/dev/token?user=bench-wN), so the
 * server's per-user update limits see distinct users. Once every connection
 * is subscribed and synced, each writer inserts one character at the end of
 * its own replica at `rate` edits per second (crdt_doc_insert, then
 * sync_client_flush sends the real CRDT update). The generator keeps the
 * send time of every edit in a table keyed by (writer, clock): a writer's
 * replica only ever inserts, so its k-th edit is the operation with clock k
 * of its client id. Receivers decode every UPDATE frame with syncm_decode,
 * read the blocks of the CRDT update (docs/CRDT.md: client id, first clock,
 * operations) and mark (writer, clock) in a per-receiver bitmap: the
 * difference between now and the send time is one fan-out latency sample
 * (for edits sent inside the measured window). Receivers do not integrate
 * the updates into their replica (the cost measured is the server's).
 * After a drain period every receiver must hold every edit of every writer
 * of its room: anything missing is reported as lost.
 *
 * Server side: CPU (utime + stime from /proc/PID/stat over the measured
 * window, % of one core), RSS (VmRSS / VmHWM from /proc/PID/status) before
 * connecting, after every connection is synced, and at the end. The PID is
 * --server-pid or the "pid" of GET /healthz.
 *
 * Idle mode (--idle): open N connections, HELLO + SUBSCRIBE + first sync,
 * hold them for --seconds (a PING every 30 s each), report the server RSS.
 *
 * Output: a human-readable report, or one JSON object (--json). Floors
 * (--max-p99-ms, --max-cpu-pct, --max-rss-mb) and lost deliveries decide
 * the exit status: 0 all good, 1 a floor missed or something lost, 2 usage or
 * setup error.
 *
 * Threads: one. Caps: --conns up to 20,000, --rooms up to 1,000 (the
 * server's room cap), received frames up to 1 MiB, edits per writer up to
 * 1,000,000, latency samples up to 64 M.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cbor_rd.h"
#include "client.h"
#include "doc.h"
#include "msg.h"

#define BL_MAX_CONNS     20000u
#define BL_MAX_ROOMS     1000u
#define BL_MAX_FRAME     ((size_t)1 << 20)
#define BL_MAX_EDITS     1000000u
#define BL_MAX_SAMPLES   ((size_t)64 << 20)
#define BL_PING_MS       30000u
#define BL_TICK_US       1000u
#define BL_CLIENT_BASE   ((uint64_t)1 << 40)
#define BL_HTTP_MAX      65536u
#define BL_MAX_ERR_CODES 17u

/* ------------------------------------------------------------ state */

enum { C_IDLE = 0, C_CONNECTING, C_OPEN, C_SYNCED, C_CLOSED, C_FAILED };

typedef struct bl bl;

typedef struct bl_conn {
    bl *b;
    struct lws *wsi;
    uint32_t idx, room;
    int32_t writer; /* writer index or -1 */
    int state;
    sync_client *sc;
    crdt_doc *doc;
    uint32_t ch;
    uint8_t *rx;
    size_t rx_len, rx_cap;
    uint64_t *seen; /* wpr bitmaps of `words` words: edits received per writer slot */
    unsigned close_code;
    uint64_t last_ping_ms;
} bl_conn;

typedef struct bl_writer {
    uint32_t conn, room;
    uint64_t client;
    uint64_t next_ns;
    uint32_t sent;      /* edits made = the next clock */
    uint64_t *at_ns;    /* send time per clock */
    uint32_t flushed;   /* edits handed to the sync client */
    uint64_t *flush_ns; /* send time per flushed update (the ACK latency's start) */
    uint64_t acked;
    uint64_t late;
    char *token;
} bl_writer;

typedef struct bl_opts {
    const char *host;
    int port;
    int reader_port; /* readers connect here (another node of a cluster); 0: port */
    uint32_t conns, rooms, wpr;
    double rate, seconds, warmup, drain, connect_timeout;
    bool idle, json, no_tokens, use_poll, spin;
    long server_pid;
    uint32_t batch;
    const char *prefix;
    double max_p99_ms, max_cpu_pct, max_rss_mb;
} bl_opts;

struct bl {
    bl_opts o;
    struct lws_context *ctx;
    struct ev_loop *loop; /* libev (epoll) loop lws runs on; NULL: lws's own poll() loop */
    lws_sorted_usec_list_t sul;
    bl_conn *conns;
    bl_writer *writers;
    uint32_t nwriters, words, max_edits;
    uint32_t next_to_open, in_flight, nsynced, nfailed, nclosed;
    bool writing;
    uint64_t win_start_ns, win_end_ns; /* measured window */
    uint32_t *samples;                 /* latency in microseconds */
    size_t nsamples, samples_cap, samples_dropped;
    uint32_t *ack_samples; /* flush -> ACK (durable) in microseconds, in the window */
    size_t nack_samples, ack_samples_cap;
    uint64_t delivered, dups, foreign, frames_in, frames_out, bytes_in, bytes_out;
    uint64_t win_frames_in0, win_frames_in1, win_sent0, win_sent1;
    uint64_t err_codes[BL_MAX_ERR_CODES + 1];
    uint64_t decode_errors, recv_errors;
    uint8_t *wbuf;
    size_t wcap;
    unsigned close_codes_seen[8];
    uint64_t close_counts[8];
};

static volatile sig_atomic_t bl_stop;

static void on_sigint(int sig)
{
    (void)sig;
    bl_stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------ HTTP (blocking, setup only) */

/* GET path from host:port; the body (NUL-terminated, malloc'd) on 200, else NULL. */
static char *http_get(const char *host, int port, const char *path)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) || !ai) return NULL;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) {
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return NULL;
    }
    freeaddrinfo(ai);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[1024];
    int rn = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                      path, host);
    if (rn <= 0 || (size_t)rn >= sizeof req || write(fd, req, (size_t)rn) != rn) {
        close(fd);
        return NULL;
    }
    char *buf = malloc(BL_HTTP_MAX + 1);
    size_t len = 0;
    while (buf && len < BL_HTTP_MAX) {
        ssize_t r = read(fd, buf + len, BL_HTTP_MAX - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (!buf) return NULL;
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || !body) {
        free(buf);
        return NULL;
    }
    body += 4;
    memmove(buf, body, strlen(body) + 1);
    return buf;
}

/* The string value of "key":"..." in a flat JSON object (no escapes needed
 * for tokens), malloc'd; or NULL. */
static char *json_str(const char *js, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(js, pat);
    if (!p) return NULL;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (!e) return NULL;
    return strndup(p, (size_t)(e - p));
}

static long json_int(const char *js, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p) return -1;
    return strtol(p + strlen(pat), NULL, 10);
}

/* ------------------------------------------------------------ /proc */

/* utime + stime of /proc/PID/stat (all threads) or, with main_only, of
 * /proc/PID/task/PID/stat (the main thread: the server's lws service thread) */
static bool proc_cpu_ticks_of(long pid, bool main_only, uint64_t *ticks)
{
    char path[96], buf[4096];
    if (main_only)
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/stat", pid, pid);
    else
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return false;
    /* fields after ')': 3 state ... 14 utime 15 stime */
    unsigned long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return false;
    *ticks = (uint64_t)ut + st;
    return true;
}

static bool proc_cpu_ticks(long pid, uint64_t *ticks)
{
    return proc_cpu_ticks_of(pid, false, ticks);
}

/* VmRSS and VmHWM in kB (0 when unknown); *file_kb (may be NULL): RssFile,
 * file-backed pages such as LMDB's map, which the kernel may reclaim. */
static void proc_mem(long pid, uint64_t *rss_kb, uint64_t *hwm_kb, uint64_t *file_kb)
{
    char path[64], line[256];
    *rss_kb = *hwm_kb = 0;
    if (file_kb) *file_kb = 0;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        unsigned long v;
        if (sscanf(line, "VmRSS: %lu", &v) == 1) *rss_kb = v;
        if (sscanf(line, "VmHWM: %lu", &v) == 1) *hwm_kb = v;
        if (file_kb && sscanf(line, "RssFile: %lu", &v) == 1) *file_kb = v;
    }
    fclose(f);
}

/* ------------------------------------------------------------ deliveries */

static void add_sample(bl *b, uint64_t ns)
{
    if (b->nsamples >= b->samples_cap) {
        b->samples_dropped++;
        return;
    }
    uint64_t us = ns / 1000u;
    b->samples[b->nsamples++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void deliver(bl *b, bl_conn *c, uint64_t client, uint64_t first, uint64_t count, uint64_t t)
{
    if (client < BL_CLIENT_BASE || client - BL_CLIENT_BASE >= b->nwriters) {
        b->foreign += count;
        return;
    }
    bl_writer *w = &b->writers[client - BL_CLIENT_BASE];
    if (w->room != c->room || !c->seen) {
        b->foreign += count;
        return;
    }
    uint64_t *bits = c->seen + (size_t)((client - BL_CLIENT_BASE) % b->o.wpr) * b->words;
    for (uint64_t k = first; k < first + count; k++) {
        if (k >= w->sent) {
            b->foreign++;
            continue;
        }
        uint64_t m = (uint64_t)1 << (k % 64);
        if (bits[k / 64] & m) {
            b->dups++;
            continue;
        }
        bits[k / 64] |= m;
        b->delivered++;
        uint64_t at = w->at_ns[k];
        if (at >= b->win_start_ns && at < b->win_end_ns) add_sample(b, t - at);
    }
}

/* Walk the blocks of a CRDT update (docs/CRDT.md "Update"): for each block,
 * its client id, first clock and the number of clocks its ops take. */
static tdm_err parse_update(bl *b, bl_conn *c, const uint8_t *p, size_t n, uint64_t t)
{
    cbr r;
    cbr_init(&r, p, n);
    size_t top, ncl, nbl;
    uint64_t ver;
    if (cbr_array(&r, &top) || top < 3 || cbr_uint(&r, &ver) || ver != 1) return TDM_EMALFORMED;
    if (cbr_array(&r, &ncl) || ncl > 64) return TDM_EMALFORMED;
    uint64_t clients[64];
    for (size_t i = 0; i < ncl; i++)
        if (cbr_uint(&r, &clients[i])) return TDM_EMALFORMED;
    if (cbr_array(&r, &nbl)) return TDM_EMALFORMED;
    for (size_t i = 0; i < nbl; i++) {
        size_t bn, nops;
        uint64_t ci, first, clocks = 0;
        if (cbr_array(&r, &bn) || bn != 3 || cbr_uint(&r, &ci) || ci >= ncl ||
            cbr_uint(&r, &first) || cbr_array(&r, &nops))
            return TDM_EMALFORMED;
        for (size_t k = 0; k < nops; k++) {
            size_t on;
            if (cbr_array(&r, &on)) return TDM_EMALFORMED;
            if (on == 2) { /* delete [target, signed-length] */
                int64_t len;
                if (cbr_skip(&r, 2) || cbr_int(&r, &len)) return TDM_EMALFORMED;
                clocks += (uint64_t)(len < 0 ? -len : len);
            } else if (on == 3) { /* insert or tomb */
                if (cbr_skip(&r, 2) || cbr_skip(&r, 2)) return TDM_EMALFORMED;
                if (cbr_peek(&r) == CBR_TEXT) {
                    const uint8_t *s;
                    size_t sn;
                    if (cbr_text(&r, &s, &sn)) return TDM_EMALFORMED;
                    for (size_t j = 0; j < sn; j++)
                        if ((s[j] & 0xc0) != 0x80) clocks++; /* code points */
                } else {
                    uint64_t len;
                    if (cbr_uint(&r, &len)) return TDM_EMALFORMED;
                    clocks += len;
                }
            } else {
                return TDM_EMALFORMED;
            }
        }
        deliver(b, c, clients[ci], first, clocks, t);
    }
    return TDM_OK;
}

/* ------------------------------------------------------------ frames */

static void want_write(bl_conn *c)
{
    const uint8_t *p;
    size_t n;
    if (c->wsi && c->state >= C_OPEN && c->state <= C_SYNCED && sync_client_next_out(c->sc, &p, &n))
        lws_callback_on_writable(c->wsi);
}

static void on_frame(bl *b, bl_conn *c, const uint8_t *p, size_t n)
{
    uint64_t t = now_ns();
    b->frames_in++;
    b->bytes_in += n;
    cbr r;
    cbr_init(&r, p, n);
    size_t cnt;
    uint64_t type = 0;
    if (cbr_array(&r, &cnt) || cnt < 1 || cbr_uint(&r, &type)) type = 0;
    if (type == SYNCM_UPDATE && c->state == C_SYNCED) {
        syncm m;
        if (syncm_decode(p, n, BL_MAX_FRAME, &m) != TDM_OK) {
            b->decode_errors++;
            return;
        }
        if (parse_update(b, c, m.data.p, m.data.n, t)) b->decode_errors++;
        syncm_clear(&m);
        return;
    }
    if (sync_client_recv(c->sc, p, n, wall_ms()) != TDM_OK) b->recv_errors++;
    want_write(c);
}

static void ev_synced(void *ctx, uint32_t channel)
{
    bl_conn *c = ctx;
    (void)channel;
    if (c->state == C_OPEN) {
        c->state = C_SYNCED;
        c->b->nsynced++;
        c->b->in_flight--;
    }
}

static void ev_error(void *ctx, const syncm *m)
{
    bl_conn *c = ctx;
    bl *b = c->b;
    b->err_codes[m->code <= BL_MAX_ERR_CODES ? m->code : 0]++;
    if (b->err_codes[m->code <= BL_MAX_ERR_CODES ? m->code : 0] <= 3 && !b->o.json)
        fprintf(stderr, "bench-load: conn %u: ERROR %s: %.*s\n", c->idx,
                syncm_errcode_name(m->code), (int)m->text.n, (const char *)m->text.p);
}

static void ev_ack(void *ctx, uint32_t channel, uint64_t seq)
{
    bl_conn *c = ctx;
    (void)channel;
    (void)seq;
    if (c->writer < 0) return;
    bl *b = c->b;
    bl_writer *w = &b->writers[c->writer];
    /* the server acks each UPDATE once it is durable, in order */
    if (w->acked < w->flushed && b->nack_samples < b->ack_samples_cap) {
        uint64_t at = w->flush_ns[w->acked], t = now_ns();
        if (at >= b->win_start_ns && at < b->win_end_ns && t >= at) {
            uint64_t us = (t - at) / 1000u;
            b->ack_samples[b->nack_samples++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        }
    }
    w->acked++;
}

static void conn_gone(bl *b, bl_conn *c, int state)
{
    if (c->state == C_CONNECTING || c->state == C_OPEN) b->in_flight--;
    if (c->state == C_SYNCED) b->nsynced--;
    if (state == C_FAILED)
        b->nfailed++;
    else
        b->nclosed++;
    c->state = state;
    c->wsi = NULL;
    if (c->close_code) {
        for (size_t i = 0; i < 8; i++) {
            if (b->close_codes_seen[i] == c->close_code || !b->close_codes_seen[i]) {
                b->close_codes_seen[i] = c->close_code;
                b->close_counts[i]++;
                break;
            }
        }
    }
}

static int on_rx(bl *b, bl_conn *c, struct lws *wsi, const void *in, size_t len)
{
    if (lws_is_first_fragment(wsi)) c->rx_len = 0;
    if (c->rx_len + len > BL_MAX_FRAME) return -1;
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 1024;
        while (cap < c->rx_len + len) cap *= 2;
        uint8_t *p = realloc(c->rx, cap);
        if (!p) return -1;
        c->rx = p;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        on_frame(b, c, c->rx, c->rx_len);
        c->rx_len = 0;
    }
    return 0;
}

static int on_writeable(bl *b, bl_conn *c, struct lws *wsi)
{
    const uint8_t *p;
    size_t n;
    if (!sync_client_next_out(c->sc, &p, &n)) return 0;
    if (LWS_PRE + n > b->wcap) {
        size_t cap = b->wcap ? b->wcap : 65536;
        while (cap < LWS_PRE + n) cap *= 2;
        uint8_t *q = realloc(b->wbuf, cap);
        if (!q) return -1;
        b->wbuf = q;
        b->wcap = cap;
    }
    memcpy(b->wbuf + LWS_PRE, p, n);
    int w = lws_write(wsi, b->wbuf + LWS_PRE, n, LWS_WRITE_BINARY);
    if (w < (int)n) return -1;
    sync_client_consume(c->sc);
    b->frames_out++;
    b->bytes_out += n;
    if (sync_client_next_out(c->sc, &p, &n)) lws_callback_on_writable(wsi);
    return 0;
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    bl_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!c) return -1;
        c->state = C_OPEN;
        c->last_ping_ms = wall_ms();
        if (sync_client_connect(c->sc, wall_ms()) != TDM_OK) return -1;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c) {
            if (!c->b->o.json && c->b->nfailed < 3)
                fprintf(stderr, "bench-load: conn %u failed: %s\n", c->idx,
                        in ? (const char *)in : "?");
            conn_gone(c->b, c, C_FAILED);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_rx(c->b, c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(c->b, c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c && len >= 2) {
            const uint8_t *p = in;
            c->close_code = (unsigned)p[0] << 8 | p[1];
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c && c->state != C_FAILED && c->state != C_CLOSED) conn_gone(c->b, c, C_CLOSED);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols bl_protocols[] = {
    {"tandem-bench-load", cb, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ------------------------------------------------------------ connections */

static bool conn_init(bl *b, bl_conn *c, uint32_t i)
{
    c->b = b;
    c->idx = i;
    c->room = i % b->o.rooms;
    uint32_t k = i / b->o.rooms; /* position in its room */
    c->writer = (!b->o.idle && k < b->o.wpr) ? (int32_t)(c->room * b->o.wpr + k) : -1;
    uint64_t client =
        c->writer >= 0 ? BL_CLIENT_BASE + (uint64_t)c->writer : BL_CLIENT_BASE + b->nwriters + i;
    if (crdt_doc_new(client, &c->doc)) return false;
    sync_client_opts so = {0};
    so.client_id = client;
    if (c->writer >= 0 && b->writers[c->writer].token) {
        so.token = (const uint8_t *)b->writers[c->writer].token;
        so.token_len = strlen(b->writers[c->writer].token);
    }
    sync_client_events ev = {0};
    ev.ctx = c;
    ev.on_synced = ev_synced;
    ev.on_error = ev_error;
    ev.on_ack = ev_ack;
    if (sync_client_new(&so, &ev, &c->sc)) return false;
    char name[SYNCM_MAX_NAME + 1];
    snprintf(name, sizeof name, "%s-%u", b->o.prefix, c->room);
    if (sync_client_subscribe_crdt(c->sc, name, c->doc, false, &c->ch)) return false;
    if (!b->o.idle) {
        c->seen = calloc((size_t)b->o.wpr * b->words, sizeof *c->seen);
        if (!c->seen) return false;
    }
    return true;
}

static void conn_open(bl *b, bl_conn *c)
{
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = b->ctx;
    ci.address = b->o.host;
    ci.port = c->writer < 0 && b->o.reader_port ? b->o.reader_port : b->o.port;
    ci.path = "/ws";
    ci.host = b->o.host;
    ci.origin = b->o.host;
    ci.protocol = "tandem.v1";
    ci.local_protocol_name = bl_protocols[0].name;
    ci.userdata = c;
    ci.pwsi = &c->wsi;
    c->state = C_CONNECTING;
    b->in_flight++;
    if (!lws_client_connect_via_info(&ci) && c->state == C_CONNECTING) conn_gone(b, c, C_FAILED);
}

/* ------------------------------------------------------------ the loop */

static void writers_tick(bl *b, uint64_t t)
{
    uint64_t period = (uint64_t)(1e9 / b->o.rate);
    for (uint32_t i = 0; i < b->nwriters; i++) {
        bl_writer *w = &b->writers[i];
        if (w->next_ns > t) continue;
        bl_conn *c = &b->conns[w->conn];
        if (c->state != C_SYNCED || w->sent >= b->max_edits) continue;
        if (t - w->next_ns > period) {
            w->late++;
            w->next_ns = t; /* do not burst to catch up */
        }
        w->next_ns += period;
        static const char ch[] = "abcdefghijklmnopqrstuvwxyz";
        if (crdt_doc_insert(c->doc, crdt_doc_len(c->doc), &ch[w->sent % 26], 1)) continue;
        w->at_ns[w->sent++] = now_ns();
        if (sync_client_flush(c->sc, c->ch) == TDM_OK) w->flush_ns[w->flushed++] = now_ns();
        want_write(c);
    }
}

static void pings_tick(bl *b)
{
    uint64_t ms = wall_ms();
    for (uint32_t i = 0; i < b->o.conns; i++) {
        bl_conn *c = &b->conns[i];
        if (c->state != C_SYNCED || ms - c->last_ping_ms < BL_PING_MS) continue;
        c->last_ping_ms = ms;
        if (sync_client_ping(c->sc, ms) == TDM_OK) want_write(c);
    }
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    bl *b = lws_container_of(sul, bl, sul);
    uint64_t t = now_ns();
    while (b->next_to_open < b->o.conns && b->in_flight < b->o.batch)
        conn_open(b, &b->conns[b->next_to_open++]);
    if (b->writing) writers_tick(b, t);
    static uint64_t last_ping;
    if (t - last_ping > 1000000000u) {
        last_ping = t;
        pings_tick(b);
    }
    lws_sul_schedule(b->ctx, 0, &b->sul, on_tick, BL_TICK_US);
}

/* Service until `until_ns` (or a stop signal / done(b) true). */
static void run_until(bl *b, uint64_t until_ns, bool (*done)(bl *b))
{
    while (!bl_stop && now_ns() < until_ns) {
        if (done && done(b)) return;
        if (b->loop)
            ev_run(b->loop, b->o.spin ? EVRUN_NOWAIT : EVRUN_ONCE);
        else if (lws_service(b->ctx, 0) < 0)
            return;
    }
}

static bool all_settled(bl *b)
{
    return b->next_to_open >= b->o.conns && b->in_flight == 0;
}

static uint64_t expected_deliveries(bl *b)
{
    uint64_t e = 0;
    for (uint32_t i = 0; i < b->o.conns; i++) {
        bl_conn *c = &b->conns[i];
        if (c->state != C_SYNCED) continue;
        for (uint32_t j = 0; j < b->o.wpr; j++) {
            uint32_t wi = c->room * b->o.wpr + j;
            if ((int32_t)wi != c->writer) e += b->writers[wi].sent;
        }
    }
    return e;
}

/* every edit delivered to every receiver and acknowledged to its writer */
static bool all_delivered(bl *b)
{
    for (uint32_t i = 0; i < b->nwriters; i++)
        if (b->writers[i].acked < b->writers[i].flushed) return false;
    return b->delivered >= expected_deliveries(b);
}

/* Missing (writer, clock) pairs over every receiver still connected. */
static uint64_t count_lost(bl *b)
{
    uint64_t lost = 0;
    for (uint32_t i = 0; i < b->o.conns; i++) {
        bl_conn *c = &b->conns[i];
        if (c->state != C_SYNCED || !c->seen) continue;
        for (uint32_t j = 0; j < b->o.wpr; j++) {
            uint32_t wi = c->room * b->o.wpr + j;
            if ((int32_t)wi == c->writer) continue;
            const uint64_t *bits = c->seen + (size_t)j * b->words;
            for (uint32_t k = 0; k < b->writers[wi].sent; k++)
                if (!(bits[k / 64] >> (k % 64) & 1)) lost++;
        }
    }
    return lost;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint32_t *s, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return s[i] / 1000.0;
}

/* ------------------------------------------------------------ options */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tandem-bench-load [options]\n"
            "  --host H              server address [127.0.0.1]\n"
            "  --port N              server port [8080]\n"
            "  --reader-port N       readers (non-writers) connect to this port instead:\n"
            "                        another node of a cluster (docs/SCALING.md) [--port]\n"
            "  --conns N             connections [2000] (max %u)\n"
            "  --rooms R             rooms, round-robin [200] (max %u)\n"
            "  --writers-per-room W  writers per room [1]\n"
            "  --rate E              edits per second per writer [20]\n"
            "  --seconds S           measured seconds (idle: hold time) [30]\n"
            "  --warmup S            writing before the measured window [5]\n"
            "  --drain S             wait for deliveries after writing stops, at most [5]\n"
            "  --connect-timeout S   all connections subscribed and synced within [120]\n"
            "  --batch N             connection attempts in flight at once [256]\n"
            "  --idle                only connect, HELLO + SUBSCRIBE, hold, report RSS\n"
            "  --no-tokens           writers send no token (dev mode: all are user anon)\n"
            "  --prefix P            room name prefix [load-<pid>-<time>]\n"
            "  --server-pid PID      server process [from GET /healthz]\n"
            "  --max-p99-ms X --max-cpu-pct X --max-rss-mb X   floors (exit 1 if missed)\n"
            "  --poll                run lws on poll() instead of libev (epoll)\n"
            "  --spin                never sleep in epoll_wait (libev): the server then does\n"
            "                        not pay to wake the generator on every send\n"
            "  --json                one JSON object on stdout\n",
            BL_MAX_CONNS, BL_MAX_ROOMS);
}

static bool parse_opts(int argc, char **argv, bl_opts *o)
{
    static char prefix[64];
    snprintf(prefix, sizeof prefix, "load-%ld-%llu", (long)getpid(),
             (unsigned long long)(wall_ms() / 1000u));
    *o = (bl_opts){.host = "127.0.0.1",
                   .port = 8080,
                   .conns = 2000,
                   .rooms = 200,
                   .wpr = 1,
                   .rate = 20,
                   .seconds = 30,
                   .warmup = 5,
                   .drain = 5,
                   .connect_timeout = 120,
                   .batch = 256,
                   .prefix = prefix};
    enum {
        O_HOST = 1,
        O_PORT,
        O_CONNS,
        O_ROOMS,
        O_WPR,
        O_RATE,
        O_SECS,
        O_WARM,
        O_DRAIN,
        O_CTO,
        O_BATCH,
        O_IDLE,
        O_NOTOK,
        O_PREFIX,
        O_PID,
        O_P99,
        O_CPU,
        O_RSS,
        O_JSON,
        O_POLL,
        O_SPIN,
        O_RPORT,
        O_HELP
    };
    static const struct option lo[] = {{"host", 1, 0, O_HOST},
                                       {"port", 1, 0, O_PORT},
                                       {"conns", 1, 0, O_CONNS},
                                       {"rooms", 1, 0, O_ROOMS},
                                       {"writers-per-room", 1, 0, O_WPR},
                                       {"rate", 1, 0, O_RATE},
                                       {"seconds", 1, 0, O_SECS},
                                       {"warmup", 1, 0, O_WARM},
                                       {"drain", 1, 0, O_DRAIN},
                                       {"connect-timeout", 1, 0, O_CTO},
                                       {"batch", 1, 0, O_BATCH},
                                       {"idle", 0, 0, O_IDLE},
                                       {"no-tokens", 0, 0, O_NOTOK},
                                       {"prefix", 1, 0, O_PREFIX},
                                       {"server-pid", 1, 0, O_PID},
                                       {"max-p99-ms", 1, 0, O_P99},
                                       {"max-cpu-pct", 1, 0, O_CPU},
                                       {"max-rss-mb", 1, 0, O_RSS},
                                       {"json", 0, 0, O_JSON},
                                       {"help", 0, 0, O_HELP},
                                       {"poll", 0, 0, O_POLL},
                                       {"spin", 0, 0, O_SPIN},
                                       {"reader-port", 1, 0, O_RPORT},
                                       {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        char *end = NULL;
        double d = optarg ? strtod(optarg, &end) : 0;
        bool num = optarg && end != optarg && *end == '\0';
        switch (opt) {
        case O_HOST:
            o->host = optarg;
            break;
        case O_PREFIX:
            o->prefix = optarg;
            break;
        case O_IDLE:
            o->idle = true;
            break;
        case O_NOTOK:
            o->no_tokens = true;
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_POLL:
            o->use_poll = true;
            break;
        case O_SPIN:
            o->spin = true;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        case '?':
            return false;
        default:
            if (!num || d < 0) {
                fprintf(stderr, "bench-load: bad number: %s\n", optarg);
                return false;
            }
            switch (opt) {
            case O_PORT:
                o->port = (int)d;
                break;
            case O_RPORT: /* several nodes (docs/SCALING.md): readers on another node */
                if (d < 1 || d > 65535) {
                    fprintf(stderr, "bench-load: bad --reader-port: %s\n", optarg);
                    return false;
                }
                o->reader_port = (int)d;
                break;
            case O_CONNS:
                o->conns = (uint32_t)d;
                break;
            case O_ROOMS:
                o->rooms = (uint32_t)d;
                break;
            case O_WPR:
                o->wpr = (uint32_t)d;
                break;
            case O_RATE:
                o->rate = d;
                break;
            case O_SECS:
                o->seconds = d;
                break;
            case O_WARM:
                o->warmup = d;
                break;
            case O_DRAIN:
                o->drain = d;
                break;
            case O_CTO:
                o->connect_timeout = d;
                break;
            case O_BATCH:
                o->batch = (uint32_t)d;
                break;
            case O_PID:
                o->server_pid = (long)d;
                break;
            case O_P99:
                o->max_p99_ms = d;
                break;
            case O_CPU:
                o->max_cpu_pct = d;
                break;
            case O_RSS:
                o->max_rss_mb = d;
                break;
            default:
                return false;
            }
        }
    }
    if (optind != argc || o->port < 1 || o->port > 65535 || o->conns < 1 ||
        o->conns > BL_MAX_CONNS || o->rooms < 1 || o->rooms > BL_MAX_ROOMS || o->rooms > o->conns ||
        o->batch < 1 || o->seconds <= 0 || o->seconds > 86400 || o->warmup > 3600 ||
        o->drain > 600 || o->connect_timeout <= 0) {
        fprintf(stderr, "bench-load: bad options (see --help)\n");
        return false;
    }
    if (!o->idle) {
        uint32_t per_room = o->conns / o->rooms;
        if (o->wpr < 1 || o->wpr >= per_room || o->rate <= 0 || o->rate > 10000) {
            fprintf(stderr,
                    "bench-load: need 1 <= writers-per-room < conns/rooms (%u) and "
                    "0 < rate <= 10000\n",
                    per_room);
            return false;
        }
        if ((o->warmup + o->seconds) * o->rate + 64 > BL_MAX_EDITS) {
            fprintf(stderr, "bench-load: too many edits per writer (max %u)\n", BL_MAX_EDITS);
            return false;
        }
    }
    return true;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ------------------------------------------------------------ main */

typedef struct bl_result {
    double connect_s, window_s, cpu_pct, main_cpu_pct, updates_per_s, frames_in_per_s;
    uint64_t rss0, rss1, rss2, hwm, file2, lost, expected, sent_total;
    double p50, p99, p999, max;
    double ack_p50, ack_p99, ack_max;
    double load1;
} bl_result;

static void report(bl *b, const bl_result *r, bool ok_floors)
{
    const bl_opts *o = &b->o;
    double conns = (double)b->nsynced ? (double)b->nsynced : 1;
    double rss_per_conn = r->rss1 > r->rss0 ? (double)(r->rss1 - r->rss0) * 1024.0 / conns : 0;
    uint64_t errors = 0;
    for (size_t i = 0; i <= BL_MAX_ERR_CODES; i++) errors += b->err_codes[i];
    uint64_t unacked = 0, late = 0;
    for (uint32_t i = 0; i < b->nwriters; i++) {
        unacked += b->writers[i].flushed - b->writers[i].acked;
        late += b->writers[i].late;
    }
    uint64_t closed_codes = 0;
    for (size_t i = 0; i < 8; i++) closed_codes += b->close_counts[i];
    if (o->json) {
        printf("{\"mode\":\"%s\",\"conns\":%u,\"rooms\":%u,\"writers_per_room\":%u,\"rate\":%g,"
               "\"seconds\":%g,\"warmup\":%g,\"connected\":%u,\"failed\":%u,\"closed\":%u,"
               "\"connect_s\":%.3f,\"window_s\":%.3f,\"updates_sent\":%llu,"
               "\"updates_per_s\":%.1f,\"frames_in_per_s\":%.1f,\"deliveries_expected\":%llu,"
               "\"delivered\":%llu,\"lost\":%llu,\"duplicates\":%llu,\"foreign\":%llu,"
               "\"samples\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
               "\"ack_p50_ms\":%.3f,\"ack_p99_ms\":%.3f,\"ack_max_ms\":%.3f,"
               "\"server_cpu_pct\":%.1f,\"server_main_cpu_pct\":%.1f,\"server_rss_base_kb\":%llu,"
               "\"server_rss_kb\":%llu,"
               "\"server_rss_end_kb\":%llu,\"server_file_end_kb\":%llu,\"server_hwm_kb\":%llu,"
               "\"rss_per_conn_bytes\":%.0f,"
               "\"wire_in_per_conn\":%.0f,\"wire_out_per_conn\":%.0f,\"errors\":%llu,"
               "\"unacked\":%llu,\"late_ticks\":%llu,\"decode_errors\":%llu,"
               "\"server_closes\":%llu,\"load1\":%.2f,\"ok\":%s}\n",
               o->idle ? "idle" : "load", o->conns, o->rooms, o->idle ? 0 : o->wpr,
               o->idle ? 0 : o->rate, o->seconds, o->idle ? 0 : o->warmup, b->nsynced, b->nfailed,
               b->nclosed, r->connect_s, r->window_s, (unsigned long long)r->sent_total,
               r->updates_per_s, r->frames_in_per_s, (unsigned long long)r->expected,
               (unsigned long long)b->delivered, (unsigned long long)r->lost,
               (unsigned long long)b->dups, (unsigned long long)b->foreign, b->nsamples, r->p50,
               r->p99, r->p999, r->max, r->ack_p50, r->ack_p99, r->ack_max, r->cpu_pct,
               r->main_cpu_pct, (unsigned long long)r->rss0, (unsigned long long)r->rss1,
               (unsigned long long)r->rss2, (unsigned long long)r->file2,
               (unsigned long long)r->hwm, rss_per_conn, (double)b->bytes_in / conns,
               (double)b->bytes_out / conns, (unsigned long long)errors,
               (unsigned long long)unacked, (unsigned long long)late,
               (unsigned long long)b->decode_errors, (unsigned long long)closed_codes, r->load1,
               ok_floors ? "true" : "false");
        return;
    }
    printf("tandem-bench-load: %s, %u connections in %u rooms", o->idle ? "idle" : "load", o->conns,
           o->rooms);
    if (!o->idle)
        printf(", %u writer(s)/room at %g edits/s, %g s measured after %g s warm-up", o->wpr,
               o->rate, o->seconds, o->warmup);
    printf("\n  connected+synced %u (failed %u, closed %u) in %.2f s\n", b->nsynced, b->nfailed,
           b->nclosed, r->connect_s);
    if (!o->idle) {
        printf("  updates sent %llu (%.1f/s in the window), frames received %.1f/s\n",
               (unsigned long long)r->sent_total, r->updates_per_s, r->frames_in_per_s);
        printf("  deliveries expected %llu, delivered %llu, LOST %llu, duplicates %llu\n",
               (unsigned long long)r->expected, (unsigned long long)b->delivered,
               (unsigned long long)r->lost, (unsigned long long)b->dups);
        printf("  fan-out latency over %zu (update, receiver) pairs: p50 %.3f ms, p99 %.3f ms, "
               "p99.9 %.3f ms, max %.3f ms\n",
               b->nsamples, r->p50, r->p99, r->p999, r->max);
        printf("  ACK latency (update sent -> durable ACK) over %zu updates: p50 %.3f ms, "
               "p99 %.3f ms, max %.3f ms\n",
               b->nack_samples, r->ack_p50, r->ack_p99, r->ack_max);
        printf("  server CPU %.1f%% of one core over %.2f s (main thread %.1f%%, other threads "
               "%.1f%%)\n",
               r->cpu_pct, r->window_s, r->main_cpu_pct, r->cpu_pct - r->main_cpu_pct);
        printf("  writers: unacked %llu, late ticks %llu; errors %llu\n",
               (unsigned long long)unacked, (unsigned long long)late, (unsigned long long)errors);
    }
    printf("  server RSS: %.1f MB before, %.1f MB connected, %.1f MB at the end (%.1f MB of it "
           "file-backed: LMDB's map, binaries), peak %.1f MB; %.0f bytes per connection\n",
           r->rss0 / 1024.0, r->rss1 / 1024.0, r->rss2 / 1024.0, r->file2 / 1024.0, r->hwm / 1024.0,
           rss_per_conn);
    printf("  wire payload per connection: %.0f bytes in, %.0f bytes out\n",
           (double)b->bytes_in / conns, (double)b->bytes_out / conns);
    for (size_t i = 0; i < 8 && b->close_codes_seen[i]; i++)
        printf("  server closed %llu connection(s) with %u\n",
               (unsigned long long)b->close_counts[i], b->close_codes_seen[i]);
    printf("  load average %.2f; %s\n", r->load1, ok_floors ? "OK" : "FAILED");
}

int main(int argc, char **argv)
{
    bl *b = calloc(1, sizeof *b);
    if (!b || !parse_opts(argc, argv, &b->o)) {
        if (b) usage(stderr);
        free(b);
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    const bl_opts *o = &b->o;
    int rc = 2;

    /* the server's pid and that it answers */
    char *hz = http_get(o->host, o->port, "/healthz");
    if (!hz) {
        fprintf(stderr, "bench-load: GET /healthz on %s:%d failed\n", o->host, o->port);
        goto out;
    }
    long pid = o->server_pid ? o->server_pid : json_int(hz, "pid");
    free(hz);
    b->o.server_pid = pid;
    uint64_t tick0 = 0;
    if (pid <= 0 || !proc_cpu_ticks(pid, &tick0)) {
        fprintf(stderr, "bench-load: cannot read /proc/%ld/stat (server on another host?)\n", pid);
        goto out;
    }

    /* writers and their tokens */
    if (!o->idle) {
        b->nwriters = o->rooms * o->wpr;
        b->max_edits = (uint32_t)((o->warmup + o->seconds) * o->rate + 64);
        b->words = (b->max_edits + 63) / 64;
        b->writers = calloc(b->nwriters, sizeof *b->writers);
        size_t want = (size_t)((double)b->nwriters * o->rate * o->seconds *
                               (double)(o->conns / o->rooms) * 1.2) +
                      1024;
        if (want > BL_MAX_SAMPLES) want = BL_MAX_SAMPLES;
        b->samples = malloc(want * sizeof *b->samples);
        b->ack_samples_cap = (size_t)((double)b->nwriters * o->rate * o->seconds * 1.2) + 1024;
        b->ack_samples = malloc(b->ack_samples_cap * sizeof *b->ack_samples);
        if (!b->writers || !b->samples || !b->ack_samples) goto oom;
        b->samples_cap = want; /* past it samples are dropped (counted) */
        uint64_t phase = (uint64_t)(1e9 / o->rate) / (b->nwriters ? b->nwriters : 1);
        for (uint32_t i = 0; i < b->nwriters; i++) {
            bl_writer *w = &b->writers[i];
            w->room = i / o->wpr;
            w->conn = w->room + (i % o->wpr) * o->rooms;
            w->client = BL_CLIENT_BASE + i;
            w->at_ns = calloc(b->max_edits, sizeof *w->at_ns);
            w->flush_ns = calloc(b->max_edits, sizeof *w->flush_ns);
            if (!w->at_ns || !w->flush_ns) goto oom;
            w->next_ns = phase * i; /* offset added when writing starts */
            if (!o->no_tokens) {
                char path[128];
                snprintf(path, sizeof path, "/api/dev/token?user=bench-w%u", i);
                char *js = http_get(o->host, o->port, path);
                w->token = js ? json_str(js, "token") : NULL;
                free(js);
                if (!w->token) {
                    fprintf(stderr,
                            "bench-load: GET %s failed (server not in --dev mode? use "
                            "--no-tokens)\n",
                            path);
                    goto out;
                }
            }
        }
    }

    b->conns = calloc(o->conns, sizeof *b->conns);
    if (!b->conns) goto oom;
    for (uint32_t i = 0; i < o->conns; i++)
        if (!conn_init(b, &b->conns[i], i)) goto oom;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = bl_protocols;
    info.user = b;
    info.timeout_secs = 30;
    lws_set_log_level(LLL_ERR, NULL);
    /* poll() over thousands of sockets per wakeup costs more than the rest
     * of the generator: run lws on a libev loop (epoll) when the evlib
     * plugin is installed (Debian: libwebsockets-evlib-ev), else on poll(). */
    void *foreign[1] = {NULL};
    if (!o->use_poll) {
        b->loop = ev_loop_new(EVBACKEND_EPOLL);
        foreign[0] = b->loop;
        info.options |= LWS_SERVER_OPTION_LIBEV;
        info.foreign_loops = foreign;
        if (b->loop) b->ctx = lws_create_context(&info);
        if (!b->ctx) {
            if (b->loop) ev_loop_destroy(b->loop);
            b->loop = NULL;
            info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
            info.foreign_loops = NULL;
            fprintf(stderr, "bench-load: no libev event loop for lws; using poll()\n");
        }
    }
    if (!b->ctx) b->ctx = lws_create_context(&info);
    if (!b->ctx) {
        fprintf(stderr, "bench-load: lws_create_context failed\n");
        goto out;
    }

    bl_result r = {0};
    uint64_t hwm_dummy;
    proc_mem(pid, &r.rss0, &hwm_dummy, NULL);

    /* connect, HELLO, SUBSCRIBE, first sync */
    uint64_t t0 = now_ns();
    lws_sul_schedule(b->ctx, 0, &b->sul, on_tick, BL_TICK_US);
    run_until(b, t0 + (uint64_t)(o->connect_timeout * 1e9), all_settled);
    r.connect_s = (double)(now_ns() - t0) / 1e9;
    if (b->nsynced < o->conns) {
        fprintf(stderr, "bench-load: only %u of %u connections synced (%u failed, %u closed)\n",
                b->nsynced, o->conns, b->nfailed, b->nclosed);
    }
    /* let the server settle before reading its RSS */
    run_until(b, now_ns() + 1000000000u, NULL);
    proc_mem(pid, &r.rss1, &hwm_dummy, NULL);

    uint64_t ticks1 = 0, ticks2 = 0, mticks1 = 0, mticks2 = 0;
    uint64_t tw0, tw1;
    if (o->idle) {
        tw0 = now_ns();
        proc_cpu_ticks(pid, &ticks1);
        run_until(b, tw0 + (uint64_t)(o->seconds * 1e9), NULL);
        tw1 = now_ns();
        proc_cpu_ticks(pid, &ticks2);
    } else {
        uint64_t ts = now_ns();
        for (uint32_t i = 0; i < b->nwriters; i++) b->writers[i].next_ns += ts;
        b->win_start_ns = ts + (uint64_t)(o->warmup * 1e9);
        b->win_end_ns = b->win_start_ns + (uint64_t)(o->seconds * 1e9);
        b->writing = true;
        run_until(b, b->win_start_ns, NULL);
        tw0 = now_ns();
        proc_cpu_ticks(pid, &ticks1);
        proc_cpu_ticks_of(pid, true, &mticks1);
        b->win_frames_in0 = b->frames_in;
        for (uint32_t i = 0; i < b->nwriters; i++) b->win_sent0 += b->writers[i].sent;
        run_until(b, b->win_end_ns, NULL);
        tw1 = now_ns();
        proc_cpu_ticks(pid, &ticks2);
        proc_cpu_ticks_of(pid, true, &mticks2);
        b->win_frames_in1 = b->frames_in;
        for (uint32_t i = 0; i < b->nwriters; i++) b->win_sent1 += b->writers[i].sent;
        b->writing = false;
        run_until(b, now_ns() + (uint64_t)(o->drain * 1e9), all_delivered);
    }
    r.window_s = (double)(tw1 - tw0) / 1e9;
    r.cpu_pct = r.window_s > 0
                    ? (double)(ticks2 - ticks1) / (double)sysconf(_SC_CLK_TCK) / r.window_s * 100.0
                    : 0;
    r.main_cpu_pct = r.window_s > 0 ? (double)(mticks2 - mticks1) / (double)sysconf(_SC_CLK_TCK) /
                                          r.window_s * 100.0
                                    : 0;
    proc_mem(pid, &r.rss2, &r.hwm, &r.file2);
    if (!o->idle) {
        r.updates_per_s = (double)(b->win_sent1 - b->win_sent0) / r.window_s;
        r.frames_in_per_s = (double)(b->win_frames_in1 - b->win_frames_in0) / r.window_s;
        for (uint32_t i = 0; i < b->nwriters; i++) r.sent_total += b->writers[i].sent;
        r.expected = expected_deliveries(b);
        r.lost = count_lost(b);
        qsort(b->samples, b->nsamples, sizeof *b->samples, cmp_u32);
        r.p50 = pct(b->samples, b->nsamples, 0.50);
        r.p99 = pct(b->samples, b->nsamples, 0.99);
        r.p999 = pct(b->samples, b->nsamples, 0.999);
        r.max = b->nsamples ? b->samples[b->nsamples - 1] / 1000.0 : 0;
        qsort(b->ack_samples, b->nack_samples, sizeof *b->ack_samples, cmp_u32);
        r.ack_p50 = pct(b->ack_samples, b->nack_samples, 0.50);
        r.ack_p99 = pct(b->ack_samples, b->nack_samples, 0.99);
        r.ack_max = b->nack_samples ? b->ack_samples[b->nack_samples - 1] / 1000.0 : 0;
    }
    double la[3] = {0};
    if (getloadavg(la, 3) > 0) r.load1 = la[0];

    bool ok = b->nsynced == o->conns && !bl_stop;
    if (!o->idle) {
        ok = ok && r.lost == 0 && b->nsamples > 0;
        if (o->max_p99_ms > 0 && r.p99 >= o->max_p99_ms) ok = false;
        if (o->max_cpu_pct > 0 && r.cpu_pct >= o->max_cpu_pct) ok = false;
    }
    uint64_t peak_kb = r.hwm > r.rss2 ? r.hwm : r.rss2;
    if (o->max_rss_mb > 0 && (double)peak_kb / 1024.0 >= o->max_rss_mb) ok = false;
    report(b, &r, ok);
    rc = ok ? 0 : 1;
    goto out;
oom:
    fprintf(stderr, "bench-load: out of memory\n");
out:
    if (b->ctx) lws_context_destroy(b->ctx);
    if (b->loop) ev_loop_destroy(b->loop);
    if (b->conns) {
        for (uint32_t i = 0; i < o->conns; i++) {
            sync_client_free(b->conns[i].sc);
            crdt_doc_free(b->conns[i].doc);
            free(b->conns[i].rx);
            free(b->conns[i].seen);
        }
    }
    for (uint32_t i = 0; b->writers && i < b->nwriters; i++) {
        free(b->writers[i].at_ns);
        free(b->writers[i].flush_ns);
        free(b->writers[i].token);
    }
    free(b->writers);
    free(b->conns);
    free(b->samples);
    free(b->ack_samples);
    free(b->wbuf);
    free(b);
    return rc;
}
