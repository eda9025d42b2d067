"""Ingestion: a call is recorded once, then delivered to every journey it concerns.

The order is what makes an acknowledgement mean something:
1. the receipt, profile traits and event summary are written in one transaction, keyed by
   messageId (so a retried or replayed call, on any API replica, has one effect); on SQLite
   concurrent calls share that transaction (starter/group_commit);
2. the event is routed: Temporal accepts every start and signal, or the call fails;
3. the receipt is marked routed (concurrent calls share that transaction: starter/group_commit),
   and only then does the sender get a 2xx.
A call with nothing to route (an identify, an event no journey wants) is done at 1.
A failure at 2 leaves the receipt unrouted; the sender's retry routes it again, and journeys
drop a message ID they have already taken, so nothing is lost and nothing happens twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError

from activities.devices import device_from_call
from activities.store import Incoming, Receipt, Store, WouldWait
from starter.backpressure import Admission
from starter.calls import AnyCall, DeleteCall, IdentifyCall, TrackCall
from starter.erasure import ErasureUnavailable, request_erasure
from starter.group_commit import GroupCommit
from starter.routing import Router, TemporalUnavailable

log = logging.getLogger("journeys.ingest")

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

DEDUPE_WINDOW = timedelta(days=7)
"""How long a messageId is remembered (Segment dedupes over about 24 hours)."""


class Unavailable(Exception):
    """Temporal or the database could not be reached; nothing of this call is reported done."""


class Delivered(BaseModel):
    """One journey this call started or reached."""

    journey: str
    workflowId: str
    action: str


class Accepted(BaseModel):
    """A call taken for good: durably recorded and accepted by Temporal."""

    messageId: str
    status: Literal["accepted", "duplicate"] = "accepted"
    journeys: list[Delivered] = []


class Ingestor:
    """Records calls and routes their events; shared by the API's endpoints and sources."""

    def __init__(
        self,
        store: Store,
        router: Router,
        *,
        admission: Admission | None = None,
        on_taken: Callable[[str, str], None] | None = None,
    ) -> None:
        """`admission` bounds the parallel items of `many`; `on_taken(kind, status)` is told of
        every call taken ("accepted" or "duplicate"), for the metrics."""
        self.store = store
        self.router = router
        self.admission = admission
        self.on_taken = on_taken
        self._pruned_at: datetime | None = None
        # Every call writes. On SQLite a write is done on the event loop when the write lock is
        # free at once (a thread hand-off costs more than the write), else on one writer thread
        # that waits for the lock, so writes still take turns and the loop never waits.
        self._writer = (
            ThreadPoolExecutor(1, thread_name_prefix="journeys-db-writer")
            if store.one_writer
            else None
        )
        self._received = (
            GroupCommit(
                store.receive_many,
                executor=self._writer,
                at_once=_unless_waiting(functools.partial(store.receive_many, wait=False)),
            )
            if store.one_writer
            else None
        )
        self._routed = GroupCommit(
            self._mark_routed,
            executor=self._writer,
            at_once=_unless_waiting(functools.partial(self._mark_routed, wait=False))
            if store.one_writer
            else None,
        )

    async def track(self, call: TrackCall) -> Accepted:
        """Record a track call (and its context traits) and route its event."""
        event = call.to_event()
        wanted = self.router.concerns(event.name)
        receipt = await self._receive(
            message_id=event.message_id,
            user_id=event.user_id,
            kind="track",
            at=event.timestamp,
            event=event.name,
            properties=event.properties,
            traits=call.context_traits(),
            routed=not wanted,
            open_runs_of=self.router.any_event_journeys,
        )
        await self._register_device(call)
        if not receipt.new and receipt.routed:
            return self._taken("track", _duplicate(event.message_id, receipt))
        if receipt.routed:  # no journey wants this event: recorded, and that is all
            return self._taken("track", Accepted(messageId=event.message_id))
        try:
            deliveries = await self.router.route(
                event, receipt.profile, receipt.count, receipt.open_runs
            )
        except TemporalUnavailable as err:
            log.warning("message %s not routed: %s", event.message_id, err)
            raise Unavailable("Temporal") from err
        except (OperationalError, DBAPIError) as err:  # the router's profile or count lookup
            log.warning("message %s not routed: database %s", event.message_id, type(err).__name__)
            raise Unavailable("database") from err
        delivered = [
            Delivered(journey=d.journey, workflowId=d.workflow_id, action=d.action)
            for d in deliveries
        ]
        with _database_unavailable():
            await self._routed.submit((event.message_id, [d.model_dump() for d in delivered]))
        # Routed now, so accepted now (an earlier attempt that failed was never acknowledged).
        return self._taken("track", Accepted(messageId=event.message_id, journeys=delivered))

    async def identify(self, call: IdentifyCall) -> Accepted:
        """Merge traits into the user's profile (email, name, timezone, consent, anything)."""
        message_id = call.message_id
        receipt = await self._receive(
            message_id=message_id,
            user_id=call.user_id,
            kind="identify",
            at=call.when,
            traits=call.all_traits(),
            routed=True,
        )
        await self._register_device(call)
        if not receipt.new:
            return self._taken("identify", _duplicate(message_id, receipt))
        return self._taken("identify", Accepted(messageId=message_id))

    async def many(self, calls: list[AnyCall]) -> list[Accepted | Exception]:
        """Take several calls: one user's in timestamp order, different users concurrently."""
        by_user: dict[str, list[int]] = defaultdict(list)
        for index in sorted(range(len(calls)), key=lambda i: calls[i].when):
            by_user[calls[index].user_id].append(index)
        results: list[Accepted | Exception] = [Unavailable("not attempted")] * len(calls)

        # Users in parallel only as far as free admission slots allow (this request holds one).
        wanted = max(0, len(by_user) - 1)
        extra = self.admission.borrow(wanted) if self.admission else wanted
        lanes = asyncio.Semaphore(1 + extra)

        async def one_user(indexes: list[int]) -> None:
            async with lanes:
                for index in indexes:
                    try:
                        results[index] = await self.take(calls[index])
                    except Unavailable as err:
                        results[index] = err

        try:
            await asyncio.gather(*(one_user(indexes) for indexes in by_user.values()))
        finally:
            if self.admission:
                self.admission.leave(extra)
        return results

    async def delete(self, call: DeleteCall) -> Accepted:
        """Erase the user (a Segment delete call), as DELETE /v1/users/{id} does: recorded once
        by messageId, done once the erasure is recorded and its workflow started. The erasure
        tombstones this receipt with the user's others; a retry finds it and is a duplicate."""
        message_id = call.message_id
        receipt = await self._receive(
            message_id=message_id, user_id=call.user_id, kind="delete", at=call.when
        )
        if not receipt.new and receipt.routed:
            return self._taken("delete", _duplicate(message_id, receipt))
        router = self.router
        try:
            await request_erasure(
                self.store, router.client, router.task_queue, call.user_id, "segment"
            )
        except ErasureUnavailable as err:
            log.warning("message %s: erasure not started: %s", message_id, err)
            raise Unavailable(str(err)) from err
        with _database_unavailable():
            await self._routed.submit((message_id, []))
        return self._taken("delete", Accepted(messageId=message_id))

    async def take(self, call: AnyCall) -> Accepted:
        """One call of any kind."""
        if isinstance(call, TrackCall):
            return await self.track(call)
        if isinstance(call, DeleteCall):
            return await self.delete(call)
        return await self.identify(call)

    async def _register_device(self, call: TrackCall | IdentifyCall) -> None:
        """The push token a call carries (context.device.token, a push_token trait) becomes
        one of the user's devices (activities/devices.py). After the receipt, before the
        answer: a failure here is the call's 503, and the sender's retry registers it again,
        harmlessly (add_device is idempotent). A call without a token costs two lookups."""
        traits = call.all_traits() if isinstance(call, IdentifyCall) else call.context_traits()
        device = device_from_call(traits, call.context)
        if device is not None:
            await self._db(self.store.add_device, call.user_id, *device)

    def _taken(self, kind: str, accepted: Accepted) -> Accepted:
        if self.on_taken is not None:
            self.on_taken(kind, accepted.status)
        return accepted

    async def _receive(self, **fields: Any) -> Receipt:
        if self._received is None:  # PostgreSQL: calls write side by side, each on its own
            receipt = await self._db(self.store.receive, **fields)
        else:  # SQLite: one writer, so concurrent calls share its transaction
            with _database_unavailable():
                receipt = await self._received.submit(Incoming(**fields))
        await self._maybe_prune()
        return receipt

    def _mark_routed(
        self, marks: list[tuple[str, list[dict[str, Any]]]], *, wait: bool = True
    ) -> list[None]:
        self.store.mark_routed_many(marks, wait=wait)
        return [None] * len(marks)

    async def _maybe_prune(self) -> None:
        """Forget old receipts now and then (hourly per replica) so the table stays small."""
        now = datetime.now(UTC)
        if self._pruned_at is not None and now - self._pruned_at < timedelta(hours=1):
            return
        self._pruned_at = now
        try:
            await asyncio.to_thread(self.store.prune_receipts, now - DEDUPE_WINDOW)
        except (OperationalError, DBAPIError) as err:  # pruning can wait for the next hour
            log.warning("could not prune event receipts: %s", type(err).__name__)

    def close(self) -> None:
        """Let the writer thread go once the server has finished its requests."""
        if self._writer is not None:
            self._writer.shutdown()

    async def _db(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        call = functools.partial(function, *args, **kwargs)
        with _database_unavailable():
            return await asyncio.get_running_loop().run_in_executor(self._writer, call)


def _unless_waiting(
    write: Callable[[list[T]], Sequence[R]],
) -> Callable[[list[T]], Sequence[R] | None]:
    """`write` for GroupCommit's `at_once`: None where the store would have had to wait."""

    def at_once(items: list[T]) -> Sequence[R] | None:
        try:
            return write(items)
        except WouldWait:
            return None

    return at_once


@contextmanager
def _database_unavailable() -> Iterator[None]:
    """A database error inside is this call's 503: nothing of it is reported done."""
    try:
        yield
    except (OperationalError, DBAPIError) as err:
        log.warning("database unavailable: %s", type(err).__name__)
        raise Unavailable("database") from err


def _duplicate(message_id: str, receipt: Receipt) -> Accepted:
    journeys = [Delivered.model_validate(d) for d in receipt.result or []]
    return Accepted(messageId=message_id, status="duplicate", journeys=journeys)
