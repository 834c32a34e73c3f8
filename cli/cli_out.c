/* cli_out.c - output helpers of the tandem command: printable names and
 * chat text, timestamps, and JSON through jansson. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "utf8.h"

/* Length of the UTF-8 sequence a lead byte announces (0: not a lead byte). */
static size_t seq_len(uint8_t b)
{
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf) return 2;
    if (b >= 0xe0 && b <= 0xef) return 3;
    if (b >= 0xf0 && b <= 0xf4) return 4;
    return 0;
}

/* Length of the valid UTF-8 sequence at p[0..n), 0 when none starts there. */
static size_t valid_seq(const uint8_t *p, size_t n)
{
    size_t k = seq_len(p[0]);
    if (k == 0 || k > n || !utf8_validate(p, k, NULL, NULL)) return 0;
    return k;
}

/* The escaper behind cli_name and cli_print_escaped: writes to f, or into
 * buf (at least 4 * n + 1 bytes) when f is NULL. Keeps valid UTF-8 except
 * C0/C1 controls and DEL; "\\", "\n", "\t", "\r" and "\xHH" otherwise. */
static void escape(const uint8_t *p, size_t n, FILE *f, char *buf)
{
    size_t o = 0;
    char tmp[8];
    for (size_t i = 0; i < n;) {
        size_t k = valid_seq(p + i, n - i);
        bool c1 = k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0;
        const char *s = tmp;
        size_t sl;
        if (k > 1 && !c1) {
            s = (const char *)p + i;
            sl = k;
        } else {
            uint8_t b = p[i];
            k = 1;
            if (b == '\\')
                s = "\\\\";
            else if (b == '\n')
                s = "\\n";
            else if (b == '\t')
                s = "\\t";
            else if (b == '\r')
                s = "\\r";
            else if (b < 0x20 || b >= 0x7f)
                snprintf(tmp, sizeof tmp, "\\x%02x", b);
            else
                tmp[0] = (char)b, tmp[1] = '\0';
            sl = strlen(s);
        }
        if (f) {
            fwrite(s, 1, sl, f);
        } else {
            memcpy(buf + o, s, sl);
            o += sl;
        }
        i += k;
    }
    if (!f) buf[o] = '\0';
}

const char *cli_name(const uint8_t *p, size_t n, char buf[CLI_NAME_BUF])
{
    if (n > STORE_NAME_MAX) n = STORE_NAME_MAX;
    escape(p, n, NULL, buf);
    return buf;
}

void cli_print_escaped(FILE *f, const uint8_t *p, size_t n)
{
    escape(p, n, f, NULL);
}

const char *cli_time(int64_t ms, char buf[32])
{
    if (ms <= 0) {
        strcpy(buf, "-");
        return buf;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        strcpy(buf, "-");
        return buf;
    }
    size_t k = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, 32 - k, ".%03dZ", (int)(ms % 1000));
    return buf;
}

json_t *cli_json_str(const uint8_t *p, size_t n)
{
    if (utf8_validate(p, n, NULL, NULL)) return json_stringn((const char *)p, n);
    /* Replace each byte that starts no valid sequence by U+FFFD (3 bytes). */
    char *s = malloc(3 * n + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = valid_seq(p + i, n - i);
        if (k) {
            memcpy(s + o, p + i, k);
            o += k;
            i += k;
        } else {
            memcpy(s + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    json_t *v = json_stringn(s, o);
    free(s);
    return v;
}

void cli_json_set(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(o, key, v) != 0) *ok = false;
}

tdm_err cli_json_print(json_t *v)
{
    if (!v) return TDM_ENOMEM;
    int rc = json_dumpf(v, stdout, JSON_INDENT(2));
    json_decref(v);
    if (rc != 0 || fputc('\n', stdout) == EOF) return TDM_EIO;
    return TDM_OK;
}
