"""Entering a journey: assign and record the user's group, and load what the journey may read.

The programme's global holdout (JOURNEYS_GLOBAL_HOLDOUT, a share; off by default) comes first:
a user it holds out enters every journey that takes part (`global_holdout = True`, the
default) as "holdout", recorded with reason "global", so the journey still watches the goal
and the report can measure the whole programme against them; everyone else is drawn by the
journey's own holdout as before (reason "journey" when held out).
"""

from __future__ import annotations

from temporalio import activity

from activities.holdout import assign_group, in_global_holdout
from activities.metrics import count_entry
from activities.store import JourneyRun, Store
from workflows.models import Entry, EntryRequest, Group, Profile

CONTACT_TRAITS = frozenset(
    {"email", "phone", "address", "name", "first_name", "last_name", "firstName", "lastName",
     "username", "birthday"}
)  # fmt: skip
"""Contact details and names (Segment's reserved traits that identify a person): kept out of
workflow histories, which the Temporal UI shows. The send activity reads them itself."""


class EntryActivities:
    def __init__(self, store: Store, global_holdout: float | None = None) -> None:
        """`global_holdout`: the global holdout's share; None reads JOURNEYS_GLOBAL_HOLDOUT."""
        self.store = store
        if global_holdout is None:
            from starter.settings import Settings

            global_holdout = Settings().global_holdout
        self.global_holdout = global_holdout

    @activity.defn(name="enter_journey")
    def enter_journey(self, request: EntryRequest) -> Entry:
        """Record the entry once (a retry returns the recorded group) and snapshot the profile."""
        group, reason = self._group(request)
        entered = self.store.enter_run(
            JourneyRun(
                run_id=request.run_id,
                workflow_id=request.workflow_id,
                journey=request.journey,
                user_id=request.user_id,
                group=group,
                entered_at=request.entered_at,
                entry_event=request.event.name if request.event else None,
                holdout_reason=reason,
            ),
            reentry=request.reentry,
        )
        if entered.refused is not None:
            return Entry(
                group=None,
                profile=Profile(user_id=request.user_id),
                refused=entered.refused.reason,
            )
        if entered.new and entered.group is not None:  # a run not refused has its group
            count_entry(request.journey, entered.group)  # once per run: a retry finds the row
        return Entry(
            group=entered.group,
            profile=_profile(request.user_id, entered.traits),
            last_message_at=entered.last_message_at,
        )

    def _group(self, request: EntryRequest) -> tuple[Group, str | None]:
        """The user's group in this journey and, held out, why ("global" or "journey")."""
        if in_global_holdout(request.user_id, self.global_holdout) and _takes_part(request.journey):
            return "holdout", "global"
        group = assign_group(request.journey, request.user_id, request.holdout)
        return group, "journey" if group == "holdout" else None

    @activity.defn(name="read_profile")
    def read_profile(self, user_id: str) -> Profile:
        """The user's traits as they are now, for `suppress()` before a send (a flag set since
        entry counts); contact details stay out of the history, as at entry."""
        row = self.store.get_profile(user_id)
        return _profile(user_id, row.traits if row is not None else {})


def _takes_part(journey: str) -> bool:
    """Whether the journey is in the global holdout (a journey not loaded here is)."""
    from workflows import registry
    from workflows.errors import JourneyError

    try:
        return bool(registry.get(journey).global_holdout)
    except JourneyError:
        return True


def _profile(user_id: str, traits: dict[str, object]) -> Profile:
    return Profile(
        user_id=user_id, traits={k: v for k, v in traits.items() if k not in CONTACT_TRAITS}
    )
