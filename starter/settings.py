"""Settings, from environment variables (JOURNEYS_* and TEMPORAL_*) or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the API, the worker and `journeys dev` read; secrets never printed."""

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///data/journeys.db"
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

    # Sources ----------------------------------------------------------------------------------
    shopify_secret: SecretStr | None = None
    stripe_secret: SecretStr | None = None
    standard_webhook_secret: SecretStr | None = None
    segment_secret: SecretStr | None = None


def secret_key(settings: Settings) -> str | None:
    """JOURNEYS_SECRET_KEY, else the key `journeys dev` keeps in the data folder, else None."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    kept = settings.data_dir / "secret_key"
    return kept.read_text().strip() if kept.is_file() else None
