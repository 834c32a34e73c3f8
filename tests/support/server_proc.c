/* server_proc.c - see server_proc.h. */
#define _XOPEN_SOURCE   700 /* mkdtemp */
#define _DEFAULT_SOURCE     /* O_CLOEXEC with older headers */
#include "server_proc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

uint64_t srvp_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

const char *srvp_ci_strstr(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return hay;
    }
    return NULL;
}

int srvp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void srvp_http_free(srvp_http *r)
{
    free(r->body);
    r->body = NULL;
}

srvp_http srvp_request(int port, const char *req)
{
    srvp_http r;
    memset(&r, 0, sizeof r);
    int fd = srvp_connect(port);
    if (fd < 0) return r;
    size_t rl = strlen(req);
    if (write(fd, req, rl) != (ssize_t)rl) {
        close(fd);
        return r;
    }
    char *buf = NULL;
    size_t len = 0;
    uint64_t end = srvp_mono_ms() + 5000;
    long want = -1;
    char *hdr_end = NULL;
    while (srvp_mono_ms() < end) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        char tmp[8192];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n <= 0) break;
        char *nb = realloc(buf, len + (size_t)n + 1);
        if (!nb) break;
        buf = nb;
        memcpy(buf + len, tmp, (size_t)n);
        len += (size_t)n;
        buf[len] = '\0';
        if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n"))) {
            const char *cl = srvp_ci_strstr(buf, "content-length:");
            if (cl && cl < hdr_end) want = strtol(cl + 15, NULL, 10);
        }
        if (hdr_end && want >= 0) {
            hdr_end = strstr(buf, "\r\n\r\n");
            if ((long)(len - (size_t)(hdr_end + 4 - buf)) >= want) break;
        }
    }
    close(fd);
    if (!buf) return r;
    hdr_end = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1) r.status = 0;
    if (hdr_end) {
        size_t hl = (size_t)(hdr_end - buf);
        if (hl >= sizeof r.headers) hl = sizeof r.headers - 1;
        memcpy(r.headers, buf, hl);
        r.headers[hl] = '\0';
        r.len = len - (size_t)(hdr_end + 4 - buf);
        r.body = malloc(r.len + 1);
        if (r.body) {
            memcpy(r.body, hdr_end + 4, r.len);
            r.body[r.len] = '\0';
        } else {
            r.len = 0;
        }
    }
    free(buf);
    return r;
}

srvp_http srvp_get(int port, const char *path)
{
    char req[2048];
    int rl = snprintf(req, sizeof req,
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (rl <= 0 || (size_t)rl >= sizeof req) {
        srvp_http r;
        memset(&r, 0, sizeof r);
        return r;
    }
    return srvp_request(port, req);
}

#define SRVP_MAX_ARGS 64
#define SRVP_MAX_ENV  1024

/* Does environment entry e set the variable that "NAME=..." entry x sets? */
static bool same_name(const char *e, const char *x)
{
    const char *eq = strchr(x, '=');
    size_t n = eq ? (size_t)(eq - x) : strlen(x);
    return strncmp(e, x, n) == 0 && e[n] == '=';
}

static bool spawn_server(srvp *s, const char *bin, const srvp_opts *o)
{
    char port[16], secret[512];
    snprintf(port, sizeof port, "%d", s->port);
    const char *argv[SRVP_MAX_ARGS + 12];
    size_t na = 0;
    const char *std[] = {bin, "serve", "--host", "127.0.0.1", "--port", port, "--data", s->data};
    for (size_t i = 0; i < sizeof std / sizeof std[0]; i++) argv[na++] = std[i];
    if (!o->secret && !o->prod) argv[na++] = "--dev";
    for (size_t i = 0; o->args && o->args[i]; i++) {
        if (i >= SRVP_MAX_ARGS) return false;
        argv[na++] = o->args[i];
    }
    argv[na] = NULL;
    /* the child's environment: ours without TANDEM_JWT_SECRET and without
     * what o->env overrides, then o->env and the secret */
    unsetenv("TANDEM_JWT_SECRET");
    const char *envp[SRVP_MAX_ENV + 1];
    size_t ne = 0;
    for (char **e = environ; *e; e++) {
        bool over = false;
        for (size_t i = 0; o->env && o->env[i] && !over; i++) over = same_name(*e, o->env[i]);
        if (over) continue;
        if (ne >= SRVP_MAX_ENV - 64) return false;
        envp[ne++] = *e;
    }
    for (size_t i = 0; o->env && o->env[i]; i++) {
        if (ne >= SRVP_MAX_ENV - 1) return false;
        envp[ne++] = o->env[i];
    }
    if (o->secret) {
        int n = snprintf(secret, sizeof secret, "TANDEM_JWT_SECRET=%s", o->secret);
        if (n < 0 || (size_t)n >= sizeof secret) return false;
        envp[ne++] = secret;
    }
    envp[ne] = NULL;
    /* fork + exec rather than posix_spawn: the child asks for SIGKILL when
     * the test process dies (a failed assertion _exits, a Check timeout
     * kills it: no server outlives its test), and closes every descriptor
     * the test holds (its sockets would otherwise stay open in the server) */
    pid_t parent = getpid();
    int log = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || nul < 0) {
        if (log >= 0) close(log);
        if (nul >= 0) close(nul);
        return false;
    }
    struct rlimit rl;
    int maxfd =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
    pid_t pid = fork();
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
        if (dup2(nul, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0) _exit(127);
        for (int fd = 3; fd < maxfd; fd++) close(fd);
        execve(bin, (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    close(log);
    close(nul);
    if (pid < 0) return false;
    s->pid = pid;
    return true;
}

/* Is /healthz answered by our child? false when it exited or did not answer in time. */
static bool wait_ready(srvp *s)
{
    uint64_t end = srvp_mono_ms() + 15000;
    char want[48];
    snprintf(want, sizeof want, "\"pid\":%ld", (long)s->pid);
    while (srvp_mono_ms() < end) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return false;
        }
        srvp_http r = srvp_get(s->port, "/healthz");
        bool ours = r.status == 200 && r.body && strstr(r.body, want);
        srvp_http_free(&r);
        if (ours) return true;
        nap_ms(20); /* poll interval */
    }
    return false;
}

bool srvp_start(srvp *s, const char *bin)
{
    return srvp_start_opts(s, bin, NULL);
}

bool srvp_start_opts(srvp *s, const char *bin, const srvp_opts *o)
{
    static const srvp_opts dev = {0};
    if (!o) o = &dev;
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/tandem-srvp-XXXXXX");
    if (!mkdtemp(s->dir)) return false;
    snprintf(s->data, sizeof s->data, "%s/data", s->dir);
    snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int attempt = 0; attempt < 20; attempt++) {
        s->port = 20000 + (int)(((uint64_t)ts.tv_nsec * 7919u + (uint64_t)getpid() * 31u +
                                 (uint64_t)attempt * 104729u) %
                                40000u);
        if (!spawn_server(s, bin, o)) return false;
        if (wait_ready(s)) return true;
        if (s->pid) { /* another process answers on this port */
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
    }
    return false;
}

bool srvp_restart_opts(srvp *s, const char *bin, const srvp_opts *o)
{
    static const srvp_opts dev = {0};
    if (!o) o = &dev;
    if (s->pid || !s->dir[0]) return false;
    for (int attempt = 0; attempt < 20; attempt++) {
        if (attempt > 0)
            s->port = 20000 + (int)((srvp_mono_ms() * 7919u + (uint64_t)attempt) % 40000u);
        if (!spawn_server(s, bin, o)) return false;
        if (wait_ready(s)) return true;
        if (s->pid) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
        }
    }
    return false;
}

int srvp_term(srvp *s)
{
    if (!s->pid) return -1;
    kill(s->pid, SIGTERM);
    uint64_t end = srvp_mono_ms() + 15000;
    int st = 0;
    while (waitpid(s->pid, &st, WNOHANG) == 0) {
        if (srvp_mono_ms() > end) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            break;
        }
        nap_ms(10);
    }
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

bool srvp_kill9(srvp *s)
{
    if (s->pid <= 0 || kill(s->pid, SIGKILL) != 0) return false;
    int st = 0;
    pid_t got = waitpid(s->pid, &st, 0);
    bool ok = got == s->pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    if (got == s->pid) s->pid = 0;
    return ok;
}

int srvp_stop(srvp *s)
{
    int rc = srvp_term(s);
    const char *keep = getenv("SRVP_KEEP_LOG"); /* a directory to copy the server's log to */
    if (s->dir[0] && keep && *keep) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/tandem-serve-%d.log'", s->log, keep, s->port);
        if (system(cmd) != 0) rc = rc ? rc : -2;
    }
    if (s->dir[0]) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0) rc = rc ? rc : -2;
        s->dir[0] = '\0';
    }
    return rc;
}

long srvp_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = strlen(field);
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

long srvp_rss_kb(pid_t pid)
{
    return srvp_status_kb(pid, "VmRSS");
}
