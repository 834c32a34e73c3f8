/* ot_oracle.c - the C OT implementation (crdt/ot.h) as an oracle for the
 * JavaScript one (test/unit.oracle.test.js). Reads lines "A B" (hex CBOR
 * operations on one base text) from stdin and writes, per line,
 * "T1 T2 C" in hex CBOR: transform(A, B, LEFT), transform(B, A, RIGHT) and
 * compose(A, transform(B, A, RIGHT)); or "ERR code" when a call fails.
 * Built by the test with the C build's libtandem_crdt.a. One thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot.h"

enum { LINE_MAX_BYTES = 1 << 16 };

static size_t unhex(const char *s, size_t n, uint8_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned v;
        if (sscanf(s + i, "%2x", &v) != 1) return (size_t)-1;
        out[k++] = (uint8_t)v;
    }
    return k;
}

static void put_op(const ot_op *op)
{
    tbuf b;
    tbuf_init(&b, 0);
    if (ot_op_encode(op, &b) != TDM_OK) {
        fputs("ENC", stdout);
    } else {
        for (size_t i = 0; i < b.len; i++) printf("%02x", b.data[i]);
    }
    tbuf_fini(&b);
}

static int one(const char *line)
{
    static uint8_t ba[LINE_MAX_BYTES], bb[LINE_MAX_BYTES];
    const char *sp = strchr(line, ' ');
    if (!sp) return printf("ERR usage\n"), 0;
    size_t na = unhex(line, (size_t)(sp - line), ba);
    size_t nb = unhex(sp + 1, strcspn(sp + 1, "\r\n"), bb);
    if (na == (size_t)-1 || nb == (size_t)-1) return printf("ERR hex\n"), 0;
    ot_op *a = NULL, *b = NULL, *t1 = NULL, *t2 = NULL, *c = NULL;
    tdm_err e = ot_op_decode(ba, na, &a);
    if (!e) e = ot_op_decode(bb, nb, &b);
    if (!e) e = ot_op_transform(a, b, OT_LEFT, &t1);
    if (!e) e = ot_op_transform(b, a, OT_RIGHT, &t2);
    if (!e) e = ot_op_compose(a, t2, &c);
    if (e) {
        printf("ERR %d\n", (int)e);
    } else {
        put_op(t1);
        putchar(' ');
        put_op(t2);
        putchar(' ');
        put_op(c);
        putchar('\n');
    }
    ot_op_free(a);
    ot_op_free(b);
    ot_op_free(t1);
    ot_op_free(t2);
    ot_op_free(c);
    return 0;
}

int main(void)
{
    static char line[2 * LINE_MAX_BYTES + 4];
    while (fgets(line, sizeof line, stdin)) one(line);
    return 0;
}
