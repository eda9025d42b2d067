"""Mailchimp Transactional (Mandrill): POST /api/1.0/messages/send, the key in the body.

Mandrill answers errors as HTTP 500 with {"status": "error", "name": ...}: a bad key or a
validation error is permanent whatever the status code; per-recipient "rejected" or "invalid"
means the address must not be mailed again.
"""

from __future__ import annotations

from activities.providers.base import (
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfig,
)
from activities.providers.http import HttpProvider

PERMANENT_ERRORS = frozenset(
    {"Invalid_Key", "ValidationError", "PaymentRequired", "Unknown_Subaccount"}
)


class MailchimpProvider(HttpProvider):
    name = "mailchimp"
    default_base_url = "https://mandrillapp.com"

    def __init__(self, config: ProviderConfig, api_key: str) -> None:
        super().__init__(config.base_url, config.timeout, {})
        self._key = api_key

    def permanent_reason(self, response: object) -> str | None:
        answer = _json(response)
        if isinstance(answer, dict) and answer.get("name") in PERMANENT_ERRORS:
            return f"{answer['name']}: {str(answer.get('message', ''))[:200]}"
        return None

    def send(self, message: OutgoingMessage) -> Delivery:
        body = {
            "key": self._key,
            "message": {
                "html": message.html,
                "text": message.text,
                "subject": message.subject,
                "from_email": message.from_email,
                "from_name": message.from_name,
                "to": [{"email": message.to, "type": "to"}],
                "headers": message.headers,
                "tags": [message.journey],
                "metadata": {"idempotency_key": message.idempotency_key},
            },
        }
        response = self.post("/api/1.0/messages/send", body)
        answer = _json(response)
        if response.status_code != 200 or not isinstance(answer, list) or not answer:
            self.refuse(response, str(answer)[:300])
        result = answer[0]
        if result.get("status") in ("rejected", "invalid"):
            raise PermanentProviderError(
                f"mailchimp: {result.get('status')}: {result.get('reject_reason') or 'invalid'}",
                response.status_code,
                suppress_recipient=True,
            )
        return Delivery(provider=self.name, provider_message_id=result.get("_id"))


def _json(response: object) -> object:
    try:
        return response.json()  # type: ignore[attr-defined]
    except ValueError:
        return None
