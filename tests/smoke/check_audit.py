"""The audit trail survives a process abort (AU2), checked on a running `praxis serve --demo`
through grpcurl (server reflection, no stubs):

    python3 check_audit.py logins IDENTITY_ADDR EMAIL COUNT
        COUNT failed logins for EMAIL; each writes an event to identity's outbox. The caller
        then kills the server with SIGKILL, before the relay has delivered them all.

    python3 check_audit.py verify DIRECTORY_ADDR TOKEN USER_ID COUNT
        After a restart: the trail holds exactly COUNT failed logins for USER_ID, each id once,
        and VerifyChain finds the chain intact.
"""

import json
import pathlib
import subprocess
import sys
import time

GRPCURL = str(pathlib.Path(sys.executable).parent / "grpcurl")


def call(address, method, body, token=None, check=True):
    command = [GRPCURL, "-plaintext", "-d", json.dumps(body)]
    if token:
        command += ["-H", f"authorization: Bearer {token}"]
    command += [address, method]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise SystemExit(f"{method}: {done.stderr.strip()}")
    return done


def logins(address, email, count):
    for _ in range(count):
        done = call(address, "praxis.identity.v1.AuthService/Login",
                    {"email": email, "password": "not the password"}, check=False)
        if "Unauthenticated" not in done.stderr:
            raise SystemExit(f"a wrong password was not refused: {done.stdout} {done.stderr}")
    print(f"{count} failed logins for {email} committed to identity's outbox")


def failed_logins(address, token, user_id):
    events, page = [], ""
    while True:
        body = {"filter": {"action": "login", "targetType": "user", "targetId": user_id,
                           "outcome": "OUTCOME_FAILURE"}, "pageSize": 100, "pageToken": page}
        answer = json.loads(call(address, "praxis.audit.v1.AuditService/ListEvents", body, token).stdout or "{}")
        events += answer.get("events", [])
        page = answer.get("nextPageToken", "")
        if not page:
            return events


def verify(address, token, user_id, count):
    deadline = time.time() + 30
    events = failed_logins(address, token, user_id)
    while len(events) < count and time.time() < deadline:
        time.sleep(0.5)
        events = failed_logins(address, token, user_id)
    ids = [event["id"] for event in events]
    if len(events) != count or len(set(ids)) != count:
        raise SystemExit(f"expected {count} failed logins once each, found {len(events)} ({len(set(ids))} distinct)")
    chain = json.loads(call(address, "praxis.audit.v1.AuditService/VerifyChain", {}, token).stdout)
    if not chain.get("intact"):
        raise SystemExit(f"the chain is broken after the abort: {chain}")
    print(f"after SIGKILL and restart: {count} failed logins in the trail, each once; "
          f"VerifyChain intact over {chain.get('eventsChecked')} events")


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "logins":
        logins(rest[0], rest[1], int(rest[2]))
    elif mode == "verify":
        verify(rest[0], rest[1], rest[2], int(rest[3]))
    else:
        raise SystemExit(__doc__)
