/*
 * libFuzzer target: the configuration -- the INI file and ROOMGATE_*
 * variables (server/config.c, inih), then the directory settings made from
 * it (directory/config.c) and the [codes] rule list.
 *
 * Input: the INI file's bytes, optionally followed by a line "%%" and
 * environment entries, one per line. The file is an in-memory file
 * (memfd) read through its /proc/self/fd path, so nothing touches the
 * disk. Settings naming files (bind_password_file, ca_file...) are read
 * like any file; run with stdin from /dev/null.
 *
 * Checks the contract, not just absence of crashes: a failed load says
 * why and leaves nothing behind (the struct is all zeros); a loaded one
 * has its numbers in range and an http(s) public URL; no error message
 * quotes a secret value (bind_password, hs256_secret, secret).
 * Run: build/fuzz/fuzz_config tests/fuzz/corpus/config </dev/null
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "directory/dir_int.h"
#include "server/codes.h"
#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENV 16
#define MIN_SECRET 16 /* shorter values could be words of a message */

/* Aborts when msg quotes the value of a secret key set in text. */
static void
check_no_secret(const char *text, const char *msg)
{
	static const char *const names[] = {"bind_password", "hs256_secret",
	                                    "secret"};
	const char *line = text;

	while (line != NULL && *line != '\0') {
		const char *end = strchr(line, '\n'), *eq, *k, *v;
		size_t len = end ? (size_t)(end - line) : strlen(line), vlen;

		eq = memchr(line, '=', len);
		for (k = line; k < line + len && (*k == ' ' || *k == '\t'); k++)
			;
		if (eq != NULL && eq >= k) {
			for (size_t i = 0; i < sizeof(names) / sizeof(names[0]);
			     i++) {
				size_t nl = strlen(names[i]), kl;

				kl = (size_t)(eq - k);
				while (kl > 0 && (k[kl - 1] == ' ' ||
				                  k[kl - 1] == '\t'))
					kl--;
				if (kl != nl || strncmp(k, names[i], nl) != 0)
					continue;
				for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
					;
				vlen = (size_t)(line + len - v);
				while (vlen > 0 && (v[vlen - 1] == ' ' ||
				                    v[vlen - 1] == '\r' ||
				                    v[vlen - 1] == '\t'))
					vlen--;
				/* Only a value written once: the same text
				 * elsewhere in the file may be quoted. */
				if (vlen >= MIN_SECRET &&
				    memmem(msg, strlen(msg), v, vlen) != NULL &&
				    memmem(v + 1, strlen(v + 1), v, vlen) ==
				        NULL &&
				    memmem(text, (size_t)(v - text), v, vlen) ==
				        NULL)
					abort();
			}
		}
		line = end ? end + 1 : NULL;
	}
}

/* What serve() hands the directory pool (server/cli.c does the same). */
static void
dir_config_of(const struct gate_config *cfg, struct dir_config *dc)
{
	memset(dc, 0, sizeof(*dc));
	dc->uris = cfg->ldap_uri;
	dc->bind_dn = cfg->ldap_bind_dn;
	dc->bind_password = cfg->ldap_bind_password;
	dc->tls = (enum dir_tls_mode)cfg->ldap_tls;
	dc->ca_file = cfg->ldap_ca_file;
	dc->network_timeout_ms = cfg->ldap_network_timeout_ms;
	dc->op_timeout_ms = cfg->ldap_op_timeout_ms;
	dc->pool_size = cfg->ldap_pool_size;
	dc->acquire_timeout_ms = cfg->ldap_acquire_timeout_ms;
	dc->base_dn = cfg->ldap_base_dn;
	dc->people_base = cfg->dir_people_base;
	dc->group_base = cfg->dir_group_base;
	dc->user_filter = cfg->dir_user_filter;
	dc->active = (enum dir_active)cfg->dir_active;
	dc->active_filter = cfg->dir_active_filter;
	dc->membership = (enum dir_membership)cfg->dir_membership;
	dc->member_attribute = cfg->dir_member_attribute;
	dc->nest_depth = cfg->dir_nest_depth;
	dc->check_timeout_ms = cfg->dir_check_timeout_ms;
	dc->role_groups[DIR_ROLE_HOST] = cfg->dir_host_group;
	dc->role_groups[DIR_ROLE_ADMIN] = cfg->dir_admin_group;
	dc->role_groups[DIR_ROLE_COMPLIANCE] = cfg->dir_compliance_group;
}

static int
all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_config cfg;
	struct dir_config dc;
	struct dir_cfg dcl;
	char *text, *envs, *env[MAX_ENV + 1], path[64], err[1024];
	size_t filelen = size, nenv = 0;
	unsigned mask = 0;
	int fd, r;

	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	envs = strstr(text, "\n%%\n");
	if (envs != NULL) {
		filelen = (size_t)(envs - text) + 1;
		envs += 4;
		while (nenv < MAX_ENV && envs != NULL && *envs != '\0') {
			char *nl = strchr(envs, '\n');

			if (nl != NULL)
				*nl++ = '\0';
			env[nenv++] = envs;
			envs = nl;
		}
	}
	env[nenv] = NULL;

	fd = memfd_create("fuzz_config", 0);
	if (fd < 0 || write(fd, text, filelen) != (ssize_t)filelen) {
		if (fd >= 0)
			close(fd);
		free(text);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	err[0] = '\0';
	r = gate_config_load(&cfg, path, env, err, sizeof(err));
	close(fd);
	if (envs != NULL || nenv > 0)
		text[filelen] = '\0'; /* the secrets check reads the file */
	if (r != 0) {
		if (err[0] == '\0' || !all_zero(&cfg, sizeof(cfg)))
			abort();
		check_no_secret(text, err);
		free(text);
		return 0;
	}
	if (cfg.port < 1 || cfg.port > 65535 || cfg.threads < 1 ||
	    cfg.threads > 256 || cfg.codes_length < GATE_CODE_MIN_LEN ||
	    cfg.codes_length > GATE_CODE_MAX_LEN || cfg.public_url == NULL ||
	    (strncmp(cfg.public_url, "http://", 7) != 0 &&
	     strncmp(cfg.public_url, "https://", 8) != 0))
		abort();

	err[0] = '\0';
	if (gate_config_check_serve(&cfg, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();
		check_no_secret(text, err);
	}
	err[0] = '\0';
	if (cfg.codes_rules != NULL &&
	    gate_code_rules_parse(cfg.codes_rules, &mask, err, sizeof(err)) ==
	        0) {
		if (!(mask & (1u << GATE_CR_LENGTH)) || (mask & ~GATE_CR_ALL))
			abort();
	} else if (cfg.codes_rules != NULL && err[0] == '\0') {
		abort();
	}

	dir_config_of(&cfg, &dc);
	err[0] = '\0';
	if (dir_cfg_load(&dc, 1, &dcl, err, sizeof(err)) == 0) {
		if (dcl.nuris < 1 || dcl.nuris > DIR_MAX_URIS ||
		    dcl.user_filter == NULL || dcl.member_attribute == NULL ||
		    dcl.bind_password == NULL || dcl.bind_password_len == 0)
			abort();
		for (size_t i = 0; i < dcl.nuris; i++)
			if (dcl.uris[i].host == NULL ||
			    dcl.uris[i].host[0] == '\0' ||
			    dcl.uris[i].port < 1 || dcl.uris[i].port > 65535)
				abort();
		dir_cfg_free(&dcl);
	} else {
		if (err[0] == '\0' || !all_zero(&dcl, sizeof(dcl)))
			abort();
		check_no_secret(text, err);
	}
	gate_config_free(&cfg);
	free(text);
	return 0;
}
