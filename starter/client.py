"""One way to reach Temporal, with the pydantic data converter on every boundary."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig

from starter.settings import Settings

API_RETRY = RetryConfig(max_elapsed_time_millis=3000)
"""The API gives up on Temporal after 3 s (SDK default: 10 s) and answers 503 with Retry-After:
a sender with a 5 s webhook timeout (Shopify's) then sees a 503 to retry, not a timeout."""


async def connect(settings: Settings, *, retry: RetryConfig | None = None) -> Client:
    """Connect to the Temporal server named by TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        retry_config=retry,
    )
