"""The contract every provider keeps: an OutgoingMessage in, a Delivery or a ProviderError out.

Errors tell the send activity what to do next:

    Exception
    ├── ProviderError                 the provider did not (knowingly) take the message
    │   ├── RetryableProviderError    429, 5xx, refused connection, connect timeout, SMTP 4yz:
    │   │                             nothing was taken, try later (after `retry_after` s if said)
    │   ├── AmbiguousProviderError    sent, but no answer came back (read timeout, dropped
    │   │                             connection after the request): it MAY have the message,
    │   │                             so resend only to an `idempotent` provider
    │   └── PermanentProviderError    other 4xx, bad key, SMTP 5yz: do not retry; with
    │                                 `suppress_recipient` when the address itself is bad
    └── ValueError
        └── ProviderConfigError       a setting the chosen provider needs is missing

`reason` is always safe to log: providers redact their secrets from anything a server echoes.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class OutgoingMessage(BaseModel):
    """One rendered message for one recipient, with the key that makes the send unique."""

    model_config = ConfigDict(frozen=True)

    to: str
    from_email: str
    from_name: str | None = None
    subject: str
    html: str
    text: str
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers, e.g. List-Unsubscribe and List-Unsubscribe-Post (RFC 8058)."""
    idempotency_key: str
    """Unique per journey run and step; given to providers that can dedupe on it."""
    journey: str
    step: str
    user_id: str
    properties: dict[str, Any] = Field(default_factory=dict)
    """The render context: Klaviyo event properties and the webhook body carry it."""
    devices: list[str] = Field(default_factory=list)
    """Push only: the user's device tokens (`to` is then the user ID)."""
    data: dict[str, str] = Field(default_factory=dict)
    """Push only: the notification's data payload (journey, step, the link to open)."""

    @property
    def sender(self) -> str:
        """`Name <address>` for APIs that take one From string."""
        from email.headerregistry import Address

        if not self.from_name:
            return self.from_email
        return str(Address(display_name=self.from_name, addr_spec=self.from_email))


class Delivery(BaseModel):
    """The provider took the message (its ID, when it gives one, to match later webhooks)."""

    provider: str
    provider_message_id: str | None = None


class ProviderError(Exception):
    """The provider did not take the message; `reason` names why, without secrets."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def _fields(self) -> dict[str, Any]:
        return {"reason": self.reason, "status": self.status}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._fields().items())
        return f"{type(self).__name__}({args})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Keep the fields when pickled or copied (the default would drop all but `reason`)."""
        return (_rebuild, (type(self), self._fields()))


def _rebuild(cls: type[ProviderError], fields: dict[str, Any]) -> ProviderError:
    return cls(**fields)


class RetryableProviderError(ProviderError):
    """Not taken; asking again later is safe. `retry_after`: seconds, when the provider said."""

    def __init__(
        self, reason: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, status)
        self.retry_after = retry_after

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "retry_after": self.retry_after}


class AmbiguousProviderError(ProviderError):
    """The request went out but no answer came back: the provider may have the message, so a
    resend could deliver twice unless the provider dedupes on our key."""


class PermanentProviderError(ProviderError):
    """Refused for good. `suppress_recipient`: the address is bad, bounced, inactive or
    rejected, so no journey should mail it again."""

    def __init__(
        self, reason: str, status: int | None = None, suppress_recipient: bool = False
    ) -> None:
        super().__init__(reason, status)
        self.suppress_recipient = suppress_recipient

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "suppress_recipient": self.suppress_recipient}


class ProviderConfigError(ValueError):
    """The chosen provider lacks a setting; the message names it (never its value)."""


@runtime_checkable
class EmailProvider(Protocol):
    """What the send activity calls, from a worker thread (hence synchronous).

    `idempotent`: the provider dedupes on `idempotency_key`, so a send whose outcome is unknown
    (a crash, an AmbiguousProviderError) may be repeated without a second email.
    """

    name: str
    idempotent: bool

    def send(self, message: OutgoingMessage) -> Delivery: ...

    def close(self) -> None: ...


class ProviderConfig(BaseModel):
    """What `create_provider` needs (the worker fills it from JOURNEYS_* settings)."""

    provider: Literal[
        "smtp", "sendgrid", "postmark", "mailchimp", "klaviyo", "activecampaign", "webhook"
    ]
    api_key: SecretStr | None = None
    base_url: str | None = None
    """Overrides the provider's API base, e.g. an EU region or a local test server."""
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    """Standard Webhooks secret, `whsec_<base64>`, or any raw string."""
    klaviyo_revision: str = "2024-10-15"
    activecampaign_account_id: str | None = None
    """ActiveCampaign's `actid` for Event Tracking (Settings > Tracking > Event Tracking)."""
    activecampaign_event_key: SecretStr | None = None
    """ActiveCampaign's Event Tracking `key` (a secret, like the API token)."""
    activecampaign_tracking_url: str = "https://trackcmp.net/event"
    """Where ActiveCampaign's Event Tracking API takes events (a test or staging server)."""
    activecampaign_fields: dict[str, str] = Field(default_factory=dict)
    """Render-context values copied to the contact's custom fields at each step, as
    {context key: field ID}, e.g. {"cart_url": "12", "subject": "13"}; the automation's email
    reads them as personalization tags."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds for connecting and for each read: a hung provider must not hold a worker thread."""
