"""Fault: the email provider answers 5xx for a while, then recovers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from temporalio.testing import TimeSkipper

from starter.routing import Router
from tests.conftest import serving
from tests.faults.harness import DAY, NOW, eventually, new_user, settled, track, walk
from tests.faults.journeys import Flash, Reminder
from tests.providers.servers import CONTRACTS, KEY, Reply, Script, contract_app
from workflows.identity import workflow_id

POSTMARK = CONTRACTS["postmark"]


@dataclass
class Outage(Script):
    """Postmark as it answers during an incident: 503 "retry in a second" while `down`."""

    down: bool = False
    accepted: list[tuple[str, str]] = field(default_factory=list)
    """(recipient, subject) of every message the provider took (answered 200)."""
    refused: list[tuple[str, str]] = field(default_factory=list)

    def next_reply(self) -> Reply:
        doc = self.seen[-1].json()
        message = (str(doc["To"]), str(doc["Subject"]))
        if self.down:
            self.refused.append(message)
            return Reply(
                503, {"ErrorCode": 0, "Message": "Service unavailable"}, {"Retry-After": "1"}
            )
        self.accepted.append(message)
        return Reply(*POSTMARK.ok)


def mail(user: str, step: str) -> tuple[str, str]:
    return (f"{user}@example.test", f"{step} for {user}")


async def test_after_an_outage_each_message_goes_once_late_if_still_fresh_else_skipped(
    temporal, store, task_queue, worker_processes
):
    provider = Outage()
    async with serving(contract_app(provider, POSTMARK.path, POSTMARK.check)) as url:
        worker = worker_processes(
            temporal.client.service_client.config.target_host,
            task_queue,
            store.url,
            JOURNEYS_EMAIL_PROVIDER="postmark",
            JOURNEYS_PROVIDER_API_KEY=KEY,
            JOURNEYS_PROVIDER_BASE_URL=url,
        )
        await worker.start()
        router = Router(temporal.client, store, [Reminder, Flash], task_queue)
        skipper = TimeSkipper(temporal.client)

        def handle(journey: str, user: str) -> Any:
            return temporal.client.get_workflow_handle(workflow_id(journey, user))

        midway = new_user(store, "midway")  # its first message goes before the outage
        await track(router, "Cart Saved", midway)
        await eventually(lambda: mail(midway, "reminder") in provider.accepted, "the reminder")
        await settled(handle("f_reminder", midway))

        provider.down = True
        patient, flash = new_user(store, "patient"), new_user(store, "flash")
        await track(router, "Cart Saved", patient)  # fresh for an hour
        await track(router, "Flash Sale", flash)  # fresh for three seconds
        await skipper.fast_forward(handle("f_reminder", midway), DAY)  # its last call comes due

        def stale() -> bool:
            runs = store.runs(user_id=flash)
            return bool(runs) and any(s.status == "skipped" for s in store.steps(runs[0].run_id))

        await eventually(stale, "the flash message to be given up", 30)
        assert mail(flash, "reminder") in provider.refused  # tried, refused, then given up
        assert mail(patient, "reminder") in provider.refused
        assert mail(midway, "last_call") in provider.refused
        provider.down = False

        def accepted(user: str) -> Any:
            return lambda step: mail(user, step) in provider.accepted

        await asyncio.gather(
            walk(skipper, handle("f_reminder", midway), [(NOW, "last_call")], accepted(midway)),
            walk(skipper, handle("f_reminder", patient), [(NOW, "reminder"), (DAY, "last_call")],
                 accepted(patient)),
            walk(skipper, handle("f_flash", flash), [(DAY, "last_call")], accepted(flash)),
        )  # fmt: skip

    assert sorted(provider.accepted) == sorted(
        [mail(midway, "reminder"), mail(midway, "last_call"), mail(patient, "reminder"),
         mail(patient, "last_call"), mail(flash, "last_call")]
    )  # fmt: skip
    for user in (midway, patient, flash):
        [run] = store.runs(user_id=user)
        assert run.outcome == "completed"
        sends = [(s.name, s.status, s.detail) for s in store.steps(run.run_id) if s.kind == "send"]
        first = ("reminder", "skipped", "stale") if user == flash else ("reminder", "sent", None)
        assert sends == [first, ("last_call", "sent", None)]
        assert [(m.template, m.status) for m in store.outbox(user)] == [
            *([] if user == flash else [("reminder", "sent")]),
            ("last_call", "sent"),
        ]
