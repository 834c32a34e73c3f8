/* trace.c - editing-trace reader: zlib to bytes, jansson to a tree, then two
 * walks over the tree: the first validates and counts, the second copies into
 * one allocation (struct, txns, patches, parents and all strings), so loading
 * the largest trace costs one malloc of ours on top of jansson's tree.
 */
#include "trace.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#define READ_CHUNK ((size_t)1 << 20)

/* Read the whole (possibly gzip-compressed) file into a malloc'd buffer. */
static tdm_err read_file(const char *path, char **out, size_t *outn)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return TDM_ENOTFOUND;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return TDM_ENOTFOUND;
    }
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return TDM_ENOMEM;
    }
    gzbuffer(gz, 256u << 10);

    tdm_err err = TDM_OK;
    size_t cap = (size_t)st.st_size < TRACE_MAX_BYTES / 8 ? (size_t)st.st_size * 8 : 0;
    if (cap < 65536) cap = 65536;
    size_t len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        err = TDM_ENOMEM;
        goto fail;
    }
    for (;;) {
        if (len == cap) {
            if (cap > TRACE_MAX_BYTES) {
                err = TDM_ETOOBIG;
                goto fail;
            }
            size_t ncap = cap * 2 > TRACE_MAX_BYTES + 1 ? TRACE_MAX_BYTES + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                err = TDM_ENOMEM;
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - len < READ_CHUNK ? cap - len : READ_CHUNK;
        int got = gzread(gz, buf + len, (unsigned)want);
        if (got <= 0) break;
        len += (size_t)got;
    }
    int zerr = Z_OK;
    gzerror(gz, &zerr);
    if (zerr != Z_OK) { /* truncated (Z_BUF_ERROR), corrupt, or I/O */
        err = zerr == Z_ERRNO ? TDM_ENOTFOUND : zerr == Z_MEM_ERROR ? TDM_ENOMEM : TDM_EMALFORMED;
        goto fail;
    }
    if (len > TRACE_MAX_BYTES) {
        err = TDM_ETOOBIG;
        goto fail;
    }
    gzclose(gz);
    *out = buf;
    *outn = len;
    return TDM_OK;
fail:
    gzclose(gz);
    free(buf);
    return err;
}

/* A JSON integer in [0, UINT32_MAX]. */
static bool get_u32(const json_t *v, uint32_t *out)
{
    if (!json_is_integer(v)) return false;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (unsigned long long)x > UINT32_MAX) return false;
    *out = (uint32_t)x;
    return true;
}

/* Code points in jansson-validated UTF-8: bytes that are not continuations. */
static size_t count_cps(const char *s, size_t n)
{
    size_t cont = 0;
    for (size_t i = 0; i < n; i++) cont += ((unsigned char)s[i] & 0xc0) == 0x80;
    return n - cont;
}

typedef struct sizes {
    size_t ntxns, npatches, nparents, nchars;
} sizes;

/* Cursors into the one allocation during the fill walk. */
typedef struct fill {
    trace_txn *txn;
    trace_patch *patch;
    uint32_t *parent;
    char *chars;
} fill;

/* Copy s[0..n) plus a NUL to the character cursor. */
static char *put_str(fill *f, const char *s, size_t n)
{
    char *dst = f->chars;
    if (n) memcpy(dst, s, n);
    dst[n] = '\0';
    f->chars += n + 1;
    return dst;
}

/* Walk txns. With f NULL: validate and count into *sz and t's counters. With
 * f set: the same walk (already known valid) copies into the cursors. */
static tdm_err walk_txns(const json_t *txns, trace *t, sizes *sz, fill *f)
{
    size_t n = json_array_size(txns);
    if (n > UINT32_MAX) return TDM_EMALFORMED;
    for (size_t i = 0; i < n; i++) {
        const json_t *jt = json_array_get(txns, i);
        const json_t *jp = json_object_get(jt, "patches");
        if (!json_is_object(jt) || !json_is_array(jp)) return TDM_EMALFORMED;
        size_t np = json_array_size(jp);
        if (np > UINT32_MAX) return TDM_EMALFORMED;
        trace_txn *tx = f ? f->txn++ : NULL;
        uint32_t agent = 0;
        const json_t *jpar = NULL;
        size_t npar = 0;
        if (t->concurrent) {
            jpar = json_object_get(jt, "parents");
            if (!json_is_array(jpar) || !get_u32(json_object_get(jt, "agent"), &agent) ||
                agent >= t->num_agents)
                return TDM_EMALFORMED;
            npar = json_array_size(jpar);
            if (npar > UINT32_MAX) return TDM_EMALFORMED;
        }
        if (tx) {
            tx->agent = agent;
            tx->npatches = (uint32_t)np;
            tx->patches = np ? f->patch : NULL;
            tx->nparents = (uint32_t)npar;
            tx->parents = npar ? f->parent : NULL;
        }
        for (size_t k = 0; k < npar; k++) {
            uint32_t p;
            if (!get_u32(json_array_get(jpar, k), &p) || p >= i) return TDM_EMALFORMED;
            if (f) *f->parent++ = p;
        }
        for (size_t k = 0; k < np; k++) {
            const json_t *pa = json_array_get(jp, k);
            const json_t *js = json_array_get(pa, 2);
            uint32_t pos, del;
            if (!json_is_array(pa) || json_array_size(pa) != 3 ||
                !get_u32(json_array_get(pa, 0), &pos) || !get_u32(json_array_get(pa, 1), &del) ||
                !json_is_string(js))
                return TDM_EMALFORMED;
            size_t slen = json_string_length(js);
            if (slen > UINT32_MAX) return TDM_EMALFORMED;
            if (!f) {
                sz->nchars += slen + 1;
                continue;
            }
            const char *s = json_string_value(js);
            trace_patch *pp = f->patch++;
            pp->pos = pos;
            pp->del = del;
            pp->ins_len = (uint32_t)slen;
            pp->ins_cps = (uint32_t)count_cps(s, slen);
            pp->ins = put_str(f, s, slen);
            t->ins_cps += pp->ins_cps;
            t->del_cps += del;
        }
        if (!f) {
            sz->npatches += np;
            sz->nparents += npar;
        }
    }
    sz->ntxns = n;
    return TDM_OK;
}

/* The top-level fields: kind, numAgents, startContent, endContent, txns. */
static tdm_err parse_root(const json_t *root, trace *hdr, const json_t **txns, const json_t **start,
                          const json_t **end)
{
    if (!json_is_object(root)) return TDM_EMALFORMED;
    *txns = json_object_get(root, "txns");
    *start = json_object_get(root, "startContent");
    *end = json_object_get(root, "endContent");
    if (!json_is_array(*txns) || !json_is_string(*end)) return TDM_EMALFORMED;
    if (*start && !json_is_string(*start)) return TDM_EMALFORMED;

    const json_t *kind = json_object_get(root, "kind");
    if (kind && !json_is_string(kind)) return TDM_EMALFORMED;
    const char *k = kind ? json_string_value(kind) : "";
    if (strcmp(k, "concurrent") == 0) {
        hdr->concurrent = true;
    } else if (*k == '\0' || strcmp(k, "sequential") == 0) {
        const json_t *t0 = json_array_get(*txns, 0);
        hdr->concurrent = json_object_get(t0, "parents") != NULL;
    } else {
        return TDM_EMALFORMED;
    }
    hdr->num_agents = 1;
    if (hdr->concurrent) {
        if (!get_u32(json_object_get(root, "numAgents"), &hdr->num_agents) || hdr->num_agents == 0)
            return TDM_EMALFORMED;
        if (*start && json_string_length(*start) != 0) return TDM_EMALFORMED;
    }
    return TDM_OK;
}

/* n * size into *acc, failing on overflow. */
static bool add_size(size_t *acc, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return false;
    if (*acc > SIZE_MAX - n * size) return false;
    *acc += n * size;
    return true;
}

/* Build the trace from a parsed root. */
static tdm_err build(const json_t *root, trace **out)
{
    trace hdr = {0};
    const json_t *txns, *start, *end;
    tdm_err err = parse_root(root, &hdr, &txns, &start, &end);
    if (err) return err;

    sizes sz = {0};
    err = walk_txns(txns, &hdr, &sz, NULL);
    if (err) return err;

    size_t start_len = start ? json_string_length(start) : 0;
    size_t end_len = json_string_length(end);
    size_t total = 0;
    if (!add_size(&total, 1, sizeof(trace)) || !add_size(&total, sz.ntxns, sizeof(trace_txn)) ||
        !add_size(&total, sz.npatches, sizeof(trace_patch)) ||
        !add_size(&total, sz.nparents, sizeof(uint32_t)) || !add_size(&total, sz.nchars, 1) ||
        !add_size(&total, start_len, 1) || !add_size(&total, end_len, 1) || !add_size(&total, 2, 1))
        return TDM_ETOOBIG;

    /* Layout: trace | txns | patches | parents | chars. The first three sizes
     * are multiples of the pointer alignment, so every part is aligned. */
    char *mem = malloc(total);
    if (!mem) return TDM_ENOMEM;
    trace *t = (trace *)mem;
    *t = hdr;
    fill f;
    f.txn = (trace_txn *)(mem + sizeof(trace));
    f.patch = (trace_patch *)(f.txn + sz.ntxns);
    f.parent = (uint32_t *)(f.patch + sz.npatches);
    f.chars = (char *)(f.parent + sz.nparents);
    t->txns = f.txn;
    t->ntxns = (uint32_t)sz.ntxns;
    t->npatches = sz.npatches;
    t->start_len = start_len;
    t->start_content = put_str(&f, start ? json_string_value(start) : "", start_len);
    t->end_len = end_len;
    t->end_content = put_str(&f, json_string_value(end), end_len);
    t->end_cps = count_cps(t->end_content, end_len);
    err = walk_txns(txns, t, &sz, &f);
    if (err) { /* cannot happen: the counting walk validated the same tree */
        free(mem);
        return err;
    }
    *out = t;
    return TDM_OK;
}

tdm_err trace_load(const char *path, trace **out)
{
    if (!path || !out) return TDM_EINVAL;
    char *buf = NULL;
    size_t len = 0;
    tdm_err err = read_file(path, &buf, &len);
    if (err) return err;

    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_ALLOW_NUL, &jerr);
    free(buf);
    if (!root) return TDM_EMALFORMED;
    err = build(root, out);
    json_decref(root);
    return err;
}

void trace_free(trace *t)
{
    free(t); /* one allocation holds everything */
}

const char *trace_path(char *buf, size_t n, const char *rel)
{
    const char *dir = getenv("TANDEM_TRACES");
    if (!dir || !*dir) dir = "tests/traces";
    int k = snprintf(buf, n, "%s/%s", dir, rel);
    if (k < 0 || (size_t)k >= n) return NULL;
    return buf;
}
