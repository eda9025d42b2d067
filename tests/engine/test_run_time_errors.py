"""A definition error only running can find fails the journey once, visibly, instead of failing
its workflow task forever (a stuck journey that time skipping cannot move)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.engine.sample_journeys import ForgotListens


async def test_wait_for_an_undeclared_event_fails_the_run_with_the_error(stack_for):
    stack = await stack_for(ForgotListens)
    user = stack.user()
    await stack.track("Signed Up", user)

    with pytest.raises(WorkflowFailureError) as failed:
        await stack.result("t_forgot_listens", user, timeout=10)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "JourneyDefinitionError" and cause.non_retryable
    assert "Checklist Done" in cause.message and "listens" in cause.message
    described = await stack.handle("t_forgot_listens", user).describe()
    assert described.status == WorkflowExecutionStatus.FAILED  # what the Temporal UI shows

    [run] = stack.runs(user)  # counted: the report shows it under exits
    assert run.outcome == "failed" and "Checklist Done" in (run.outcome_reason or "")
    assert [m.template for m in stack.outbox(user)] == ["welcome"]  # what ran before stays done
