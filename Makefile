# roomgate -- see README.md. The two commands: `make run`, `make test`.
#
# MODE=rel   (default) optimized build in build/rel
# MODE=asan  ASan+UBSan build in build/asan (what the tests use)

MODE ?= rel
V ?= 0
Q := $(if $(filter 1,$(V)),,@)
O ?= build/$(MODE)
CC ?= cc
PKGS := libmicrohttpd lasso ldap lber libpq libcurl libsodium jansson inih libcrypto \
	glib-2.0 gobject-2.0 libxml-2.0 libssl xmlsec1-openssl

# Library headers are included as system headers so our warnings stay ours.
PKG_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(PKGS) 2>/dev/null))
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Werror=vla -Wformat=2 \
	-Wno-format-nonliteral
CPPFLAGS += -D_GNU_SOURCE -I. -DROOMGATE_VERSION=\"$(VERSION)\"
ifeq ($(MODE),asan)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
LDOPT := -fsanitize=address,undefined
else
OPT := -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
LDOPT := -pie -Wl,-z,relro,-z,now
endif
CFLAGS_ALL = $(WARN) $(OPT) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS)
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

MIGRATIONS := $(sort $(wildcard db/migrations/*.sql))
LIB_SRC := $(filter-out server/main.c,$(wildcard server/*.c)) \
	$(wildcard db/*.c) $(wildcard directory/*.c) $(wildcard saml/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o) $(O)/gen/migrations.o
HDRS := $(wildcard */*.h) $(wildcard tests/lib/*.h)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TEST_BINS := $(UNIT_SRC:%.c=$(O)/%) $(INTEG_SRC:%.c=$(O)/%)

.PHONY: all bin tests unit-tests run stop test deps clean format bench fuzz fuzz-build soak
all: bin
bin: $(O)/roomgate

$(O)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo '  CC $<'
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(O)/gen/migrations.c: $(MIGRATIONS) db/embed-migrations.sh
	@mkdir -p $(dir $@)
	$(Q)sh db/embed-migrations.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(O)/gen/migrations.o: $(O)/gen/migrations.c
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(O)/libroomgate.a: $(LIB_OBJ)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(O)/roomgate: $(O)/server/main.o $(O)/libroomgate.a
	@echo '  LD $@'
	$(Q)$(CC) $(LDOPT) -o $@ $^ $(PKG_LIBS)

$(O)/libtesthelp.a: $(TESTLIB_SRC:%.c=$(O)/%.o)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(O)/tests/%: tests/%.c $(O)/libtesthelp.a $(O)/libroomgate.a $(HDRS)
	@mkdir -p $(dir $@)
	@echo '  LD $@'
	$(Q)$(CC) $(CFLAGS_ALL) $$(pkg-config --cflags cmocka) $(LDOPT) -o $@ $< \
		$(O)/libtesthelp.a $(O)/libroomgate.a $(PKG_LIBS) $$(pkg-config --libs cmocka)

# The test IdP (tests/idp): the suite's and the demo stack's SAML IdP.
$(O)/idp: tests/idp/idp.c
	@mkdir -p $(dir $@)
	@echo '  LD $@'
	$(Q)$(CC) $(CFLAGS_ALL) $(LDOPT) -o $@ $< $(PKG_LIBS)

tests: $(O)/roomgate $(O)/idp $(TEST_BINS)

# The unit tests alone: the static step (tests/static/run.sh) builds them
# with MODE=rel for valgrind.
unit-tests: $(UNIT_SRC:%.c=$(O)/%)

# libFuzzer targets (clang): tests/fuzz/fuzz_NAME.c -> build/fuzz/fuzz_NAME,
# linked with the sources FUZZ_SRC_NAME lists, compiled again with clang's
# sanitizers and coverage (build/fuzz/obj) so gcc's and clang's sanitizer
# runtimes never mix. `make fuzz` builds them all and runs each for
# FUZZ_TIME seconds on its committed seeds (tests/fuzz/corpus/NAME),
# printing one summary line per target.
FUZZ_TIME ?= 60
FUZZ_CFLAGS = $(WARN) -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	$(CPPFLAGS) $(PKG_CFLAGS)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SRC_saml_response := saml/check.c saml/init.c saml/sp.c saml/metadata.c \
	saml/keygen.c
FUZZ_SRC_authz_ref := server/authz_ref.c
FUZZ_SRC_codes := server/codes_normalize.c server/codes_policy.c
FUZZ_SRC_ldap_filter := directory/filter.c directory/util.c
FUZZ_SRC_config := server/config.c directory/config.c directory/util.c \
	directory/filter.c server/codes_policy.c
FUZZ_SRC_jwt := server/jwt.c
FUZZ_SRC_export := server/audit_export_parse.c server/audit_canon.c \
	server/audit_key.c server/buf.c db/export_columns.c
FUZZ_SRC_manifest := $(FUZZ_SRC_export)
FUZZ_SRC_anchor := server/audit_canon.c server/audit_key.c
# The routing table names every handler: the whole library.
FUZZ_SRC_http := $(LIB_SRC) build/fuzz/gen/migrations.c

build/fuzz/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo '  CC(fuzz) $<'
	$(Q)clang $(FUZZ_CFLAGS) -c $< -o $@

build/fuzz/gen/migrations.c: $(MIGRATIONS) db/embed-migrations.sh
	@mkdir -p $(dir $@)
	$(Q)sh db/embed-migrations.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

build/fuzz/obj/build/fuzz/gen/migrations.o: build/fuzz/gen/migrations.c
	@mkdir -p $(dir $@)
	$(Q)clang $(FUZZ_CFLAGS) -c $< -o $@

fuzz_objs = $(patsubst %.c,build/fuzz/obj/%.o,$(FUZZ_SRC_$(1)))
.PRECIOUS: build/fuzz/obj/%.o
.SECONDEXPANSION:
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(HDRS) $$(call fuzz_objs,$$*)
	@echo '  FUZZ $@'
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(call fuzz_objs,$*) $(PKG_LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_TIME)

deps:
	@deploy/install-deps.sh

# `make bench` (bench/run.sh): the release build, the test IdP and the
# bench's own tools (load generator, LDAP load, HTTP floor, revocation
# probe with its webhook receiver) in build/rel.
BENCH_TOOLS := $(addprefix build/rel/bench/,loadgen ldapload floor revoke)
$(O)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	@echo '  LD $@'
	$(Q)$(CC) $(CFLAGS_ALL) $(LDOPT) -o $@ $< $(PKG_LIBS) -lm

bench: deps
	@$(MAKE) --no-print-directory MODE=rel bin build/rel/idp $(BENCH_TOOLS)
	@bench/run.sh

# `make soak` (tests/soak/run.sh; not in CI): SOAK_SECONDS (default 600) of
# mixed load against the release build, roomgate's RSS and descriptors
# sampled to build/rel/soak/*.csv; fails when either grows after warm-up.
soak: deps
	@$(MAKE) --no-print-directory MODE=rel bin build/rel/idp \
		build/rel/tests/soak/soak
	@tests/soak/run.sh build/rel

# The local demo stack: PostgreSQL, slapd and roomgate on loopback.
run: deps
	@$(MAKE) --no-print-directory MODE=rel bin build/rel/idp
	@deploy/dev/stack.sh start

stop:
	@deploy/dev/stack.sh stop

# The browser tests' npm packages (playwright-core, pinned by
# tests/browser/package-lock.json), installed again whenever the lock file
# or package.json is newer than the install.
BROWSER_STAMP := tests/browser/node_modules/.package-lock.json
$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json | deps
	cd tests/browser && npm ci --no-audit --no-fund --prefer-offline
	@touch $@

# The release build first: gcc -O2 sees warnings (-Werror) that the ASan
# build does not, and `make run` uses it.
test: deps $(BROWSER_STAMP)
	@$(MAKE) --no-print-directory MODE=rel bin
	@$(MAKE) --no-print-directory MODE=asan tests
	@RG_STATIC_REL_BUILD=build/rel tests/run.sh build/asan

clean:
	rm -rf build

format:
	clang-format -i $(wildcard */*.c */*.h tests/*/*.c tests/*/*.h)
