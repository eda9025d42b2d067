"""The check can fail: a changed journey that running journeys cannot survive is caught, and
the same change behind `workflow.patched` passes, keeping old runs on the old path."""

from __future__ import annotations

import asyncio

from starter.replay import replay
from tests.replay.conftest import recorded
from workflows.journeys import Onboarding
from workflows.models import JourneyState


async def until_sleeping(stack, user: str, timeout: float = 30.0) -> JourneyState:
    """The journey's state once it waits on its next timer (its at-once sends done); a loaded
    machine can take a few workflow tasks to get there, so poll rather than look once."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await stack.state("onboarding", user)
        if state.next_wakeup is not None or state.outcome is not None:
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"onboarding for {user} never reached a timer: {state}")
        await asyncio.sleep(0.05)


async def test_a_wait_swapped_for_a_send_does_not_replay(journey_code):
    journey_code("tests.replay.tips_at_once", "TipsAtOnce")
    report = await replay(recorded())

    assert not report.ok
    onboarding = [h.workflow_id for h in recorded("onboarding.*")]
    assert sorted(f.workflow_id for f in report.failures) == sorted(onboarding)
    before = {h.run_id for h in recorded("onboarding.*.before-local-records")}
    assert before and len(before) < len(onboarding)  # both kinds of history were replayed
    for failure in report.failures:
        assert failure.nondeterministic
        assert failure.group == "onboarding"
        # the history started the day-2 wait (recorded as a step); the new code sends instead
        assert "'record_step'" in failure.error
        if failure.run_id in before:  # the step was a scheduled activity then
            assert "'send_message'" in failure.error
    assert report.failed("cart_recovery") == 0
    assert report.replayed["cart_recovery"] == len(recorded("cart_recovery.*")) == 14
    assert f"FAILED {onboarding[0]}" in report.summary()


async def test_a_step_added_at_the_end_breaks_journeys_already_past_the_end(journey_code):
    # Past the end of `steps`, a journey still watches its goal window (and may wait out its
    # re-entry window): the new step would come where its history has the next command.
    journey_code("tests.replay.one_more_tip", "OneMoreTip")
    report = await replay(recorded("onboarding.*"))
    # The run that sent all three, then waited; recorded before local records, before closing
    # at the outcome, and now.
    assert [f.workflow_id for f in report.failures] == ["onboarding:fx-onb-completed-1"] * 3
    assert report.replayed["onboarding"] == 6  # the one that converted on day 1 still replays


async def test_the_same_change_behind_workflow_patched_replays(journey_code):
    journey_code("tests.replay.tips_at_once_patched", "TipsAtOncePatched")
    report = await replay(recorded())
    assert report.ok, report.summary()
    assert report.replayed["onboarding"] == len(recorded("onboarding.*"))


async def test_patched_code_takes_the_new_path_for_new_journeys_and_cannot_be_rolled_back(
    journey_code, stack_for, temporal
):
    journey_code("tests.replay.tips_at_once_patched", "TipsAtOncePatched")
    stack = await stack_for(Onboarding)
    user = stack.user("patched", treated_in=Onboarding)
    await stack.track("Signed Up", user)
    state = await until_sleeping(stack, user)
    steps = [
        (s.name, s.status, s.detail) for r in stack.runs(user) for s in stack.store.steps(r.run_id)
    ]
    assert [m.template for m in stack.outbox(user)] == ["welcome", "first_tips"], steps
    assert state.messages_sent == 2

    history = await stack.handle("onboarding", user).fetch_history()
    assert (await replay([history])).ok

    # Back to the old code: the journey that took the new path no longer replays.
    journey_code("workflows.journeys.onboarding", "Onboarding")
    rolled_back = await replay([history])
    [failure] = rolled_back.failures
    assert failure.workflow_id == history.workflow_id and failure.nondeterministic
