"""Fault: the worker process is SIGKILLed with journeys at every kind of step (one mid-send)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.testing import TimeSkipper

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
from tests.faults.journeys import Drip, Nudge
from workflows.identity import JOURNEY_STEP, workflow_id


async def test_a_killed_worker_leaves_each_journey_at_its_place_and_every_email_goes_once(
    temporal, store, smtp, task_queue, worker_processes
):
    mailbox: HeldMailbox = smtp.mailbox
    address = temporal.client.service_client.config.target_host
    router = Router(temporal.client, store, [Drip, Nudge], task_queue)
    skipper = TimeSkipper(temporal.client)

    def handle(journey: str, user: str) -> Any:
        return temporal.client.get_workflow_handle(workflow_id(journey, user))

    async def step(journey: str, user: str) -> str:
        desc = await handle(journey, user).describe()
        return str(desc.typed_search_attributes.get(JOURNEY_STEP))

    first = worker_processes(address, task_queue, store.url, **smtp_delivery(smtp.port))
    await first.start()
    ahead, behind, mid = (new_user(store, p) for p in ("ahead", "behind", "mid"))
    waiting, answered = (new_user(store, p) for p in ("waiting", "answered"))
    for user in (ahead, behind):
        await track(router, "Signed Up", user)
    for user in (waiting, answered):
        await track(router, "Trial Started", user)
    await eventually(lambda: sent_to(mailbox, ahead) == sent_to(mailbox, behind) == ["welcome"],
                     "the welcome emails")  # fmt: skip
    await settled(handle("f_drip", ahead))
    await skipper.fast_forward(handle("f_drip", ahead), DAY)
    await eventually(lambda: sent_to(mailbox, ahead) == ["welcome", "tips"], "ahead's tips")
    mailbox.hold_for.add(f"{mid}@example.test")  # the server takes it, the worker awaits "250"
    await track(router, "Signed Up", mid)
    await eventually(lambda: sent_to(mailbox, mid) == ["welcome"], "mid's welcome to arrive")
    places = {  # where each journey is when the worker dies
        ahead: ("f_drip", "sleep after tips"),
        behind: ("f_drip", "sleep after welcome"),
        mid: ("f_drip", "send welcome"),
        waiting: ("f_nudge", "wait_for Checklist Done"),
        answered: ("f_nudge", "wait_for Checklist Done"),
    }
    for user, (journey, place) in places.items():
        if user != mid:
            await settled(handle(journey, user))
        assert await step(journey, user) == place

    first.kill()  # SIGKILL: mid's send is cut off before "sent" is recorded
    mailbox.hold_for.clear()
    [claimed] = store.outbox(mid)
    assert claimed.status == "sending"
    # With no worker, Temporal still takes events and fires timers; nothing acts on them yet.
    await track(router, "Checklist Done", answered)
    await asyncio.wait_for(skipper.fast_forward(handle("f_drip", behind), DAY), 30)
    await asyncio.sleep(0.5)  # long enough for a (wrongly) surviving worker to send something
    assert sent_to(mailbox, behind) == ["welcome"] and sent_to(mailbox, answered) == []

    second = worker_processes(address, task_queue, store.url, **smtp_delivery(smtp.port))
    await second.start()

    def drip(user: str, plan: list[tuple[timedelta, str]]) -> Any:
        return walk(
            skipper, handle("f_drip", user), plan, lambda step: step in sent_to(mailbox, user)
        )

    def nudge(user: str, plan: list[tuple[timedelta, str]]) -> Any:
        return walk(
            skipper, handle("f_nudge", user), plan, lambda step: step in sent_to(mailbox, user)
        )

    async def settle_mid() -> None:
        """Mid's send times out on the dead worker (30 s, real time) and is settled, not resent."""
        await eventually(lambda: store.outbox(mid)[0].status != "sending", "mid's retry", 60)
        await drip(mid, [(DAY, "tips"), (2 * DAY, "offer")])

    await asyncio.gather(
        drip(ahead, [(2 * DAY, "offer")]),
        drip(behind, [(NOW, "tips"), (2 * DAY, "offer")]),  # its timer fired while down
        nudge(waiting, [(2 * DAY, "nudge")]),
        nudge(answered, [(NOW, "congrats")]),  # the event that came while down is acted on now
        settle_mid(),
    )

    for user in (ahead, behind, mid):
        assert sent_to(mailbox, user) == ["welcome", "tips", "offer"]
    assert sent_to(mailbox, waiting) == ["nudge"]
    assert sent_to(mailbox, answered) == ["congrats"]
    assert [(m.template, m.status) for m in store.outbox(mid)] == [
        ("welcome", "unknown"), ("tips", "sent"), ("offer", "sent"),
    ]  # fmt: skip
    assert {m.status for u in (ahead, behind, waiting, answered) for m in store.outbox(u)} == {
        "sent"
    }
    for user in places:
        [run] = store.runs(user_id=user)
        assert run.outcome == "completed"
        sends = [s.name for s in store.steps(run.run_id) if s.kind == "send"]
        assert sends == [m.template for m in store.outbox(user)]
