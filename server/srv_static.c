/* srv_static.c - static files under the web root, with no way out of it:
 * the (already percent-decoded) path must be absolute, without "..", "\\",
 * "%", control bytes or hidden segments; the joined path is resolved with
 * realpath() and must still lie inside the root's realpath (so a symlink out
 * of the root is refused) and name a regular file. Service thread only. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "srv_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".txt", "text/plain; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".ico", "image/x-icon"},
    {".webp", "image/webp"},
    {".wasm", "application/wasm"},
    {".woff2", "font/woff2"},
};

static const char *type_for(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t m = strlen(types[i].ext);
        if (n >= m && strcmp(path + n - m, types[i].ext) == 0) return types[i].type;
    }
    return "application/octet-stream";
}

/* 0 when the request path is acceptable, else 403. */
static unsigned check_path(const char *path)
{
    if (path[0] != '/') return 403;
    for (const char *p = path; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 || ch == 0x7f || ch == '\\' || ch == '%') return 403;
        if (ch == '/' && p[1] == '/') return 403;
        if (ch == '/' && p[1] == '.') return 403; /* "..", hidden files */
    }
    return 0;
}

unsigned srv_static_resolve(const srv *s, const char *path, char *real, size_t real_len,
                            const char **type)
{
    unsigned st = check_path(path);
    if (st) return st;
    if (!s->web_real[0]) return 404;
    char joined[PATH_MAX];
    size_t pl = strlen(path);
    const char *index = pl && path[pl - 1] == '/' ? "index.html" : "";
    int n = snprintf(joined, sizeof joined, "%s%s%s", s->web_real, path, index);
    if (n < 0 || (size_t)n >= sizeof joined) return 404;
    char resolved[PATH_MAX];
    if (!realpath(joined, resolved)) return 404;
    size_t rl = strlen(s->web_real);
    if (strncmp(resolved, s->web_real, rl) != 0 || resolved[rl] != '/') return 403;
    struct stat sb;
    if (stat(resolved, &sb) != 0 || !S_ISREG(sb.st_mode)) return 404;
    if (strlen(resolved) >= real_len) return 404;
    memcpy(real, resolved, strlen(resolved) + 1);
    *type = type_for(resolved);
    return 0;
}
