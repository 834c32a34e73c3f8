/* test_server_sse.c - Server-Sent Events and /metrics of the real
 * `tandem serve --dev` binary (TANDEM_BIN, started by support/server_proc),
 * read with raw TCP clients (support/sse_reader): `connected` then `stats-update` events with
 * increasing ids, Last-Event-ID, the maximum lifetime, the stream cap (503),
 * /metrics in the Prometheus text format, and the libwebsockets 4.1.6
 * SSE-disconnect spin: 256 clients connect and vanish, then every stream is
 * closed and the server is idle (CPU from /proc/PID/stat). Everything waits by
 * polling with deadlines; the only fixed wait is the CPU sampling window. */
#define _XOPEN_SOURCE 700

#include "server_proc.h"
#include "sse_reader.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

#define SSE_CAP 256 /* SRV_SSE_MAX */

/* ---- /metrics -------------------------------------------------------------------- */

/* The value of metric `name` (fails when missing). Checks every sample line
 * is `name value` with a Prometheus metric name and a number. */
static double metric(int port, const char *name)
{
    srvp_http r = srvp_get(port, "/metrics");
    ck_assert_int_eq(r.status, 200);
    double found = NAN;
    char *save = NULL;
    for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *sp = strchr(line, ' ');
        ck_assert_msg(sp && sp > line, "bad metrics line: %s", line);
        for (char *p = line; p < sp; p++)
            ck_assert_msg((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                              *p == ':' || (p > line && *p >= '0' && *p <= '9'),
                          "bad metric name: %s", line);
        char *endp;
        errno = 0;
        double v = strtod(sp + 1, &endp);
        ck_assert_msg(endp != sp + 1 && *endp == '\0' && errno == 0, "bad value: %s", line);
        if ((size_t)(sp - line) == strlen(name) && strncmp(line, name, strlen(name)) == 0)
            found = v;
    }
    srvp_http_free(&r);
    ck_assert_msg(!isnan(found), "metric %s missing", name);
    return found;
}

/* Wait until metric `name` equals `want`; returns its last value. */
static double wait_metric(int port, const char *name, double want, int timeout_ms)
{
    uint64_t end = srvp_mono_ms() + (uint64_t)timeout_ms;
    double v;
    while ((v = metric(port, name)) != want && srvp_mono_ms() < end) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* poll interval */
    }
    return v;
}

/* ---- fixture ------------------------------------------------------------------------- */

static srvp S;

static void setup(void)
{
    ck_assert_msg(srvp_start(&S, TANDEM_BIN), "could not start the server");
}

static void teardown(void)
{
    ck_assert_int_eq(srvp_stop(&S), 0);
}

/* ---- tests ----------------------------------------------------------------------------- */

START_TEST(test_stats_stream)
{
    sse_client c;
    sse_open(&c, S.port, "/api/stream/stats?interval_ms=250", NULL);
    sse_event ev;
    sse_next(&c, &ev, 5000, NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_ptr_nonnull(srvp_ci_strstr(c.headers, "content-type: text/event-stream"));
    ck_assert_str_eq(ev.event, "connected");
    ck_assert_int_eq(ev.id_num, 1);
    long long last = ev.id_num;
    for (int i = 0; i < 3; i++) {
        sse_next(&c, &ev, 5000, NULL, NULL);
        ck_assert_str_eq(ev.event, "stats-update");
        ck_assert_int_eq(ev.id_num, last + 1);
        last = ev.id_num;
        json_t *v = json_loads(ev.data, 0, NULL);
        ck_assert_msg(v != NULL, "not JSON: %s", ev.data);
        static const char *keys[] = {"connections",    "rooms",       "updates_per_s",
                                     "messages_per_s", "bytes_per_s", "memory"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            ck_assert_msg(json_is_number(json_object_get(v, keys[k])), "no %s in %s", keys[k],
                          ev.data);
        ck_assert_int_gt(json_integer_value(json_object_get(v, "memory")), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(v, "sse_streams")), 1);
        json_decref(v);
    }
    ck_assert_double_eq(metric(S.port, "tandem_sse_streams"), 1);
    sse_close(&c);
    ck_assert_double_eq(wait_metric(S.port, "tandem_sse_streams", 0, 5000), 0);
}
END_TEST

START_TEST(test_last_event_id)
{
    sse_client c;
    sse_open(&c, S.port, "/api/stream/stats?interval_ms=250", "Last-Event-ID: 1000\r\n");
    sse_event ev;
    sse_next(&c, &ev, 5000, NULL, NULL);
    ck_assert_str_eq(ev.event, "connected");
    ck_assert_int_eq(ev.id_num, 1001);
    sse_next(&c, &ev, 5000, NULL, NULL);
    ck_assert_str_eq(ev.event, "stats-update");
    ck_assert_int_eq(ev.id_num, 1002);
    sse_close(&c);
    /* the query form (EventSource polyfills); a bad header is ignored */
    sse_open(&c, S.port, "/api/stream/stats?lastEventId=41", NULL);
    sse_next(&c, &ev, 5000, NULL, NULL);
    ck_assert_int_eq(ev.id_num, 42);
    sse_close(&c);
    sse_open(&c, S.port, "/api/stream/stats", "Last-Event-ID: banana\r\n");
    sse_next(&c, &ev, 5000, NULL, NULL);
    ck_assert_int_eq(ev.id_num, 1);
    sse_close(&c);
}
END_TEST

START_TEST(test_lifetime)
{
    sse_client c;
    sse_open(&c, S.port, "/api/stream/stats?interval_ms=250&lifetime_ms=1000", NULL);
    sse_event ev;
    sse_next(&c, &ev, 5000, NULL, NULL);
    ck_assert_str_eq(ev.event, "connected");
    uint64_t end = srvp_mono_ms() + 8000;
    while (!c.eof && srvp_mono_ms() < end) {
        sse_fill(&c, 50);
        while (sse_take(&c, &ev)) ck_assert_str_eq(ev.event, "stats-update");
    }
    ck_assert_msg(c.eof, "the server did not end the stream at its lifetime");
    sse_close(&c);
    ck_assert_double_eq(wait_metric(S.port, "tandem_sse_streams", 0, 5000), 0);
    ck_assert_double_ge(metric(S.port, "tandem_sse_expired_total"), 1);
}
END_TEST

START_TEST(test_metrics_format)
{
    srvp_http r = srvp_get(S.port, "/metrics");
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(srvp_ci_strstr(r.headers, "content-type: text/plain; version=0.0.4"), "%s",
                  r.headers);
    ck_assert_ptr_nonnull(strstr(r.body, "# TYPE tandem_connections gauge\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "# TYPE tandem_bytes_in_total counter\n"));
    srvp_http_free(&r);
    static const char *names[] = {"tandem_connections",       "tandem_rooms",
                                  "tandem_sessions",          "tandem_updates_persisted_total",
                                  "tandem_messages_in_total", "tandem_messages_out_total",
                                  "tandem_bytes_in_total",    "tandem_bytes_out_total",
                                  "tandem_sse_streams"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_double_ge(metric(S.port, names[i]), 0);
    ck_assert_double_gt(metric(S.port, "process_resident_memory_bytes"), 0);
    ck_assert_double_ge(metric(S.port, "tandem_http_requests_total"), 3);
}
END_TEST

/* utime + stime of pid in clock ticks. */
static unsigned long long cpu_ticks(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    ck_assert_ptr_nonnull(p);
    unsigned long long ut = 0, st = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    int got = sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    ck_assert_int_eq(got, 2);
    return ut + st;
}

START_TEST(test_clients_vanish_server_idles)
{
    static sse_client c[SSE_CAP];
    /* a long interval: no event is written after `connected`, so only the
     * socket peek can notice that a client left (a write would fail) */
    for (int i = 0; i < SSE_CAP; i++)
        sse_open(&c[i], S.port, "/api/stream/stats?interval_ms=60000", NULL);
    sse_event ev;
    for (int i = 0; i < SSE_CAP; i++) {
        sse_next(&c[i], &ev, 10000, NULL, NULL);
        ck_assert_int_eq(c[i].status, 200);
        ck_assert_str_eq(ev.event, "connected");
    }
    ck_assert_double_eq(metric(S.port, "tandem_sse_streams"), SSE_CAP);
    /* one past the cap is refused */
    srvp_http r = srvp_get(S.port, "/api/stream/stats");
    ck_assert_int_eq(r.status, 503);
    srvp_http_free(&r);
    /* vanish: most close normally, every 4th resets (SO_LINGER 0) */
    for (int i = 0; i < SSE_CAP; i++) {
        if (i % 4 == 0) {
            struct linger lg = {1, 0};
            setsockopt(c[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        sse_close(&c[i]);
    }
    ck_assert_double_eq(wait_metric(S.port, "tandem_sse_streams", 0, 10000), 0);
    ck_assert_double_ge(metric(S.port, "tandem_sse_closed_total"), SSE_CAP);
    /* idle: CPU over a 2 s window (the only fixed wait) */
    long hz = sysconf(_SC_CLK_TCK);
    unsigned long long t0 = cpu_ticks(S.pid);
    uint64_t m0 = srvp_mono_ms();
    struct timespec ts = {2, 0};
    nanosleep(&ts, NULL);
    unsigned long long t1 = cpu_ticks(S.pid);
    uint64_t m1 = srvp_mono_ms();
    double share = (double)(t1 - t0) / (double)hz / ((double)(m1 - m0) / 1000.0);
    ck_assert_msg(share < 0.10, "server busy after SSE clients left: %.0f%% of a core",
                  share * 100);
    /* and it still serves a new stream */
    sse_client d;
    sse_open(&d, S.port, "/api/stream/stats", NULL);
    sse_next(&d, &ev, 5000, NULL, NULL);
    ck_assert_str_eq(ev.event, "connected");
    sse_close(&d);
}
END_TEST

static Suite *sse_suite(void)
{
    Suite *s = suite_create("server_sse");
    TCase *tc = tcase_create("sse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stats_stream);
    tcase_add_test(tc, test_last_event_id);
    tcase_add_test(tc, test_lifetime);
    tcase_add_test(tc, test_metrics_format);
    tcase_add_test(tc, test_clients_vanish_server_idles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
