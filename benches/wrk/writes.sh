#!/usr/bin/env bash
# writes.sh: the write paths besides the pairs, driven by wrk (writes.lua): a session's
# creation then its end, a storage entry's creation, change and delete, and a
# request-interaction then the match that gives its number back, each kind of
# call following the one before on the same id. One node on STORE, RUNS runs of DURATION
# (10) s each kind after 2 s of warm-up, wrk 2 threads and CONNS (64) connections; prints
# req/s, the median and 99th percentile latency and the non-2xx count per kind and run
# (CONNS=1: each call's own time, its round trips to the store, with no batch to share). For the batches of session ends, storage writes and
# request-interactions on PostgreSQL (each kind's calls waiting together in one
# transaction): compare two binaries alternating (ACCESS_BROKER_BIN), the host's speed
# moves within minutes.
#
#   benches/wrk/writes.sh STORE [RUNS]   # memory://, sqlite:///tmp/x.db (replaced each run)
#                                        # or postgres://… (its public schema is replaced)
#
# PORT (18392). Builds nothing: target/release/access-broker unless ACCESS_BROKER_BIN.
set -euo pipefail
STORE=${1:?usage: writes.sh STORE [RUNS]}
RUNS=${2:-1}
BIN=${ACCESS_BROKER_BIN:-$PWD/target/release/access-broker}
LUA=$(cd "$(dirname "$0")" && pwd)/writes.lua
PORT=${PORT:-18392}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=$((CONNS < 2 ? 1 : 2))
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release first"; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)"; exit 1; }
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
TMP=$(mktemp -d)
SRV=
cleanup() { [[ -n $SRV ]] && kill "$SRV" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

for run in $(seq "$RUNS"); do
  fresh_store "$STORE"
  { pairs_config 7000000999 1; printf '[services.request-interaction]\ntype = "request-interaction"\n_resource_group = "DNIS"\n_ttl = 60\n'; } >"$TMP/c.toml"
  "$BIN" serve --config "$TMP/c.toml" --listen "127.0.0.1:$PORT" --store "$STORE" >"$TMP/log" 2>&1 &
  SRV=$!
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
  kill -0 "$SRV" 2>/dev/null || { tail -3 "$TMP/log"; echo "the server did not start (port $PORT in use?)"; exit 1; }
  for kind in sessions storage interactions; do
    WRITES=$kind wrk -t"$THREADS" -c"$CONNS" -d2s -s "$LUA" "http://127.0.0.1:$PORT" >/dev/null
    WRITES=$kind wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$LUA" \
      "http://127.0.0.1:$PORT" >"$TMP/wrk"
    rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk")
    p50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk")
    non2xx=$(awk '/Non-2xx/ {print $5}' "$TMP/wrk")
    echo "run $run: $kind ${rps} req/s, p50 $p50, p99 $p99, non-2xx ${non2xx:-0}"
  done
  kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=
done
