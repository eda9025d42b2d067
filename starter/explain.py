"""A user's story in every journey: why they got, or did not get, each message.

From our database: each run the user entered (journey_runs) with its group, every step it
reached (waits, and sends: sent, held out, or skipped with the reason), each message's delivery
(the outbox row's status and error, never its content or address), its outcome and reason; and
each trigger refused at entry (journey_refusals), with why. The user's journeys running now come
from Temporal (`starter.journey_users.running_of`), so a user still qualifying, of whom nothing
is recorded yet, shows too. Everything links to its workflow run in the Temporal Web UI.

`GET /v1/users/{user_id}/journeys` answers the story as JSON; `journeys explain USER` prints it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from pydantic import BaseModel
from sqlmodel import col, or_, select

from activities.store import JourneyRefusal, JourneyRun, JourneyStepRow, OutboxMessage, Store
from starter.settings import Settings
from workflows.identity import user_key
from workflows.models import Group

HASHED_KEY = re.compile(r"h_[0-9a-f]{32}")
"""The shape of a hashed user key (workflows/identity.py): an operator who has only the key the
listing shows (the user ID was an email address, say) may pass it in place of the user ID."""


class StepView(BaseModel):
    """One step a run reached: a wait (`until`), or a send and what became of it (`detail`
    holds a skipped or failed send's reason)."""

    seq: int
    kind: str
    name: str
    status: str
    at: datetime
    until: datetime | None = None
    detail: str | None = None


class MessageView(BaseModel):
    """A message's delivery as recorded: never its content or the address it went to."""

    seq: int | None
    """The step it belongs to."""
    template: str
    channel: str
    status: str
    provider: str
    error: str | None = None
    passedOver: str | None = None
    """With a choice of channels, those passed over and why: "push: no_device"."""
    at: datetime
    """On the journey's clock."""


class RunView(BaseModel):
    """One entry into a journey: the group, where it got to, how it ended and why."""

    journey: str
    workflowId: str
    runId: str
    group: str
    enteredAt: datetime
    entryEvent: str | None
    step: str
    """The last step reached."""
    messagesSent: int
    outcome: str | None
    """None while the run is still going."""
    outcomeReason: str | None
    outcomeAt: datetime | None
    steps: list[StepView]
    messages: list[MessageView]
    temporalUrl: str


class RefusalView(BaseModel):
    """A trigger that started nothing: refused at entry (inside the re-entry window)."""

    journey: str
    workflowId: str
    runId: str
    at: datetime
    reason: str
    entryEvent: str | None
    lastEnteredAt: datetime | None
    """The entry whose window refused this one."""
    temporalUrl: str


class RunningJourney(BaseModel):
    """A journey of the user's running in Temporal now (entered, or still qualifying)."""

    journey: str
    step: str | None
    group: Group | None
    """None until entered."""
    startedAt: datetime
    workflowId: str
    runId: str
    temporalUrl: str


class UserStory(BaseModel):
    """Every journey the user entered or was refused, and those running now."""

    userId: str
    userKey: str
    """What workflow IDs and the Temporal UI know the user by."""
    runs: list[RunView]
    refusals: list[RefusalView]
    running: list[RunningJourney] = []
    runningError: str | None = None
    """Why `running` could not be read from Temporal (the rest is from the database)."""


def workflow_link(settings: Settings, workflow_id: str, run_id: str) -> str:
    """One workflow run in the Temporal Web UI (JOURNEYS_TEMPORAL_UI_URL)."""
    namespace = quote(settings.temporal_namespace, safe="")
    return (
        f"{settings.temporal_ui()}/namespaces/{namespace}/workflows/"
        f"{quote(workflow_id, safe='')}/{quote(run_id, safe='')}/history"
    )


def story_key(user_id: str) -> str:
    """The key the user is known by in Temporal: the given key itself if it is one."""
    return user_id if HASHED_KEY.fullmatch(user_id) else user_key(user_id)


def user_story(
    store: Store, settings: Settings, user_id: str, journeys: Iterable[str] = ()
) -> UserStory:
    """The user's runs and refusals from the database, oldest first (`running` left empty).

    `journeys`: the loaded journeys' names, to find the rows of a hashed key by workflow ID."""
    by_key = [f"{name}:{user_id}" for name in journeys] if HASHED_KEY.fullmatch(user_id) else []
    with store.session() as session:
        runs = session.exec(
            select(JourneyRun)
            .where(or_(col(JourneyRun.user_id) == user_id, col(JourneyRun.workflow_id).in_(by_key)))
            .order_by(col(JourneyRun.entered_at))
        ).all()
        refusals = session.exec(
            select(JourneyRefusal)
            .where(
                or_(
                    col(JourneyRefusal.user_id) == user_id,
                    col(JourneyRefusal.workflow_id).in_(by_key),
                )
            )
            .order_by(col(JourneyRefusal.at))
        ).all()
        run_ids = [run.run_id for run in runs]
        steps = session.exec(
            select(JourneyStepRow)
            .where(col(JourneyStepRow.run_id).in_(run_ids))
            .order_by(col(JourneyStepRow.seq))
        ).all()
        messages = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.run_id).in_(run_ids))
            .order_by(col(OutboxMessage.id))
        ).all()
    return UserStory(
        userId=user_id,
        userKey=story_key(user_id),
        runs=[_run(settings, run, steps, messages) for run in runs],
        refusals=[_refusal(settings, refusal) for refusal in refusals],
    )


def _run(
    settings: Settings,
    run: JourneyRun,
    steps: Sequence[JourneyStepRow],
    messages: Sequence[OutboxMessage],
) -> RunView:
    return RunView(
        journey=run.journey,
        workflowId=run.workflow_id,
        runId=run.run_id,
        group=run.group,
        enteredAt=_utc(run.entered_at),
        entryEvent=run.entry_event,
        step=run.step,
        messagesSent=run.messages_sent,
        outcome=run.outcome,
        outcomeReason=run.outcome_reason,
        outcomeAt=_utc(run.outcome_at) if run.outcome_at else None,
        steps=[_step(step) for step in steps if step.run_id == run.run_id],
        messages=[_message(m) for m in messages if m.run_id == run.run_id],
        temporalUrl=workflow_link(settings, run.workflow_id, run.run_id),
    )


def _step(step: JourneyStepRow) -> StepView:
    return StepView(
        seq=step.seq,
        kind=step.kind,
        name=step.name,
        status=step.status,
        at=_utc(step.at),
        until=_utc(step.until) if step.until else None,
        detail=step.detail,
    )


def _message(message: OutboxMessage) -> MessageView:
    return MessageView(
        seq=_seq(message.idempotency_key),
        template=message.template,
        channel=message.channel,
        status=message.status,
        provider=message.provider,
        error=message.error,
        passedOver=message.passed_over,
        at=_utc(message.journey_time),
    )


def _refusal(settings: Settings, refusal: JourneyRefusal) -> RefusalView:
    return RefusalView(
        journey=refusal.journey,
        workflowId=refusal.workflow_id,
        runId=refusal.run_id,
        at=_utc(refusal.at),
        reason=refusal.reason,
        entryEvent=refusal.entry_event,
        lastEnteredAt=_utc(refusal.last_entered_at) if refusal.last_entered_at else None,
        temporalUrl=workflow_link(settings, refusal.workflow_id, refusal.run_id),
    )


def render_text(story: UserStory) -> str:
    """The story for a terminal: entries and refusals in time order, then what runs now."""
    lines = [
        f"user {story.userId} (key {story.userKey}): {len(story.runs)} entries, "
        f"{len(story.refusals)} refused, {len(story.running)} running now"
    ]
    events: list[tuple[datetime, list[str]]] = []
    for run in story.runs:
        on = f' on "{run.entryEvent}"' if run.entryEvent else ""
        block = [f"{run.journey}: entered {_when(run.enteredAt)}{on}, group {run.group}"]
        delivered = {m.seq: m for m in run.messages}
        for step in run.steps:
            text = f"  {step.seq:>3}  {step.kind:<12} {step.name:<28} {step.status}"
            if step.until is not None:
                text += f" until {_when(step.until)}"
            if step.detail:
                text += f" ({step.detail})"
            block.append(text)
            message = delivered.get(step.seq) if step.kind == "send" else None
            if message is not None:
                error = f": {message.error}" if message.error else ""
                passed = f" (passed over {message.passedOver})" if message.passedOver else ""
                block.append(
                    f"       {message.channel} via {message.provider}: {message.status}{error}"
                    + passed
                )
        if run.outcome is None:
            block.append(f"  still running, at {run.step!r}")
        else:
            why = f" ({run.outcomeReason})" if run.outcomeReason else ""
            at = f" at {_when(run.outcomeAt)}" if run.outcomeAt else ""
            block.append(f"  outcome: {run.outcome}{why}{at}, {run.messagesSent} sent")
        block.append(f"  {run.temporalUrl}")
        events.append((run.enteredAt, block))
    for refusal in story.refusals:
        on = f' on "{refusal.entryEvent}"' if refusal.entryEvent else ""
        last = f", last entered {_when(refusal.lastEnteredAt)}" if refusal.lastEnteredAt else ""
        block = [
            f"{refusal.journey}: refused {_when(refusal.at)}{on}: {refusal.reason}{last}",
            f"  {refusal.temporalUrl}",
        ]
        events.append((refusal.at, block))
    for _, block in sorted(events, key=lambda pair: pair[0]):
        lines += ["", *block]
    if story.running or story.runningError:
        lines += ["", "running now (Temporal):"]
    if story.runningError:
        lines.append(f"  unknown: {story.runningError}")
    for running in story.running:
        group = running.group or "not entered yet"
        lines.append(
            f"  {running.journey}: step {running.step!r}, {group}, "
            f"started {_when(running.startedAt)}"
        )
        lines.append(f"    {running.temporalUrl}")
    return "\n".join(lines) + "\n"


def _seq(idempotency_key: str) -> int | None:
    """The step of a message: its idempotency key is `workflow/run/seq` (workflows/engine.py)."""
    tail = idempotency_key.rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def _utc(when: datetime) -> datetime:
    """SQLite gives naive datetimes back; every time here is UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _when(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
