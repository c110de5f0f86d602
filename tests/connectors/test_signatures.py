"""Each vendor's signature scheme, checked against HMACs computed here independently."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from pipeline.settings import Settings
from connectors.signatures import SCHEMES, SignatureConfig, SignatureError, SignedRequest, hubspot_uri

BODY = b'{"id":"evt_1","object":"event","type":"invoice.paid"}'
NOW = 1_760_000_000.0


def _hex(secret: str, msg: bytes, digest=hashlib.sha256) -> str:
    return hmac.new(secret.encode(), msg, digest).hexdigest()


def _b64(secret: str, msg: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).decode()


def req(headers: dict[str, str], body: bytes = BODY, uri: str = "https://hooks.example.com/webhooks/x",
        method: str = "POST") -> SignedRequest:
    return SignedRequest(method=method, uri=uri, headers=headers, body=body)


def reason(vendor: str, request: SignedRequest, secret: str = "s3cret", now: float = NOW) -> str | None:
    try:
        SCHEMES[vendor].verify(request, secret, now=now)
        return None
    except SignatureError as exc:
        return exc.reason


# --- Stripe ----------------------------------------------------------------------------------

def test_stripe_valid_and_several_v1():
    t = str(int(NOW))
    good = _hex("whsec_a", f"{t}.".encode() + BODY)
    assert reason("stripe", req({"Stripe-Signature": f"t={t},v1={good}"}), "whsec_a") is None
    # during a secret roll Stripe sends one v1 per active secret: any may match
    assert reason("stripe", req({"Stripe-Signature": f"t={t},v1={'0' * 64},v1={good},v0=abc"}), "whsec_a") is None
    # header names are case-insensitive
    assert reason("stripe", req({"stripe-signature": f"t={t},v1={good}"}), "whsec_a") is None


@pytest.mark.parametrize("header,expected", [
    (None, "missing_signature"),
    ("garbage", "malformed_signature"),
    ("t=123", "malformed_signature"),
    ("v1=abcd", "missing_timestamp"),
    ("t=yesterday,v1=abcd", "bad_timestamp"),
])
def test_stripe_malformed(header, expected):
    assert reason("stripe", req({"Stripe-Signature": header} if header else {})) == expected


def test_stripe_wrong_secret_tampered_body_and_stale():
    t = str(int(NOW))
    sig = _hex("whsec_a", f"{t}.".encode() + BODY)
    assert reason("stripe", req({"Stripe-Signature": f"t={t},v1={sig}"}), "whsec_b") == "bad_signature"
    assert reason("stripe", req({"Stripe-Signature": f"t={t},v1={sig}"}, body=BODY + b" "), "whsec_a") == "bad_signature"
    # a correctly signed request replayed 301 s later (or dated in the future) is refused
    assert reason("stripe", req({"Stripe-Signature": f"t={t},v1={sig}"}), "whsec_a", now=NOW + 301) == "stale_timestamp"
    assert reason("stripe", req({"Stripe-Signature": f"t={t},v1={sig}"}), "whsec_a", now=NOW - 301) == "stale_timestamp"
    assert reason("stripe", req({"Stripe-Signature": f"t={t},v1={sig}"}), "whsec_a", now=NOW + 299) is None
    # the signed timestamp cannot be swapped for a fresh one
    t2 = str(int(NOW) + 200)
    assert reason("stripe", req({"Stripe-Signature": f"t={t2},v1={sig}"}), "whsec_a") == "bad_signature"


# --- HubSpot v3 -------------------------------------------------------------------------------

def test_hubspot_v3():
    ts = str(int(NOW * 1000))  # milliseconds
    uri = "https://hooks.example.com/webhooks/hubspot?portal=62515%3Adev"
    signed_uri = "https://hooks.example.com/webhooks/hubspot?portal=62515:dev"  # %3A decoded before signing
    sig = _b64("client-secret", b"POST" + signed_uri.encode() + BODY + ts.encode())
    headers = {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": ts}
    assert reason("hubspot", req(headers, uri=uri), "client-secret") is None
    assert reason("hubspot", req(headers, uri=uri, method="PUT"), "client-secret") == "bad_signature"
    assert reason("hubspot", req(headers, uri=uri + "&x=1"), "client-secret") == "bad_signature"
    assert reason("hubspot", req(headers, uri=uri), "client-secret", now=NOW + 301) == "stale_timestamp"
    assert reason("hubspot", req({"X-HubSpot-Signature-v3": sig}, uri=uri), "client-secret") == "missing_timestamp"


def test_hubspot_uri_decoding_only_listed_escapes():
    assert hubspot_uri("https://a.b/p%3Fq?x=%2Fy%2f&z=%20") == "https://a.b/p?q?x=/y/&z=%20"


# --- Zendesk ----------------------------------------------------------------------------------

def test_zendesk_timestamp_plus_body():
    ts = "2025-10-09T08:53:20Z"
    now = 1_760_000_000.0  # == 2025-10-09T08:53:20Z
    sig = _b64("zd-secret", ts.encode() + BODY)
    headers = {"X-Zendesk-Webhook-Signature": sig, "X-Zendesk-Webhook-Signature-Timestamp": ts}
    assert reason("zendesk", req(headers), "zd-secret", now=now) is None
    assert reason("zendesk", req(headers), "other", now=now) == "bad_signature"
    assert reason("zendesk", req(headers), "zd-secret", now=now + 3600) == "stale_timestamp"
    bad_ts = dict(headers, **{"X-Zendesk-Webhook-Signature-Timestamp": "not a date"})
    assert reason("zendesk", req(bad_ts), "zd-secret", now=now) == "bad_timestamp"


# --- Segment ----------------------------------------------------------------------------------

def test_segment_sha1_of_body_no_timestamp():
    sig = _hex("seg", BODY, hashlib.sha1)
    assert reason("segment", req({"X-Signature": sig}), "seg") is None
    assert reason("segment", req({"X-Signature": sig}), "seg", now=NOW + 10**6) is None  # no clock in this scheme
    assert reason("segment", req({"X-Signature": sig.upper()}), "seg") == "bad_signature"
    assert reason("segment", req({"X-Signature": _hex("seg", BODY)}), "seg") == "bad_signature"  # sha256 ≠ sha1


# --- Salesforce relay convention --------------------------------------------------------------

def test_salesforce_relay():
    t = str(int(NOW))
    sig = _hex("sf", f"{t}.".encode() + BODY)
    assert reason("salesforce", req({"X-Salesforce-Signature": f"t={t},v1={sig}"}), "sf") is None
    assert reason("salesforce", req({"X-Salesforce-Signature": sig}), "sf") == "malformed_signature"
    assert reason("salesforce", req({"X-Salesforce-Signature": f"t={t},v1={sig}"}), "sf", now=NOW + 400) == "stale_timestamp"


@pytest.mark.parametrize("vendor", sorted(SCHEMES))
def test_sign_round_trips(vendor):
    r = req({}, uri="http://127.0.0.1:1/webhooks/" + vendor)
    headers = SCHEMES[vendor].sign("k", r)
    assert reason(vendor, req(headers, uri=r.uri), "k", now=time.time()) is None
    assert reason(vendor, req(headers, uri=r.uri, body=b"{}"), "k", now=time.time()) == "bad_signature"


def test_config_secrets_and_allow_unsigned():
    settings = Settings(segment_shared_secret="seg", stripe_webhook_secret="  ")
    cfg = SignatureConfig.from_env(settings=settings, allow_unsigned={"zendesk"})
    assert cfg.secrets == {"segment": "seg"}
    with pytest.raises(SignatureError) as exc:
        cfg.verify("stripe", req({}))  # blank secret = no secret: refuse, do not accept unsigned
    assert exc.value.reason == "no_secret"
    cfg.verify("zendesk", req({}))  # explicitly allowed for a local demo
    with pytest.raises(SignatureError):
        cfg.verify("segment", req({"X-Signature": "00"}))
    cfg.verify("segment", req({"X-Signature": _hex("seg", BODY, hashlib.sha1)}))
    # a configured secret wins over allow_unsigned
    both = SignatureConfig(secrets={"zendesk": "z"}, allow_unsigned=frozenset({"zendesk"}))
    with pytest.raises(SignatureError):
        both.verify("zendesk", req({}))
