"""Routing an event to journeys: start the ones it triggers, signal the ones that listen.

A trigger event reaches its journey by signal-with-start (one workflow per journey and user, so
a running journey gets the signal and a new one starts otherwise). Any other event a journey
declares interest in (goal, `@on` handlers, `listens`) is signalled to that user's running
journey, and skipped when none runs. A journey whose goal is `ANY_EVENT` (a dormant user coming
back) gets every other event of a user only while that user has an open run entered the way
that goal applies to: the receipt's transaction looks the open runs up (Store._record), so
the other users' events cost it no call. Returns only after Temporal has accepted every call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.store import ProfileRow, ProfileView, Store
from workflows.engine import JourneyWorkflow
from workflows.identity import start_attributes, workflow_id
from workflows.journey import ANY_EVENT, Journey
from workflows.models import Event, JourneyInput, Profile


class TemporalUnavailable(Exception):
    """Temporal refused or could not be reached; nothing about this event is known to be done."""


@dataclass(frozen=True)
class Delivery:
    """What happened to one event for one journey."""

    journey: str
    workflow_id: str
    action: Literal["triggered", "signalled", "not_running"]


class Router:
    """Turns events into Temporal starts and signals for a fixed set of journeys."""

    def __init__(
        self, client: Client, store: Store, journeys: list[type[Journey]], task_queue: str
    ) -> None:
        self.client = client
        self.store = store
        self.journeys = journeys
        self.task_queue = task_queue
        self._by_event: dict[str, list[type[Journey]]] = {}
        for journey in journeys:
            for name in journey.events_of_interest() - {ANY_EVENT}:
                self._by_event.setdefault(name, []).append(journey)
        self._any_event = {
            journey.name: journey
            for journey in journeys
            if any(ANY_EVENT in goal.events for goal in journey.goals())
        }
        self.any_event_journeys = frozenset(self._any_event)
        """Journeys an event of any name may reach, through the user's open run."""

    def concerns(self, event_name: str) -> bool:
        """Whether any journey starts on or listens for this event (else there is no routing)."""
        return event_name in self._by_event

    async def route(
        self,
        event: Event,
        profile: ProfileRow | ProfileView | None = None,
        count: int | None = None,
        open_runs: tuple[tuple[str, str | None], ...] = (),
    ) -> list[Delivery]:
        """Deliver `event` to every journey it concerns; raises if Temporal refuses any call.

        `profile` is the user's profile when the caller has just read it, `count` how many
        such events the user has sent (this one included); else they are loaded. `open_runs`
        are the user's open runs (journey, entry event) among `any_event_journeys`.
        """
        interested = list(self._by_event.get(event.name, []))
        for name, entry in open_runs:
            journey = self._any_event.get(name)
            if journey is None or journey in interested:
                continue
            goal = journey.goal_for(entry)
            if goal is not None and goal.matches(event):
                interested.append(journey)
        if not interested:
            return []
        row = profile or await asyncio.to_thread(self.store.get_profile, event.user_id)
        user = Profile(user_id=event.user_id, traits=row.traits if row else {})
        if row is not None and row.email:
            user.traits.setdefault("email", row.email)
        if count is None and any(j.trigger and j.trigger.nth for j in interested):
            summary = await asyncio.to_thread(self.store.event_summary, event.user_id, event.name)
            count = summary.count if summary else 0
        calls = [
            self._trigger(journey, event)
            if journey.trigger is not None and journey.trigger.matches(event, user, count)
            else self._signal(journey, event)
            for journey in interested
        ]
        try:
            return list(await asyncio.gather(*calls))
        except RPCError as err:
            raise TemporalUnavailable(f"Temporal refused the call ({err.status.name})") from err
        except RuntimeError as err:  # the SDK's "Failed client connect"
            if "connect" not in str(err).lower():
                raise
            raise TemporalUnavailable("Temporal cannot be reached") from err

    async def _trigger(self, journey: type[Journey], event: Event) -> Delivery:
        wid = workflow_id(journey.name, event.user_id)
        await self.client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(journey=journey.name, user_id=event.user_id),
            id=wid,
            task_queue=self.task_queue,
            start_signal="event",
            start_signal_args=[event],
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=start_attributes(journey.name, event.user_id),
        )
        return Delivery(journey.name, wid, "triggered")

    async def _signal(self, journey: type[Journey], event: Event) -> Delivery:
        wid = workflow_id(journey.name, event.user_id)
        try:
            await self.client.get_workflow_handle(wid).signal("event", event)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return Delivery(journey.name, wid, "not_running")
            raise
        return Delivery(journey.name, wid, "signalled")
