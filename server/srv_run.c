/* srv_run.c - start-up, the service loop, the sync timer and shutdown.
 * Main thread (= the lws service thread). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "srv_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "ratelimit.h"
#include "srv_push.h"
#include "srv_redis.h"

#define SRV_TICK_MS      250u  /* sync_server_tick period */
#define SRV_SHUTDOWN_MS  3000u /* time connections get to take their last frames */
#define SRV_WS_RX_CHUNK  2048u
#define SRV_STOP_TICK_MS 50u
#define SRV_TRIM_MS      1000u /* malloc_trim at most this often */

/* Set by SIGTERM / SIGINT; the service loop (woken by EINTR or the next
 * tick) checks it. */
static volatile sig_atomic_t srv_stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    srv_stop_flag = 1;
}

uint64_t srv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Set *out from environment variable `name` when it holds a decimal number
 * of milliseconds in [lo, hi]; anything else is ignored. */
static void env_ms(const char *name, uint64_t lo, uint64_t hi, uint64_t *out)
{
    const char *v = getenv(name);
    if (!v || *v < '0' || *v > '9') return;
    char *end = NULL;
    unsigned long long ms = strtoull(v, &end, 10);
    if (*end == '\0' && ms >= lo && ms <= hi) *out = (uint64_t)ms;
}

void srv_config_init(srv_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->data_dir = "./data";
#ifdef TANDEM_WEB_DIR
#define SRV_WEB_SRC TANDEM_WEB_DIR
#else
#define SRV_WEB_SRC "./server/web"
#endif
    /* The built demo page (server/web/demo/dist; `make run` builds it) when it
     * is there, else the placeholder page of server/web. */
    if (access(SRV_WEB_SRC "/demo/dist/index.html", R_OK) == 0)
        cfg->web_root = SRV_WEB_SRC "/demo/dist";
    else
        cfg->web_root = SRV_WEB_SRC;
    cfg->max_frame = (size_t)1 << 20;
    cfg->max_out_bytes = (size_t)4 << 20;
    cfg->room_idle_ms = 30000;
    cfg->idle_timeout_ms = 120000;
    cfg->hello_timeout_ms = 10000;
    cfg->aw_timeout_ms = 30000;
    cfg->ping_secs = 30;
    cfg->hangup_secs = 75;
    cfg->close_grace_ms = 10000;
    cfg->connect_per_s = 20;
    cfg->connect_burst = 50;
    cfg->pre_hello_bytes = 65536;
    cfg->pre_hello_msgs = 32;
    const char *v = getenv("TANDEM_CONNECT_RATE");
    if (v && *v) {
        char *end = NULL;
        unsigned long rate = strtoul(v, &end, 10);
        unsigned long burst = rate;
        bool ok = end != v && rate <= SRV_RL_BURST_MAX;
        if (ok && *end == '/') {
            const char *b = end + 1;
            burst = strtoul(b, &end, 10);
            ok = end != b && burst >= 1 && burst <= SRV_RL_BURST_MAX;
        }
        if (ok && *end == '\0') {
            cfg->connect_per_s = (uint32_t)rate;
            cfg->connect_burst = (uint32_t)(burst ? burst : 1);
        }
    }
    v = getenv("TANDEM_CONNECT_LOOPBACK");
    if (v && strcmp(v, "1") == 0) cfg->connect_limit_loopback = true;
    env_ms("TANDEM_ROOM_IDLE_MS", 1, 86400000, &cfg->room_idle_ms);
    env_ms("TANDEM_HELLO_TIMEOUT_MS", 100, 3600000, &cfg->hello_timeout_ms);
    env_ms("TANDEM_AWARENESS_TIMEOUT_MS", 100, 3600000, &cfg->aw_timeout_ms);
    env_ms("TANDEM_CLOSE_GRACE_MS", 1000, 600000, &cfg->close_grace_ms);
}

static uint64_t random_seed(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
        close(fd);
    }
    return v ^ srv_now_ms() ^ ((uint64_t)getpid() << 32);
}

/* After rooms were freed, give the allocator's free pages back to the
 * system (glibc keeps them otherwise: a burst of rooms or large documents
 * left the server's RSS at its peak), at most once per SRV_TRIM_MS. */
static void trim_after_rooms_freed(srv *s, uint64_t now)
{
    sync_server_stats st;
    sync_server_get_stats(s->sync, &st);
    if (st.rooms < s->trim_rooms) s->trim_pending = true;
    s->trim_rooms = st.rooms;
    if (!s->trim_pending || now - s->trim_ms < SRV_TRIM_MS) return;
    s->trim_pending = false;
    s->trim_ms = now;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    srv *s = lws_container_of(sul, srv, tick_sul);
    uint64_t now = srv_now_ms();
    sync_server_tick(s->sync, now);
    trim_after_rooms_freed(s, now);
    srv_access_tick(s, now);
    srv_sse_tick(s, now);
    srv_redis_tick(s, now);
    srv_ws_kick(s);
    lws_sul_schedule(s->ctx, 0, &s->tick_sul, on_tick, (lws_usec_t)SRV_TICK_MS * LWS_US_PER_MS);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

static tdm_err open_parts(srv *s)
{
    const srv_config *c = &s->cfg;
    tdm_err e = srv_access_open(s);
    if (e) return e;
    store_opts so = {0};
    /* under load one commit per 20 ms at most: fewer fsyncs and page writes
     * per update; a job reaching an idle store still commits at once
     * (store.h; the trade against ack latency: docs/PERFORMANCE.md) */
    so.gather_us = 20000;
    e = store_open(c->data_dir, &so, &s->st);
    if (e) {
        fprintf(stderr, "tandem serve: cannot open the database in %s: %s\n", c->data_dir,
                tdm_strerror(e));
        return e;
    }
    sync_server_opts o = {0};
    o.max_frame = c->max_frame;
    o.max_out_bytes = c->max_out_bytes;
    o.max_pending = 65536;
    /* OT versions kept in memory per room; older ones come from the store
     * (store_opts.ot_retention, 10,000 per document). sync's default of
     * 1,000 held ~30 MB for 200 busy rooms whether or not an OT client ever
     * came (load benchmark, docs/PERFORMANCE.md) */
    o.ot_history = 128;
    o.room_idle_ms = c->room_idle_ms;
    o.hello_timeout_ms = c->hello_timeout_ms;
    o.idle_timeout_ms = c->idle_timeout_ms;
    o.aw_timeout_ms = c->aw_timeout_ms;
    o.hash_seed = random_seed();
    if ((e = srv_inbox_init(&s->inbox, o.max_pending + 1024))) return e;
    if ((e = srv_push_open(s))) return e;
    if ((e = srv_redis_open(s))) return e;
    sync_host h;
    srv_host_make(s, &h);
    srv_redis_host(s, &h);            /* several nodes: relay what sessions change */
    h.session_output = srv_ws_output; /* fan-out asks for WRITEABLE per session */
    return sync_server_new(&h, &o, &s->sync);
}

static const struct lws_protocols srv_protocols[] = {
    {"http", srv_http_callback, sizeof(srv_http_req), 0, 0, NULL, 0},
    {SRV_SUBPROTOCOL, srv_ws_callback, sizeof(srv_conn), SRV_WS_RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The lws context on a libev loop (epoll) when the evlib plugin loads, else
 * on lws's own poll() loop (also with TANDEM_EVLIB=poll). poll() walks every
 * socket on every wakeup: with thousands of mostly idle connections that was
 * a quarter of the server's CPU under load (bench/tandem-bench-load). */
static struct lws_context *create_context(srv *s, struct lws_context_creation_info *info)
{
    const char *v = getenv("TANDEM_EVLIB");
    if (!v || strcmp(v, "poll") != 0) {
        s->evloop[0] = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
        if (s->evloop[0]) {
            info->options |= LWS_SERVER_OPTION_LIBEV;
            info->foreign_loops = s->evloop;
            struct lws_context *ctx = lws_create_context(info);
            if (ctx) return ctx;
            info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
            info->foreign_loops = NULL;
            ev_loop_destroy(s->evloop[0]);
            s->evloop[0] = NULL;
        }
    }
    return lws_create_context(info);
}

/* One turn of the event loop: returns after what is ready now has been
 * handled, a timer fired or a signal came. The frames sync queued during the
 * turn, from any callback or timer, are written at its end (srv_ws_flush),
 * so nothing stays queued while the loop waits; also before the turn, for
 * what was queued outside one (shutdown). */
static int srv_service(srv *s)
{
    srv_ws_flush(s);
    int r = 0;
    if (!s->evloop[0])
        r = lws_service(s->ctx, 0);
    else
        ev_run(s->evloop[0], EVRUN_ONCE);
    srv_ws_flush(s);
    return r;
}

static tdm_err start_lws(srv *s, lws_retry_bo_t *retry)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    retry->secs_since_valid_ping = (uint16_t)s->cfg.ping_secs;
    retry->secs_since_valid_hangup = (uint16_t)s->cfg.hangup_secs;
    info.port = s->cfg.port;
    info.iface = s->cfg.host;
    info.protocols = srv_protocols;
    info.user = s;
    info.vhost_name = "tandem";
    info.retry_and_idle_policy = retry;
    info.timeout_secs = 20;
    lws_set_log_level(LLL_ERR, NULL);
    s->ctx = create_context(s, &info);
    if (!s->ctx) {
        fprintf(stderr, "tandem serve: cannot listen on %s:%u\n", s->cfg.host,
                (unsigned)s->cfg.port);
        return TDM_EIO;
    }
    pthread_mutex_lock(&s->inbox.mu);
    s->inbox.ctx = s->ctx;
    pthread_mutex_unlock(&s->inbox.mu);
    srv_push_set_context(s, s->ctx);
    return TDM_OK;
}

/* During shutdown: wake the service loop every SRV_STOP_TICK_MS so its
 * deadline holds even when nothing else happens (an SSE connection being
 * killed may sit in lws's close handshake without an event). */
static void on_stop_tick(lws_sorted_usec_list_t *sul)
{
    srv *s = lws_container_of(sul, srv, tick_sul);
    srv_sse_close_all(s);
    lws_sul_schedule(s->ctx, 0, &s->tick_sul, on_stop_tick,
                     (lws_usec_t)SRV_STOP_TICK_MS * LWS_US_PER_MS);
}

/* Stop accepting, flush commits, deliver the acks, close with 1001. */
static void shut_down(srv *s)
{
    s->stopping = true;
    lws_sul_cancel(&s->tick_sul);
    store_flush(s->st);
    srv_host_drain(s);
    srv_ws_close_all(s, SRV_CLOSE_GOING_AWAY);
    srv_sse_close_all(s);
    lws_sul_schedule(s->ctx, 0, &s->tick_sul, on_stop_tick,
                     (lws_usec_t)SRV_STOP_TICK_MS * LWS_US_PER_MS);
    uint64_t deadline = srv_now_ms() + SRV_SHUTDOWN_MS;
    while ((s->nconns || s->nsse) && srv_now_ms() < deadline) {
        srv_service(s);
        srv_host_drain(s);
        srv_ws_close_all(s, SRV_CLOSE_GOING_AWAY);
    }
    lws_sul_cancel(&s->tick_sul);
}

static void free_parts(srv *s)
{
    srv_push_close(s);                       /* joins the push worker before the context goes */
    if (s->ctx) lws_context_destroy(s->ctx); /* CLOSED for what is left */
    s->ctx = NULL;
    if (s->evloop[0]) ev_loop_destroy(s->evloop[0]);
    s->evloop[0] = NULL;
    srv_sse_free_all(s); /* streams lws never reported closed */
    if (s->inbox.ring) {
        pthread_mutex_lock(&s->inbox.mu);
        s->inbox.ctx = NULL;
        pthread_mutex_unlock(&s->inbox.mu);
    }
    store_close(s->st); /* commits what is queued; callbacks only push */
    srv_redis_close(s); /* after the store: its chat callbacks push to it */
    sync_server_free(s->sync);
    srv_inbox_fini(&s->inbox);
    srv_access_close(s);
    free(s->wbuf);
}

tdm_err srv_run(const srv_config *cfg)
{
    if (!cfg || !cfg->host || !cfg->data_dir || cfg->port == 0 || cfg->max_frame < 1024 ||
        cfg->max_frame > SYNCM_MAX_FRAME)
        return TDM_EINVAL;
    srv *s = calloc(1, sizeof *s);
    if (!s) return TDM_ENOMEM;
    s->cfg = *cfg;
    s->started_ms = s->id_base = srv_now_ms();
    if (!cfg->web_root || !realpath(cfg->web_root, s->web_real)) {
        s->web_real[0] = '\0';
        if (!cfg->quiet)
            fprintf(stderr, "tandem serve: no web root at %s; static files are off\n",
                    cfg->web_root ? cfg->web_root : "(none)");
    }
    srv_stop_flag = 0;
    install_signals();
    lws_retry_bo_t retry;
    memset(&retry, 0, sizeof retry);
    tdm_err e = open_parts(s);
    if (!e) e = start_lws(s, &retry);
    if (!e) {
        if (!cfg->quiet)
            fprintf(stderr, "tandem serve: listening on http://%s:%u (data %s%s)\n", cfg->host,
                    (unsigned)cfg->port, cfg->data_dir,
                    cfg->dev ? ", DEVELOPMENT MODE: no authentication" : "");
        lws_sul_schedule(s->ctx, 0, &s->tick_sul, on_tick, (lws_usec_t)SRV_TICK_MS * LWS_US_PER_MS);
        while (!srv_stop_flag)
            if (srv_service(s) < 0) break;
        if (!cfg->quiet) fprintf(stderr, "tandem serve: shutting down\n");
        shut_down(s);
    }
    free_parts(s);
    free(s);
    if (!e && !cfg->quiet) fprintf(stderr, "tandem serve: stopped\n");
    return e;
}
