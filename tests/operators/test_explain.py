"""GET /v1/users/{user_id}/journeys and `journeys explain`: every journey a user entered or was
refused, each step, send and skip with its reason, the group, the outcome, the Temporal links."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from tests.operators.cli import journeys
from tests.operators.journeys import Explained, Quiet
from workflows.identity import user_key, workflow_id

LATER = timedelta(days=2, minutes=1)


async def test_the_story_of_a_user_entered_unsubscribed_converted_refused_and_qualifying(
    operator_for, tmp_path
):
    op = await operator_for(Explained, Quiet)
    user = op.user(Explained, "treatment")
    await op.track(user, "Op Signed Up")  # entered: welcome sent
    await op.api.stack.advance("op_explain", user, timedelta(minutes=1))
    answer = await op.api.http.put(f"/v1/users/{user}/subscription", json={"email": False})
    assert answer.status_code == 200, answer.text
    await op.api.stack.advance("op_explain", user, LATER)  # tips: skipped, unsubscribed
    await op.track(user, "Op Activated")  # the goal: converted, the workflow closes
    await op.closed("op_explain", user)
    await op.track(user, "Op Signed Up")  # inside the 7-day re-entry window: refused
    await op.closed("op_explain", user)
    await op.track(user, "Op Cart")  # qualifying for op_quiet: running, not entered

    for _ in range(200):  # the running list comes from visibility, which lags
        response = await op.api.http.get(f"/v1/users/{user}/journeys")
        assert response.status_code == 200, response.text
        story = response.json()
        if [(r["journey"], r["step"]) for r in story["running"]] == [("op_quiet", "qualifying")]:
            break
        await asyncio.sleep(0.1)
    assert (story["userId"], story["userKey"], story["runningError"]) == (user, user, None)

    [run] = story["runs"]
    assert (run["journey"], run["group"], run["entryEvent"]) == (
        "op_explain",
        "treatment",
        "Op Signed Up",
    )
    assert (run["outcome"], run["outcomeReason"], run["messagesSent"]) == (
        "converted",
        "Op Activated",
        1,
    )
    assert run["workflowId"] == workflow_id("op_explain", user)
    assert run["temporalUrl"].endswith(f"/{run['runId']}/history")
    steps = [(s["kind"], s["name"], s["status"], s["detail"]) for s in run["steps"]]
    assert steps == [
        ("send", "welcome", "sent", None),
        ("sleep", "sleep after welcome", "reached", None),
        ("send", "tips", "skipped", "unsubscribed"),
        ("sleep", "sleep after welcome", "reached", None),
    ]
    assert run["steps"][1]["until"] is not None
    [message] = run["messages"]
    assert (message["template"], message["channel"], message["status"], message["seq"]) == (
        "welcome",
        "email",
        "sent",
        run["steps"][0]["seq"],
    )
    assert "@" not in json.dumps(message)  # never the address, nor the content

    [refusal] = story["refusals"]
    assert (refusal["journey"], refusal["reason"], refusal["entryEvent"]) == (
        "op_explain",
        "reentry_window",
        "Op Signed Up",
    )
    assert refusal["lastEnteredAt"] == run["enteredAt"]
    assert refusal["runId"] != run["runId"] and refusal["temporalUrl"].endswith(
        f"/{refusal['runId']}/history"
    )

    [running] = story["running"]
    assert (running["journey"], running["step"], running["group"]) == (
        "op_quiet",
        "qualifying",
        None,
    )
    assert running["workflowId"] == workflow_id("op_quiet", user)

    # The same story from the command line, as text and as JSON.
    env = op_env(op, tmp_path)
    code, out, err = await journeys(env, "explain", user)
    assert code == 0, err
    for text in (
        f"user {user} (key {user}): 1 entries, 1 refused, 1 running now",
        "op_explain: entered",
        "group treatment",
        "sent",
        "email via outbox: sent",
        "skipped (unsubscribed)",
        "outcome: converted (Op Activated)",
        "op_explain: refused",
        "reentry_window",
        "op_quiet: step 'qualifying', not entered yet",
        run["temporalUrl"],
        refusal["temporalUrl"],
    ):
        assert text in out, (text, out)
    assert out.index("op_explain: entered") < out.index("op_explain: refused")
    code, out, err = await journeys(env, "explain", user, "--json")
    assert code == 0, err
    assert json.loads(out) == story


async def test_a_user_nobody_knows_has_an_empty_story_and_an_address_is_found_by_its_key(
    operator_for,
):
    op = await operator_for(Explained)
    empty = (await op.api.http.get("/v1/users/nobody-at-all/journeys")).json()
    assert (empty["runs"], empty["refusals"], empty["running"]) == ([], [], [])

    email = op.user(Explained, prefix="jane", at="example.com")
    await op.track(email, "Op Signed Up")
    await op.api.stack.advance("op_explain", email, timedelta(minutes=1))
    for who in (email, user_key(email)):  # the address, or the key `users` lists instead
        story = (await op.api.http.get(f"/v1/users/{who}/journeys")).json()
        [run] = story["runs"]
        assert run["workflowId"] == workflow_id("op_explain", email)
        assert run["steps"][0]["name"] == "welcome"
        assert story["userKey"] == user_key(email)


def op_env(op, tmp_path) -> dict[str, str]:
    """The environment a `journeys` command needs to reach this test's stack."""
    return {
        "TEMPORAL_ADDRESS": op.api.stack.client.service_client.config.target_host,
        "JOURNEYS_DATABASE_URL": op.api.stack.store.url,
        "JOURNEYS_JOURNEY_MODULES": "tests.operators.journeys",
        "JOURNEYS_DATA_DIR": str(tmp_path),
    }
