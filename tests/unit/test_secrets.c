/* Secrets at rest: seal/open round trips, wrong and rotated keys, and key
 * files anyone else can read are refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "rt.h"

static char dir[256], key1[300], key2[300];

static const char k1[] =
    "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
static const char k2[] =
    "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
    "2 f0e0d0c0b0a090807060504030201000f0e0d0c0b0a0908070605040302010ff\n";

static void setup(void) {
  rt_make_temp_dir(dir, sizeof dir, "secrets");
  snprintf(key1, sizeof key1, "%s/key1", dir);
  snprintf(key2, sizeof key2, "%s/key2", dir);
  rt_write_file(key1, k1, 0600);
  rt_write_file(key2, k2, 0400);
}

static void teardown(void) { rt_remove_tree(dir); }

TestSuite(secrets, .init = setup, .fini = teardown, .timeout = 10);

static rn__secrets_t *open_keys(const char *path) {
  rn__secrets_t *s = NULL;
  char err[256];
  cr_assert_eq(rn__secrets_open(path, &s, err, sizeof err), 0, "%s", err);
  return s;
}

Test(secrets, seals_with_a_fresh_nonce_and_opens_again) {
  rn__secrets_t *s = open_keys(key1);
  char *a, *b, *plain;
  size_t len;
  cr_assert_eq(rn__secret_seal(s, "top secret", 10, &a), 0);
  cr_assert_eq(rn__secret_seal(s, "top secret", 10, &b), 0);
  cr_expect_str_neq(a, b, "two seals of one value must differ (nonce)");
  cr_expect(!strstr(a, "top secret"));
  cr_expect(strncmp(a, "v1:", 3) == 0, "%s", a);
  cr_assert_eq(rn__secret_open(s, a, &plain, &len), 0);
  cr_expect_eq(len, 10);
  cr_expect_str_eq(plain, "top secret");
  rn__secret_wipe(plain, len + 1);
  free(a);
  free(b);
  rn__secrets_close(s);
}

Test(secrets, a_tampered_or_foreign_value_does_not_open) {
  rn__secrets_t *s1 = open_keys(key1);
  char *sealed, *plain;
  size_t len;
  cr_assert_eq(rn__secret_seal(s1, "abc", 3, &sealed), 0);
  sealed[strlen(sealed) - 3] ^= 1;
  cr_expect_eq(rn__secret_open(s1, sealed, &plain, &len), RN_ECRYPTO);
  cr_expect_eq(rn__secret_open(s1, "v9:AAAA", &plain, &len), RN_ECRYPTO);
  cr_expect_eq(rn__secret_open(s1, "garbage", &plain, &len), RN_ECRYPTO);
  free(sealed);
  rn__secrets_close(s1);
}

Test(secrets, a_rotated_key_file_opens_old_values_and_seals_with_the_new) {
  rn__secrets_t *old_keys = open_keys(key1);
  char *old_sealed, *new_sealed, *plain;
  size_t len;
  cr_assert_eq(rn__secret_seal(old_keys, "rotate me", 9, &old_sealed), 0);
  rn__secrets_close(old_keys);
  rn__secrets_t *both = open_keys(key2);
  cr_expect_eq(rn__secrets_version(both), 2);
  cr_assert_eq(rn__secret_open(both, old_sealed, &plain, &len), 0);
  cr_expect_str_eq(plain, "rotate me");
  cr_assert_eq(rn__secret_seal(both, plain, len, &new_sealed), 0);
  cr_expect(strncmp(new_sealed, "v2:", 3) == 0, "%s", new_sealed);
  rn__secret_wipe(plain, len + 1);
  free(old_sealed);
  free(new_sealed);
  rn__secrets_close(both);
}

Test(secrets, refuses_a_key_file_others_can_read) {
  chmod(key1, 0644);
  rn__secrets_t *s = NULL;
  char err[256];
  cr_expect_eq(rn__secrets_open(key1, &s, err, sizeof err), RN_EPERM);
  cr_expect(strstr(err, "accessible by group or others (mode 644)"), "%s",
            err);
  cr_expect_null(s);
}

Test(secrets, refuses_a_malformed_key_file_naming_the_line) {
  rt_write_file(key1, "# keys\n1 nothex\n", 0600);
  rn__secrets_t *s = NULL;
  char err[256];
  cr_expect_eq(rn__secrets_open(key1, &s, err, sizeof err), RN_ECONFIG);
  cr_expect(strstr(err, "key1:2:"), "%s", err);
}
