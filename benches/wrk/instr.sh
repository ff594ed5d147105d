#!/usr/bin/env bash
# instr.sh: instructions per request-access + match-interaction pair, counted by callgrind.
# Instruction counts repeat within a few per cent on a loaded machine, where wall clock does
# not: this is how a change to the server's own work (the SQLite writer's above all) is judged
# while other runs share the machine.
#
#   benches/wrk/instr.sh [STORE]    # sqlite (default), memory, or a postgres:// URL (a
#                                   # database of its own: its public schema is replaced)
#
# Runs the release binary (ACCESS_BROKER_BIN, default target/release/access-broker) under
# `valgrind --tool=callgrind --separate-threads=yes` twice, each on a fresh store: the pairs
# configuration of common.sh (1,000 numbers), SESSIONS (32) sessions, then SMALL (200) and
# BIG (1,800) pairs from CLIENTS (32) concurrent clients, each sequential on its own keep-alive
# connection (python3). Start-up, sessions and shutdown cost the same in both runs, so
#   instructions per pair = (Ir(BIG) − Ir(SMALL)) / (BIG − SMALL)
# counts only the pairs; printed for the whole process and for the SQLite writer thread (the
# thread whose profile holds `store::sqlite::apply`), with the pairs per commit. The writer's
# figure depends on how many pairs a commit covers, which grows when the machine is busy (the
# writer falls behind): compare binaries alternating, at the same CLIENTS and similar pairs
# per commit; CLIENTS=1 makes it exact (two commits a pair). Port PORT (18301); KEEP=1 keeps
# the profiles (callgrind_annotate them); builds nothing.
set -euo pipefail
STORE=${1:-sqlite}
BIN=${ACCESS_BROKER_BIN:-$PWD/target/release/access-broker}
SMALL=${SMALL:-200}; BIG=${BIG:-1800}; CLIENTS=${CLIENTS:-32}; PORT=${PORT:-18301}
export SESSIONS=${SESSIONS:-32}
TMP=$(mktemp -d); PID=
trap '[[ -n $PID ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; [[ -n ${KEEP:-} ]] && echo "kept $TMP" >&2 || rm -rf "$TMP"' EXIT
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release first"; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind not found"; exit 1; }
case $STORE in sqlite | memory | postgres://* | postgresql://*) ;; *) echo "store: sqlite, memory or postgres://…"; exit 2;; esac

# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
pairs_config 7000000999 1 >"$TMP/node.toml"

pairs() { # pairs PORT IDS_FILE COUNT CLIENTS: COUNT pairs, each client on its own sessions
  python3 - "$@" <<'PY'
import http.client, json, sys, threading, urllib.parse
port, ids, count, clients = int(sys.argv[1]), open(sys.argv[2]).read().split(), int(sys.argv[3]), int(sys.argv[4])
form = {"Content-Type": "application/x-www-form-urlencoded"}
failures = []
def post(c, service, fields):
    c.request("POST", "/genesys/1/service/" + service, urllib.parse.urlencode(fields), form)
    r = c.getresponse(); body = r.read()
    if r.status != 200:
        raise RuntimeError("%s: %d %s" % (service, r.status, body[:200]))
    return json.loads(body)
def client(k):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        mine = ids[k::clients]
        for i in range(count // clients + (k < count % clients)):
            a = post(c, "request-access", {"_id": mine[i % len(mine)], "_resource_group": "DNIS", "_provide_code": "true"})
            post(c, "match-interaction", {"_access_number": a["_access_number"], "_access_code": a["_access_code"]})
    except Exception as e:
        failures.append(e)
threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
if failures:
    sys.exit("pairs failed: %s" % failures[0])
PY
}

run() { # run COUNT → prints "TOTAL_IR WRITER_IR"
  local out=$TMP/cg.$1 store=memory://
  [[ $STORE == sqlite ]] && store=sqlite://$TMP/run$1.db
  if [[ $STORE == postgres* ]]; then # only the server is counted, not PostgreSQL's backends
    store=$STORE
    fresh_store "$STORE"
  fi
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out" \
    "$BIN" serve --config "$TMP/node.toml" --listen "127.0.0.1:$PORT" --store "$store" \
    >"$TMP/log.$1" 2>&1 &
  PID=$!
  local up=
  for _ in $(seq 1200); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && { up=1; break; }
    sleep 0.1
  done
  [[ -n $up ]] || { tail -5 "$TMP/log.$1" >&2; exit 1; }
  sessions "$PORT" "$TMP/ids"
  pairs "$PORT" "$TMP/ids" "$1" "$CLIENTS"
  kill -TERM "$PID"; wait "$PID" || true; PID=
  local total writer=0 commits=0 f
  total=$(awk '/^totals:/ {s += $2} END {print s}' "$out"-*)
  for f in "$out"-*; do
    if grep -q 'store::sqlite::apply::' "$f"; then
      writer=$(awk '/^totals:/ {print $2}' "$f")
      commits=$(commits "$f")
    fi
  done
  echo "$total $writer $commits"
}

commits() { # commits PROFILE: calls of SQLite's commit (sqlite3PagerCommitPhaseOne*) in it
  awk '/^c?fn=\(/ { id = $1; sub(/^c?fn=/, "", id); if (NF > 1) name[id] = $2 }
       /^cfn=/ { callee = name[id] }
       /^calls=/ { if (callee ~ /^sqlite3PagerCommitPhaseOne/) { split($1, c, "="); n += c[2] }; callee = "" }
       END { print n + 0 }' "$1"
}

# In this shell, not a subshell: a failed run stops the script and the trap stops valgrind.
run "$SMALL" >"$TMP/small"; read -r small_all small_writer small_commits <"$TMP/small"
run "$BIG" >"$TMP/big"; read -r big_all big_writer big_commits <"$TMP/big"
python3 - "$SMALL" "$BIG" "$small_all" "$big_all" "$small_writer" "$big_writer" "$STORE" "$CLIENTS" \
  "$small_commits" "$big_commits" <<'PY'
import sys
small, big, a0, a1, w0, w1, store, clients, c0, c1 = sys.argv[1:]
n = int(big) - int(small)
print("%s, %s concurrent clients: %s and %s pairs" % (store, clients, small, big))
print("instructions per pair: %.1fk total" % ((int(a1) - int(a0)) / n / 1000))
if int(w1):
    print("instructions per pair: %.1fk writer thread" % ((int(w1) - int(w0)) / n / 1000))
if int(c1) > int(c0):
    print("pairs per commit: %.2f" % (n / (int(c1) - int(c0))))
PY
