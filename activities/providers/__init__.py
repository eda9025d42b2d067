"""Email providers: one small client per ESP, all behind one call, `send(message)`.

Errors, so the send activity can decide between "retry later" and "give up, carry on":

    ProviderError                  the provider did not take the message
    ├── RetryableProviderError     429, 5xx, refused connection, SMTP 4yz: try again later
    │                              (`retry_after` seconds when the provider said)
    ├── AmbiguousProviderError     timed out after sending: it may have the message
    └── PermanentProviderError     bad key, bad address, SMTP 5yz: do not retry
                                   (`suppress_recipient` when the address itself is bad)
    ProviderConfigError            a setting the chosen provider needs is missing

Clients are synchronous (the send activity runs in the worker's thread pool) and never put a
secret in an error message or repr.
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
