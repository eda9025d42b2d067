"""Settings, from environment variables (JOURNEYS_* and TEMPORAL_*) or a .env file."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    journey_modules: Annotated[list[str], NoDecode] = ["workflows.journeys"]
    """Modules or packages whose journeys are loaded: a JSON list, or names separated by commas."""
    """Modules whose journeys are loaded; a package loads every module in it (recursively)."""
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
        "outbox",
        "smtp",
        "sendgrid",
        "postmark",
        "mailchimp",
        "klaviyo",
        "activecampaign",
        "webhook",
    ] = "outbox"
    provider_api_key: SecretStr | None = None
    provider_base_url: str | None = None
    activecampaign_account_id: str | None = None
    """ActiveCampaign Event Tracking's `actid` (Settings > Tracking > Event Tracking)."""
    activecampaign_event_key: SecretStr | None = None
    """ActiveCampaign Event Tracking's event key."""
    activecampaign_tracking_url: str = "https://trackcmp.net/event"
    """ActiveCampaign's Event Tracking API; set only for a test or staging server."""
    activecampaign_fields: dict[str, str] = {}
    """Context values copied to ActiveCampaign custom fields at each step, as JSON {context key:
    field ID}, e.g. JOURNEYS_ACTIVECAMPAIGN_FIELDS='{"cart_url": "12", "subject": "13"}'."""
    mailchimp_api_key: SecretStr | None = None
    """Mailchimp Marketing's API key (`<key>-us6`, its suffix names the data center), for the
    `audience` channel; not Mandrill's (that one is JOURNEYS_PROVIDER_API_KEY)."""
    mailchimp_list_id: str | None = None
    """The Mailchimp audience (list) the `audience` channel updates."""
    mailchimp_base_url: str | None = None
    """Overrides https://<dc>.api.mailchimp.com; set only for a test or staging server."""
    mailchimp_status_if_new: Literal["subscribed", "pending"] = "subscribed"
    """A new member's status after a marketing step ("pending": Mailchimp asks them to confirm);
    a transactional step (marketing=False) adds them as "transactional"."""
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
    """The shipped templates (`_layout.html`, the shipped journeys'), or a complete copy."""
    templates_dirs: str = ""
    """A team's own template folders, os.pathsep-separated (`a:b`), searched first: a journey
    package ships only its own journeys' templates; see `template_folders`."""
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
    global_holdout: float = Field(0.0, ge=0.0, lt=1.0)
    """The programme's global holdout: this share of users (drawn by user ID, apart from each
    journey's own holdout) is held out of every journey, so the report measures all journeys
    together against them; 0 (default) is off. See docs/measurement.md."""

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
    kissmetrics_key: SecretStr | None = None
    """The Kissmetrics API key (`_k`) the site's tracking calls carry: /v1/sources/kissmetrics
    takes only calls with it."""

    # What the ESP tells us back, and clicks and opens (starter/feedback.py, tracking.py) -----
    sendgrid_webhook_public_key: SecretStr | None = None
    """SendGrid's Signed Event Webhook verification key (Mail Settings > Event Webhook; base64
    DER as SendGrid shows it, or PEM): enables POST /v1/feedback/sendgrid. A public key, kept
    out of print like every key setting all the same."""
    postmark_webhook_user: str = "journeys"
    postmark_webhook_password: SecretStr | None = None
    """Basic auth credentials Postmark's webhook URL carries (Postmark signs nothing):
    https://<user>:<password>@host/v1/feedback/postmark. The password enables the route."""
    mandrill_webhook_key: SecretStr | None = None
    """The key Mandrill shows for the webhook (Settings > Webhooks): enables
    POST /v1/feedback/mandrill, checked against X-Mandrill-Signature."""
    mandrill_webhook_url: str | None = None
    """The webhook URL exactly as entered in Mandrill, which it signs; default
    <JOURNEYS_PUBLIC_URL>/v1/feedback/mandrill."""
    track_clicks: bool = True
    """Links in emails go through the signed redirect /c/<token> (activities/tracking.py)."""
    track_opens: bool = True
    """Emails carry the open pixel /o/<token>.gif (opens are approximate: Apple Mail Privacy
    Protection loads every image)."""

    # SMS and push (docs/channels.md) ---------------------------------------------------------
    sms_provider: Literal["none", "twilio"] = "none"
    """"twilio" enables the `sms` channel (Twilio's Messages API) and its inbound webhook."""
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    """Basic auth for the Messages API, and the key Twilio signs its webhooks with."""
    twilio_from: str | None = None
    """The sending number in E.164 (+14155550100)..."""
    twilio_messaging_service_sid: str | None = None
    """...or a Messaging Service (MG...), which picks the number; one of the two is needed."""
    twilio_base_url: str = "https://api.twilio.com"
    """Twilio's API; set only for a test or staging server."""
    sms_default_region: str = "US"
    """How a phone trait without a country code is read (ISO 3166 code, e.g. "GB")."""
    push_provider: Literal["none", "fcm"] = "none"
    """"fcm" enables the `push` channel (Firebase Cloud Messaging HTTP v1)."""
    fcm_credentials_file: Path | None = None
    """The Firebase service account's JSON key file (its OAuth2 token comes from google-auth)."""
    fcm_project_id: str | None = None
    """The Firebase project; default: the service account's own `project_id`."""
    fcm_base_url: str = "https://fcm.googleapis.com"
    """FCM's API; set only for a test or staging server."""
    consent: Literal["opt_out", "opt_in"] = "opt_out"
    """"opt_in": a marketing send needs the user's explicit consent on its channel (a consent
    trait or PUT /v1/users/{id}/subscription); "opt_out" (default): email may go until the user
    leaves. SMS always needs explicit consent; push needs a registered device."""

    # Event streams (starter/streams/, docs/streams.md) ---------------------------------------
    amqp_url: SecretStr | None = None
    """RabbitMQ to consume events from, `amqp://user:password@host:5672/vhost` (`amqps://` for
    TLS): `journeys consume` reads it, and `journeys dev` runs the consumer when it is set.
    Secret: it usually carries the password."""
    amqp_queue: str = "journeys.events"
    """The queue of Segment-shaped events; those that can never be taken go to
    `<queue>.dead-letter` with the reason in the `x-journeys-error` header."""
    amqp_prefetch: int = Field(64, ge=1)
    """Messages one consumer holds unacknowledged at once, i.e. its work in flight: a slow
    Temporal slows consumption instead of piling work up."""

    # Payload encryption (starter/codec.py) -----------------------------------------------------
    payload_keys: SecretStr | None = None
    """AES-256-GCM keys for every payload journeys write into Temporal histories:
    `key_id:base64(32 bytes)`, comma-separated; the first encrypts, each one decrypts the
    payloads that name its key ID (rotation). Unset: the key `journeys dev` keeps in the data
    folder (`payload_keys`), if there is one; else payloads are stored in clear."""

    @field_validator("journey_modules", mode="before")
    @classmethod
    def _module_names(cls, value: object) -> object:
        """`["acme.journeys"]` as before, or the plain `acme.journeys,acme.more` people type."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [name.strip() for name in text.split(",") if name.strip()]

    def team_template_folders(self) -> list[Path]:
        """JOURNEYS_TEMPLATES_DIRS, folder by folder."""
        return [Path(f) for f in self.templates_dirs.split(os.pathsep) if f.strip()]

    def template_folders(self) -> list[Path]:
        """Where templates are looked up, in order: JOURNEYS_TEMPLATES_DIRS, JOURNEYS_TEMPLATES_DIR,
        then the shipped folder of this checkout, so `_layout.html` and the shipped journeys'
        templates are found whatever folder the command runs in (the first folder with a file
        wins)."""
        folders = [*self.team_template_folders(), self.templates_dir]
        if (SHIPPED_TEMPLATES / "_layout.html").is_file():
            folders.append(SHIPPED_TEMPLATES)
        unique: dict[Path, Path] = {}
        for folder in folders:
            unique.setdefault(folder.resolve(), folder)
        return list(unique.values())

    def temporal_ui(self) -> str:
        return (self.temporal_ui_url or f"http://localhost:{self.temporal_ui_port}").rstrip("/")


SHIPPED_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
"""The templates beside the code in a checkout (`pip install -e`). An installed copy has none
there; the image runs in the folder that holds them (JOURNEYS_TEMPLATES_DIR's default)."""


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


class InsecureSettings(RuntimeError):
    """The API would serve open: an empty API key, or none beyond loopback."""


def signing_key(settings: Settings) -> str:
    """The key unsubscribe links are signed and checked with: `secret_key(settings)`, else the
    development key while both JOURNEYS_PUBLIC_URL and the API's listening host
    (JOURNEYS_API_HOST) are on loopback; MissingSecretKey otherwise, since links signed with a
    published key let anyone who reaches the API unsubscribe anyone."""
    key = secret_key(settings)
    if key is not None:
        return key
    if not is_loopback(urlsplit(settings.public_url).hostname or ""):
        raise MissingSecretKey(
            f"set JOURNEYS_SECRET_KEY: unsubscribe links to {settings.public_url} must not be "
            "signed with the development key"
        )
    if not is_loopback(settings.api_host):
        raise MissingSecretKey(
            f"set JOURNEYS_SECRET_KEY: the API listens on {settings.api_host}, beyond this "
            "machine, where anyone could forge unsubscribe links signed with the development key"
        )
    return DEVELOPMENT_KEY


MIN_SECRET_LENGTH = 16
"""The fewest characters a key or secret we accept may have (`journeys dev` generates 32 and
more; Shopify, Stripe and Standard Webhooks secrets are longer): an empty or short one is
refused at start, never taken as "no key"."""

CHECKED_SECRETS = {
    "api_key": "JOURNEYS_API_KEY",
    "secret_key": "JOURNEYS_SECRET_KEY",
    "shopify_secret": "JOURNEYS_SHOPIFY_SECRET",
    "stripe_secret": "JOURNEYS_STRIPE_SECRET",
    "standard_webhook_secret": "JOURNEYS_STANDARD_WEBHOOK_SECRET",
    "segment_secret": "JOURNEYS_SEGMENT_SECRET",
    "kissmetrics_key": "JOURNEYS_KISSMETRICS_KEY",
    "postmark_webhook_password": "JOURNEYS_POSTMARK_WEBHOOK_PASSWORD",
    "mandrill_webhook_key": "JOURNEYS_MANDRILL_WEBHOOK_KEY",
}
"""The secrets the API checks callers with, and the variables that set them."""


def weak_secrets(settings: Settings) -> list[str]:
    """Each of CHECKED_SECRETS (and the secret key `journeys dev` keeps) that is set but empty
    or shorter than MIN_SECRET_LENGTH, as a sentence naming it; never its value."""
    found = {
        variable: getattr(settings, name).get_secret_value()
        for name, variable in CHECKED_SECRETS.items()
        if getattr(settings, name) is not None
    }
    kept = settings.data_dir / "secret_key"
    if settings.secret_key is None and kept.is_file():
        found[f"the kept secret key {kept}"] = kept.read_text()
    problems = []
    for variable, value in found.items():
        length = len(value.strip())
        if length >= MIN_SECRET_LENGTH:
            continue
        what = "empty" if length == 0 else f"{length} characters"
        if variable.startswith("the kept"):
            fix = "delete it, and `journeys dev` makes a new one"
        elif variable.endswith(("_SECRET", "_KISSMETRICS_KEY", "_MANDRILL_WEBHOOK_KEY")):
            # a sender's: copy all of it
            fix = f"set the whole secret the sender shows (at least {MIN_SECRET_LENGTH} "
            fix += "characters), or unset it to turn the source off"
        else:
            fix = f"use at least {MIN_SECRET_LENGTH} characters (`python -c 'import secrets; "
            fix += "print(secrets.token_urlsafe(32))'` makes one), or unset it"
        problems.append(f"{variable} is set but {what}: {fix}")
    return problems


def serving_problems(settings: Settings) -> list[str]:
    """Why the API must not serve with these settings, one sentence each (empty when it may):
    a weak secret (`weak_secrets`), no API key beyond loopback, unsubscribe links no real
    key would sign (`signing_key`), and a SendGrid verification key that is no ECDSA key."""
    problems = weak_secrets(settings)
    if settings.sendgrid_webhook_public_key is not None:
        from starter.feedback import load_sendgrid_key  # cryptography, only when it is set

        try:
            load_sendgrid_key(settings.sendgrid_webhook_public_key.get_secret_value())
        except ValueError as err:
            problems.append(
                f"JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY is set but {err}: paste the verification "
                "key SendGrid shows for the Signed Event Webhook, or unset it"
            )
    if settings.api_key is None and not is_loopback(settings.api_host):
        problems.append(
            f"JOURNEYS_API_KEY is not set and the API listens on {settings.api_host}, beyond "
            "this machine: set a key, or bind to 127.0.0.1"
        )
    try:
        signing_key(settings)
    except MissingSecretKey as err:
        problems.append(str(err))
    return problems


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
