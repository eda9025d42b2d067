"""SendGrid v3 Mail Send: POST /v3/mail/send with a Bearer key; 202 means accepted."""

from __future__ import annotations

from activities.providers.base import Delivery, OutgoingMessage, ProviderConfig
from activities.providers.http import HttpProvider


class SendGridProvider(HttpProvider):
    name = "sendgrid"
    default_base_url = "https://api.sendgrid.com"

    def __init__(self, config: ProviderConfig, api_key: str) -> None:
        super().__init__(config.base_url, config.timeout, {"Authorization": f"Bearer {api_key}"})

    def send(self, message: OutgoingMessage) -> Delivery:
        sender = {"email": message.from_email}
        if message.from_name:
            sender["name"] = message.from_name
        body = {
            "personalizations": [
                {
                    "to": [{"email": message.to}],
                    "custom_args": {"idempotency_key": message.idempotency_key},
                }
            ],
            "from": sender,
            "subject": message.subject,
            "content": [
                {"type": "text/plain", "value": message.text or " "},
                {"type": "text/html", "value": message.html or "<p></p>"},
            ],
            "headers": message.headers,
            "categories": [message.journey],
        }
        response = self.post("/v3/mail/send", body)
        if response.status_code != 202:
            detail = "; ".join(e.get("message", "") for e in _errors(response))
            bad_address = "email" in detail.lower() and "valid" in detail.lower()
            self.refuse(response, detail or response.text, suppress=bad_address)
        return Delivery(
            provider=self.name, provider_message_id=response.headers.get("x-message-id")
        )


def _errors(response: object) -> list[dict[str, str]]:
    try:
        errors = response.json().get("errors", [])  # type: ignore[attr-defined]
    except ValueError:
        return []
    return [e for e in errors if isinstance(e, dict)]
