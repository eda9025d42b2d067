"""The journey engine: one Temporal workflow runs one journey for one user.

Events reach it as the `event` signal (trigger events by signal-with-start). The engine keeps
every event from the first instant, hands `@on` events to their handlers at once, and watches the
goal throughout: every waiting primitive wakes on the goal and ends the journey, so a purchase
during a sleep, a wait or between sends stops everything that follows. Held-out users run the
same steps with sends recorded but not made, and both groups keep watching the goal until the
attribution window closes. The workflow completes as soon as its outcome is recorded: a trigger
inside the re-entry window starts a new run that the entry refuses (recorded, journey_refusals),
so no workflow stays open to guard the window.

All side effects are activities; this module only decides. The engine's own bookkeeping (the
entry, each step, the outcome) runs as local activities, inside the workflow task that asks for
it, so a write costs the server no round trip of its own (see LOCAL_RECORDS).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn, get_args

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.entry import EntryActivities
    from activities.experiments import ExperimentActivities
    from activities.recording import RecordingActivities
    from activities.send_time import SendTimeActivities
    from activities.sending import SendingActivities
    from workflows import carry, registry
    from workflows.errors import JourneyDefinitionError, JourneyError
    from workflows.experiments import Experiment
    from workflows.identity import (
        JOURNEY_GROUP,
        JOURNEY_NAME,
        JOURNEY_STEP,
        JOURNEY_USER_ID,
        user_key,
    )
    from workflows.journey import EventPredicate, Goal, Journey, JourneyExit
    from workflows.models import (
        AssignRequest,
        Carried,
        Channel,
        EntryRequest,
        Event,
        Group,
        JournalEntry,
        JourneyInput,
        JourneyResult,
        JourneyState,
        Outcome,
        OutcomeRecord,
        PendingWait,
        Profile,
        Removal,
        SendRequest,
        SendTimeRequest,
        StepRecord,
    )
    from workflows.segments import SEGMENT_ENTERED
    from workflows.send_time import BestTime

RECORD_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(seconds=30)),
}
"""Database writes: retried until the database is back; each write is idempotent."""

LOCAL_RECORDS = "records-as-local-activities"
"""Patch ID (docs/deploys.md): from this change on, the entry, step and outcome writes are local
activities. Each is one short, idempotent database transaction, and as a scheduled activity
each cost a round trip through the server (a task queued, started, completed, then a workflow
task to resume): a quarter of the embedded server's CPU per journey. Journeys started before the
change keep their scheduled activities on replay. Sends stay scheduled activities: a provider
call can take seconds, and their retries belong in the Temporal UI's pending activities."""

CLOSE_AT_OUTCOME = "close-at-outcome"
"""Patch ID: the workflow completes once its outcome is recorded. Before it, a journey with a
re-entry window stayed open (step `cooldown`) until the window had passed since entry, refusing
triggers itself; those journeys finish that cooldown on this code, as they began it."""

ENTER_WHEN_QUIET = "enter-when-quiet"
"""Patch ID: a trigger with `quiet_for` enters the user only once the quiet period has run out.
Before it, cart recovery entered at the first add and waited inside its steps; those journeys
keep doing so on this code (the engine waits for them, as their steps did)."""

RECHECK_SUPPRESSION = "recheck-suppression"
"""Patch ID: `suppress()` is asked again, on a fresh profile, before every send."""

CONTINUE_AS_NEW = "continue-as-new"
"""Patch ID: a run whose history nears Temporal's bounds continues as new, carrying the journey
(workflows.models.Carried). Journeys started before it keep one run, as they began."""

SEND_TIME = "send-time-optimisation"
"""Patch ID: `send(..., at=BestTime(...))` waits for the user's best hour. A journey that had
passed its first such send before this code sends at once, as it did."""

HISTORY_BOUND = 10_000
"""Continue as new at this many history events (Temporal warns at 10,240 and terminates the
workflow at 51,200), or earlier when the server suggests it (history bytes)."""

SIGNAL_BOUND = 2_000
"""...or at this many signals to one run: Temporal refuses signals past 10,000 per run, and a
burst keeps arriving while the run hands over (a hand-over fails while signals arrive, and is
tried again with them)."""

MIN_HISTORY = 500
"""A run never continues as new before this many events (a fresh run that the server still
finds too large would otherwise hand over in a loop)."""

CARRIED_EVENTS = 1_000
CARRIED_EVENT_BYTES = 256 * 1024
"""The latest events a new run gets (at most this many, and this many bytes of them), plus the
entry event: enough for `wait_for`, counts and `events`; older ones are counted as dropped."""

CARRIED_IDS = 2_000
"""Message IDs of the latest events, for dedupe across the hand-over (the API dedupes too)."""

CARRIABLE_WAITS = frozenset({"sleep", "wait_for", "inactive_for", "watching_goal"})
"""Waits a run may continue as new in (not quiet hours, which sit inside a send)."""

SEND_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),  # a provider call times out at 10 s
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=5)),
}
"""Sends: retried with backoff; the idempotency key makes a retry a no-op once delivered."""


class _GoalReached(Exception):
    """Unwinds `steps` the moment the goal has arrived."""


class _ContinueAsNew(Exception):
    """Unwinds `steps` (or the qualifying wait) so the run can continue as new."""


@workflow.defn(name="Journey")
class JourneyWorkflow:
    """Runs the journey named in its input for one user; see the module docstring."""

    @workflow.init
    def __init__(self, input: JourneyInput) -> None:
        self._input = input
        self._entered_at = workflow.now()
        self._events: list[Event] = []
        self._arrived: list[datetime] = []
        self._seen: dict[str, None] = {}  # a set that remembers the order, for carrying
        self._last_seen: dict[str, datetime] = {}
        self._consumed: set[str] = set()
        self._entry: Event | None = None
        self._entry_index = -1
        self._goal_event: Event | None = None
        self._goal_at: datetime | None = None
        self._group: Group | None = None
        self._step = "entering"
        self._next_wakeup: datetime | None = None
        self._seq = 0
        self._sent = 0
        self._last_template: str | None = None
        self._outcome: Outcome | None = None
        self._outcome_reason: str | None = None
        self._late_trigger: Event | None = None
        self._removed: str | None = None
        self._refused = 0
        self._error: str | None = None
        self._journey: Journey | None = None
        self._local_records = False
        self._legacy_quiet = False
        # Continue-as-new: see CONTINUE_AS_NEW and _carry.
        self._run_id = ""
        self._may_continue = False
        self._carriable = True
        self._signals = 0
        self._received = 0
        self._dropped = 0
        self._generation = 1
        self._steps_started_at: datetime | None = None
        self._steps_done = False
        self._start_state: dict[str, Any] = {}
        self._start_profile: Profile | None = None
        self._journal: list[JournalEntry] = []
        self._replay: list[JournalEntry] | None = None
        self._replay_clock: datetime | None = None
        self._live: dict[str, Any] = {}
        self._final_counts: tuple[int, str | None] = (0, None)
        self._resumed_wait: PendingWait | None = None
        self._resumed = False
        self._carried: Carried | None = None
        try:
            # The journey's module is imported here, on first use, by design: the registry
            # holds names only, so journeys load inside the sandbox and are checked there.
            with workflow.unsafe.sandbox_import_notification_policy(
                workflow.SandboxImportNotificationPolicy.SILENT
            ):
                self._journey = registry.get(input.journey)()
        except JourneyError as err:
            self._error = str(err)
            return
        self._journey.user_id = input.user_id
        self._journey.event = None
        self._journey.entered_at = self._entered_at
        self._journey._runtime = self
        if input.carried is not None:
            self._restore(input.carried)
        elif input.event is not None:
            self.receive(input.event)

    # Signal and query --------------------------------------------------------------------

    @workflow.signal(name="event")
    def receive(self, event: Event) -> None:
        """Take one event: dedupe it, keep it, and apply goal, handlers and debounce clocks."""
        journey = self._journey
        self._signals += 1
        if journey is None or event.message_id in self._seen:
            return
        if event.user_id != self._input.user_id:
            # Only the router signals, by this user's workflow ID; anything else (a hand-made
            # signal, two user IDs that map to one key) must not move this user's journey.
            workflow.logger.warning("ignored an event for another user (%s)", event.name)
            return
        self._seen[event.message_id] = None
        if self._outcome is not None:
            # The journey has ended: a trigger now is a new entry, or refused in cooldown.
            if event.name in self._trigger_events() and self._late_trigger is None:
                self._late_trigger = event
            return
        self._events.append(event)
        self._received += 1
        self._arrived.append(workflow.now())
        self._last_seen[event.name] = workflow.now()
        if self._entry is None and (
            event.name in self._trigger_events() or event.name == SEGMENT_ENTERED
        ):
            self._entry, self._entry_index = event, len(self._events) - 1
            journey.event = event
        goal = self._goal()
        if (
            goal is not None
            and self._goal_event is None
            and event is not self._entry
            and goal.matches(event)
            and not self._older_than_entry(event)
        ):
            self._goal_event = event
            self._goal_at = workflow.now()
        for method in journey.handlers.get(event.name, ()):
            getattr(journey, method)(event)

    @workflow.signal(name="remove")
    def remove(self, removal: Removal) -> None:
        """Take the user out now (an operator, or an erasure): whatever the journey is waiting
        on wakes, and the run records outcome "exited" with the reason, then completes."""
        if self._outcome is None and self._removed is None:
            self._removed = removal.reason

    @workflow.query(name="state")
    def state(self) -> JourneyState:
        """Where the journey is: step, next wake-up, messages sent, group, outcome."""
        return JourneyState(
            journey=self._input.journey,
            user_id=self._input.user_id,
            group=self._group,
            step=self._step,
            next_wakeup=self._next_wakeup,
            messages_sent=self._sent,
            entered_at=self._entered_at,
            events_received=self._received,
            outcome=self._outcome,
            outcome_reason=self._outcome_reason,
            runs=self._generation,
        )

    # The run -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: JourneyInput) -> JourneyResult:
        """Enter, run the steps, watch the goal to the end of its window, record the outcome."""
        journey = self._journey
        if journey is None:
            raise ApplicationError(
                self._error or "unknown journey", type="UnknownJourney", non_retryable=True
            )
        self._local_records = workflow.patched(LOCAL_RECORDS)
        self._may_continue = workflow.patched(CONTINUE_AS_NEW)
        self._run_id = self._run_id or workflow.info().run_id
        workflow.upsert_search_attributes(
            [
                JOURNEY_NAME.value_set(input.journey),
                JOURNEY_USER_ID.value_set(user_key(input.user_id)),
                JOURNEY_STEP.value_set(self._step),
            ]
        )
        close_at_outcome = True
        if self._resumed and self._group is not None:
            workflow.upsert_search_attributes([JOURNEY_GROUP.value_set(self._group)])
        else:
            try:
                qualified = await self._qualify(journey)
            except _ContinueAsNew:
                self._continue_as_new()
            if not qualified:
                if self._removed is not None:
                    return self._not_entered(self._removed, len(self._events))
                if self._goal_event is not None:
                    after_goal = self._events.index(self._goal_event) + 1
                    return self._not_entered("goal_before_entry", after_goal)
                return self._not_entered("trigger_not_met", len(self._events))
            decided = len(self._events)
            close_at_outcome = workflow.patched(CLOSE_AT_OUTCOME)
            entry = await self._write(
                EntryActivities.enter_journey,
                EntryRequest(
                    run_id=self._run_id,
                    workflow_id=workflow.info().workflow_id,
                    journey=input.journey,
                    user_id=input.user_id,
                    holdout=journey.holdout,
                    entered_at=self._entered_at,
                    event=self._entry,
                    # Journeys that close at their outcome leave the window to the next entry.
                    reentry=journey.reentry if close_at_outcome else None,
                ),
            )
            if entry.refused is not None or entry.group is None:
                return self._not_entered(entry.refused or "refused", decided)
            self._group = journey.group = entry.group
            journey.profile = entry.profile
            journey.last_message_at = entry.last_message_at
            workflow.upsert_search_attributes([JOURNEY_GROUP.value_set(entry.group)])

        try:
            outcome, reason = await self._run_steps(journey)
        except _ContinueAsNew:
            self._continue_as_new()
        except asyncio.CancelledError:
            # Cancelled by an operator (Temporal UI or CLI): record where it stopped, then stop.
            await self._finish("exited", "cancelled")
            raise
        except JourneyDefinitionError as err:
            # A mistake only running could find (wait_for an event not in `listens`): retrying
            # the task would fail the same way forever, so the run fails, visibly, once.
            await self._finish("failed", str(err)[:255])
            raise ApplicationError(
                str(err), type="JourneyDefinitionError", non_retryable=True
            ) from err
        await self._finish(outcome, reason)
        if not close_at_outcome:
            await self._cooldown(journey)
        if self._late_trigger is not None:
            # A trigger arrived as the journey closed, after any re-entry window: enter again.
            workflow.continue_as_new(
                JourneyInput(journey=input.journey, user_id=input.user_id, event=self._late_trigger)
            )
        return JourneyResult(
            outcome=outcome, reason=reason, group=self._group, messages_sent=self._sent
        )

    def _not_entered(self, reason: str, after: int) -> JourneyResult:
        """Close a run that never entered: nothing recorded but (for a refusal) its reason.
        A trigger among the events from index `after` on (they came after the decision, in
        the same workflow task) starts the next run instead of being dropped."""
        self._outcome, self._outcome_reason = "exited", reason
        self._set_step("done", None)
        names = self._trigger_events()
        later = next((e for e in self._events[after:] if e.name in names), None)
        if later is not None:
            workflow.continue_as_new(
                JourneyInput(journey=self._input.journey, user_id=self._input.user_id, event=later)
            )
        return JourneyResult(outcome="not_entered", reason=reason)

    async def _run_steps(self, journey: Journey) -> tuple[Outcome, str | None]:
        if not self._resumed:  # a resumed run passed these checks in its first run
            suppressed = journey.suppress()
            if suppressed:
                return "suppressed", suppressed
            self._begin_journal(journey)
        try:
            if self._legacy_quiet and self._goal_event is None:
                # Entered at the first trigger event before ENTER_WHEN_QUIET: wait as the
                # journey's steps did then.
                trigger = journey.trigger
                assert trigger is not None and trigger.quiet_for is not None
                quiet_on = (*trigger.events, *trigger.restart_on)
                await self.inactive_for(trigger.quiet_for, quiet_on, None)
            if self._goal_event is None and not self._steps_done:
                if self._resumed:
                    self._begin_replay(journey)
                await journey.steps()
                self._steps_done = True
        except _GoalReached:
            pass
        except JourneyExit as exit:
            return ("suppressed" if exit.suppressed else "exited"), exit.reason
        finally:
            self._go_live()  # a replay that ended with the steps (the goal, an exit)
        goal = self._goal()
        if goal is not None and self._goal_event is None:
            window_end = self._entered_at + goal.within
            if workflow.now() < window_end:
                await self._wait(
                    "watching_goal", "watching_goal", window_end, lambda: False, check_goal=False
                )
        if self._goal_event is None:
            if self._removed is not None:
                return "exited", self._removed
            return "completed", None
        if (
            goal is not None
            and self._goal_at is not None
            and self._goal_at <= self._entered_at + goal.within
        ):
            return "converted", self._goal_event.name
        return "exited", "goal_after_window"

    def _goal(self) -> Goal | None:
        """This run's goal, which may depend on how it was entered (Journey.goal_for)."""
        journey = self._journey
        if journey is None:
            return None
        return journey.goal_for(self._entry.name if self._entry is not None else None)

    async def _finish(self, outcome: Outcome, reason: str | None) -> None:
        self._outcome, self._outcome_reason = outcome, reason
        reached = self._step
        self._step, self._next_wakeup = "done", None
        goal_event = self._goal_event if outcome == "converted" else None
        await self._write(
            RecordingActivities.record_outcome,
            OutcomeRecord(
                run_id=self._run_id,
                outcome=outcome,
                at=workflow.now(),
                reason=reason,
                step=reached,
                messages_sent=self._sent,
                goal_at=self._goal_at if goal_event else None,
                revenue=_revenue(goal_event) if goal_event else None,
            ),
        )
        workflow.upsert_search_attributes([JOURNEY_STEP.value_set("done")])

    async def _cooldown(self, journey: Journey) -> None:
        if journey.reentry is None or self._outcome == "suppressed":
            return
        until = self._entered_at + journey.reentry
        if workflow.now() >= until:
            return
        self._set_step("cooldown", until)
        while workflow.now() < until:
            self._late_trigger = None  # triggers inside the window are refused
            try:
                await workflow.wait_condition(
                    lambda: self._late_trigger is not None, timeout=until - workflow.now()
                )
                self._refused += 1
            except TimeoutError:
                break
        self._late_trigger = None
        self._step, self._next_wakeup = "done", None
        workflow.upsert_search_attributes([JOURNEY_STEP.value_set("done")])

    async def _qualify(self, journey: Journey) -> bool:
        """Wait until the trigger is met before entering: `times` matching events within its
        window (entered from the one that completed the count), then `quiet_for` without a
        trigger or `restart_on` event. A goal first, a count window that empties, or the
        journey's `qualifies()` saying no, means the user never entered."""
        trigger = journey.trigger
        if (
            trigger is None
            or not trigger.qualifies_later
            or (self._entry is not None and self._entry.name == SEGMENT_ENTERED)
        ):
            return True
        if trigger.times > 1 and not await self._count_reached(journey, trigger):
            return False
        if trigger.quiet_for is not None:
            if not workflow.patched(ENTER_WHEN_QUIET):
                self._legacy_quiet = True  # entered at once; the wait happens after entry
                return True
            if not await self._quiet_reached(trigger.quiet_for, trigger):
                return False
        if self._goal_event is not None or self._removed is not None:
            return False
        if not journey.qualifies():
            return False
        self._entered_at = journey.entered_at = workflow.now()
        return True

    async def _count_reached(self, journey: Journey, trigger: Any) -> bool:
        window = trigger.within or timedelta(0)
        self._set_step("qualifying", None)
        while True:
            if self._goal_event is not None or self._removed is not None:
                return False
            self._continue_if_due(entered=False)
            now = workflow.now()
            arrived = list(zip(self._arrived, self._events, strict=True))
            completing = trigger.completing(arrived, now)
            if completing is not None:
                index = self._events.index(completing)
                self._entry, self._entry_index = completing, index
                journey.event = completing
                self._entered_at = journey.entered_at = now
                return True
            live = [
                at for at, event in arrived if event.name in trigger.events and at >= now - window
            ]
            if not live:
                return False
            count = len(self._events)
            self._next_wakeup = min(live) + window
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda count=count: (
                        len(self._events) != count  # type: ignore[misc]
                        or self._goal_event is not None
                        or self._removed is not None
                        or self._must_continue()
                    ),
                    timeout=max(min(live) + window - now, timedelta(seconds=1)),
                )

    async def _quiet_reached(self, quiet_for: timedelta, trigger: Any) -> bool:
        """Wait until no trigger or `restart_on` event for `quiet_for`; False if the goal came."""
        names = (*trigger.events, *trigger.restart_on)

        def last_change() -> datetime:
            return self._last_of(names)

        self._set_step("qualifying", None)
        while self._goal_event is None and self._removed is None:
            self._continue_if_due(entered=False)
            last = last_change()
            until = last + quiet_for
            if workflow.now() >= until:
                return True
            self._next_wakeup = until
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda last=last: (  # type: ignore[misc]
                        self._goal_event is not None
                        or self._removed is not None
                        or last_change() != last
                        or self._must_continue()
                    ),
                    timeout=until - workflow.now(),
                )
        return False

    def _trigger_events(self) -> tuple[str, ...]:
        journey = self._journey
        return journey.trigger.events if journey is not None and journey.trigger else ()

    # The runtime the Journey primitives call ------------------------------------------------

    def now(self) -> datetime:
        # While a resumed run replays its completed steps, the time they ran at.
        return self._replay_clock or workflow.now()

    @property
    def events(self) -> list[Event]:
        return list(self._events)

    @property
    def messages_sent(self) -> int:
        return self._sent

    async def sleep_until(self, when: datetime, step: str | None) -> None:
        if self._replayed("sleep") is not None:
            return
        await self._wait("sleep", step or self._label("sleep"), when, lambda: False)
        self._journal_add("sleep")

    async def wait_for(
        self,
        events: tuple[str, ...],
        timeout: timedelta,
        where: EventPredicate | None,
        step: str | None,
    ) -> Event | None:
        scanned = self._entry_index + 1

        def find() -> Event | None:
            # Resumes where it stopped: it runs after every activation, and a chatty user's
            # thousands of events would otherwise make each one cost the whole list.
            nonlocal scanned
            while scanned < len(self._events):
                event = self._events[scanned]
                if (
                    event.name in events
                    and event.message_id not in self._consumed
                    and (where is None or where(event))
                ):
                    return event
                scanned += 1
            return None

        until = self.now() + timeout  # from when the steps called it, in a resumed run too
        replayed = self._replayed("wait_for")
        if replayed is not None:
            return replayed.event
        label = step or self._label("wait_for " + " | ".join(events))
        await self._wait("wait_for", label, until, lambda: find() is not None)
        found = find()
        if found is not None:
            self._consumed.add(found.message_id)
        self._journal_add("wait_for", event=found)
        return found

    async def inactive_for(
        self, duration: timedelta, events: tuple[str, ...], step: str | None
    ) -> None:
        if self._replayed("inactive_for") is not None:
            return
        label = step or self._label("inactive_for")

        def last_activity() -> datetime:
            return self._last_of(events)

        first = True
        while True:
            last = last_activity()
            await self._wait(
                "inactive_for",
                label,
                last + duration,
                lambda last=last: last_activity() != last,  # type: ignore[misc]
                record=first,
            )
            first = False
            if workflow.now() >= last_activity() + duration:
                self._journal_add("inactive_for")
                return

    async def send(
        self,
        template: str,
        context: dict[str, Any],
        *,
        channel: Channel | tuple[Channel, ...] = "email",
        marketing: bool = True,
        fresh_for: timedelta | None = None,
        variant: str | None = None,
        at: BestTime | None = None,
    ) -> bool:
        channels = _channels(channel, template)
        replayed = self._replayed("send")
        if replayed is not None:
            return bool(replayed.delivered)
        self._check_goal()
        timing = None
        if at is not None and workflow.patched(SEND_TIME):
            timing = await self._write(
                SendTimeActivities.best_send_time,
                SendTimeRequest(
                    user_id=self._input.user_id,
                    at=workflow.now(),
                    within=at.within,
                    lead=at.lead,
                    default_hour=at.default_hour,
                    min_events=at.min_events,
                ),
            )
            # Both groups wait alike; the goal still ends the journey meanwhile.
            label = f"best time for {template}"
            await self._wait("best_time", label, timing.at, lambda: False)
        await self._recheck_suppression()
        label = f"send {template}"
        seq = self._next_seq()
        self._set_step(label, None)
        info = workflow.info()
        if self._group == "holdout":
            await self._record(
                StepRecord(
                    run_id=self._run_id,
                    seq=seq,
                    kind="send",
                    name=template,
                    at=workflow.now(),
                    status="held_out",
                    detail=f"variant {variant}" if variant else None,
                )
            )
            self._last_template = template  # same step names in both groups
            self._journal_add("send", delivered=False)
            self._check_goal()
            return False
        journey = self._journey
        freshness = fresh_for or (journey.freshness if journey is not None else None)
        while True:
            request = SendRequest(
                idempotency_key=f"{info.workflow_id}/{self._run_id}/{seq}",
                run_id=self._run_id,
                seq=seq,
                journey=self._input.journey,
                user_id=self._input.user_id,
                template=template,
                context=context,
                at=workflow.now(),
                channel=channels[0],
                channels=list(channels) if len(channels) > 1 else None,
                topic=journey.topic if journey is not None else None,
                marketing=marketing,
                event=self._entry.properties if self._entry is not None else {},
                fresh_for=freshness,
                variant=variant,
                send_hour=timing.hour if timing is not None else None,
                timing=timing.timing if timing is not None else None,
            )
            result = await workflow.execute_activity_method(
                SendingActivities.send_message, request, **SEND_OPTIONS
            )
            if result.status != "deferred" or result.retry_at is None:
                break
            # Quiet hours or the send rate's slot: wait on a durable timer; the goal may end it
            # first. Both are recorded as kind "quiet_hours"; the label says which it is.
            why = "send rate" if result.reason == "throttled" else "quiet hours"
            await self._wait(
                "quiet_hours", f"{why} before {template}", result.retry_at, lambda: False
            )
            self._set_step(label, None)
        delivered = result.status in ("sent", "duplicate")
        if delivered:
            self._sent += 1
            self._last_template = template
        self._journal_add("send", delivered=delivered)
        self._check_goal()
        return delivered

    async def variant(self, experiment: Experiment) -> str:
        replayed = self._replayed("variant")
        if replayed is not None:
            return replayed.variant or experiment.baseline
        self._check_goal()
        if workflow.patched(f"experiment-{experiment.name}"):
            assignment = await self._write(
                ExperimentActivities.assign_variant,
                AssignRequest(
                    run_id=self._run_id,
                    seq=self._next_seq(),
                    journey=self._input.journey,
                    user_id=self._input.user_id,
                    group=self._group or "treatment",
                    experiment=experiment.name,
                    weights=experiment.weights,
                    auto_winner=experiment.auto_winner,
                    alpha=experiment.alpha,
                    min_entries=experiment.min_entries,
                    effect=experiment.effect,
                    at=workflow.now(),
                ),
            )
            chosen = str(assignment.variant)
        else:
            # A journey that had passed this point before the experiment was added to it:
            # its history has no assignment here, so it keeps the baseline, unrecorded.
            chosen = experiment.baseline
        self._journal_add("variant", variant=chosen)
        return chosen

    # Internals ------------------------------------------------------------------------------

    async def _recheck_suppression(self) -> None:
        """Ask `suppress()` again on the user's profile as it is now, before a send (both
        groups alike); a reason ends the journey, outcome "exited" with that reason."""
        journey = self._journey
        if journey is None or not workflow.patched(RECHECK_SUPPRESSION):
            return
        journey.profile = await workflow.execute_local_activity_method(
            EntryActivities.read_profile, self._input.user_id, **RECORD_OPTIONS
        )
        reason = journey.suppress()
        if reason:
            raise JourneyExit(reason)

    async def _wait(
        self,
        kind: str,
        label: str,
        until: datetime,
        done: Callable[[], bool],
        *,
        check_goal: bool = True,
        record: bool = True,
    ) -> None:
        """Wait until `until` or `done()`; the goal's arrival always cuts the wait short."""
        if check_goal:
            self._check_goal()
        self._set_step(label, until)
        resumed, self._resumed_wait = self._resumed_wait, None
        if resumed is not None and (resumed.kind, resumed.label) == (kind, label):
            record = False  # the run this one continues wrote its step row
        if record:
            await self._record(
                StepRecord(
                    run_id=self._run_id,
                    seq=self._next_seq(),
                    kind=kind,
                    name=label,
                    at=workflow.now(),
                    until=until,
                )
            )
        carriable = kind in CARRIABLE_WAITS
        while True:
            remaining = until - workflow.now()
            if remaining > timedelta(0) and not done():
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: (
                            self._goal_event is not None
                            or self._removed is not None
                            or done()
                            or (carriable and self._must_continue())
                        ),
                        timeout=remaining,
                    )
            if (
                carriable
                and self._goal_event is None
                and self._removed is None
                and not done()
                and workflow.now() < until
                and self._must_continue()
            ):
                pending = PendingWait(kind=kind, label=label, until=until)
                self._continue_if_due(entered=True, pending=pending)
                continue  # not carriable after all (_carry logged why): keep waiting
            break
        self._next_wakeup = None
        if check_goal:
            self._check_goal()

    # Continue-as-new ------------------------------------------------------------------------

    def _must_continue(self) -> bool:
        """Whether this run should hand over to a new one (CONTINUE_AS_NEW's bounds)."""
        if not self._may_continue or not self._carriable:
            return False
        if self._signals >= SIGNAL_BOUND:
            return True
        info = workflow.info()
        length = info.get_current_history_length()
        return length >= MIN_HISTORY and (
            length >= HISTORY_BOUND or info.is_continue_as_new_suggested()
        )

    def _continue_if_due(self, *, entered: bool, pending: PendingWait | None = None) -> None:
        """Raise _ContinueAsNew, with the hand-over prepared, if this run should hand over."""
        if self._must_continue():
            self._carried = self._carry(entered, pending)
            if self._carried is not None:
                raise _ContinueAsNew()

    def _continue_as_new(self) -> NoReturn:
        assert self._carried is not None
        workflow.continue_as_new(
            JourneyInput(
                journey=self._input.journey, user_id=self._input.user_id, carried=self._carried
            )
        )

    def _carry(self, entered: bool, pending: PendingWait | None) -> Carried | None:
        """What the next run needs: the journey's state, its latest events, and the journal of
        completed steps it replays. None (and this run keeps going) if the state cannot be
        carried exactly."""
        journey = self._journey
        assert journey is not None
        try:
            state = carry.snapshot(journey)
        except carry.NotCarriable as err:
            self._not_carriable(err)
            return None
        keep: list[int] = []
        size = 0
        for index in range(len(self._events) - 1, -1, -1):
            size += len(self._events[index].model_dump_json())
            if size > CARRIED_EVENT_BYTES or len(keep) >= CARRIED_EVENTS:
                break
            keep.append(index)
        keep.reverse()
        if self._entry_index >= 0 and self._entry_index not in keep:
            keep.insert(0, self._entry_index)
        events = [self._events[i] for i in keep]
        ids = {event.message_id for event in events}
        seen = list(self._seen)[-CARRIED_IDS:]
        return Carried(
            run_id=self._run_id,
            generation=self._generation + 1,
            entered=entered,
            entered_at=self._entered_at,
            entry=self._entry,
            events=events,
            arrived=[self._arrived[i] for i in keep],
            seen=seen,
            last_seen=self._last_seen,
            consumed=sorted(self._consumed & ids),
            dropped=self._dropped + len(self._events) - len(events),
            received=self._received,
            goal_event=self._goal_event,
            goal_at=self._goal_at,
            group=self._group,
            profile=journey.profile if entered else None,
            last_message_at=journey.last_message_at if entered else None,
            seq=self._seq,
            sent=self._sent,
            last_template=self._last_template,
            step=self._step,
            steps_started_at=self._steps_started_at,
            steps_done=self._steps_done,
            start_state=self._start_state,
            start_profile=self._start_profile,
            journal=self._journal,
            state=state,
            pending=pending,
        )

    def _restore(self, carried: Carried) -> None:
        """Take up where the previous run handed over (called from __init__)."""
        journey = self._journey
        assert journey is not None
        self._run_id = carried.run_id
        self._generation = carried.generation
        self._entered_at = journey.entered_at = carried.entered_at
        self._events = list(carried.events)
        self._arrived = list(carried.arrived)
        self._seen = dict.fromkeys([*carried.seen, *(e.message_id for e in carried.events)])
        self._last_seen = dict(carried.last_seen)
        self._consumed = set(carried.consumed)
        self._dropped = carried.dropped
        self._received = carried.received
        self._entry = journey.event = carried.entry
        if carried.entry is not None:
            ids = [event.message_id for event in self._events]
            self._entry_index = ids.index(carried.entry.message_id)
        self._goal_event, self._goal_at = carried.goal_event, carried.goal_at
        self._seq, self._sent = carried.seq, carried.sent
        self._last_template, self._step = carried.last_template, carried.step
        self._steps_started_at, self._steps_done = carried.steps_started_at, carried.steps_done
        self._start_state, self._start_profile = carried.start_state, carried.start_profile
        self._journal = list(carried.journal)
        self._resumed_wait = carried.pending
        self._resumed = carried.entered
        if carried.entered:
            assert carried.group is not None and carried.profile is not None
            self._group = journey.group = carried.group
            journey.profile = carried.profile
            journey.last_message_at = carried.last_message_at
        carry.restore(journey, carried.state)

    def _begin_journal(self, journey: Journey) -> None:
        """Note the journey as its steps begin: where a resumed run's replay starts from."""
        if not self._may_continue:
            return
        self._steps_started_at = workflow.now()
        try:
            self._start_state = carry.snapshot(journey)
        except carry.NotCarriable as err:
            self._not_carriable(err)
        self._start_profile = journey.profile

    def _journal_add(
        self,
        kind: Any,
        *,
        delivered: bool | None = None,
        event: Event | None = None,
        variant: str | None = None,
    ) -> None:
        """Note a completed primitive, for a run that continues as new to replay."""
        journey = self._journey
        if not self._may_continue or not self._carriable or journey is None:
            return
        try:
            state = carry.snapshot(journey)
        except carry.NotCarriable as err:
            self._not_carriable(err)
            return
        self._journal.append(
            JournalEntry(
                kind=kind,
                at=workflow.now(),
                delivered=delivered,
                event=event,
                variant=variant,
                sent=self._sent,
                last_template=self._last_template,
                state=state,
                profile=journey.profile,
            )
        )

    def _begin_replay(self, journey: Journey) -> None:
        """Run `steps` again from the top in a resumed run: each primitive the earlier runs
        completed returns what it returned then, at the time it returned, with the journey's
        state as it was then; the first one not in the journal goes live (_replayed)."""
        self._live = dict(vars(journey))
        self._final_counts = (self._sent, self._last_template)
        self._replay = list(self._journal)
        self._replay_clock = self._steps_started_at
        self._sent, self._last_template = 0, None
        carry.restore(journey, self._start_state)
        if self._start_profile is not None:
            journey.profile = self._start_profile

    def _replayed(self, kind: str) -> JournalEntry | None:
        """In a replay, the journal's answer for this primitive; None when it runs live."""
        if self._replay is None:
            return None
        if not self._replay:
            self._go_live()
            return None
        entry = self._replay.pop(0)
        if entry.kind != kind:
            raise JourneyDefinitionError(
                f"resuming {self._input.journey}: its steps called {kind} where the run had "
                f"{entry.kind}; the journey's steps changed while it ran (docs/deploys.md)"
            )
        journey = self._journey
        assert journey is not None
        self._replay_clock = entry.at
        self._sent, self._last_template = entry.sent, entry.last_template
        carry.restore(journey, entry.state)
        if entry.profile is not None:
            journey.profile = entry.profile
        return entry

    def _go_live(self) -> None:
        """End a replay: the journey's state, clock and counts are this run's again."""
        journey = self._journey
        if self._replay is None or journey is None:
            return
        self._replay, self._replay_clock = None, None
        vars(journey).clear()
        vars(journey).update(self._live)
        self._sent, self._last_template = self._final_counts

    def _not_carriable(self, err: Exception) -> None:
        if self._carriable:
            workflow.logger.warning(
                "%s keeps one run (it cannot continue as new): %s", self._input.journey, err
            )
        self._carriable = False

    async def _record(self, step: StepRecord) -> None:
        await self._write(RecordingActivities.record_step, step)

    async def _write(self, activity: Callable[..., Any], arg: Any) -> Any:
        """One of the engine's own database writes: a local activity on this code, a scheduled
        one when replaying a journey that started before LOCAL_RECORDS."""
        if self._local_records:
            return await workflow.execute_local_activity_method(activity, arg, **RECORD_OPTIONS)
        return await workflow.execute_activity_method(activity, arg, **RECORD_OPTIONS)

    def _last_of(self, names: tuple[str, ...]) -> datetime:
        """When the latest of these events arrived, or the entry time if none has."""
        seen = [self._last_seen[name] for name in names if name in self._last_seen]
        return max([self._entered_at, *seen])

    def _check_goal(self) -> None:
        if self._goal_event is not None:
            raise _GoalReached()
        if self._removed is not None:
            raise JourneyExit(self._removed)

    def _set_step(self, label: str, wakeup: datetime | None) -> None:
        self._step, self._next_wakeup = label, wakeup
        workflow.upsert_search_attributes([JOURNEY_STEP.value_set(label)])

    def _label(self, kind: str) -> str:
        """A step's default name: the primitive, and which message it follows."""
        return f"{kind} after {self._last_template}" if self._last_template else kind

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _older_than_entry(self, event: Event) -> bool:
        """A goal stamped before the entry event happened before the journey: it does not count."""
        return self._entry is not None and event.timestamp < self._entry.timestamp


def _revenue(event: Event) -> float | None:
    """The goal's revenue: its `revenue`, `value` or `total` property, whichever comes first."""
    for key in ("revenue", "value", "total"):
        value = event.properties.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


CHANNELS = frozenset(get_args(Channel))


def _channels(channel: Channel | tuple[Channel, ...], template: str) -> tuple[Channel, ...]:
    """A send's channel, or its choice of channels in order, checked: an unknown channel or an
    empty or repeating choice is the author's mistake, named at the step that makes it."""
    channels = (channel,) if isinstance(channel, str) else tuple(channel)
    unknown = [c for c in channels if c not in CHANNELS]
    if not channels or unknown or len(set(channels)) != len(channels):
        raise JourneyDefinitionError(
            f"send({template!r}): channel must be one of {sorted(CHANNELS)} or a tuple of "
            f'different ones, like ("push", "email"); got {channel!r}'
        )
    return channels
