/* server_proc.h - start and stop the real `tandem serve` binary for a test
 * (a mkdtemp data directory, a random high port retried when taken,
 * readiness = /healthz answering with the child's pid), in dev mode or with
 * an HS256 secret, extra arguments and extra environment; raw HTTP/1.1 over
 * a socket; the child's resident memory. Without Check (functions report
 * failure by their result).
 * The server is forked and exec'd with its own environment (the caller's
 * environ is not modified, except that TANDEM_JWT_SECRET is removed from
 * it), none of the caller's descriptors, and PR_SET_PDEATHSIG: it is killed
 * when the test process dies, so a failed or timed-out test leaves no server
 * behind (its temporary directory stays).
 * Threads: one thread per srvp; start servers from the thread that stays
 * (the death signal follows the creating thread). */
#ifndef TANDEM_SERVER_PROC_H
#define TANDEM_SERVER_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct srvp {
    pid_t pid;
    int port;
    char dir[128], data[192], log[192];
} srvp;

typedef struct srvp_http {
    int status; /* 0: no answer */
    char headers[4096];
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
} srvp_http;

/* How to start the server (srvp_start_opts). Zeroed = srvp_start. */
typedef struct srvp_opts {
    const char *secret;      /* non-NULL: no --dev; TANDEM_JWT_SECRET=secret for the child */
    bool prod;               /* no --dev even without a secret (args name the verifier) */
    const char *const *args; /* extra arguments after the standard ones, NULL-terminated */
    const char *const *env;  /* extra "NAME=VALUE" for the child (override), NULL-terminated */
} srvp_opts;

/* srvp_mono_ms - CLOCK_MONOTONIC in milliseconds. */
uint64_t srvp_mono_ms(void);
/* srvp_start - make a temporary directory and start the server there in dev
 * mode (`bin` is the tandem binary); false when it could not start. */
bool srvp_start(srvp *s, const char *bin);
/* srvp_start_opts - srvp_start with options (o NULL: as srvp_start). The
 * pointers in *o are only read during the call. */
bool srvp_start_opts(srvp *s, const char *bin, const srvp_opts *o);
/* srvp_restart_opts - start the server again on the same directory (data
 * and log) after it exited or was killed (s->pid 0), on the same port when
 * it is free, else another; false when it did not come up. */
bool srvp_restart_opts(srvp *s, const char *bin, const srvp_opts *o);
/* srvp_rss_kb - VmRSS of process `pid` in KiB (from /proc/PID/status); 0
 * when it cannot be read. */
long srvp_rss_kb(pid_t pid);
/* srvp_status_kb - field `field` ("VmRSS", "RssAnon", "RssFile", ...) of
 * /proc/PID/status in KiB; 0 when it cannot be read. RssAnon is the heap and
 * stacks without file mappings (LMDB's map counts in RssFile). */
long srvp_status_kb(pid_t pid, const char *field);
/* srvp_stop - SIGTERM, wait (SIGKILL after 15 s) and remove the directory;
 * returns the exit status (128 + signal when killed), -1 when not running.
 * With SRVP_KEEP_LOG=DIR in the environment the server's log (stdout and
 * stderr, e.g. sanitizer reports) is first copied to DIR/tandem-serve-PORT.log. */
int srvp_stop(srvp *s);
/* srvp_term - SIGTERM and wait (SIGKILL after 15 s) like srvp_stop, but keep
 * the directory (data and log) for srvp_restart_opts; returns the exit
 * status (128 + signal when killed), -1 when not running. */
int srvp_term(srvp *s);
/* srvp_kill9 - SIGKILL the running server and reap it, keeping the directory
 * (for srvp_restart_opts); true when it was running and died of SIGKILL. */
bool srvp_kill9(srvp *s);
/* srvp_connect - a TCP connection to 127.0.0.1:port, or -1. */
int srvp_connect(int port);
/* srvp_get - GET `path` (Connection: close) and read the whole answer. */
srvp_http srvp_get(int port, const char *path);
/* srvp_request - send `req` (a whole HTTP/1.1 request) verbatim and read the
 * answer until the body (Content-Length) is complete, the server closes or
 * 5 s pass; status 0 when it could not connect or send. */
srvp_http srvp_request(int port, const char *req);
void srvp_http_free(srvp_http *r);
/* srvp_ci_strstr - case-insensitive strstr. */
const char *srvp_ci_strstr(const char *hay, const char *needle);

#endif
