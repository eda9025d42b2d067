"""Settings, from environment variables (JOURNEYS_* and TEMPORAL_*) or a .env file."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the API, the worker and `journeys dev` read; secrets never printed."""

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", env_file=".env", extra="ignore")

    database_url: str = Field("sqlite:///data/journeys.db", repr=False)
    """May carry the database password: kept out of repr (print the engine URL, password hidden)."""
    api_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    data_dir: Path = Path("data")
    task_queue: str = "journeys"
    journey_modules: list[str] = ["workflows.journeys"]
    temporal_address: str = Field(
        "localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "JOURNEYS_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        "default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "JOURNEYS_TEMPORAL_NAMESPACE"),
    )
    temporal_ui_port: int = 8233
    temporal_ui_url: str | None = None
    """Where operators open the Temporal Web UI (default: localhost on `temporal_ui_port`);
    the dashboard links each journey's running list there."""

    # Delivery ---------------------------------------------------------------------------------
    email_provider: Literal[
        "outbox", "smtp", "sendgrid", "postmark", "mailchimp", "klaviyo", "webhook"
    ] = "outbox"
    provider_api_key: SecretStr | None = None
    provider_base_url: str | None = None
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["starttls", "ssl", "none"] = "starttls"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    from_email: str = "journeys@example.com"
    from_name: str | None = None
    company_name: str = "journeys"
    postal_address: str | None = None
    templates_dir: Path = Path("templates")
    public_url: str = "http://127.0.0.1:8000"
    """Where recipients reach the API: unsubscribe links are built on it."""
    secret_key: SecretStr | None = None
    """Signs unsubscribe links; `journeys dev` generates one. Set it in production."""
    frequency_cap: int = 3
    """Marketing messages per user per window on email and in-app (each)."""
    frequency_caps: dict[str, int] = {}
    """Per-channel overrides as JSON, e.g. JOURNEYS_FREQUENCY_CAPS='{"in_app": 5}'."""
    frequency_window_days: int = 7
    quiet_hours: str = "21:00-08:00"
    """Local time in the user's `timezone` trait (UTC without one); "" turns quiet hours off."""
    default_timezone: str = "UTC"

    # Operations -------------------------------------------------------------------------------
    api_max_in_flight: int = Field(128, ge=0)
    """Ingest requests one API process works on at once; past it, 503 with Retry-After at once.
    128 is about one second of work at the 100-125 events/s measured on 2 cores: an admitted event
    is answered within about a second, far inside senders' timeouts. 0 turns it off."""
    metrics_address: str = "127.0.0.1:9464"
    """Where the worker serves Prometheus metrics (the Temporal SDK's and ours); "" turns off."""

    # Sources ----------------------------------------------------------------------------------
    shopify_secret: SecretStr | None = None
    stripe_secret: SecretStr | None = None
    standard_webhook_secret: SecretStr | None = None
    segment_secret: SecretStr | None = None

    def temporal_ui(self) -> str:
        return (self.temporal_ui_url or f"http://localhost:{self.temporal_ui_port}").rstrip("/")


def secret_key(settings: Settings) -> str | None:
    """JOURNEYS_SECRET_KEY, else the key `journeys dev` keeps in the data folder, else None."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    kept = settings.data_dir / "secret_key"
    return kept.read_text().strip() if kept.is_file() else None


DEVELOPMENT_KEY = "dev-only-secret"
"""Public, so it signs unsubscribe links only while they point at this machine."""


class MissingSecretKey(RuntimeError):
    """Unsubscribe links would reach recipients signed with a key anyone can read."""


def signing_key(settings: Settings) -> str:
    """The key unsubscribe links are signed and checked with: `secret_key(settings)`, else the
    development key while JOURNEYS_PUBLIC_URL is on loopback; MissingSecretKey otherwise, since
    links signed with a published key let anyone unsubscribe anyone."""
    key = secret_key(settings)
    if key is not None:
        return key
    if is_loopback(urlsplit(settings.public_url).hostname or ""):
        return DEVELOPMENT_KEY
    raise MissingSecretKey(
        f"set JOURNEYS_SECRET_KEY: unsubscribe links to {settings.public_url} must not be "
        "signed with the development key"
    )


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
