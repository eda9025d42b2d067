"""Postmark: POST {base}/email with `X-Postmark-Server-Token`; 200 with ErrorCode 0 and MessageID.

Journey mail is marketing mail, so it goes to the "broadcast" message stream (Postmark keeps
broadcast and transactional reputations apart). Postmark has no idempotency key; ours is in
Metadata so its webhooks can be matched to the journey step.

Errors: 429, 500, 503 retry. 401 (bad token) and 422 are permanent; in a 422, ErrorCode 406
(inactive recipient: it bounced, complained or was suppressed) suppresses the address, and so
does ErrorCode 300 (invalid email request) when its message is about the `To` address; a 300
about anything else (an empty body, a bad From) is our fault, not the recipient's.
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

INACTIVE_RECIPIENT = 406
INVALID_REQUEST = 300
MESSAGE_STREAM = "broadcast"


class PostmarkProvider(HttpProvider):
    name = "postmark"
    default_base_url = "https://api.postmarkapp.com"

    def __init__(self, config: ProviderConfig, api_key: str) -> None:
        super().__init__(
            base_url=config.base_url,
            timeout=config.timeout,
            headers={"X-Postmark-Server-Token": api_key, "Accept": "application/json"},
            secrets=(api_key,),
        )

    def send(self, message: OutgoingMessage) -> Delivery:
        body = {
            "From": message.sender,
            "To": message.to,
            "Subject": message.subject,
            "HtmlBody": message.html,
            "TextBody": message.text,
            "Headers": [{"Name": k, "Value": v} for k, v in message.headers.items()],
            "MessageStream": MESSAGE_STREAM,
            "Tag": message.journey[:1000],
            "Metadata": {
                "idempotency_key": message.idempotency_key,
                "journey": message.journey,
                "step": message.step,
                "user_id": message.user_id,
            },
        }
        response = self.post("/email", body)
        answer = body_json(response)
        answer = answer if isinstance(answer, dict) else {}
        code = answer.get("ErrorCode", 0)
        if code != 0:  # documented as never with 200, but a non-zero code is a refusal
            raise self._refusal(response, answer)
        message_id = answer.get("MessageID")
        return Delivery(provider=self.name, provider_message_id=str(message_id or "") or None)

    def refine(self, response: httpx.Response) -> ProviderError | None:
        answer = body_json(response)
        if response.status_code == 422 and isinstance(answer, dict):
            return self._refusal(response, answer)
        return self.classify(response, _detail(answer))

    def _refusal(self, response: httpx.Response, answer: dict[str, object]) -> ProviderError:
        code = answer.get("ErrorCode")
        text = str(answer.get("Message", ""))
        bad_address = code == INACTIVE_RECIPIENT or (
            code == INVALID_REQUEST and "'to'" in text.lower()
        )
        return PermanentProviderError(
            self.reason(response, _detail(answer)),
            response.status_code,
            suppress_recipient=bad_address,
        )


def _detail(answer: object) -> str | None:
    if isinstance(answer, dict) and "ErrorCode" in answer:
        return f"ErrorCode {answer['ErrorCode']}: {answer.get('Message', '')}"
    return None
