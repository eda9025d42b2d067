"""Email providers: one small synchronous client per ESP, all behind `send(message)`.

    provider = create_provider(ProviderConfig(provider="postmark", api_key=SecretStr(...)))
    delivery = provider.send(OutgoingMessage(...))   # Delivery, or a ProviderError below
    provider.close()

    ProviderError                  the provider did not (knowingly) take the message
    ├── RetryableProviderError     429, 5xx, refused connection, SMTP 4yz: try again later
    │                              (`retry_after` seconds when the provider said)
    ├── AmbiguousProviderError     timed out after sending: it may have the message
    └── PermanentProviderError     bad key, other 4xx, SMTP 5yz: do not retry
                                   (`suppress_recipient` when the address itself is bad)
    ProviderConfigError            (a ValueError) a setting the chosen provider needs is missing

Clients run in the worker's activity thread pool, keep one connection pool each, and never put a
secret in a log line, an error message or a repr.
"""

from __future__ import annotations

from activities.providers.base import (
    AmbiguousProviderError,
    Delivery,
    EmailProvider,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfig,
    ProviderConfigError,
    ProviderError,
    RetryableProviderError,
)
from activities.providers.factory import create_provider

__all__ = [
    "AmbiguousProviderError",
    "Delivery",
    "EmailProvider",
    "OutgoingMessage",
    "PermanentProviderError",
    "ProviderConfig",
    "ProviderConfigError",
    "ProviderError",
    "RetryableProviderError",
    "create_provider",
]
