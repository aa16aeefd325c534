/*
 * server/authz_ref.h -- the meeting a forward-auth request names.
 */
#ifndef ROOMGATE_AUTHZ_REF_H
#define ROOMGATE_AUTHZ_REF_H

#define GATE_AUTHZ_REF_MAX 64 /* a uuid (36) or a link id (<= 64) */

/*
 * The meeting of a proxied request. uri: the original URI (X-Original-URI
 * from nginx, X-Forwarded-Uri from Traefik and Caddy) or NULL;
 * meeting_hdr: X-Roomgate-Meeting (an id or a link id) or NULL. The
 * meeting is meeting_hdr, else the segment after the path's first "j"
 * segment. When both are given the meeting must be one of the path's
 * segments, so a proxy that copies client headers cannot be made to check
 * another meeting than the one requested. A URI that could be read two
 * ways (dot segments, backslashes, percent-encoded . / \) is refused.
 * 0 and ref filled (uuid or link id characters only), or -1 and *why.
 */
int gate_authz_ref(const char *meeting_hdr, const char *uri,
                   char ref[GATE_AUTHZ_REF_MAX + 1], const char **why);

#endif
