# shellcheck shell=bash
# common.sh: what the scripts here share (sourced): the pairs workload's configuration, a
# fresh store and its sessions.
# The bench kit's pairs.sh writes the same one: a round-robin group DNIS of numbers
# 7000000000..LAST, 30 s reservations, request-access, match-interaction and a session
# service `callback`.
pairs_config() { # pairs_config LAST_NUMBER NODE_ID
  cat <<TOML
[server]
node_id = "$2"
[resource_groups.DNIS]
numbers = ["7000000000-$1"]
allocation = "round-robin"
booking_expiration_timeout = 30
[services.request-access]
type = "request-access"
_resource_group = "DNIS"
[services.match-interaction]
type = "match-interaction"
[services.callback]
type = "session"
_ttl = 3600
TOML
}

fresh_store() { # fresh_store STORE_URL: an embedded file removed, a PostgreSQL database's
  # public schema emptied (the store makes its tables again); its notices are not printed
  case $1 in
  sqlite://*) rm -f "${1#sqlite://}"* ;;
  postgres*) PGOPTIONS='-c client_min_messages=warning' psql "${1%%\?*}" -qc "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public" >/dev/null ;;
  esac
}

sessions() { # sessions PORT FILE
  python3 - "$1" "$2" "${SESSIONS:-1000}" <<'PY'
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
ids = []
for n in range(int(sys.argv[3])):
    c.request("POST", "/genesys/1/service/callback", "customer=%d" % n,
              {"Content-Type": "application/x-www-form-urlencoded"})
    ids.append(json.loads(c.getresponse().read())["_id"])
open(sys.argv[2], "w").write("\n".join(ids) + "\n")
PY
}
