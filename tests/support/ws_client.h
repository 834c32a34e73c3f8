/* ws_client.h - a small WebSocket client on the libwebsockets client API for
 * tests (prefix wsc_): connect with or without a subprotocol, send and
 * receive whole binary messages, observe the close code the server sent
 * and whether any data frame followed it.
 *
 * One wsc_ctx is one lws context (CONTEXT_PORT_NO_LISTEN) serviced by the
 * calling thread through wsc_service / wsc_wait; nothing runs in between.
 * Connections belong to their context and stay readable after they close
 * (state, close code) until wsc_free. Caps: received messages up to
 * WSC_MAX_MESSAGE bytes (larger: the connection is dropped), queued
 * outbound bytes up to WSC_MAX_QUEUE.
 * Threads: one thread per context; no globals.
 */
#ifndef TANDEM_WS_CLIENT_H
#define TANDEM_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSC_MAX_MESSAGE ((size_t)256 << 20)
#define WSC_MAX_QUEUE   ((size_t)512 << 20)

typedef struct wsc_ctx wsc_ctx;
typedef struct wsc_conn wsc_conn;

typedef enum wsc_state { WSC_CONNECTING = 0, WSC_OPEN, WSC_CLOSED, WSC_FAILED } wsc_state;

/* wsc_new - a client context; NULL on failure. */
wsc_ctx *wsc_new(void);
/* wsc_free - close every connection and free everything. NULL is a no-op. */
void wsc_free(wsc_ctx *x);

/* wsc_connect - start connecting to ws://host:port/path offering
 * `protocol` in Sec-WebSocket-Protocol (NULL: no header). NULL when the
 * attempt cannot even start. */
wsc_conn *wsc_connect(wsc_ctx *x, const char *host, int port, const char *path,
                      const char *protocol);
/* wsc_state_of - where the connection is. */
wsc_state wsc_state_of(const wsc_conn *c);
/* wsc_close_code - the code of the close frame the server sent (0: none). */
unsigned wsc_close_code(const wsc_conn *c);
/* wsc_data_after_close - data frames that arrived after the server's close
 * frame (RFC 6455 5.5.1: none may follow it; browsers log "Data frame
 * received after close"). They are counted, not delivered. What lws still
 * parses from the socket after the close frame is counted: lws may drop the
 * rest of a read, so 0 is evidence, not proof; a raw socket reader is exact. */
unsigned wsc_data_after_close(const wsc_conn *c);
/* wsc_send - queue one binary message (copied). false when over the cap or
 * the connection is gone. */
bool wsc_send(wsc_conn *c, const void *p, size_t n);
/* wsc_recv - pop the oldest whole message received: *p (malloc'd, caller
 * frees) and *n. false when none is waiting. */
bool wsc_recv(wsc_conn *c, uint8_t **p, size_t *n);
/* wsc_close - close the connection (status 1000) after what is queued. */
void wsc_close(wsc_conn *c);
/* wsc_drop - close at once without a close handshake (like a lost network). */
void wsc_drop(wsc_conn *c);

/* wsc_service - service the context for at most ms milliseconds. */
void wsc_service(wsc_ctx *x, int ms);
/* wsc_wait - service until pred(arg) is true or timeout_ms passed; returns
 * the last value of pred. */
bool wsc_wait(wsc_ctx *x, bool (*pred)(void *arg), void *arg, int timeout_ms);

#endif
