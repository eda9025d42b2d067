"""Segment's webhook destination: its X-Signature, so Segment can post to us directly.

Segment signs with a shared secret: X-Signature is the hex HMAC-SHA1 of the raw body. SHA-1 is
Segment's choice, not ours; as an HMAC it is still sound. The body is plain Segment spec, which
the API's own call models already parse, so there is no mapping here. The signature carries no
timestamp: replays are stopped by Segment's messageId, which the API deduplicates on.
"""

from __future__ import annotations

from collections.abc import Mapping

from starter.sources.errors import InvalidSignature
from starter.sources.signing import any_match, required_header, sign_segment

__all__ = ["verify_segment"]


def verify_segment(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Check X-Signature against the raw body; raise a SignatureError if it fails."""
    given = required_header(headers, "X-Signature").lower()
    if not any_match([given], sign_segment(body, secret)):
        raise InvalidSignature("X-Signature does not match the body")
