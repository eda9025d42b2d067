"""Postmark: POST /email with X-Postmark-Server-Token; ErrorCode 0 means accepted."""

from __future__ import annotations

from activities.providers.base import Delivery, OutgoingMessage, ProviderConfig
from activities.providers.http import HttpProvider

BAD_ADDRESS_CODES = frozenset({300, 406})
"""Invalid email address; inactive recipient (bounced or marked spam before)."""


class PostmarkProvider(HttpProvider):
    name = "postmark"
    default_base_url = "https://api.postmarkapp.com"

    def __init__(self, config: ProviderConfig, api_key: str) -> None:
        super().__init__(
            config.base_url,
            config.timeout,
            {"X-Postmark-Server-Token": api_key, "Accept": "application/json"},
        )

    def send(self, message: OutgoingMessage) -> Delivery:
        body = {
            "From": message.sender,
            "To": message.to,
            "Subject": message.subject,
            "HtmlBody": message.html,
            "TextBody": message.text,
            "Headers": [{"Name": k, "Value": v} for k, v in message.headers.items()],
            "MessageStream": "broadcast",
            "Tag": message.journey,
            "Metadata": {"idempotency_key": message.idempotency_key, "step": message.step},
        }
        response = self.post("/email", body)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        code = answer.get("ErrorCode", -1) if isinstance(answer, dict) else -1
        if response.status_code != 200 or code != 0:
            detail = (
                f"ErrorCode {code}: {answer.get('Message', '') if isinstance(answer, dict) else ''}"
            )
            self.refuse(response, detail, suppress=code in BAD_ADDRESS_CODES)
        return Delivery(provider=self.name, provider_message_id=answer.get("MessageID"))
