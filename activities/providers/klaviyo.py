"""Klaviyo Create Event: POST /api/events, to drive a Klaviyo flow that sends the email.

Klaviyo dedupes on `unique_id` (our idempotency key), so a send cut off by a crash can be
repeated safely: this provider is idempotent.
"""

from __future__ import annotations

from activities.providers.base import Delivery, OutgoingMessage, ProviderConfig
from activities.providers.http import HttpProvider


class KlaviyoProvider(HttpProvider):
    name = "klaviyo"
    idempotent = True
    default_base_url = "https://a.klaviyo.com"

    def __init__(self, config: ProviderConfig, api_key: str) -> None:
        super().__init__(
            config.base_url,
            config.timeout,
            {
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": config.klaviyo_revision,
                "Accept": "application/vnd.api+json",
                "Content-Type": "application/vnd.api+json",
            },
        )

    def send(self, message: OutgoingMessage) -> Delivery:
        body = {
            "data": {
                "type": "event",
                "attributes": {
                    "properties": {
                        **message.properties,
                        "subject": message.subject,
                        "journey": message.journey,
                        "step": message.step,
                    },
                    "metric": {
                        "data": {
                            "type": "metric",
                            "attributes": {"name": f"Journey {message.journey} {message.step}"},
                        }
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
        response = self.post("/api/events", body)
        if response.status_code != 202:
            try:
                errors = response.json().get("errors", [])
            except ValueError:
                errors = []
            detail = "; ".join(str(e.get("detail", "")) for e in errors if isinstance(e, dict))
            self.refuse(response, detail or response.text)
        return Delivery(provider=self.name, provider_message_id=message.idempotency_key)
