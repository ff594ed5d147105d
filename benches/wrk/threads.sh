#!/usr/bin/env bash
# threads.sh: where the server's CPU goes per request, by thread. One node on STORE, 1,000
# sessions, RUNS runs of DURATION (8) s of wrk pairs (the bench kit's product-pairs.lua, 2
# threads, 64 connections, after 3 s of warm-up); per run: req/s, the server's CPU per
# request (user + system, from /proc/PID/stat), its context switches per request (every
# thread's, voluntary and not), then each kind of thread's user and system CPU per request
# (tokio-rt-worker, sqlite-writer, …, from /proc/PID/task/*/stat), wrk's own CPU per request
# and the machine's idle share (/proc/stat; much idle means the requests wait, not the CPU).
#
#   benches/wrk/threads.sh STORE [RUNS]   # memory://, sqlite:///tmp/x.db (replaced each run)
#                                         # or postgres://… (its public schema is replaced)
#
# For what pairs.sh and instr.sh do not show: the kernel's share (system calls, wake-ups,
# context switches; callgrind counts none of them) and which thread pays it. EXTRA adds one
# line to the configuration's [server] table (e.g. EXTRA='sqlite_synchronous = "normal"');
# PORT (18391). The host's speed moves by tens of per cent within minutes: compare two
# binaries (ACCESS_BROKER_BIN) alternating, several runs each. Builds nothing.
set -euo pipefail
STORE=${1:?store URL}; RUNS=${2:-1}
BIN=${ACCESS_BROKER_BIN:-$PWD/target/release/access-broker}
LUA=${PAIRS_LUA:-$(cd "$(dirname "$0")/../../../shared/bench-kit/wrk" && pwd)/product-pairs.lua}
PORT=${PORT:-18391}; DURATION=${DURATION:-8}; HZ=$(getconf CLK_TCK)
TMP=$(mktemp -d); SRV=
trap '[[ -n $SRV ]] && kill $SRV 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release first"; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)"; exit 1; }
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

# by_thread PID → "NAME USER_TICKS SYSTEM_TICKS" per kind of thread, sorted by name
by_thread() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "$(tr ' ' _ <"$t/comm") $(awk '{print $14, $15}' "$t/stat")"
  done | awk '{u[$1] += $2; s[$1] += $3} END {for (k in u) print k, u[k], s[k]}' | sort
}
# cpu → "IDLE TOTAL" jiffies of the whole machine (/proc/stat: idle and iowait count as idle)
cpu() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t}' /proc/stat; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }

for run in $(seq "$RUNS"); do
  fresh_store "$STORE"
  pairs_config 7000009999 1 | sed "s/^\[server\]$/[server]\n${EXTRA:-}/" >"$TMP/c.toml"
  "$BIN" serve --config "$TMP/c.toml" --listen "127.0.0.1:$PORT" --store "$STORE" >"$TMP/log" 2>&1 &
  SRV=$!
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
  kill -0 "$SRV" 2>/dev/null || { tail -3 "$TMP/log"; echo "the server did not start (port $PORT in use?)"; exit 1; }
  sessions "$PORT" "$TMP/ids"
  export PAIRS_IDS_FILE=$TMP/ids WRK_THREADS=2
  wrk -t2 -c64 -d3s -s "$LUA" "http://127.0.0.1:$PORT" >/dev/null
  by_thread "$SRV" >"$TMP/t0"; s0=$(switches "$SRV"); c0=$(cpu)
  TIMEFORMAT='%U %S'
  { time wrk -t2 -c64 -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:$PORT" >"$TMP/wrk"; } 2>"$TMP/wrk.cpu"
  rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk")
  by_thread "$SRV" >"$TMP/t1"; s1=$(switches "$SRV"); c1=$(cpu)
  kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=
  n=$(awk -v r="$rps" -v d="$DURATION" 'BEGIN {print r * d}')
  read -r i0 a0 <<<"$c0"; read -r i1 a1 <<<"$c1"; read -r wu ws <"$TMP/wrk.cpu"
  join "$TMP/t0" "$TMP/t1" | awk -v n="$n" -v hz="$HZ" -v rps="$rps" -v cs=$((s1 - s0)) -v run="$run" \
    -v idle="$(awk -v i=$((i1 - i0)) -v a=$((a1 - a0)) 'BEGIN {print 100 * i / a}')" -v wu="$wu" -v ws="$ws" '
    { u = ($4 - $2) / hz * 1e6 / n; s = ($5 - $3) / hz * 1e6 / n; tu += u; ts += s
      if (u + s > 0.005) line[++k] = sprintf("  %-16s user %5.2f  system %5.2f us/request", $1, u, s) }
    END { printf "run %d: %.0f req/s, server %.2f us/request (user %.2f, system %.2f), %.2f context switches/request\n",
            run, rps, tu + ts, tu, ts, cs / n
          for (i = 1; i <= k; i++) print line[i]
          printf "  %-16s user %5.2f  system %5.2f us/request; machine idle %.0f %%\n", "wrk (load)", wu * 1e6 / n, ws * 1e6 / n, idle }'
done
