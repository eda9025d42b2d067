"""One way to reach Temporal, with the pydantic data converter on every boundary, encrypting
payloads when JOURNEYS_PAYLOAD_KEYS is set (starter/codec.py)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RetryConfig

from starter.codec import data_converter
from starter.settings import Settings

API_RETRY = RetryConfig(max_elapsed_time_millis=3000)
"""The API gives up on Temporal after 3 s (SDK default: 10 s) and answers 503 with Retry-After:
a sender with a 5 s webhook timeout (Shopify's) then sees a 503 to retry, not a timeout."""


async def connect(settings: Settings, *, retry: RetryConfig | None = None) -> Client:
    """Connect to the Temporal server named by TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE.

    The client's converter, `starter.codec.data_converter(settings)`, is also what workers built
    on it use: every payload the API, the worker and the CLI write is encrypted alike."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        retry_config=retry,
    )
