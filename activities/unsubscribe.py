"""Signed one-click unsubscribe links (RFC 8058): the URL alone identifies user and journey.

A token is `<user>.<journey>.<signature>` in URL-safe base64; the signature is HMAC-SHA256
with the deployment's secret key, so nobody can unsubscribe someone else by guessing a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class InvalidUnsubscribeToken(Exception):
    """The link was altered, truncated or signed with another key."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: str, user_id: str, journey: str) -> str:
    payload = f"{_b64(user_id.encode())}.{_b64(journey.encode())}"
    signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(signature[:20])}"


def read_token(secret: str, token: str) -> tuple[str, str]:
    """(user_id, journey) from a token, or InvalidUnsubscribeToken."""
    try:
        user, journey, signature = token.split(".")
        expected = hmac.new(secret.encode(), f"{user}.{journey}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(signature), expected[:20]):
            raise InvalidUnsubscribeToken("bad signature")
        return _unb64(user).decode(), _unb64(journey).decode()
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidUnsubscribeToken("malformed token") from err


def unsubscribe_url(public_url: str, secret: str, user_id: str, journey: str) -> str:
    return f"{public_url.rstrip('/')}/u/{make_token(secret, user_id, journey)}"
