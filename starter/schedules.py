"""Temporal Schedules for segment-entered journeys: one per journey, kept in step with its code.

The worker calls `ensure_schedules` on startup: a journey with a `segment` gets the schedule
`segment:<journey>` (its cron and time zone), created if missing and updated if the code changed
it, keeping whether an operator paused it. `journeys schedules` lists, pauses, resumes, triggers
and backfills them; the Temporal UI shows them under Schedules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from workflows.journey import Journey
from workflows.models import SegmentRunInput

PREFIX = "segment:"


class UnknownSchedule(Exception):
    """No segment schedule for that journey (it has no segment, or no worker created it)."""


def schedule_id(journey: str, namespace_prefix: str = "") -> str:
    """The schedule of `journey`'s segment."""
    return f"{namespace_prefix}{PREFIX}{journey}"


def build_schedule(journey: type[Journey], task_queue: str, id_prefix: str = "") -> Schedule:
    """The schedule a segment-entered journey should have."""
    segment = journey.segment
    assert segment is not None
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "SegmentEntry",
            SegmentRunInput(journey=journey.name),
            id=f"{id_prefix}{PREFIX}{journey.name}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[segment.cron], time_zone_name=segment.timezone),
        # One run at a time; a run missed while Temporal was down is made up within a day.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
        state=ScheduleState(note=f"segment entry for journey {journey.name}"),
    )


async def ensure_schedules(
    client: Client, journeys: list[type[Journey]], task_queue: str, id_prefix: str = ""
) -> list[str]:
    """Create or update the schedule of every segment-entered journey; returns their IDs."""
    ids = []
    for journey in journeys:
        if journey.segment is None:
            continue
        sid = schedule_id(journey.name, id_prefix)
        schedule = build_schedule(journey, task_queue, id_prefix)
        try:
            await client.create_schedule(sid, schedule)
        except ScheduleAlreadyRunningError:

            def keep_state(
                update: ScheduleUpdateInput, schedule: Schedule = schedule
            ) -> ScheduleUpdate:
                schedule.state = update.description.schedule.state  # an operator's pause stays
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(sid).update(keep_state)
        ids.append(sid)
    return ids


@dataclass(frozen=True)
class ScheduleInfo:
    """One segment schedule as `journeys schedules list` shows it."""

    id: str
    journey: str
    cron: str
    timezone: str
    paused: bool
    note: str
    next_runs: list[datetime]
    recent_runs: list[datetime]


async def describe(client: Client, journey: str, id_prefix: str = "") -> ScheduleInfo:
    handle, desc = await _described(client, journey, id_prefix)
    spec, state = desc.schedule.spec, desc.schedule.state
    return ScheduleInfo(
        id=handle.id,
        journey=journey,
        cron=", ".join([*spec.cron_expressions, *map(_cron_of, spec.calendars)]),
        timezone=spec.time_zone_name or "UTC",
        paused=state.paused,
        note=state.note or "",
        next_runs=list(desc.info.next_action_times[:3]),
        recent_runs=[action.scheduled_at for action in desc.info.recent_actions[-3:]],
    )


async def list_schedules(client: Client, id_prefix: str = "") -> list[ScheduleInfo]:
    """Every segment schedule on the server, by journey name."""
    infos = []
    async for listed in await client.list_schedules():
        if listed.id.startswith(f"{id_prefix}{PREFIX}"):
            journey = listed.id[len(id_prefix) + len(PREFIX) :]
            infos.append(await describe(client, journey, id_prefix))
    return sorted(infos, key=lambda info: info.journey)


async def pause(client: Client, journey: str, note: str | None = None, id_prefix: str = "") -> None:
    await (await _handle(client, journey, id_prefix)).pause(note=note or "paused by journeys CLI")


async def resume(client: Client, journey: str, id_prefix: str = "") -> None:
    await (await _handle(client, journey, id_prefix)).unpause(note="resumed by journeys CLI")


async def trigger(client: Client, journey: str, id_prefix: str = "") -> None:
    """Run the segment now (even while paused, as Temporal's trigger does)."""
    await (await _handle(client, journey, id_prefix)).trigger(
        overlap=ScheduleOverlapPolicy.ALLOW_ALL
    )


async def backfill(
    client: Client, journey: str, start: datetime, end: datetime, id_prefix: str = ""
) -> None:
    """Run the segment for every scheduled time in [start, end), e.g. days an outage missed.

    Each run selects from today's profile store; users already entered are not started again.
    """
    await (await _handle(client, journey, id_prefix)).backfill(
        ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.BUFFER_ALL)
    )


_FULL = {"minute": (0, 59), "hour": (0, 23), "day_of_month": (1, 31), "month": (1, 12),
         "day_of_week": (0, 6)}  # fmt: skip


def _cron_of(calendar: ScheduleCalendarSpec) -> str:
    """The server keeps a cron as a calendar spec; show it as cron again."""
    fields = []
    for name, full in _FULL.items():
        ranges = getattr(calendar, name)
        if not ranges or [(r.start, r.end or r.start, r.step) for r in ranges] == [(*full, 1)]:
            fields.append("*")
            continue
        parts = []
        for r in ranges:
            end = r.end or r.start
            part = str(r.start) if end == r.start else f"{r.start}-{end}"
            parts.append(part if r.step in (0, 1) else f"{part}/{r.step}")
        fields.append(",".join(parts))
    return " ".join(fields)


async def _handle(client: Client, journey: str, id_prefix: str) -> ScheduleHandle:
    """The schedule's handle, once it is known to exist (else UnknownSchedule)."""
    return (await _described(client, journey, id_prefix))[0]


async def _described(
    client: Client, journey: str, id_prefix: str
) -> tuple[ScheduleHandle, ScheduleDescription]:
    handle = client.get_schedule_handle(schedule_id(journey, id_prefix))
    try:
        return handle, await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise UnknownSchedule(
                f"no segment schedule for journey {journey!r}: it has no `segment`, "
                "or no worker has started since it got one"
            ) from err
        raise
