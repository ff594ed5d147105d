#!/usr/bin/env bash
# scale.sh: request-access + match-interaction pairs driven by wrk (the bench kit's
# product-pairs.lua, as ../shared/bench-kit/pairs.sh does), for what pairs.sh does not give:
# the same store with a pool of 100 and of 1,000,000 numbers (flat in pool size), three nodes
# on one PostgreSQL against one node (the cluster scales out), and a flame graph.
#
#   benches/wrk/scale.sh pool  STORE_URL      # e.g. memory://  sqlite:///tmp/x.db  postgres://…
#   benches/wrk/scale.sh nodes POSTGRES_URL   # a database of its own; its tables are replaced
#   benches/wrk/scale.sh flame STORE_URL OUT.svg
#
# nodes with NODE_CPU (e.g. 0.2): each node runs in a cgroup of its own (cgroup v1 `cpu`,
# root only) capped at that share of one core, as if each had a small machine of its own:
# on two cores shared by every node, PostgreSQL and wrk, three uncapped nodes only divide the
# same CPU (0.54-0.80x of one), so this is how the cluster's scale-out shows here at all.
#
# flame: needs perf and inferno (cargo install inferno); samples the server process (999 Hz,
# DWARF call graphs) for 8 s of a 10 s run, or every process with SYSTEM=1 (PostgreSQL's
# backends included, frame pointers), and writes the SVG.
#
# Builds nothing: uses target/release/access-broker (cargo build --release first). wrk 2
# threads, 64 connections in all, DURATION (10) s after WARMUP (2) s, 1,000 sessions; every
# process is on loopback and stopped on exit. Prints one line per measurement and the ratio.
set -euo pipefail
MODE=${1:?pool or nodes}; STORE=${2:?store URL}
BIN=${ACCESS_BROKER_BIN:-$PWD/target/release/access-broker}
LUA=${PAIRS_LUA:-$(cd "$(dirname "$0")/../../../shared/bench-kit/wrk" && pwd)/product-pairs.lua}
DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}; SESSIONS=${SESSIONS:-1000}
TMP=$(mktemp -d); PIDS=(); CGROUPS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; for g in "${CGROUPS[@]}"; do rmdir "$g" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release first"; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)"; exit 1; }

# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"


# cap PID NODE: the process into a cgroup of its own, NODE_CPU of one core (when set)
cap() {
  [[ -n ${NODE_CPU:-} ]] || return 0
  local g=/sys/fs/cgroup/cpu/access-broker-bench-node$2
  mkdir -p "$g" || { echo "NODE_CPU needs root and cgroup v1 cpu at /sys/fs/cgroup/cpu"; exit 1; }
  CGROUPS+=("$g")
  echo 100000 >"$g/cpu.cfs_period_us"
  local quota
  quota=$(python3 -c "print(int(100000 * float('$NODE_CPU')))")
  echo "$quota" >"$g/cpu.cfs_quota_us" # one write: the kernel refuses a lone newline
  echo "$1" >"$g/cgroup.procs" # its threads, and those it makes later
}

start() { # start PORT LAST_NUMBER NODE STORE → waits until it answers
  pairs_config "$2" "$3" >"$TMP/node$3.toml"
  "$BIN" serve --config "$TMP/node$3.toml" --listen "127.0.0.1:$1" --store "$4" >"$TMP/node$3.log" 2>&1 &
  PIDS+=($!)
  cap "$!" "$3"
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$1/health" && return; sleep 0.1; done
  tail -3 "$TMP/node$3.log"; exit 1
}


stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }

# wrk_pairs IDS_FILE THREADS CONNS URL → req/s
wrk_pairs() {
  PAIRS_IDS_FILE=$1 WRK_THREADS=$2 wrk -t"$2" -c"$3" -d"${WARMUP}s" -s "$LUA" "$4" >/dev/null
  PAIRS_IDS_FILE=$1 WRK_THREADS=$2 wrk -t"$2" -c"$3" -d"${DURATION}s" -s "$LUA" "$4" |
    awk '/Requests\/sec/ {print $2}'
}

case $MODE in
pool)
  for last in 7000000099 7000999999; do
    fresh_store "$STORE"; start 18391 "$last" 1 "$STORE"; sessions 18391 "$TMP/ids"
    rps=$(wrk_pairs "$TMP/ids" 2 64 http://127.0.0.1:18391)
    echo "pool $((last - 7000000000 + 1)) numbers: pairs $rps req/s"
    echo "$rps" >>"$TMP/pool"; stop_all
  done
  python3 -c "import sys; a, b = [float(x) for x in open('$TMP/pool')]; print('1,000,000 vs 100 = %.0f %%' % (100 * b / a))"
  ;;
nodes)
  fresh_store "$STORE"; start 18391 7000009999 1 "$STORE"; sessions 18391 "$TMP/ids"
  one=$(wrk_pairs "$TMP/ids" 2 64 http://127.0.0.1:18391)
  echo "1 node: pairs $one req/s"
  start 18392 7000009999 2 "$STORE"; start 18393 7000009999 3 "$STORE"
  # Each node gets its own third of the sessions and of the connections (wrk 1 thread each).
  for k in 0 1 2; do awk -v k=$k 'NR % 3 == k' "$TMP/ids" >"$TMP/ids$k"; done
  loads=()
  for k in 0 1 2; do PAIRS_IDS_FILE=$TMP/ids$k WRK_THREADS=1 wrk -t1 -c21 -d"${WARMUP}s" -s "$LUA" "http://127.0.0.1:1839$((k + 1))" >/dev/null & loads+=($!); done
  wait "${loads[@]}"; loads=()
  for k in 0 1 2; do
    PAIRS_IDS_FILE=$TMP/ids$k WRK_THREADS=1 wrk -t1 -c21 -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:1839$((k + 1))" |
      awk '/Requests\/sec/ {print $2}' >"$TMP/n$k" &
    loads+=($!)
  done
  wait "${loads[@]}"
  three=$(cat "$TMP"/n0 "$TMP"/n1 "$TMP"/n2 | awk '{s += $1} END {print s}')
  echo "3 nodes: pairs $three req/s ($(cat "$TMP"/n0 "$TMP"/n1 "$TMP"/n2 | paste -sd' '))"
  python3 -c "print('3 nodes vs 1 = %.2fx' % ($three / $one))"
  ;;
flame)
  OUT=${3:?output .svg}
  for t in perf inferno-collapse-perf inferno-flamegraph; do
    command -v $t >/dev/null || { echo "$t not found"; exit 1; }
  done
  fresh_store "$STORE"; start 18391 7000009999 1 "$STORE"; sessions 18391 "$TMP/ids"
  export PAIRS_IDS_FILE=$TMP/ids WRK_THREADS=2
  wrk -t2 -c64 -d3s -s "$LUA" http://127.0.0.1:18391 >/dev/null
  if [[ ${SYSTEM:-0} == 1 ]]; then
    perf record -F 499 -a -g -o "$TMP/perf.data" -- sleep 8 2>/dev/null &
  else
    perf record -F 999 -g --call-graph dwarf,16384 -p "${PIDS[0]}" -o "$TMP/perf.data" -- sleep 8 2>/dev/null &
  fi
  rec=$!
  wrk -t2 -c64 -d10s -s "$LUA" http://127.0.0.1:18391 | awk '/Requests\/sec/ {print "pairs under the profiler: " $2 " req/s"}'
  wait "$rec"
  perf script -i "$TMP/perf.data" 2>/dev/null | inferno-collapse-perf >"$TMP/folded"
  inferno-flamegraph --minwidth 0.2 --title "access-broker pairs on ${STORE%%:*}" <"$TMP/folded" >"$OUT"
  echo "wrote $OUT"
  ;;
*) echo "mode: pool, nodes or flame"; exit 2;;
esac
