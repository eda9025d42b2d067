"""Bodies a sender can write that once reached code answering 500, which senders retry for ever;
and email addresses that name more than one mailbox. Over real HTTP on the live stack.

Each hostile body is a 400 or 422 naming the field (in a batch: that item "rejected" naming
its field, the others taken), nothing of it is recorded, and a 5xx never comes back. An email
trait must be exactly one address: "v@x.com, a@evil.com" would reach a provider's `To` and mail
both, so identify refuses it, and the send skips any such address already stored
("invalid_address"), whatever wrote it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import select

from activities.holdout import assign_group
from activities.store import EventReceipt, Store
from starter.sources import sign_segment, sign_shopify, sign_standard_webhook
from tests.security.conftest import SOURCE_SECRETS, LiveStack
from tests.sources.payloads import load
from workflows.journeys.onboarding import Onboarding

SHOPIFY = SOURCE_SECRETS["shopify_secret"].get_secret_value()
STANDARD = SOURCE_SECRETS["standard_webhook_secret"].get_secret_value()
SEGMENT = SOURCE_SECRETS["segment_secret"].get_secret_value()

BEFORE_YEAR_ONE = "0001-01-01T00:00:00+01:00"
"""A valid ISO-8601 date-time whose instant is before 0001-01-01 UTC: no datetime holds it."""
AFTER_9999 = "9999-12-31T23:59:59-01:00"

NOT_ONE_ADDRESS = [
    "v@x.com, a@evil.com",
    "v@x.com;a@evil.com",
    "Victim <v@x.com>",
    "v@x.com (a@evil.com)",
    '"a@evil.com, v"@x.com',
    "v@x.com\r\nBcc: a@evil.com",
    "v@[127.0.0.1]",
    "v@x.com ",
    "not an address",
]
"""Each one a provider could read as another recipient, a header, or nobody."""


@dataclass
class Api:
    http: httpx.AsyncClient
    store: Store


@pytest.fixture
async def api(live_stack: LiveStack) -> AsyncIterator[Api]:
    headers = {"Authorization": f"Bearer {live_stack.key}"}
    async with httpx.AsyncClient(base_url=live_stack.url, headers=headers, timeout=60) as http:
        yield Api(http, live_stack.store)


def user_id() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def receipts(api: Api, user: str) -> list[EventReceipt]:
    with api.store.session() as session:
        return list(session.exec(select(EventReceipt).where(EventReceipt.user_id == user)))


def fields(answer: httpx.Response) -> list[str]:
    return [error["field"] for error in answer.json()["errors"]]


# Batches ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "field"),
    [
        pytest.param({"type": []}, "type", id="type-is-a-list"),
        pytest.param({"type": {"a": 1}}, "type", id="type-is-an-object"),
        pytest.param(
            {"type": "track", "userId": "u", "event": "e", "context": "x"},
            "context",
            id="context-is-a-string",
        ),
        pytest.param(
            {"type": "track", "userId": "u", "event": "e", "context": []},
            "context",
            id="context-is-a-list",
        ),
        pytest.param({"type": "page", "messageId": 5}, "messageId", id="ignored-with-bad-id"),
        pytest.param({"type": "screen", "messageId": "m" * 256}, "messageId", id="ignored-long-id"),
        pytest.param(
            {"type": "track", "userId": "u", "event": "e", "timestamp": BEFORE_YEAR_ONE},
            "timestamp",
            id="before-year-one",
        ),
        pytest.param(
            {"type": "identify", "userId": "u", "traits": {"email": "v@x.com, a@x.com"}},
            "traits.email",
            id="two-addresses",
        ),
        pytest.param(
            {
                "type": "track",
                "userId": "u",
                "event": "e",
                "context": {"traits": {"email": "v@x.com, a@x.com"}},
            },
            "context.traits.email",
            id="two-addresses-in-context",
        ),
    ],
)
async def test_a_hostile_batch_item_is_rejected_naming_its_field_and_the_rest_are_taken(
    api: Api, item: dict[str, Any], field: str
) -> None:
    user = user_id()
    good = {"type": "track", "userId": user, "event": "Page Viewed", "messageId": f"m-{user}"}
    answer = await api.http.post("/v1/batch", json={"batch": [item, good]})
    assert answer.status_code == 200, answer.text
    [bad, taken] = answer.json()["results"]
    assert bad["status"] == "rejected" and field in [e["field"] for e in bad["errors"]], bad
    assert taken["status"] == "accepted", taken
    assert [r.message_id for r in receipts(api, user)] == [f"m-{user}"]


async def test_a_batch_whose_own_context_is_hostile_is_a_422_naming_it(api: Api) -> None:
    user = user_id()
    call = {"type": "track", "userId": user, "event": "Page Viewed"}
    for context, field in (
        ("x", "context"),
        ({"traits": "x"}, "context.traits"),
        ({"traits": {"email": "v@x.com, a@evil.com"}}, "context.traits.email"),
    ):
        answer = await api.http.post("/v1/batch", json={"batch": [call], "context": context})
        assert answer.status_code == 422, answer.text
        assert field in fields(answer)
    assert receipts(api, user) == []


# Timestamps at the ends of time ---------------------------------------------------------------


@pytest.mark.parametrize("when", [BEFORE_YEAR_ONE, AFTER_9999])
@pytest.mark.parametrize("name", ["timestamp", "originalTimestamp", "sentAt", "receivedAt"])
async def test_a_time_outside_utc_years_1_to_9999_is_a_422_naming_the_field(
    api: Api, when: str, name: str
) -> None:
    user = user_id()
    for path, call in (
        ("/v1/track", {"userId": user, "event": "Product Added"}),
        ("/v1/identify", {"userId": user, "traits": {"plan": "pro"}}),
    ):
        answer = await api.http.post(path, json={**call, name: when})
        assert answer.status_code == 422, (path, answer.text)
        assert fields(answer) == [name]
        assert when not in answer.text  # the field, never the value
    answer = await api.http.post(
        "/v1/batch",
        json={"batch": [{"type": "track", "userId": user, "event": "x"}], "sentAt": when},
    )
    assert answer.status_code == 422 and fields(answer) == ["sentAt"]
    assert receipts(api, user) == []


def standard_headers(body: bytes, msg_id: str) -> dict[str, str]:
    now = int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign_standard_webhook(msg_id, now, body, STANDARD),
    }


@pytest.mark.parametrize("when", [BEFORE_YEAR_ONE, AFTER_9999])
async def test_every_source_refuses_a_time_outside_utc_years_1_to_9999_with_a_422(
    api: Api, when: str
) -> None:
    user = user_id()
    call = json.dumps(
        {"type": "track", "event": "Product Added", "userId": user, "messageId": f"m-{user}",
         "timestamp": when}
    ).encode()  # fmt: skip
    order = load("shopify_order")
    order["customer"]["id"] = user
    order_body = json.dumps(order).encode()
    cases = [
        ("webhook", call, standard_headers(call, f"msg-{user}")),
        ("segment", call, {"X-Signature": sign_segment(call, SEGMENT)}),
        ("shopify", order_body, {"X-Shopify-Hmac-Sha256": sign_shopify(order_body, SHOPIFY),
                                 "X-Shopify-Topic": "orders/create",
                                 "X-Shopify-Webhook-Id": f"wh-{user}",
                                 "X-Shopify-Triggered-At": when}),
    ]  # fmt: skip
    for source, body, headers in cases:
        answer = await api.http.post(f"/v1/sources/{source}", content=body, headers=headers)
        assert answer.status_code == 422, (source, answer.status_code, answer.text)
        assert "1 to 9999" in answer.text and when not in answer.text
    assert receipts(api, user) == []


# Email addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize("address", NOT_ONE_ADDRESS)
async def test_an_email_trait_that_is_not_exactly_one_address_is_a_422_naming_it(
    api: Api, address: str
) -> None:
    user = user_id()
    for path, call, field in (
        ("/v1/identify", {"userId": user, "traits": {"email": address}}, "traits.email"),
        ("/v1/identify", {"userId": user, "context": {"traits": {"email": address}}},
         "context.traits.email"),
        ("/v1/track", {"userId": user, "event": "Signed Up",
                       "context": {"traits": {"email": address}}}, "context.traits.email"),
    ):  # fmt: skip
        answer = await api.http.post(path, json=call)
        assert answer.status_code == 422, (path, answer.text)
        assert fields(answer) == [field]
        assert "evil" not in answer.text  # the field is named, the value never echoed
    body = json.dumps(
        {"type": "identify", "userId": user, "messageId": f"m-{user}", "traits": {"email": address}}
    ).encode()
    answer = await api.http.post(
        "/v1/sources/segment", content=body, headers={"X-Signature": sign_segment(body, SEGMENT)}
    )
    assert answer.status_code == 422 and fields(answer) == ["traits.email"], answer.text
    assert api.store.get_profile(user) is None and receipts(api, user) == []


async def test_one_address_empty_or_null_is_taken_and_only_the_address_is_mailable(
    api: Api,
) -> None:
    """The controls: a plain address, a tagged one, and "no address" (empty or null)."""
    for email, mailable in (
        ("ada.lovelace+news@example.co.uk", True),
        ("o'brien@example.test", True),
        ("", False),
        (None, False),
    ):
        user = user_id()
        answer = await api.http.post(
            "/v1/identify", json={"userId": user, "traits": {"email": email}}
        )
        assert answer.status_code == 200, answer.text
        profile = api.store.get_profile(user)
        assert profile is not None and profile.email == (email if mailable else None)


def onboarding_user() -> str:
    """A user ID in onboarding's treatment group (held-out users are never sent anything)."""
    while True:
        user = user_id()
        if assign_group(Onboarding.name, user, Onboarding.holdout) == "treatment":
            return user


async def welcome_step(api: Api, user: str) -> Any:
    """The onboarding welcome's send step for `user`, once the worker recorded it."""
    for _ in range(400):
        for run in api.store.runs(journey=Onboarding.name, user_id=user):
            for step in api.store.steps(run.run_id):
                if step.kind == "send" and step.name == "welcome":
                    return step
        await asyncio.sleep(0.05)
    raise AssertionError(f"no welcome step for {user}")


async def test_a_stored_address_that_is_not_exactly_one_is_never_sent_to(api: Api) -> None:
    """Written before the API checked addresses (or by anything else that writes profiles):
    the send is skipped as invalid_address; the journey carries on, nothing reaches a provider."""
    victim, control = onboarding_user(), onboarding_user()
    api.store.upsert_profile(victim, email="v@x.com, a@evil.com")
    api.store.upsert_profile(control, email=f"{control}@example.test")
    for user in (victim, control):
        answer = await api.http.post("/v1/track", json={"userId": user, "event": "Signed Up"})
        assert answer.status_code == 200, answer.text
        assert [j["action"] for j in answer.json()["journeys"]] == ["triggered"]

    skipped = await welcome_step(api, victim)
    assert (skipped.status, skipped.detail) == ("skipped", "invalid_address")
    assert api.store.outbox(victim) == []
    sent = await welcome_step(api, control)
    assert sent.status == "sent"
    [message] = api.store.outbox(control)
    assert message.recipient == f"{control}@example.test"
