"""`journeys consume`, and the consumer `journeys dev` runs beside the API.

The broker is chosen by the URL's scheme: amqp:// and amqps:// are RabbitMQ
(starter/streams/rabbitmq.py). A Kafka adapter would add its scheme to `broker_source` and
`adapter`, and its module beside rabbitmq.py; everything else (ingestion, decisions, pausing)
is starter/streams/consumer.py, shared.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client

from activities.store import Store
from starter.api import DATABASE_THREADS
from starter.backpressure import Admission
from starter.codec import data_converter
from starter.ingest import Ingestor
from starter.routing import Router
from starter.settings import Settings
from starter.streams.consumer import StreamConsumer
from starter.streams.rabbitmq import AmqpSource, BrokerRefused, RabbitMQConsumer, redacted
from workflows import registry

log = logging.getLogger("journeys.streams")


def broker_source(
    settings: Settings,
    url: str | None = None,
    queue: str | None = None,
    prefetch: int | None = None,
) -> AmqpSource | None:
    """Where to consume: `url` (else JOURNEYS_AMQP_URL; None when neither), its queue and
    prefetch (the arguments, else the URL's query, else JOURNEYS_AMQP_QUEUE and _PREFETCH).
    ValueError names what is wrong."""
    if url is None and settings.amqp_url is not None:
        url = settings.amqp_url.get_secret_value()
    if not url:
        return None
    return AmqpSource.parse(
        url,
        queue,
        prefetch,
        default_queue=settings.amqp_queue,
        default_prefetch=settings.amqp_prefetch,
    )


def adapter(source: AmqpSource, ingestor: Ingestor) -> RabbitMQConsumer:
    """The broker's consumer around the shared decisions."""
    return RabbitMQConsumer(StreamConsumer(ingestor), source)


def describe(source: AmqpSource) -> str:
    """One line for summaries: never the password."""
    return (
        f"{source.queue} on {redacted(source.url)} (prefetch {source.prefetch}; "
        f"dead letters to {source.dead_letter})"
    )


class Beside:
    """The consumer as a task beside the API in `journeys dev`, on the API's own Ingestor."""

    def __init__(self, source: AmqpSource, ingestor: Ingestor) -> None:
        self.consumer = adapter(source, ingestor)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.consumer.run(self._stop)
        except BrokerRefused as err:  # the API goes on; the summary said where it consumes
            log.error("not consuming events: %s", err)

    async def stop(self) -> None:
        """Take no more messages; those in flight finish (or come again later)."""
        self._stop.set()
        await self._task


async def consume(settings: Settings, source: AmqpSource) -> int:
    """`journeys consume`: until SIGINT or SIGTERM. 2 when the broker refuses the login."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(  # as the API: database calls wait in threads, not the loop
        ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="journeys-db")
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = Store(settings.database_url)
    store.migrate()
    try:
        # Lazy: Temporal down, at start or later, is the same Unavailable, and the same pause.
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
            lazy=True,
        )
        journeys = registry.load_modules(settings.journey_modules)
        router = Router(client, store, journeys, settings.task_queue)
        # Admission only bounds a batch's parallel users; prefetch bounds the messages.
        ingestor = Ingestor(store, router, admission=Admission(source.prefetch))
        try:
            await adapter(source, ingestor).run(stop)
        except BrokerRefused as err:
            log.error("%s", err)
            return 2
        finally:
            ingestor.close()
    finally:
        store.dispose()
    return 0
