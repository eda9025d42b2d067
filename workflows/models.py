"""The data that crosses the workflow boundary: events in, state out, activity contracts.

Every workflow, signal, query and activity takes one pydantic model, so a field can be added
later without breaking the histories of journeys already running.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Group = Literal["treatment", "holdout"]
"""A user's arm of a journey's holdout test."""

Channel = Literal["email", "in_app", "webhook", "audience", "sms", "push"]
"""Where a message goes: the ESP, the app's inbox (GET /v1/users/{id}/messages), a webhook,
the user's member in a Mailchimp audience (merge fields and tags: activities/audiences.py), a
text message (Twilio) or a push notification to the user's devices (FCM)."""

Outcome = Literal["converted", "completed", "exited", "suppressed", "failed"]
"""How a journey ended: goal reached in its window, ran to the end, left early, never began
(suppressed), or stopped on an error in the journey's definition found at run time (failed)."""


class Event(BaseModel):
    """One thing a user did, as a journey sees it (a Segment track call, normalised)."""

    model_config = ConfigDict(frozen=True)

    name: str
    user_id: str
    message_id: str
    timestamp: datetime
    properties: dict[str, Any] = Field(default_factory=dict)


class Profile(BaseModel):
    """What a journey may branch on about its user: traits without contact details."""

    user_id: str
    traits: dict[str, Any] = Field(default_factory=dict)


class JournalEntry(BaseModel):
    """One primitive a journey's `steps` completed, as a run that continues as new replays it:
    what it returned, when, and the journey's own state and profile at that moment."""

    kind: Literal["sleep", "wait_for", "inactive_for", "send", "variant"]
    at: datetime
    delivered: bool | None = None
    """A send's answer."""
    event: Event | None = None
    """A wait_for's answer."""
    variant: str | None = None
    """A variant's answer."""
    sent: int
    last_template: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    profile: Profile | None = None


class PendingWait(BaseModel):
    """The wait a run continued as new in: its step row is written already."""

    kind: str
    label: str
    until: datetime


class Carried(BaseModel):
    """What a journey's run hands the next one when it continues as new (its history nears
    Temporal's bounds): the journey's state, its latest events and the steps it completed."""

    run_id: str
    """The run the entry was recorded under: records and idempotency keys keep using it."""
    generation: int = 1
    entered: bool
    entered_at: datetime
    entry: Event | None = None
    events: list[Event] = Field(default_factory=list)
    arrived: list[datetime] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    last_seen: dict[str, datetime] = Field(default_factory=dict)
    consumed: list[str] = Field(default_factory=list)
    dropped: int = 0
    """Events received in earlier runs and not carried (the oldest, past the budget)."""
    received: int = 0
    """Events received over all runs, duplicates not counted."""
    goal_event: Event | None = None
    goal_at: datetime | None = None
    group: Group | None = None
    profile: Profile | None = None
    last_message_at: datetime | None = None
    seq: int = 0
    sent: int = 0
    last_template: str | None = None
    step: str = "entering"
    steps_started_at: datetime | None = None
    steps_done: bool = False
    start_state: dict[str, Any] = Field(default_factory=dict)
    start_profile: Profile | None = None
    journal: list[JournalEntry] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)
    pending: PendingWait | None = None


class JourneyInput(BaseModel):
    """Starts one journey for one user; the entry event usually arrives as the start signal.
    A run that continued as new gets `carried` instead."""

    journey: str
    user_id: str
    event: Event | None = None
    carried: Carried | None = None


class Removal(BaseModel):
    """The `remove` signal: an operator (or an erasure) takes the user out of the journey now;
    the run records outcome "exited" with `reason` and completes."""

    reason: str = Field(default="removed", min_length=1, max_length=64)


class JourneyState(BaseModel):
    """A running journey's answer to the `state` query (shown in the Temporal UI)."""

    journey: str
    user_id: str
    group: Group | None
    step: str
    next_wakeup: datetime | None
    messages_sent: int
    entered_at: datetime
    events_received: int
    outcome: Outcome | None = None
    outcome_reason: str | None = None
    runs: int = 1
    """Runs so far: a long-lived journey continues as new when its history nears the bounds."""


class JourneyResult(BaseModel):
    """What a finished journey workflow returns ("not_entered": its trigger's count or quiet
    period was never met, or the entry was refused inside the re-entry window; no run was
    recorded)."""

    outcome: Outcome | Literal["not_entered"]
    reason: str | None = None
    group: Group | None = None
    messages_sent: int = 0


# Activity contracts ---------------------------------------------------------------------------


class EntryRequest(BaseModel):
    """Asks the entry activity to assign the group, record the entry and load the profile."""

    run_id: str
    workflow_id: str
    journey: str
    user_id: str
    holdout: float
    entered_at: datetime
    event: Event | None = None
    reentry: timedelta | None = None
    """The journey's re-entry window: an entry within it of the user's last one is refused."""


class Entry(BaseModel):
    """The entry activity's answer: the user's group (recorded) and profile snapshot, or the
    reason the entry was refused (no group, no run: the user is in neither arm)."""

    group: Group | None
    profile: Profile
    last_message_at: datetime | None = None
    """This journey's latest message to the user in an earlier run, sent or held out."""
    refused: str | None = None


class StepRecord(BaseModel):
    """One step a journey reached: a wait, a skipped send, a held-out send."""

    run_id: str
    seq: int
    kind: str
    name: str
    at: datetime
    status: str = "reached"
    until: datetime | None = None
    detail: str | None = None


class SendRequest(BaseModel):
    """One message a journey wants delivered once: `idempotency_key` is unique per run and step."""

    idempotency_key: str
    run_id: str
    seq: int
    journey: str
    user_id: str
    template: str
    context: dict[str, Any] = Field(default_factory=dict)
    at: datetime
    channel: Channel = "email"
    marketing: bool = True
    event: dict[str, Any] = Field(default_factory=dict)
    """The entry event's properties, for personalisation."""
    fresh_for: timedelta | None = None
    """Give up (skipped, "stale") once attempts have failed for this long."""
    variant: str | None = None
    """The A/B/n variant this message belongs to (its templates, its row in the report)."""
    send_hour: int | None = None
    """With send-time optimisation: the user's local hour it was timed for."""
    timing: Literal["learned", "default"] | None = None
    """...and whether that hour was learned from the user's events or the journey's default."""
    channels: list[Channel] | None = None
    """Channel choice: the channels to try in order; the first the user can be reached on and
    consents to is used (`channel` is the first of them, for older readers)."""
    topic: str | None = None
    """The journey's subscription topic ("offers", "product_updates"): a recipient who left it
    gets no marketing message of it."""


class SendResult(BaseModel):
    """Whether the message went out now, had already gone out, was not sent (and why), or
    must wait: "deferred" until `retry_at` (quiet hours), which the journey sleeps out."""

    status: Literal["sent", "duplicate", "skipped", "failed", "deferred"]
    message_id: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None
    channel: Channel | None = None
    """The channel it went (or would go) by: with channel choice, the one chosen."""
    passed_over: dict[str, str] = Field(default_factory=dict)
    """With channel choice: each channel tried before it, and why it was passed over."""


class AssignRequest(BaseModel):
    """Asks for a run's variant of one experiment, recorded with the run and as a step."""

    run_id: str
    seq: int
    journey: str
    user_id: str
    group: Group
    experiment: str
    weights: dict[str, float]
    auto_winner: bool = False
    alpha: float = 0.05
    min_entries: int = 200
    effect: float = 0.02
    at: datetime


class Assignment(BaseModel):
    """The variant, and why: "assigned" (by the user's hash) or "winner" (the test decided)."""

    variant: str
    reason: Literal["assigned", "winner"] = "assigned"


class SendTimeRequest(BaseModel):
    """Asks when to send: the user's most active hour (less a lead) within a window."""

    user_id: str
    at: datetime
    within: timedelta
    lead: timedelta
    default_hour: int
    min_events: int


class SendTime(BaseModel):
    """The moment chosen, the local hour it was aimed at, and whether it was learned."""

    at: datetime
    hour: int
    timing: Literal["learned", "default"]


class OutcomeRecord(BaseModel):
    """A journey's end, recorded once per run."""

    run_id: str
    outcome: Outcome
    at: datetime
    reason: str | None = None
    step: str
    messages_sent: int
    goal_at: datetime | None = None
    revenue: float | None = None


# Segment entry --------------------------------------------------------------------------------


class SegmentPageRequest(BaseModel):
    """One page of a segment run: users after `after` (in ID order), as of the run's time."""

    journey: str
    as_of: datetime
    after: str | None = None
    limit: int | None = None
    """Users per page; default the segment's `page_size`."""


class SegmentPage(BaseModel):
    """What one page did: selected users, journeys started, and users already in the journey."""

    selected: int
    started: int
    already_in: int
    next_after: str | None = None
    """Where the next page starts; None when this was the last page."""


class SegmentProgress(BaseModel):
    """A segment run so far (the `progress` query, and the run's result)."""

    journey: str
    as_of: datetime
    pages: int = 0
    selected: int = 0
    started: int = 0
    already_in: int = 0
    done: bool = False


class SegmentRunInput(BaseModel):
    """Starts (or, after continue-as-new, resumes) one run of a journey's segment."""

    journey: str
    as_of: datetime | None = None
    """Default: the run's start time."""
    after: str | None = None
    progress: SegmentProgress | None = None
    page_size: int | None = None
