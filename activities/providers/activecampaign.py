"""ActiveCampaign: each journey step becomes a custom event; an ActiveCampaign automation on
that event sends the email.

Two requests per step, in this order:

1. Contact sync, `POST {account}.api-us1.com/api/3/contact/sync` with the `Api-Token` header
   and `{"contact": {"email", "firstName", "lastName", "fieldValues"}}`. It creates or updates
   the contact by email, so the automation finds it with its custom fields up to date. First
   and last name go only when the render context has them (`first_name`/`firstName`,
   `last_name`/`lastName`, also under `user`): a blank would erase the contact's own.
   `fieldValues` copies the context values `activecampaign_fields` names, {context key: field
   ID} (`subject` is the rendered subject), to the contact's custom fields, which the email
   reads as personalization tags; a value that is not a string goes as compact JSON.
2. Event, `POST https://trackcmp.net/event`, form-encoded: `actid` (the account ID), `key`
   (the event key), `event` (`event_name`: "<journey> <step>", at most 32 characters),
   `eventdata` (JSON: idempotency_key, journey, step, user_id, subject) and `visit` =
   `{"email": ...}`. An automation triggered by that event sends the email. The API token is
   never sent to the tracking host, nor the event key to the account's API.

Exactly once: the event API has no idempotency key, and each event it takes starts the
automation again, so this provider is not idempotent. The contact sync is an upsert that asks
for no email: no answer to it (a timeout) is Retryable, and nothing is tracked. No answer to the
event after it went out is Ambiguous: the send activity records "unknown" and never resends.

Answers. Contact sync: 200/201. 429 (5 requests per second per account) is Retryable after
Retry-After, or after one second when it gives none; 408 and 5xx are Retryable. 402 (payment),
403 (bad token: `{"message": ...}`), 404 and 400 are Permanent; so is 422 (`{"errors": [{"title",
"detail", "code", "source": {"pointer"}}]}`), which suppresses the address when an error points
at the email (and is not "field_missing" or "duplicate"). Event: 200 `{"success": 1}` is taken;
200 `{"success": 0, "message"}` is refused for good (a wrong key or account ID, event tracking
off: never the recipient's fault); 400 `{}` is Permanent; 429 and 5xx as above; a 200 with no
readable `success` is Ambiguous (it may have been tracked).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

import httpx

from activities.providers._http import HttpProvider, body_json, dumps, retry_after
from activities.providers.base import (
    AmbiguousProviderError,
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfig,
    ProviderError,
    RetryableProviderError,
)

CONTACT_SYNC = "/api/3/contact/sync"
TRACKING_URL = "https://trackcmp.net/event"
EVENT_NAME_MAX = 32
"""The Event Tracking API's limit on `event`, in characters."""
RATE_LIMIT_WAIT = 1.0
"""Seconds to wait after a 429 that names no Retry-After: the limit is 5 requests a second."""
FORM = "application/x-www-form-urlencoded"
NOT_THE_ADDRESS = frozenset({"field_missing", "duplicate"})
"""Error codes that point at the email without saying it is bad."""


def event_name(message: OutgoingMessage) -> str:
    """The event a journey step is tracked as (an automation's trigger): "<journey> <step>";
    a longer name is cut to 23 characters and ends "~" + 8 hex digits of its SHA-256, so it
    fits the 32 characters and two steps never share one."""
    name = f"{message.journey} {message.step}"
    if len(name) <= EVENT_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: EVENT_NAME_MAX - 9]}~{digest}"


def contact_for(message: OutgoingMessage, fields: dict[str, str]) -> dict[str, Any]:
    """The `contact` object of a contact sync for this message's recipient."""
    contact: dict[str, Any] = {"email": message.to}
    first = _name(message.properties, "first_name", "firstName")
    last = _name(message.properties, "last_name", "lastName")
    if first:
        contact["firstName"] = first
    if last:
        contact["lastName"] = last
    values = {**message.properties, "subject": message.subject}
    field_values = [
        {"field": field, "value": _text(values[key])}
        for key, field in fields.items()
        if values.get(key) is not None
    ]
    if field_values:
        contact["fieldValues"] = field_values
    return contact


def event_data(message: OutgoingMessage) -> str:
    """The event's `eventdata`: our key (to match it to the outbox) and what the step is."""
    return dumps(
        {
            "idempotency_key": message.idempotency_key,
            "journey": message.journey,
            "step": message.step,
            "user_id": message.user_id,
            "subject": message.subject,
        }
    ).decode()


class ActiveCampaignProvider(HttpProvider):
    name = "activecampaign"
    idempotent = False

    def __init__(
        self, config: ProviderConfig, api_key: str, account_id: str, event_key: str
    ) -> None:
        # The Developer page shows https://<account>.api-us1.com; people also paste .../api/3.
        base = (config.base_url or "").strip().rstrip("/").removesuffix("/api/3")
        super().__init__(
            base_url=base,
            timeout=config.timeout,
            headers={"Accept": "application/json"},
            secrets=(api_key, event_key),
        )
        self._api_token = api_key
        self._account_id = account_id
        self._event_key = event_key
        self._tracking = httpx.URL(config.activecampaign_tracking_url)
        self._fields = dict(config.activecampaign_fields)

    def send(self, message: OutgoingMessage) -> Delivery:
        self._sync_contact(message)
        self._track(message)
        return Delivery(provider=self.name, provider_message_id=message.idempotency_key)

    def _sync_contact(self, message: OutgoingMessage) -> None:
        body = {"contact": contact_for(message, self._fields)}
        try:
            self.post(CONTACT_SYNC, body, headers={"Api-Token": self._api_token})
        except AmbiguousProviderError as err:
            # An upsert that asks for no email: repeating it is harmless, nothing was tracked.
            raise RetryableProviderError(
                f"{err.reason} to the contact sync; no event sent, safe to repeat", err.status
            ) from None

    def _track(self, message: OutgoingMessage) -> None:
        form = urlencode(
            {
                "actid": self._account_id,
                "key": self._event_key,
                "event": event_name(message),
                "eventdata": event_data(message),
                "visit": json.dumps({"email": message.to}, separators=(",", ":")),
            }
        )
        response = self.post_bytes(str(self._tracking), form.encode(), {"Content-Type": FORM})
        answer = body_json(response)
        success = answer.get("success") if isinstance(answer, dict) else None
        if success in (1, "1"):  # JSON true reads as 1 too
            return
        if success in (0, "0"):
            message_text = str(answer.get("message") or "no message")
            raise PermanentProviderError(
                self.reason(response, f"event not tracked: {message_text}"), response.status_code
            )
        raise AmbiguousProviderError(
            self.reason(response, "event: no success field in the answer; it may be tracked"),
            response.status_code,
        )

    # Reading failures --------------------------------------------------------------------

    def refine(self, response: httpx.Response) -> ProviderError | None:
        status = response.status_code
        answer = body_json(response)
        what = "event" if response.request.url == self._tracking else "contact sync"
        detail = f"{what}: {_detail(answer) or ' '.join(response.text.split()) or 'no body'}"
        if status == 429:
            wait = retry_after(response.headers.get("Retry-After"))
            return RetryableProviderError(
                self.reason(response, detail), status, RATE_LIMIT_WAIT if wait is None else wait
            )
        if what == "contact sync" and 400 <= status < 500 and status != 408:
            return PermanentProviderError(
                self.reason(response, detail), status, suppress_recipient=_address_refused(answer)
            )
        return self.classify(response, detail)


def _name(properties: dict[str, Any], *keys: str) -> str | None:
    user = properties.get("user")
    for source in (properties, user if isinstance(user, dict) else {}):
        for key in keys:
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value).decode()


def _errors(answer: Any) -> list[dict[str, Any]]:
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _detail(answer: Any) -> str | None:
    """`errors[]` as "title: detail (code)"; else a `message`; else None."""
    parts = []
    for error in _errors(answer):
        text = ": ".join(str(error[k]) for k in ("title", "detail") if error.get(k))
        code = error.get("code")
        parts.append(f"{text} ({code})" if code and text else text or str(code or "error"))
    if parts:
        return "; ".join(parts)
    if isinstance(answer, dict) and answer.get("message"):
        return str(answer["message"])
    return None


def _address_refused(answer: Any) -> bool:
    """An error that points at the contact's email and says it is bad."""
    for error in _errors(answer):
        source = error.get("source")
        pointer = str(source.get("pointer", "")) if isinstance(source, dict) else ""
        if pointer.rstrip("/").endswith("/email") and error.get("code") not in NOT_THE_ADDRESS:
            return True
    return False
