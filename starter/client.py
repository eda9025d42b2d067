"""One way to reach Temporal, with the pydantic data converter on every boundary."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from starter.settings import Settings


async def connect(settings: Settings) -> Client:
    """Connect to the Temporal server named by TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
