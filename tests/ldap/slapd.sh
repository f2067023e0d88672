#!/usr/bin/env bash
# Runs a test OpenLDAP directory (Debian's slapd) on 127.0.0.1:PORT, loaded with
# tests/ldap/directory.ldif, in the foreground: kill it to stop it. Used by
# signaling/tests/directory_sign_in.rs and tests/e2e/run.sh.
#
#   tests/ldap/slapd.sh DIR PORT     (DIR: an empty folder for its database)
set -euo pipefail
DIR=$1
PORT=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -x /usr/sbin/slapd ] || { echo "/usr/sbin/slapd is missing: apt-get install slapd (scripts/test.sh does)" >&2; exit 2; }
mkdir -p "$DIR/db"
cat >"$DIR/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $DIR/slapd.pid
database mdb
maxsize 10485760
suffix "dc=pref,dc=example"
rootdn "cn=admin,dc=pref,dc=example"
rootpw admin-pass-0
directory $DIR/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
CONF
if ! /usr/sbin/slapadd -f "$DIR/slapd.conf" -l "$HERE/directory.ldif" >"$DIR/slapadd.log" 2>&1; then
  cat "$DIR/slapadd.log" >&2
  exit 1
fi
exec /usr/sbin/slapd -f "$DIR/slapd.conf" -h "ldap://127.0.0.1:$PORT/" -d 0
