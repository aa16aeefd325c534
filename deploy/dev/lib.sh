# Shared helpers for deploy/dev/pg.sh and deploy/dev/slapd.sh. Sourced, not run.
#
# Callers set PROG (the message prefix) before sourcing and run under
# `set -euo pipefail`.
# shellcheck shell=bash

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

# rand_hex N: N random bytes as 2N lowercase hex digits. Hex is URL-, LDIF-
# and shell-safe, so secrets never need quoting or escaping anywhere.
rand_hex() {
  local n=$1 out=""
  if command -v openssl >/dev/null 2>&1; then
    out=$(openssl rand -hex "$n")
  else
    out=$(od -An -tx1 -N"$n" /dev/urandom | tr -d ' \n')
  fi
  [[ $out =~ ^[0-9a-f]+$ && ${#out} -eq $((2 * n)) ]] || die "could not read random bytes"
  printf '%s' "$out"
}

# valid_port P: P is a decimal TCP port we may bind as anyone (1024-65535).
valid_port() {
  [[ $1 =~ ^[1-9][0-9]{3,4}$ ]] && (($1 >= 1024 && $1 <= 65535))
}

# port_busy P: true when something listens on TCP port P (any address).
port_busy() {
  local p=$1
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -Hltn "sport = :$p" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
  fi
}

# pick_port: a free port in 20000-32767 (below Linux's ephemeral range, so
# outgoing connections never sit on it). Racy by nature; the server's own bind
# error is the final word.
pick_port() {
  local i p
  for i in $(seq 1 100); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
    if ! port_busy "$p"; then
      printf '%s' "$p"
      return 0
    fi
    : "$i"
  done
  die "no free TCP port found in 20000-32767"
}

# need_free_port P WHAT: fail, naming the port, when P is already taken.
need_free_port() {
  if port_busy "$1"; then
    die "port $1 ($2) is already in use by another process; choose another port (see: ss -ltnp 'sport = :$1')"
  fi
}

# env_get FILE KEY: the value of KEY=VALUE in FILE, without sourcing it.
env_get() {
  local file=$1 key=$2 line
  [[ -r $file ]] || return 1
  line=$(grep -m1 "^${key}=" "$file") || return 1
  printf '%s' "${line#*=}"
}

# env_write FILE KEY=VALUE...: write the env file atomically, mode 0600, owned
# by whoever runs the script. Values are checked against a shell-safe set so
# the file can be sourced by sh, read by `docker --env-file` or systemd
# EnvironmentFile= alike, with no quoting.
env_write() {
  local file=$1 kv tmp
  shift
  for kv in "$@"; do
    [[ $kv =~ ^[A-Z][A-Z0-9_]*=[A-Za-z0-9@%:/.,=_+-]*$ ]] ||
      die "internal: unsafe env entry for ${kv%%=*}"
  done
  tmp=$(umask 077 && mktemp "$file.XXXXXX")
  {
    printf '# Written by deploy/dev/%s.sh on %s. Secrets: keep private.\n' \
      "$PROG" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '%s\n' "$@"
  } >"$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$file"
}

# abs_dir DIR: absolute, normalized path of DIR, which may not exist yet.
abs_dir() {
  local d=$1
  [[ -n $d ]] || die "DIR must not be empty"
  [[ $d != *$'\n'* ]] || die "DIR must not contain a newline"
  realpath -m -- "$d"
}

# check_reachable USER DIR: USER can reach DIR's parent (search permission
# on every ancestor). A 0700 home directory is the usual culprit.
check_reachable() {
  local user=$1 dir=$2 p blocked=""
  p=$(dirname -- "$dir")
  while :; do
    if ! runuser -u "$user" -- test -x "$p" 2>/dev/null; then
      blocked=$p
    fi
    [[ $p == / ]] && break
    p=$(dirname -- "$p")
  done
  if [[ -n $blocked ]]; then
    die "user '$user' cannot reach $dir: it cannot enter $blocked (mode $(stat -c %a "$blocked"))." \
      "Put the directory somewhere '$user' can reach (e.g. under /tmp or /var/tmp)," \
      "or let it in with: chmod o+x $blocked"
  fi
}

# tail_log FILE: the last lines of a server log, to explain a failed start.
tail_log() {
  if [[ -s $1 ]]; then
    warn "last lines of $1:"
    tail -n 20 "$1" | sed 's/^/    /' >&2
  fi
}
