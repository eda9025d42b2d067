"""Send-time optimisation: send when each user reads, not when the journey's clock says.

    await self.send("tutorial", at=BestTime(within=timedelta(hours=24)), feature=feature)

Seed 003: a user most active 9-10 AM gets their email at 8:45. The engine asks an activity
(activities/send_time.py) for the next such moment inside `within`, learned from the hours of the
user's own events in their time zone, waits for it on a durable timer (the goal still ends the
journey meanwhile), then sends. Without enough history it uses `default_hour`. Either way the
chosen local hour and whether it was learned are recorded on the message, so the report compares
optimised sends with default ones. Held-out users wait the same, so both groups stay comparable.
"""

from __future__ import annotations

from datetime import timedelta

from workflows.errors import JourneyDefinitionError


class BestTime:
    """When a send should go out: the user's most active hour, within a window.

    Args:
        within: the latest the send may wait, from when the journey reaches it.
        lead: how long before the active hour to send (15 minutes: 8:45 for a 9 AM reader).
        default_hour: the local hour used when the user's history is too thin (0-23).
        min_events: events in the user's history needed to trust a learned hour.
    """

    def __init__(
        self,
        within: timedelta = timedelta(hours=24),
        *,
        lead: timedelta = timedelta(minutes=15),
        default_hour: int = 10,
        min_events: int = 10,
    ) -> None:
        if within <= timedelta(0):
            raise JourneyDefinitionError("BestTime `within` must be a positive timedelta")
        if not timedelta(0) <= lead < timedelta(hours=1):
            raise JourneyDefinitionError("BestTime `lead` must be under an hour")
        if not 0 <= default_hour <= 23:
            raise JourneyDefinitionError("BestTime `default_hour` is a local hour, 0 to 23")
        if min_events < 1:
            raise JourneyDefinitionError("BestTime `min_events` must be positive")
        self.within = within
        self.lead = lead
        self.default_hour = default_hour
        self.min_events = min_events

    def __repr__(self) -> str:
        return f"BestTime(within={self.within}, lead={self.lead}, default_hour={self.default_hour})"
