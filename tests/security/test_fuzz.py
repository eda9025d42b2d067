"""The API fuzzed from its own OpenAPI document, over HTTP, with Temporal and a worker behind it.

Every operation gets schema-valid and schema-invalid requests (schemathesis: coverage, explicit
and generated phases; derandomized, so CI reruns the same cases). Each answer must not be a 5xx,
must match the documented status codes and body schemas, must reject what the schema calls
invalid and accept what it calls valid, and must refuse a missing or wrong API key. Some track
calls are steered onto the shipped journeys' trigger events, so fuzzed data really starts
journeys on the worker. Afterwards the database and Temporal are inspected: only answered-2xx
calls left a trace, every trace is well formed, and no journey's workflow task is failing.

Unsubscribe links are outside the OpenAPI document (a mail client follows them); random and
tampered tokens are fuzzed at the end. So are batches whose items are genuine calls with one
value spoiled (the document leaves items free-form: each is answered on its own), and signed
source payloads spoiled the same way, with values that once reached a 500 (times outside UTC's
years, several mailboxes in one address, amounts no float holds) among the replacements.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlmodel import select
from temporalio.client import Client, WorkflowExecutionStatus

from activities.store import EventReceipt, EventSummary, JourneyRun, ProfileRow
from activities.unsubscribe import make_token
from starter.api import create_app
from starter.settings import Settings
from starter.sources import sign_segment, sign_shopify, sign_standard_webhook, sign_stripe
from starter.sources.shopify import TOPICS as SHOPIFY_TOPICS
from tests.security.conftest import SOURCE_SECRETS, LiveStack
from tests.security.test_call_properties import GENUINE, HOSTILE_TEXT
from tests.sources.payloads import load
from workflows import registry
from workflows.identity import workflow_id

EXAMPLES = 100
"""Generated cases per operation on top of the coverage phase's; about 20 s for all of them."""

FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None)
"""Reproducible in CI (derandomized, no example database); no deadline: each case is a real
HTTP call through SQLite and Temporal, whose timing is not what is under test."""

DOCUMENT = create_app(Settings(_env_file=None, api_key=SecretStr("document-only"))).openapi()  # type: ignore[call-arg]
"""The API's OpenAPI document, built at import so pytest can collect one test per operation;
`test_the_fuzzed_document_is_the_one_the_live_api_serves` proves it is what the server serves."""

schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(allow_x00=False)
"""The API refuses a NUL character anywhere in a body (PostgreSQL cannot store one in text),
which JSON Schema cannot say for free-form objects; `test_a_nul_character_is_422_...` covers it."""

TRIGGERS = sorted(
    {name for journey in registry.load_modules(["workflows.journeys"]) for name in
     journey.events_of_interest()}
)  # fmt: skip
"""Every event a shipped journey starts on or listens to."""

WRITES = ("/v1/track", "/v1/identify", "/v1/batch")


@dataclass
class Record:
    """What the fuzz run was told, for the checks after it."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)
    """Message IDs the API answered "accepted" or "duplicate" for."""
    journeys: Counter[str] = field(default_factory=Counter)
    """Journeys started or signalled, by action."""
    started: set[str] = field(default_factory=set)
    """Workflow IDs the fuzzed calls started."""


RUN = Record()


def map_body(_: schemathesis.HookContext, body: Any) -> Any:
    """Put a third of the track calls on a shipped journey's event (chosen by a hash of the
    generated name, so reruns agree); only a name that is already valid is swapped, so a case
    the generator made invalid stays invalid."""
    calls = body.get("batch") if isinstance(body, dict) else None
    for call in calls if isinstance(calls, list) else [body]:
        event = call.get("event") if isinstance(call, dict) else None
        if isinstance(event, str) and 0 < len(event) <= 200:
            digest = zlib.crc32(event.encode("utf-8", "surrogatepass"))
            if digest % 3 == 0:
                call["event"] = TRIGGERS[digest // 3 % len(TRIGGERS)]
    return body


@schema.hooks.apply(map_body)
@schema.parametrize()
@FUZZ
def test_no_5xx_documented_answers_and_no_garbage_accepted(
    case: schemathesis.Case, live_stack: LiveStack
) -> None:
    response = case.call_and_validate(
        base_url=live_stack.url,
        headers={"Authorization": f"Bearer {live_stack.key}"},
        timeout=60,
    )
    RUN.statuses[(case.operation.path, response.status_code)] += 1
    if case.operation.path in WRITES and response.status_code == 200:
        body = response.json()
        for item in body.get("results", [body]):
            if item.get("status") in ("accepted", "duplicate"):
                RUN.accepted.add(item["messageId"])
                RUN.journeys.update(j["action"] for j in item["journeys"])
                RUN.started.update(
                    j["workflowId"] for j in item["journeys"] if j["action"] == "triggered"
                )


def test_the_fuzz_reached_temporal_and_left_only_well_formed_traces(
    live_stack: LiveStack,
) -> None:
    """After the fuzz above (pytest runs this module in order): what got in, and what it did."""
    assert RUN.statuses, "run the whole module: this checks what the fuzz tests left"
    for path in WRITES:  # the fuzz got calls through, not only errors
        assert RUN.statuses[(path, 200)] > 0, RUN.statuses
    assert RUN.journeys["triggered"] > 0, RUN.journeys  # and through to Temporal

    with live_stack.store.session() as session:
        receipts = list(session.exec(select(EventReceipt)))
        profiles = list(session.exec(select(ProfileRow)))
        summaries = list(session.exec(select(EventSummary)))
        runs = list(session.exec(select(JourneyRun)))
    assert receipts and profiles and summaries and runs
    # Only calls answered 2xx were recorded: a refused call leaves nothing behind.
    assert {r.message_id for r in receipts} <= RUN.accepted
    for receipt in receipts:
        assert 0 < len(receipt.user_id) <= 255 and 0 < len(receipt.message_id) <= 255
        assert receipt.kind in ("track", "identify") and receipt.routed_at is not None
        assert receipt.event is None or 0 < len(receipt.event) <= 200
    assert all(0 < len(p.user_id) <= 255 and isinstance(p.traits, dict) for p in profiles)
    assert all(0 < len(s.event) <= 200 and s.count > 0 for s in summaries)
    for run in runs:
        assert run.workflow_id == workflow_id(run.journey, run.user_id)

    failing = _failing_workflows(live_stack.client, live_stack.task_queue, RUN.started)
    assert live_stack.run(failing) == [], "fuzzed events broke these journeys' workflow code"


async def _failing_workflows(client: Client, task_queue: str, started: set[str]) -> list[str]:
    """Journeys on the queue whose workflow code failed: closed as failed, or a workflow task
    retried. Waits until visibility lists every ID in `started`, and each workflow has taken its
    pending work (or failed at it)."""
    listed_ids: set[str] = set()
    for _ in range(200):  # visibility lags starts by a moment
        executions = [w async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]
        listed_ids = {w.id for w in executions}
        if started <= listed_ids:
            break
        await asyncio.sleep(0.05)
    assert started <= listed_ids, f"never listed: {started - listed_ids}"
    failing: list[str] = []
    for listed in executions:
        handle = client.get_workflow_handle(listed.id, run_id=listed.run_id)
        for _ in range(600):
            description = await handle.describe()
            raw = description.raw_description
            task = raw.pending_workflow_task if raw.HasField("pending_workflow_task") else None
            if description.status != WorkflowExecutionStatus.RUNNING or task is None:
                break
            if task.attempt > 1:
                break
            await asyncio.sleep(0.05)
        if description.status in (
            WorkflowExecutionStatus.FAILED,
            WorkflowExecutionStatus.TERMINATED,
        ) or (task is not None and task.attempt > 1):
            failing.append(f"{listed.id}: {description.status}")
    return failing


def test_the_fuzzed_document_is_the_one_the_live_api_serves(live_stack: LiveStack) -> None:
    served = requests.get(f"{live_stack.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None)
@given(
    token=st.one_of(
        st.text(st.characters(codec="utf-8"), max_size=120),
        st.from_regex(
            r"[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{1,20}\.[A-Za-z0-9_-]{1,40}", fullmatch=True
        ),
    ),
    flip=st.integers(min_value=0, max_value=200),
)
def test_random_and_tampered_unsubscribe_links_unsubscribe_nobody(
    live_stack: LiveStack, token: str, flip: int
) -> None:
    """A forged or altered link is a 400 page (never a 5xx), and no profile changes."""
    victim = "unsubscribe-victim"
    live_stack.store.upsert_profile(victim, email="victim@example.test")
    genuine = make_token(live_stack.secret_key, victim, "cart_recovery")
    at = flip % len(genuine)
    altered = genuine[:at] + ("A" if genuine[at] != "A" else "B") + genuine[at + 1 :]
    for candidate in (token, altered):
        path = requests.utils.quote(candidate, safe="")
        answer = requests.post(f"{live_stack.url}/u/{path}", timeout=30)
        assert answer.status_code < 500, (candidate, answer.status_code)
        assert answer.status_code in (400, 404, 405), (candidate, answer.status_code)
    profile = live_stack.store.get_profile(victim)
    assert profile is not None and not profile.traits.get("unsubscribed")


TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.sampled_from(HOSTILE_TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
"""Any JSON value (without NUL, which the parser refuses before any source code sees it)."""

SEGMENT_CALL = {
    "type": "track", "event": "Product Added", "userId": "u-source", "messageId": "m-source",
    "timestamp": "2026-11-24T10:00:00Z", "properties": {"sku": "lamp", "price": 9.5},
    "context": {"traits": {"email": "source@example.test"}},
}  # fmt: skip
SOURCE_BODIES = {
    "shopify": [load("shopify_checkout"), load("shopify_order")],
    "stripe": [load("stripe_subscription_created"), load("stripe_subscription_deleted")],
    "webhook": [SEGMENT_CALL, [SEGMENT_CALL, {**SEGMENT_CALL, "type": "identify"}]],
    "segment": [SEGMENT_CALL],
    "batch": GENUINE,
}
"""Genuine payloads per source (and batch items), for the fuzz to spoil one part of."""


@st.composite
def spoiled(draw: st.DrawFn, source: str) -> Any:
    """A genuine payload of `source` with one value somewhere replaced by any JSON value."""
    payload = copy.deepcopy(draw(st.sampled_from(SOURCE_BODIES[source])))
    holders: list[tuple[Any, Any]] = []
    stack: list[Any] = [payload]
    while stack:
        node = stack.pop()
        keys = node.keys() if isinstance(node, dict) else range(len(node))
        for key in keys:
            holders.append((node, key))
            if isinstance(node[key], dict | list):
                stack.append(node[key])
    node, key = draw(st.sampled_from(holders))
    node[key] = draw(JSON_VALUES)
    return payload


SECRET_OF = {
    "shopify": "shopify_secret",
    "stripe": "stripe_secret",
    "webhook": "standard_webhook_secret",
    "segment": "segment_secret",
}


def signed(source: str, body: bytes, topic: str, seq: int) -> dict[str, str]:
    """The headers `source` would send with `body`, signed with the stack's secret."""
    key, now = SOURCE_SECRETS[SECRET_OF[source]].get_secret_value(), int(time.time())
    if source == "shopify":
        return {"X-Shopify-Hmac-Sha256": sign_shopify(body, key), "X-Shopify-Topic": topic,
                "X-Shopify-Webhook-Id": f"wh-{seq}"}  # fmt: skip
    if source == "stripe":
        return {"Stripe-Signature": sign_stripe(body, key, now)}
    if source == "webhook":
        signature = sign_standard_webhook(f"msg-{seq}", now, body, key)
        return {"webhook-id": f"msg-{seq}", "webhook-timestamp": str(now),
                "webhook-signature": signature}  # fmt: skip
    return {"X-Signature": sign_segment(body, key)}


@pytest.mark.parametrize("source", sorted(SECRET_OF))
def test_signed_but_spoiled_payloads_are_refused_or_taken_never_a_5xx(
    live_stack: LiveStack, source: str
) -> None:
    """A sender with the secret is trusted to sign, not to send well-formed payloads."""
    seq = iter(range(10**6))

    @settings(max_examples=EXAMPLES // 2, derandomize=True, database=None, deadline=None)
    @given(payload=spoiled(source), topic=st.sampled_from(sorted(SHOPIFY_TOPICS)))
    def one(payload: Any, topic: str) -> None:
        body = json.dumps(payload).encode()
        headers = signed(source, body, topic, next(seq))
        answer = requests.post(f"{live_stack.url}/v1/sources/{source}", data=body,
                               headers=headers, timeout=60)  # fmt: skip
        assert answer.status_code in (200, 400, 422), (answer.status_code, answer.text)
        if answer.status_code == 200:
            assert answer.json()["status"] in ("accepted", "ignored")

    one()


@settings(max_examples=EXAMPLES // 2, derandomize=True, database=None, deadline=None)
@given(items=st.lists(spoiled("batch"), min_size=1, max_size=3))
def test_spoiled_batches_are_answered_item_by_item_never_a_5xx(
    live_stack: LiveStack, items: list[Any]
) -> None:
    """Items with a wrong type, context, messageId or time once made the whole batch a 500."""
    answer = requests.post(
        f"{live_stack.url}/v1/batch",
        json={"batch": items},
        headers={"Authorization": f"Bearer {live_stack.key}"},
        timeout=60,
    )
    if not all(isinstance(item, dict) for item in items):
        assert answer.status_code == 422, answer.text  # an item that is not an object at all
        return
    assert answer.status_code == 200, (answer.status_code, answer.text)
    results = answer.json()["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    for result in results:
        assert result["status"] in ("accepted", "duplicate", "ignored", "rejected"), result
        if result["status"] == "rejected":
            assert result["errors"] and all(e["field"] for e in result["errors"]), result


def call(user: str, kind: str = "track", **fields: str) -> bytes:
    """A call for `user` with raw JSON `fields` spliced in (they need not be valid JSON)."""
    event = ',"event":"Product Added"' if kind == "track" else ""
    extra = "".join(f',"{k}":{v}' for k, v in fields.items())
    return f'{{"type":"{kind}"{event},"userId":"{user}"{extra}}}'.encode()


NOT_JSON = {
    "u-nan": call("u-nan", properties='{"p":NaN}'),
    "u-inf": call("u-inf", properties='{"p":-Infinity}'),
    "u-big": call("u-big", properties='{"p":1e400}'),
    "u-int": call("u-int", properties='{"p":' + "9" * 5000 + "}"),
    "u-deep": call("u-deep", properties='{"a":' * 3000 + "1" + "}" * 3000),
}
"""Python's json module takes all of these (or dies of recursion); none is JSON (RFC 8259)."""

WITH_NUL = {
    "userId": call("u\\u0000"),
    "event": b'{"type":"track","event":"Product\\u0000Added","userId":"u-nul-event"}',
    "messageId": call("u-nul-message", messageId='"m\\u0000"'),
    "properties.sku": call("u-nul-property", properties='{"sku":"\\u0000"}'),
    "traits.email": call("u-nul-mail", "identify", traits='{"email":"a\\u0000@x.test"}'),
}
"""Valid JSON, but PostgreSQL cannot store a NUL in text (it would answer 503 for ever)."""


def test_what_is_not_strict_json_is_400_and_leaves_nothing(live_stack: LiveStack) -> None:
    headers = {"Authorization": f"Bearer {live_stack.key}"}
    for user, body in NOT_JSON.items():
        for path, content in (("/v1/track", body), ("/v1/batch", b'{"batch":[' + body + b"]}")):
            answer = requests.post(live_stack.url + path, data=content, headers=headers, timeout=60)
            assert answer.status_code == 400, (user, path, answer.text)
            assert answer.json()["detail"] == "malformed JSON body"
        with live_stack.store.session() as session:
            assert (
                session.exec(select(EventReceipt).where(EventReceipt.user_id == user)).all() == []
            )


@pytest.mark.both_databases
async def test_a_nul_character_is_422_naming_the_field_on_either_database(api_for) -> None:
    api = await api_for(*registry.load_modules(["workflows.journeys"]))
    for field_name, body in WITH_NUL.items():
        path = "/v1/identify" if b'"identify"' in body else "/v1/track"
        answer = await api.http.post(path, content=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"] == [
            {"field": field_name, "error": "a NUL character is not allowed"}
        ]


@pytest.mark.both_databases
async def test_timestamps_at_the_ends_of_time_start_journeys_that_do_not_crash(api_for) -> None:
    api = await api_for(*registry.load_modules(["workflows.journeys"]))
    started: set[str] = set()
    for when in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-01-01T00:00:00+23:59"):
        user = f"u-{uuid.uuid4().hex[:10]}"  # the Temporal server outlives the test
        answer = await api.http.post("/v1/track", content=call(user, timestamp=f'"{when}"'))
        assert answer.status_code == 200, answer.text
        [journey] = answer.json()["journeys"]
        assert journey["action"] == "triggered"
        started.add(journey["workflowId"])
    failing = await _failing_workflows(api.stack.client, api.stack.router.task_queue, started)
    assert failing == []
