/*
 * Unit tests for the AD watcher's entry conversion (directory/watch_ad.c,
 * dir_ad_entry_kind; no server): the key is objectGUID, else entryUUID;
 * isDeleted TRUE is a delete whatever else the entry holds; an AD group
 * is a group although it carries the identity attribute
 * (sAMAccountName); a person needs the identity; anything else, or an
 * entry without a key, is skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "directory/dir_int.h"
#include "directory/watch_int.h"

static struct berval guid_v = {16, (char *)"\x01\x02\x03\x04\x05\x06\x07"
                                           "\x08\x09\x0a\x0b\x0c\x0d\x0e"
                                           "\x0f\x10"};
static struct berval uuid_v = {36,
                               (char *)"6a1c4e2e-0c6b-103f-9a4c-2b1e7d0a1f33"};
static struct berval empty_v = {0, (char *)""};
static struct berval true_v = {4, (char *)"TRUE"};
static struct berval false_v = {5, (char *)"FALSE"};
static struct berval top_v = {3, (char *)"top"};
static struct berval group_v = {5, (char *)"GROUP"};
static struct berval user_v = {4, (char *)"user"};
static struct berval groups_v = {6, (char *)"groups"};

static void
test_key(void **state)
{
	struct berval *guid[] = {&guid_v, NULL}, *uuid[] = {&uuid_v, NULL},
	              *empty[] = {&empty_v, NULL}, *none[] = {NULL};
	const struct berval *key = &empty_v;

	(void)state;
	/* objectGUID first. */
	assert_int_equal(dir_ad_entry_kind(guid, uuid, NULL, NULL, 1, 0, &key),
	                 DIR_AD_PERSON);
	assert_ptr_equal(key, &guid_v);
	/* entryUUID where there is no objectGUID (or an empty one). */
	assert_int_equal(dir_ad_entry_kind(NULL, uuid, NULL, NULL, 1, 0, &key),
	                 DIR_AD_PERSON);
	assert_ptr_equal(key, &uuid_v);
	assert_int_equal(dir_ad_entry_kind(empty, uuid, NULL, NULL, 1, 0, &key),
	                 DIR_AD_PERSON);
	assert_ptr_equal(key, &uuid_v);
	/* No key at all: skipped, even a tombstone. */
	struct berval *del[] = {&true_v, NULL};
	assert_int_equal(dir_ad_entry_kind(none, empty, del, NULL, 1, 1, &key),
	                 DIR_AD_SKIP);
	assert_null(key);
	assert_int_equal(dir_ad_entry_kind(NULL, NULL, NULL, NULL, 1, 1, &key),
	                 DIR_AD_SKIP);
	assert_null(key);
}

static void
test_kind(void **state)
{
	struct berval *guid[] = {&guid_v, NULL};
	struct berval *del[] = {&false_v, &true_v, NULL},
	              *notdel[] = {&false_v, NULL};
	struct berval *grp[] = {&top_v, &group_v, NULL},
	              *usr[] = {&top_v, &user_v, NULL},
	              *near[] = {&groups_v, NULL};
	const struct berval *key = NULL;

	(void)state;
	/* A tombstone is a delete, person or group. */
	assert_int_equal(dir_ad_entry_kind(guid, NULL, del, usr, 1, 0, &key),
	                 DIR_AD_DELETE);
	assert_ptr_equal(key, &guid_v);
	assert_int_equal(dir_ad_entry_kind(guid, NULL, del, grp, 1, 1, &key),
	                 DIR_AD_DELETE);
	/* isDeleted FALSE is no delete. */
	assert_int_equal(dir_ad_entry_kind(guid, NULL, notdel, usr, 1, 0, &key),
	                 DIR_AD_PERSON);
	/* An AD group has sAMAccountName too: still a group, also with no
	 * members left (its last member removed). */
	assert_int_equal(dir_ad_entry_kind(guid, NULL, NULL, grp, 1, 1, &key),
	                 DIR_AD_GROUP);
	assert_int_equal(dir_ad_entry_kind(guid, NULL, NULL, grp, 1, 0, &key),
	                 DIR_AD_GROUP);
	/* Only the whole value "group" counts (case aside). */
	assert_int_equal(dir_ad_entry_kind(guid, NULL, NULL, near, 1, 0, &key),
	                 DIR_AD_PERSON);
	/* A person: the identity attribute. */
	assert_int_equal(dir_ad_entry_kind(guid, NULL, NULL, usr, 1, 0, &key),
	                 DIR_AD_PERSON);
	/* No objectClass (slapd's groupOfNames in the tests): members and
	 * no identity make a group. */
	assert_int_equal(dir_ad_entry_kind(guid, NULL, NULL, NULL, 0, 1, &key),
	                 DIR_AD_GROUP);
	/* Neither (an OU, a computer without the attribute): skipped. */
	assert_int_equal(dir_ad_entry_kind(guid, NULL, NULL, usr, 0, 0, &key),
	                 DIR_AD_SKIP);
}

/* uSNChanged as AD sends it (decimal text): 0 for anything else, so an
 * unreadable one never makes a notification look stale (review F5). */
static void
test_usn(void **state)
{
	struct berval v1 = {5, (char *)"12345"},
	              big = {20, (char *)"18446744073709551615"},
	              neg = {2, (char *)"-1"}, sp = {3, (char *)"1 2"},
	              huge = {21, (char *)"123456789012345678901"};
	struct berval *a[] = {&v1, NULL}, *b[] = {&big, NULL},
	              *c[] = {&neg, NULL}, *d[] = {&sp, NULL},
	              *e[] = {&empty_v, NULL}, *f[] = {&huge, NULL},
	              *none[] = {NULL};

	(void)state;
	assert_true(dir_ad_usn(a) == 12345ULL);
	assert_true(dir_ad_usn(b) == 18446744073709551615ULL);
	assert_true(dir_ad_usn(c) == 0);
	assert_true(dir_ad_usn(d) == 0);
	assert_true(dir_ad_usn(e) == 0);
	assert_true(dir_ad_usn(f) == 0);
	assert_true(dir_ad_usn(none) == 0);
	assert_true(dir_ad_usn(NULL) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key),
	    cmocka_unit_test(test_usn),
	    cmocka_unit_test(test_kind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
