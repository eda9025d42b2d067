"""Data at rest: profiles, journey runs and their steps, and the outbox, through SQLModel.

SQLite by default (WAL, so the API and the worker's threads can share it), PostgreSQL in
production: the same tables and queries on both. Every write that an activity makes is
idempotent, so Temporal's retries never record anything twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, create_engine, select


def utcnow() -> datetime:
    return datetime.now(UTC)


class ProfileRow(SQLModel, table=True):
    """A user as we know them: contact details and traits from identify and track context."""

    __tablename__ = "profiles"

    user_id: str = Field(primary_key=True, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class JourneyRun(SQLModel, table=True):
    """One journey entry (treatment or holdout) and where it got to."""

    __tablename__ = "journey_runs"

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
    """A message delivered to the local outbox: one row per (journey run, step), never two."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=255)
    run_id: str = Field(index=True, max_length=64)
    journey: str = Field(index=True, max_length=64)
    user_id: str = Field(index=True, max_length=255)
    template: str = Field(max_length=255)
    recipient: str = Field(max_length=320)
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    journey_time: datetime
    """When the journey sent it, on the journey's clock (virtual under time skipping)."""
    created_at: datetime = Field(default_factory=utcnow)


class Store:
    """The database: an engine, sessions, and the few queries everyone needs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)

    def create_all(self) -> None:
        """Create missing tables (migrations arrive with the deployment work)."""
        SQLModel.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def ping(self) -> None:
        """Raise if the database cannot answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    # Profiles -------------------------------------------------------------------------------

    def get_profile(self, user_id: str) -> ProfileRow | None:
        with self.session() as session:
            return session.get(ProfileRow, user_id)

    def upsert_profile(
        self, user_id: str, *, email: str | None = None, traits: dict[str, Any] | None = None
    ) -> ProfileRow:
        """Merge `traits` (and `email`) into the user's profile, creating it if new."""
        for _ in range(2):  # a concurrent first insert loses the race once, then updates
            with self.session() as session:
                row = session.get(ProfileRow, user_id)
                if row is None:
                    row = ProfileRow(user_id=user_id)
                if traits:
                    row.traits = {**row.traits, **traits}
                if email:
                    row.email = email
                row.updated_at = utcnow()
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    continue
                return row
        raise RuntimeError(f"could not upsert profile {user_id!r}")

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

    def steps(self, run_id: str) -> list[JourneyStepRow]:
        with self.session() as session:
            query = (
                select(JourneyStepRow)
                .where(JourneyStepRow.run_id == run_id)
                .order_by(JourneyStepRow.seq)  # type: ignore[arg-type]
            )
            return list(session.exec(query))

    def outbox(self, user_id: str | None = None) -> list[OutboxMessage]:
        with self.session() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
            if user_id:
                query = query.where(OutboxMessage.user_id == user_id)
            return list(session.exec(query))


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine
