"""Entering a journey: assign and record the user's group, and load what the journey may read."""

from __future__ import annotations

from temporalio import activity

from activities.holdout import assign_group
from activities.metrics import count_entry
from activities.store import JourneyRun, Store
from workflows.models import Entry, EntryRequest, Profile

CONTACT_TRAITS = frozenset(
    {"email", "phone", "address", "name", "first_name", "last_name", "firstName", "lastName",
     "username", "birthday"}
)  # fmt: skip
"""Contact details and names (Segment's reserved traits that identify a person): kept out of
workflow histories, which the Temporal UI shows. The send activity reads them itself."""


class EntryActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="enter_journey")
    def enter_journey(self, request: EntryRequest) -> Entry:
        """Record the entry once (a retry returns the recorded group) and snapshot the profile."""
        entered = self.store.enter_run(
            JourneyRun(
                run_id=request.run_id,
                workflow_id=request.workflow_id,
                journey=request.journey,
                user_id=request.user_id,
                group=assign_group(request.journey, request.user_id, request.holdout),
                entered_at=request.entered_at,
                entry_event=request.event.name if request.event else None,
            ),
            reentry=request.reentry,
        )
        if entered.refused is not None:
            return Entry(
                group=None,
                profile=Profile(user_id=request.user_id),
                refused=entered.refused.reason,
            )
        if entered.new:
            count_entry(request.journey, entered.group)  # once per run: a retry finds the row
        return Entry(
            group=entered.group,  # type: ignore[arg-type]
            profile=_profile(request.user_id, entered.traits),
            last_message_at=entered.last_message_at,
        )

    @activity.defn(name="read_profile")
    def read_profile(self, user_id: str) -> Profile:
        """The user's traits as they are now, for `suppress()` before a send (a flag set since
        entry counts); contact details stay out of the history, as at entry."""
        row = self.store.get_profile(user_id)
        return _profile(user_id, row.traits if row is not None else {})


def _profile(user_id: str, traits: dict[str, object]) -> Profile:
    return Profile(
        user_id=user_id, traits={k: v for k, v in traits.items() if k not in CONTACT_TRAITS}
    )
