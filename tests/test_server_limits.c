/* test_server_limits.c - the pre-auth limits and the development token
 * endpoint of the real `tandem serve` binary (TANDEM_BIN): the per-IP
 * connection-attempt limit (TANDEM_CONNECT_RATE / TANDEM_CONNECT_LOOPBACK so
 * that 127.0.0.1 is limited) answers HTTP requests and WebSocket upgrades
 * with 429 and Retry-After, and lets attempts through again after that wait;
 * a WebSocket that sends too many messages or bytes before its HELLO is
 * closed with 4004, while one that said HELLO is not; GET /api/dev/token
 * mints a token the server accepts (and a tampered one it refuses) with
 * --dev and is 404 without it. Raw sockets; the only fixed waits are the
 * Retry-After the server asks for. */
#define _XOPEN_SOURCE 700

#include "server_proc.h"

#include "buf.h"
#include "msg.h"

#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

extern char **environ;

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* ---- raw HTTP / WebSocket ------------------------------------------------------ */

/* Send `req` on a new connection and read until the header block is complete
 * (or EOF / 5 s). Returns the fd (still open) and the status in *status. */
static int raw_request(int port, const char *req, int *status, char *hdr, size_t hcap)
{
    int fd = srvp_connect(port);
    ck_assert_int_ge(fd, 0);
    size_t rl = strlen(req);
    ck_assert_int_eq(write(fd, req, rl), (ssize_t)rl);
    size_t len = 0;
    hdr[0] = '\0';
    uint64_t end = srvp_mono_ms() + 5000;
    while (srvp_mono_ms() < end && !strstr(hdr, "\r\n\r\n")) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        /* byte by byte: nothing after the header block is consumed */
        ssize_t n = read(fd, hdr + len, 1);
        if (n <= 0) break;
        len += (size_t)n;
        hdr[len] = '\0';
        if (len + 1 >= hcap) break;
    }
    *status = 0;
    if (sscanf(hdr, "HTTP/1.%*d %d", status) != 1) *status = 0;
    return fd;
}

static int ws_open(int port, int *status, char *hdr, size_t hcap)
{
    static const char req[] =
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tandem.v1\r\n\r\n";
    return raw_request(port, req, status, hdr, hcap);
}

/* One masked client frame (mask 0: the payload goes as is). */
static bool ws_send_frame(int fd, unsigned opcode, bool fin, const uint8_t *p, size_t n)
{
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = (uint8_t)((fin ? 0x80u : 0u) | opcode);
    if (n < 126) {
        h[hl++] = (uint8_t)(0x80u | n);
    } else if (n < 65536) {
        h[hl++] = 0x80u | 126u;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = 0x80u | 127u;
        for (int i = 7; i >= 0; i--) h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    memset(h + hl, 0, 4);
    hl += 4;
    if (write(fd, h, hl) != (ssize_t)hl) return false;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w <= 0) return false;
        off += (size_t)w;
    }
    return true;
}

/* Read server frames until a close frame (its code) or EOF / timeout (0). */
static unsigned ws_wait_close(int fd, int timeout_ms)
{
    static uint8_t buf[1 << 16];
    size_t len = 0;
    uint64_t end = srvp_mono_ms() + (uint64_t)timeout_ms;
    while (srvp_mono_ms() < end) {
        /* parse what is there */
        while (len >= 2) {
            size_t pl = buf[1] & 0x7fu, hl = 2;
            if (pl == 126) {
                if (len < 4) break;
                pl = ((size_t)buf[2] << 8) | buf[3];
                hl = 4;
            } else if (pl == 127) {
                if (len < 10) break;
                pl = 0;
                for (int i = 0; i < 8; i++) pl = (pl << 8) | buf[2 + i];
                hl = 10;
            }
            if (len < hl + pl) break;
            if ((buf[0] & 0x0fu) == 0x8u)
                return pl >= 2 ? ((unsigned)buf[hl] << 8) | buf[hl + 1] : 1005u;
            memmove(buf, buf + hl + pl, len - hl - pl);
            len -= hl + pl;
        }
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        if (len == sizeof buf) return 0;
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n <= 0) return 0;
        len += (size_t)n;
    }
    return 0;
}

/* Is the connection still open after the server had time to answer? Drains. */
static bool ws_still_open(int fd)
{
    uint64_t end = srvp_mono_ms() + 500;
    uint8_t tmp[4096];
    while (srvp_mono_ms() < end) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n <= 0) return false;
        if (n >= 2 && (tmp[0] & 0x0fu) == 0x8u) return false;
    }
    return true;
}

static void send_hello(int fd)
{
    tbuf b;
    tbuf_init(&b, 0);
    syncm h = {0};
    h.type = SYNCM_HELLO;
    h.proto = 1;
    h.client_id = 77;
    ck_assert_int_eq(syncm_encode(&h, &b), TDM_OK);
    ck_assert(ws_send_frame(fd, 2, true, b.data, b.len));
    tbuf_fini(&b);
}

/* ---- the connection limit ------------------------------------------------------ */

static long retry_after(const char *hdr)
{
    const char *ra = srvp_ci_strstr(hdr, "\r\nretry-after:");
    return ra ? strtol(ra + 14, NULL, 10) : -1;
}

START_TEST(test_connect_limit)
{
    setenv("TANDEM_CONNECT_RATE", "2/6", 1);
    setenv("TANDEM_CONNECT_LOOPBACK", "1", 1);
    srvp S;
    bool started = srvp_start(&S, TANDEM_BIN);
    unsetenv("TANDEM_CONNECT_RATE");
    unsetenv("TANDEM_CONNECT_LOOPBACK");
    ck_assert_msg(started, "the server did not start");

    /* a burst of HTTP requests: the bucket (6, less what readiness took) runs out */
    int ok = 0, limited = 0;
    long ra = -1;
    for (int i = 0; i < 12; i++) {
        srvp_http r = srvp_get(S.port, "/healthz");
        if (r.status == 200) ok++;
        if (r.status == 429) {
            limited++;
            ra = retry_after(r.headers);
            ck_assert_ptr_nonnull(strstr(r.body, "rate_limited"));
        }
        srvp_http_free(&r);
    }
    ck_assert_int_ge(ok, 1);
    ck_assert_int_le(ok, 6);
    ck_assert_int_ge(limited, 6);
    ck_assert_int_eq(ra, 1); /* 2 per second: 500 ms, rounded up */

    /* a WebSocket upgrade is refused the same way */
    char hdr[4096];
    int st;
    int fd = ws_open(S.port, &st, hdr, sizeof hdr);
    ck_assert_int_eq(st, 429);
    ck_assert_int_eq(retry_after(hdr), 1);
    close(fd);

    /* after Retry-After an attempt succeeds: HTTP, then an upgrade */
    nap_ms(ra * 1000 + 100);
    srvp_http r = srvp_get(S.port, "/healthz");
    ck_assert_int_eq(r.status, 200);
    srvp_http_free(&r);
    nap_ms(600); /* one more token (500 ms at 2/s) */
    fd = ws_open(S.port, &st, hdr, sizeof hdr);
    ck_assert_int_eq(st, 101);
    close(fd);
    ck_assert_int_eq(srvp_stop(&S), 0);
}
END_TEST

/* ---- before HELLO -------------------------------------------------------------- */

static srvp S;

static void setup(void)
{
    ck_assert_msg(srvp_start(&S, TANDEM_BIN), "the server did not start");
}

static void teardown(void)
{
    ck_assert_int_eq(srvp_stop(&S), 0);
}

START_TEST(test_pre_hello_messages)
{
    char hdr[4096];
    int st;
    int fd = ws_open(S.port, &st, hdr, sizeof hdr);
    ck_assert_int_eq(st, 101);
    static const uint8_t junk[1] = {0xff};
    for (int i = 0; i < 33; i++) ck_assert(ws_send_frame(fd, 2, true, junk, 1));
    ck_assert_uint_eq(ws_wait_close(fd, 5000), 4004);
    close(fd);

    /* 32 junk messages, then HELLO: the caps are gone */
    fd = ws_open(S.port, &st, hdr, sizeof hdr);
    ck_assert_int_eq(st, 101);
    for (int i = 0; i < 31; i++) ck_assert(ws_send_frame(fd, 2, true, junk, 1));
    send_hello(fd);
    for (int i = 0; i < 64; i++) ck_assert(ws_send_frame(fd, 2, true, junk, 1));
    ck_assert(ws_still_open(fd));
    close(fd);
}
END_TEST

START_TEST(test_pre_hello_bytes)
{
    char hdr[4096];
    int st;
    int fd = ws_open(S.port, &st, hdr, sizeof hdr);
    ck_assert_int_eq(st, 101);
    /* one message in 16 KiB fragments: past 64 KiB before HELLO */
    static uint8_t piece[16384];
    ck_assert(ws_send_frame(fd, 2, false, piece, sizeof piece));
    for (int i = 0; i < 4; i++) ck_assert(ws_send_frame(fd, 0, false, piece, sizeof piece));
    ck_assert_uint_eq(ws_wait_close(fd, 5000), 4004);
    close(fd);

    /* after HELLO the same message is fine (under the 1 MiB frame cap) */
    fd = ws_open(S.port, &st, hdr, sizeof hdr);
    ck_assert_int_eq(st, 101);
    send_hello(fd);
    ck_assert(ws_send_frame(fd, 2, false, piece, sizeof piece));
    for (int i = 0; i < 4; i++) ck_assert(ws_send_frame(fd, 0, false, piece, sizeof piece));
    ck_assert(ws_send_frame(fd, 0, true, piece, 1));
    ck_assert(ws_still_open(fd));
    close(fd);
}
END_TEST

/* ---- /api/dev/token ------------------------------------------------------------ */

START_TEST(test_dev_token)
{
    srvp_http r = srvp_get(S.port, "/api/dev/token?user=alice&name=Alice");
    ck_assert_int_eq(r.status, 200);
    json_error_t je;
    json_t *o = json_loads(r.body, 0, &je);
    ck_assert_ptr_nonnull(o);
    const char *tok = json_string_value(json_object_get(o, "token"));
    ck_assert_ptr_nonnull(tok);
    json_int_t exp = json_integer_value(json_object_get(o, "expires_at"));
    long long now = (long long)time(NULL);
    ck_assert(exp >= now + 3500 && exp <= now + 3700);
    char path[9000];
    /* the server verifies a presented token even in dev mode */
    snprintf(path, sizeof path, "/api/rooms?token=%s", tok);
    srvp_http v = srvp_get(S.port, path);
    ck_assert_int_eq(v.status, 200);
    srvp_http_free(&v);
    size_t tl = strlen(tok);
    snprintf(path, sizeof path, "/api/rooms?token=%.*s%c", (int)(tl - 1), tok,
             tok[tl - 1] == 'A' ? 'B' : 'A');
    v = srvp_get(S.port, path);
    ck_assert_int_eq(v.status, 401);
    srvp_http_free(&v);
    json_decref(o);
    srvp_http_free(&r);

    r = srvp_get(S.port, "/api/dev/token");
    ck_assert_int_eq(r.status, 400);
    srvp_http_free(&r);
}
END_TEST

/* A server without --dev (HS256 secret file): the endpoint does not exist. */
START_TEST(test_dev_token_absent)
{
    char dir[] = "/tmp/tandem-lim-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char secret[256], data[256], log[256], port_s[16];
    snprintf(secret, sizeof secret, "%s/secret", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/server.log", dir);
    FILE *f = fopen(secret, "w");
    ck_assert_ptr_nonnull(f);
    fputs("0123456789abcdef0123456789abcdef0123456789\n", f);
    fclose(f);
    unsetenv("TANDEM_JWT_SECRET");
    unsetenv("TANDEM_DEV");
    pid_t pid = 0;
    int port = 0;
    bool ready = false;
    for (int attempt = 0; attempt < 20 && !ready; attempt++) {
        port = 20000 + (int)((srvp_mono_ms() * 7919u + (uint64_t)getpid() * 31u +
                              (uint64_t)attempt * 104729u) %
                             40000u);
        snprintf(port_s, sizeof port_s, "%d", port);
        char *const argv[] = {TANDEM_BIN, "serve", "--host",        "127.0.0.1", "--port", port_s,
                              "--data",   data,    "--secret-file", secret,      NULL};
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        ck_assert_int_eq(posix_spawn(&pid, TANDEM_BIN, &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        char want[48];
        snprintf(want, sizeof want, "\"pid\":%ld", (long)pid);
        uint64_t end = srvp_mono_ms() + 15000;
        while (srvp_mono_ms() < end) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                pid = 0;
                break;
            }
            srvp_http h = srvp_get(port, "/healthz");
            ready = h.status == 200 && h.body && strstr(h.body, want);
            srvp_http_free(&h);
            if (ready) break;
            nap_ms(20); /* poll interval */
        }
        if (!ready && pid) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            pid = 0;
        }
    }
    ck_assert_msg(ready, "the server did not start");
    srvp_http r = srvp_get(port, "/api/dev/token?user=alice");
    ck_assert_int_eq(r.status, 404);
    srvp_http_free(&r);
    kill(pid, SIGTERM);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *limits_suite(void)
{
    Suite *s = suite_create("server_limits");
    TCase *a = tcase_create("connect");
    tcase_set_timeout(a, 30);
    tcase_add_test(a, test_connect_limit);
    tcase_add_test(a, test_dev_token_absent);
    suite_add_tcase(s, a);
    TCase *b = tcase_create("dev");
    tcase_add_checked_fixture(b, setup, teardown);
    tcase_set_timeout(b, 30);
    tcase_add_test(b, test_pre_hello_messages);
    tcase_add_test(b, test_pre_hello_bytes);
    tcase_add_test(b, test_dev_token);
    suite_add_tcase(s, b);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(limits_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
