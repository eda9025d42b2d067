"""Send-time optimisation on the real dev server at virtual time: the tip waits for the user's
own best hour (learned from their events' times in their zone), or the default hour; both
groups wait alike; the message records the hour and how it was chosen; the report compares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import async_playwright

from activities.holdout import assign_group
from starter.report import build_report
from tests.conftest import settle
from tests.measurement.test_dashboard import CHROMIUM_ARGS
from tests.send_time.journeys import Timed

NEW_YORK = ZoneInfo("America/New_York")
DAY = timedelta(days=1)


def history(stack, user: str, local_hour: int, zone: ZoneInfo, events: int = 12) -> None:
    """`events` past page views at `local_hour`, through the store as the webhook records them."""
    today = datetime.now(zone).replace(hour=local_hour, minute=20, second=0, microsecond=0)
    for i in range(events):
        stack.store.receive(
            message_id=f"h-{uuid.uuid4().hex}",
            user_id=user,
            kind="track",
            at=(today - timedelta(days=i + 1)).astimezone(UTC),
            event="Page Viewed",
            properties={},
        )


def next_aim(after: datetime, hour: int, zone: ZoneInfo) -> datetime:
    """What the user should get: `hour` less 15 minutes, local, next (now if inside it)."""
    local = after.astimezone(zone)
    start = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if start - timedelta(minutes=15) <= local < start + timedelta(hours=1):
        return after
    aim = start - timedelta(minutes=15)
    return aim if aim >= local else aim + DAY


async def test_the_tip_goes_at_the_users_own_best_hour_and_records_it(stack_for):
    stack = await stack_for(Timed)
    reader = stack.user(treated_in=Timed, timezone="America/New_York")
    history(stack, reader, 9, NEW_YORK)  # active 9-10 AM New York time
    newcomer = stack.user(treated_in=Timed)  # no history, no zone: 10 AM UTC
    for user in (reader, newcomer):
        await stack.track("Signed Up", user)
        await stack.advance("t_timed", user, DAY + timedelta(minutes=1))

    for user, hour, zone, timing in (
        (reader, 9, NEW_YORK, "learned"),
        (newcomer, 10, UTC, "default"),
    ):
        [run] = stack.runs(user)
        entered = run.entered_at.replace(tzinfo=UTC)
        aim = next_aim(entered + DAY, hour, zone)
        journey_now = entered + DAY + timedelta(minutes=1)  # the journey's clock, not ours
        if aim > journey_now:
            state = await stack.state("t_timed", user)
            assert state.step == "best time for tip"
            assert abs(state.next_wakeup - aim) < timedelta(seconds=5)
            assert stack.outbox(user)[-1].template == "welcome"  # the tip waits
            await stack.advance("t_timed", user, aim - journey_now + timedelta(minutes=1))
        _, tip = stack.outbox(user)
        assert (tip.send_hour, tip.timing) == (hour, timing)
        sent_at = tip.journey_time.replace(tzinfo=UTC)
        assert abs(sent_at - aim) < timedelta(minutes=2), (sent_at.astimezone(zone), aim)


async def test_held_out_users_wait_for_their_best_hour_too(stack_for):
    stack = await stack_for(Timed)
    user = stack.user()
    while assign_group("t_timed", user, Timed.holdout) != "holdout":
        user = stack.user()
    await stack.track("Signed Up", user)
    await stack.advance("t_timed", user, DAY + timedelta(minutes=1))
    state = await stack.state("t_timed", user)
    [run] = stack.runs(user)
    entered = run.entered_at.replace(tzinfo=UTC)
    aim = next_aim(entered + DAY, 10, UTC)
    if aim > entered + DAY + timedelta(minutes=1):
        assert state.step == "best time for tip"
        assert abs(state.next_wakeup - aim) < timedelta(seconds=5)
    assert stack.outbox(user) == []


async def test_the_report_compares_optimised_and_default_sends_by_hour(stack_for):
    stack = await stack_for(Timed)
    reader = stack.user(treated_in=Timed, timezone="America/New_York")
    history(stack, reader, 9, NEW_YORK)
    newcomer = stack.user(treated_in=Timed)
    for user in (reader, newcomer):
        await stack.track("Signed Up", user)
        await stack.advance("t_timed", user, 2 * DAY + timedelta(minutes=1))
    await stack.track("Activated", reader)
    await settle(stack.handle("t_timed", reader))

    report = build_report(stack.store, [Timed], journey="t_timed").journeys[0]
    timing = report.send_times
    assert timing is not None
    assert timing.by_hour == {9: 1, 10: 1}
    assert (timing.learned.entries, timing.learned.converted) == (1, 1)
    assert (timing.default.entries, timing.default.converted) == (1, 0)


async def test_the_dashboard_shows_timed_sends_by_hour(api_for, chromium):
    api = await api_for(Timed)
    stack = api.stack
    reader = stack.user(treated_in=Timed, timezone="America/New_York")
    history(stack, reader, 9, NEW_YORK)
    await stack.track("Signed Up", reader)
    await stack.advance("t_timed", reader, 2 * DAY + timedelta(minutes=1))
    assert [m.template for m in stack.outbox(reader)] == ["welcome", "tip"]

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900},
            extra_http_headers={"Authorization": f"Bearer {api.key}"},
        )
        tab = await context.new_page()
        await tab.goto(f"{api.url}/dashboard?journey=t_timed")
        await tab.screenshot(full_page=True)
        line = tab.locator("#journey-t_timed .send-times")
        assert await line.is_visible()
        text = " ".join((await line.inner_text()).split())
        assert "timed sends by local hour: 09h 1" in text
        assert "at their own best hour 0/1 converted" in text
        await browser.close()
