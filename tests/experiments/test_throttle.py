"""Send rates (sends beyond a journey's rate wait their turn, durably, evenly spaced) and
priority (the frequency cap keeps its last places for a waiting higher-priority message)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import SendWait
from activities.suppression import QuietHours
from activities.templates import Renderer
from activities.throttle import Throttle, key_hash
from starter.report import build_report
from tests.conftest import NO_LIMITS, settle
from tests.experiments.journeys import Newsletter, Throttled, UrgentOffer
from workflows.errors import JourneyDefinitionError
from workflows.journey import Journey, Rate
from workflows.models import SendRequest

TEMPLATES = Path(__file__).parent / "templates"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def request(key: str, at: datetime = T0, journey: str = "t_throttled") -> SendRequest:
    return SendRequest(
        idempotency_key=key, run_id=f"run-{key}", seq=1, journey=journey, user_id=f"user-{key}",
        template="hello", at=at,
    )  # fmt: skip


@pytest.mark.both_databases
def test_concurrent_workers_take_distinct_evenly_spaced_slots(store):
    throttle, rate = Throttle(store), Rate(60, per=timedelta(hours=1))  # one a minute

    def take(i: int) -> datetime:
        return throttle.turn(request(f"k{i}"), rate, 0) or T0  # None: its slot is now

    with ThreadPoolExecutor(8) as pool:
        slots = sorted(pool.map(take, range(120)))
    assert slots == [T0 + i * MINUTE for i in range(120)]  # none twice, none skipped

    # Asked again (a retried attempt, or the journey waking early): the same slot, none taken.
    again = throttle.turn(request("k5"), rate, 0)
    assert again is not None and again in slots
    assert throttle.turn(request("k-new"), rate, 0) == T0 + 120 * MINUTE
    # Its time come, the send goes and is no longer waiting.
    assert throttle.turn(request("k5", at=again), rate, 0) is None
    with store.session() as session:
        row = session.get(SendWait, key_hash(request("k5")))
        assert row is not None and row.settled_at is not None and row.throttled == 1


def test_a_rate_is_a_positive_count_per_positive_period():
    assert Rate(1000, per=timedelta(hours=1)).interval == timedelta(seconds=3.6)
    assert repr(Rate(1000, per=timedelta(hours=1))) == "Rate(1000, per=1h)"
    for count, per in ((0, timedelta(hours=1)), (1.5, timedelta(hours=1)), (5, timedelta(0))):
        with pytest.raises(JourneyDefinitionError, match="Rate"):
            Rate(count, per=per)  # type: ignore[arg-type]
    with pytest.raises(JourneyDefinitionError, match="send_rate"):

        class _BadRate(Throttled):  # pragma: no cover - refused when defined
            send_rate = 1000  # type: ignore[assignment]

    with pytest.raises(JourneyDefinitionError, match="priority"):

        class _BadPriority(Throttled):  # pragma: no cover
            priority = "high"  # type: ignore[assignment]

    assert issubclass(Throttled, Journey) and Throttled.priority == 0


async def test_sends_beyond_the_rate_wait_their_turn_and_none_is_dropped(stack_for, store):
    sending = SendingActivities(store, Renderer(TEMPLATES), policy=NO_LIMITS)
    stack = await stack_for(Throttled, sending=sending)
    users = [stack.user() for _ in range(4)]
    for user in users:  # released together, as a segment run does
        await stack.track("Segment Released", user)
        await settle(stack.handle("t_throttled", user))
    [first] = stack.outbox(users[0])
    assert all(stack.outbox(user) == [] for user in users[1:])  # waiting, not dropped
    # What an operator reads in the Temporal UI: the step's search attribute names the wait.
    described = await stack.handle("t_throttled", users[1]).describe()
    assert described.search_attributes["JourneyStep"] == ["send rate before hello"]
    start = first.journey_time

    for i, user in enumerate(users[1:], start=1):  # 2 an hour: a slot every 30 minutes
        due = start + i * timedelta(minutes=30)
        await stack.advance("t_throttled", user, due - datetime.now(UTC) - MINUTE)
        assert stack.outbox(user) == [], f"user {i} went before its slot"
        await stack.advance("t_throttled", user, 2 * MINUTE)
        [sent] = stack.outbox(user)
        assert due <= sent.journey_time < due + 2 * MINUTE
        assert (await stack.result("t_throttled", user)).messages_sent == 1

    report = build_report(store, [Throttled])
    [j] = report.journeys
    assert j.send_rate == "Rate(2, per=1h)" and j.priority == 0
    assert j.throttled is not None and j.throttled.sends == 3
    assert j.throttled.by_step == {"hello": 3}
    assert j.throttled.longest_wait is not None
    assert timedelta(minutes=89) < j.throttled.longest_wait < timedelta(minutes=91)
    [step] = j.steps
    assert (step.sent, step.deferred_throttle, step.deferred_quiet_hours) == (4, 3, 0)


def quiet_now() -> QuietHours:
    """Quiet hours from an hour ago to an hour from now (UTC), whatever time the test runs."""
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    return QuietHours(time(start.hour, start.minute), time(end.hour, end.minute))


async def test_the_frequency_cap_keeps_its_last_place_for_the_higher_priority_message(
    stack_for, store
):
    quiet = quiet_now()
    policy = DeliveryPolicy(quiet_hours=quiet, frequency_cap=1)
    sending = SendingActivities(store, Renderer(TEMPLATES), policy=policy)
    stack = await stack_for(UrgentOffer, Newsletter, sending=sending)
    lower_first, higher_first, alone = stack.user(), stack.user(), stack.user()
    for user in (lower_first, higher_first):
        await stack.track("Newsletter Due", user)
        await stack.track("Cart Abandoned", user)
    await stack.track("Newsletter Due", alone)
    for user in (lower_first, higher_first, alone):
        for journey in ("t_newsletter", "t_urgent_offer"):
            if journey == "t_newsletter" or user != alone:
                await settle(stack.handle(journey, user))
    until = quiet.ends_after(datetime.now(UTC), None)
    assert until is not None
    after_quiet = until - datetime.now(UTC) + MINUTE

    # Both wait for the morning; the newsletter wakes first and gives way to the offer.
    await stack.advance("t_newsletter", lower_first, after_quiet)
    await stack.advance("t_urgent_offer", lower_first, after_quiet)
    assert [m.template for m in stack.outbox(lower_first)] == ["offer"]
    assert skipped(stack, lower_first, "t_newsletter") == "frequency_cap_lower_priority"

    # The offer wakes first: it goes, and the newsletter finds the cap reached.
    await stack.advance("t_urgent_offer", higher_first, after_quiet)
    await stack.advance("t_newsletter", higher_first, after_quiet)
    assert [m.template for m in stack.outbox(higher_first)] == ["offer"]
    assert skipped(stack, higher_first, "t_newsletter") == "frequency_cap"

    # Nothing of higher priority waits for this user: the newsletter goes.
    await stack.advance("t_newsletter", alone, after_quiet)
    assert [m.template for m in stack.outbox(alone)] == ["issue"]

    report = build_report(store, [UrgentOffer, Newsletter])
    [newsletter] = [j for j in report.journeys if j.journey == "t_newsletter"]
    [issue] = newsletter.steps
    assert issue.skipped == {"frequency_cap_lower_priority": 1, "frequency_cap": 1}
    assert issue.deferred_quiet_hours == 3 and issue.deferred_throttle == 0


def skipped(stack, user: str, journey: str) -> str | None:
    [run] = [r for r in stack.runs(user) if r.journey == journey]
    [step] = [s for s in stack.store.steps(run.run_id) if s.kind == "send"]
    assert step.status == "skipped"
    return step.detail
