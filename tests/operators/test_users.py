"""GET /v1/journeys/{journey}/users: who is in a journey now, by step and group, a page at a
time, from Temporal visibility; user keys only, never an address."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import quote

from tests.operators.conftest import keys
from tests.operators.journeys import Listed
from workflows.identity import user_key, workflow_id

LATER = timedelta(days=2, minutes=1)


async def test_lists_users_by_step_and_group_a_page_at_a_time(operator_for):
    op = await operator_for(Listed)
    treated = [op.user(Listed, "treatment") for _ in range(2)]
    held = [op.user(Listed, "holdout") for _ in range(2)]
    email = op.user(Listed, "treatment", "jane", at="example.com")  # an address as user ID
    for user in [*treated, *held, email]:
        await op.track(user, "Op Signed Up")
    await op.api.stack.advance("op_users", treated[0], LATER)  # on to its second wait

    everyone = {*treated, *held, user_key(email)}
    at = {
        "sleep after welcome": {treated[1], *held, user_key(email)},
        "sleep after tips": {treated[0]},
    }
    users = await op.listed(
        "op_users",
        lambda users: (
            {(u["userKey"], u["step"]) for u in users}
            == {(k, step) for step, ks in at.items() for k in ks}
        ),
    )
    assert keys(users) == everyone and len(users) == 5
    by_key = {u["userKey"]: u for u in users}
    for user in [*treated, *held]:
        row = by_key[user]
        assert row["group"] == ("holdout" if user in held else "treatment")
        assert row["workflowId"] == workflow_id("op_users", user)
        settings = op.api.settings
        assert row["temporalUrl"] == (
            f"{settings.temporal_ui()}/namespaces/default/workflows/"
            f"{quote(row['workflowId'], safe='')}/{row['runId']}/history"
        )
        assert row["startedAt"]
    assert by_key[user_key(email)]["workflowId"] == workflow_id("op_users", email)
    assert user_key(email).startswith("h_")

    holdout = await op.all_pages("op_users", group="holdout")
    assert keys(holdout) == set(held)
    later = await op.all_pages("op_users", step="sleep after tips")
    assert keys(later) == {treated[0]}
    both = await op.all_pages("op_users", step="sleep after welcome", group="treatment")
    assert keys(both) == {treated[1], user_key(email)}
    assert await op.all_pages("op_users", step="no such step") == []

    # limit=1: one user per page, each page's cursor leads to the next, none twice.
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        response = await op.api.http.get("/v1/journeys/op_users/users", params=params)
        assert response.status_code == 200, response.text
        assert "@" not in response.text
        page = response.json()
        assert len(page["users"]) <= 1
        seen += [u["userKey"] for u in page["users"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))  # base64url
    assert sorted(seen) == sorted(everyone)


async def test_unknown_journeys_bad_cursors_bad_filters_and_no_key_are_refused(operator_for):
    op = await operator_for(Listed)
    http = op.api.http

    unknown = await http.get("/v1/journeys/nope/users")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "unknown journey 'nope' (loaded: op_users)"

    for cursor in ("not base64!", base64.urlsafe_b64encode(b"[1, 2]").decode(), "AAAA"):
        bad = await http.get("/v1/journeys/op_users/users", params={"cursor": cursor})
        assert bad.status_code == 400, bad.text
        assert "cursor" in bad.json()["detail"]
    for params in ({"group": "control"}, {"limit": 0}, {"limit": 1001}, {"step": 'a"b'}):
        invalid = await http.get("/v1/journeys/op_users/users", params=params)
        assert invalid.status_code == 422, (params, invalid.text)

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        for method, path in (
            ("GET", "/v1/journeys/op_users/users"),
            ("DELETE", "/v1/journeys/op_users/users/someone"),
            ("DELETE", "/v1/journeys/op_users/users?all=true"),
            ("GET", "/v1/users/someone/journeys"),
        ):
            response = await http.request(
                method, f"{op.api.url}{path}", headers={"Authorization": "", **headers}
            )
            assert response.status_code == 401, (method, path, response.text)


async def test_the_operator_calls_are_in_the_openapi_document_with_their_errors(operator_for):
    op = await operator_for(Listed)
    document = (await op.api.http.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/v1/journeys/{journey}/users"]) == {"get", "delete"}
    assert "401" in paths["/v1/journeys/{journey}/users"]["get"]["responses"]
    assert "404" in paths["/v1/journeys/{journey}/users/{user_id}"]["delete"]["responses"]
    assert "get" in paths["/v1/users/{user_id}/journeys"]
    assert "Problem" in document["components"]["schemas"]  # what their errors refer to
    for method in ("POST", "OPTIONS"):  # the Allow header names both methods of the listing
        other = await op.api.http.request(method, "/v1/journeys/op_users/users")
        assert (other.status_code, other.headers["allow"]) == (405, "GET, DELETE")
