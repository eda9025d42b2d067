"""RabbitMQ (AMQP 0-9-1) for `StreamConsumer`, with aio-pika: the one broker-specific module.

    journeys consume amqp://user:password@host:5672/vhost?queue=journeys.events&prefetch=64

- Connection: aio-pika's `connect_robust`, which reconnects after a broker restart or a network
  cut and restores the channel, its QoS and the consumer. The first connection is retried too,
  so the consumer may start before the broker; a refused login or vhost stops it at once.
- Prefetch (`basic.qos`): at most `prefetch` messages unacknowledged, each in its own task.
- `Taken`: `basic.ack`. `DeadLetter`: the message (body, properties, headers) is published,
  persistent and confirmed by the broker, to `<queue>.dead-letter` with `x-journeys-error` (the
  reason) and `x-journeys-queue`, then acknowledged: dying in between dead-letters it twice,
  never loses it. RabbitMQ's own dead-lettering (reject to a DLX) could not carry the reason.
- Unavailable ingestion: neither ack nor nack; the message waits in its task (Pause) and the
  full prefetch window stops deliveries. A channel closed under a waiting message abandons it:
  the broker delivers it again, and ingestion's dedupe makes that one call.
- Queues: declared durable when they do not exist; an existing one (quorum, with a policy, ...)
  is used as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    AMQPConnectionError,
    AMQPError,
    AuthenticationError,
    ChannelClosed,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ProbableAuthenticationError,
    ProtocolSyntaxError,
)

from starter.streams.consumer import MAX_REASON, Abandoned, DeadLetter, StreamConsumer

log = logging.getLogger("journeys.streams.rabbitmq")

ERROR_HEADER = "x-journeys-error"
"""Why a dead letter could not be taken (malformed JSON, the fields a schema error names, ...)."""
QUEUE_HEADER = "x-journeys-queue"
"""The queue a dead letter came from, to publish it back there once fixed."""
DEAD_LETTER_SUFFIX = ".dead-letter"

SCHEMES = ("amqp", "amqps")

_REFUSED = (AuthenticationError, ProbableAuthenticationError, ProtocolSyntaxError)
"""Connection errors that retrying cannot fix: a wrong login; a vhost that does not exist or
the user may not open (the broker closes instead of answering Connection.Open)."""

_LOST = (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError)
"""What acking or publishing raises when the channel went away under it."""


class BrokerRefused(Exception):
    """RabbitMQ refused the login or the vhost: fix the URL, retrying will not."""


@dataclass(frozen=True)
class AmqpSource:
    """Where to consume: the broker URL (without our query parameters), queue and prefetch."""

    url: str
    queue: str
    prefetch: int

    @property
    def dead_letter(self) -> str:
        return self.queue + DEAD_LETTER_SUFFIX

    @classmethod
    def parse(
        cls,
        url: str,
        queue: str | None = None,
        prefetch: int | None = None,
        *,
        default_queue: str = "journeys.events",
        default_prefetch: int = 64,
    ) -> AmqpSource:
        """`queue` and `prefetch` when given, else the URL's `?queue=` and `?prefetch=`, else
        the defaults; the URL's other query parameters (heartbeat, ...) are aio-pika's.
        ValueError names what is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"not an AMQP URL (amqp:// or amqps://): {redacted(url)}")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        rest = [(k, v) for k, v in query.items() if k not in ("queue", "prefetch")]
        name = queue or query.get("queue") or default_queue
        try:
            count = (
                prefetch if prefetch is not None else int(query.get("prefetch", default_prefetch))
            )
        except ValueError:
            raise ValueError(f"prefetch must be a number, not {query['prefetch']!r}") from None
        if count < 1:
            raise ValueError(f"prefetch must be 1 or more, not {count}")
        return cls(urlunsplit(parts._replace(query=urlencode(rest))), name, count)


def redacted(url: str) -> str:
    """`url` with its password hidden, for logs and summaries."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


class RabbitMQConsumer:
    """Consumes one queue through a StreamConsumer until told to stop."""

    def __init__(
        self,
        consumer: StreamConsumer,
        source: AmqpSource,
        *,
        reconnect_interval: float = 2.0,
        grace: float = 10.0,
    ) -> None:
        """`grace`: seconds the messages in flight get to finish when stopping; the rest stay
        unacknowledged and the broker delivers them again."""
        self.consumer = consumer
        self.source = source
        self.reconnect_interval = reconnect_interval
        self.grace = grace
        self.ready = asyncio.Event()
        """Set once consuming (for `journeys dev`'s summary, and tests)."""
        self._channel: AbstractChannel | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; then take no more, let those in flight finish (within
        `grace`) and close. Raises BrokerRefused for a login or vhost the broker refuses."""
        connection = await self._connect(stop)
        if connection is None:
            return
        try:
            connection.reconnect_callbacks.add(self._reconnected)
            channel = await connection.channel(on_return_raises=True)
            self._channel = channel
            await channel.set_qos(prefetch_count=self.source.prefetch)
            try:
                queue = await self._queue(connection, channel, self.source.queue)
                await self._queue(connection, channel, self.source.dead_letter)
                tag = await queue.consume(self._on_message)
            except ChannelClosed as err:  # no permission on the vhost, a queue in use, ...
                raise BrokerRefused(f"RabbitMQ refused the queues: {err}") from err
            log.info(
                "consuming %s from %s (prefetch %d; dead letters to %s)",
                self.source.queue,
                redacted(self.source.url),
                self.source.prefetch,
                self.source.dead_letter,
            )
            self.ready.set()
            await stop.wait()
            with contextlib.suppress(*_LOST):  # no new deliveries (a broker down makes none)
                await asyncio.wait_for(queue.cancel(tag), 5)
            await self._drain()
        finally:
            await connection.close()

    async def _connect(self, stop: asyncio.Event) -> AbstractRobustConnection | None:
        delay = 0.5
        where = redacted(self.source.url)
        while not stop.is_set():
            try:
                return await aio_pika.connect_robust(
                    self.source.url,
                    reconnect_interval=self.reconnect_interval,
                    client_properties={"connection_name": "journeys consume"},
                )
            except _REFUSED as err:
                raise BrokerRefused(f"RabbitMQ at {where} refused: {err}") from err
            except (AMQPConnectionError, OSError) as err:
                log.warning(
                    "RabbitMQ at %s unreachable (%s); retrying in %.0f s", where, err, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)
        return None

    def _reconnected(self, *_: object) -> None:
        log.warning(
            "reconnected to %s: consuming %s again; messages unacknowledged before come again",
            redacted(self.source.url),
            self.source.queue,
        )

    @staticmethod
    async def _queue(
        connection: AbstractRobustConnection, channel: AbstractChannel, name: str
    ) -> AbstractQueue:
        """The queue as it exists, else declared durable. The existence check runs on a channel
        of its own, since a failed passive declare closes its channel."""
        try:
            async with connection.channel() as probe:
                await probe.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            await channel.declare_queue(name, durable=True)
        # Passive, so the robust channel re-finds it after a reconnect, whatever its type.
        return await channel.declare_queue(name, passive=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        """aio-pika calls this in a task per delivery, in delivery order."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._settle(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        delivery = message.channel  # the channel it came on; a reconnect makes a new one
        try:
            decision = await self.consumer.handle(
                message.body, alive=lambda: not delivery.is_closed
            )
        except Abandoned:
            log.info(
                "delivery %s abandoned: its channel closed, it comes again", message.delivery_tag
            )
            return
        try:
            if isinstance(decision, DeadLetter):
                await self._dead_letter(message, decision.reason)
            await message.ack()
        except _LOST as err:  # redelivered later: dedupe makes it one call, or one dead letter
            log.warning(
                "delivery %s not acknowledged (%s): it comes again",
                message.delivery_tag,
                type(err).__name__,
            )

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        if self._channel is None:
            raise ChannelInvalidStateError("no channel")
        headers = dict(message.headers or {})
        headers[ERROR_HEADER] = reason[:MAX_REASON]
        headers[QUEUE_HEADER] = self.source.queue
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                message.body,
                headers=headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                timestamp=message.timestamp,
                type=message.type,
                app_id=message.app_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.source.dead_letter,
            timeout=30,
        )

    async def _drain(self) -> None:
        """Let the messages in flight finish within `grace`; cancel the rest (unacknowledged,
        so the broker delivers them again)."""
        pending = set(self._in_flight)
        if not pending:
            return
        log.info("stopping: %d messages in flight", len(pending))
        _, late = await asyncio.wait(pending, timeout=self.grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=5)
