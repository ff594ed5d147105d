#!/usr/bin/env bash
# The README walk-through, runnable: start `cargo run --release` in another terminal first,
# then `bash docs/walkthrough.sh` prints each command and its real output (needs curl and jq).
set -euo pipefail
cd "$(mktemp -d)"
B=${B:-http://127.0.0.1:8080/genesys/1}
step() { echo; echo "# $1"; }
run() { echo "\$ $1"; eval "$1"; }

step "1. The app creates a session holding its context:"
run 'curl -s $B/service/callback -d firstname=Ann -d reason=billing | tee session.json; echo'
run 'ID=$(jq -r ._id session.json)'
step "2. It asks for an access number with a code, held 60 s:"
run 'curl -s $B/service/request-access -d _id=$ID -d _provide_code=true -d _booking_expiration_timeout=60 | tee access.json; echo'
run 'NUMBER=$(jq -r ._access_number access.json); CODE=$(jq -r ._access_code access.json)'
step "3. The caller dials it; the IVR matches the dialled number and the keyed code:"
run 'curl -s $B/service/match-interaction -d _access_number=$NUMBER -d _access_code=$CODE -d _return_data=true | tee match.json; echo'
step "4. The IVR reads the context by its storage id:"
run 'curl -s $B/storage/$(jq -r ._data_id match.json); echo'
step "5. The reservation ended: no live reservation on the number, which rests 30 s (cool_down):"
run 'curl -s "$B/admin/reservations?number=$NUMBER"; echo'
run "curl -s \$B/admin/groups | jq -c '.groups[] | {name, size, free, reserved, cooling}'"
step "6. A retried match within 30 s (late_match_grace) gets the same session, marked late:"
run 'curl -s -w " HTTP %{http_code}\n" $B/service/match-interaction -d _access_number=$NUMBER -d _access_code=$CODE'
