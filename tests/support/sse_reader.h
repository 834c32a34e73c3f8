/* sse_reader.h - a raw-socket Server-Sent Events reader for the network
 * suites (prefix sse_): one HTTP/1.1 GET on a plain TCP socket to
 * 127.0.0.1, the response headers kept, then the body split into event
 * blocks (`id:`, `event:`, `data:` lines; blocks without an event name, like
 * `retry:`, are skipped). Nothing is parsed beyond that: the tests read the
 * JSON data themselves.
 *
 * Failures are Check assertions (ck_assert), so call these from Check tests.
 * Caps: SSE_BUF_MAX unread body bytes per reader (the buffer is allocated at
 * sse_open, touched only as far as it is used), event data past
 * SSE_DATA_MAX - 1 bytes is truncated. Threads: one thread per reader; no
 * globals.
 */
#ifndef TANDEM_SSE_READER_H
#define TANDEM_SSE_READER_H

#include <stdbool.h>
#include <stddef.h>

#define SSE_BUF_MAX  ((size_t)256 << 10)
#define SSE_DATA_MAX 20000

typedef struct sse_client {
    int fd;            /* -1 once closed */
    int status;        /* HTTP status once the headers arrived (-1: unparsable) */
    bool headers_done; /* the header block was consumed */
    bool eof;          /* the server closed */
    char headers[2048];
    char *buf; /* unread body bytes, NUL-terminated (SSE_BUF_MAX, owned) */
    size_t len;
} sse_client;

typedef struct sse_event {
    char id[48];      /* the `id:` value ("" when none) */
    long long id_num; /* id as a decimal number (-1 when none; "C.S" gives C) */
    char event[64];
    char data[SSE_DATA_MAX];
} sse_event;

/* sse_open - connect to 127.0.0.1:port and send GET `path` with
 * Accept: text/event-stream and extra_headers (NULL or "Name: v\r\n"
 * lines). *c is overwritten; free it with sse_close. */
void sse_open(sse_client *c, int port, const char *path, const char *extra_headers);
/* sse_fill - read what arrives within wait_ms (headers first); false at end
 * of stream or on a read error (c->eof set), true otherwise. */
bool sse_fill(sse_client *c, int wait_ms);
/* sse_take - move one complete event block with an event name out of the
 * buffer into *ev; false when none is complete yet (or the status is not
 * 200). */
bool sse_take(sse_client *c, sse_event *ev);
/* sse_next - the next event within timeout_ms, calling pump(arg) (may be
 * NULL) between reads so the test can service its editors; fails the test
 * on timeout or end of stream. */
void sse_next(sse_client *c, sse_event *ev, int timeout_ms, void (*pump)(void *arg), void *arg);
/* sse_close - close the socket and free the buffer; a no-op the second time. */
void sse_close(sse_client *c);

#endif
