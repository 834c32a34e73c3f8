/* trace.h - reader for the editing-trace JSON format (tests/traces/README.md),
 * sequential and concurrent, gzip-compressed or plain (prefix trace_).
 *
 * Test and benchmark support only (links jansson and zlib); not part of crdt/.
 * A loaded trace owns all its memory; trace_free releases it.
 * Threads: a trace is immutable after loading; any thread may read it.
 */
#ifndef TANDEM_TRACE_H
#define TANDEM_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "error.h"

typedef struct trace_patch {
    uint32_t pos;     /* code points */
    uint32_t del;     /* code points deleted at pos */
    const char *ins;  /* UTF-8 inserted after deleting (NUL-terminated) */
    uint32_t ins_len; /* bytes */
    uint32_t ins_cps; /* code points */
} trace_patch;

typedef struct trace_txn {
    uint32_t agent; /* 0 for sequential traces */
    uint32_t npatches;
    trace_patch *patches;
    uint32_t nparents; /* concurrent traces only */
    uint32_t *parents; /* indices of earlier txns */
} trace_txn;

typedef struct trace {
    bool concurrent;
    uint32_t num_agents; /* 1 for sequential traces */
    uint32_t ntxns;
    trace_txn *txns;
    char *start_content; /* NUL-terminated */
    char *end_content;   /* NUL-terminated */
    size_t end_len;      /* bytes */
    size_t npatches;     /* total over all txns */
    size_t start_len;    /* bytes of start_content */
    size_t end_cps;      /* code points of end_content */
    uint64_t ins_cps;    /* code points inserted, over all patches */
    uint64_t del_cps;    /* code points deleted, over all patches */
} trace;

/* trace_load - read and parse `path` (.json or .json.gz). TDM_ENOTFOUND when
 * the file cannot be opened, TDM_EMALFORMED when it does not follow the format
 * (non-earlier parents, negative numbers, missing fields).
 * In detail: the file is read through zlib (gzip or plain), capped at
 * TRACE_MAX_BYTES decompressed (TDM_ETOOBIG beyond). TDM_ENOTFOUND also covers
 * read errors (not a regular file, EIO). TDM_EMALFORMED: corrupt or truncated
 * gzip, invalid JSON, root not an object, unknown "kind", missing or mistyped
 * txns/patches/endContent (and numAgents/parents/agent for concurrent traces),
 * a patch that is not [uint32, uint32, string], a parent index not earlier
 * than its txn, an agent >= numAgents, a non-empty startContent in a
 * concurrent trace. A trace is concurrent when kind is "concurrent" or txns[0]
 * has "parents" (as verify-traces.mjs decides). Strings may hold U+0000
 * (lengths are authoritative). Everything is copied into one allocation;
 * *out is set only on success. */
tdm_err trace_load(const char *path, trace **out);
/* trace_free - release everything trace_load made; NULL is a no-op. */
void trace_free(trace *t);

#define TRACE_MAX_BYTES ((size_t)512 << 20) /* decompressed JSON size cap */

/* trace_path - join $TANDEM_TRACES (or "tests/traces") with rel into buf;
 * returns buf, or NULL when the result does not fit in n bytes. */
const char *trace_path(char *buf, size_t n, const char *rel);

#endif
