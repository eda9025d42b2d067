"""DELETE /v1/journeys/{journey}/users/{user_id}, DELETE /v1/journeys/{journey}/users?all=true,
and `journeys remove`: the journey ends now, outcome exited, reason removed."""

from __future__ import annotations

import json
from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus

from tests.operators.cli import journeys
from tests.operators.conftest import keys
from tests.operators.journeys import Bulk, ByCommand, Quiet, Removable
from tests.operators.test_explain import op_env
from workflows.identity import user_key, workflow_id
from workflows.models import JourneyResult

LATER = timedelta(days=2, minutes=1)
COMPLETED = WorkflowExecutionStatus.COMPLETED


async def test_removing_a_user_ends_their_journey_exited_removed(operator_for):
    op = await operator_for(Removable, Quiet)
    user, other = op.user(Removable), op.user(Removable)
    for who in (user, other):
        await op.track(who, "Op Signed Up")
    await op.api.stack.advance("op_remove", user, timedelta(minutes=1))

    response = await op.api.http.delete(f"/v1/journeys/op_remove/users/{user}")
    assert response.status_code == 200, response.text
    removed = response.json()
    assert removed == {
        "journey": "op_remove",
        "userKey": user,
        "workflowId": workflow_id("op_remove", user),
        "runId": removed["runId"],
        "reason": "removed",
        "status": "COMPLETED",
    }
    assert await op.closed("op_remove", user) == COMPLETED
    result = await op.api.stack.handle("op_remove", user).result()
    assert isinstance(result, JourneyResult)
    assert (result.outcome, result.reason) == ("exited", "removed")
    [run] = op.api.stack.runs(user)
    assert (run.outcome, run.outcome_reason) == ("exited", "removed")
    story = (await op.api.http.get(f"/v1/users/{user}/journeys")).json()
    assert (story["runs"][0]["outcome"], story["runs"][0]["outcomeReason"]) == (
        "exited",
        "removed",
    )
    # The other user goes on.
    assert (await op.api.stack.handle("op_remove", other).describe()).status.name == "RUNNING"

    # Not in it (any more, or ever), or no such journey: 404.
    for path, detail in (
        (f"op_remove/users/{user}", f"user '{user}' is not in journey 'op_remove'"),
        ("op_remove/users/never-here", "user 'never-here' is not in journey 'op_remove'"),
        (f"nope/users/{other}", "unknown journey 'nope' (loaded: op_quiet, op_remove)"),
    ):
        response = await op.api.http.delete(f"/v1/journeys/{path}")
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == detail


async def test_a_qualifying_user_and_a_user_known_by_key_can_be_removed(operator_for):
    op = await operator_for(Removable, Quiet)
    cart = op.user(Quiet)
    await op.track(cart, "Op Cart")  # qualifying: waiting for an hour's quiet
    response = await op.api.http.delete(f"/v1/journeys/op_quiet/users/{cart}")
    assert response.status_code == 200, response.text
    result = await op.api.stack.handle("op_quiet", cart).result()
    assert result.outcome == "not_entered"
    assert op.api.stack.runs(cart) == []  # never entered: no run recorded

    email = op.user(Removable, prefix="jane", at="example.com")
    await op.track(email, "Op Signed Up")
    await op.api.stack.advance("op_remove", email, timedelta(minutes=1))
    response = await op.api.http.delete(f"/v1/journeys/op_remove/users/{user_key(email)}")
    assert response.status_code == 200, response.text
    assert "@" not in response.text
    [run] = op.api.stack.runs(email)
    assert (run.outcome, run.outcome_reason) == ("exited", "removed")


async def test_bulk_removal_by_group_and_step_must_say_all(operator_for):
    op = await operator_for(Bulk)
    treated = [op.user(Bulk, "treatment") for _ in range(3)]
    held = [op.user(Bulk, "holdout") for _ in range(2)]
    for user in [*treated, *held]:
        await op.track(user, "Op Signed Up")
    await op.api.stack.advance("op_bulk", treated[0], LATER)
    await op.listed(
        "op_bulk",
        lambda users: (
            {(u["userKey"], u["step"]) for u in users}
            == {(treated[0], "sleep after tips")}
            | {(u, "sleep after welcome") for u in [*treated[1:], *held]}
        ),
    )

    for params in ({}, {"group": "holdout"}, {"all": "yes"}, {"all": "true", "limit": 0}):
        refused = await op.api.http.delete("/v1/journeys/op_bulk/users", params=params)
        assert refused.status_code == 422, (params, refused.text)
    assert len(await op.all_pages("op_bulk")) == 5  # nobody removed

    async def remove(**params):
        response = await op.api.http.delete(
            "/v1/journeys/op_bulk/users", params={"all": "true", **params}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def listed(left: set[str]) -> None:  # removals closed and visibility caught up
        await op.listed("op_bulk", lambda users: keys(users) == left)

    holdout = await remove(group="holdout")
    assert (holdout["removed"], holdout["more"]) == (2, False)
    assert set(holdout["workflowIds"]) == {workflow_id("op_bulk", u) for u in held}
    await listed(set(treated))

    later = await remove(step="sleep after tips", group="treatment")
    assert later["workflowIds"] == [workflow_id("op_bulk", treated[0])]
    await listed(set(treated[1:]))

    one = await remove(limit=1)
    assert (one["removed"], one["more"]) == (1, True)
    await listed(set(treated[1:]) - {one["workflowIds"][0].partition(":")[2]})
    rest = await remove()
    assert (rest["removed"], rest["more"]) == (1, False)
    await listed(set())
    assert await remove() == {"journey": "op_bulk", "removed": 0, "workflowIds": [], "more": False}

    for user in [*treated, *held]:
        assert await op.closed("op_bulk", user) == COMPLETED
        [run] = op.api.stack.runs(user)
        assert (run.outcome, run.outcome_reason) == ("exited", "removed"), user


async def test_the_commands_list_and_remove_users(operator_for, tmp_path):
    op = await operator_for(ByCommand)
    users = sorted(op.user(ByCommand, "treatment") for _ in range(3))
    for user in users:
        await op.track(user, "Op Signed Up")
    await op.listed("op_cli", lambda listed: keys(listed) == set(users))
    env = op_env(op, tmp_path)

    code, out, err = await journeys(env, "users", "op_cli", "--limit", "2")
    assert code == 0, err
    assert out.startswith("op_cli: 2 users on this page\nUSER KEY")
    assert "next page: journeys users op_cli --cursor " in out and "--limit 2" in out
    cursor = out.split("--cursor ")[1].split()[0]
    code, out, err = await journeys(
        env, "users", "op_cli", "--limit", "2", "--cursor", cursor, "--json"
    )
    assert code == 0, err
    assert len(json.loads(out)["users"]) == 1
    code, out, err = await journeys(env, "users", "op_cli", "--group", "holdout")
    assert (code, out) == (
        0,
        "no users in op_cli (group 'holdout') now (a start takes a moment to be listed)\n",
    )

    code, out, err = await journeys(env, "users", "nope")
    assert code == 2 and "unknown journey 'nope'" in err
    code, out, err = await journeys(env, "remove", "op_cli")  # neither a user nor --all
    assert code == 2 and "--all" in err
    code, out, err = await journeys(env, "remove", "op_cli", users[0], "--all")
    assert code == 2 and "not both" in err

    code, out, err = await journeys(env, "remove", "op_cli", users[0])
    assert code == 0, err
    assert out.startswith(f"removed {users[0]} from op_cli (exited, removed); workflow completed")
    code, out, err = await journeys(env, "remove", "op_cli", users[0])
    assert code == 1 and f"user '{users[0]}' is not in journey 'op_cli'" in err

    await op.listed("op_cli", lambda listed: keys(listed) == set(users[1:]))
    code, out, err = await journeys(env, "remove", "op_cli", "--all", "--group", "treatment")
    assert (code, out) == (0, "removed 2 users from op_cli (group 'treatment') (exited, removed)\n")
    for user in users:
        assert await op.closed("op_cli", user) == COMPLETED
        [run] = op.api.stack.runs(user)
        assert (run.outcome, run.outcome_reason) == ("exited", "removed")
