#!/usr/bin/env bash
# The demo directory for the local stack and the tests, as LDIF on stdout,
# for `slapadd -n1` (deploy/dev/slapd.sh runs it).
#
# Usage: deploy/dev/demo-ldif.sh USER_HASH SERVICE_HASH
#   USER_HASH     slappasswd hash of the demo password, shared by every person
#   SERVICE_HASH  slappasswd hash of the service account's password
#
# Tests rely on these names; change them only together with the tests.
#
# Base dc=example,dc=com; people in ou=people (uid=NAME), groups in ou=groups
# (groupOfNames, cn=NAME), accounts in ou=services, and the ppolicy default
# policy cn=default,ou=policies. OpenLDAP 2.5 honours pwdAccountLockedTime at
# bind only when the policy that applies has pwdLockout TRUE; pwdMaxFailure 0
# keeps failed binds from ever locking anyone automatically (roomgate has its
# own lockout), and pwdLockoutDuration 0 makes a lock last until removed.
#
#   uid       groups                                    note
#   alice     meeting-allowed engineering meeting-hosts
#   bob       meeting-allowed
#   carol     meeting-allowed compliance
#   dave      engineering                               NOT in meeting-allowed
#   mallory   meeting-allowed                           locked: pwdAccountLockedTime
#                                                       000001010000Z (permanent)
#   trent     meeting-allowed directory-admins
#   user01    meeting-allowed engineering meeting-hosts
#   user02    meeting-allowed meeting-hosts
#   user03    meeting-allowed compliance
#   user04-10 meeting-allowed engineering
#   user11-35 meeting-allowed
#
#   cn=roomgate,ou=services     roomgate's service account (simple bind)
#   cn=placeholder,ou=services  a member of every group, because a
#                               groupOfNames must keep at least one member;
#                               it has no password and cannot bind
#
# Every person: inetOrgPerson with cn, sn, givenName, displayName,
# mail = uid@example.com, userPassword = USER_HASH.
#
# slapadd bypasses overlays, so the memberOf values that the memberof overlay
# would maintain are written here, derived from the same table as the groups.
set -euo pipefail

if [[ $# -ne 2 || $1 != '{'* || $2 != '{'* ]]; then
  echo "usage: $0 USER_HASH SERVICE_HASH   (hashes from slappasswd)" >&2
  exit 2
fi
user_hash=$1
service_hash=$2

base=dc=example,dc=com
people=ou=people,$base
groups_dn=ou=groups,$base
services=ou=services,$base
placeholder=cn=placeholder,$services

# uid|givenName|sn|groups (space separated)
roster=(
  "alice|Alice|Anderson|meeting-allowed engineering meeting-hosts"
  "bob|Bob|Brown|meeting-allowed"
  "carol|Carol|Chen|meeting-allowed compliance"
  "dave|Dave|Dubois|engineering"
  "mallory|Mallory|Moreau|meeting-allowed"
  "trent|Trent|Tanaka|meeting-allowed directory-admins"
)
# user01..user35: realistic names, predictable uids.
generated=(
  "Aisha Okafor" "Bruno Costa" "Chloe Martin" "Daniel Kowalski" "Elena Petrova"
  "Farid Haddad" "Grace Liu" "Hiro Sato" "Ines Garcia" "Jonas Berg"
  "Kavya Iyer" "Liam O'Brien" "Maya Cohen" "Nikolai Ivanov" "Olivia Smith"
  "Pedro Alves" "Quinn Murphy" "Rosa Fernandez" "Samir Khan" "Tara Nguyen"
  "Uma Patel" "Victor Lambert" "Wei Zhang" "Ximena Lopez" "Yusuf Demir"
  "Zoe Schmidt" "Arjun Mehta" "Beatriz Souza" "Connor Walsh" "Dana Levi"
  "Emil Nowak" "Fatima Zahra" "Gustav Lind" "Hana Yamada" "Ivan Horvat"
)
for i in "${!generated[@]}"; do
  n=$(printf 'user%02d' $((i + 1)))
  g="meeting-allowed"
  case $n in
    user01) g+=" engineering meeting-hosts" ;;
    user02) g+=" meeting-hosts" ;;
    user03) g+=" compliance" ;;
    user0[4-9] | user10) g+=" engineering" ;;
  esac
  name=${generated[$i]}
  roster+=("$n|${name%% *}|${name#* }|$g")
done
locked=mallory

group_names=(meeting-allowed engineering meeting-hosts compliance directory-admins)
declare -A group_desc=(
  [meeting-allowed]="People who may join meetings"
  [engineering]="Engineering department"
  [meeting-hosts]="People who may create and host meetings"
  [compliance]="Compliance team: audit export"
  [directory-admins]="Directory administrators"
)
declare -A members # group -> newline-separated member DNs

for row in "${roster[@]}"; do
  IFS='|' read -r uid _ _ gl <<<"$row"
  for g in $gl; do
    [[ -n ${group_desc[$g]+x} ]] || {
      echo "$0: unknown group $g for $uid" >&2
      exit 1
    }
    members[$g]+="uid=$uid,$people"$'\n'
  done
done

cat <<EOF
dn: $base
objectClass: top
objectClass: dcObject
objectClass: organization
dc: example
o: Example Corp

dn: $people
objectClass: organizationalUnit
ou: people

dn: $groups_dn
objectClass: organizationalUnit
ou: groups

dn: $services
objectClass: organizationalUnit
ou: services

dn: ou=policies,$base
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,$base
objectClass: applicationProcess
objectClass: pwdPolicy
cn: default
description: Default password policy (ppolicy overlay)
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
pwdLockoutDuration: 0
pwdAllowUserChange: TRUE
pwdMustChange: FALSE
pwdCheckQuality: 0

dn: cn=roomgate,$services
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: roomgate
description: roomgate service account: reads people and groups
userPassword: $service_hash

dn: $placeholder
objectClass: applicationProcess
cn: placeholder
description: Keeps groupOfNames entries valid when they have no real member
EOF
for g in "${group_names[@]}"; do
  printf 'memberOf: cn=%s,%s\n' "$g" "$groups_dn"
done
echo

for row in "${roster[@]}"; do
  IFS='|' read -r uid given sn gl <<<"$row"
  cat <<EOF
dn: uid=$uid,$people
objectClass: inetOrgPerson
uid: $uid
cn: $given $sn
givenName: $given
sn: $sn
displayName: $given $sn
mail: $uid@example.com
userPassword: $user_hash
EOF
  for g in $gl; do
    printf 'memberOf: cn=%s,%s\n' "$g" "$groups_dn"
  done
  if [[ $uid == "$locked" ]]; then
    # ppolicy: this exact value means "locked until an admin unlocks".
    echo "pwdAccountLockedTime: 000001010000Z"
  fi
  echo
done

for g in "${group_names[@]}"; do
  printf 'dn: cn=%s,%s\nobjectClass: groupOfNames\ncn: %s\ndescription: %s\n' \
    "$g" "$groups_dn" "$g" "${group_desc[$g]}"
  printf 'member: %s\n' "$placeholder"
  printf '%s' "${members[$g]:-}" | sed '/^$/d; s/^/member: /'
  echo
done
