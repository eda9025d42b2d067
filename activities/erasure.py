"""Erasure's side effects, in the order the EraseUser workflow runs them (workflows/erasure.py).

Each activity is idempotent and reads the user ID from the `erasures` row, so none of it is in
the workflow's history. What happens to each table (docs/security.md, "Erasure"):

- `profiles`, `event_summaries`, `user_aliases`: the user's rows are deleted.
- `devices` (push tokens: each one reaches the person's phone) and `subscriptions` (their
  channel and topic choices): the user's rows are deleted.
- `journey_runs`, `journey_refusals`, `purchases`: kept, so the report and "N customers bought
  this" stay right, with the user ID replaced by the erasure's tombstone (`erased_<random>`,
  the same for all of one erasure's rows, so they still group as one user) and the workflow ID
  by `<journey>:<tombstone>`. A run still open (its journey was terminated) is closed
  "exited", reason "erased", as the `remove` signal would have recorded it.
- `journey_steps`: kept (they name no user); a detail quoting a personal value loses it.
- `outbox`: kept for the counts (journey, template, channel, status, times), with the
  address, subject, bodies, context, provider message ID and idempotency key (which holds the
  workflow ID) cleared or rewritten; an error quoting a personal value loses it.
- `event_receipts`: kept under the tombstone until the dedupe window prunes them (7 days), so
  a sender retrying an old call gets "duplicate" instead of bringing the person back; the
  workflow IDs of their answers are cleared.
- `email_suppressions`: a keyed hash of the address, only if the user had unsubscribed (or a
  provider refused the address), so an erased address that comes back is not mailed again.
- any other table with a `user_id` column (a run's experiment variant, or one added later):
  kept under the tombstone.

Temporal: the user's journeys are ended (the `remove` signal, then terminate after a bounded
wait) and every one of their histories is deleted, found by `JourneyUserId = '<user key>'`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import String, Table, cast, delete, func, literal, or_, select, update
from sqlalchemy.engine import Connection, CursorResult, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel
from sqlmodel import select as orm_select
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.entry import CONTACT_TRAITS
from activities.store import (
    ErasureRow,
    Store,
    utcnow,
)
from activities.suppression import opts_out
from workflows.erasure import (
    BEGIN,
    DELETE_HISTORIES,
    END_JOURNEYS,
    ERASE_RECORDS,
    FINISH,
    ErasureCounts,
    HistoriesDeleted,
    HistoriesToDelete,
    JourneysEnded,
)
from workflows.identity import user_key
from workflows.models import Removal

TOMBSTONE_PREFIX = "erased_"
ERASED_TEXT = "[erased]"
"""What a personal value quoted in a step's detail, a run's reason or a message's error becomes."""

REMOVE_WAIT = 10.0
"""Seconds a journey has to close after the `remove` signal before it is terminated."""

DELETE_WAIT = 120.0
"""Seconds to see Temporal's (asynchronous) deletions through before the attempt is retried."""

_POLL = 0.25


def new_erasure_id() -> str:
    return "er_" + secrets.token_hex(12)


def new_tombstone() -> str:
    """Random, not derived from the user ID: nothing can lead from the person to it."""
    return TOMBSTONE_PREFIX + secrets.token_hex(12)


def address_hash(secret: str, address: str) -> str:
    """The suppression list's key for an address: HMAC-SHA256 with JOURNEYS_SECRET_KEY of the
    trimmed, lower-cased address (a plain hash would let anyone with the table test guesses)."""
    normal = address.strip().lower().encode()
    return hmac.new(secret.encode(), b"suppression:" + normal, hashlib.sha256).hexdigest()


def address_suppressed(store: Store, secret: str, address: str) -> bool:
    """Whether an erased user who had unsubscribed used this address (the send activity asks
    before every marketing email)."""
    key = address_hash(secret, address)
    query = select(SUPPRESSIONS.c.address_hash).where(SUPPRESSIONS.c.address_hash == key)
    with store.engine.connect() as conn:
        return conn.execute(query).first() is not None


def open_erasure(store: Store, user_id: str, source: str) -> ErasureRow:
    """The user's erasure in progress, else a new one. Recorded before its workflow starts, so a
    request retried after Temporal failed finds it and starts it again (one per user at a time:
    a second request joins the first)."""
    for _ in range(3):
        with store.session() as session:
            query = orm_select(ErasureRow).where(ErasureRow.user_id == user_id)
            found = session.exec(query).first()
            if found is not None:
                return found
            row = ErasureRow(erasure_id=new_erasure_id(), user_id=user_id, source=source)
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # a concurrent request for the same user won: join it
                session.rollback()
                continue
            return row
    raise RuntimeError("could not record the erasure request")


def read_erasure(store: Store, erasure_id: str) -> ErasureRow | None:
    with store.session() as session:
        return session.get(ErasureRow, erasure_id)


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


PROFILES = _table("profiles")
SUMMARIES = _table("event_summaries")
ALIASES = _table("user_aliases")
RUNS = _table("journey_runs")
REFUSALS = _table("journey_refusals")
STEPS = _table("journey_steps")
OUTBOX = _table("outbox")
PURCHASES = _table("purchases")
RECEIPTS = _table("event_receipts")
SUPPRESSIONS = _table("email_suppressions")
DEVICES = _table("devices")
SUBSCRIPTIONS = _table("subscriptions")

HANDLED = frozenset(
    {"profiles", "event_summaries", "user_aliases", "journey_runs", "journey_refusals",
     "journey_steps", "outbox", "purchases", "event_receipts", "email_suppressions", "erasures",
     "devices", "subscriptions"}
)  # fmt: skip
"""Tables erased one by one below. In any other table, the rows of the user (a `user_id`
column) or of their runs (a `run_id` column) keep their place under the tombstone, with the
user ID and key in their text replaced by it and other personal values by ERASED_TEXT (a run's
experiment variant, a throttled send's idempotency key): a table added later is not missed."""


def _other_tables() -> list[Table]:
    return [
        table
        for name, table in sorted(SQLModel.metadata.tables.items())
        if name not in HANDLED and ("user_id" in table.c or "run_id" in table.c)
    ]


class ErasureActivities:
    """The erasure's activities, with what they need: the store, Temporal, and the secret key
    that keys the suppression list (the send activity checks it with the same key)."""

    def __init__(
        self,
        store: Store,
        client: Client,
        secret_key: str,
        *,
        remove_wait: float = REMOVE_WAIT,
        delete_wait: float = DELETE_WAIT,
    ) -> None:
        self.store = store
        self.client = client
        self.secret_key = secret_key
        self.remove_wait = remove_wait
        self.delete_wait = delete_wait

    # The request ------------------------------------------------------------------------------

    @activity.defn(name=BEGIN)
    def begin(self, erasure_id: str) -> bool:
        """Mark the erasure running and give it its tombstone (kept by a retry); False when
        there is nothing to do (done already, or no such request)."""
        with self.store.session() as session:
            row = session.get(ErasureRow, erasure_id)
            if row is None or row.user_id is None:
                return False
            row.tombstone = row.tombstone or new_tombstone()
            if row.status == "accepted":
                row.status, row.started_at = "running", utcnow()
            session.add(row)
            session.commit()
            return True

    @activity.defn(name=FINISH)
    def finish(self, counts: ErasureCounts) -> None:
        """Record the totals and forget whom they were about: the user ID and tombstone go."""
        with self.store.session() as session:
            row = session.get(ErasureRow, counts.erasure_id)
            if row is None:
                return
            row.status, row.finished_at = "done", row.finished_at or utcnow()
            row.user_id = row.tombstone = None
            row.passes = counts.passes
            row.journeys_ended = counts.journeys_ended
            row.records_erased = counts.records_erased
            row.histories_deleted = counts.histories_deleted
            session.add(row)
            session.commit()

    def _subject(self, erasure_id: str) -> tuple[str, str] | None:
        """(user ID, tombstone) of a running erasure, else None."""
        row = read_erasure(self.store, erasure_id)
        if row is None or row.user_id is None or row.tombstone is None:
            return None
        return row.user_id, row.tombstone

    # Temporal ---------------------------------------------------------------------------------

    @activity.defn(name=END_JOURNEYS)
    async def end_journeys(self, erasure_id: str) -> JourneysEnded:
        """Signal `remove` (reason "erased") to each of the user's running journeys, so each
        records its outcome and completes; terminate those still running after REMOVE_WAIT."""
        subject = await asyncio.to_thread(self._subject, erasure_id)
        if subject is None:
            return JourneysEnded()
        running = sorted({wid for wid, _, live in await self._executions(subject[0]) if live})
        for wid in running:
            await self._quietly(self.client.get_workflow_handle(wid).signal, "remove",
                                Removal(reason="erased"))  # fmt: skip
        left = await self._still_running(running, self.remove_wait)
        for wid in left:
            await self._quietly(self.client.get_workflow_handle(wid).terminate, reason="erased")
        return JourneysEnded(
            found=len(running), removed=len(running) - len(left), terminated=len(left)
        )

    @activity.defn(name=DELETE_HISTORIES)
    async def delete_histories(self, request: HistoriesToDelete) -> HistoriesDeleted:
        """Delete every workflow history of the user (terminating any run still open). With
        `confirm`, see the deletions through: Temporal carries them out asynchronously (once
        the close of each is acknowledged, about 30 s on the dev server), and an attempt that
        still sees one after DELETE_WAIT fails, to be retried."""
        subject = await asyncio.to_thread(self._subject, request.erasure_id)
        if subject is None:
            return HistoriesDeleted()
        deleted: set[tuple[str, str]] = set()
        terminated: set[str] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delete_wait
        while True:
            listed = await self._executions(subject[0])
            visible = {(wid, run) for wid, run, _ in listed}
            visible |= {e for e in deleted if await self._exists(*e)}
            if not visible:
                break
            for wid, run, live in listed:
                if live and run not in terminated:
                    handle = self.client.get_workflow_handle(wid, run_id=run)
                    await self._quietly(handle.terminate, reason="erased")
                    terminated.add(run)
            for wid, run in visible - deleted:
                await self._delete(wid, run)
                deleted.add((wid, run))
            if not request.confirm:
                break
            if loop.time() > deadline:
                raise ApplicationError(f"{len(visible)} histories still there after deletion")
            await asyncio.sleep(_POLL)
        return HistoriesDeleted(
            run_ids=sorted(run for _, run in deleted), terminated=len(terminated)
        )

    async def _executions(self, user_id: str) -> list[tuple[str, str, bool]]:
        """(workflow ID, run ID, running) of every journey run of the user, from visibility."""
        key = user_key(user_id)
        assert "'" not in key  # a plain identifier or h_<hex>: nothing to escape
        return [
            (e.id, e.run_id, e.status == WorkflowExecutionStatus.RUNNING)
            async for e in self.client.list_workflows(f"JourneyUserId = '{key}'")
        ]

    async def _still_running(self, workflow_ids: Iterable[str], seconds: float) -> list[str]:
        """The workflows (latest runs) still running after up to `seconds`."""
        left = list(workflow_ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while left:
            left = [wid for wid in left if await self._running(wid)]
            if not left or loop.time() > deadline:
                break
            await asyncio.sleep(_POLL)
        return left

    async def _running(self, workflow_id: str) -> bool:
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return description.status == WorkflowExecutionStatus.RUNNING

    async def _exists(self, workflow_id: str, run_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id, run_id=run_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def _delete(self, workflow_id: str, run_id: str) -> None:
        request = DeleteWorkflowExecutionRequest(
            namespace=self.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
        await self._quietly(self.client.workflow_service.delete_workflow_execution, request)

    @staticmethod
    async def _quietly(call: Any, *args: Any, **kwargs: Any) -> None:
        """`call`, where "not found" (closed or deleted meanwhile) is as good as done."""
        try:
            await call(*args, **kwargs)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    # The database -----------------------------------------------------------------------------

    @activity.defn(name=ERASE_RECORDS)
    def erase_records(self, erasure_id: str) -> int:
        """Erase the user's rows, and the tombstoned rows' personal content, in one transaction
        (see the module docstring); returns the rows it changed or deleted. A later pass finds
        what calls in flight wrote since, under the user ID or the tombstone."""
        subject = self._subject(erasure_id)
        if subject is None:
            return 0
        user_id, tombstone = subject
        with self.store.engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # the write lock before the first read
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            return self._erase(conn, user_id, tombstone)

    def _erase(self, conn: Connection, user_id: str, tombstone: str) -> int:
        ids = (user_id, tombstone)
        now = utcnow()
        profile = conn.execute(select(PROFILES).where(PROFILES.c.user_id == user_id)).first()
        recipients = (
            conn.execute(select(OUTBOX.c.recipient).where(OUTBOX.c.user_id.in_(ids)).distinct())
            .scalars()
            .all()
        )
        journeys = (
            conn.execute(select(RUNS.c.journey).where(RUNS.c.user_id.in_(ids)).distinct())
            .scalars()
            .all()
        )
        scrub = _scrubber(
            _renamed(user_id, tombstone, journeys), _personal_values(user_id, profile, recipients)
        )
        if profile is not None:
            self._keep_suppression(conn, profile._mapping)
        changed = 0
        for table in (PROFILES, SUMMARIES, ALIASES, DEVICES, SUBSCRIPTIONS):
            changed += _count(conn.execute(delete(table).where(table.c.user_id == user_id)))

        run_ids: list[str] = []
        for run_id, journey, outcome, reason in conn.execute(
            select(RUNS.c.run_id, RUNS.c.journey, RUNS.c.outcome, RUNS.c.outcome_reason).where(
                RUNS.c.user_id.in_(ids)
            )
        ).all():
            run_ids.append(run_id)
            values: dict[str, Any] = {"user_id": tombstone, "workflow_id": f"{journey}:{tombstone}"}
            if outcome is None:  # terminated mid-journey: closed as the signal would have
                values |= {"outcome": "exited", "outcome_reason": "erased", "outcome_at": now}
            elif reason is not None:
                values["outcome_reason"] = scrub(reason)
            changed += _count(
                conn.execute(update(RUNS).where(RUNS.c.run_id == run_id).values(values))
            )
        changed += _count(
            conn.execute(
                update(REFUSALS)
                .where(REFUSALS.c.user_id.in_(ids))
                .values(
                    user_id=tombstone,
                    workflow_id=REFUSALS.c.journey + literal(f":{tombstone}", String),
                )
            )
        )
        if run_ids:
            for step_id, detail in conn.execute(
                select(STEPS.c.id, STEPS.c.detail).where(
                    STEPS.c.run_id.in_(run_ids), STEPS.c.detail.is_not(None)
                )
            ).all():
                if scrub(detail) != detail:
                    conn.execute(
                        update(STEPS).where(STEPS.c.id == step_id).values(detail=scrub(detail))
                    )
                    changed += 1

        for message_id, error in conn.execute(
            select(OUTBOX.c.id, OUTBOX.c.error).where(
                OUTBOX.c.user_id.in_(ids), OUTBOX.c.error.is_not(None)
            )
        ).all():
            conn.execute(update(OUTBOX).where(OUTBOX.c.id == message_id).values(error=scrub(error)))
        changed += _count(
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.user_id.in_(ids))
                .values(
                    user_id=tombstone,
                    recipient="",
                    subject=None,
                    body_html=None,
                    body_text=None,
                    context={},
                    provider_message_id=None,
                    idempotency_key=literal(f"{tombstone}/", String) + cast(OUTBOX.c.id, String),
                )
            )
        )
        changed += _count(
            conn.execute(
                update(PURCHASES).where(PURCHASES.c.user_id.in_(ids)).values(user_id=tombstone)
            )
        )
        for table in _other_tables():
            changed += _rewrite_rows(conn, table, ids, run_ids, scrub)
        changed += _count(
            conn.execute(
                update(RECEIPTS)
                .where(RECEIPTS.c.user_id.in_(ids))
                .values(
                    user_id=tombstone,
                    result=[],
                    routed_at=func.coalesce(RECEIPTS.c.routed_at, now),
                )
            )
        )
        return changed

    def _keep_suppression(self, conn: Connection, profile: RowMapping) -> None:
        """A keyed hash of the address, if the user had unsubscribed or a provider refused it."""
        email, traits = profile["email"], profile["traits"] or {}
        if not email:
            return
        if profile["email_unsubscribed_at"] is not None or opts_out(traits):
            reason = "unsubscribed"
        elif traits.get("email_suppressed") is True:
            reason = "address_suppressed"
        else:
            return
        key = address_hash(self.secret_key, email)
        exists = conn.execute(
            select(SUPPRESSIONS.c.address_hash).where(SUPPRESSIONS.c.address_hash == key)
        )
        if exists.first() is None:
            conn.execute(
                SUPPRESSIONS.insert().values(address_hash=key, reason=reason, since=utcnow())
            )


def _count(result: CursorResult[Any]) -> int:
    return int(result.rowcount or 0)


def _personal_values(user_id: str, profile: Any, recipients: Iterable[str]) -> list[str]:
    """The strings that identify the person: user ID and key, addresses, contact traits."""
    values = {user_id, user_key(user_id), *recipients}
    if profile is not None:
        values.add(profile.email or "")
        traits = profile.traits or {}
        values.update(_strings([traits.get(name) for name in CONTACT_TRAITS]))
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for inner in value.values() for s in _strings(inner)]
    if isinstance(value, list):
        return [s for inner in value for s in _strings(inner)]
    return []


def _renamed(user_id: str, tombstone: str, journeys: Iterable[str]) -> dict[str, str]:
    """What becomes the tombstone in a text: the user's workflow IDs (`<journey>:<user key>`,
    in idempotency keys) whatever the ID's length, and the ID and key themselves when they are
    long enough not to be part of any other word."""
    key = user_key(user_id)
    renamed = {f"{journey}:{key}": f"{journey}:{tombstone}" for journey in journeys}
    renamed |= {v: tombstone for v in (user_id, key) if len(v) >= 4}
    return renamed


def _scrubber(renamed: dict[str, str], personal: list[str]) -> Callable[[str], str]:
    """A function rewriting a text: each key of `renamed` becomes its value, each of `personal`
    (at least 4 characters) ERASED_TEXT; longest first, ignoring case."""
    to = {v.lower(): ERASED_TEXT for v in personal if len(v) >= 4}
    to |= {k.lower(): v for k, v in renamed.items()}
    if not to:
        return lambda text: text
    pattern = re.compile(
        "|".join(re.escape(v) for v in sorted(to, key=len, reverse=True)), re.IGNORECASE
    )

    def scrub(text: str) -> str:
        return pattern.sub(lambda found: to[found.group(0).lower()], text)

    return scrub


def _rewrite_rows(
    conn: Connection,
    table: Table,
    ids: tuple[str, str],
    run_ids: list[str],
    scrub: Callable[[str], str],
) -> int:
    """The user's rows of a table erase() has no rule for: `user_id` set to the tombstone (the
    second of `ids`), their other text columns scrubbed."""
    linked = []
    if "user_id" in table.c:
        linked.append(table.c.user_id.in_(ids))
    if "run_id" in table.c and run_ids:
        linked.append(table.c.run_id.in_(run_ids))
    if not linked:
        return 0
    keys = list(table.primary_key.columns)
    texts = [c for c in table.c if isinstance(c.type, String)]
    changed = 0
    for row in conn.execute(select(table).where(or_(*linked))).mappings().all():
        values = {
            c.name: scrub(row[c.name])
            for c in texts
            if isinstance(row[c.name], str) and scrub(row[c.name]) != row[c.name]
        }
        if "user_id" in table.c and row["user_id"] == ids[0]:
            values["user_id"] = ids[1]
        if values:
            where = [key == row[key.name] for key in keys]
            conn.execute(update(table).where(*where).values(values))
            changed += 1
    return changed
