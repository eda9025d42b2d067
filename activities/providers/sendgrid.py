"""SendGrid v3 Mail Send: POST {base}/v3/mail/send with `Authorization: Bearer <key>`; 202.

SendGrid has no idempotency key: our key travels in `custom_args` (echoed in its event
webhook) so a bounce or open can be matched to the journey step, not to dedupe.

Errors: 429, 500, 503 retry (Retry-After honoured). 403 is "forbidden" (an unverified sender,
a key without mail.send) and also, per SendGrid's error table, "too many bad requests,
temporary block": we retry a 403 only when its body says temporary, since retrying a
permission problem forever would hide it. 400, 401, 406, 413, 451 are permanent; a 400 whose
error points at the recipient's address (`personalizations.N.to.N.email`) suppresses it.
"""

from __future__ import annotations

import re

import httpx

from activities.providers._http import HttpProvider, body_json, retry_after
from activities.providers.base import (
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfig,
    ProviderError,
    RetryableProviderError,
)

RECIPIENT_FIELD = re.compile(r"^personalizations\.\d+\.to(\.\d+\.email)?$")


class SendGridProvider(HttpProvider):
    name = "sendgrid"
    default_base_url = "https://api.sendgrid.com"

    def __init__(self, config: ProviderConfig, api_key: str) -> None:
        super().__init__(
            base_url=config.base_url,
            timeout=config.timeout,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            secrets=(api_key,),
        )

    def send(self, message: OutgoingMessage) -> Delivery:
        sender: dict[str, str] = {"email": message.from_email}
        if message.from_name:
            sender["name"] = message.from_name
        content = []  # SendGrid requires text/plain before text/html
        if message.text:
            content.append({"type": "text/plain", "value": message.text})
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        body = {
            "personalizations": [
                {
                    "to": [{"email": message.to}],
                    "custom_args": {
                        "idempotency_key": message.idempotency_key,
                        "journey": message.journey,
                        "step": message.step,
                        "user_id": message.user_id,
                    },
                }
            ],
            "from": sender,
            "subject": message.subject,
            "content": content,
            "headers": dict(message.headers),
            "categories": [message.journey[:255]],
        }
        response = self.post("/v3/mail/send", body)
        message_id = response.headers.get("X-Message-Id")
        return Delivery(provider=self.name, provider_message_id=message_id)

    def refine(self, response: httpx.Response) -> ProviderError | None:
        errors = _errors(response)
        detail = "; ".join(
            f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
            for e in errors
        )
        status = response.status_code
        if status == 403 and "temporar" in detail.lower():
            return RetryableProviderError(
                self.reason(response, detail),
                status,
                retry_after(response.headers.get("Retry-After")),
            )
        if status == 400 and any(RECIPIENT_FIELD.match(str(e.get("field") or "")) for e in errors):
            return PermanentProviderError(
                self.reason(response, detail), status, suppress_recipient=True
            )
        return self.classify(response, detail or None)


def _errors(response: httpx.Response) -> list[dict[str, object]]:
    """SendGrid's `{"errors": [{"message", "field", "help"}]}`, whatever else came back."""
    answer = body_json(response)
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
