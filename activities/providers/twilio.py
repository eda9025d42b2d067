"""SMS through Twilio's Messages API (the `sms` channel).

    POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json
    Authorization: Basic base64(AccountSid:AuthToken)
    Content-Type: application/x-www-form-urlencoded
    To=+14155550100&MessagingServiceSid=MG...|From=+1...&Body=...&StatusCallback=https://...

Twilio answers 201 with the message resource; its `sid` ("SM...") is what the status callback
names later (starter/sms.py), so it is kept as the provider message ID. Errors come as
`{"code", "message", "more_info", "status"}`:

- 429 and 5xx: Retryable, after Retry-After when given;
- 400 with 21211 (invalid To), 21614 (not a mobile number), 21610 (the recipient replied
  STOP): Permanent with `suppress_recipient`, no journey should text the number again;
- 401/403 (wrong SID or token) and other 4xx: Permanent.

Twilio has no idempotency key, so `idempotent` is False: a send with no answer (a read timeout
after the request went out) is Ambiguous, recorded `unknown` and never resent. A Messaging
Service, when set, is preferred over a From number: it picks the sender from its pool and
applies Twilio's Advanced Opt-Out. The auth token never appears in a repr or an error reason.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

import httpx

from activities.providers._http import HttpProvider, body_json
from activities.providers.base import (
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfigError,
    ProviderError,
)

API_VERSION = "2010-04-01"
SUPPRESSING_CODES = frozenset({21211, 21614, 21610})
"""Twilio errors about the number itself: invalid, not a mobile, unsubscribed (STOP)."""


class TwilioSMS(HttpProvider):
    """Twilio's Messages API, one form-encoded POST per SMS."""

    name = "twilio"
    idempotent = False
    default_base_url = "https://api.twilio.com"

    def __init__(
        self,
        account_sid: str | None,
        auth_token: str | None,
        from_number: str | None,
        messaging_service_sid: str | None,
        base_url: str = "https://api.twilio.com",
        status_callback: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not account_sid:
            raise ProviderConfigError("SMS through Twilio needs JOURNEYS_TWILIO_ACCOUNT_SID")
        if not auth_token:
            raise ProviderConfigError("SMS through Twilio needs JOURNEYS_TWILIO_AUTH_TOKEN")
        if not from_number and not messaging_service_sid:
            raise ProviderConfigError(
                "SMS through Twilio needs JOURNEYS_TWILIO_FROM or "
                "JOURNEYS_TWILIO_MESSAGING_SERVICE_SID"
            )
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        super().__init__(
            base_url=base_url,
            timeout=timeout,
            headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
            secrets=(auth_token, credentials),
        )
        self.account_sid = account_sid
        self._path = f"/{API_VERSION}/Accounts/{quote(account_sid, safe='')}/Messages.json"
        self._sender = (
            ("MessagingServiceSid", messaging_service_sid)
            if messaging_service_sid
            else ("From", from_number or "")
        )
        self._status_callback = status_callback

    def send(self, message: OutgoingMessage) -> Delivery:
        fields = [("To", message.to), self._sender, ("Body", message.text)]
        if self._status_callback:
            fields.append(("StatusCallback", self._status_callback))
        response = self.post_bytes(
            self._path,
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        doc = body_json(response)
        sid = doc.get("sid") if isinstance(doc, dict) else None
        return Delivery(
            provider=self.name, provider_message_id=sid if isinstance(sid, str) else None
        )

    def refine(self, response: httpx.Response) -> ProviderError | None:
        """Read Twilio's error document: its code decides whether the number is at fault."""
        doc = body_json(response)
        if not isinstance(doc, dict) or "code" not in doc:
            return None
        code, text = doc.get("code"), doc.get("message")
        detail = f"error {code}: {text}" if text else f"error {code}"
        status = response.status_code
        if status == 429 or status >= 500:
            return self.classify(response, detail)
        suppress = status == 400 and code in SUPPRESSING_CODES
        return PermanentProviderError(self.reason(response, detail), status, suppress)
