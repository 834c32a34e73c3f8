/* b64url.h - base64url without padding (RFC 4648 section 5), strict on input
 * (prefix b64url_). Shared by the token verifier (auth.c) and Web Push
 * (push_crypto.c, srv_push.c, `tandem vapid-keys`).
 * Threads: pure functions, any thread. */
#ifndef TANDEM_B64URL_H
#define TANDEM_B64URL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* b64url_value - the 6-bit value of an alphabet character, -1 for any other. */
int b64url_value(unsigned char c);

/* b64url_encode - base64url of p[0..n) without padding into out
 * (NUL-terminated). Returns the length, or 0 when out[cap] is too small
 * (out is then "" if cap > 0). */
size_t b64url_encode(const uint8_t *p, size_t n, char *out, size_t cap);

/* b64url_decode - decode s[0..n): the base64url alphabet only, no padding, no
 * whitespace, no impossible length (n % 4 == 1), unused trailing bits zero
 * (one canonical text per byte string). TDM_EMALFORMED for any of these,
 * TDM_ETOOBIG when the result would exceed cap, TDM_EINVAL for s NULL with
 * n > 0. *out_len gets the decoded length; out[] is the caller's. */
tdm_err b64url_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len);

#endif
