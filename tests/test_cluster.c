/* test_cluster.c - several real `tandem serve --dev --redis URL` nodes
 * (TANDEM_BIN), each with its own data directory, relaying one room through
 * a real redis-server started here on 127.0.0.1 on a random port (no
 * persistence, its own temp dir). Clients are real sync_clients over
 * WebSocket (support/sync_peer), each on one node. Checked:
 *   - edits on both nodes converge (peers, and GET /text on every node);
 *     chat on one node reaches the other with the same ids, and every node's
 *     GET /messages holds the complete history with equal ids; presence and
 *     typing cross nodes;
 *   - a node SIGKILLed while its client edits comes back on its data: the
 *     client resends what was not acked, everything converges, and what the
 *     killed node acked before dying is in every node's text;
 *   - Redis SIGKILLed and restarted while both nodes take edits and chat:
 *     the nodes reconnect and converge, chat ids stay monotonic and equal.
 * redis-server must be installed (scripts/setup.sh): the suite fails
 * without it. Everything waits by polling with deadlines. */
#define _XOPEN_SOURCE 700

#include "server_proc.h"
#include "sync_peer.h"

#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

extern char **environ;

static void nap_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- redis-server ------------------------------------------------------------------ */

typedef struct redis {
    pid_t pid;
    int port;
    char dir[64];
    char url[64];
    const char *pass; /* --requirepass (NULL: none) */
} redis;

static const char *redis_bin(void)
{
    static const char *const cand[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server",
                                       "/usr/sbin/redis-server"};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (access(cand[i], X_OK) == 0) return cand[i];
    return NULL;
}

/* PING answered with +PONG? */
static bool redis_ping(int port)
{
    int fd = srvp_connect(port);
    if (fd < 0) return false;
    bool ok = write(fd, "PING\r\n", 6) == 6;
    char b[16] = {0};
    ok = ok && read(fd, b, sizeof b - 1) >= 5 &&
         (strncmp(b, "+PONG", 5) == 0 || strncmp(b, "-NOAUTH", 7) == 0);
    close(fd);
    return ok;
}

static bool redis_spawn(redis *r)
{
    const char *bin = redis_bin();
    ck_assert_msg(bin != NULL, "redis-server is not installed: run scripts/setup.sh");
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *argv[] = {bin,  "--port",       port,      "--bind", "127.0.0.1", "--save",
                          "",   "--appendonly", "no",      "--dir",  r->dir,      "--daemonize",
                          "no", "--loglevel",   "warning", NULL,     NULL,        NULL};
    if (r->pass) argv[15] = "--requirepass", argv[16] = r->pass;
    char log[128];
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(&r->pid, bin, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return false;
    uint64_t end = srvp_mono_ms() + 10000;
    while (srvp_mono_ms() < end) {
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->pid = 0;
            return false;
        }
        if (redis_ping(r->port)) return true;
        nap_ms(20);
    }
    return false;
}

static void redis_start_auth(redis *r, const char *pass)
{
    memset(r, 0, sizeof *r);
    r->pass = pass;
    snprintf(r->dir, sizeof r->dir, "/tmp/tandem-redis-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(r->dir));
    for (int attempt = 0; attempt < 20; attempt++) {
        r->port = 20000 + (int)((srvp_mono_ms() * 7919u + (uint64_t)getpid() * 31u +
                                 (uint64_t)attempt * 104729u) %
                                40000u);
        if (redis_ping(r->port)) continue; /* someone else's */
        if (redis_spawn(r)) {
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
            return;
        }
        if (r->pid) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
            r->pid = 0;
        }
    }
    ck_abort_msg("could not start redis-server");
}

static void redis_start(redis *r)
{
    redis_start_auth(r, NULL);
}

static void redis_kill(redis *r)
{
    if (!r->pid) return;
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

static void redis_stop(redis *r)
{
    redis_kill(r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- nodes ------------------------------------------------------------------------- */

static void node_opts(const redis *r, srvp_opts *o, const char **args)
{
    static const char *const env[] = {"TANDEM_CONNECT_RATE=0", NULL};
    args[0] = "--redis";
    args[1] = r->url;
    args[2] = NULL;
    memset(o, 0, sizeof *o);
    o->args = args;
    o->env = env;
}

static void node_start(srvp *s, const redis *r)
{
    const char *args[3];
    srvp_opts o;
    node_opts(r, &o, args);
    ck_assert_msg(srvp_start_opts(s, TANDEM_BIN, &o), "could not start a node");
}

/* ---- a TCP proxy in front of Redis, to cut one node off ----------------------------------- */

#define PX_PAIRS 16

typedef struct proxy {
    int lfd, port, up_port;
    pthread_t th;
    atomic_int cut, stop;
    int pair[PX_PAIRS][2]; /* node side, Redis side; -1: free */
} proxy;

static bool write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k <= 0) return false;
        p += k, n -= (size_t)k;
    }
    return true;
}

static void px_close(proxy *px, int i)
{
    close(px->pair[i][0]);
    close(px->pair[i][1]);
    px->pair[i][0] = px->pair[i][1] = -1;
}

/* Forward bytes both ways; while cut: close every connection and refuse new
 * ones (the node sees its connections drop and its reconnects fail). */
static void *px_main(void *arg)
{
    proxy *px = arg;
    static char buf[65536];
    while (!atomic_load(&px->stop)) {
        bool cut = atomic_load(&px->cut);
        struct pollfd pf[1 + 2 * PX_PAIRS];
        int at[1 + 2 * PX_PAIRS];
        int n = 0;
        pf[n] = (struct pollfd){px->lfd, POLLIN, 0}, at[n++] = -1;
        for (int i = 0; i < PX_PAIRS; i++) {
            if (px->pair[i][0] < 0) continue;
            if (cut) {
                px_close(px, i);
                continue;
            }
            pf[n] = (struct pollfd){px->pair[i][0], POLLIN, 0}, at[n++] = 2 * i;
            pf[n] = (struct pollfd){px->pair[i][1], POLLIN, 0}, at[n++] = 2 * i + 1;
        }
        if (poll(pf, (nfds_t)n, 20) <= 0) continue;
        if (pf[0].revents & POLLIN) {
            int c = accept(px->lfd, NULL, NULL);
            int slot = -1;
            for (int i = 0; i < PX_PAIRS && slot < 0; i++)
                if (px->pair[i][0] < 0) slot = i;
            int u = c >= 0 && !cut && slot >= 0 ? srvp_connect(px->up_port) : -1;
            if (u < 0) {
                if (c >= 0) close(c);
            } else {
                px->pair[slot][0] = c;
                px->pair[slot][1] = u;
            }
        }
        for (int k = 1; k < n; k++) {
            int i = at[k] / 2, side = at[k] % 2;
            if (!pf[k].revents || px->pair[i][0] < 0) continue;
            ssize_t got = read(px->pair[i][side], buf, sizeof buf);
            if (got <= 0 || !write_all(px->pair[i][1 - side], buf, (size_t)got)) px_close(px, i);
        }
    }
    for (int i = 0; i < PX_PAIRS; i++)
        if (px->pair[i][0] >= 0) px_close(px, i);
    return NULL;
}

static void px_start(proxy *px, int up_port)
{
    memset(px, 0, sizeof *px);
    for (int i = 0; i < PX_PAIRS; i++) px->pair[i][0] = px->pair[i][1] = -1;
    px->up_port = up_port;
    px->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(px->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(px->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(px->lfd, 16), 0);
    socklen_t al = sizeof a;
    ck_assert_int_eq(getsockname(px->lfd, (struct sockaddr *)&a, &al), 0);
    px->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&px->th, NULL, px_main, px), 0);
}

static void px_stop(proxy *px)
{
    atomic_store(&px->stop, 1);
    pthread_join(px->th, NULL);
    close(px->lfd);
}

static void node_restart(srvp *s, const redis *r)
{
    const char *args[3];
    srvp_opts o;
    node_opts(r, &o, args);
    ck_assert_msg(srvp_restart_opts(s, TANDEM_BIN, &o), "could not restart a node");
}

/* "id:text\n" for every stored chat record of room on the node */
static char *node_chat(int port, const char *room, size_t *count)
{
    char path[512];
    snprintf(path, sizeof path, "/api/rooms/%s/messages?limit=1000", room);
    json_t *v = np_get_json(port, path);
    json_t *a = json_object_get(v, "messages");
    ck_assert(json_is_array(a));
    size_t cap = 64 + json_array_size(a) * 128, len = 0;
    char *out = calloc(1, cap);
    ck_assert_ptr_nonnull(out);
    uint64_t prev = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *m = json_array_get(a, i);
        uint64_t id = (uint64_t)json_integer_value(json_object_get(m, "id"));
        ck_assert_uint_gt(id, prev); /* increasing */
        prev = id;
        len += (size_t)snprintf(out + len, cap - len, "%llu:%s\n", (unsigned long long)id,
                                json_string_value(json_object_get(m, "text")));
    }
    *count = json_array_size(a);
    json_decref(v);
    return out;
}

/* ---- waiting --------------------------------------------------------------------------- */

static void pump_for(wsc_ctx *x, np_peer **ps, size_t n, int ms)
{
    uint64_t end = np_mono_ms() + (uint64_t)ms;
    while (np_mono_ms() < end) {
        for (size_t i = 0; i < n; i++) np_pump(ps[i]);
        wsc_service(x, 10);
    }
}

/* every node's GET /text equals every peer's text (after convergence) */
static void expect_texts(np_peer **ps, size_t n, srvp **nodes, size_t nn, const char *room)
{
    char *want = np_text(ps[0]);
    for (size_t i = 0; i < nn; i++) {
        /* the relay may still be on its way to a node no peer is on */
        char *t = NULL;
        uint64_t end = np_mono_ms() + 15000;
        for (;;) {
            t = np_server_text(nodes[i]->port, room);
            if (strcmp(t, want) == 0 || np_mono_ms() > end) break;
            free(t);
            nap_ms(50);
        }
        ck_assert_msg(strcmp(t, want) == 0, "node %zu: '%s' != peers '%s'", i, t, want);
        free(t);
    }
    for (size_t i = 1; i < n; i++) {
        char *t = np_text(ps[i]);
        ck_assert_str_eq(t, want);
        free(t);
    }
    free(want);
}

/* every node holds `want` chat records, the same on each */
static void expect_chat(srvp **nodes, size_t nn, const char *room, size_t want)
{
    char *first = NULL;
    for (size_t i = 0; i < nn; i++) {
        size_t count = 0;
        char *c = NULL;
        uint64_t end = np_mono_ms() + 15000;
        for (;;) {
            c = node_chat(nodes[i]->port, room, &count);
            if (count >= want || np_mono_ms() > end) break;
            free(c);
            nap_ms(50);
        }
        ck_assert_msg(count == want, "node %zu holds %zu chat records, want %zu:\n%s", i, count,
                      want, c);
        if (!first) {
            first = c;
        } else {
            ck_assert_msg(strcmp(first, c) == 0, "chat differs:\n%s---\n%s", first, c);
            free(c);
        }
    }
    free(first);
}

static void wait_chat(wsc_ctx *x, np_peer **ps, size_t n, np_peer *p, size_t nchat, uint64_t acks)
{
    uint64_t end = np_mono_ms() + 15000;
    while ((p->nchat < nchat || p->chat_acks < acks) && np_mono_ms() < end) {
        for (size_t i = 0; i < n; i++) np_pump(ps[i]);
        wsc_service(x, 10);
    }
    ck_assert_msg(p->nchat >= nchat && p->chat_acks >= acks, "chat: %zu records %llu acks",
                  p->nchat, (unsigned long long)p->chat_acks);
}

static void edit_rounds(wsc_ctx *x, np_peer **ps, size_t n, unsigned *rng, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) np_random_edit(ps[i], rng, r % 3 == 0);
        pump_for(x, ps, n, 20);
    }
}

/* ---- the fixture: a redis-server and two nodes A and B ---------------------------------- */

static redis RD;
static srvp A, B;

static void setup(void)
{
    redis_start(&RD);
    node_start(&A, &RD);
    node_start(&B, &RD);
}

static void teardown(void)
{
    ck_assert_int_eq(srvp_stop(&A), 0);
    ck_assert_int_eq(srvp_stop(&B), 0);
    redis_stop(&RD);
}

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(test_two_nodes_edit_chat_presence)
{
    srvp *nodes[] = {&A, &B};
    wsc_ctx *x = wsc_new();
    np_peer a, b, c;
    np_open(&a, x, A.port, "shared", 1001, false, NULL);
    np_open(&b, x, B.port, "shared", 1002, false, NULL);
    np_open(&c, x, B.port, "shared", 1003, true, NULL); /* an OT client on node B */
    np_peer *ps[] = {&a, &b, &c};
    np_wait_synced(x, ps, 3, 15000);
    unsigned rng = 12345;
    edit_rounds(x, ps, 3, &rng, 40);
    np_wait_converged(x, ps, 3, 30000);
    expect_texts(ps, 3, nodes, 2, "shared");
    char *t = np_text(&a);
    ck_assert_uint_gt(strlen(t), 0);
    free(t);

    /* chat: two messages on A, one on B; the ids are the same everywhere */
    np_say(&a, "one");
    wait_chat(x, ps, 3, &a, 0, 1);
    np_say(&a, "two");
    wait_chat(x, ps, 3, &a, 0, 2);
    np_say(&b, "three");
    wait_chat(x, ps, 3, &b, 2, 1);
    wait_chat(x, ps, 3, &a, 1, 2);
    wait_chat(x, ps, 3, &c, 3, 0);
    ck_assert_uint_eq(b.chat_ids[0], 1);
    ck_assert_uint_eq(b.chat_ids[1], 2);
    ck_assert_uint_eq(b.last_chat_ack_id, 3);
    ck_assert_uint_eq(a.chat_ids[0], 3);
    expect_chat(nodes, 2, "shared", 3);

    /* presence: a's state reaches b (other node); b's reaches a */
    np_presence(&a, "{\"cursor\":5}");
    np_presence(&b, "{\"cursor\":9}");
    uint64_t end = np_mono_ms() + 10000;
    aw_entry e;
    bool seen_a = false, seen_b = false;
    while ((!seen_a || !seen_b) && np_mono_ms() < end) {
        pump_for(x, ps, 3, 20);
        seen_a = aw_get(b.aw, a.client_id, &e) == TDM_OK && e.len == strlen("{\"cursor\":5}") &&
                 memcmp(e.state, "{\"cursor\":5}", e.len) == 0;
        seen_b = aw_get(a.aw, b.client_id, &e) == TDM_OK && e.len == strlen("{\"cursor\":9}") &&
                 memcmp(e.state, "{\"cursor\":9}", e.len) == 0;
    }
    ck_assert_msg(seen_a && seen_b, "presence across nodes: a->b %d b->a %d", seen_a, seen_b);

    /* typing on A is seen on B, and its stop */
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, true), TDM_OK);
    end = np_mono_ms() + 10000;
    while (b.typing_on < 1 && np_mono_ms() < end) pump_for(x, ps, 3, 20);
    ck_assert_int_eq(b.typing_on, 1);
    ck_assert_str_eq(b.typing_user, "anon");
    ck_assert_int_eq(sync_client_typing(a.cl, a.ch, false), TDM_OK);
    end = np_mono_ms() + 10000;
    while (b.typing_off < 1 && np_mono_ms() < end) pump_for(x, ps, 3, 20);
    ck_assert_int_eq(b.typing_off, 1);

    /* /metrics of a node shows the relay (only with --redis) */
    srvp_http m = srvp_get(B.port, "/metrics");
    ck_assert_int_eq(m.status, 200);
    ck_assert_ptr_nonnull(strstr(m.body, "\ntandem_redis_connected 1\n"));
    const char *in = strstr(m.body, "\ntandem_redis_relayed_in_total ");
    ck_assert_ptr_nonnull(in);
    ck_assert_int_gt(atoi(in + strlen("\ntandem_redis_relayed_in_total ")), 0);
    srvp_http_free(&m);

    /* a leaves: its presence goes on the other node too */
    np_close(&a);
    np_peer *bc[] = {&b, &c};
    end = np_mono_ms() + 10000;
    while (aw_get(b.aw, a.client_id, &e) == TDM_OK && np_mono_ms() < end) pump_for(x, bc, 2, 20);
    ck_assert_int_ne(aw_get(b.aw, a.client_id, &e), TDM_OK);
    ck_assert_uint_eq(a.errors + b.errors + c.errors, 0);

    wsc_free(x);
    np_free(&a);
    np_free(&b);
    np_free(&c);
}
END_TEST

START_TEST(test_node_killed_mid_edit)
{
    srvp *nodes[] = {&A, &B};
    wsc_ctx *x = wsc_new();
    np_peer a, b, a2;
    np_open(&a, x, A.port, "crash", 2001, false, NULL);
    np_open(&b, x, B.port, "crash", 2002, false, NULL);
    np_peer *ps[] = {&a, &b};
    np_wait_synced(x, ps, 2, 15000);
    unsigned rng = 777;
    edit_rounds(x, ps, 2, &rng, 20);
    np_wait_converged(x, ps, 2, 30000);
    np_say(&a, "before");
    wait_chat(x, ps, 2, &a, 0, 1);
    /* a appends numbered markers on A while b inserts on B; A is SIGKILLed
     * in the middle of the burst, and a's client is lost with it (what it
     * had not had acked is gone: only acked markers must survive) */
    uint64_t base = a.acks;
    char mark[32];
    for (int k = 1; k <= 30; k++) {
        snprintf(mark, sizeof mark, "<%d>", k);
        ck_assert_int_eq(crdt_doc_insert(a.doc, crdt_doc_len(a.doc), mark, strlen(mark)), TDM_OK);
        ck_assert_int_eq(sync_client_flush(a.cl, a.ch), TDM_OK);
        ck_assert_int_eq(crdt_doc_insert(b.doc, 0, "b", 1), TDM_OK);
        ck_assert_int_eq(sync_client_flush(b.cl, b.ch), TDM_OK);
        pump_for(x, ps, 2, 10);
    }
    uint64_t acked = a.acks - base; /* acks come in order: markers 1..acked */
    ck_assert_msg(srvp_kill9(&A), "SIGKILL did not end the server");
    ck_assert_uint_gt(acked, 0);
    /* b goes on inserting on B while A is down (inserts only from here
     * on: nothing may delete a marker) */
    np_peer *bb[] = {&b};
    for (int r = 0; r < 10; r++) {
        ck_assert_int_eq(crdt_doc_insert(b.doc, 0, "B", 1), TDM_OK);
        ck_assert_int_eq(sync_client_flush(b.cl, b.ch), TDM_OK);
        pump_for(x, bb, 1, 10);
    }
    node_restart(&A, &RD);
    np_open(&a2, x, A.port, "crash", 2003, false, NULL);
    np_peer *ps2[] = {&a2, &b};
    np_wait_synced(x, ps2, 2, 15000);
    for (int r = 0; r < 5; r++) {
        ck_assert_int_eq(crdt_doc_insert(a2.doc, 0, "A", 1), TDM_OK);
        ck_assert_int_eq(sync_client_flush(a2.cl, a2.ch), TDM_OK);
        ck_assert_int_eq(crdt_doc_insert(b.doc, 0, "B", 1), TDM_OK);
        ck_assert_int_eq(sync_client_flush(b.cl, b.ch), TDM_OK);
        pump_for(x, ps2, 2, 10);
    }
    np_wait_converged(x, ps2, 2, 30000);
    expect_texts(ps2, 2, nodes, 2, "crash");
    char *t = np_text(&b);
    for (uint64_t k = 1; k <= acked; k++) {
        snprintf(mark, sizeof mark, "<%llu>", (unsigned long long)k);
        ck_assert_msg(strstr(t, mark) != NULL, "acked marker %s lost (%llu acked)", mark,
                      (unsigned long long)acked);
    }
    free(t);
    /* the chat record stored before the kill is on both nodes, and a new one
     * continues the ids */
    np_say(&b, "after");
    wait_chat(x, ps2, 2, &b, 0, 1);
    ck_assert_uint_eq(b.last_chat_ack_id, 2);
    wait_chat(x, ps2, 2, &a2, 1, 0);
    expect_chat(nodes, 2, "crash", 2);

    wsc_free(x);
    np_free(&a);
    np_free(&a2);
    np_free(&b);
}
END_TEST

START_TEST(test_redis_restart_and_outage)
{
    srvp *nodes[] = {&A, &B};
    wsc_ctx *x = wsc_new();
    np_peer a, b;
    np_open(&a, x, A.port, "outage", 3001, false, NULL);
    np_open(&b, x, B.port, "outage", 3002, false, NULL);
    np_peer *ps[] = {&a, &b};
    np_wait_synced(x, ps, 2, 15000);
    unsigned rng = 4242;
    edit_rounds(x, ps, 2, &rng, 10);
    np_wait_converged(x, ps, 2, 30000);
    np_say(&a, "m1");
    wait_chat(x, ps, 2, &b, 1, 0);

    /* Redis goes away; both nodes keep taking edits (acked locally) */
    redis_kill(&RD);
    edit_rounds(x, ps, 2, &rng, 15);
    pump_for(x, ps, 2, 500);
    ck_assert_uint_eq(sync_client_unacked(a.cl, a.ch), 0);
    ck_assert_uint_eq(sync_client_unacked(b.cl, b.ch), 0);
    char *ta = np_text(&a), *tb = np_text(&b);
    ck_assert_str_ne(ta, tb); /* the nodes cannot see each other now */
    free(ta);
    free(tb);

    /* Redis comes back empty on the same port: the nodes reconnect and
     * repair through the state-vector exchange */
    ck_assert(redis_spawn(&RD));
    np_wait_converged(x, ps, 2, 30000);
    expect_texts(ps, 2, nodes, 2, "outage");

    /* chat ids go on from where they were (Redis forgot its counter) */
    np_say(&b, "m2");
    wait_chat(x, ps, 2, &b, 0, 1);
    ck_assert_uint_eq(b.last_chat_ack_id, 2);
    wait_chat(x, ps, 2, &a, 1, 1);
    ck_assert_uint_eq(a.chat_ids[0], 2);
    expect_chat(nodes, 2, "outage", 2);
    ck_assert_uint_eq(a.errors + b.errors, 0);

    wsc_free(x);
    np_free(&a);
    np_free(&b);
}
END_TEST

/* a node that joins late (room not in its memory, empty store) catches up
 * from the others, and the three of them converge */
START_TEST(test_late_third_node)
{
    srvp C;
    wsc_ctx *x = wsc_new();
    np_peer a, b, c;
    np_open(&a, x, A.port, "late", 4001, false, NULL);
    np_open(&b, x, B.port, "late", 4002, false, NULL);
    np_peer *ps[] = {&a, &b, &c};
    np_wait_synced(x, ps, 2, 15000);
    unsigned rng = 99;
    edit_rounds(x, ps, 2, &rng, 10);
    np_wait_converged(x, ps, 2, 30000);
    np_say(&a, "x");
    wait_chat(x, ps, 2, &b, 1, 0);
    node_start(&C, &RD);
    srvp *nodes[] = {&A, &B, &C};
    np_open(&c, x, C.port, "late", 4003, false, NULL);
    np_wait_synced(x, ps, 3, 15000);
    edit_rounds(x, ps, 3, &rng, 5);
    np_wait_converged(x, ps, 3, 30000);
    expect_texts(ps, 3, nodes, 3, "late");
    np_say(&c, "y");
    wait_chat(x, ps, 3, &c, 0, 1);
    ck_assert_uint_eq(c.last_chat_ack_id, 2);
    expect_chat(nodes, 3, "late", 2);

    wsc_free(x);
    np_free(&a);
    np_free(&b);
    np_free(&c);
    ck_assert_int_eq(srvp_stop(&C), 0);
}
END_TEST

/* send one inline command to redis and read the first line of the answer */
static void redis_cmd(int port, const char *cmd, char *out, size_t cap)
{
    int fd = srvp_connect(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
    ssize_t n = read(fd, out, cap - 1);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    close(fd);
}

/* a chat id allocated in Redis that never reaches any node (its node died
 * between INCR and PUBLISH): the nodes wait SRV_REDIS_GAP_MS for it, then
 * skip it, so the sender is acked, later acks are not held up, and both
 * nodes keep equal histories */
START_TEST(test_chat_gap_skipped)
{
    srvp *nodes[] = {&A, &B};
    wsc_ctx *x = wsc_new();
    np_peer a, b;
    np_open(&a, x, A.port, "gap", 5001, false, NULL);
    np_open(&b, x, B.port, "gap", 5002, false, NULL);
    np_peer *ps[] = {&a, &b};
    np_wait_synced(x, ps, 2, 15000);
    np_say(&a, "first");
    wait_chat(x, ps, 2, &b, 1, 0);
    char ans[64];
    redis_cmd(RD.port, "INCR tandem:chat:gap\r\n", ans, sizeof ans);
    ck_assert_str_eq(ans, ":2\r\n"); /* id 2 is taken and will never be published */
    np_say(&a, "second");
    unsigned rng = 5;
    np_random_edit(&a, &rng, false); /* its ack queues behind the chat write */
    wait_chat(x, ps, 2, &a, 0, 2);
    np_wait_converged(x, ps, 2, 15000);
    wait_chat(x, ps, 2, &b, 2, 0);
    ck_assert_uint_eq(b.chat_ids[1], a.last_chat_ack_id);
    np_say(&b, "third");
    wait_chat(x, ps, 2, &b, 0, 1);
    wait_chat(x, ps, 2, &a, 1, 2);
    ck_assert_uint_eq(b.last_chat_ack_id, a.chat_ids[0]);
    expect_chat(nodes, 2, "gap", 3);
    ck_assert_uint_eq(a.errors + b.errors, 0);
    wsc_free(x);
    np_free(&a);
    np_free(&b);
}
END_TEST

/* one node cut off from Redis (a proxy in front of it drops its connections
 * and refuses new ones) while the others stay connected: both sides take
 * edits and chat goes on where Redis is reachable; once the proxy lets it
 * through again the node reconnects and catches up (document and chat) */
START_TEST(test_node_cut_off)
{
    proxy px;
    px_start(&px, RD.port);
    redis via = RD;
    snprintf(via.url, sizeof via.url, "redis://127.0.0.1:%d", px.port);
    srvp C;
    node_start(&C, &via);
    srvp *nodes[] = {&B, &C};
    wsc_ctx *x = wsc_new();
    np_peer b, c;
    np_open(&b, x, B.port, "cut", 6001, false, NULL);
    np_open(&c, x, C.port, "cut", 6002, false, NULL);
    np_peer *ps[] = {&b, &c};
    np_wait_synced(x, ps, 2, 15000);
    unsigned rng = 31337;
    edit_rounds(x, ps, 2, &rng, 10);
    np_wait_converged(x, ps, 2, 30000);
    np_say(&b, "one");
    wait_chat(x, ps, 2, &c, 1, 0);

    atomic_store(&px.cut, 1);
    pump_for(x, ps, 2, 300);
    edit_rounds(x, ps, 2, &rng, 15);
    np_say(&b, "while C was cut off"); /* B still reaches Redis: stored and acked */
    wait_chat(x, ps, 2, &b, 0, 1);
    pump_for(x, ps, 2, 500);
    ck_assert_uint_eq(sync_client_unacked(c.cl, c.ch), 0); /* C acks from its own store */
    ck_assert_uint_eq(c.nchat, 1);
    char *tb = np_text(&b), *tc = np_text(&c);
    ck_assert_str_ne(tb, tc);
    free(tb);
    free(tc);

    atomic_store(&px.cut, 0);
    np_wait_converged(x, ps, 2, 30000);
    expect_texts(ps, 2, nodes, 2, "cut");
    expect_chat(nodes, 2, "cut", 2);
    wait_chat(x, ps, 2, &c, 2, 0); /* c is sent the record C caught up on */
    ck_assert_uint_eq(c.chat_ids[1], b.last_chat_ack_id);
    ck_assert_uint_eq(b.errors + c.errors, 0);
    wsc_free(x);
    np_free(&b);
    np_free(&c);
    ck_assert_int_eq(srvp_stop(&C), 0);
    px_stop(&px);
}
END_TEST

/* an OT client that moves to another node (its node's version numbers mean
 * nothing there) is resynchronized from a snapshot, not sent operations that
 * do not fit its text, and everyone converges */
START_TEST(test_ot_client_moves_node)
{
    srvp *nodes[] = {&A, &B};
    wsc_ctx *x = wsc_new();
    np_peer o, b, c;
    np_open(&o, x, A.port, "otmove", 7001, true, NULL);
    np_open(&b, x, B.port, "otmove", 7002, false, NULL);
    np_open(&c, x, A.port, "otmove", 7003, false, NULL);
    np_peer *ps[] = {&o, &b, &c};
    np_wait_synced(x, ps, 3, 15000);
    unsigned rng = 2024;
    edit_rounds(x, ps, 3, &rng, 30); /* concurrent: the nodes apply them in different orders */
    np_wait_converged(x, ps, 3, 30000);
    np_drop(&o);
    np_peer *bc[] = {&b, &c};
    edit_rounds(x, bc, 2, &rng, 10);
    o.port = B.port;
    np_connect(&o);
    np_wait_synced(x, ps, 3, 15000);
    edit_rounds(x, ps, 3, &rng, 10);
    np_wait_converged(x, ps, 3, 30000);
    expect_texts(ps, 3, nodes, 2, "otmove");
    ck_assert_uint_ge(o.err_count[SYNC_ERR_TOO_FAR_BEHIND], 1); /* resynchronized */
    ck_assert_uint_eq(b.errors + c.errors, 0);
    wsc_free(x);
    np_free(&o);
    np_free(&b);
    np_free(&c);
}
END_TEST

/* ---- Redis with a password ------------------------------------------------------------ */

#define AUTH_PASS     "s3c@t/pw:x"          /* needs percent-encoding in a URL */
#define AUTH_PASS_URL "s3c%%40t%%2Fpw%%3Ax" /* the same, encoded (a format string) */

static void node_start_url(srvp *s, const char *url, const char *extra_env)
{
    const char *env[] = {"TANDEM_CONNECT_RATE=0", extra_env, NULL};
    const char *args[] = {"--redis", url, NULL};
    srvp_opts o;
    memset(&o, 0, sizeof o);
    o.args = args;
    o.env = env;
    ck_assert_msg(srvp_start_opts(s, TANDEM_BIN, &o), "could not start a node (%s)", url);
}

/* send inline commands to redis and read until `lines` CRLFs arrived */
static void redis_cmds(int port, const char *cmds, int lines, char *out, size_t cap)
{
    int fd = srvp_connect(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, cmds, strlen(cmds)), (ssize_t)strlen(cmds));
    size_t n = 0;
    int seen = 0;
    uint64_t end = srvp_mono_ms() + 5000;
    while (seen < lines && n + 1 < cap && srvp_mono_ms() < end) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t k = read(fd, out + n, cap - 1 - n);
        if (k <= 0) break;
        for (ssize_t i = 0; i < k; i++) seen += out[n + (size_t)i] == '\n';
        n += (size_t)k;
    }
    out[n] = '\0';
    close(fd);
}

/* `tandem serve --redis url` that must not start: its output and exit status */
static void serve_fails(const char *url, char *out, size_t cap)
{
    char cmd[768];
    snprintf(cmd, sizeof cmd,
             "d=$(mktemp -d) && env -u TANDEM_REDIS_PASSWORD timeout 10 '%s' serve --dev --port 1 "
             "--data \"$d\" --redis '%s' 2>&1; echo \"rc=$?\"; rm -rf \"$d\"",
             TANDEM_BIN, url);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    pclose(f);
}

/* the password appears nowhere a node shows (its log, /metrics, /healthz) */
static void expect_no_secret(const srvp *s)
{
    const char *paths[] = {"/metrics", "/healthz"};
    for (size_t i = 0; i < 2; i++) {
        srvp_http r = srvp_get(s->port, paths[i]);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(!strstr(r.body, "s3c@t") && !strstr(r.body, "s3c%40t"), "%s leaks: %s",
                      paths[i], r.body);
        srvp_http_free(&r);
    }
    FILE *f = fopen(s->log, "r");
    ck_assert_ptr_nonnull(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    ck_assert_msg(!strstr(buf, "s3c@t") && !strstr(buf, "s3c%40t"), "log leaks: %s", buf);
}

static bool metric_is(int port, const char *line)
{
    srvp_http r = srvp_get(port, "/metrics");
    bool ok = r.status == 200 && r.body && strstr(r.body, line);
    srvp_http_free(&r);
    return ok;
}

static void wait_metric(int port, const char *line, int ms)
{
    uint64_t end = srvp_mono_ms() + (uint64_t)ms;
    while (!metric_is(port, line)) {
        ck_assert_msg(srvp_mono_ms() < end, "port %d: no '%s' in /metrics", port, line);
        nap_ms(100);
    }
}

/* redis-server --requirepass: a node with the password in its URL (database
 * 2, percent-encoded) and one with it in TANDEM_REDIS_PASSWORD (user
 * "default" in the URL) relay edits and chat through database 2; nodes with
 * a wrong or no password do not start (exit 2, the reason, never the
 * password) and the right ones keep working; the password is in no log,
 * /metrics or /healthz; a password changed under running nodes makes their
 * reconnections fail (logged, retried) until it is changed back */
START_TEST(test_redis_auth)
{
    redis rd;
    redis_start_auth(&rd, AUTH_PASS);
    char url_a[160], url_b[160], bad[160], out[4096];
    snprintf(url_a, sizeof url_a, "redis://:" AUTH_PASS_URL "@127.0.0.1:%d/2", rd.port);
    snprintf(url_b, sizeof url_b, "redis://default@127.0.0.1:%d/2", rd.port);
    srvp a2, b2;
    node_start_url(&a2, url_a, NULL);
    node_start_url(&b2, url_b, "TANDEM_REDIS_PASSWORD=" AUTH_PASS);
    srvp *nodes[] = {&a2, &b2};
    wait_metric(a2.port, "tandem_redis_connected 1", 10000);
    wait_metric(b2.port, "tandem_redis_connected 1", 10000);

    wsc_ctx *x = wsc_new();
    np_peer a, b;
    np_open(&a, x, a2.port, "auth", 8001, false, NULL);
    np_open(&b, x, b2.port, "auth", 8002, false, NULL);
    np_peer *ps[] = {&a, &b};
    np_wait_synced(x, ps, 2, 15000);
    unsigned rng = 77;
    edit_rounds(x, ps, 2, &rng, 10);
    np_wait_converged(x, ps, 2, 30000);
    np_say(&a, "through an authenticated redis");
    wait_chat(x, ps, 2, &b, 1, 0);
    /* the chat counter lives in database 2, not 0 */
    redis_cmds(rd.port,
               "AUTH " AUTH_PASS "\r\nEXISTS tandem:chat:auth\r\nSELECT 2\r\n"
               "EXISTS tandem:chat:auth\r\n",
               4, out, sizeof out);
    ck_assert_str_eq(out, "+OK\r\n:0\r\n+OK\r\n:1\r\n");

    /* wrong password, no password: refused at start with the reason */
    snprintf(bad, sizeof bad, "redis://:WrongHunter2@127.0.0.1:%d", rd.port);
    serve_fails(bad, out, sizeof out);
    ck_assert_msg(strstr(out, "refused the login") && strstr(out, "WRONGPASS") &&
                      strstr(out, "rc=2") && !strstr(out, "WrongHunter2"),
                  "%s", out);
    snprintf(bad, sizeof bad, "redis://127.0.0.1:%d", rd.port);
    serve_fails(bad, out, sizeof out);
    ck_assert_msg(strstr(out, "NOAUTH") && strstr(out, "rc=2"), "%s", out);
    edit_rounds(x, ps, 2, &rng, 5);
    np_wait_converged(x, ps, 2, 30000);
    expect_texts(ps, 2, nodes, 2, "auth");
    expect_no_secret(&a2);
    expect_no_secret(&b2);

    /* the password changes and the nodes are disconnected: their new
     * logins are refused (logged, retried) until it is set back */
    redis_cmds(rd.port,
               "AUTH " AUTH_PASS "\r\nCONFIG SET requirepass other\r\n"
               "CLIENT KILL TYPE pubsub\r\nCLIENT KILL TYPE normal\r\n",
               4, out, sizeof out);
    ck_assert_msg(strncmp(out, "+OK\r\n+OK\r\n:", 11) == 0, "%s", out);
    wait_metric(a2.port, "tandem_redis_connected 0", 10000);
    pump_for(x, ps, 2, 1500);
    redis_cmds(rd.port, "AUTH other\r\nCONFIG SET requirepass " AUTH_PASS "\r\n", 2, out,
               sizeof out);
    ck_assert_str_eq(out, "+OK\r\n+OK\r\n");
    wait_metric(a2.port, "tandem_redis_connected 1", 15000);
    wait_metric(b2.port, "tandem_redis_connected 1", 15000);
    FILE *f = fopen(a2.log, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(out, "AUTH refused: WRONGPASS") && strstr(out, "retrying"), "%s", out);
    edit_rounds(x, ps, 2, &rng, 5);
    np_wait_converged(x, ps, 2, 30000);
    expect_texts(ps, 2, nodes, 2, "auth");
    expect_no_secret(&a2);
    ck_assert_uint_eq(a.errors + b.errors, 0);
    wsc_free(x);
    np_free(&a);
    np_free(&b);
    ck_assert_int_eq(srvp_stop(&a2), 0);
    ck_assert_int_eq(srvp_stop(&b2), 0);
    redis_stop(&rd);
}
END_TEST

/* a malformed --redis URL is a usage error: exit 2 with the reason, and
 * nothing is served */
START_TEST(test_bad_redis_url)
{
    static const char *const bad[] = {"http://127.0.0.1:6379",
                                      "redis://",
                                      "redis://h:0",
                                      "redis://h:70000",
                                      "redis://u@h:1",
                                      "redis://h:1/x",
                                      "redis://:@h:1",
                                      "rediss://h:1",
                                      "redis://:hunter2%zz@h:1",
                                      "redis://:hunter2@x@h:1",
                                      "redis://:hunter2/x@h:1",
                                      "redis://u%00:hunter2@h:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "d=$(mktemp -d) && timeout 10 '%s' serve --dev --port 1 --data \"$d\" --redis "
                 "'%s' 2>&1; "
                 "echo \"rc=$?\"; rm -rf \"$d\"",
                 TANDEM_BIN, bad[i]);
        FILE *f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        char out[4096];
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        pclose(f);
        ck_assert_msg(strstr(out, "bad Redis URL") && strstr(out, "rc=2"), "%s: %s", bad[i], out);
        ck_assert_msg(!strstr(out, "hunter2"), "the password is shown: %s", out);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_two_nodes_edit_chat_presence);
    tcase_add_test(tc, test_node_killed_mid_edit);
    tcase_add_test(tc, test_redis_restart_and_outage);
    tcase_add_test(tc, test_late_third_node);
    tcase_add_test(tc, test_chat_gap_skipped);
    tcase_add_test(tc, test_node_cut_off);
    tcase_add_test(tc, test_ot_client_moves_node);
    suite_add_tcase(s, tc);
    TCase *cfg = tcase_create("config");
    tcase_add_test(cfg, test_bad_redis_url);
    tcase_set_timeout(cfg, 120);
    tcase_add_test(cfg, test_redis_auth);
    suite_add_tcase(s, cfg);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
