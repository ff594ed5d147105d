#!/usr/bin/env bash
# Two access-broker nodes on one PostgreSQL: a reservation made through node 1 is matched
# through node 2. Safe to paste or run from anywhere:
#
#   bash docs/cluster-example.sh
#
# - PG: the database to use (default postgres://postgres@127.0.0.1:5432/postgres). The example
#   creates its own schema there (access_broker_example_…) and drops it at the end, so it
#   never reads or writes anyone else's tables.
# - ACCESS_BROKER_BIN: the binary (or a command, e.g. "cargo run --release --"); default
#   target/release/access-broker of this checkout, built first if missing.
# - Needs curl, jq and psql. Everything it writes goes to a `mktemp -d` directory that is
#   removed on exit; the nodes are stopped on exit, whatever happened.
set -euo pipefail

PG=${PG:-postgres://postgres@127.0.0.1:5432/postgres}
READY_TRIES=${READY_TRIES:-60} # half-second steps: 30 s for a node to listen, then to be ready

for tool in curl jq psql; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install $tool)" >&2; exit 1; }
done

if [[ -n ${ACCESS_BROKER_BIN:-} ]]; then
  read -r -a BIN <<<"$ACCESS_BROKER_BIN"
else
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [[ ! -x $root/target/release/access-broker ]]; then
    echo "building the release binary (cargo build --release) ..."
    (cd "$root" && cargo build --release --quiet)
  fi
  BIN=("$root/target/release/access-broker")
fi

DIR=$(mktemp -d)
SCHEMA="access_broker_example_$$_$RANDOM"
PIDS=()
schema_made=false

cleanup() {
  local status=$?
  trap - EXIT
  if ((${#PIDS[@]})); then
    echo "stopping the nodes (SIGTERM) ..."
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
  if [[ $status -ne 0 ]]; then
    for log in "$DIR"/node*.log; do
      [[ -f $log ]] && { echo "--- last lines of $log:"; tail -n 20 "$log"; } >&2
    done
  fi
  if $schema_made; then
    echo "dropping schema $SCHEMA ..."
    psql -q "$PG" -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null ||
      echo "warning: could not drop schema $SCHEMA; drop it by hand" >&2
  fi
  rm -rf "$DIR"
  echo "removed $DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "working in $DIR"
psql -q -v ON_ERROR_STOP=1 "$PG" -c "CREATE SCHEMA $SCHEMA" >/dev/null
schema_made=true
# Every connection of both nodes uses that schema (libpq's options=-csearch_path=…).
case $PG in *\?*) sep='&' ;; *) sep='?' ;; esac
STORE="$PG${sep}options=-csearch_path%3D$SCHEMA"
echo "created schema $SCHEMA in ${PG%%\?*}"

# Both nodes get the same groups and services; only node_id differs.
for n in 1 2; do
  cat >"$DIR/node$n.toml" <<EOF
[server]
node_id = "$n"

[resource_groups.DNIS]
numbers = ["6504660000-6504660009"]
allocation = "round-robin"
booking_expiration_timeout = 60

[services.request-access]
type = "request-access"
_resource_group = "DNIS"

[services.match-interaction]
type = "match-interaction"

[services.callback]
type = "session"
_ttl = 300
EOF
done

# Starts node $1 on a free port and prints its base URL once /ready answers 200.
start_node() {
  local n=$1 log="$DIR/node$1.log" addr="" i
  : >"$log" # exists before the node opens it, so the first look below cannot fail
  "${BIN[@]}" serve --config "$DIR/node$n.toml" --listen 127.0.0.1:0 --store "$STORE" \
    >/dev/null 2>"$log" &
  PIDS+=($!)
  for ((i = 0; i < READY_TRIES; i++)); do
    addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$log" | head -n 1 || true)
    [[ -n $addr ]] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "error: node $n exited before listening" >&2; return 1; }
    sleep 0.5
  done
  [[ -n $addr ]] || { echo "error: node $n printed no 'listening on' line in $((READY_TRIES / 2)) s" >&2; return 1; }
  for ((i = 0; i < READY_TRIES; i++)); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$addr/ready") == 200 ]]; then
      echo "node $n: listening on $addr, /ready 200"
      URL[$n]="http://$addr"
      return 0
    fi
    sleep 0.5
  done
  echo "error: node $n on $addr never answered /ready with 200 in $((READY_TRIES / 2)) s (is PostgreSQL reachable?)" >&2
  return 1
}

# POSTs form fields to $1 (a URL), prints the call and the answer; fails unless 200.
post() {
  local url=$1 status
  shift
  local args=()
  for field in "$@"; do args+=(--data-urlencode "$field"); done
  echo "\$ curl $url ${*/#/-d }"
  status=$(curl -sS -o "$DIR/body.json" -w '%{http_code}' "${args[@]}" "$url")
  echo "HTTP $status $(cat "$DIR/body.json")"
  [[ $status == 200 ]] || { echo "error: expected HTTP 200" >&2; return 1; }
}

declare -a URL
start_node 1
start_node 2

echo
echo "# 1. Through node 1: the app creates a session holding its context"
post "${URL[1]}/genesys/1/service/callback" who=Ann reason=billing
ID=$(jq -r ._id "$DIR/body.json")

echo
echo "# 2. Through node 1: it asks for an access number with a code"
post "${URL[1]}/genesys/1/service/request-access" "_id=$ID" _provide_code=true
NUMBER=$(jq -r ._access_number "$DIR/body.json")
CODE=$(jq -r ._access_code "$DIR/body.json")

echo
echo "# 3. Through node 2: the IVR matches the dialled number and the keyed code"
post "${URL[2]}/genesys/1/service/match-interaction" "_access_number=$NUMBER" "_access_code=$CODE" _return_data=true
MATCHED=$(jq -r ._id "$DIR/body.json")
[[ $MATCHED == "$ID" ]] || { echo "error: node 2 matched session $MATCHED, not $ID" >&2; exit 1; }

echo
echo "OK: reserved $NUMBER through node 1, matched session $ID through node 2"
