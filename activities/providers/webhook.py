"""A generic signed webhook, for a tool that is not an ESP (a CRM, the success team's queue).

POSTs the message as JSON in the Standard Webhooks shape, `{"type", "timestamp", "data"}`,
signed the Standard Webhooks way:

    webhook-id         our idempotency key, so the receiver can dedupe (hence `idempotent`)
    webhook-timestamp  Unix seconds
    webhook-signature  "v1,<base64 HMAC-SHA256 of f"{id}.{timestamp}.{body}">"

The secret is `whsec_<base64>` (the bytes after the prefix are the key) or, for receivers that
hand out plain strings, any other string, used as its UTF-8 bytes. Without a secret the request
goes unsigned. Answers: 2xx taken; 410 ("disable me") and other 4xx permanent; 408, 429, 5xx
retried (Retry-After honoured).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from activities.providers._http import HttpProvider, dumps
from activities.providers.base import (
    Delivery,
    OutgoingMessage,
    ProviderConfig,
    ProviderConfigError,
)

EVENT_TYPE = "journey.message"
SECRET_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key: base64-decoded after `whsec_`, else the raw secret's bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ProviderConfigError(
                "webhook_secret starts with whsec_ but the rest is not base64"
            ) from None
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one request."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookProvider(HttpProvider):
    name = "webhook"
    idempotent = True

    def __init__(self, config: ProviderConfig, url: str, secret: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProviderConfigError("webhook_url must be an http(s) URL")
        if secret is not None:
            signing_key(secret)  # a malformed secret fails at start-up, not on every send
        # The URL itself may carry a token: keep it out of reprs and error reasons.
        super().__init__(base_url=None, timeout=config.timeout, secrets=(url, secret or ""))
        self._url = url
        self._secret = secret
        self._host = parts.hostname or ""

    def __repr__(self) -> str:
        return f"<WebhookProvider {self._host}>"

    def send(self, message: OutgoingMessage) -> Delivery:
        now = time.time()
        body = dumps(
            {
                "type": EVENT_TYPE,
                "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
                "data": message.model_dump(),
            }
        )
        timestamp = int(now)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message.idempotency_key,
            "webhook-timestamp": str(timestamp),
        }
        if self._secret:
            headers["webhook-signature"] = sign(
                self._secret, message.idempotency_key, timestamp, body
            )
        self.post_bytes(self._url, body, headers)
        return Delivery(provider=self.name, provider_message_id=message.idempotency_key)
