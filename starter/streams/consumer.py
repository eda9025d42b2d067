"""A stream's messages through the API's ingestion, whatever the broker (docs/streams.md).

A broker adapter (`starter/streams/rabbitmq.py`; a Kafka one would sit beside it) hands each
message's body to `StreamConsumer.handle` and carries out the decision it returns:

- `Taken`: every call in it was recorded and Temporal accepted every start and signal (or it was
  a duplicate, or a type no journey uses): acknowledge it (Kafka: its offset may be committed).
- `DeadLetter(reason)`: it can never be taken as it is (malformed JSON, a schema error, a batch
  item refused, an internal error): move it aside with the reason, never retry it for ever.

A transient failure (Temporal or the database unreachable: ingestion raises `Unavailable`) is
no decision: `handle` keeps the message, unacknowledged, while the consumer pauses (`Pause`), and
tries again until it is taken. Unacknowledged messages fill the broker's prefetch window, so the
broker stops delivering meanwhile: nothing is lost and nothing piles up.

Redelivery (a consumer killed before its ack, a broker restart) is safe: ingestion dedupes by
messageId, and a call sent without one gets a digest of the message as its key (`message_key`),
so the same message twice is one call, as the HTTP API's dedupe makes a retried POST one call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from starter.api import validate_batch
from starter.calls import (
    IGNORED_TYPES,
    MAX_BODY,
    AnyCall,
    BatchCall,
    Call,
    IgnoredCall,
    nul_at,
    parse_json,
)
from starter.ingest import Accepted, Ingestor, Unavailable

log = logging.getLogger("journeys.streams")

T = TypeVar("T")

_CALL: TypeAdapter[AnyCall] = TypeAdapter(Call)

TYPES = ("track", "identify", "delete", *sorted(IGNORED_TYPES))
"""What a message's `type` may be; a batch is `{"batch": [...]}`."""

MAX_REASON = 1000
"""Characters of a dead letter's reason worth a header or a log line (a batch can name many
fields; the rest is cut)."""


@dataclass(frozen=True)
class Taken:
    """Acknowledge: every call was taken; `statuses` per call (accepted, duplicate, ignored)."""

    statuses: tuple[str, ...]


@dataclass(frozen=True)
class DeadLetter:
    """Move aside with `reason`: retrying would fail the same way for ever."""

    reason: str


Decision = Taken | DeadLetter


class Abandoned(Exception):
    """The message's delivery is gone (its channel closed) before it was taken: do nothing with
    it, the broker delivers it again."""


@dataclass
class Message:
    """A message read: the calls to take, and what to answer without taking anything."""

    calls: list[AnyCall] = field(default_factory=list)
    ignored: int = 0
    refused: list[str] = field(default_factory=list)
    """Batch items that could not be taken ("item 3: event: Field required")."""

    @property
    def user(self) -> str | None:
        """The one user all its calls are about (its lane), else None."""
        users = {call.user_id for call in self.calls}
        return users.pop() if len(users) == 1 else None


def message_key(body: bytes) -> str:
    """The dedupe key for calls sent without a messageId: a digest of the body, so a redelivered
    or re-published message is the same call. Not the broker's message ID: clients such as
    aiormq set a random one on every publish, a producer's retry included."""
    return "stream-" + hashlib.sha256(body).hexdigest()[:32]


def read(body: bytes, key: str) -> Message | DeadLetter:
    """Parse and validate a message as the API does a body: one Segment call (track, identify,
    delete; page, screen, group and alias are ignored) or a batch. `key` stands in for a
    missing messageId (item N of a batch: `key:N`)."""
    if len(body) > MAX_BODY:  # the API's 413: no call is that large
        return DeadLetter(f"message over {MAX_BODY} bytes")
    try:
        payload = parse_json(body)
    except (ValueError, UnicodeDecodeError) as err:
        return DeadLetter(f"malformed JSON: {err}")
    if not isinstance(payload, dict):
        return DeadLetter("not a JSON object: a Segment call or batch is expected")
    where = nul_at(payload)
    if where is not None:
        return DeadLetter(f"invalid call: {_path(where) or 'a key'}: a NUL character")
    try:
        if "batch" in payload:
            return _batch(BatchCall.model_validate(payload), key)
        kind = payload.get("type")
        if kind is None:  # the API knows it by the path; a message must say
            return DeadLetter(f"invalid call: type: Field required ({', '.join(TYPES)})")
        if isinstance(kind, str) and kind in IGNORED_TYPES:
            IgnoredCall.model_validate(payload)
            return Message(ignored=1)
        if payload.get("messageId") is None:
            payload = {**payload, "messageId": key}
        return Message(calls=[_CALL.validate_python(payload)])
    except ValidationError as err:
        return DeadLetter(f"invalid call: {_fields(err)}")


def _batch(call: BatchCall, key: str) -> Message:
    call.batch = [
        {**item, "messageId": f"{key}:{index}"} if item.get("messageId") is None else item
        for index, item in enumerate(call.batch)
    ]
    items, calls = validate_batch(call)
    refused = [
        f"item {item.index}: " + "; ".join(f"{e.field}: {e.error}" for e in item.errors)
        for item in items
        if item.status == "rejected"
    ]
    ignored = sum(item.status == "ignored" for item in items)
    return Message(calls=calls, ignored=ignored, refused=refused)


def _fields(err: ValidationError) -> str:
    """Each error by field, as the API names them: without the union's tag ("track.event" is
    the field "event")."""
    errors = []
    for error in err.errors(include_url=False):
        loc = error["loc"]
        if loc and loc[0] in ("track", "identify", "delete"):
            loc = loc[1:] or loc[:1]
        errors.append(f"{_path(loc) or 'call'}: {error['msg']}")
    return "; ".join(errors)


def _path(where: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in where)


class Pause:
    """While ingestion is unavailable, one message at a time probes it after a growing delay
    (`first` doubling to `longest` seconds); the others wait, unacknowledged, until a probe gets
    through. A flapping Temporal is not hammered by every message in flight at once."""

    def __init__(self, first: float = 0.5, longest: float = 30.0) -> None:
        self.first = first
        self.longest = longest
        self._delay = first
        self._clear = asyncio.Event()
        self._clear.set()
        self._probe = asyncio.Lock()

    @property
    def paused(self) -> bool:
        return not self._clear.is_set()

    async def run(
        self, attempt: Callable[[], Awaitable[T]], alive: Callable[[], bool] = lambda: True
    ) -> T:
        """`attempt()` until it does not raise Unavailable; Abandoned once `alive()` is false."""
        while True:
            if not alive():
                raise Abandoned()
            if self._clear.is_set():
                try:
                    return await attempt()
                except Unavailable as err:
                    self._trip(err)
                continue
            async with self._probe:
                if self._clear.is_set():  # another message's probe got through meanwhile
                    continue
                await asyncio.sleep(self._delay * random.uniform(0.8, 1.2))
                if not alive():
                    raise Abandoned()
                try:
                    result = await attempt()
                except Unavailable as err:
                    self._delay = min(self._delay * 2, self.longest)
                    log.warning("still unavailable (%s); next try in %.1f s", err, self._delay)
                    continue
                self._delay = self.first
                self._clear.set()
                log.warning("ingestion is back: consuming again")
                return result

    def _trip(self, err: Unavailable) -> None:
        if self._clear.is_set():
            self._clear.clear()
            log.warning(
                "pausing: %s unavailable; messages in flight stay unacknowledged, next try in "
                "%.1f s",
                err,
                self._delay,
            )


class Lanes:
    """One user's messages are taken one at a time, in the order they arrived (a purchase must
    not overtake the cart event before it); different users' side by side. asyncio's Lock wakes
    its waiters first come, first served, and a message takes its lane before any await."""

    def __init__(self) -> None:
        self._lanes: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, user: str | None) -> AsyncIterator[None]:
        if user is None:  # a batch of several users: ordered inside by Ingestor.many
            yield
            return
        lock, users = self._lanes.get(user, (asyncio.Lock(), 0))
        self._lanes[user] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._lanes[user]
            if users == 1:
                del self._lanes[user]
            else:
                self._lanes[user] = (lock, users - 1)


class StreamConsumer:
    """Takes a stream's messages through an `Ingestor` (the API's own, in `journeys dev`)."""

    def __init__(self, ingestor: Ingestor, pause: Pause | None = None) -> None:
        self.ingestor = ingestor
        self.pause = pause or Pause()
        self.lanes = Lanes()

    async def handle(self, body: bytes, alive: Callable[[], bool] = lambda: True) -> Decision:
        """The decision on one message, once it is known: returns only when it was taken or
        must be set aside; raises Abandoned if `alive()` turns false while it waits.

        Call it for a broker's messages in the order they are delivered, each in its own task:
        a message takes its user's lane before it first awaits."""
        try:
            message = read(body, message_key(body))
            if isinstance(message, DeadLetter):
                log.warning("dead letter: %s", message.reason[:MAX_REASON])
                return message
            async with self.lanes.hold(message.user):
                results = await self.pause.run(lambda: self._take(message.calls), alive)
        except Abandoned:
            raise
        except Exception as err:  # a bug, not an outage: set aside, not retried for ever
            log.exception("dead letter after an internal error")
            return DeadLetter(f"internal error: {type(err).__name__}: {err}")
        statuses = (*(r.status for r in results), *("ignored",) * message.ignored)
        if message.refused:
            taken = f"the {len(results)} others taken" if results else "none taken"
            reason = f"batch items refused ({taken}): " + " | ".join(message.refused)
            log.warning("dead letter: %s", reason[:MAX_REASON])
            return DeadLetter(reason)
        return Taken(statuses)

    async def _take(self, calls: list[AnyCall]) -> list[Accepted]:
        if not calls:
            return []
        if len(calls) == 1:
            return [await self.ingestor.take(calls[0])]
        results = await self.ingestor.many(calls)
        for result in results:  # the whole message again: items already taken are duplicates
            if isinstance(result, Exception):
                raise result
        return [r for r in results if isinstance(r, Accepted)]
