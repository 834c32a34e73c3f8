/* utf8.h - UTF-8 validation and code-point arithmetic (prefix utf8_).
 *
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800..U+DFFF),
 * nothing above U+10FFFF. All functions are pure; any thread may call them.
 */
#ifndef TANDEM_UTF8_H
#define TANDEM_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* utf8_validate - true when p[0..n) is strict UTF-8. On success *cps (may be
 * NULL) gets the number of code points and *astral (may be NULL) the number of
 * code points >= U+10000 (each is two UTF-16 units). */
bool utf8_validate(const uint8_t *p, size_t n, size_t *cps, size_t *astral);

/* utf8_skip - byte offset of code point number `k` in already-validated text
 * p[0..n) (k == number of code points gives n). Requires k <= code points. */
size_t utf8_skip(const uint8_t *p, size_t n, size_t k);

/* utf8_count_astral - number of 4-byte sequences in validated text p[0..n). */
size_t utf8_count_astral(const uint8_t *p, size_t n);

/* utf8_count - number of code points in validated text p[0..n). */
size_t utf8_count(const uint8_t *p, size_t n);

#endif
