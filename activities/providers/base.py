"""The contract every provider keeps: the message in, a Delivery or a named error out."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class OutgoingMessage(BaseModel):
    """A rendered message for one recipient, with the key that makes it unique."""

    model_config = ConfigDict(frozen=True)

    to: str
    from_email: str
    from_name: str | None = None
    subject: str
    html: str
    text: str
    headers: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str
    journey: str
    step: str
    user_id: str
    properties: dict[str, Any] = Field(default_factory=dict)

    @property
    def sender(self) -> str:
        return f"{self.from_name} <{self.from_email}>" if self.from_name else self.from_email


class Delivery(BaseModel):
    """The provider took the message."""

    provider: str
    provider_message_id: str | None = None


class ProviderError(Exception):
    """The provider did not take the message; `reason` is safe to log (no secrets)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class RetryableProviderError(ProviderError):
    """Not taken, try again later (after `retry_after` seconds when the provider said)."""

    def __init__(
        self, reason: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, status)
        self.retry_after = retry_after


class AmbiguousProviderError(ProviderError):
    """The request went out but no answer came back: the provider may have the message."""


class PermanentProviderError(ProviderError):
    """Refused for good; `suppress_recipient` when the address is bad, bounced or inactive."""

    def __init__(
        self, reason: str, status: int | None = None, suppress_recipient: bool = False
    ) -> None:
        super().__init__(reason, status)
        self.suppress_recipient = suppress_recipient


class ProviderConfigError(ValueError):
    """The chosen provider lacks a setting; the message names it."""


class EmailProvider(Protocol):
    """What the send activity calls. `idempotent`: the provider dedupes on our key, so a send
    interrupted by a crash may safely be repeated."""

    name: str
    idempotent: bool

    def send(self, message: OutgoingMessage) -> Delivery: ...

    def close(self) -> None: ...


class ProviderConfig(BaseModel):
    """What `create_provider` needs (from JOURNEYS_* settings); secrets stay SecretStr."""

    provider: Literal["smtp", "sendgrid", "postmark", "mailchimp", "klaviyo", "webhook"]
    api_key: SecretStr | None = None
    base_url: str | None = None
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    klaviyo_revision: str = "2024-10-15"
    timeout: float = 10.0
