"""Each sender's signature, computed here once: for our verifiers, tests and users' own senders.

Every scheme is an HMAC over the raw request bytes (never re-serialised JSON: key order and
whitespace would change the digest). The verifiers in the vendor modules recompute these values
and compare them with `hmac.compare_digest`, so timing does not reveal how much of a guess was
right. The helpers below the signers are shared by those verifiers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from starter.sources.errors import MissingSignature, StaleSignature
from starter.sources.models import header

__all__ = [
    "TOLERANCE",
    "any_match",
    "check_fresh",
    "required_header",
    "sign_segment",
    "sign_shopify",
    "sign_standard_webhook",
    "sign_stripe",
    "standard_webhook_key",
    "stripe_v1",
    "unix_seconds",
]

TOLERANCE = 300
"""Seconds a timestamped signature stays valid (Stripe's and Standard Webhooks' default)."""


def sign_shopify(body: bytes, secret: str) -> str:
    """X-Shopify-Hmac-Sha256: base64 of HMAC-SHA256(app secret, raw body)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_stripe(body: bytes, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header value: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>.

    Stripe keys the HMAC with the whole endpoint secret, "whsec_" prefix included.
    """
    return f"t={timestamp},v1={stripe_v1(body, secret, timestamp)}"


def stripe_v1(body: bytes, secret: str, timestamp: int) -> str:
    """The hex v1 signature alone (what Stripe-Signature carries after "v1=")."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def standard_webhook_key(secret: str) -> bytes:
    """The HMAC key: base64-decoded after "whsec_", else the string's own UTF-8 bytes.

    A "whsec_" secret that is not base64 is our misconfiguration, not the sender's fault, so it
    raises ValueError (a 500 to investigate) rather than a SignatureError.
    """
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error as err:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from err
    return secret.encode()


def sign_standard_webhook(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """One webhook-signature entry: "v1," + base64 HMAC-SHA256(key, "id.timestamp.body")."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_webhook_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_segment(body: bytes, secret: str) -> str:
    """X-Signature of Segment's webhook destination: hex HMAC-SHA1(shared secret, raw body)."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def required_header(headers: Mapping[str, str], name: str) -> str:
    """The header's stripped value; MissingSignature when it is absent or blank."""
    value = (header(headers, name) or "").strip()
    if not value:
        raise MissingSignature(f"missing {name} header")
    return value


def any_match(candidates: Iterable[str], expected: str) -> bool:
    """Whether any candidate equals expected, comparing every one in constant time."""
    wanted = expected.encode()
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(candidate.encode(), wanted)
    return found


def unix_seconds(text: str) -> int | None:
    """A signed timestamp's Unix seconds, or None unless it is 1 to 15 ASCII digits.

    `str.isdigit` alone lets "²" through to `int()`, and thousands of digits exceed `int()`'s
    limit: both would raise ValueError, a 500 instead of the 401 a bad signature gets.
    """
    if 0 < len(text) <= 15 and text.isascii() and text.isdigit():
        return int(text)
    return None


def check_fresh(timestamp: int, tolerance: int, now: float | None) -> None:
    """StaleSignature when the signed timestamp is more than `tolerance` seconds from now.

    Both directions count: a timestamp far in the future is as suspicious as an old one.
    """
    age = abs((time.time() if now is None else now) - timestamp)
    if age > tolerance:
        raise StaleSignature(f"stale signature: {int(age)} s from now, tolerance {tolerance} s")
