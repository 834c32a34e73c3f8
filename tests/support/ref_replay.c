/* ref_replay.c - naive tombstone-list replay; see ref_replay.h. */
#include "ref_replay.h"

#include <stdlib.h>
#include <string.h>

#define NONE         UINT32_MAX /* end of a deleter list */
#define START        UINT32_MAX /* inserter of startContent: in every version */
#define MAX_BITSET_B ((size_t)1 << 30)

typedef struct ref_char {
    const char *p;     /* the code point's UTF-8 bytes (inside the trace) */
    uint32_t ins;      /* inserting txn or START */
    uint32_t del_head; /* first node of the deleter list or NONE */
    uint32_t n;        /* bytes at p */
} ref_char;

typedef struct ref_state {
    const trace *t;
    ref_char *chars;
    size_t nchars;
    uint64_t *anc; /* ntxns bitsets of `words` words: strict ancestors */
    size_t words;
    uint32_t *dl_txn, *dl_next; /* deleter list nodes */
    size_t ndl, dl_cap;
} ref_state;

/* Is txn x part of the version seen by txn i? */
static bool in_version(const ref_state *s, uint32_t i, uint32_t x)
{
    if (x == i || x == START || !s->t->concurrent) return x == START || x <= i;
    const uint64_t *a = s->anc + (size_t)i * s->words;
    return (a[x >> 6] >> (x & 63)) & 1;
}

static bool visible(const ref_state *s, uint32_t i, const ref_char *c)
{
    if (!in_version(s, i, c->ins)) return false;
    for (uint32_t d = c->del_head; d != NONE; d = s->dl_next[d])
        if (in_version(s, i, s->dl_txn[d])) return false;
    return true;
}

static tdm_err add_deleter(ref_state *s, ref_char *c, uint32_t txn)
{
    if (s->ndl == s->dl_cap) {
        size_t ncap = s->dl_cap ? s->dl_cap * 2 : 1024;
        uint32_t *a = realloc(s->dl_txn, ncap * sizeof *a);
        if (!a) return TDM_ENOMEM;
        s->dl_txn = a;
        uint32_t *b = realloc(s->dl_next, ncap * sizeof *b);
        if (!b) return TDM_ENOMEM;
        s->dl_next = b;
        s->dl_cap = ncap;
    }
    s->dl_txn[s->ndl] = txn;
    s->dl_next[s->ndl] = c->del_head;
    c->del_head = (uint32_t)s->ndl++;
    return TDM_OK;
}

/* Insert the code points of s[0..n) at index idx, inserted by txn. */
static void insert_chars(ref_state *s, size_t idx, const char *p, size_t n, size_t cps,
                         uint32_t txn)
{
    memmove(s->chars + idx + cps, s->chars + idx, (s->nchars - idx) * sizeof *s->chars);
    for (size_t i = 0, k = idx; i < n; k++) {
        size_t len = 1;
        while (i + len < n && ((unsigned char)p[i + len] & 0xc0) == 0x80) len++;
        s->chars[k] = (ref_char){p + i, txn, NONE, (uint32_t)len};
        i += len;
    }
    s->nchars += cps;
}

static tdm_err apply_patch(ref_state *s, uint32_t i, const trace_patch *pa)
{
    size_t vis = 0, left = pa->del;
    for (size_t k = 0; k < s->nchars && left > 0; k++) {
        if (!visible(s, i, &s->chars[k])) continue;
        if (vis >= pa->pos) {
            tdm_err err = add_deleter(s, &s->chars[k], i);
            if (err) return err;
            left--;
        }
        vis++;
    }
    if (left > 0) return TDM_ERANGE;
    if (pa->ins_len == 0) return TDM_OK;
    size_t idx = 0;
    if (pa->pos > 0) {
        size_t k = 0;
        for (vis = 0; k < s->nchars; k++) {
            if (visible(s, i, &s->chars[k]) && ++vis == pa->pos) break;
        }
        if (vis != pa->pos) return TDM_ERANGE;
        idx = k + 1;
    }
    insert_chars(s, idx, pa->ins, pa->ins_len, pa->ins_cps, i);
    return TDM_OK;
}

tdm_err ref_replay(const trace *t, char **out, size_t *len)
{
    ref_state s = {.t = t};
    tdm_err err = TDM_ENOMEM;
    size_t cap = (size_t)t->ins_cps + t->start_len; /* start_len bytes >= its code points */
    s.chars = malloc((cap ? cap : 1) * sizeof *s.chars);
    if (!s.chars) goto fail;
    if (t->concurrent) {
        s.words = ((size_t)t->ntxns + 63) / 64;
        if (t->ntxns && s.words > MAX_BITSET_B / 8 / t->ntxns) {
            err = TDM_ETOOBIG;
            goto fail;
        }
        s.anc = calloc((size_t)t->ntxns * s.words + 1, sizeof *s.anc);
        if (!s.anc) goto fail;
        for (uint32_t i = 0; i < t->ntxns; i++) {
            uint64_t *a = s.anc + (size_t)i * s.words;
            for (uint32_t k = 0; k < t->txns[i].nparents; k++) {
                uint32_t p = t->txns[i].parents[k];
                const uint64_t *pa = s.anc + (size_t)p * s.words;
                for (size_t w = 0; w < s.words; w++) a[w] |= pa[w];
                a[p >> 6] |= (uint64_t)1 << (p & 63);
            }
        }
    }
    size_t start_cps = 0;
    for (size_t i = 0; i < t->start_len; i++)
        start_cps += ((unsigned char)t->start_content[i] & 0xc0) != 0x80;
    insert_chars(&s, 0, t->start_content, t->start_len, start_cps, START);
    for (uint32_t i = 0; i < t->ntxns; i++) {
        for (uint32_t k = 0; k < t->txns[i].npatches; k++) {
            err = apply_patch(&s, i, &t->txns[i].patches[k]);
            if (err) goto fail;
        }
    }
    size_t bytes = 0;
    for (size_t k = 0; k < s.nchars; k++) bytes += s.chars[k].del_head == NONE ? s.chars[k].n : 0;
    char *text = malloc(bytes + 1);
    err = TDM_ENOMEM;
    if (!text) goto fail;
    char *w = text;
    for (size_t k = 0; k < s.nchars; k++) {
        if (s.chars[k].del_head != NONE) continue;
        memcpy(w, s.chars[k].p, s.chars[k].n);
        w += s.chars[k].n;
    }
    *w = '\0';
    *out = text;
    *len = bytes;
    err = TDM_OK;
fail:
    free(s.chars);
    free(s.anc);
    free(s.dl_txn);
    free(s.dl_next);
    return err;
}
