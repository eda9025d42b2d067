"""Fault: the journeys database (PostgreSQL) refuses every connection for a while, then returns."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from temporalio.testing import TimeSkipper

from activities.store import ProfileRow, Store
from starter.routing import Router
from tests.faults.harness import (
    DAY,
    NOW,
    HeldMailbox,
    eventually,
    new_user,
    sent_to,
    settled,
    smtp_delivery,
    track,
    walk,
)
from tests.faults.journeys import Drip
from tests.store.databases import POSTGRES_URL, postgres_admin
from workflows.identity import workflow_id
from workflows.models import JourneyState


class Database:
    """A PostgreSQL database of our own on the installed server, which we can take away."""

    def __init__(self) -> None:
        self.admin = postgres_admin()
        self.name = f"faults_{uuid.uuid4().hex[:12]}"
        url = make_url(POSTGRES_URL).set(database=self.name)
        self.url = url.render_as_string(hide_password=False)

    def run(self, statement: str, **values: Any) -> list[Any]:
        """One statement on the server, from outside our database; its rows, if any."""
        with self.admin.connect() as conn:
            result = conn.execute(text(statement), {"name": self.name, **values})
            return list(result.scalars()) if result.returns_rows else []

    def refuse(self) -> None:
        """No new connections, and every open one cut: as if the server had gone away."""
        self.run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name")

    def accept(self) -> None:
        self.run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def waiting_on_a_lock(self) -> list[int]:
        """The backends of our database blocked on a lock."""
        return self.run(
            "SELECT pid FROM pg_stat_activity WHERE datname = :name AND wait_event_type = 'Lock'"
        )

    def cut(self, pid: int) -> None:
        """Drop one connection, as a network fault or a database restart would."""
        self.run("SELECT pg_terminate_backend(:pid)", pid=pid)


@pytest.fixture
def postgres() -> Iterator[tuple[Database, Store]]:
    """A fresh, migrated database of the test's own (so taking it away touches no one else)."""
    database = Database()
    database.run(f'CREATE DATABASE "{database.name}"')
    store = Store(database.url)
    try:
        store.migrate()
        yield database, store
    finally:
        store.dispose()
        database.run(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


async def test_while_the_database_is_away_activities_wait_and_nothing_is_recorded_twice(
    temporal, postgres, smtp, task_queue, worker_processes
):
    database, store = postgres
    mailbox: HeldMailbox = smtp.mailbox
    address = temporal.client.service_client.config.target_host
    router = Router(temporal.client, store, [Drip], task_queue)
    skipper = TimeSkipper(temporal.client)
    worker = worker_processes(address, task_queue, database.url, **smtp_delivery(smtp.port))
    await worker.start()

    def handle(user: str) -> Any:
        return temporal.client.get_workflow_handle(workflow_id("f_drip", user))

    sleeper, mid, newcomer = (new_user(store, p) for p in ("sleeper", "mid", "newcomer"))
    await track(router, "Signed Up", sleeper)
    await eventually(lambda: sent_to(mailbox, sleeper) == ["welcome"], "sleeper's welcome")
    await settled(handle(sleeper))
    mailbox.hold_for.add(f"{mid}@example.test")
    await track(router, "Signed Up", mid)
    await eventually(lambda: sent_to(mailbox, mid) == ["welcome"], "mid's welcome to arrive")

    database.refuse()  # mid's email is with the SMTP server; its "sent" cannot be recorded
    mailbox.hold_for.clear()
    with pytest.raises(OperationalError):
        store.ping()
    profile = ProfileRow(user_id=newcomer, email=f"{newcomer}@example.test")
    await track(router, "Signed Up", newcomer, profile)  # its entry must wait for the database
    await skipper.fast_forward(handle(sleeper), DAY)  # the tips come due with no database

    async def failing(user: str) -> bool:
        """The journey's send has failed on the database and waits to retry."""
        pending = (await handle(user).describe()).raw_description.pending_activities
        return bool(pending) and pending[0].attempt >= 2

    def local_failing(user: str, activity: str) -> bool:
        """A local activity (run inside the worker, so not a pending activity) has failed on
        the database at least twice: the worker logs each failed attempt."""
        wid = repr(workflow_id("f_drip", user))
        attempts = [
            int(found[1])
            for line in worker.log().splitlines()
            if "Completing activity as failed" in line and f"'{activity}'" in line
            and wid in line and (found := re.search(r"'attempt': (\d+)", line))
        ]  # fmt: skip
        return max(attempts, default=0) >= 2

    # Mid's send is in flight: recording it fails and the send activity retries. The sleeper's
    # tips wait one step earlier: the profile read that asks suppress() again before a send.
    await eventually(lambda: failing(mid), f"{mid}'s send to fail", 30)
    await eventually(lambda: local_failing(sleeper, "read_profile"), "sleeper's check", 30)
    await eventually(lambda: local_failing(newcomer, "enter_journey"), "newcomer's entry", 30)
    assert sent_to(mailbox, sleeper) == ["welcome"] and sent_to(mailbox, newcomer) == []
    database.accept()

    def received(user: str) -> Any:
        return lambda step: step in sent_to(mailbox, user)

    async def settle_mid() -> None:
        await eventually(lambda: store.outbox(mid)[0].status != "sending", "mid's retry", 30)
        await walk(skipper, handle(mid), [(DAY, "tips"), (2 * DAY, "offer")], received(mid))

    await asyncio.gather(
        walk(skipper, handle(sleeper), [(NOW, "tips"), (2 * DAY, "offer")], received(sleeper)),
        walk(skipper, handle(newcomer), [(NOW, "welcome"), (DAY, "tips"), (2 * DAY, "offer")],
             received(newcomer)),
        settle_mid(),
    )  # fmt: skip

    for user in (sleeper, mid, newcomer):
        assert sent_to(mailbox, user) == ["welcome", "tips", "offer"]
        [run] = store.runs(user_id=user)
        assert (run.outcome, run.messages_sent) == ("completed", 3)
        assert [(s.kind, s.name, s.status) for s in store.steps(run.run_id)] == [
            ("send", "welcome", "unknown" if user == mid else "sent"),
            ("sleep", "sleep after welcome", "reached"),
            ("send", "tips", "sent"),
            ("sleep", "sleep after tips", "reached"),
            ("send", "offer", "sent"),
        ]
        assert [(m.template, m.status) for m in store.outbox(user)] == [
            ("welcome", "unknown" if user == mid else "sent"),
            ("tips", "sent"),
            ("offer", "sent"),
        ]


@pytest.mark.parametrize("answer", ["accepted", "refused"])
async def test_a_connection_cut_between_a_sends_two_writes_still_records_it_once(
    answer, temporal, postgres, smtp, task_queue, worker_processes
):
    """The outbox row is updated ("sent", or "failed" for an address the server refuses), then
    the connection dies before the step is written: the retry completes the record, so the
    journey's history shows the send as it went, and neither sends again nor counts a refused
    message as sent."""
    database, store = postgres
    mailbox: HeldMailbox = smtp.mailbox
    if answer == "refused":
        mailbox.rcpt_reply = "550 5.1.1 no such user"
    address = temporal.client.service_client.config.target_host
    router = Router(temporal.client, store, [Drip], task_queue)
    worker = worker_processes(address, task_queue, database.url, **smtp_delivery(smtp.port))
    await worker.start()
    user = new_user(store, "cut")
    status = "sent" if answer == "accepted" else "failed"
    sent = 1 if answer == "accepted" else 0

    with store.engine.connect() as blocker:  # no writes to journey_steps until the cut
        blocker.execute(text("LOCK TABLE journey_steps IN SHARE MODE"))
        await track(router, "Signed Up", user)
        await eventually(database.waiting_on_a_lock, "the step's insert to wait on the lock")
        assert [m.status for m in store.outbox(user)] == [status]  # the first write is in
        for pid in database.waiting_on_a_lock():
            database.cut(pid)
        blocker.rollback()

    journey = temporal.client.get_workflow_handle(workflow_id("f_drip", user))

    async def sleeping() -> bool:
        await settled(journey)
        runs = store.runs(user_id=user)
        return bool(runs) and runs[0].step.startswith("sleep")

    await eventually(sleeping, "the journey to go on to its sleep")
    [run] = store.runs(user_id=user)
    assert [(s.kind, s.name, s.status) for s in store.steps(run.run_id)] == [
        ("send", "welcome", status),
        ("sleep", "sleep after welcome" if sent else "sleep", "reached"),  # after what went
    ]
    assert run.messages_sent == sent
    assert (await journey.query("state", result_type=JourneyState)).messages_sent == sent
    assert sent_to(mailbox, user) == (["welcome"] if sent else [])
