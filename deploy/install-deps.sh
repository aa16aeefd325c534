#!/usr/bin/env bash
# Install, on Debian 12, every package roomgate's build, local stack and tests
# need -- only what is missing -- without letting the packages start the
# system's own slapd or PostgreSQL (they would take ports and data dirs that
# the project's private stack uses).
#
# Usage: deploy/install-deps.sh [--check]
#   --check   only report what is missing; exit 1 if anything is.
set -euo pipefail

# chromium, nodejs and npm: the browser tests (tests/browser, playwright-core
# from npm driving Debian's chromium). nginx: the auth_request test
# (tests/integration/test_nginx.c); Debian's nginx package is built with
# ngx_http_auth_request_module, and the policy-rc.d below keeps it from
# starting the system's own nginx on port 80.
# cppcheck, clang-tidy and valgrind: the static step of the suite
# (tests/static/run.sh).

PKGS=(
  build-essential pkg-config make gcc clang llvm libclang-rt-14-dev
  libmicrohttpd-dev liblasso3-dev libldap-dev libpq-dev libcurl4-openssl-dev
  libsodium-dev libjansson-dev libinih-dev libcmocka-dev libssl-dev
  libxml2-dev libxmlsec1-dev libglib2.0-dev
  slapd ldap-utils postgresql postgresql-contrib openssl ca-certificates
  curl procps iproute2 util-linux
  systemd # systemd-analyze verify (tests/integration/test_lifecycle.c)
  chromium nodejs npm nginx
  cppcheck clang-tidy valgrind
)

missing=()
for p in "${PKGS[@]}"; do
  # NodeSource's nodejs package carries its own npm and conflicts with
  # Debian's: an npm already on PATH is enough.
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then
    continue
  fi
  if ! dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "install-deps: missing: ${missing[*]}"
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root:  sudo $0   (or: sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"

# Keep package scripts from starting daemons: a policy-rc.d that says 101
# ("action forbidden") for the duration of the install, removed afterwards
# unless one was already there. Also tell postgresql-common not to create
# the default "main" cluster.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
mkdir -p /etc/postgresql-common/createcluster.d
printf 'create_main_cluster = false\n' >/etc/postgresql-common/createcluster.d/roomgate-no-main.conf

# slapd's debconf would otherwise ask for a domain and admin password; the
# project never uses the package's own database.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections 2>/dev/null || true

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"
echo "install-deps: done"
