/* test_ratelimit.c - server/ratelimit.h: bursts, refill over time, exact
 * retry-after values, per-user (not per-connection) buckets, separate key
 * spaces for users and IPs, idle eviction by sweep and at the key cap, the
 * fail-closed answer when the cap holds only active keys, clocks that go
 * backwards, disabled kinds and option validation. */
#include "ratelimit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static srv_rl *mk(const srv_rl_opts *o)
{
    srv_rl *rl = NULL;
    ck_assert_int_eq(srv_rl_new(o, &rl), TDM_OK);
    ck_assert_ptr_nonnull(rl);
    return rl;
}

static uint64_t chk(srv_rl *rl, srv_rl_kind k, const char *key, uint64_t now)
{
    return srv_rl_check(rl, k, key, strlen(key), now);
}

START_TEST(burst_then_limited)
{
    srv_rl_opts o = {0};
    o.rate[SRV_RL_CHAT] = (srv_rl_rate){1, 1000, 5, false}; /* 1/s, burst 5 */
    srv_rl *rl = mk(&o);
    uint64_t t = 1000000;
    for (int i = 0; i < 5; i++) ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "alice", t), 0);
    /* empty: a whole token takes 1000 ms */
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "alice", t), 1000);
    /* a refused action takes nothing: the answer only shrinks with time */
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "alice", t + 250), 750);
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "alice", t + 999), 1);
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "alice", t + 1000), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "alice", t + 1000), 1000);
    srv_rl_stats st;
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.allowed, 6);
    ck_assert_uint_eq(st.limited, 4);
    ck_assert_uint_eq(st.keys, 1);
    srv_rl_free(rl);
}
END_TEST

START_TEST(refill_rate_and_cap)
{
    srv_rl_opts o = {0};
    o.rate[SRV_RL_UPDATE] = (srv_rl_rate){10, 1000, 20, false}; /* 10/s: one per 100 ms */
    srv_rl *rl = mk(&o);
    uint64_t t = 5000;
    for (int i = 0; i < 20; i++) ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "u", t), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "u", t), 100);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "u", t + 30), 70);
    /* 1 second later: exactly 10 tokens */
    t += 1000;
    for (int i = 0; i < 10; i++) ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "u", t), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "u", t), 100);
    /* steady: one action every 100 ms is always allowed, with no drift */
    for (int i = 1; i <= 500; i++) ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "u", t + 100u * i), 0);
    t += 50000;
    /* a long pause refills only up to the burst */
    t += 3600000;
    for (int i = 0; i < 20; i++) ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "u", t), 0);
    ck_assert_uint_gt(chk(rl, SRV_RL_UPDATE, "u", t), 0);
    srv_rl_free(rl);
}
END_TEST

START_TEST(fractional_rate)
{
    /* 3 per 1000 ms: 1 token per 333.33 ms, kept exactly in integer units */
    srv_rl_opts o = {0};
    o.rate[SRV_RL_AWARENESS] = (srv_rl_rate){3, 1000, 1, false};
    o.rate[SRV_RL_CHAT] = (srv_rl_rate){3, 1000, 2, false};
    srv_rl *rl = mk(&o);
    ck_assert_uint_eq(chk(rl, SRV_RL_AWARENESS, "a", 0), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_AWARENESS, "a", 0), 334); /* ceil(1000 / 3) */
    ck_assert_uint_eq(chk(rl, SRV_RL_AWARENESS, "a", 333), 1);
    ck_assert_uint_eq(chk(rl, SRV_RL_AWARENESS, "a", 334), 0);
    /* polled every millisecond for a minute at 3/s with burst 2: the two of
     * the full bucket plus 3 per second, with no rounding loss (181997 units) */
    int ok = 0;
    for (uint64_t ms = 1000; ms < 61000; ms++)
        if (chk(rl, SRV_RL_CHAT, "b", ms) == 0) ok++;
    ck_assert_int_eq(ok, 181);
    /* slow rates: 1 per minute */
    srv_rl_opts o2 = {0};
    o2.rate[SRV_RL_CONNECT] = (srv_rl_rate){1, 60000, 2, false};
    srv_rl *rl2 = mk(&o2);
    ck_assert_uint_eq(chk(rl2, SRV_RL_CONNECT, "10.0.0.1", 7), 0);
    ck_assert_uint_eq(chk(rl2, SRV_RL_CONNECT, "10.0.0.1", 7), 0);
    ck_assert_uint_eq(chk(rl2, SRV_RL_CONNECT, "10.0.0.1", 7), 60000);
    ck_assert_uint_eq(chk(rl2, SRV_RL_CONNECT, "10.0.0.1", 30007), 30000);
    srv_rl_free(rl2);
    srv_rl_free(rl);
}
END_TEST

START_TEST(per_user_not_per_connection)
{
    /* the limiter never sees connections: every connection of alice checks
     * key "alice", so two connections share one budget; bob has his own */
    srv_rl_opts o = {0};
    o.rate[SRV_RL_UPDATE] = (srv_rl_rate){1, 1000, 4, false};
    srv_rl *rl = mk(&o);
    const char *conn_user[6] = {"alice", "alice", "alice", "alice", "alice", "alice"};
    int allowed = 0;
    for (int i = 0; i < 6; i++) /* alternate "connections" 1 and 2 of alice */
        if (chk(rl, SRV_RL_UPDATE, conn_user[i], 100) == 0) allowed++;
    ck_assert_int_eq(allowed, 4);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "bob", 100), 0);
    ck_assert_uint_gt(chk(rl, SRV_RL_UPDATE, "bob", 100), 0);
    /* kinds are separate buckets of the same user */
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "alice", 100), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_AWARENESS, "alice", 100), 0);
    /* the IP space is separate: an IP text equal to a user id shares nothing */
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "alice", 100), 0);
    srv_rl_stats st;
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.keys, 3); /* user alice, user bob, ip "alice" */
    /* keys are byte strings: a prefix or an embedded NUL is another key */
    ck_assert_uint_eq(srv_rl_check(rl, SRV_RL_UPDATE, "alicex", 5, 100), 1000);
    ck_assert_uint_eq(srv_rl_check(rl, SRV_RL_UPDATE, "alice\0x", 7, 100), 0);
    srv_rl_free(rl);
}
END_TEST

START_TEST(connect_per_ip)
{
    srv_rl *rl = mk(NULL); /* defaults: 5/s burst 30 */
    for (int i = 0; i < 30; i++) ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "192.0.2.7", 0), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "192.0.2.7", 0), 200);
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "2001:db8::1", 0), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "192.0.2.7", 200), 0);
    srv_rl_free(rl);
}
END_TEST

START_TEST(sweep_frees_idle)
{
    srv_rl_opts o = {0};
    o.rate[SRV_RL_UPDATE] = (srv_rl_rate){10, 1000, 10, false}; /* one token back in 100 ms */
    o.rate[SRV_RL_CHAT] = (srv_rl_rate){1, 1000, 2, false};     /* in 1 s */
    o.rate[SRV_RL_AWARENESS] = (srv_rl_rate){1, 100, 1, false};
    srv_rl *rl = mk(&o);
    char k[32];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "user%d", i);
        ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, k, 1000), 0);
    }
    srv_rl_stats st;
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.keys, 100);
    ck_assert_uint_eq(srv_rl_sweep(rl, 1099), 0); /* nobody is full yet */
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "user5", 1500), 0);
    ck_assert_uint_eq(srv_rl_sweep(rl, 1500), 99); /* update buckets full; user5 (chat) is not */
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.keys, 1);
    ck_assert_uint_eq(srv_rl_sweep(rl, 2499), 0);
    ck_assert_uint_eq(srv_rl_sweep(rl, 2500), 1);
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.keys, 0);
    ck_assert_uint_eq(st.evicted, 100);
    /* forgetting an idle key loses nothing: it comes back with a full bucket */
    for (int i = 0; i < 10; i++) ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "user5", 4000), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "user5", 4000), 100);
    srv_rl_free(rl);
}
END_TEST

START_TEST(key_cap_evicts_idle_and_fails_closed)
{
    srv_rl_opts o = {0};
    o.max_keys = 8;
    o.rate[SRV_RL_CONNECT] = (srv_rl_rate){1, 1000, 3, false}; /* full 3 s after use */
    srv_rl *rl = mk(&o);
    char k[32];
    for (int i = 0; i < 8; i++) {
        snprintf(k, sizeof k, "10.0.0.%d", i);
        ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, k, 1000 + (uint64_t)i), 0);
    }
    srv_rl_stats st;
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.keys, 8);
    /* at the cap and nobody idle: a new key is refused until the oldest is
     * idle (10.0.0.0 used 1 token at 1000: full at 2000) */
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "10.9.9.9", 1500), 500);
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.refused_full, 1);
    ck_assert_uint_eq(st.keys, 8);
    /* a tracked key is still served at the cap */
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "10.0.0.3", 1500), 0);
    /* once the least recently used key is idle it makes room */
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "10.9.9.9", 2000), 0);
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.keys, 8);
    ck_assert_uint_eq(st.evicted, 1);
    /* 10.0.0.0 was the one evicted: it comes back full (3 tokens) once there is room */
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "10.0.0.0", 2001), 0); /* evicts 10.0.0.1 */
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "10.0.0.0", 2001), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "10.0.0.0", 2001), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_CONNECT, "10.0.0.0", 2001), 1000);
    /* a flood of distinct keys never grows the table past the cap */
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof k, "198.51.%d.%d", i / 256, i % 256);
        chk(rl, SRV_RL_CONNECT, k, 3000 + (uint64_t)i / 100);
        srv_rl_get_stats(rl, &st);
        ck_assert_uint_le(st.keys, 8);
    }
    ck_assert_uint_gt(st.refused_full, 1);
    srv_rl_free(rl);
}
END_TEST

START_TEST(lru_order_follows_use)
{
    srv_rl_opts o = {0};
    o.max_keys = 3;
    o.rate[SRV_RL_UPDATE] = (srv_rl_rate){1, 1000, 1, false};
    srv_rl *rl = mk(&o);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "a", 0), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "b", 10), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "c", 20), 0);
    /* "a" used again (refused, but touched): "b" becomes least recent */
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "a", 500), 500);
    /* at 1010 b is full again (a is also full, but b is the LRU) */
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "d", 1010), 0);
    /* a was kept: its state continues (full since 1000, one token) */
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "a", 1010), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "a", 1010), 1000);
    srv_rl_stats st;
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.evicted, 1);
    srv_rl_free(rl);
}
END_TEST

START_TEST(clock_backwards_and_off)
{
    srv_rl_opts o = {0};
    o.rate[SRV_RL_CHAT] = (srv_rl_rate){1, 1000, 1, false};
    o.rate[SRV_RL_AWARENESS].off = true;
    srv_rl *rl = mk(&o);
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "x", 10000), 0);
    /* earlier time: nothing refills; the wait is counted from the later time */
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "x", 5000), 1000);
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "x", 10999), 1);
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "x", 11000), 0);
    for (int i = 0; i < 100000; i++) ck_assert_uint_eq(chk(rl, SRV_RL_AWARENESS, "x", 11000), 0);
    /* invalid kind and NULL key */
    ck_assert_uint_eq(srv_rl_check(rl, (srv_rl_kind)99, "x", 1, 0), 0);
    ck_assert_uint_eq(srv_rl_check(rl, SRV_RL_CHAT, NULL, 0, 20000), 0);
    ck_assert_uint_eq(srv_rl_check(rl, SRV_RL_CHAT, "", 0, 20000), 1000); /* same empty key */
    /* over-long keys are compared on their first SRV_RL_KEY_MAX bytes */
    char lk[600];
    memset(lk, 'k', sizeof lk);
    ck_assert_uint_eq(srv_rl_check(rl, SRV_RL_CHAT, lk, sizeof lk, 30000), 0);
    ck_assert_uint_eq(srv_rl_check(rl, SRV_RL_CHAT, lk, SRV_RL_KEY_MAX + 1, 30000), 1000);
    srv_rl_free(rl);
    srv_rl_free(NULL);
}
END_TEST

START_TEST(options_validated)
{
    srv_rl *rl = (srv_rl *)1;
    srv_rl_opts o = {0};
    o.rate[SRV_RL_UPDATE].period_ms = SRV_RL_PERIOD_MAX + 1;
    ck_assert_int_eq(srv_rl_new(&o, &rl), TDM_EINVAL);
    ck_assert_ptr_null(rl);
    memset(&o, 0, sizeof o);
    o.rate[SRV_RL_CHAT].burst = SRV_RL_BURST_MAX + 1;
    ck_assert_int_eq(srv_rl_new(&o, &rl), TDM_EINVAL);
    memset(&o, 0, sizeof o);
    o.max_keys = (size_t)SRV_RL_MAX_KEYS_MAX + 1;
    ck_assert_int_eq(srv_rl_new(&o, &rl), TDM_EINVAL);
    ck_assert_int_eq(srv_rl_new(NULL, NULL), TDM_EINVAL);
    /* the largest values do not overflow */
    memset(&o, 0, sizeof o);
    o.rate[SRV_RL_UPDATE] = (srv_rl_rate){UINT32_MAX, SRV_RL_PERIOD_MAX, SRV_RL_BURST_MAX, false};
    o.rate[SRV_RL_CHAT] = (srv_rl_rate){1, SRV_RL_PERIOD_MAX, SRV_RL_BURST_MAX, false};
    ck_assert_int_eq(srv_rl_new(&o, &rl), TDM_OK);
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "z", 0), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_CHAT, "z", UINT64_MAX / 2), 0);
    ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, "z", UINT64_MAX), 0);
    ck_assert_uint_eq(srv_rl_sweep(rl, UINT64_MAX), 0); /* chat bucket not full again */
    srv_rl_free(rl);
}
END_TEST

START_TEST(many_keys_table_grows)
{
    srv_rl_opts o = {0};
    o.max_keys = 20000;
    o.hash_seed[0] = 0x1234, o.hash_seed[1] = 0x5678;
    srv_rl *rl = mk(&o);
    char k[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "user-%d", i);
        ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, k, 100), 0);
    }
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "user-%d", i);
        ck_assert_uint_eq(chk(rl, SRV_RL_UPDATE, k, 100), 0); /* found again, second token */
    }
    srv_rl_stats st;
    srv_rl_get_stats(rl, &st);
    ck_assert_uint_eq(st.keys, 20000);
    ck_assert_uint_eq(st.allowed, 40000);
    ck_assert_uint_eq(srv_rl_sweep(rl, 100000), 20000);
    srv_rl_free(rl);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, burst_then_limited);
    tcase_add_test(tc, refill_rate_and_cap);
    tcase_add_test(tc, fractional_rate);
    tcase_add_test(tc, per_user_not_per_connection);
    tcase_add_test(tc, connect_per_ip);
    tcase_add_test(tc, sweep_frees_idle);
    tcase_add_test(tc, key_cap_evicts_idle_and_fails_closed);
    tcase_add_test(tc, lru_order_follows_use);
    tcase_add_test(tc, clock_backwards_and_off);
    tcase_add_test(tc, options_validated);
    tcase_add_test(tc, many_keys_table_grows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
