#!/usr/bin/env python3
"""SAML responses for the SP tests, made by pysaml2 in the IdP role (the peer in
../shared/peers/saml/idp.py, whose key is in IDP_KEY_DIR), good and hostile.

    saml_forge.py IDP_PY MODE ACS_URL SP_ENTITY_ID EMAIL IN_RESPONSE_TO [OTHER_KEY_DIR] [EVIL_EMAIL]

MODE: good (RSA-SHA256), sha1, unsigned, other-key (signed by the key in OTHER_KEY_DIR), xsw
(an unsigned assertion for EVIL_EMAIL wrapped in beside the signed one), expired, audience
(for another SP), no-audience (signed, naming no audience), destination (for another ACS), tampered (signed, then the email changed), encrypted (signed, then the assertion encrypted
to the certificate in the SP_CERT environment variable, PEM). Prints the Response, base64."""
import base64, datetime, importlib.util, os, re, sys, warnings

warnings.filterwarnings("ignore")
from saml2 import class_name
from saml2.s_utils import sid
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.samlp import response_from_string
from saml2.sigver import pre_signature_part, signed_instance_factory
from saml2.xmldsig import SIG_RSA_SHA1, SIG_RSA_SHA256, DIGEST_SHA1, DIGEST_SHA256

idp_py, mode, acs, sp_entity, email, in_response_to = sys.argv[1:7]
other_key_dir = sys.argv[7] if len(sys.argv) > 7 else ""
evil_email = sys.argv[8] if len(sys.argv) > 8 else "mallory@acme-health.test"

spec = importlib.util.spec_from_file_location("idp", idp_py)
idp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(idp)

audience = "http://elsewhere.test/sp/metadata" if mode == "audience" else sp_entity
destination = "http://127.0.0.1:9/sso/elsewhere/acs" if mode == "destination" else acs
server = idp.server(audience, destination)
if mode in ("logout", "logout-tampered", "logout-sha1"):
    # ACS_URL is the SP's SLO URL here, EMAIL the NameID; prints the signed Redirect query.
    from saml2 import BINDING_HTTP_REDIRECT
    request_id, request = server.create_logout_request(
        destination=acs, issuer_entity_id=sp_entity,
        name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email), sign=False)
    info = server.apply_binding(
        BINDING_HTTP_REDIRECT, str(request), destination=acs, relay_state="after-logout",
        sign=True, sigalg=SIG_RSA_SHA1 if mode == "logout-sha1" else SIG_RSA_SHA256)
    location = dict(info["headers"])["Location"]
    query = location.split("?", 1)[1]
    if mode == "logout-tampered":
        query = query.replace("RelayState=after-logout", "RelayState=somewhere-else")
    print(query)
    sys.exit(0)
if mode == "encrypted":
    import os
    import saml2.sigver as sigver
    # pysaml2 defaults to 3DES session keys, which today's xmlsec1 refuses; AES-128-CBC instead.
    aes = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
    sigver.pre_encryption_part.__kwdefaults__["msg_enc"] = aes
    sigver.CryptoBackendXmlSec1.encrypt_assertion.__defaults__ = ("aes-128", None, None)
    sigver.SecurityContext.encrypt_assertion.__defaults__ = ("aes-128", None)
    sp_cert = "".join(l for l in os.environ["SP_CERT"].split() if "-----" not in l and l not in ("BEGIN", "END", "CERTIFICATE-----"))
    made = server.create_authn_response(
        identity=idp.USERS.get(email, {"email": [email]}), in_response_to=in_response_to or None,
        destination=destination, sp_entity_id=audience,
        name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
        authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
        sign_response=False, sign_assertion=True, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
        encrypt_assertion=True, encrypt_cert_assertion=sp_cert)
    xml = str(made)
    # The KeyInfo inside EncryptedData declares the XML-DSig namespace itself, as Okta and ADFS
    # write it (samael reads it only that way); then the Response is signed over the result.
    xml = re.sub(r"<(\w+):KeyInfo>", lambda m: f'<{m.group(1)}:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">', xml, count=1)
    response_id = re.search(r'<\w+:Response [^>]*\bID="([^"]+)"', xml).group(1)
    template = str(pre_signature_part(response_id, server.sec.my_cert, 1, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256))
    template = re.sub(r"^<\?xml[^>]*\?>", "", template)
    issuer_end = xml.index(":Issuer>") + len(":Issuer>")
    xml = xml[:issuer_end] + template + xml[issuer_end:]
    from saml2.samlp import Response
    xml = server.sec.sign_statement(xml, class_name(Response()), node_id=response_id)
    print(base64.b64encode(xml.encode()).decode())
    sys.exit(0)
made = server.create_authn_response(
    identity=idp.USERS.get(email, {"email": [email]}), in_response_to=in_response_to or None,
    destination=destination, sp_entity_id=audience,
    name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
    authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
    sign_response=False, sign_assertion=False)
response = made if not isinstance(made, str) else response_from_string(made)
assertion = response.assertion[0] if isinstance(response.assertion, list) else response.assertion

if mode == "expired":
    def ago(minutes):
        t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    response.issue_instant = assertion.issue_instant = ago(30)
    assertion.conditions.not_before = ago(31)
    assertion.conditions.not_on_or_after = ago(20)
    for confirmation in assertion.subject.subject_confirmation:
        confirmation.subject_confirmation_data.not_on_or_after = ago(20)

if mode == "no-audience":
    # Valid and signed, but for any audience at all.
    assertion.conditions.audience_restriction = []

security = server.sec
if mode == "other-key":
    import os
    os.environ["IDP_KEY_DIR"] = other_key_dir
    spec2 = importlib.util.spec_from_file_location("idp_other", idp_py)
    other = importlib.util.module_from_spec(spec2)
    spec2.loader.exec_module(other)
    security = other.server(audience, destination).sec

if mode == "unsigned":
    xml = str(response)
else:
    sign_alg, digest_alg = (SIG_RSA_SHA1, DIGEST_SHA1) if mode == "sha1" else (SIG_RSA_SHA256, DIGEST_SHA256)
    assertion.signature = pre_signature_part(assertion.id, security.my_cert, 2, sign_alg=sign_alg, digest_alg=digest_alg)
    to_sign = [(class_name(assertion), assertion.id)]
    if mode != "xsw":
        response.signature = pre_signature_part(response.id, security.my_cert, 1, sign_alg=sign_alg, digest_alg=digest_alg)
        to_sign.append((class_name(response), response.id))
    xml = signed_instance_factory(response, security, to_sign)
    if not isinstance(xml, str):
        xml = str(xml)

if mode == "tampered":
    # Signed, then the subject changed: the signature no longer covers what is there.
    xml = xml.replace(email, evil_email)

if mode == "xsw":
    # The signed assertion stays; an unsigned copy naming someone else goes in front of it.
    match = re.search(r"<(\w+:)?Assertion\b.*?</(\w+:)?Assertion>", xml, re.S)
    signed = match.group(0)
    evil = re.sub(r"<(\w+:)?Signature\b.*?</(\w+:)?Signature>", "", signed, flags=re.S)
    evil = evil.replace(email, evil_email).replace(assertion.id, sid())
    xml = xml[: match.start()] + evil + xml[match.start():]

print(base64.b64encode(xml.encode()).decode())
