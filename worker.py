"""The worker: runs the journey engine and every activity against one Temporal task queue.

    journeys worker          # against TEMPORAL_ADDRESS (default localhost:7233)

It registers the journey search attributes on startup (idempotently, on any server) so the
Temporal UI can list journeys by name, user, step and group.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import EntryActivities, RecordingActivities, SendingActivities, Store
from workflows.engine import JourneyWorkflow
from workflows.identity import SEARCH_ATTRIBUTES

log = logging.getLogger("journeys.worker")

ACTIVITY_THREADS = 32


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register any missing journey search attribute; returns the names it added."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:  # another worker won the race
            raise
    return sorted(missing)


def create_worker(
    client: Client, store: Store, task_queue: str, executor: ThreadPoolExecutor
) -> Worker:
    """A worker for the engine and all activities; `executor` runs the database activities."""
    entry, recording, sending = (
        EntryActivities(store),
        RecordingActivities(store),
        SendingActivities(store),
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[JourneyWorkflow],
        activities=[
            entry.enter_journey,
            recording.record_step,
            recording.record_outcome,
            sending.send_message,
        ],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                "workflows.registry", "workflows.errors"
            )
        ),
    )


async def run_worker(stop: asyncio.Event | None = None) -> None:
    """Run a worker from settings until `stop` is set (or forever)."""
    from starter.client import connect
    from starter.settings import Settings
    from workflows import registry

    settings = Settings()
    journeys = registry.load_modules(settings.journey_modules)
    store = Store(settings.database_url)
    store.create_all()
    client = await connect(settings)
    added = await ensure_search_attributes(client)
    if added:
        log.info("registered search attributes %s", ", ".join(added))
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        worker = create_worker(client, store, settings.task_queue, executor)
        print(
            f"worker: {len(journeys)} journeys ({', '.join(j.name for j in journeys)}) on task "
            f"queue {settings.task_queue!r} at {settings.temporal_address}",
            flush=True,
        )
        async with worker:
            await (stop or asyncio.Event()).wait()
