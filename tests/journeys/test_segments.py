"""Segment entry: a daily Temporal Schedule selects users by their history and starts journeys."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from starter import schedules
from tests.journeys.conftest import DAY, Shop
from workflows.journeys import FeatureAdoption, WinBack
from workflows.models import SegmentProgress, SegmentRunInput
from workflows.segments import SEGMENT_ENTERED


async def run_segment(shop: Shop, journey: str, page_size: int | None = None) -> SegmentProgress:
    client: Client = shop.api.stack.client
    progress: SegmentProgress = await client.execute_workflow(
        "SegmentEntry",
        SegmentRunInput(journey=journey, page_size=page_size),
        id=f"segment-test-{uuid.uuid4().hex[:8]}",
        task_queue=shop.api.stack.router.task_queue,
        result_type=SegmentProgress,
    )
    return progress


async def engaged(shop: Shop, user: str, *, report: bool = False, features: int = 2) -> None:
    """Twenty days of use: core features, maybe the target feature, active yesterday."""
    await shop.identify(user, first_name="Ada")
    await shop.track(user, "Dashboard Viewed", ago=20 * DAY)
    if features >= 2:
        await shop.track(user, "Project Created", ago=10 * DAY)
    if report:
        await shop.track(user, "Report Created", ago=5 * DAY)
    await shop.track(user, "Dashboard Viewed", ago=1 * DAY)


async def test_feature_adoption_enters_exactly_the_engaged_users_who_never_used_the_feature(
    shop_for,
):
    shop = await shop_for(FeatureAdoption)
    match = shop.user("feature_adoption")
    used_it, one_feature, new, dormant = (shop.user("feature_adoption") for _ in range(4))
    await engaged(shop, match)
    await engaged(shop, used_it, report=True)
    await engaged(shop, one_feature, features=1)
    await shop.identify(new)  # active 3 days only
    await shop.track(new, "Dashboard Viewed", ago=3 * DAY)
    await shop.track(new, "Project Created", ago=1 * DAY)
    await shop.identify(dormant)  # engaged once, quiet for 20 days
    await shop.track(dormant, "Dashboard Viewed", ago=40 * DAY)
    await shop.track(dormant, "Project Created", ago=20 * DAY)

    progress = await run_segment(shop, "feature_adoption")
    assert (progress.selected, progress.started, progress.already_in) == (1, 1, 0)
    assert progress.done

    await shop.api.stack.state("feature_adoption", match)
    [run] = shop.api.stack.runs(match)
    assert (run.journey, run.entry_event) == ("feature_adoption", SEGMENT_ENTERED)
    [intro] = shop.sent(match)
    assert intro.template == "introduction"
    for user in (used_it, one_feature, new, dormant):
        assert shop.api.stack.runs(user) == []

    # The next day's run starts nobody again: the user is inside the journey's re-entry window.
    again = await run_segment(shop, "feature_adoption")
    assert (again.selected, again.started) == (0, 0)
    assert len(shop.api.stack.runs(match)) == 1


async def test_feature_adoption_sends_at_entry_day_5_and_day_10_until_the_feature_is_used(
    shop_for,
):
    shop = await shop_for(FeatureAdoption)
    stays, adopts = shop.user("feature_adoption"), shop.user("feature_adoption")
    for user in (stays, adopts):
        await engaged(shop, user)
    assert (await run_segment(shop, "feature_adoption")).started == 2

    for user in (stays, adopts):
        await shop.advance("feature_adoption", user, 5 * DAY - timedelta(minutes=1))
        assert shop.templates(user) == ["introduction"]
        # Day 5, at the user's best hour that day (send-time optimisation).
        await shop.advance("feature_adoption", user, DAY + timedelta(minutes=1))
        assert shop.templates(user) == ["introduction", "tutorial"]
        tutorial = shop.sent(user)[1]
        entered = shop.api.stack.runs(user)[0].entered_at
        assert 5 * DAY <= tutorial.journey_time - entered < 6 * DAY
        assert tutorial.timing in ("learned", "default") and tutorial.send_hour is not None

    await shop.track(adopts, "Report Created")
    result = await shop.outcome("feature_adoption", adopts)
    assert (result.outcome, result.outcome_reason) == ("converted", "Report Created")

    await shop.advance("feature_adoption", stays, 5 * DAY + timedelta(minutes=1))
    assert shop.templates(stays) == ["introduction", "tutorial", "personal_note"]
    assert shop.templates(adopts) == ["introduction", "tutorial"]
    tutorial = shop.sent(stays)[1]
    assert "report" in (tutorial.subject or "").lower() + (tutorial.body_text or "").lower()


async def test_pages_start_every_matching_user_once(shop_for):
    shop = await shop_for(FeatureAdoption)
    users = [shop.user("feature_adoption", group=g) for g in ("treatment",) * 4 + ("holdout",)]
    await asyncio.gather(*(engaged(shop, u) for u in users))
    progress = await run_segment(shop, "feature_adoption", page_size=2)
    assert (progress.pages, progress.selected, progress.started) == (3, 5, 5)
    for user in users:
        await shop.api.stack.state("feature_adoption", user)
    groups = sorted(shop.api.stack.runs(u)[0].group for u in users)
    assert groups == ["holdout"] + ["treatment"] * 4


async def test_win_back_enters_the_dormant_who_were_active_a_month(shop_for):
    shop = await shop_for(WinBack)
    dormant, short_lived, active = (shop.user("win_back") for _ in range(3))
    for user in (dormant, short_lived, active):
        await shop.identify(user)
    await shop.track(dormant, "Dashboard Viewed", ago=120 * DAY)
    await shop.track(dormant, "Dashboard Viewed", ago=65 * DAY)
    await shop.track(short_lived, "Dashboard Viewed", ago=80 * DAY)
    await shop.track(short_lived, "Dashboard Viewed", ago=70 * DAY)  # 10 active days only
    await shop.track(active, "Dashboard Viewed", ago=120 * DAY)
    await shop.track(active, "Dashboard Viewed", ago=2 * DAY)

    progress = await run_segment(shop, "win_back")
    assert (progress.selected, progress.started) == (1, 1)
    await shop.api.stack.state("win_back", dormant)
    assert shop.api.stack.runs(dormant)[0].entry_event == SEGMENT_ENTERED
    assert shop.api.stack.runs(short_lived) == shop.api.stack.runs(active) == []
    await shop.advance("win_back", dormant, 7 * DAY)
    assert shop.templates(dormant) == ["feedback"]


async def test_a_dormant_customer_coming_back_ends_win_back_as_reactivated(shop_for):
    shop = await shop_for(WinBack)
    back, cancelled = shop.user("win_back"), shop.user("win_back")
    for user in (back, cancelled):
        await shop.identify(user)
        await shop.track(user, "Dashboard Viewed", ago=120 * DAY)
        await shop.track(user, "Dashboard Viewed", ago=65 * DAY)
    await shop.track(cancelled, "Subscription Cancelled", ago=64 * DAY)  # entered by its trigger
    await shop.api.stack.state("win_back", cancelled)
    assert (await run_segment(shop, "win_back")).started == 1
    await shop.advance("win_back", back, 8 * DAY)
    assert shop.templates(back) == ["feedback"]

    # Day 8: each logs in. The dormant customer's return is the goal (seed 003: "login
    # resumption"); the cancelled one's is a new subscription, so a login changes nothing.
    answer = await shop.track(back, "Logged In")
    assert [j["action"] for j in answer["journeys"]] == ["signalled"]
    assert (await shop.track(cancelled, "Logged In"))["journeys"] == []
    result = await shop.api.stack.result("win_back", back)
    assert (result.outcome, result.reason) == ("converted", "Logged In")
    [run] = shop.api.stack.runs(back)
    assert (run.entry_event, run.outcome) == (SEGMENT_ENTERED, "converted")
    assert shop.templates(back) == ["feedback"]  # nothing after the return
    assert shop.api.stack.runs(cancelled)[0].outcome is None  # still waiting for its goal


async def test_a_user_already_in_the_journey_by_its_trigger_is_not_started_again(shop_for):
    shop = await shop_for(WinBack)
    user = shop.user("win_back")
    await shop.identify(user)
    await shop.track(user, "Dashboard Viewed", ago=120 * DAY)
    await shop.track(user, "Dashboard Viewed", ago=61 * DAY)
    await shop.track(user, "Subscription Cancelled", ago=61 * DAY)  # entered by its trigger
    await shop.api.stack.state("win_back", user)
    progress = await run_segment(shop, "win_back")
    assert (progress.selected, progress.started) == (0, 0)
    assert [r.entry_event for r in shop.api.stack.runs(user)] == ["Subscription Cancelled"]


async def test_schedules_are_created_paused_triggered_and_backfilled(shop_for):
    shop = await shop_for(FeatureAdoption)
    client: Client = shop.api.stack.client
    prefix = f"{shop.api.stack.router.task_queue}/"
    user = shop.user("feature_adoption")
    await engaged(shop, user)

    ids = await schedules.ensure_schedules(
        client, [FeatureAdoption], shop.api.stack.router.task_queue, prefix
    )
    assert ids == [f"{prefix}segment:feature_adoption"]
    info = await schedules.describe(client, "feature_adoption", prefix)
    assert (info.cron, info.timezone, info.paused) == ("0 9 * * *", "UTC", False)
    assert info.next_runs and info.next_runs[0].hour == 9

    await schedules.pause(client, "feature_adoption", "holiday freeze", prefix)
    # A worker restart (ensure again) keeps the operator's pause.
    await schedules.ensure_schedules(
        client, [FeatureAdoption], shop.api.stack.router.task_queue, prefix
    )
    listed = await schedules.list_schedules(client, prefix)
    assert [(i.journey, i.paused) for i in listed] == [("feature_adoption", True)]

    await schedules.trigger(client, "feature_adoption", prefix)
    run = await _latest_run(client, "feature_adoption", prefix, count=1)
    assert run.started == 1
    await shop.api.stack.state("feature_adoption", user)
    assert shop.templates(user) == ["introduction"]

    # Backfilling two missed days runs the segment twice more; nobody is started twice.
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await schedules.backfill(client, "feature_adoption", end - 2 * DAY, end, prefix)
    last = await _latest_run(client, "feature_adoption", prefix, count=3)
    assert last.started == 0
    assert len(shop.api.stack.runs(user)) == 1

    await schedules.resume(client, "feature_adoption", prefix)
    assert not (await schedules.describe(client, "feature_adoption", prefix)).paused


async def _latest_run(client: Client, journey: str, prefix: str, count: int) -> SegmentProgress:
    """Wait until the schedule has taken `count` actions; the last one's result."""
    handle = client.get_schedule_handle(schedules.schedule_id(journey, prefix))
    for _ in range(300):
        actions = (await handle.describe()).info.recent_actions
        if len(actions) >= count:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the schedule took {len(actions)} actions, not {count}")
    progress: SegmentProgress = await client.get_workflow_handle(
        actions[-1].action.workflow_id, result_type=SegmentProgress
    ).result()
    return progress
