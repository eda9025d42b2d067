"""Dynamic content from analytics: templates count a user's events over a window, from the
per-user event summaries, as of the send's own (journey) time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from activities.analytics import UserActivity, no_activity
from activities.sending import SendingActivities
from activities.store import DAILY_DAYS, Store, count_day
from activities.templates import Renderer
from tests.conftest import NO_LIMITS
from tests.experiments.journeys import Recap
from tests.journeys.conftest import DAY
from tests.journeys.test_segments import run_segment
from workflows.journeys import FeatureAdoption

TEMPLATES = Path(__file__).parent / "templates"
T0 = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)


def receive(store: Store, user: str, event: str, at: datetime, message_id: str) -> None:
    store.receive(message_id=message_id, user_id=user, kind="track", at=at, event=event)


@pytest.mark.both_databases
def test_summaries_count_per_day_and_templates_count_over_a_window(store):
    for i, ago in enumerate([0, 1, 1, 6, 7, 20]):  # days before T0, an hour earlier each
        receive(store, "u1", "Report Created", T0 - timedelta(days=ago, hours=1), f"m-{i}")
    receive(store, "u1", "Report Created", T0 - timedelta(hours=1), "m-0")  # a retry: once
    receive(store, "u1", "Dashboard Viewed", T0 - timedelta(days=2), "m-d")

    summary = store.event_summary("u1", "Report Created")
    assert summary is not None and summary.count == 6
    assert summary.daily == {
        "2026-11-20": 1, "2026-12-03": 1, "2026-12-04": 1, "2026-12-09": 2, "2026-12-10": 1
    }  # fmt: skip

    activity = UserActivity(store, "u1", T0)
    week = activity("Report Created", days=7)  # 4-10 December, UTC days
    assert (week.count, week.total, week.days) == (4, 6, 7)
    assert week.last_at == T0 - timedelta(hours=1) and week.days_ago == 0
    assert week.first_at == T0 - timedelta(days=20, hours=1)
    assert activity("Report Created", days=1).count == 1
    assert activity("Report Created").count == 6  # no window: every one
    both = activity("Report Created", "Dashboard Viewed", days=7)
    assert (both.count, both.total) == (5, 7)
    nothing = activity("Invite Sent", days=7)
    assert (nothing.count, nothing.last_at, bool(nothing)) == (0, None, False)

    later = UserActivity(store, "u1", T0 + timedelta(days=30))("Report Created", days=7)
    assert (later.count, later.last_at, later.total) == (0, None, 6)
    for bad in (0, DAILY_DAYS + 1, 2.5, True):
        with pytest.raises(ValueError, match="whole days"):
            activity("Report Created", days=bad)
    with pytest.raises(ValueError, match="event names"):
        activity()
    assert no_activity("Report Created", days=7).count == 0  # the renderer's default


@pytest.mark.both_databases
def test_concurrent_events_of_one_user_are_all_counted_on_their_day(store):
    def one(i: int) -> None:
        receive(store, "u2", "Dashboard Viewed", T0 - timedelta(minutes=i), f"c-{i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(80)))
    summary = store.event_summary("u2", "Dashboard Viewed")
    assert summary is not None and summary.count == 80
    assert summary.daily == {"2026-12-10": 80}


def test_per_day_counts_keep_the_latest_days_only():
    old = {(T0.date() - timedelta(days=n)).isoformat(): 1 for n in range(DAILY_DAYS + 5)}
    kept = count_day(old, T0.date().isoformat())
    assert len(kept) == DAILY_DAYS and kept[T0.date().isoformat()] == 2
    assert min(kept) == (T0.date() - timedelta(days=DAILY_DAYS - 1)).isoformat()
    assert count_day(None, "2026-12-01") == {"2026-12-01": 1}  # a row from before


async def test_a_template_counts_the_week_before_each_send_at_journey_time(stack_for, store):
    sending = SendingActivities(store, Renderer(TEMPLATES), policy=NO_LIMITS)
    stack = await stack_for(Recap, sending=sending)
    user = stack.user()
    now = datetime.now(UTC)
    for i, ago in enumerate((1, 2, 3)):
        receive(store, user, "Report Created", now - timedelta(days=ago), f"{user}-r{i}")
    receive(store, user, "Project Created", now - timedelta(days=2), f"{user}-p")
    await stack.track("Recap Requested", user)
    await stack.advance("t_recap", user, timedelta(minutes=1))
    [first] = stack.outbox(user)
    assert first.subject == "Your week: 3 reports"
    assert "You created 3 reports last week, the latest 1 days ago; 3 in all." in first.body_html
    assert "Dashboards and projects this week: 1." in first.body_html
    assert "You created 3 reports last week; 3 in all." in first.body_text

    # Eight days on (the journey's clock), the same events are out of the week.
    await stack.advance("t_recap", user, timedelta(days=8))
    [_, second] = stack.outbox(user)
    assert second.subject == "Your week: 0 reports"
    assert "You created 0 reports last week; 3 in all." in second.body_html


async def test_feature_adoptions_first_email_tells_the_user_their_own_week(shop_for):
    shop = await shop_for(FeatureAdoption)
    busy, quiet = shop.user("feature_adoption"), shop.user("feature_adoption")
    for user in (busy, quiet):
        await shop.identify(user, first_name="Ada")
        await shop.track(user, "Dashboard Viewed", ago=20 * DAY)
        await shop.track(user, "Project Created", ago=10 * DAY)
    for ago in (1, 2, 5):
        await shop.track(busy, "Dashboard Viewed", ago=ago * DAY)
    await shop.track(busy, "Project Created", ago=3 * DAY)
    await shop.track(busy, "Dashboard Viewed", ago=9 * DAY)  # before the week: not counted
    await shop.track(quiet, "Integration Connected", ago=1 * DAY)  # active, no dashboard

    progress = await run_segment(shop, "feature_adoption")
    assert progress.started == 2
    for user in (busy, quiet):
        await shop.api.stack.state("feature_adoption", user)
    [intro] = shop.sent(busy)
    assert intro.template == "introduction"
    assert "In the last week you opened your dashboard 3 times and created 1 project." in (
        intro.body_html
    )
    assert "opened your dashboard 3 times and created 1 project" in intro.body_text
    [plain] = shop.sent(quiet)  # nothing of theirs to count: the sentence every user got before
    assert "You already use" in plain.body_html and "In the last week" not in plain.body_html


def test_a_template_can_call_activity_but_never_reach_the_store_behind_it(store):
    renderer = Renderer(TEMPLATES)
    activity = UserActivity(store, "u1", T0)
    with pytest.raises(SecurityError):
        renderer.env.from_string("{{ activity._store.url }}").render(activity=activity)
    with pytest.raises(UndefinedError):
        renderer.env.from_string("{{ activity.store }}").render(activity=activity)
    counted = renderer.env.from_string('{{ activity("Report Created", days=7).count }}')
    assert counted.render(activity=activity) == "0"
