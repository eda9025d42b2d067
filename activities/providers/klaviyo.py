"""Klaviyo Create Event: POST {base}/api/events; a Klaviyo flow on the metric sends the email.

Klaviyo renders and sends the mail itself, so each journey step becomes an event on the metric
named `Journey <journey> <step>` (e.g. "Journey cart_recovery reminder"): one flow per step,
triggered by that metric, with the render context and subject as event properties. The
profile is found or created by email, with our user ID as its external_id.

Klaviyo keeps the first event per profile and metric with a given `unique_id` (our key), so a
send whose outcome is unknown can be repeated safely: this provider is idempotent.

Answers: 202 (empty). 429 (Retry-After) and 5xx retry; other 4xx are permanent and carry
`errors[].detail`; an error whose source points at the profile's email suppresses it.
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

JSON_API = "application/vnd.api+json"
EMAIL_POINTER = "/data/attributes/profile/data/attributes/email"


def metric_name(message: OutgoingMessage) -> str:
    """The Klaviyo metric a journey step's events go to (the flow's trigger)."""
    return f"Journey {message.journey} {message.step}"


class KlaviyoProvider(HttpProvider):
    name = "klaviyo"
    idempotent = True
    default_base_url = "https://a.klaviyo.com"

    def __init__(self, config: ProviderConfig, api_key: str) -> None:
        super().__init__(
            base_url=config.base_url,
            timeout=config.timeout,
            headers={
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": config.klaviyo_revision,
                "Accept": JSON_API,
            },
            secrets=(api_key,),
        )

    def send(self, message: OutgoingMessage) -> Delivery:
        body = {
            "data": {
                "type": "event",
                "attributes": {
                    "properties": {**message.properties, "subject": message.subject},
                    "metric": {
                        "data": {"type": "metric", "attributes": {"name": metric_name(message)}}
                    },
                    "profile": {
                        "data": {
                            "type": "profile",
                            "attributes": {"email": message.to, "external_id": message.user_id},
                        }
                    },
                    "unique_id": message.idempotency_key,
                },
            }
        }
        self.post("/api/events", body, content_type=JSON_API)
        return Delivery(provider=self.name, provider_message_id=message.idempotency_key)

    def refine(self, response: httpx.Response) -> ProviderError | None:
        answer = body_json(response)
        errors = answer.get("errors") if isinstance(answer, dict) else None
        errors = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        detail = "; ".join(str(e.get("detail") or e.get("title") or e.get("code")) for e in errors)
        status = response.status_code
        if 400 <= status < 500 and status not in (408, 429):
            bad_email = any(
                isinstance(e.get("source"), dict)
                and str(e["source"].get("pointer", "")).rstrip("/") == EMAIL_POINTER
                for e in errors
            )
            return PermanentProviderError(
                self.reason(response, detail or None), status, suppress_recipient=bad_email
            )
        return self.classify(response, detail or None)
