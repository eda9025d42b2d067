"""A generic signed webhook (Standard Webhooks): for a tool that is not an ESP, such as the
success team's, flagging an at-risk account. Receivers dedupe on `webhook-id` (our key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from activities.providers.base import Delivery, OutgoingMessage, ProviderConfig
from activities.providers.http import HttpProvider


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of "{id}.{timestamp}.{body}"; whsec_ secrets are base64."""
    key = (
        base64.b64decode(secret.removeprefix("whsec_"))
        if secret.startswith("whsec_")
        else secret.encode()
    )
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookProvider(HttpProvider):
    name = "webhook"
    idempotent = True

    def __init__(self, config: ProviderConfig, url: str, secret: str | None) -> None:
        super().__init__(None, config.timeout, {})
        self.url, self._secret = url, secret

    def send(self, message: OutgoingMessage) -> Delivery:
        body = json.dumps(
            {
                "type": "journey.message",
                "journey": message.journey,
                "step": message.step,
                "user_id": message.user_id,
                "to": message.to,
                "subject": message.subject,
                "text": message.text,
                "html": message.html,
                "properties": message.properties,
            },
            separators=(",", ":"),
        ).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message.idempotency_key,
            "webhook-timestamp": str(timestamp),
        }
        if self._secret:
            headers["webhook-signature"] = sign(
                self._secret, message.idempotency_key, timestamp, body
            )
        response = self.post_raw(body, headers)
        if not 200 <= response.status_code < 300:
            self.refuse(response, response.text or "refused")
        return Delivery(provider=self.name, provider_message_id=message.idempotency_key)

    def post_raw(self, body: bytes, headers: dict[str, str]) -> object:
        import httpx

        from activities.providers.base import AmbiguousProviderError, RetryableProviderError
        from activities.providers.http import RETRY_STATUSES, retry_after

        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            raise RetryableProviderError(f"webhook: cannot connect ({type(err).__name__})") from err
        except httpx.TransportError as err:
            raise AmbiguousProviderError(f"webhook: no answer ({type(err).__name__})") from err
        if response.status_code in RETRY_STATUSES:
            raise RetryableProviderError(
                f"webhook: HTTP {response.status_code}",
                response.status_code,
                retry_after(response.headers.get("retry-after")),
            )
        return response
