"""Choosing a provider from settings, and saying which setting is missing."""

from __future__ import annotations

from activities.providers.base import EmailProvider, ProviderConfig, ProviderConfigError


def create_provider(config: ProviderConfig) -> EmailProvider:
    """The provider `config.provider` names, or ProviderConfigError naming what it lacks."""
    from activities.providers.klaviyo import KlaviyoProvider
    from activities.providers.mailchimp import MailchimpProvider
    from activities.providers.postmark import PostmarkProvider
    from activities.providers.sendgrid import SendGridProvider
    from activities.providers.smtp import SmtpProvider
    from activities.providers.webhook import WebhookProvider

    if config.provider == "smtp":
        return SmtpProvider(config)
    if config.provider == "webhook":
        if not config.webhook_url:
            raise ProviderConfigError("the webhook provider needs JOURNEYS_WEBHOOK_URL")
        secret = config.webhook_secret.get_secret_value() if config.webhook_secret else None
        return WebhookProvider(config, config.webhook_url, secret)
    if config.api_key is None:
        raise ProviderConfigError(f"the {config.provider} provider needs JOURNEYS_PROVIDER_API_KEY")
    key = config.api_key.get_secret_value()
    http = {
        "sendgrid": SendGridProvider,
        "postmark": PostmarkProvider,
        "mailchimp": MailchimpProvider,
        "klaviyo": KlaviyoProvider,
    }
    return http[config.provider](config, key)  # type: ignore[abstract]
