/* bench_push.c - tandem-bench-push: the CPU cost of one Web Push
 * notification on the push worker thread (server/push_crypto.h): the
 * aes128gcm encryption of a typical payload for a subscription (a fresh
 * ephemeral P-256 key pair, ECDH, HKDF, AES-128-GCM) and the VAPID ES256 JWT.
 * Prints one JSON line of medians over --runs runs (default 7) of --n
 * operations each (default 2000), after one warm-up run. Network time is not
 * measured (it depends on the push service). */
#include "push_crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int runs = 7, n = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--runs") == 0) runs = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--n") == 0) n = atoi(argv[i + 1]);
    }
    if (runs < 1 || runs > 1000 || n < 1 || n > 1000000) {
        fprintf(stderr, "usage: tandem-bench-push [--runs 1..1000] [--n 1..1000000]\n");
        return 2;
    }
    push_key *vapid = NULL, *ua = NULL;
    if (push_key_generate(&vapid) || push_key_generate(&ua)) return 1;
    uint8_t pub[PUSH_P256_PUB_LEN], auth[PUSH_AUTH_LEN], out[PUSH_RECORD_SIZE];
    push_key_public(ua, pub);
    memset(auth, 7, sizeof auth);
    static const char msg[] =
        "{\"title\":\"Alice in room1\",\"body\":\"a chat message of a typical length, about a "
        "line of text\",\"url\":\"/?room=room1\",\"room\":\"room1\",\"chat_id\":42,\"sender\":"
        "\"alice\",\"mention\":false}";
    double *enc = calloc((size_t)runs, sizeof *enc), *jwt = calloc((size_t)runs, sizeof *jwt);
    char tok[PUSH_JWT_MAX];
    for (int r = -1; r < runs; r++) {
        size_t len;
        double t = now_s();
        for (int i = 0; i < n; i++)
            if (push_encrypt(pub, auth, (const uint8_t *)msg, sizeof msg - 1, NULL, NULL, out,
                             sizeof out, &len))
                return 1;
        double te = (now_s() - t) / n;
        t = now_s();
        for (int i = 0; i < n; i++)
            if (push_vapid_jwt(vapid, "https://push.example.net", 1800000000u,
                               "mailto:ops@example.org", tok, sizeof tok))
                return 1;
        double tj = (now_s() - t) / n;
        if (r >= 0) enc[r] = te, jwt[r] = tj;
    }
    qsort(enc, (size_t)runs, sizeof *enc, cmp_d);
    qsort(jwt, (size_t)runs, sizeof *jwt, cmp_d);
    double e = enc[runs / 2], j = jwt[runs / 2];
    printf("{\"payload_bytes\":%zu,\"encrypt_us\":%.1f,\"vapid_jwt_us\":%.1f,"
           "\"notifications_per_s_one_thread\":%.0f,\"runs\":%d,\"n\":%d}\n",
           sizeof msg - 1, e * 1e6, j * 1e6, 1.0 / (e + j), runs, n);
    free(enc);
    free(jwt);
    push_key_free(vapid);
    push_key_free(ua);
    return 0;
}
