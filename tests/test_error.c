/* test_error.c - the project error table: every code has a distinct name and
 * message, unknown codes are handled. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

START_TEST(test_every_code_named)
{
    for (int e = 0; e < TDM_ERR_COUNT_; e++) {
        const char *m = tdm_strerror((tdm_err)e), *n = tdm_err_name((tdm_err)e);
        ck_assert_ptr_nonnull(m);
        ck_assert_ptr_nonnull(n);
        ck_assert_int_gt((int)strlen(m), 3);
        ck_assert_str_ne(m, "unknown error");
        ck_assert(strncmp(n, "TDM_", 4) == 0);
        for (int f = 0; f < e; f++) {
            ck_assert_str_ne(m, tdm_strerror((tdm_err)f));
            ck_assert_str_ne(n, tdm_err_name((tdm_err)f));
        }
    }
    ck_assert_str_eq(tdm_err_name(TDM_EUTF8), "TDM_EUTF8");
    ck_assert_str_eq(tdm_strerror(TDM_OK), "success");
}
END_TEST

START_TEST(test_unknown_code)
{
    ck_assert_str_eq(tdm_strerror((tdm_err)TDM_ERR_COUNT_), "unknown error");
    ck_assert_str_eq(tdm_strerror((tdm_err)-1), "unknown error");
    ck_assert_str_eq(tdm_err_name((tdm_err)9999), "TDM_E?");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_every_code_named);
    tcase_add_test(tc, test_unknown_code);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
