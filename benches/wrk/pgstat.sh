#!/usr/bin/env bash
# pgstat.sh: one node on a PostgreSQL database of its own, 1,000 sessions, ROUNDS rounds of
# 10 s of wrk pairs (the bench kit's product-pairs.lua); per round req/s, p99 and the CPU
# each request cost the server and PostgreSQL (every `postgres` process, from /proc), then
# the tables' update and HOT counts and sizes (pg_stat_user_tables). For what pairs.sh does
# not show: where the CPU goes and whether the numbers' updates stay heap-only.
#
#   benches/wrk/pgstat.sh POSTGRES_URL [ROUNDS]   # the database's public schema is replaced
#
# CONNS (64) sets wrk's connections; RUST_LOG=access_broker::store::postgres::batch=debug
# with SRVLOG=FILE keeps each batch's size and times. Builds nothing: target/release.
set -euo pipefail
DB=${1:?postgres URL}; ROUNDS=${2:-1}
BIN=${ACCESS_BROKER_BIN:-$PWD/target/release/access-broker}
LUA=${PAIRS_LUA:-$(cd "$(dirname "$0")/../../../shared/bench-kit/wrk" && pwd)/product-pairs.lua}
PORT=${PORT:-18190}; CONNS=${CONNS:-64}
TMP=$(mktemp -d); SRV=
trap '[[ -n $SRV ]] && kill $SRV 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release first"; exit 1; }
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
fresh_store "$DB"
pairs_config 7000009999 1 >"$TMP/c.toml"
"$BIN" serve --config "$TMP/c.toml" --listen "127.0.0.1:$PORT" --store "$DB" >"${SRVLOG:-$TMP/log}" 2>&1 &
SRV=$!
for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
sessions "$PORT" "$TMP/ids"
ticks() { local s=0 p; for p in "$@"; do [[ -r /proc/$p/stat ]] && s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$s"; }
pairs() { PAIRS_IDS_FILE=$TMP/ids WRK_THREADS=2 wrk -t2 -c"$CONNS" -d"$1" --latency -s "$LUA" "http://127.0.0.1:$PORT"; }
pairs 2s >/dev/null
hz=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
  s0=$(ticks $SRV); p0=$(ticks $(pgrep -x postgres))
  out=$(pairs 10s)
  s1=$(ticks $SRV); p1=$(ticks $(pgrep -x postgres))
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  n=$(python3 -c "print(max(1, int(float('$rps') * 10)))")
  echo "round $r: $rps req/s, p99 $p99; CPU per request: server $(( (s1 - s0) * 1000000 / hz / n )) µs, postgres $(( (p1 - p0) * 1000000 / hz / n )) µs"
done
psql "${DB%%\?*}" -Atc "SELECT relname || ': updates ' || n_tup_upd || ', HOT ' || n_tup_hot_upd || ', dead ' || n_dead_tup || ', heap ' || pg_relation_size(relid) / 8192 || ' pages, indexes ' || pg_indexes_size(relid) / 8192 || ' pages' FROM pg_stat_user_tables WHERE relname IN ('numbers', 'sessions', 'groups') ORDER BY relname"
