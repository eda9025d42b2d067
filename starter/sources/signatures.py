"""Each sender's signature scheme, checked in constant time on the raw bytes.

Shopify: X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(secret, body)).
Stripe: Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")> (any v1 may match,
  for key rotation), within a tolerance (300 s) so a captured request cannot be replayed later.
Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature "v1,<base64>" (space
  separated), HMAC-SHA256 of "id.timestamp.body" with the base64 key after "whsec_".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE = 300


class SignatureError(Exception):
    """The request is not provably from the sender: missing, wrong or stale signature."""


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise SignatureError(f"missing {name} header")


def _fresh(timestamp: str, tolerance: int, now: float | None) -> None:
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError as err:
        raise SignatureError("malformed timestamp") from err
    if age > tolerance:
        raise SignatureError(f"stale signature ({int(age)} s old, tolerance {tolerance} s)")


def sign_shopify(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_shopify(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    given = _header(headers, "X-Shopify-Hmac-Sha256")
    if not hmac.compare_digest(given.encode(), sign_shopify(body, secret).encode()):
        raise SignatureError("X-Shopify-Hmac-Sha256 does not match the body")


def sign_stripe(body: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_stripe(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> None:
    parts = [p.split("=", 1) for p in _header(headers, "Stripe-Signature").split(",") if "=" in p]
    timestamps = [v for k, v in parts if k.strip() == "t"]
    signatures = [v for k, v in parts if k.strip() == "v1"]
    if not timestamps or not signatures:
        raise SignatureError("Stripe-Signature lacks t= or v1=")
    expected = sign_stripe(body, secret, int(timestamps[0])).split("v1=")[1]
    if not any(hmac.compare_digest(s.encode(), expected.encode()) for s in signatures):
        raise SignatureError("Stripe-Signature does not match the body")
    _fresh(timestamps[0], tolerance, now)


def _standard_key(secret: str) -> bytes:
    return (
        base64.b64decode(secret.removeprefix("whsec_"))
        if secret.startswith("whsec_")
        else secret.encode()
    )


def sign_standard_webhook(message_id: str, timestamp: int, body: bytes, secret: str) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return (
        "v1,"
        + base64.b64encode(
            hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
        ).decode()
    )


def verify_standard_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> None:
    message_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    try:
        expected = sign_standard_webhook(message_id, int(timestamp), body, secret)
    except ValueError as err:
        raise SignatureError("malformed webhook-timestamp or secret") from err
    given = _header(headers, "webhook-signature").split()
    if not any(hmac.compare_digest(g.encode(), expected.encode()) for g in given):
        raise SignatureError("webhook-signature does not match the body")
    _fresh(timestamp, tolerance, now)
