#!/usr/bin/env python3
"""The IVR's side of access-broker, as a GMS IVR strategy does it: a call arrives on an access
number; the IVR asks match-interaction which session reserved it (with the caller's number and
the code the caller keyed in) and gets the session's fields back in the same answer.

    python3 docs/ivr-example.py --url http://127.0.0.1:8080 6504660000 --caller +15551234 --code 182713

Prints `matched session <id>` and one `  name = value` line per stored field, exit 0; or
`no match: <message>` (and the reason, when the service is configured with
`return_failure_reason = true`), exit 1; or `error: …` when the broker could not answer, exit 2
(an IVR would route such a call to an agent with no context rather than drop it).
Standard library only. Credentials: --user/--password, or ACCESS_BROKER_USER/_PASSWORD.
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


def match(url, dialled, caller, code, user, password, timeout):
    fields = {"_access_number": dialled, "_return_data": "true"}
    if caller:
        fields["_phone_number"] = caller
    if code:
        fields["_access_code"] = code
    request = urllib.request.Request(
        url.rstrip("/") + "/genesys/1/service/match-interaction",
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Accept": "application/json"},
        method="POST",
    )
    if user:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as failed:
        try:
            return failed.code, json.load(failed)
        except ValueError:
            return failed.code, {"message": failed.reason, "exception": ""}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dialled", help="the access number the caller dialled (DNIS)")
    p.add_argument("--caller", help="the caller's number (ANI), matched if the reservation has one")
    p.add_argument("--code", help="the access code the caller keyed in")
    p.add_argument("--url", default=os.environ.get("ACCESS_BROKER_URL", "http://127.0.0.1:8080"))
    p.add_argument("--user", default=os.environ.get("ACCESS_BROKER_USER"))
    p.add_argument("--password", default=os.environ.get("ACCESS_BROKER_PASSWORD"))
    p.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    a = p.parse_args()

    try:
        status, body = match(a.url, a.dialled, a.caller, a.code, a.user, a.password, a.timeout)
    except (OSError, ValueError) as e:  # refused, timed out, not JSON
        print(f"error: {a.url} did not answer: {e}")
        return 2
    if status == 200:
        late = " (late call: its reservation had just ended)" if body.get("_late_match") == "true" else ""
        print(f"matched session {body['_id']}{late}")
        for name, value in body.items():
            if name not in ("_id", "_data_id", "_late_match"):
                print(f"  {name} = {value}")
        print(f"  (data id {body.get('_data_id', '')})")
        return 0
    if status == 404 and body.get("exception") == "NoMatch":
        reason = f" (reason: {body['reason']})" if "reason" in body else ""
        print(f"no match: {body.get('message', '')}{reason}")
        return 1
    print(f"error: HTTP {status} {body.get('exception', '')}: {body.get('message', '')}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
