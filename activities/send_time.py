"""Send-time optimisation (workflows/send_time.py): the next moment a user is likely to read.

The user's most active local hour comes from the hours of their own events (the per-user event
summaries keep a count per UTC hour of day, by each event's own timestamp), read in their
`timezone` trait (else the deployment's default). The send is aimed `lead` before that hour
(active 9-10 AM: 8:45), at its next occurrence inside the window, outside quiet hours; the next
most active hour is tried when that one does not fit. With fewer than `min_events` events the
journey's `default_hour` is used instead. If no hour fits, the send goes now.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio import activity

from activities.store import Store
from activities.suppression import QuietHours
from workflows.models import SendTime, SendTimeRequest


class SendTimeActivities:
    def __init__(
        self, store: Store, quiet_hours: QuietHours | None = None, default_timezone: str = "UTC"
    ) -> None:
        self.store = store
        self.quiet_hours = quiet_hours
        self.default_timezone = default_timezone

    @activity.defn(name="best_send_time")
    def best_send_time(self, request: SendTimeRequest) -> SendTime:
        """When to send, for the user's history, zone and the window (see the module)."""
        profile = self.store.get_profile(request.user_id)
        traits = profile.traits if profile is not None else {}
        zone_name = traits.get("timezone") if isinstance(traits.get("timezone"), str) else None
        hours = self.store.activity_hours(request.user_id)
        return choose(
            request,
            hours,
            zone_name,
            default_timezone=self.default_timezone,
            quiet_hours=self.quiet_hours,
        )


def choose(
    request: SendTimeRequest,
    hours_utc: dict[int, int],
    timezone: str | None,
    *,
    default_timezone: str = "UTC",
    quiet_hours: QuietHours | None = None,
) -> SendTime:
    """The pure decision, from the user's counts per UTC hour of day."""
    zone = _zone(timezone) or _zone(default_timezone) or ZoneInfo("UTC")
    now = request.at.astimezone(UTC)
    local_counts: Counter[int] = Counter()
    for hour, count in hours_utc.items():
        # Today's offset: good to the hour, as a reader's habits are.
        instant = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        local_counts[instant.astimezone(zone).hour] += count
    if sum(local_counts.values()) >= request.min_events:
        ranked = sorted(local_counts, key=lambda h: (-local_counts[h], h))
        timing = "learned"
    else:
        ranked, timing = [request.default_hour], "default"
    latest = now + request.within
    for hour in ranked:
        at = _next(now, hour, request.lead, zone)
        if at > latest:
            continue
        if quiet_hours is not None and quiet_hours.ends_after(at, zone.key) is not None:
            continue
        return SendTime(at=at, hour=hour, timing="learned" if timing == "learned" else "default")
    return SendTime(at=now, hour=now.astimezone(zone).hour, timing="default")


def _next(now: datetime, hour: int, lead: timedelta, zone: ZoneInfo) -> datetime:
    """The next `hour`:00 local less `lead`; now, if that moment has come and the hour has
    not passed."""
    local = now.astimezone(zone)
    start = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if start - lead <= local < start + timedelta(hours=1):
        return now  # the user is about to be, or is, in their active hour
    aim = start - lead
    if aim < local:
        aim = (start + timedelta(days=1)) - lead
    return aim.astimezone(UTC)


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
