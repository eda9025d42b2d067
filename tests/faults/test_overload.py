"""Load past what the API can take: refused fast with 503 and Retry-After, never lost.

A burst far above a low JOURNEYS_API_MAX_IN_FLIGHT, and Temporal itself refusing for load
(RESOURCE_EXHAUSTED from a dev server with a tiny namespace rate limit). In both, every answer
is 200 or 503 with Retry-After (no other 5xx, no timeout), every call that got a 200 is in the
store and in Temporal, a refused call left nothing behind, and sending it again later works.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig, RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.store import EventReceipt, Store
from starter.api import create_app
from starter.dev import temporal_binary
from starter.settings import Settings
from tests.conftest import serving
from tests.engine.sample_journeys import Cart
from worker import ensure_search_attributes
from workflows.identity import workflow_id

LIMIT = 8
SINGLES = 150
BATCHES = 10
PER_BATCH = 5
CONCURRENCY = 150
RATE_LIMITED = ["--log-level", "error"] + [
    arg
    for value in ("frontend.namespaceRPS=10", "frontend.namespaceBurstRatio=1")
    for arg in ("--dynamic-config-value", value)
]
"""A namespace that takes ten requests a second: Temporal answers RESOURCE_EXHAUSTED past it."""


def track(user: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Added",
        "userId": user,
        "messageId": f"m-{user}",
        "properties": {"sku": "chair", "price": 120},
    }


@dataclass
class Post:
    """One request of the burst and the events it carries (one user, one journey each)."""

    path: str
    body: dict[str, Any]
    users: list[str]
    answers: list[httpx.Response] = field(default_factory=list)

    @property
    def message_ids(self) -> list[str]:
        return [f"m-{user}" for user in self.users]


def burst(run: str) -> list[Post]:
    """Singles and batches interleaved: each batch borrows slots the singles compete for."""
    posts = [Post("/v1/track", track(f"{run}-{i}"), [f"{run}-{i}"]) for i in range(SINGLES)]
    for b in range(BATCHES):
        users = [f"{run}-b{b}-{i}" for i in range(PER_BATCH)]
        post = Post("/v1/batch", {"batch": [track(u) for u in users]}, users)
        posts.insert(b * (SINGLES // BATCHES), post)
    return posts


async def send_all(http: httpx.AsyncClient, posts: list[Post], concurrency: int) -> None:
    """Post each at most `concurrency` at a time; a timeout or a dropped connection fails here."""
    gate = asyncio.Semaphore(concurrency)

    async def one(post: Post) -> None:
        async with gate:
            post.answers.append(await http.post(post.path, json=post.body))

    await asyncio.gather(*(one(post) for post in posts))


def last(post: Post) -> httpx.Response:
    return post.answers[-1]


def refused_for_load(response: httpx.Response) -> bool:
    return response.status_code == 503 and response.json()["detail"].startswith("busy")


def receipts(store: Store, message_ids: list[str]) -> dict[str, EventReceipt]:
    with store.session() as session:
        rows = session.exec(
            select(EventReceipt).where(col(EventReceipt.message_id).in_(message_ids))
        ).all()
    return {row.message_id: row for row in rows}


async def signalled_message_ids(
    client: Client, users: list[str], concurrency: int = 20
) -> dict[str, bool]:
    """Per user: whether their t_cart workflow exists and its history holds their event."""
    gate = asyncio.Semaphore(concurrency)

    async def one(user: str) -> bool:
        async with gate:
            try:
                history = await client.get_workflow_handle(
                    workflow_id("t_cart", user)
                ).fetch_history()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
        wanted = f"m-{user}".encode()
        return any(
            wanted in payload.data
            for event in history.events
            if event.HasField("workflow_execution_signaled_event_attributes")
            for payload in event.workflow_execution_signaled_event_attributes.input.payloads
        )

    found = await asyncio.gather(*(one(user) for user in users))
    return dict(zip(users, found, strict=True))


def metric(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_a_burst_past_the_in_flight_limit_is_refused_and_nothing_acknowledged_is_lost(
    api_for,
):
    api = await api_for(Cart, api_max_in_flight=LIMIT)
    posts = burst(uuid.uuid4().hex[:8])
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    headers = {"Authorization": f"Bearer {api.key}"}
    async with httpx.AsyncClient(
        base_url=api.url, headers=headers, limits=limits, timeout=60
    ) as http:
        await send_all(http, posts, CONCURRENCY)

    statuses = [last(p).status_code for p in posts]
    assert set(statuses) <= {200, 503}, statuses
    assert all(last(p).headers["Retry-After"] for p in posts if last(p).status_code == 503)
    taken = [p for p in posts if last(p).status_code == 200]
    refused = [p for p in posts if refused_for_load(last(p))]
    assert taken and refused, f"{len(taken)} taken, {len(refused)} refused: the limit never bit"

    # Every 200 is durable: routed in the store, and the event is in its journey's history.
    taken_ids = [m for p in taken for m in p.message_ids]
    rows = receipts(api.stack.store, taken_ids)
    assert sorted(m for m, row in rows.items() if row.routed_at is not None) == sorted(taken_ids)
    in_temporal = await signalled_message_ids(api.stack.client, [u for p in taken for u in p.users])
    assert all(in_temporal.values()), [u for u, ok in in_temporal.items() if not ok]

    # A refusal took nothing: no receipt, no journey.
    refused_users = [u for p in refused for u in p.users]
    assert not receipts(api.stack.store, [m for p in refused for m in p.message_ids])
    assert not any((await signalled_message_ids(api.stack.client, refused_users)).values())
    scrape = (await api.http.get("/metrics")).text
    assert metric(scrape, "journeys_api_requests_refused_total", reason="in_flight") == len(refused)
    assert metric(scrape, "journeys_api_in_flight") == 0

    # Sent again as a sender retries (after Retry-After), every refused call is taken, as new.
    retried = [p for p in posts if last(p).status_code != 200]
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=60) as http:
        for _ in range(10):
            again = [p for p in retried if last(p).status_code != 200]
            if not again:
                break
            await asyncio.sleep(float(last(again[0]).headers["Retry-After"]))
            await send_all(http, again, LIMIT)
    assert [last(p).status_code for p in retried] == [200] * len(retried)
    for post in refused:
        body = last(post).json()
        items = body["results"] if post.path == "/v1/batch" else [body]
        assert {item["status"] for item in items} == {"accepted"}
    everyone = [u for p in posts for u in p.users]
    assert all((await signalled_message_ids(api.stack.client, everyone)).values())
    all_ids = [m for p in posts for m in p.message_ids]
    assert all(row.routed_at for row in receipts(api.stack.store, all_ids).values())
    assert len(receipts(api.stack.store, all_ids)) == SINGLES + BATCHES * PER_BATCH


# Temporal refusing for load ---------------------------------------------------------------------


@pytest.fixture
async def rate_limited_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of its own whose namespace takes a few requests a second."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=RATE_LIMITED,
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


async def test_temporal_resource_exhausted_is_503_with_retry_after_never_500(
    rate_limited_temporal, store
):
    env = rate_limited_temporal
    # The API's client gives up after one quick retry, so the server's refusal reaches the API
    # now (by default the SDK retries RESOURCE_EXHAUSTED for up to ten seconds first).
    client = await Client.connect(
        env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        retry_config=RetryConfig(max_retries=1, max_elapsed_time_millis=500),
    )
    key = uuid.uuid4().hex
    settings = Settings(api_key=SecretStr(key), task_queue=f"tq-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, client=client, store=store, journeys=[Cart])
    run = uuid.uuid4().hex[:8]
    posts = [Post("/v1/track", track(f"{run}-{i}"), [f"{run}-{i}"]) for i in range(30)]
    async with (
        serving(app) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as http,
    ):
        await send_all(http, posts, len(posts))
        statuses = [last(p).status_code for p in posts]
        assert set(statuses) <= {200, 503}, statuses
        busy = [p for p in posts if last(p).status_code == 503]
        assert busy, "the namespace rate limit never bit"
        for post in busy:
            assert "RESOURCE_EXHAUSTED" in last(post).json()["detail"]
            assert last(post).headers["Retry-After"]
        scrape = (await http.get("/metrics")).text
        assert metric(scrape, "journeys_api_requests_refused_total", reason="temporal_busy") == len(
            busy
        )

        # The sender's retry, paced under the limit, gets every refused event in.
        for post in busy:
            for _ in range(40):
                await asyncio.sleep(0.25)
                post.answers.append(await http.post(post.path, json=post.body))
                if last(post).status_code != 503:
                    break
            assert last(post).status_code == 200, last(post).text
    # env.client retries RESOURCE_EXHAUSTED itself; five at a time stays under the limit.
    users = [p.users[0] for p in posts]
    assert all((await signalled_message_ids(env.client, users, concurrency=5)).values())
