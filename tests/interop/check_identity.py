"""Checks identity against software we did not write, on a running `praxis serve --demo`:

- an access token from Login verifies with PyJWT using nothing but the JWKS endpoint, and a
  tampered one does not;
- pyotp computes the RFC 6238 vectors our TOTP unit test uses, and a code pyotp derives from
  the otpauth URI identity hands out is accepted for enrolment and for login.

Calls go through grpcurl (server reflection), so no stubs are generated here.

    python3 check_identity.py IDENTITY_ADDR JWKS_URL EMAIL PASSWORD
"""

import base64
import json
import pathlib
import subprocess
import sys
import time

import jwt
import pyotp

GRPCURL = str(pathlib.Path(sys.executable).parent / "grpcurl")


def call(address, method, body, token=None):
    command = [GRPCURL, "-plaintext", "-d", json.dumps(body)]
    if token:
        command += ["-H", f"authorization: Bearer {token}"]
    command += [address, method]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise SystemExit(f"{method}: {done.stderr.strip()}")
    return json.loads(done.stdout or "{}")


def rfc6238_vectors():
    table = json.loads((pathlib.Path(__file__).parent / "rfc6238_vectors.json").read_text())
    secret = base64.b32encode(table["secret_ascii"].encode()).decode()
    totp = pyotp.TOTP(secret, digits=table["digits"], interval=table["period"])
    for vector in table["vectors"]:
        got = totp.at(vector["time"])
        if got != vector["code"]:
            raise SystemExit(f"pyotp at {vector['time']}: {got} != {vector['code']}")
    print(f"pyotp agrees with the {len(table['vectors'])} RFC 6238 vectors our TOTP test uses")


def main(address, jwks_url, email, password):
    rfc6238_vectors()
    login = call(address, "praxis.identity.v1.AuthService/Login", {"email": email, "password": password})
    tokens = login["step"]["tokens"]
    access = tokens["accessToken"]

    keys = jwt.PyJWKClient(jwks_url)
    key = keys.get_signing_key_from_jwt(access)
    claims = jwt.decode(access, key.key, algorithms=["EdDSA"], audience="praxis", issuer="praxis-identity")
    assert claims["sid"] == tokens["sessionId"], claims
    header, payload, signature = access.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["kind"] = "PLATFORM_ADMIN"
    tampered = ".".join([header, base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("="), signature])
    try:
        jwt.decode(tampered, key.key, algorithms=["EdDSA"], audience="praxis", issuer="praxis-identity")
        raise SystemExit("PyJWT accepted a tampered token")
    except jwt.InvalidSignatureError:
        pass
    print(f"PyJWT verified the access token with the JWKS at {jwks_url} alone (kid {key.key_id}); a tampered one failed")

    uri = call(address, "praxis.identity.v1.TwoFactorService/StartTotpEnrollment", {}, access)["otpauthUri"]
    totp = pyotp.parse_uri(uri)
    confirmed = call(address, "praxis.identity.v1.TwoFactorService/ConfirmTotpEnrollment", {"code": totp.now()}, access)
    assert len(confirmed["recoveryCodes"]) == 10, confirmed
    challenge = call(address, "praxis.identity.v1.AuthService/Login", {"email": email, "password": password})["step"]["challenge"]
    assert challenge["kind"] == "CHALLENGE_KIND_TWO_FACTOR", challenge
    # The enrolment spent the current step; the next one is within the accepted skew.
    code = totp.at(time.time() + 30)
    done = call(address, "praxis.identity.v1.AuthService/CompleteChallenge", {"challengeId": challenge["challengeId"], "code": code})
    assert "tokens" in done["step"], done
    print("a pyotp code from identity's otpauth URI enrolled TOTP and completed a 2FA login")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
