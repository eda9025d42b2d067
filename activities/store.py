"""Data at rest: profiles, journey runs and their steps, and the outbox, through SQLModel.

SQLite by default (WAL, so the API and the worker's threads can share it), PostgreSQL in
production: the same tables and queries on both. Every write that an activity makes is
idempotent, so Temporal's retries never record anything twice.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Column,
    Index,
    UniqueConstraint,
    bindparam,
    case,
    delete,
    event,
    func,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import SingletonThreadPool
from sqlmodel import Field, Session, SQLModel, create_engine, select

from activities.suppression import opts_out


def utcnow() -> datetime:
    return datetime.now(UTC)


class ProfileRow(SQLModel, table=True):
    """A user as we know them: contact details and traits from identify and track context."""

    __tablename__ = "profiles"

    user_id: str = Field(primary_key=True, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    email_unsubscribed_at: datetime | None = None
    """Set by the unsubscribe link (or an opt-out trait, or the subscription API): apart from
    traits, so no identify can clear it; only PUT /v1/users/{id}/subscription does."""
    email_unsubscribed_from: str | None = Field(default=None, max_length=255)
    """The journey whose link was used, or "identify", "api"."""


class JourneyRun(SQLModel, table=True):
    """One journey entry (treatment or holdout) and where it got to."""

    __tablename__ = "journey_runs"
    __table_args__ = (
        Index("ix_journey_runs_journey_user_entered", "journey", "user_id", "entered_at"),
    )

    run_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=255)
    journey: str = Field(index=True, max_length=64)
    user_id: str = Field(index=True, max_length=255)
    group: str = Field(max_length=16)
    entered_at: datetime = Field(index=True)
    entry_event: str | None = Field(default=None, max_length=255)
    step: str = Field(default="entered", max_length=255)
    messages_sent: int = 0
    outcome: str | None = Field(default=None, max_length=16)
    outcome_reason: str | None = Field(default=None, max_length=255)
    outcome_at: datetime | None = None
    goal_at: datetime | None = None
    revenue: float | None = None
    holdout_reason: str | None = Field(default=None, max_length=16)
    """Why a held-out run is held out: "journey" (the journey's own share) or "global" (the
    programme's global holdout, JOURNEYS_GLOBAL_HOLDOUT); None for treatment and older rows."""


class JourneyRefusal(SQLModel, table=True):
    """A trigger that would have entered the user but came inside the journey's re-entry window.

    No run, no group: the user is in neither arm. Kept so the report can count refusals and a
    user's history can say why a trigger started nothing. One row per refused workflow run."""

    __tablename__ = "journey_refusals"

    run_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=255)
    journey: str = Field(index=True, max_length=64)
    user_id: str = Field(index=True, max_length=255)
    at: datetime = Field(index=True)
    reason: str = Field(max_length=255)
    entry_event: str | None = Field(default=None, max_length=255)
    last_entered_at: datetime | None = None
    """The entry whose re-entry window refused this one."""


class JourneyStepRow(SQLModel, table=True):
    """One step a journey run reached: waits, sends (sent, held out, skipped)."""

    __tablename__ = "journey_steps"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_journey_steps_run_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, max_length=64)
    seq: int
    kind: str = Field(max_length=32)
    name: str = Field(max_length=255)
    status: str = Field(max_length=32)
    at: datetime
    until: datetime | None = None
    detail: str | None = None


class OutboxMessage(SQLModel, table=True):
    """The message log: one row per (journey run, step), never two, whatever the provider.

    `status` is "sending" while a provider call is in flight, then "sent", "failed" or
    "unknown" (a worker died mid-call to a provider with no idempotency key: never resent).
    With the local outbox provider and the in-app channel this row *is* the delivery.
    """

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=255)
    run_id: str = Field(index=True, max_length=64)
    journey: str = Field(index=True, max_length=64)
    user_id: str = Field(index=True, max_length=255)
    template: str = Field(max_length=255)
    channel: str = Field(default="email", max_length=16)
    marketing: bool = True
    recipient: str = Field(max_length=320)
    subject: str | None = None
    body_html: str | None = None
    body_text: str | None = None
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="sent", max_length=16)
    provider: str = Field(default="outbox", max_length=32)
    provider_message_id: str | None = Field(default=None, max_length=255)
    error: str | None = None
    variant: str | None = Field(default=None, max_length=64)
    """The A/B/n variant the message belongs to (workflows/experiments.py), if any."""
    send_hour: int | None = None
    """With send-time optimisation: the user's local hour it was timed for."""
    timing: str | None = Field(default=None, max_length=16)
    """"learned" (from the user's own event hours) or "default" (the journey's hour)."""
    passed_over: str | None = Field(default=None, max_length=255)
    """With channel choice, the channels tried before this one and why each was passed over:
    "push: no_device; sms: no_consent"."""
    journey_time: datetime = Field(index=True)
    """When the journey sent it, on the journey's clock (virtual under time skipping)."""
    created_at: datetime = Field(default_factory=utcnow)
    read_at: datetime | None = None


class JourneyControl(SQLModel, table=True):
    """The kill switch: a paused journey sends nothing; its running journeys keep their place."""

    __tablename__ = "journey_controls"

    journey: str = Field(primary_key=True, max_length=64)
    paused: bool = False
    changed_at: datetime = Field(default_factory=utcnow)
    reason: str | None = Field(default=None, max_length=255)


class JourneyControlLog(SQLModel, table=True):
    """Every pause and resume, kept: who stopped sends, when, and why."""

    __tablename__ = "journey_control_log"

    id: int | None = Field(default=None, primary_key=True)
    journey: str = Field(index=True, max_length=64)
    action: str = Field(max_length=16)
    at: datetime = Field(default_factory=utcnow)
    reason: str | None = Field(default=None, max_length=255)


class EventReceipt(SQLModel, table=True):
    """One accepted call, by messageId: the same message twice has one effect, on every replica.

    `routed_at` is set only once Temporal has accepted every start and signal the call caused;
    a retry of a call whose routing failed finds the receipt unrouted and routes it again (the
    journeys themselves drop a message ID they have already seen).
    """

    __tablename__ = "event_receipts"

    message_id: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(max_length=255)
    kind: str = Field(max_length=16)
    event: str | None = Field(default=None, max_length=200)
    received_at: datetime = Field(default_factory=utcnow, index=True)
    routed_at: datetime | None = None
    result: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


class EventSummary(SQLModel, table=True):
    """Per user and event name: how often, first and last seen, and the last properties.

    What segment entry ("never did X", "inactive for 60 days") and personalisation read;
    indexed on (event, last_seen) for those selections.
    """

    __tablename__ = "event_summaries"
    __table_args__ = (Index("ix_event_summaries_event_last_seen", "event", "last_seen"),)

    user_id: str = Field(primary_key=True, max_length=255)
    event: str = Field(primary_key=True, max_length=200)
    count: int = 0
    first_seen: datetime
    last_seen: datetime
    last_properties: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    daily: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Counts per UTC day ("2026-12-01": 3) over the latest DAILY_DAYS days, for counts over a
    window in templates (activities/analytics.py); None on rows from before it was kept."""
    hours: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Counts per UTC hour of day ("9": 14), by each event's own time: when the user is active,
    for send-time optimisation (activities/send_time.py)."""


class UserAlias(SQLModel, table=True):
    """Another system's ID for one of our users (a Stripe customer, a Shopify customer)."""

    __tablename__ = "user_aliases"

    kind: str = Field(primary_key=True, max_length=64)
    value: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(max_length=255)


ALIAS_TRAITS = ("stripe_customer_id", "shopify_customer_id")
"""Traits that, set by identify, let a source's webhook find the user by that system's ID."""


class CatalogProduct(SQLModel, table=True):
    """A product as the shop describes it (PUT /v1/catalog/products, Shopify products/update):
    what a cart email can say beyond what the cart event carried."""

    __tablename__ = "catalog_products"

    product_id: str = Field(primary_key=True, max_length=255)
    name: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2000)
    image_url: str | None = Field(default=None, max_length=2000)
    price: float | None = None
    currency: str | None = Field(default=None, max_length=8)
    rating: float | None = None
    review_count: int | None = None
    reviews: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    updated_at: datetime = Field(default_factory=utcnow)


class Purchase(SQLModel, table=True):
    """One product in one Order Completed: who bought what when, for "N customers bought this
    recently". Keyed by the order's message ID, so a replayed order counts once."""

    __tablename__ = "purchases"
    __table_args__ = (Index("ix_purchases_product_at", "product_id", "at"),)

    message_id: str = Field(primary_key=True, max_length=255)
    product_id: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(max_length=255)
    at: datetime


PURCHASE_EVENT = "Order Completed"
"""The event whose `products[]` are recorded as purchases (Segment's e-commerce spec)."""


class WouldWait(Exception):
    """A write asked not to wait (`wait=False`) would have had to: nothing of it was done.

    The API tries its SQLite writes on the event loop's own thread, where waiting would stall
    every request, and hands them to its writer thread only when this is raised."""


@dataclass(frozen=True)
class Incoming:
    """One call to record: `Store.receive`'s arguments, for `Store.receive_many`."""

    message_id: str
    user_id: str
    kind: str
    at: datetime
    event: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    routed: bool = False
    open_runs_of: frozenset[str] = frozenset()
    """Journeys whose open runs this event may reach whatever its name (an `ANY_EVENT` goal):
    the receipt says which of them the user has open, and is left unrouted if any."""


@dataclass(frozen=True)
class ProfileView:
    """A profile's contact details and traits as a write left them: what routing reads, as a
    plain value (building a ProfileRow, an ORM object, cost ingestion more than the write)."""

    user_id: str
    email: str | None
    traits: dict[str, Any]


@dataclass(frozen=True)
class Receipt:
    """What the store knew of a call when it arrived: new, or seen (and maybe routed) before."""

    new: bool
    routed: bool
    result: list[dict[str, Any]] | None = None
    profile: ProfileView | None = None
    """The user's profile as this call left it (so routing need not read it again)."""
    count: int | None = None
    """How many events of this name the user has sent, this one included (for `nth`)."""
    open_runs: tuple[tuple[str, str | None], ...] = ()
    """(journey, entry event) of the user's open runs among `Incoming.open_runs_of`."""


@dataclass
class Entered:
    """A journey run's entry as recorded, and what the journey starts from."""

    new: bool
    """False when an earlier attempt recorded it (a retried activity)."""
    group: str | None
    traits: dict[str, Any]
    last_message_at: datetime | None
    refused: JourneyRefusal | None = None
    """Set when the entry came inside the re-entry window of the user's last entry: no run."""


class Store:
    """The database: an engine, sessions, and the few queries everyone needs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)

    def migrate(self) -> None:
        """Upgrade the schema to this code's newest migration (a no-op when it is current).

        Safe when several processes start at once: they take turns, and the later ones find
        nothing to do. A database made by the old `create_all` is adopted, not recreated.
        """
        from activities import migrations

        migrations.upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @property
    def one_writer(self) -> bool:
        """SQLite: one write transaction at a time, so more writing threads only queue on its
        lock (and each connection re-reads the pages the others wrote)."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def _writing(self, *, wait: bool = True) -> Iterator[Connection]:
        """A transaction for ingestion's writes; on SQLite it holds the write lock from its
        start (so no other writer can race it), taken as soon as it is free, or (`wait=False`)
        only if it is free now, else WouldWait."""
        with (self.engine if wait else self._prompt_engine).begin() as conn:
            if self.one_writer:
                _take_write_lock(conn, wait=wait)
            yield conn

    def ping(self) -> None:
        """Raise if the database cannot answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if "_prompt_engine" in self.__dict__:
            self._prompt_engine.dispose()

    @functools.cached_property
    def _prompt_engine(self) -> Engine:
        """A connection of its own (one per thread) for writes that must not wait: a checkout
        from the shared pool, while other threads hold all its connections, would wait."""
        return _engine(self.url, poolclass=SingletonThreadPool)

    # Profiles -------------------------------------------------------------------------------

    def get_profile(self, user_id: str) -> ProfileRow | None:
        with self.engine.connect() as conn:
            found = _first(_run(conn, _hot(conn.dialect.name).profile_read, {"b_user_id": user_id}))
        return ProfileRow(**found._asdict()) if found is not None else None

    def set_subscription(self, user_id: str, subscribed: bool, source: str) -> None:
        """Unsubscribe the user from marketing email (`source`: the journey whose link was
        used, or "api"), or subscribe them again: the one way back, an explicit call."""
        now = utcnow()
        values = {
            "email_unsubscribed_at": None if subscribed else now,
            "email_unsubscribed_from": None if subscribed else source[:255],
        }
        profiles = ProfileRow.__table__  # type: ignore[attr-defined]
        for _ in range(2):  # a concurrent first insert loses the race once, then updates
            try:
                with self.engine.begin() as conn:
                    found = conn.execute(
                        update(profiles)
                        .where(profiles.c.user_id == user_id)
                        .values(**values, updated_at=now)
                    )
                    if not found.rowcount:
                        conn.execute(
                            profiles.insert().values(
                                user_id=user_id, traits={}, updated_at=now, **values
                            )
                        )
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not set the subscription of {user_id!r}")

    # Channels: subscriptions per channel and topic, push devices, SMS STOPs ----------------

    def set_channel_subscription(
        self, user_id: str, channel: str, topic: str, subscribed: bool, source: str
    ) -> None:
        """Record the user's choice for one channel and topic (ALL_TOPICS: all of them)."""
        table = SubscriptionRow.__table__  # type: ignore[attr-defined]
        key = (table.c.user_id == user_id) & (table.c.channel == channel) & (table.c.topic == topic)
        values = {"subscribed": subscribed, "source": source[:255], "updated_at": utcnow()}
        for _ in range(2):  # a concurrent first insert loses the race once, then updates
            try:
                with self.engine.begin() as conn:
                    if not conn.execute(update(table).where(key).values(**values)).rowcount:
                        conn.execute(
                            table.insert().values(
                                user_id=user_id, channel=channel, topic=topic, **values
                            )
                        )
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not set the {channel} subscription of {user_id!r}")

    def channel_subscriptions(self, user_id: str) -> dict[tuple[str, str], bool]:
        """The user's recorded choices: {(channel, topic): subscribed}."""
        table = SubscriptionRow.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.channel, table.c.topic, table.c.subscribed).where(
                    table.c.user_id == user_id
                )
            ).all()
        return {(channel, topic): bool(subscribed) for channel, topic, subscribed in rows}

    def add_device(self, user_id: str, token: str, platform: str | None = None) -> bool:
        """Register a push token for the user; a token another user held moves to this one
        (a shared device, a new login). True if the token was not theirs before."""
        table = DeviceRow.__table__  # type: ignore[attr-defined]
        now = utcnow()
        for _ in range(2):
            try:
                with self.engine.begin() as conn:
                    found = conn.execute(
                        select(table.c.user_id).where(table.c.token == token)
                    ).first()
                    if found is None:
                        conn.execute(
                            table.insert().values(
                                token=token,
                                user_id=user_id,
                                platform=platform,
                                created_at=now,
                                updated_at=now,
                            )
                        )
                        return True
                    values: dict[str, Any] = {"user_id": user_id, "updated_at": now}
                    if platform:
                        values["platform"] = platform
                    conn.execute(update(table).where(table.c.token == token).values(**values))
                    return bool(found.user_id != user_id)
            except IntegrityError:
                continue
        raise RuntimeError("could not register the device")

    def remove_device(self, token: str, user_id: str | None = None) -> bool:
        """Forget a push token (FCM called it UNREGISTERED, or the app logged out); with
        `user_id`, only if it is that user's. True if one was removed."""
        table = DeviceRow.__table__  # type: ignore[attr-defined]
        condition = table.c.token == token
        if user_id is not None:
            condition = condition & (table.c.user_id == user_id)
        with self.engine.begin() as conn:
            return bool(conn.execute(table.delete().where(condition)).rowcount)

    def devices_of(self, user_id: str) -> list[DeviceRow]:
        """The user's push devices, most recently seen first."""
        table = DeviceRow.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table)
                .where(table.c.user_id == user_id)
                .order_by(table.c.updated_at.desc(), table.c.token)
            ).all()
        return [DeviceRow(**row._asdict()) for row in rows]

    def set_sms_opt_out(self, phone_hash: str, keyword: str | None) -> None:
        """A number texted an opt-out keyword (`keyword`), or an opt-in one (None): no SMS goes
        to it until it opts in again. Keyed by the number's hash (activities/phones.py)."""
        table = SmsOptOut.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.phone_hash == phone_hash))
            if keyword is not None:
                conn.execute(
                    table.insert().values(
                        phone_hash=phone_hash, keyword=keyword[:16], since=utcnow()
                    )
                )

    def sms_opted_out(self, phone_hash: str) -> bool:
        table = SmsOptOut.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            found = conn.execute(
                select(table.c.phone_hash).where(table.c.phone_hash == phone_hash)
            ).first()
        return found is not None

    def upsert_profile(
        self, user_id: str, *, email: str | None = None, traits: dict[str, Any] | None = None
    ) -> ProfileRow:
        """Merge `traits` (and `email`) into the user's profile, creating it if new."""
        for _ in range(2):  # a concurrent first insert loses the race once, then updates
            try:
                with self.engine.begin() as conn:
                    if conn.dialect.name == "sqlite":  # write-locked before the read, as
                        conn.exec_driver_sql("BEGIN IMMEDIATE")  # FOR UPDATE does elsewhere
                    merged = self._merge_traits(conn, user_id, traits or {}, email)
                return ProfileRow(user_id=user_id, email=merged.email, traits=merged.traits)
            except IntegrityError:
                continue
        raise RuntimeError(f"could not upsert profile {user_id!r}")

    def receive(
        self,
        *,
        message_id: str,
        user_id: str,
        kind: str,
        at: datetime,
        event: str | None = None,
        properties: dict[str, Any] | None = None,
        traits: dict[str, Any] | None = None,
        routed: bool = False,
        open_runs_of: frozenset[str] = frozenset(),
    ) -> Receipt:
        """Record an incoming call once: receipt, profile traits and event summary together.

        A message ID already received changes nothing and returns the earlier receipt.
        `routed`: the call has nothing to route (an identify, an event no journey wants), so it
        is done once this commits, unless the user has an open run of `open_runs_of`.
        """
        return self._receive_one(
            Incoming(message_id, user_id, kind, at, event, properties, traits, routed, open_runs_of)
        )

    def _receive_one(self, incoming: Incoming) -> Receipt:
        for _ in range(3):  # a concurrent first write of the same profile loses once, then merges
            try:
                with self.engine.begin() as conn:
                    return self._record(conn, incoming, utcnow())
            except IntegrityError:  # a racing first insert of this profile won: merge again
                continue
        raise RuntimeError(f"could not record message {incoming.message_id!r}")

    def receive_many(
        self, calls: list[Incoming], *, wait: bool = True
    ) -> list[Receipt | Exception]:
        """`receive` for several calls in one SQLite transaction (the API's group commit).

        The transaction takes the write lock before it reads, so no other writer can race it
        (no retries needed) and each call sees the ones before it. Should it fail for anything
        but the database being unavailable, each call is recorded on its own instead, so a bad
        call fails alone: its place in the answer holds its error. `wait=False`: WouldWait, with
        nothing written, where that would mean waiting (the lock is held, or the calls are to be
        taken one by one).
        """
        if not self.one_writer:
            raise NotImplementedError("receive_many takes SQLite's single writer lock")
        try:
            with self._writing(wait=wait) as conn:
                now = utcnow()
                return [self._record(conn, incoming, now) for incoming in calls]
        except (OperationalError, WouldWait):  # locked past the busy timeout, disk gone: every
            raise  # call's error; or the lock is held and the caller will not wait here
        except Exception as err:  # one call's fault, or all: find out by taking them one by one
            if not wait:
                raise WouldWait("calls to record one by one") from err
            return [self._receive_alone(incoming) for incoming in calls]

    def _receive_alone(self, incoming: Incoming) -> Receipt | Exception:
        try:
            return self._receive_one(incoming)
        except Exception as err:  # the answer for this call only
            return err

    def _record(self, conn: Connection, incoming: Incoming, now: datetime) -> Receipt:
        """One call's receipt, traits and summary inside the caller's transaction."""
        # Prebuilt Core statements, not the ORM: this runs once per event on the hot path.
        sql = _hot(conn.dialect.name)
        receipt: dict[str, Any] = {
            "message_id": incoming.message_id,
            "user_id": incoming.user_id,
            "kind": incoming.kind,
            "event": incoming.event,
            "received_at": now,
        }
        open_runs: tuple[tuple[str, str | None], ...] = ()
        if incoming.event is not None and incoming.open_runs_of:
            rows = _run(conn, sql.open_runs, {"b_user_id": incoming.user_id})
            open_runs = tuple(
                (journey, entry) for journey, entry in rows if journey in incoming.open_runs_of
            )
        routed = incoming.routed and not open_runs
        if routed:
            receipt |= {"routed_at": now, "result": []}
        # RETURNING, not rowcount: SQLAlchemy keeps no INSERT's rowcount, and on psycopg it
        # read -1, so every duplicate looked new on PostgreSQL.
        if not _run(conn, sql.receipt_insert, receipt):
            seen = _first(_run(conn, sql.receipt_seen, {"b_message_id": incoming.message_id}))
            routed = seen is not None and seen.routed_at is not None
            return Receipt(
                new=False,
                routed=routed,
                result=seen.result if seen else None,
                open_runs=open_runs,
            )
        traits = incoming.traits
        profile = self._merge_traits(conn, incoming.user_id, traits) if traits else None
        count = None
        if incoming.event is not None:
            at = _utc(incoming.at)
            day = at.date().isoformat()
            summary = {
                "user_id": incoming.user_id,
                "event": incoming.event,
                "count": 1,
                "first_seen": at,
                "last_seen": at,
                "last_properties": incoming.properties or {},
                "daily": {day: 1},
                "hours": {str(at.hour): 1},
            }
            count, daily, hours = _run(conn, sql.summary_upsert, summary)[0]
            if count > 1:  # the row was there (and is now locked): add the event to its day
                where = {"b_user_id": incoming.user_id, "b_event": incoming.event}
                counts = {"daily": count_day(daily, day), "hours": count_hour(hours, at.hour)}
                _run(conn, sql.summary_daily, where | counts)
            if incoming.event == PURCHASE_EVENT:
                self._record_purchases(conn, incoming, at)
        return Receipt(new=True, routed=routed, profile=profile, count=count, open_runs=open_runs)

    @staticmethod
    def _record_purchases(conn: Connection, incoming: Incoming, at: datetime) -> None:
        """Each product of an order, once (the order's message ID keys it)."""
        products = (incoming.properties or {}).get("products")
        if not isinstance(products, list):
            return
        ids = {
            str(p["product_id"])[:255]
            for p in products
            if isinstance(p, dict) and p.get("product_id") not in (None, "")
        }
        rows = [
            {"message_id": incoming.message_id, "product_id": product_id,
             "user_id": incoming.user_id, "at": at}
            for product_id in sorted(ids)
        ]  # fmt: skip
        if rows:
            _run(conn, _hot(conn.dialect.name).purchase_insert, rows)

    # Catalog ---------------------------------------------------------------------------------

    def upsert_products(self, products: list[CatalogProduct]) -> None:
        """Create or replace these products (one transaction: a batch lands whole or not)."""
        with self.session() as session:
            for product in products:
                product.updated_at = utcnow()
                session.merge(product)
            session.commit()

    def products(self, product_ids: list[str]) -> dict[str, CatalogProduct]:
        """The catalog's entries for these IDs (missing ones are absent)."""
        if not product_ids:
            return {}
        with self.session() as session:
            query = select(CatalogProduct).where(
                CatalogProduct.product_id.in_(product_ids)  # type: ignore[attr-defined]
            )
            return {p.product_id: p for p in session.exec(query)}

    def recent_buyers(
        self, product_ids: list[str], since: datetime, exclude_user: str
    ) -> dict[str, int]:
        """How many other users bought each product since `since` (from Order Completed)."""
        if not product_ids:
            return {}
        purchases = Purchase.__table__  # type: ignore[attr-defined]
        query = (
            select(purchases.c.product_id, func.count(purchases.c.user_id.distinct()))
            .where(
                purchases.c.product_id.in_(product_ids),
                purchases.c.at >= _utc(since),
                purchases.c.user_id != exclude_user,
            )
            .group_by(purchases.c.product_id)
        )
        with self.engine.connect() as conn:
            return {product_id: int(count) for product_id, count in conn.execute(query)}

    def mark_routed(self, message_id: str, result: list[dict[str, Any]]) -> None:
        """Temporal accepted everything this call caused: later duplicates answer with `result`."""
        self.mark_routed_many([(message_id, result)])

    def mark_routed_many(
        self, marks: list[tuple[str, list[dict[str, Any]]]], *, wait: bool = True
    ) -> None:
        """`mark_routed` for several calls in one transaction (the API's group commit);
        `wait=False`: WouldWait, with nothing written, while another writer holds the lock."""
        now = utcnow()
        rows = [
            {"b_message_id": message_id, "routed_at": now, "result": result}
            for message_id, result in sorted(marks, key=lambda mark: mark[0])  # one lock order
        ]
        with self._writing(wait=wait) as conn:
            _run(conn, _hot(self.engine.dialect.name).receipt_routed, rows)

    def prune_receipts(self, before: datetime) -> int:
        """Forget receipts older than the dedupe window; returns how many went."""
        with self.session() as session:
            gone = cast(
                "CursorResult[Any]",  # what a DELETE returns; Session.execute says Result
                session.execute(
                    delete(EventReceipt).where(EventReceipt.received_at < _utc(before))  # type: ignore[arg-type]
                ),
            )
            session.commit()
            return int(gone.rowcount or 0)

    def activity_hours(self, user_id: str) -> dict[int, int]:
        """The user's events per UTC hour of day, all event names together."""
        table = EventSummary.__table__  # type: ignore[attr-defined]
        counts: dict[int, int] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.hours).where(table.c.user_id == user_id))
            for (hours,) in rows:
                for hour, n in (hours or {}).items():
                    counts[int(hour)] = counts.get(int(hour), 0) + int(n)
        return counts

    def event_summary(self, user_id: str, event: str) -> EventSummary | None:
        with self.session() as session:
            return session.get(EventSummary, (user_id, event))

    def resolve_alias(self, kind: str, value: str) -> str | None:
        """Our user ID for another system's ID, if an identify call linked them."""
        with self.session() as session:
            alias = session.get(UserAlias, (kind, value))
            return alias.user_id if alias else None

    @staticmethod
    def _merge_traits(
        conn: Connection, user_id: str, traits: dict[str, Any], email: str | None = None
    ) -> ProfileView:
        """Merge traits (and `email`, else the `email` trait) into the profile; raises
        IntegrityError if a racing first insert won."""
        sql = _hot(conn.dialect.name)
        profiles = ProfileRow.__table__  # type: ignore[attr-defined]
        aliases = UserAlias.__table__  # type: ignore[attr-defined]
        current = _first(_run(conn, sql.profile_for_update, {"b_user_id": user_id}))
        if not email and _fits(traits.get("email"), profiles.c.email):
            email = traits["email"]
        merged = {**(current.traits if current else {}), **traits}
        email = email or (current.email if current else None)
        values: dict[str, Any] = {"email": email, "traits": merged, "updated_at": utcnow()}
        if opts_out(traits) and (current is None or current.email_unsubscribed_at is None):
            # An identify may take consent away (a sender's own preference centre), never
            # give it back: `{"unsubscribed": false}` leaves the column as it is.
            values |= {"email_unsubscribed_at": utcnow(), "email_unsubscribed_from": "identify"}
        if current is None:
            _run(conn, sql.profile_insert, {"user_id": user_id, **values})
        else:
            _run(conn, sql.profile_update, {"b_user_id": user_id, **values})
        for kind in ALIAS_TRAITS:
            value = traits.get(kind)
            if isinstance(value, str | int) and _fits(str(value), aliases.c.value):
                alias = {"kind": kind, "value": str(value), "user_id": user_id}
                _run(conn, sql.alias_upsert, alias)
        return ProfileView(user_id=user_id, email=email, traits=merged)

    # Journey runs ---------------------------------------------------------------------------

    def insert_once(self, row: SQLModel) -> bool:
        """Insert `row` unless its unique key exists; True if this call inserted it."""
        with self.session() as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
            return True

    def get_run(self, run_id: str) -> JourneyRun | None:
        with self.session() as session:
            return session.get(JourneyRun, run_id)

    def runs(self, journey: str | None = None, user_id: str | None = None) -> list[JourneyRun]:
        with self.session() as session:
            query = select(JourneyRun).order_by(JourneyRun.entered_at)  # type: ignore[arg-type]
            if journey:
                query = query.where(JourneyRun.journey == journey)
            if user_id:
                query = query.where(JourneyRun.user_id == user_id)
            return list(session.exec(query))

    def enter_run(self, run: JourneyRun, reentry: timedelta | None = None) -> Entered:
        """Record a journey entry once and read, in the same transaction, the user's traits and
        when this journey last messaged them. A retry finds the group the first attempt drew.

        With `reentry`, an entry within that time of the user's last (unsuppressed) entry of
        this journey is refused instead: a JourneyRefusal row, no run. The workflow that
        guarded the window by staying open now closes at its outcome.

        The worker's entry activity runs this once per journey: prebuilt statements, not the
        ORM, whose per-statement work cost more than the database's.
        """
        sql = _hot(self.engine.dialect.name)
        with self.engine.begin() as conn:
            if reentry is not None:
                refused = self._refusal(conn, run, reentry)
                if refused is not None:
                    return Entered(
                        new=False, group=None, traits={}, last_message_at=None, refused=refused
                    )
            new = bool(_run(conn, sql.run_insert, run.model_dump()))
            group = run.group if new else _run(conn, sql.run_group, {"b_run_id": run.run_id})[0][0]
            profile = _first(_run(conn, sql.profile_read, {"b_user_id": run.user_id}))
            last = self._last_message_at(conn, run.journey, run.user_id, run.run_id)
        traits = dict(profile.traits) if profile is not None else {}
        return Entered(new=new, group=group, traits=traits, last_message_at=last)

    @staticmethod
    def _refusal(conn: Connection, run: JourneyRun, reentry: timedelta) -> JourneyRefusal | None:
        """The refusal of `run` if its user entered this journey within `reentry` before it
        (recorded once: a retried activity finds its row, or its run, and answers the same)."""
        sql = _hot(conn.dialect.name)
        if _run(conn, sql.run_group, {"b_run_id": run.run_id}):
            return None  # an earlier attempt entered it
        entered_at = _utc(run.entered_at)
        where = {
            "b_journey": run.journey,
            "b_user_id": run.user_id,
            "b_run_id": run.run_id,
            "b_since": entered_at - reentry,
        }
        last = _run(conn, sql.last_entry, where)[0][0]
        if last is None:
            return None
        refusal = JourneyRefusal(
            run_id=run.run_id,
            workflow_id=run.workflow_id,
            journey=run.journey,
            user_id=run.user_id,
            at=entered_at,
            reason="reentry_window",
            entry_event=run.entry_event,
            last_entered_at=_utc(last),
        )
        _run(conn, sql.refusal_insert, refusal.model_dump())
        return refusal

    def refusals(
        self, journey: str | None = None, user_id: str | None = None
    ) -> list[JourneyRefusal]:
        """Refused entries, oldest first (a user's history shows why a trigger started nothing)."""
        with self.session() as session:
            query = select(JourneyRefusal).order_by(JourneyRefusal.at)  # type: ignore[arg-type]
            if journey is not None:
                query = query.where(JourneyRefusal.journey == journey)
            if user_id is not None:
                query = query.where(JourneyRefusal.user_id == user_id)
            return list(session.exec(query))

    def record_step(self, step: JourneyStepRow) -> None:
        """Add the step once (unique per run and sequence number) and mark the run as there,
        unless it has ended; one transaction, as it runs for every wait of every journey."""
        sql = _hot(self.engine.dialect.name)
        with self.engine.begin() as conn:
            _run(conn, sql.step_insert, step.model_dump(exclude={"id"}))
            _run(conn, sql.run_step, {"b_run_id": step.run_id, "step": step.name})

    def last_message_at(self, journey: str, user_id: str, before_run: str) -> datetime | None:
        """When `journey` last messaged the user in another run: sent, or held out (so a
        "not again within 7 days" rule treats both groups alike)."""
        with self.engine.connect() as conn:
            return self._last_message_at(conn, journey, user_id, before_run)

    @staticmethod
    def _last_message_at(
        conn: Connection, journey: str, user_id: str, before_run: str
    ) -> datetime | None:
        sql = _hot(conn.dialect.name)
        where = {"b_journey": journey, "b_user_id": user_id, "b_run_id": before_run}
        sent = _run(conn, sql.last_sent, where)[0][0]
        held = _run(conn, sql.last_held_out, where)[0][0]
        times = [_utc(t) for t in (sent, held) if t is not None]
        return max(times) if times else None

    def steps(self, run_id: str) -> list[JourneyStepRow]:
        with self.session() as session:
            query = (
                select(JourneyStepRow)
                .where(JourneyStepRow.run_id == run_id)
                .order_by(JourneyStepRow.seq)  # type: ignore[arg-type]
            )
            return list(session.exec(query))

    # Delivery --------------------------------------------------------------------------------

    def is_paused(self, journey: str) -> bool:
        with self.engine.connect() as conn:
            paused = _first(_run(conn, _hot(conn.dialect.name).paused, {"b_journey": journey}))
            return bool(paused[0]) if paused is not None else False

    def has_message(self, idempotency_key: str) -> bool:
        """Whether a send with this key was claimed or recorded (a retry, or a dead worker's)."""
        with self.engine.connect() as conn:
            sql = _hot(conn.dialect.name)
            return bool(_run(conn, sql.message_key, {"b_key": idempotency_key}))

    def record_sent(self, message: OutboxMessage, step: JourneyStepRow) -> int:
        """The delivered message's row, its step and the run's count, in one transaction;
        returns the row's ID. Raises IntegrityError if either exists already."""
        sql = _hot(self.engine.dialect.name)
        with self.engine.begin() as conn:
            message_id = _run(conn, sql.message_add, message.model_dump(exclude={"id"}))[0][0]
            _run(conn, sql.step_add, step.model_dump(exclude={"id"}))
            _run(conn, sql.run_sent, {"b_run_id": message.run_id})
            return int(message_id)

    def set_paused(self, journey: str, paused: bool, reason: str | None = None) -> None:
        """Pause or resume a journey's sends, and log the change."""
        with self.session() as session:
            control = session.get(JourneyControl, journey) or JourneyControl(journey=journey)
            control.paused, control.changed_at, control.reason = paused, utcnow(), reason
            session.add(control)
            session.add(
                JourneyControlLog(
                    journey=journey, action="pause" if paused else "resume", reason=reason
                )
            )
            session.commit()

    def paused_journeys(self) -> list[str]:
        with self.session() as session:
            rows = session.exec(select(JourneyControl).where(JourneyControl.paused == True))  # noqa: E712
            return sorted(row.journey for row in rows)

    def marketing_sent_since(self, user_id: str, since: datetime, channel: str = "email") -> int:
        """Marketing messages on `channel` that went (or may have gone) to the user since."""
        where = {"b_user_id": user_id, "b_channel": channel, "b_since": _utc(since)}
        with self.engine.connect() as conn:
            return int(_run(conn, _hot(conn.dialect.name).marketing_since, where)[0][0])

    def messages(self, user_id: str, channel: str) -> list[OutboxMessage]:
        with self.session() as session:
            query = (
                select(OutboxMessage)
                .where(OutboxMessage.user_id == user_id, OutboxMessage.channel == channel)
                .order_by(OutboxMessage.id.desc())  # type: ignore[union-attr]
            )
            return list(session.exec(query))

    def mark_read(self, user_id: str, message_id: int) -> bool:
        """Mark one of the user's in-app messages read; False if it is not theirs."""
        with self.session() as session:
            message = session.get(OutboxMessage, message_id)
            if message is None or message.user_id != user_id or message.channel != "in_app":
                return False
            if message.read_at is None:
                message.read_at = utcnow()
                session.add(message)
                session.commit()
            return True

    def outbox(self, user_id: str | None = None) -> list[OutboxMessage]:
        with self.session() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
            if user_id:
                query = query.where(OutboxMessage.user_id == user_id)
            return list(session.exec(query))


DAILY_DAYS = 92
"""Days of per-day event counts each summary keeps (`EventSummary.daily`): a quarter, the
longest window a template's `activity(..., days=)` can count over."""


def count_hour(hours: dict[str, int] | None, hour: int) -> dict[str, int]:
    """`hours` with one more event in UTC hour `hour`."""
    counts = dict(hours or {})
    counts[str(hour)] = counts.get(str(hour), 0) + 1
    return counts


def count_day(daily: dict[str, int] | None, day: str) -> dict[str, int]:
    """`daily` with one more event on `day` (ISO date), the days older than DAILY_DAYS before
    the newest dropped (a row from before per-day counts starts with this day)."""
    counts = dict(daily or {})
    counts[day] = int(counts.get(day, 0)) + 1
    newest = date.fromisoformat(max(counts))
    oldest = (newest - timedelta(days=DAILY_DAYS - 1)).isoformat()
    return {d: n for d, n in sorted(counts.items()) if d >= oldest}


def _utc(when: datetime) -> datetime:
    """Aware and in UTC, so comparisons agree on SQLite (text) and PostgreSQL."""
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _fits(value: Any, column: Any) -> bool:
    """A non-empty string the column can hold (PostgreSQL refuses longer ones; SQLite would
    take them): a trait too long for its column stays a trait only."""
    return isinstance(value, str) and 0 < len(value) <= (column.type.length or len(value))


@dataclass(frozen=True)
class _HotStatements:
    """The statements ingestion runs for every event, and the worker for every journey step,
    built once per dialect.

    Built fresh for each call, SQLAlchemy spent more CPU constructing them and computing their
    cache keys than running them. Executed with a dict of parameters; the `b_` names are the
    WHERE clauses' (SQLAlchemy reserves a column's own name for its SET value).
    """

    receipt_insert: Any
    receipt_seen: Any
    receipt_routed: Any
    profile_for_update: Any
    profile_insert: Any
    profile_update: Any
    alias_upsert: Any
    summary_upsert: Any
    summary_daily: Any
    run_insert: Any
    run_group: Any
    run_step: Any
    step_insert: Any
    last_sent: Any
    last_held_out: Any
    profile_read: Any
    marketing_since: Any
    paused: Any
    message_key: Any
    message_add: Any
    step_add: Any
    run_sent: Any
    last_entry: Any
    refusal_insert: Any
    open_runs: Any
    purchase_insert: Any


@functools.cache
def _hot(dialect: str) -> _HotStatements:
    insert: Callable[..., Any]  # both dialects' INSERT, with ON CONFLICT
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        insert = postgresql_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = sqlite_insert
    receipts = EventReceipt.__table__  # type: ignore[attr-defined]
    profiles = ProfileRow.__table__  # type: ignore[attr-defined]
    aliases = UserAlias.__table__  # type: ignore[attr-defined]
    summaries = EventSummary.__table__  # type: ignore[attr-defined]
    runs = JourneyRun.__table__  # type: ignore[attr-defined]
    steps = JourneyStepRow.__table__  # type: ignore[attr-defined]
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    controls = JourneyControl.__table__  # type: ignore[attr-defined]
    other_run_of_user = (
        (runs.c.journey == bindparam("b_journey"))
        & (runs.c.user_id == bindparam("b_user_id"))
        & (runs.c.run_id != bindparam("b_run_id"))
    )

    alias = insert(aliases)
    summary = insert(summaries)
    new = summary.excluded
    return _HotStatements(
        receipt_insert=insert(receipts)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(receipts.c.message_id),
        receipt_seen=select(receipts.c.routed_at, receipts.c.result).where(
            receipts.c.message_id == bindparam("b_message_id")
        ),
        receipt_routed=update(receipts).where(receipts.c.message_id == bindparam("b_message_id")),
        # FOR UPDATE: concurrent merges of one profile take turns, none is lost.
        profile_for_update=select(
            profiles.c.email, profiles.c.traits, profiles.c.email_unsubscribed_at
        )
        .where(profiles.c.user_id == bindparam("b_user_id"))
        .with_for_update(),
        profile_insert=profiles.insert(),
        profile_update=update(profiles).where(profiles.c.user_id == bindparam("b_user_id")),
        alias_upsert=alias.on_conflict_do_update(
            index_elements=["kind", "value"], set_={"user_id": alias.excluded.user_id}
        ),
        # ON CONFLICT DO UPDATE, so concurrent replicas never lose a count. Out-of-order
        # events keep first_seen the earliest, last_seen the latest, and the latest properties.
        summary_upsert=summary.on_conflict_do_update(
            index_elements=["user_id", "event"],
            set_={
                "count": summaries.c.count + 1,
                "first_seen": case(
                    (new.first_seen < summaries.c.first_seen, new.first_seen),
                    else_=summaries.c.first_seen,
                ),
                "last_seen": case(
                    (new.last_seen > summaries.c.last_seen, new.last_seen),
                    else_=summaries.c.last_seen,
                ),
                "last_properties": case(
                    (new.last_seen >= summaries.c.last_seen, new.last_properties),
                    else_=summaries.c.last_properties,
                ),
            },
        ).returning(summaries.c.count, summaries.c.daily, summaries.c.hours),
        summary_daily=update(summaries).where(
            (summaries.c.user_id == bindparam("b_user_id"))
            & (summaries.c.event == bindparam("b_event"))
        ),
        # Conflict on any unique key: a retried activity finds its row and adds nothing.
        run_insert=insert(runs).on_conflict_do_nothing().returning(runs.c.run_id),
        run_group=select(runs.c.group).where(runs.c.run_id == bindparam("b_run_id")),
        run_step=update(runs).where(
            (runs.c.run_id == bindparam("b_run_id")) & runs.c.outcome.is_(None)
        ),
        step_insert=insert(steps).on_conflict_do_nothing(),
        last_sent=select(func.max(outbox.c.journey_time)).where(
            (outbox.c.journey == bindparam("b_journey"))
            & (outbox.c.user_id == bindparam("b_user_id"))
            & (outbox.c.run_id != bindparam("b_run_id"))
            & outbox.c.status.in_(("sent", "sending", "unknown"))
        ),
        last_held_out=select(func.max(steps.c.at))
        .select_from(steps.join(runs, runs.c.run_id == steps.c.run_id))
        .where(other_run_of_user & (steps.c.kind == "send") & (steps.c.status == "held_out")),
        profile_read=select(profiles).where(profiles.c.user_id == bindparam("b_user_id")),
        marketing_since=select(func.count())
        .select_from(outbox)
        .where(
            (outbox.c.user_id == bindparam("b_user_id"))
            & outbox.c.marketing.is_(True)
            & (outbox.c.channel == bindparam("b_channel"))
            & outbox.c.status.in_(("sent", "sending", "unknown"))
            & (outbox.c.journey_time >= bindparam("b_since"))
        ),
        paused=select(controls.c.paused).where(controls.c.journey == bindparam("b_journey")),
        message_key=select(outbox.c.id).where(outbox.c.idempotency_key == bindparam("b_key")),
        message_add=outbox.insert().returning(outbox.c.id),
        step_add=steps.insert(),
        # The user's latest entry that opens a re-entry window (suppressed ones do not).
        last_entry=select(func.max(runs.c.entered_at)).where(
            other_run_of_user
            & (runs.c.outcome.is_(None) | (runs.c.outcome != "suppressed"))
            & (runs.c.entered_at > bindparam("b_since"))
        ),
        purchase_insert=insert(Purchase.__table__).on_conflict_do_nothing(),  # type: ignore[attr-defined]
        refusal_insert=insert(JourneyRefusal.__table__).on_conflict_do_nothing(),  # type: ignore[attr-defined]
        # A user's open runs (and how each entered): which `ANY_EVENT` goals an event may reach.
        open_runs=select(runs.c.journey, runs.c.entry_event).where(
            (runs.c.user_id == bindparam("b_user_id")) & runs.c.outcome.is_(None)
        ),
        run_sent=update(runs)
        .where(runs.c.run_id == bindparam("b_run_id"))
        .values(messages_sent=runs.c.messages_sent + 1),
    )


_SQLITE = sqlite_dialect()


@dataclass(frozen=True)
class _SQLiteStatement:
    """A prebuilt statement compiled once for SQLite, for one set of parameter names."""

    sql: str
    binds: list[tuple[str, Callable[[Any], Any] | None, Any]]
    """Per placeholder: the parameter's name, SQLAlchemy's bind processor for its type (dates
    and JSON as SQLAlchemy stores them), and the value of a literal the statement carries."""
    row: Callable[..., Any] | None
    """Builds a row (a named tuple) from what the statement returns; None: returns nothing."""
    results: list[Callable[[Any], Any] | None]
    """SQLAlchemy's result processor per returned column (JSON and dates read back)."""

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            (process(values[name]) if process else values[name]) if name in values else literal
            for name, process, literal in self.binds
        )


@functools.cache
def _sqlite_statement(statement: Any, names: tuple[str, ...]) -> _SQLiteStatement | None:
    """None where SQLAlchemy does more than convert the values: SQL that depends on them (an IN
    list, expanded at run time), a column default to compute, a missing value to refuse."""
    compiled = statement.compile(dialect=_SQLITE, column_keys=list(names))
    if compiled.post_compile_params or compiled.literal_execute_params:
        return None
    if compiled.insert_prefetch or compiled.update_prefetch:
        return None
    binds = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        if name not in names and bind.required:
            return None
        binds.append((name, bind.type.dialect_impl(_SQLITE).bind_processor(_SQLITE), bind.value))
    columns = list(getattr(statement, "exported_columns", ()))
    return _SQLiteStatement(
        sql=compiled.string,
        binds=binds,
        row=namedtuple("Row", [c.key for c in columns], rename=True) if columns else None,
        results=[c.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None) for c in columns],
    )


def _run(
    conn: Connection, statement: Any, values: dict[str, Any] | list[dict[str, Any]]
) -> Sequence[Any]:
    """Execute one of the hot statements (one set of values, or a list for executemany) and
    return its rows, which read by column name.

    On SQLite straight on the driver's cursor, inside the connection's transaction:
    SQLAlchemy's execution around each statement (its cache lookup, parameter and result
    objects) cost more CPU than SQLite's own work; recording an event went from 0.64 to 0.38 ms.
    The SQL, the parameters' and results' conversions are still SQLAlchemy's, so rows read
    the same through the ORM. Errors are SQLAlchemy's, as from `conn.execute`.
    """
    if isinstance(values, list) and not values:
        return []
    first = values[0] if isinstance(values, list) else values
    compiled = (
        _sqlite_statement(statement, tuple(sorted(first)))
        if conn.dialect.name == "sqlite"
        else None
    )
    if compiled is None:
        result = conn.execute(statement, values)
        return result.all() if result.returns_rows else []
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    try:
        if isinstance(values, list):
            driver.executemany(compiled.sql, [compiled.parameters(v) for v in values])
            return []
        cursor = driver.execute(compiled.sql, compiled.parameters(first))
        if compiled.row is None:
            return []
        processors = compiled.results
        return [
            compiled.row(*(p(v) if p else v for p, v in zip(processors, raw, strict=True)))
            for raw in cursor.fetchall()
        ]
    except sqlite3.Error as err:
        raise DBAPIError.instance(compiled.sql, values, err, sqlite3.Error) from err


def _first(rows: Sequence[Any]) -> Any:
    return rows[0] if rows else None


def _engine(url: str, **options: Any) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, **options)
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT},
        **options,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")  # the busy timeout: connect's `timeout`
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_SIZE}")
        cursor.close()

    return engine


SQLITE_BUSY_TIMEOUT = 30
"""Seconds a SQLite connection waits for another's lock before "database is locked"."""

SQLITE_MMAP_SIZE = 256 * 1024 * 1024
"""Bytes of the file each SQLite connection reads through memory mapping instead of read().

The API and the worker write the same file, and each commit of one makes the other drop its
whole page cache, so every transaction reads its pages again. Mapped, those reads are memory
reads, not system calls and copies: receiving an event took 15 % less CPU with the worker
writing alongside. The map is address space, not memory; a larger file is mapped in part.
"""


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL, waiting as long as any other statement would.

    SQLite does not call its busy handler for this switch: while another connection holds a
    write lock on a file still in rollback mode (a worker and the API migrating a new database
    together), it fails at once with "database is locked". So wait here instead.
    """
    _until_unlocked(lambda: cursor.execute("PRAGMA journal_mode=WAL"), first=0.005, most=0.25)


WRITE_LOCK_POLL = (0.0005, 0.004)
"""Seconds between tries for ingestion's write lock: the first pause, and the longest."""


def _take_write_lock(conn: Connection, *, wait: bool = True) -> None:
    """BEGIN IMMEDIATE, trying again every few milliseconds while another writer holds the lock.

    SQLite's busy handler sleeps in growing steps of up to 100 ms, so behind a busy worker a
    waiting API call slept past the moments the lock was free: ingestion's p99 at half the peak
    went past a second, with its writes waiting up to 840 ms for a lock held a few ms at a time.
    Polling instead also gives ingestion the lock before the worker, whose waits nobody sees.
    """
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    driver.execute("PRAGMA busy_timeout = 0")  # refuse at once while locked; we poll instead
    try:
        if wait:
            first, most = WRITE_LOCK_POLL
            _until_unlocked(lambda: driver.execute("BEGIN IMMEDIATE"), first=first, most=most)
        else:
            _unless_locked(lambda: driver.execute("BEGIN IMMEDIATE"))
    except sqlite3.OperationalError as err:  # as SQLAlchemy reports it for any other statement
        raise OperationalError("BEGIN IMMEDIATE", None, err) from err
    finally:
        driver.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")


def _unless_locked(statement: Callable[[], object]) -> None:
    """Run `statement` once; WouldWait if another connection's lock refuses it."""
    try:
        statement()
    except sqlite3.OperationalError as err:
        if "database is locked" in str(err):
            raise WouldWait("another connection holds the write lock") from err
        raise


def _until_unlocked(statement: Callable[[], object], *, first: float, most: float) -> None:
    """Run `statement` until another connection's lock no longer refuses it, sleeping `first`
    seconds between tries at first and doubling up to `most`; after SQLITE_BUSY_TIMEOUT seconds
    its "database is locked" error is raised, as any statement's would be."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    delay = first
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as err:
            if "database is locked" not in str(err) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, most)


# Erasure (GDPR/CCPA) ------------------------------------------------------------------------


class ErasureRow(SQLModel, table=True):
    """One erasure request (DELETE /v1/users/{id}, a Segment delete, `journeys erase`) and how
    it went; the work is the EraseUser workflow's (workflows/erasure.py).

    `user_id` and `tombstone` are held only while it runs (unique: one erasure at a time per
    user, so a repeated request joins it) and cleared when it is done: afterwards nothing here
    links the erased rows, or the request, to the person."""

    __tablename__ = "erasures"

    erasure_id: str = Field(primary_key=True, max_length=64)
    user_id: str | None = Field(default=None, unique=True, max_length=255)
    tombstone: str | None = Field(default=None, max_length=64)
    source: str = Field(default="api", max_length=16)
    """"api", "segment" or "cli"."""
    status: str = Field(default="accepted", max_length=16)
    """"accepted" (recorded), "running", "done"."""
    requested_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    passes: int = 0
    journeys_ended: int = 0
    records_erased: int = 0
    histories_deleted: int = 0


class EmailSuppression(SQLModel, table=True):
    """An address that must not get marketing email although no profile holds it any more: an
    erased user who had unsubscribed (or whose address a provider refused). Only a keyed hash
    (HMAC-SHA256 with JOURNEYS_SECRET_KEY) of the lower-cased address is kept."""

    __tablename__ = "email_suppressions"

    address_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=32)
    since: datetime = Field(default_factory=utcnow)


class ExperimentAssignment(SQLModel, table=True):
    """A run's variant of one experiment (workflows/experiments.py): what the report counts
    conversions by. Both groups are assigned; only the treatment group is sent anything."""

    __tablename__ = "experiment_assignments"
    __table_args__ = (
        Index("ix_experiment_assignments_journey_experiment", "journey", "experiment"),
    )

    run_id: str = Field(primary_key=True, max_length=64)
    experiment: str = Field(primary_key=True, max_length=64)
    journey: str = Field(max_length=64)
    user_id: str = Field(max_length=255)
    variant: str = Field(max_length=64)
    group: str = Field(max_length=16)
    reason: str = Field(max_length=16)
    """"assigned" (the user's hash) or "winner" (entered after the test decided)."""
    assigned_at: datetime


class ExperimentDecision(SQLModel, table=True):
    """An experiment's automatic winner: decided once, with the figures it was decided on."""

    __tablename__ = "experiment_decisions"

    journey: str = Field(primary_key=True, max_length=64)
    experiment: str = Field(primary_key=True, max_length=64)
    winner: str = Field(max_length=64)
    decided_at: datetime
    p_value: float
    """The largest always-valid p-value of the winner against each other variant."""
    alpha: float
    figures: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# Send rates and waiting sends (activities/throttle.py) ----------------------------------------


class SendRateRow(SQLModel, table=True):
    """A journey's send rate as used so far: the earliest time its next send may take."""

    __tablename__ = "send_rates"

    journey: str = Field(primary_key=True, max_length=64)
    next_at: datetime


class SendWait(SQLModel, table=True):
    """A send that waits its turn: for the journey's send rate ("throttled") or for the user's
    quiet hours to end ("quiet_hours"). Until it is settled (sent or skipped) it is a pending
    send the cross-journey frequency cap gives way to when its journey's priority is higher.

    No user ID: the run ID leads to the user while the run's row does, and an erasure
    tombstones that row; the send's idempotency key (which holds the workflow ID, the user's
    ID in it) is kept only as a hash. One row per send, kept for the report."""

    __tablename__ = "send_waits"

    key_hash: str = Field(primary_key=True, max_length=64)
    """SHA-256 (hex) of the send's idempotency key."""
    run_id: str = Field(index=True, max_length=64)
    journey: str = Field(index=True, max_length=64)
    template: str = Field(max_length=255)
    channel: str = Field(max_length=16)
    marketing: bool = True
    priority: int = 0
    reason: str = Field(max_length=16)
    """Why it waits now: "throttled" or "quiet_hours"."""
    due_at: datetime = Field(index=True)
    """When it may go: its slot under the send rate, or the end of quiet hours."""
    first_at: datetime
    """When it first had to wait (journey time)."""
    throttled: int = 0
    """How many times it waited for the send rate (a slot lost to quiet hours is taken again)."""
    settled_at: datetime | None = None
    """When it went on (sent) or was skipped: no longer pending."""


# What happened to a message after it left: engagement and the ESP's feedback -----------------


class MessageEvent(SQLModel, table=True):
    """One thing that happened to a sent email: an open or a click (our pixel and redirect,
    activities/tracking.py), or what the ESP reported back (a bounce, a complaint, an
    unsubscribe: activities/feedback.py). One row per `dedupe_key`, so a replayed webhook or a
    reloaded pixel counts once. `message_key` (`<run_id>/<seq>`) names the journey step's
    message; None for an ESP event about an address we could not match to a message."""

    __tablename__ = "message_events"
    __table_args__ = (Index("ix_message_events_journey_kind", "journey", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, max_length=255)
    kind: str = Field(max_length=16)
    """"open", "click", "bounce" (hard), "soft_bounce", "complaint" or "unsubscribe"."""
    source: str = Field(max_length=16)
    """"tracking" (our pixel and redirect), "sendgrid", "postmark" or "mandrill"."""
    message_key: str | None = Field(default=None, index=True, max_length=96)
    run_id: str | None = Field(default=None, index=True, max_length=64)
    journey: str | None = Field(default=None, max_length=64)
    step: str | None = Field(default=None, max_length=255)
    variant: str | None = Field(default=None, max_length=64)
    user_id: str | None = Field(default=None, index=True, max_length=255)
    url: str | None = Field(default=None, max_length=2000)
    """A click's target, without its query string or fragment (they may carry tokens)."""
    detail: str | None = Field(default=None, max_length=64)
    """The ESP's own name for it ("HardBounce", "blocked", "spamreport"); never its free text,
    which may quote the address."""
    at: datetime = Field(index=True)
    """When it happened: the ESP's timestamp, or when our pixel or redirect was asked."""
    received_at: datetime = Field(default_factory=utcnow)


Index(
    "ix_outbox_provider_message_id",
    OutboxMessage.__table__.c.provider_message_id,  # type: ignore[attr-defined]
)
"""ESP webhooks find the message they report on by the provider's message ID."""


# Channels beyond email: push devices, per-channel and per-topic subscriptions, SMS STOPs ------


class DeviceRow(SQLModel, table=True):
    """A device a user can get push notifications on: an FCM registration token, from an
    identify (Segment's `context.device.token`, a `push_token` trait) or POST
    /v1/users/{id}/devices. Dropped when FCM answers UNREGISTERED for it."""

    __tablename__ = "devices"

    token: str = Field(primary_key=True, max_length=1024)
    user_id: str = Field(index=True, max_length=255)
    platform: str | None = Field(default=None, max_length=16)
    """"ios", "android" or "web", when the sender said."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SubscriptionRow(SQLModel, table=True):
    """A user's explicit choice for one channel ("email", "sms", "push") and topic ("*": every
    topic of that channel): subscribed (consent given) or not. Email's "unsubscribe from
    everything" stays on profiles.email_unsubscribed_at, where it has always been; this table
    holds topic choices, SMS and push consent, and email opt-ins (JOURNEYS_CONSENT=opt_in)."""

    __tablename__ = "subscriptions"

    user_id: str = Field(primary_key=True, max_length=255)
    channel: str = Field(primary_key=True, max_length=16)
    topic: str = Field(primary_key=True, max_length=64)
    subscribed: bool
    source: str = Field(max_length=255)
    """Who changed it: "api", "identify", "link" (the preference page), "sms_keyword"."""
    updated_at: datetime = Field(default_factory=utcnow)


class SmsOptOut(SQLModel, table=True):
    """A phone number that texted STOP (or another opt-out keyword) to our sender: no SMS goes
    to it, whoever holds it, until it texts START. Only a keyed hash (HMAC-SHA256 with
    JOURNEYS_SECRET_KEY) of the E.164 number is kept, so an erasure leaves nothing here."""

    __tablename__ = "sms_opt_outs"

    phone_hash: str = Field(primary_key=True, max_length=64)
    keyword: str = Field(max_length=16)
    since: datetime = Field(default_factory=utcnow)


ALL_TOPICS = "*"
"""The topic of a subscription row that covers every topic of its channel."""
