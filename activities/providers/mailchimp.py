"""Mailchimp Transactional (Mandrill): POST {base}/api/1.0/messages/send, the key in the body.

Mandrill has no idempotency key; ours is in `metadata` (echoed by its webhooks).

Answers: 200 with one result per recipient. "sent", "queued" and "scheduled" mean taken;
"rejected" and "invalid" are permanent, with `reject_reason`. They suppress the address unless
the reason is on our side (an unverified or unsigned sender, test-mode limits, a sending rule)
or a soft bounce, which Mandrill lifts by itself. Mandrill's own errors arrive as HTTP 500 with
`{"status": "error", "name": ...}`: Invalid_Key, ValidationError and the other names below are
permanent whatever the status; any other error and any 5xx are retried.
"""

from __future__ import annotations

import httpx

from activities.providers._http import HttpProvider, body_json
from activities.providers.base import (
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfig,
    ProviderError,
)

ACCEPTED = frozenset({"sent", "queued", "scheduled"})
NOT_THE_RECIPIENTS_FAULT = frozenset(
    {"invalid-sender", "test-mode-limit", "unsigned", "rule", "soft-bounce"}
)
PERMANENT_ERRORS = frozenset(
    {
        "Invalid_Key",
        "ValidationError",
        "PaymentRequired",
        "Unknown_Subaccount",
        "Unknown_Template",
        "Unknown_Sender",
        "Invalid_Template",
    }
)


class MailchimpProvider(HttpProvider):
    name = "mailchimp"
    default_base_url = "https://mandrillapp.com"

    def __init__(self, config: ProviderConfig, api_key: str) -> None:
        super().__init__(
            base_url=config.base_url,
            timeout=config.timeout,
            headers={"Accept": "application/json"},
            secrets=(api_key,),
        )
        self._key = api_key

    def send(self, message: OutgoingMessage) -> Delivery:
        sender = {"from_email": message.from_email}
        if message.from_name:
            sender["from_name"] = message.from_name
        body = {
            "key": self._key,
            "message": {
                "html": message.html,
                "text": message.text,
                "subject": message.subject,
                **sender,
                "to": [{"email": message.to, "type": "to"}],
                "headers": dict(message.headers),
                "tags": [message.journey[:50]],
                "metadata": {
                    "idempotency_key": message.idempotency_key,
                    "journey": message.journey,
                    "step": message.step,
                    "user_id": message.user_id,
                },
            },
        }
        response = self.post("/api/1.0/messages/send", body)
        answer = body_json(response)
        results = [r for r in answer if isinstance(r, dict)] if isinstance(answer, list) else []
        result = next(
            (r for r in results if str(r.get("email", "")).lower() == message.to.lower()),
            results[0] if results else None,
        )
        if result is None:
            raise PermanentProviderError(
                self.reason(response, "no per-recipient result"), response.status_code
            )
        status = result.get("status")
        if status in ACCEPTED:
            return Delivery(provider=self.name, provider_message_id=result.get("_id"))
        why = result.get("reject_reason") or status
        raise PermanentProviderError(
            self.reason(response, f"{status}: {why}"),
            response.status_code,
            suppress_recipient=status in ("rejected", "invalid")
            and why not in NOT_THE_RECIPIENTS_FAULT,
        )

    def refine(self, response: httpx.Response) -> ProviderError | None:
        answer = body_json(response)
        if isinstance(answer, dict) and answer.get("status") == "error":
            detail = f"{answer.get('name')}: {answer.get('message', '')}"
            if answer.get("name") in PERMANENT_ERRORS:
                return PermanentProviderError(self.reason(response, detail), response.status_code)
            return self.classify(response, detail)
        return None
