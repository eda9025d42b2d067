"""Choosing a provider from its config, and saying which setting is missing before any send."""

from __future__ import annotations

from collections.abc import Callable

from activities.providers.base import EmailProvider, ProviderConfig, ProviderConfigError

ENV = {
    "api_key": "JOURNEYS_PROVIDER_API_KEY",
    "base_url": "JOURNEYS_PROVIDER_BASE_URL",
    "activecampaign_account_id": "JOURNEYS_ACTIVECAMPAIGN_ACCOUNT_ID",
    "activecampaign_event_key": "JOURNEYS_ACTIVECAMPAIGN_EVENT_KEY",
    "activecampaign_tracking_url": "JOURNEYS_ACTIVECAMPAIGN_TRACKING_URL",
    "smtp_host": "JOURNEYS_SMTP_HOST",
    "smtp_password": "JOURNEYS_SMTP_PASSWORD",
    "webhook_url": "JOURNEYS_WEBHOOK_URL",
}
"""The worker's environment variable for each setting, named in errors alongside it."""


def create_provider(config: ProviderConfig) -> EmailProvider:
    """The provider `config.provider` names, ready to send; ProviderConfigError if it lacks a
    setting (the error names the setting, never a value)."""
    return _FACTORIES[config.provider](config)


def _missing(config: ProviderConfig, setting: str) -> ProviderConfigError:
    return ProviderConfigError(
        f"the {config.provider} provider needs {setting} ({ENV.get(setting, setting.upper())})"
    )


def _api_key(config: ProviderConfig) -> str:
    key = config.api_key.get_secret_value().strip() if config.api_key else ""
    if not key:
        raise _missing(config, "api_key")
    return key


def _smtp(config: ProviderConfig) -> EmailProvider:
    from activities.providers.smtp import SmtpProvider

    if not config.smtp_host:
        raise _missing(config, "smtp_host")
    if config.smtp_username and config.smtp_password is None:
        raise _missing(config, "smtp_password")
    return SmtpProvider(config)


def _sendgrid(config: ProviderConfig) -> EmailProvider:
    from activities.providers.sendgrid import SendGridProvider

    return SendGridProvider(config, _api_key(config))


def _postmark(config: ProviderConfig) -> EmailProvider:
    from activities.providers.postmark import PostmarkProvider

    return PostmarkProvider(config, _api_key(config))


def _mailchimp(config: ProviderConfig) -> EmailProvider:
    from activities.providers.mailchimp import MailchimpProvider

    return MailchimpProvider(config, _api_key(config))


def _klaviyo(config: ProviderConfig) -> EmailProvider:
    from activities.providers.klaviyo import KlaviyoProvider

    return KlaviyoProvider(config, _api_key(config))


def _activecampaign(config: ProviderConfig) -> EmailProvider:
    from activities.providers.activecampaign import ActiveCampaignProvider

    api_key = _api_key(config)
    if not (config.base_url or "").strip():  # each account has its own API host
        raise _missing(config, "base_url")
    account_id = (config.activecampaign_account_id or "").strip()
    if not account_id:
        raise _missing(config, "activecampaign_account_id")
    event_key = config.activecampaign_event_key
    event_key_value = event_key.get_secret_value().strip() if event_key else ""
    if not event_key_value:
        raise _missing(config, "activecampaign_event_key")
    if not config.activecampaign_tracking_url.startswith(("https://", "http://")):
        raise ProviderConfigError(
            "the activecampaign provider needs an absolute http(s) URL in "
            f"activecampaign_tracking_url ({ENV['activecampaign_tracking_url']})"
        )
    return ActiveCampaignProvider(config, api_key, account_id, event_key_value)


def _webhook(config: ProviderConfig) -> EmailProvider:
    from activities.providers.webhook import WebhookProvider

    if not config.webhook_url:
        raise _missing(config, "webhook_url")
    secret = config.webhook_secret.get_secret_value() if config.webhook_secret else None
    return WebhookProvider(config, config.webhook_url, secret)


_FACTORIES: dict[str, Callable[[ProviderConfig], EmailProvider]] = {
    "smtp": _smtp,
    "sendgrid": _sendgrid,
    "postmark": _postmark,
    "mailchimp": _mailchimp,
    "klaviyo": _klaviyo,
    "activecampaign": _activecampaign,
    "webhook": _webhook,
}
