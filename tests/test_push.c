/* test_push.c - Web Push end to end: the real `tandem serve` (support/
 * server_proc) and a push service on 127.0.0.1 (tests/push/push_service.js,
 * node) that verifies every VAPID header with node:crypto (ES256,
 * ieee-p1363, aud, exp, k = the served key) and decrypts every body with npm
 * http_ece. Chat is sent by real sync clients over WebSocket (support/
 * sync_peer). Checked: delivery to a follower who is not connected (title,
 * mention title, body, url, headers), nothing to a connected follower, the
 * sender or another room's follower; removal on 410; retries on 429
 * (Retry-After honoured) and 500, bounded attempts; the per-user cap; bad
 * subscriptions answered 400 with a message and nothing stored; production
 * mode refuses http endpoints and uses the key made by `tandem vapid-keys`. */
#define _DEFAULT_SOURCE /* usleep */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server_proc.h"
#include "sync_peer.h"

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the tandem binary"
#endif
#ifndef PUSH_SVC_DIR
#error "PUSH_SVC_DIR must name the directory of push_service.js (with node_modules)"
#endif

extern char **environ;

/* ---- raw HTTP with a method, a token and a body ---- */

typedef struct resp {
    int status;
    char *body;
} resp;

static resp http(int port, const char *method, const char *path, const char *token,
                 const char *body)
{
    resp r = {0, NULL};
    int fd = srvp_connect(port);
    ck_assert_int_ge(fd, 0);
    size_t bn = body ? strlen(body) : 0;
    char auth[9000] = "";
    if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    char *req = malloc(bn + 10000);
    int n = snprintf(req, 10000,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, auth, bn);
    memcpy(req + n, body ? body : "", bn);
    size_t off = 0, total = (size_t)n + bn;
    while (off < total) {
        ssize_t w = send(fd, req + off, total - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(req);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (len == cap) buf = realloc(buf, (cap *= 2) + 1);
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got <= 0) break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    sscanf(buf, "HTTP/1.1 %d", &r.status);
    char *b = strstr(buf, "\r\n\r\n");
    r.body = strdup(b ? b + 4 : "");
    free(buf);
    return r;
}

static json_t *http_json(int port, const char *method, const char *path, const char *token,
                         const char *body, int want_status)
{
    resp r = http(port, method, path, token, body);
    ck_assert_msg(r.status == want_status, "%s %s: %d (want %d): %s", method, path, r.status,
                  want_status, r.body);
    json_t *v = json_loads(r.body, 0, NULL);
    ck_assert_msg(v != NULL, "%s %s: not JSON: %s", method, path, r.body);
    free(r.body);
    return v;
}

/* ---- the push service ---- */

typedef struct svc {
    pid_t pid;
    int in_fd; /* its stdin: closing it ends the service */
    int port;
} svc;

static void svc_start(svc *v)
{
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = {"node", PUSH_SVC_DIR "/push_service.js", NULL};
    int rc = posix_spawnp(&v->pid, "node", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ck_assert_msg(rc == 0, "cannot start node: %s", strerror(rc));
    close(in[0]);
    close(out[1]);
    v->in_fd = in[1];
    char line[128];
    size_t n = 0;
    while (n + 1 < sizeof line) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n') break;
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    ck_assert_msg(sscanf(line, "{\"port\":%d}", &v->port) == 1, "push service said '%s'", line);
}

static void svc_stop(svc *v)
{
    close(v->in_fd);
    int st;
    kill(v->pid, SIGTERM);
    waitpid(v->pid, &st, 0);
}

static json_t *svc_post(svc *v, const char *path, const char *body)
{
    return http_json(v->port, "POST", path, NULL, body, 200);
}

/* The pushes received so far (a new reference). */
static json_t *svc_log(svc *v)
{
    json_t *o = http_json(v->port, "GET", "/control/log", NULL, NULL, 200);
    json_t *a = json_incref(json_object_get(o, "pushes"));
    json_decref(o);
    return a;
}

/* Pushes to subscription id (all ids: NULL). */
static size_t count_for(json_t *log, const char *id)
{
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(log, i, e)
    {
        if (!id || strcmp(json_string_value(json_object_get(e, "id")), id) == 0) n++;
    }
    return n;
}

/* Wait until subscription id has `want` pushes (10 s); returns the log. */
static json_t *wait_pushes(svc *v, const char *id, size_t want)
{
    uint64_t end = srvp_mono_ms() + 10000;
    for (;;) {
        json_t *log = svc_log(v);
        size_t n = count_for(log, id);
        if (n >= want || srvp_mono_ms() > end) {
            ck_assert_msg(n >= want, "%s: %zu pushes, want %zu", id ? id : "all", n, want);
            return log;
        }
        json_decref(log);
        usleep(50000);
    }
}

/* The k-th push (0-based) to id. */
static json_t *push_at(json_t *log, const char *id, size_t k)
{
    size_t i;
    json_t *e;
    json_array_foreach(log, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "id")), id) == 0 && k-- == 0) return e;
    }
    ck_abort_msg("no push %zu for %s", k, id);
    return NULL;
}

/* Every push was signed and encrypted right. */
static void check_all_valid(json_t *log)
{
    size_t i;
    json_t *e;
    json_array_foreach(log, i, e)
    {
        ck_assert_msg(json_is_true(json_object_get(e, "vapid_ok")), "VAPID refused: %s",
                      json_string_value(json_object_get(e, "vapid_error")));
        ck_assert_msg(json_is_object(json_object_get(e, "payload")), "not decrypted: %s",
                      json_string_value(json_object_get(e, "decrypt_error")));
        ck_assert_str_eq(json_string_value(json_object_get(e, "encoding")), "aes128gcm");
        const char *topic = json_string_value(json_object_get(e, "topic"));
        ck_assert_ptr_nonnull(topic);
        ck_assert_uint_le(strlen(topic), 32);
        ck_assert_uint_eq(strspn(topic, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789-_"),
                          strlen(topic));
        ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "ttl")));
    }
}

/* ---- the server ---- */

typedef struct world {
    srvp s;
    svc v;
    wsc_ctx *x;
} world;

static void world_start(world *w, const char *const *env)
{
    svc_start(&w->v);
    srvp_opts o = {0};
    o.env = env;
    ck_assert_msg(srvp_start_opts(&w->s, TANDEM_BIN, &o), "server did not start");
    json_t *k = http_json(w->s.port, "GET", "/api/push/public-key", NULL, NULL, 200);
    const char *pk = json_string_value(json_object_get(k, "public_key"));
    ck_assert_uint_eq(strlen(pk), 87); /* 65 bytes of base64url */
    char cfg[200];
    snprintf(cfg, sizeof cfg, "{\"vapid_public_key\":\"%s\"}", pk);
    json_decref(svc_post(&w->v, "/control/config", cfg));
    json_decref(k);
    w->x = wsc_new();
}

static void world_stop(world *w)
{
    wsc_free(w->x);
    ck_assert_int_eq(srvp_stop(&w->s), 0);
    svc_stop(&w->v);
}

/* A dev token for user (display name `name`), malloc'd. */
static char *dev_token(world *w, const char *user, const char *name)
{
    char path[200];
    snprintf(path, sizeof path, "/api/dev/token?user=%s&name=%s", user, name);
    json_t *t = http_json(w->s.port, "GET", path, NULL, NULL, 200);
    char *tok = strdup(json_string_value(json_object_get(t, "token")));
    json_decref(t);
    return tok;
}

/* A subscription `id` at the push service, subscribed at the server for
 * `token`'s user to `rooms` (a JSON array text). */
static void subscribe(world *w, const char *id, const char *token, const char *rooms)
{
    char req[64];
    snprintf(req, sizeof req, "{\"id\":\"%s\"}", id);
    json_t *sub = svc_post(&w->v, "/control/sub", req);
    json_object_set_new(sub, "rooms", json_loads(rooms, 0, NULL));
    char *body = json_dumps(sub, JSON_COMPACT);
    json_t *ok = http_json(w->s.port, "POST", "/api/push/subscribe", token, body, 201);
    ck_assert(json_is_true(json_object_get(ok, "subscribed")));
    json_decref(ok);
    free(body);
    json_decref(sub);
}

static void script(world *w, const char *id, const char *statuses, int retry_after)
{
    char req[200];
    snprintf(req, sizeof req, "{\"id\":\"%s\",\"statuses\":%s,\"retry_after\":%d}", id, statuses,
             retry_after);
    json_decref(svc_post(&w->v, "/control/script", req));
}

static size_t subs_of(world *w, const char *token)
{
    json_t *l = http_json(w->s.port, "GET", "/api/push/subscriptions", token, NULL, 200);
    size_t n = json_array_size(json_object_get(l, "subscriptions"));
    json_decref(l);
    return n;
}

/* Send chat `text` from peer p and wait for its ack. */
static void say(world *w, np_peer *p, const char *text)
{
    uint64_t acks = p->chat_acks;
    ck_assert_int_eq(sync_client_chat_send(p->cl, p->ch, text, strlen(text), NULL), TDM_OK);
    uint64_t end = np_mono_ms() + 10000;
    while (p->chat_acks == acks && np_mono_ms() < end) {
        np_pump(p);
        wsc_service(w->x, 10);
    }
    ck_assert_uint_gt(p->chat_acks, acks);
}

/* Keep peers serviced for ms. */
static void settle(world *w, np_peer **ps, size_t n, int ms)
{
    uint64_t end = np_mono_ms() + (uint64_t)ms;
    while (np_mono_ms() < end) {
        for (size_t i = 0; i < n; i++) np_pump(ps[i]);
        wsc_service(w->x, 10);
    }
}

static void wait_synced(world *w, np_peer **ps, size_t n)
{
    np_group g = {ps, n};
    uint64_t end = np_mono_ms() + 10000;
    while (!np_all_synced(&g) && np_mono_ms() < end) wsc_service(w->x, 10);
    ck_assert(np_all_synced(&g));
}

static uint64_t metric(world *w, const char *name)
{
    srvp_http r = srvp_get(w->s.port, "/metrics");
    ck_assert_int_eq(r.status, 200);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(r.body, key);
    ck_assert_msg(p != NULL, "no metric %s", name);
    uint64_t v = strtoull(p + strlen(key), NULL, 10);
    srvp_http_free(&r);
    return v;
}

static const char *const FAST_ENV[] = {"TANDEM_PUSH_BACKOFF_MS=100", NULL};

/* ---- tests ---- */

START_TEST(test_delivery_to_followers_not_connected)
{
    world w;
    world_start(&w, FAST_ENV);
    char *alice = dev_token(&w, "alice", "Alice"), *bob = dev_token(&w, "bob", "Bob");
    char *carol = dev_token(&w, "carol", "Carol"), *dave = dev_token(&w, "dave", "Dave");
    subscribe(&w, "bob", bob, "[\"room1\"]");
    subscribe(&w, "carol", carol, "[\"room1\"]"); /* connected below: skipped */
    subscribe(&w, "dave", dave, "[\"other\"]");   /* another room */
    subscribe(&w, "alice", alice, "[\"room1\"]"); /* the sender herself */
    ck_assert_uint_eq(subs_of(&w, bob), 1);
    np_peer a, c;
    np_open(&a, w.x, w.s.port, "room1", 101, false, alice);
    np_open(&c, w.x, w.s.port, "room1", 102, false, carol);
    np_peer *ps[] = {&a, &c};
    wait_synced(&w, ps, 2);
    say(&w, &a, "hello @bob, look at this");
    json_t *log = wait_pushes(&w.v, "bob", 1);
    json_t *p = json_object_get(push_at(log, "bob", 0), "payload");
    ck_assert_str_eq(json_string_value(json_object_get(p, "title")),
                     "Alice mentioned you in room1");
    ck_assert_str_eq(json_string_value(json_object_get(p, "body")), "hello @bob, look at this");
    ck_assert_str_eq(json_string_value(json_object_get(p, "url")), "/?room=room1");
    ck_assert_str_eq(json_string_value(json_object_get(p, "room")), "room1");
    ck_assert_str_eq(json_string_value(json_object_get(push_at(log, "bob", 0), "urgency")), "high");
    json_decref(log);
    say(&w, &a, "no mention here");
    log = wait_pushes(&w.v, "bob", 2);
    p = json_object_get(push_at(log, "bob", 1), "payload");
    ck_assert_str_eq(json_string_value(json_object_get(p, "title")), "Alice in room1");
    ck_assert_str_eq(json_string_value(json_object_get(push_at(log, "bob", 1), "urgency")),
                     "normal");
    json_decref(log);
    settle(&w, ps, 2, 600); /* nothing else may arrive */
    log = svc_log(&w.v);
    ck_assert_uint_eq(count_for(log, NULL), 2);
    ck_assert_uint_eq(count_for(log, "carol"), 0);
    ck_assert_uint_eq(count_for(log, "dave"), 0);
    ck_assert_uint_eq(count_for(log, "alice"), 0);
    check_all_valid(log);
    json_decref(log);
    ck_assert_uint_eq(metric(&w, "tandem_push_sent_total"), 2);
    ck_assert_uint_eq(metric(&w, "tandem_push_skipped_total"), 4); /* carol and alice, twice */
    /* carol leaves: the next message reaches her too. */
    np_close(&c);
    settle(&w, ps, 1, 300);
    say(&w, &a, "third");
    log = wait_pushes(&w.v, "carol", 1);
    json_decref(log);
    log = wait_pushes(&w.v, "bob", 3);
    check_all_valid(log);
    json_decref(log);
    np_free(&a);
    np_free(&c);
    free(alice), free(bob), free(carol), free(dave);
    world_stop(&w);
}
END_TEST

START_TEST(test_gone_subscription_removed)
{
    world w;
    world_start(&w, FAST_ENV);
    char *alice = dev_token(&w, "alice", "Alice"), *bob = dev_token(&w, "bob", "Bob");
    subscribe(&w, "bob", bob, "[\"r\"]");
    script(&w, "bob", "[410]", 0);
    np_peer a;
    np_open(&a, w.x, w.s.port, "r", 201, false, alice);
    np_peer *ps[] = {&a};
    wait_synced(&w, ps, 1);
    say(&w, &a, "one");
    json_t *log = wait_pushes(&w.v, "bob", 1);
    ck_assert_int_eq(json_integer_value(json_object_get(push_at(log, "bob", 0), "status")), 410);
    json_decref(log);
    uint64_t end = np_mono_ms() + 5000;
    while (subs_of(&w, bob) != 0 && np_mono_ms() < end) settle(&w, ps, 1, 50);
    ck_assert_uint_eq(subs_of(&w, bob), 0);
    ck_assert_uint_eq(metric(&w, "tandem_push_removed_total"), 1);
    say(&w, &a, "two");
    settle(&w, ps, 1, 600);
    log = svc_log(&w.v);
    ck_assert_uint_eq(count_for(log, "bob"), 1); /* nothing after the removal */
    json_decref(log);
    np_free(&a);
    free(alice), free(bob);
    world_stop(&w);
}
END_TEST

START_TEST(test_retries)
{
    static const char *const env[] = {"TANDEM_PUSH_BACKOFF_MS=100", "TANDEM_PUSH_ATTEMPTS=3", NULL};
    world w;
    world_start(&w, env);
    char *alice = dev_token(&w, "alice", "Alice"), *bob = dev_token(&w, "bob", "Bob");
    char *carol = dev_token(&w, "carol", "Carol");
    subscribe(&w, "bob", bob, "[\"r\"]");
    subscribe(&w, "carol", carol, "[\"r\"]");
    script(&w, "bob", "[429, 500]", 1);             /* then 201 */
    script(&w, "carol", "[500, 503, 500, 500]", 0); /* more failures than attempts */
    np_peer a;
    np_open(&a, w.x, w.s.port, "r", 301, false, alice);
    np_peer *ps[] = {&a};
    wait_synced(&w, ps, 1);
    say(&w, &a, "retry me");
    json_t *log = wait_pushes(&w.v, "bob", 3);
    json_t *p0 = push_at(log, "bob", 0), *p1 = push_at(log, "bob", 1), *p2 = push_at(log, "bob", 2);
    ck_assert_int_eq(json_integer_value(json_object_get(p0, "status")), 429);
    ck_assert_int_eq(json_integer_value(json_object_get(p1, "status")), 500);
    ck_assert_int_eq(json_integer_value(json_object_get(p2, "status")), 201);
    /* Retry-After: 1 was honoured (the backoff alone would be 100 ms). */
    ck_assert_int_ge(json_integer_value(json_object_get(p1, "at_ms")) -
                         json_integer_value(json_object_get(p0, "at_ms")),
                     950);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(p2, "payload"), "body")),
                     "retry me");
    json_decref(log);
    log = wait_pushes(&w.v, "carol", 3);
    json_decref(log);
    settle(&w, ps, 1, 800);
    log = svc_log(&w.v);
    ck_assert_uint_eq(count_for(log, "carol"), 3); /* TANDEM_PUSH_ATTEMPTS=3, then given up */
    ck_assert_uint_eq(count_for(log, "bob"), 3);
    check_all_valid(log);
    json_decref(log);
    ck_assert_uint_eq(metric(&w, "tandem_push_sent_total"), 1);
    ck_assert_uint_eq(metric(&w, "tandem_push_retried_total"), 4);
    ck_assert_uint_eq(metric(&w, "tandem_push_failed_total"), 1);
    ck_assert_uint_eq(subs_of(&w, carol), 1); /* 5xx never removes */
    np_free(&a);
    free(alice), free(bob), free(carol);
    world_stop(&w);
}
END_TEST

START_TEST(test_per_user_cap)
{
    static const char *const env[] = {"TANDEM_PUSH_BACKOFF_MS=100", "TANDEM_PUSH_USER_RATE=2",
                                      NULL};
    world w;
    world_start(&w, env);
    char *alice = dev_token(&w, "alice", "Alice"), *bob = dev_token(&w, "bob", "Bob");
    subscribe(&w, "bob", bob, "[\"busy\"]");
    np_peer a;
    np_open(&a, w.x, w.s.port, "busy", 401, false, alice);
    np_peer *ps[] = {&a};
    wait_synced(&w, ps, 1);
    const int N = 8;
    for (int i = 0; i < N; i++) {
        char t[32];
        snprintf(t, sizeof t, "message %d", i);
        say(&w, &a, t);
    }
    settle(&w, ps, 1, 1000);
    json_t *log = svc_log(&w.v);
    size_t got = count_for(log, "bob");
    ck_assert_uint_ge(got, 1);
    ck_assert_uint_le(got, 2); /* at most 2 per minute */
    check_all_valid(log);
    json_decref(log);
    /* Every message was either sent, merged into a queued one or held back. */
    uint64_t sent = metric(&w, "tandem_push_sent_total");
    uint64_t merged = metric(&w, "tandem_push_coalesced_total");
    uint64_t capped = metric(&w, "tandem_push_capped_total");
    ck_assert_uint_eq(sent, got);
    ck_assert_uint_eq(sent + merged + capped, (uint64_t)N);
    ck_assert_uint_ge(merged + capped, (uint64_t)N - 2);
    ck_assert_uint_eq(metric(&w, "tandem_push_failed_total"), 0);
    np_free(&a);
    free(alice), free(bob);
    world_stop(&w);
}
END_TEST

/* Retry-After as an HTTP-date: honoured (bounded). bob: 429 with a date 2 s
 * ahead, then 201: the retry waits for the date, not the 100 ms backoff.
 * carol: 429 with a date an hour ahead (past the 300 s bound): given up at
 * once. */
START_TEST(test_retry_after_date)
{
    world w;
    world_start(&w, FAST_ENV);
    char *alice = dev_token(&w, "alice", "Alice"), *bob = dev_token(&w, "bob", "Bob");
    char *carol = dev_token(&w, "carol", "Carol");
    subscribe(&w, "bob", bob, "[\"d\"]");
    subscribe(&w, "carol", carol, "[\"d\"]");
    json_decref(svc_post(&w.v, "/control/script",
                         "{\"id\":\"bob\",\"statuses\":[429],\"retry_after_date\":2}"));
    json_decref(svc_post(&w.v, "/control/script",
                         "{\"id\":\"carol\",\"statuses\":[429,429],\"retry_after_date\":3600}"));
    np_peer a;
    np_open(&a, w.x, w.s.port, "d", 351, false, alice);
    np_peer *ps[] = {&a};
    wait_synced(&w, ps, 1);
    say(&w, &a, "after the date");
    json_t *log = wait_pushes(&w.v, "bob", 2);
    json_t *p0 = push_at(log, "bob", 0), *p1 = push_at(log, "bob", 1);
    ck_assert_int_eq(json_integer_value(json_object_get(p0, "status")), 429);
    const char *ra = json_string_value(json_object_get(p0, "retry_after"));
    ck_assert_msg(ra && strstr(ra, " GMT"), "not an HTTP-date: %s", ra ? ra : "(none)");
    ck_assert_int_eq(json_integer_value(json_object_get(p1, "status")), 201);
    /* the date is whole seconds: 1..2 s after the first try, not 100 ms */
    ck_assert_int_ge(json_integer_value(json_object_get(p1, "at_ms")) -
                         json_integer_value(json_object_get(p0, "at_ms")),
                     900);
    json_decref(log);
    settle(&w, ps, 1, 500);
    log = svc_log(&w.v);
    ck_assert_uint_eq(count_for(log, "carol"), 1); /* an hour is past the bound: given up */
    check_all_valid(log);
    json_decref(log);
    ck_assert_uint_eq(metric(&w, "tandem_push_sent_total"), 1);
    ck_assert_uint_eq(metric(&w, "tandem_push_retried_total"), 1);
    ck_assert_uint_eq(metric(&w, "tandem_push_failed_total"), 1);
    np_free(&a);
    free(alice), free(bob), free(carol);
    world_stop(&w);
}
END_TEST

/* Messages held back by the cap are announced when the window reopens: rate
 * 2 per 3 s window, 6 messages (each sent after the previous push went
 * out): 2 notifications, 4 held, then one "4 more messages in busy" when
 * the window reopens, and nothing more after it. */
START_TEST(test_cap_flush)
{
    static const char *const env[] = {"TANDEM_PUSH_BACKOFF_MS=100", "TANDEM_PUSH_USER_RATE=2",
                                      "TANDEM_PUSH_USER_WINDOW_MS=3000", NULL};
    world w;
    world_start(&w, env);
    char *alice = dev_token(&w, "alice", "Alice"), *bob = dev_token(&w, "bob", "Bob");
    subscribe(&w, "bob", bob, "[\"busy\"]");
    np_peer a;
    np_open(&a, w.x, w.s.port, "busy", 451, false, alice);
    np_peer *ps[] = {&a};
    wait_synced(&w, ps, 1);
    const int N = 6;
    for (int i = 0; i < N; i++) {
        char t[32];
        snprintf(t, sizeof t, "message %d", i);
        say(&w, &a, t);
        settle(&w, ps, 1, 100);
    }
    /* every message decided and nothing queued (the worker is asynchronous) */
    uint64_t sent, merged, capped, end = np_mono_ms() + 10000;
    for (;;) {
        sent = metric(&w, "tandem_push_sent_total");
        merged = metric(&w, "tandem_push_coalesced_total");
        capped = metric(&w, "tandem_push_capped_total");
        if ((sent + merged + capped >= (uint64_t)N && metric(&w, "tandem_push_queued") == 0) ||
            np_mono_ms() > end)
            break;
        settle(&w, ps, 1, 20);
    }
    ck_assert_uint_le(sent, 2);
    ck_assert_uint_eq(sent + merged + capped, (uint64_t)N);
    ck_assert_uint_ge(capped, 1);
    json_t *log = wait_pushes(&w.v, "bob", (size_t)sent + 1); /* the flush */
    json_t *f = push_at(log, "bob", (size_t)sent);
    json_t *pl = json_object_get(f, "payload");
    ck_assert_int_eq(json_integer_value(json_object_get(f, "status")), 201);
    ck_assert_int_eq(json_integer_value(json_object_get(pl, "more")), (json_int_t)capped);
    char title[64];
    snprintf(title, sizeof title, "%u more messages in busy", (unsigned)capped);
    ck_assert_str_eq(json_string_value(json_object_get(pl, "title")), title);
    ck_assert_str_eq(json_string_value(json_object_get(pl, "room")), "busy");
    ck_assert_str_eq(json_string_value(json_object_get(pl, "url")), "/?room=busy");
    ck_assert(json_is_false(json_object_get(pl, "mention")));
    /* the held messages were told once: the first push after the window
     * is at least a window after the first one */
    ck_assert_int_ge(json_integer_value(json_object_get(f, "at_ms")) -
                         json_integer_value(json_object_get(push_at(log, "bob", 0), "at_ms")),
                     2900);
    json_decref(log);
    settle(&w, ps, 1, 3500); /* another window: nothing more to tell */
    log = svc_log(&w.v);
    ck_assert_uint_eq(count_for(log, "bob"), (size_t)sent + 1);
    check_all_valid(log);
    json_decref(log);
    ck_assert_uint_eq(metric(&w, "tandem_push_sent_total"), sent + 1);
    ck_assert_uint_eq(metric(&w, "tandem_push_failed_total"), 0);
    np_free(&a);
    free(alice), free(bob);
    world_stop(&w);
}
END_TEST

/* POST body and the error message it must get. */
static void refused(world *w, const char *token, const char *body, int status, const char *msg)
{
    resp r = http(w->s.port, "POST", "/api/push/subscribe", token, body);
    ck_assert_msg(r.status == status, "%d for %.120s: %s", r.status, body, r.body);
    json_t *v = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(v);
    const char *m = json_string_value(json_object_get(v, "message"));
    ck_assert_msg(m && strstr(m, msg), "message '%s' lacks '%s'", m ? m : "(none)", msg);
    json_decref(v);
    free(r.body);
}

START_TEST(test_bad_subscriptions)
{
    world w;
    world_start(&w, FAST_ENV);
    char *bob = dev_token(&w, "bob", "Bob");
    json_t *sub = svc_post(&w.v, "/control/sub", "{\"id\":\"x\"}");
    const char *ep = json_string_value(json_object_get(sub, "endpoint"));
    json_t *keys = json_object_get(sub, "keys");
    const char *pk = json_string_value(json_object_get(keys, "p256dh"));
    const char *au = json_string_value(json_object_get(keys, "auth"));
    char body[8192];
#define SUB(E, P, A, R)                                                                            \
    snprintf(body, sizeof body,                                                                    \
             "{\"endpoint\":\"%s\",\"keys\":{\"p256dh\":\"%s\",\"auth\":\"%s\"}"                   \
             ",\"rooms\":%s}",                                                                     \
             E, P, A, R)
    refused(&w, bob, "{\"endpoint\":", 400, "malformed JSON");
    refused(&w, bob, "[1,2]", 400, "JSON object");
    refused(&w, bob, "{\"keys\":{}}", 400, "endpoint must be a string");
    SUB("ftp://127.0.0.1/x", pk, au, "[\"r\"]");
    refused(&w, bob, body, 400, "https");
    SUB("http://10.0.0.1/x", pk, au, "[\"r\"]"); /* http only for 127.0.0.1 */
    refused(&w, bob, body, 400, "https");
    SUB("https://10.0.0.1/x", pk, au, "[\"r\"]"); /* no IP literals */
    refused(&w, bob, body, 400, "DNS name");
    SUB("https://[::1]:443/x", pk, au, "[\"r\"]");
    refused(&w, bob, body, 400, "DNS name");
    SUB("https://localhost/x", pk, au, "[\"r\"]");
    refused(&w, bob, body, 400, "DNS name");
    char longep[2100];
    memset(longep, 'a', sizeof longep);
    memcpy(longep, "https://h/", 10);
    longep[sizeof longep - 1] = '\0';
    SUB(longep, pk, au, "[\"r\"]");
    refused(&w, bob, body, 400, "too long");
    char shortpk[100];
    snprintf(shortpk, sizeof shortpk, "%.84s", pk); /* 63 bytes */
    SUB(ep, shortpk, au, "[\"r\"]");
    refused(&w, bob, body, 400, "p256dh");
    char offcurve[100];
    snprintf(offcurve, sizeof offcurve, "%s", pk);
    offcurve[60] = offcurve[60] == 'A' ? 'B' : 'A'; /* y no longer fits x */
    SUB(ep, offcurve, au, "[\"r\"]");
    refused(&w, bob, body, 400, "p256dh");
    SUB(ep, pk, "AAAAAAAAAAAAAAAAAAAA", "[\"r\"]"); /* 15 bytes */
    refused(&w, bob, body, 400, "auth");
    SUB(ep, pk, "not*base64url*at*all", "[\"r\"]");
    refused(&w, bob, body, 400, "auth");
    SUB(ep, pk, au, "[]");
    refused(&w, bob, body, 400, "rooms");
    SUB(ep, pk, au, "[7]");
    refused(&w, bob, body, 400, "rooms");
    SUB(ep, pk, au, "\"r\"");
    refused(&w, bob, body, 400, "rooms");
    char *huge = malloc(20000);
    memset(huge, ' ', 19999);
    huge[0] = '{', huge[19998] = '}', huge[19999] = '\0';
    refused(&w, bob, huge, 413, "16 KiB");
    free(huge);
    refused(&w, "not-a-token", "{}", 401, "token");
    /* Nothing was stored. */
    ck_assert_uint_eq(subs_of(&w, bob), 0);
    resp r = http(w.s.port, "POST", "/api/push/unsubscribe", bob, "{\"endpoint\":\"https://h/x\"}");
    ck_assert_int_eq(r.status, 404);
    free(r.body);
    r = http(w.s.port, "GET", "/api/push/subscribe", bob, NULL);
    ck_assert_int_eq(r.status, 405);
    free(r.body);
    r = http(w.s.port, "POST", "/api/rooms", bob, "{}");
    ck_assert_int_eq(r.status, 405);
    free(r.body);
    /* The good one is stored, shown and removed. */
    SUB(ep, pk, au, "[\"r\", \"r\", \"s\"]");
    json_decref(http_json(w.s.port, "POST", "/api/push/subscribe", bob, body, 201));
    json_t *l = http_json(w.s.port, "GET", "/api/push/subscriptions", bob, NULL, 200);
    json_t *one = json_array_get(json_object_get(l, "subscriptions"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(one, "endpoint")), ep);
    ck_assert_uint_eq(json_array_size(json_object_get(one, "rooms")), 2); /* deduplicated */
    json_decref(l);
    snprintf(body, sizeof body, "{\"endpoint\":\"%s\"}", ep);
    json_decref(http_json(w.s.port, "POST", "/api/push/unsubscribe", bob, body, 200));
    ck_assert_uint_eq(subs_of(&w, bob), 0);
#undef SUB
    json_decref(sub);
    free(bob);
    world_stop(&w);
}
END_TEST

/* Run `cmd`, return its stdout (malloc'd) and exit status. */
static char *run(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    char *out = calloc(1, 8192);
    size_t n = fread(out, 1, 8191, f);
    out[n] = '\0';
    *status = pclose(f);
    return out;
}

START_TEST(test_production_mode)
{
    char dir[] = "/tmp/tandem-push-prod-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char cmd[512], keyfile[256], env_key[300];
    snprintf(keyfile, sizeof keyfile, "%s/vapid.pem", dir);
    snprintf(cmd, sizeof cmd, "%s vapid-keys --out %s", TANDEM_BIN, keyfile);
    int st;
    char *out = run(cmd, &st);
    ck_assert_int_eq(st, 0);
    char pub[100] = "";
    ck_assert_int_eq(sscanf(out, "public_key: %99s", pub), 1);
    free(out);
    snprintf(env_key, sizeof env_key, "TANDEM_VAPID_KEY_FILE=%s", keyfile);
    static const char secret[] = "push-test-secret-0123456789abcdef0123456789";
    const char *env[] = {env_key, NULL};
    srvp s;
    srvp_opts o = {0};
    o.secret = secret;
    o.env = env;
    ck_assert(srvp_start_opts(&s, TANDEM_BIN, &o));
    json_t *k = http_json(s.port, "GET", "/api/push/public-key", NULL, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(k, "public_key")), pub);
    json_decref(k);
    snprintf(cmd, sizeof cmd, "TANDEM_JWT_SECRET=%s %s token --user bob --rooms 'r*:r'", secret,
             TANDEM_BIN);
    char *tok = run(cmd, &st);
    ck_assert_int_eq(st, 0);
    tok[strcspn(tok, "\r\n")] = '\0';
    /* Keys from a real browser-shaped subscription (RFC 8291's receiver). */
    static const char pk[] =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    char body[1024];
    snprintf(body, sizeof body,
             "{\"endpoint\":\"http://127.0.0.1:9/x\",\"keys\":{\"p256dh\":\"%s\",\"auth\":"
             "\"BTBZMqHH6r4Tts7J_aSIgg\"},\"rooms\":[\"r1\"]}",
             pk);
    resp r = http(s.port, "POST", "/api/push/subscribe", tok, body);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "must be an https URL"));
    free(r.body);
    r = http(s.port, "POST", "/api/push/subscribe", NULL, body); /* no token */
    ck_assert_int_eq(r.status, 401);
    free(r.body);
    snprintf(body, sizeof body,
             "{\"endpoint\":\"https://push.example.net/x\",\"keys\":{\"p256dh\":\"%s\",\"auth\":"
             "\"BTBZMqHH6r4Tts7J_aSIgg\"},\"rooms\":[\"secret-room\"]}",
             pk);
    r = http(s.port, "POST", "/api/push/subscribe", tok, body); /* no read access */
    ck_assert_int_eq(r.status, 403);
    free(r.body);
    snprintf(body, sizeof body,
             "{\"endpoint\":\"https://push.example.net/x\",\"keys\":{\"p256dh\":\"%s\",\"auth\":"
             "\"BTBZMqHH6r4Tts7J_aSIgg\"},\"rooms\":[\"r1\"],\"expirationTime\":null}",
             pk);
    json_decref(http_json(s.port, "POST", "/api/push/subscribe", tok, body, 201));
    json_t *l = http_json(s.port, "GET", "/api/push/subscriptions", tok, NULL, 200);
    json_t *subs = json_object_get(l, "subscriptions");
    ck_assert_uint_eq(json_array_size(subs), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(subs, 0), "endpoint")),
                     "https://push.example.net/x");
    json_decref(l);
    free(tok);
    ck_assert_int_eq(srvp_stop(&s), 0);
    unlink(keyfile);
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("push");
    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_delivery_to_followers_not_connected);
    tcase_add_test(tc, test_gone_subscription_removed);
    tcase_add_test(tc, test_retries);
    tcase_add_test(tc, test_per_user_cap);
    tcase_add_test(tc, test_retry_after_date);
    tcase_add_test(tc, test_cap_flush);
    tcase_add_test(tc, test_bad_subscriptions);
    tcase_add_test(tc, test_production_mode);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
