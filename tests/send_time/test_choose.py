"""Choosing the send time from a user's own event hours (seed 003: active 9-10 AM, 8:45)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from activities.send_time import choose
from activities.suppression import QuietHours
from workflows.models import SendTimeRequest

NEW_YORK = ZoneInfo("America/New_York")


def request(at: datetime, within: timedelta = timedelta(hours=24), **kw) -> SendTimeRequest:
    fields = {"lead": timedelta(minutes=15), "default_hour": 10, "min_events": 10} | kw
    return SendTimeRequest(user_id="u", at=at, within=within, **fields)


def utc_hours(local_hours: dict[int, int], zone: ZoneInfo, day: datetime) -> dict[int, int]:
    """Counts per UTC hour for events at these local hours on `day`."""
    out: dict[int, int] = {}
    for hour, n in local_hours.items():
        utc = day.replace(hour=hour, tzinfo=zone).astimezone(UTC).hour
        out[utc] = out.get(utc, 0) + n
    return out


def test_a_morning_reader_gets_the_email_at_8_45_their_time():
    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # 10:00 in New York
    hours = utc_hours({9: 12, 14: 3, 20: 2}, NEW_YORK, now)
    chosen = choose(request(now), hours, "America/New_York")
    assert chosen.timing == "learned" and chosen.hour == 9
    assert chosen.at.astimezone(NEW_YORK) == datetime(2026, 12, 8, 8, 45, tzinfo=NEW_YORK)


def test_inside_the_active_hour_it_sends_now():
    now = datetime(2026, 12, 7, 14, 50, tzinfo=UTC)  # 9:50 in New York
    hours = utc_hours({9: 12}, NEW_YORK, now)
    assert choose(request(now), hours, "America/New_York").at == now


def test_too_little_history_uses_the_journeys_default_hour():
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    chosen = choose(request(now, default_hour=11), {9: 4}, None)
    assert (chosen.timing, chosen.hour) == ("default", 11)
    assert chosen.at == datetime(2026, 12, 7, 10, 45, tzinfo=UTC)


def test_it_stays_inside_the_window_with_the_next_best_hour_or_now():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    hours = {9: 20, 15: 8}  # 9 UTC is 21 hours away; 15 UTC fits a 6-hour window
    chosen = choose(request(now, within=timedelta(hours=6)), hours, "UTC")
    assert (chosen.hour, chosen.at) == (15, datetime(2026, 12, 7, 14, 45, tzinfo=UTC))
    nothing_fits = choose(request(now, within=timedelta(hours=1)), hours, "UTC")
    assert (nothing_fits.at, nothing_fits.timing) == (now, "default")


def test_quiet_hours_are_never_chosen():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    hours = {23: 30, 18: 10}  # a night owl, but 22:45 is inside 21:00-08:00
    chosen = choose(request(now), hours, "UTC", quiet_hours=QuietHours.parse("21:00-08:00"))
    assert (chosen.hour, chosen.at) == (18, datetime(2026, 12, 7, 17, 45, tzinfo=UTC))
