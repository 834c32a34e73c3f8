/* sse_reader.c - see sse_reader.h. */
#define _XOPEN_SOURCE 700
#include "sse_reader.h"

#include "server_proc.h"

#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sse_open(sse_client *c, int port, const char *path, const char *extra_headers)
{
    memset(c, 0, sizeof *c);
    c->buf = malloc(SSE_BUF_MAX);
    ck_assert_ptr_nonnull(c->buf);
    c->buf[0] = '\0';
    c->fd = srvp_connect(port);
    ck_assert_int_ge(c->fd, 0);
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n",
                     path, extra_headers ? extra_headers : "");
    ck_assert_int_lt(n, (int)sizeof req);
    ck_assert_int_eq(write(c->fd, req, (size_t)n), n);
}

bool sse_fill(sse_client *c, int wait_ms)
{
    if (c->eof || c->fd < 0) return false;
    struct pollfd pf = {c->fd, POLLIN, 0};
    if (poll(&pf, 1, wait_ms) <= 0) return true;
    ck_assert_msg(c->len < SSE_BUF_MAX - 1, "SSE reader buffer full (%zu bytes unread)", c->len);
    ssize_t n = read(c->fd, c->buf + c->len, SSE_BUF_MAX - 1 - c->len);
    if (n <= 0) {
        c->eof = true;
        return false;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (!c->headers_done) {
        char *e = strstr(c->buf, "\r\n\r\n");
        if (e) {
            size_t hl = (size_t)(e - c->buf);
            ck_assert_uint_lt(hl, sizeof c->headers);
            memcpy(c->headers, c->buf, hl);
            c->headers[hl] = '\0';
            if (sscanf(c->buf, "HTTP/1.%*d %d", &c->status) != 1) c->status = -1;
            c->headers_done = true;
            memmove(c->buf, e + 4, c->len - hl - 4 + 1);
            c->len -= hl + 4;
        }
    }
    return true;
}

bool sse_take(sse_client *c, sse_event *ev)
{
    for (;;) {
        if (!c->buf || !c->headers_done || c->status != 200) return false;
        char *end = strstr(c->buf, "\n\n");
        if (!end) return false;
        *end = '\0';
        memset(ev, 0, sizeof *ev);
        ev->id_num = -1;
        for (char *line = c->buf; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            if (strncmp(line, "id: ", 4) == 0) {
                snprintf(ev->id, sizeof ev->id, "%s", line + 4);
                ev->id_num = strtoll(line + 4, NULL, 10);
            } else if (strncmp(line, "event: ", 7) == 0) {
                snprintf(ev->event, sizeof ev->event, "%s", line + 7);
            } else if (strncmp(line, "data: ", 6) == 0) {
                snprintf(ev->data, sizeof ev->data, "%s", line + 6);
            }
            line = nl ? nl + 1 : NULL;
        }
        size_t used = (size_t)(end + 2 - c->buf);
        memmove(c->buf, end + 2, c->len - used + 1);
        c->len -= used;
        if (ev->event[0]) return true;
    }
}

void sse_next(sse_client *c, sse_event *ev, int timeout_ms, void (*pump)(void *arg), void *arg)
{
    uint64_t end = srvp_mono_ms() + (uint64_t)timeout_ms;
    while (!sse_take(c, ev)) {
        ck_assert_msg(srvp_mono_ms() < end, "no SSE event in %d ms (have %zu bytes: %.300s)",
                      timeout_ms, c->len, c->buf);
        if (pump) pump(arg);
        ck_assert_msg(sse_fill(c, pump ? 20 : 50), "the stream ended early");
    }
}

void sse_close(sse_client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = 0;
}
