/*
 * directory/watch_ad.c -- the Active Directory side of the watcher:
 * AD has no RFC 4533 content sync; it pushes changes to a search that
 * carries the change-notification control (LDAP_SERVER_NOTIFICATION_OID,
 * 1.2.840.113556.1.4.528). What is built here (watch_int.h):
 *
 *   - the search: filter (objectClass=*) -- the only one AD accepts with
 *     the control --, the base (subtree only at the root of a naming
 *     context, so the watch base must be one: the domain's DN), the
 *     attributes the diffing needs (the identity attribute,
 *     userAccountControl, the member attribute, objectGUID as the
 *     entry's key, isDeleted, uSNChanged to drop notifications older
 *     than the state) and no time or size limit;
 *   - the controls: change notification, and show-deleted
 *     (1.2.840.113556.1.4.417), without which deletions (entries moved
 *     to Deleted Objects with isDeleted TRUE) are never notified;
 *   - each notified entry turned into what dir_wstate_entry /
 *     dir_wstate_delete take (objectGUID as the UUID; isDeleted TRUE a
 *     delete), so AD changes go through the same diffing as OpenLDAP's.
 *
 * AD sends entries only, never a cookie or a "refresh done": the
 * baseline is a plain search first, and after a reconnect another full
 * search (dir_wstate_refresh_begin(full=1)) reconciles what was missed.
 * watch.c (ad_session) runs it. Not run against a real AD here (none in
 * this environment): unit-tested on the request it builds and on the
 * entry conversion (dir_ad_entry_kind); tests/integration/test_watch_ad.c
 * runs the loop against slapd, which refuses the notification control.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/dir_int.h"
#include "directory/watch_int.h"

#define AD_SHOW_DELETED_OID "1.2.840.113556.1.4.417"

void
dir_ad_notify_free(struct dir_ad_notify *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < DIR_AD_NCTRLS; i++)
		if (n->ctrls[i] != NULL)
			ldap_control_free(n->ctrls[i]);
	for (size_t i = 0; i < DIR_AD_NATTRS; i++)
		free(n->attrs[i]);
	free(n->base);
	free(n->filter);
	memset(n, 0, sizeof(*n));
}

int
dir_ad_notify_build(LDAP *ld, const char *base, const char *key_attr,
                    const char *member_attr, struct dir_ad_notify *out,
                    char *err, size_t errlen)
{
	const char *attrs[] = {key_attr,     member_attr, "userAccountControl",
	                       "objectGUID", "isDeleted", "uSNChanged",
	                       NULL};
	int rc, r = DIR_ENOMEM;

	memset(out, 0, sizeof(*out));
	if (ld == NULL || base == NULL || base[0] == '\0' || key_attr == NULL ||
	    member_attr == NULL) {
		dir_errf(err, errlen,
		         "AD change notification: a base (the domain's DN) "
		         "and the identity and member attributes are needed");
		return DIR_EINVAL;
	}
	rc = ldap_create_server_notification_control(ld, &out->ctrls[0]);
	if (rc != LDAP_SUCCESS) {
		dir_errf(err, errlen,
		         "AD change notification: cannot build the control: "
		         "%s",
		         ldap_err2string(rc));
		goto fail;
	}
	/* AD refuses the notification search unless the control is
	 * critical. */
	out->ctrls[0]->ldctl_iscritical = 1;
	rc = ldap_control_create(AD_SHOW_DELETED_OID, 1, NULL, 0,
	                         &out->ctrls[1]);
	if (rc != LDAP_SUCCESS) {
		dir_errf(err, errlen,
		         "AD change notification: cannot build the "
		         "show-deleted control: %s",
		         ldap_err2string(rc));
		goto fail;
	}
	out->ctrls[2] = NULL;
	if ((out->base = strdup(base)) == NULL ||
	    (out->filter = strdup("(objectClass=*)")) == NULL)
		goto fail;
	for (size_t i = 0; attrs[i] != NULL; i++)
		if ((out->attrs[i] = strdup(attrs[i])) == NULL)
			goto fail;
	out->scope = LDAP_SCOPE_SUBTREE;
	return 0;
fail:
	if (r == DIR_ENOMEM && (err == NULL || errlen == 0 || err[0] == '\0'))
		dir_errf(err, errlen, "AD change notification: out of memory");
	dir_ad_notify_free(out);
	return r;
}

unsigned long long
dir_ad_usn(struct berval **usn)
{
	char buf[24];
	const struct berval *b;

	if (usn == NULL || (b = usn[0]) == NULL || b->bv_len == 0 ||
	    b->bv_len > 20)
		return 0;
	for (size_t i = 0; i < b->bv_len; i++)
		if (b->bv_val[i] < '0' || b->bv_val[i] > '9')
			return 0;
	memcpy(buf, b->bv_val, b->bv_len);
	buf[b->bv_len] = '\0';
	/* Past 2^64 - 1 strtoull answers ULLONG_MAX: still an order. */
	return strtoull(buf, NULL, 10);
}

int
dir_ad_is_deleted(const char *const *is_deleted, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_deleted[i] != NULL &&
		    strcasecmp(is_deleted[i], "TRUE") == 0)
			return 1;
	return 0;
}

/* Is one of vals (bervals, counted) equal to s, ignoring ASCII case? */
static int
has_value(struct berval **vals, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; vals != NULL && vals[i] != NULL; i++)
		if (vals[i]->bv_len == n &&
		    strncasecmp(vals[i]->bv_val, s, n) == 0)
			return 1;
	return 0;
}

int
dir_ad_entry_kind(struct berval **object_guid, struct berval **entry_uuid,
                  struct berval **is_deleted, struct berval **object_class,
                  int has_identity, int has_members, const struct berval **key)
{
	*key = NULL;
	if (object_guid != NULL && object_guid[0] != NULL &&
	    object_guid[0]->bv_len > 0)
		*key = object_guid[0];
	else if (entry_uuid != NULL && entry_uuid[0] != NULL &&
	         entry_uuid[0]->bv_len > 0)
		*key = entry_uuid[0];
	if (*key == NULL)
		return DIR_AD_SKIP;
	if (has_value(is_deleted, "TRUE"))
		return DIR_AD_DELETE;
	if (has_value(object_class, "group"))
		return DIR_AD_GROUP;
	if (has_identity)
		return DIR_AD_PERSON;
	if (has_members)
		return DIR_AD_GROUP;
	return DIR_AD_SKIP;
}
