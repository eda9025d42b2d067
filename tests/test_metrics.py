"""Metrics as Prometheus scrapes them: the worker's endpoint and the API's GET /metrics.

Counters are read before and after what a user does, and must move by exactly that.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from activities import metrics as worker_metrics
from activities.sending import SendingActivities
from starter.sources import sign_segment
from tests.conftest import NO_LIMITS, make_stack
from tests.engine.sample_journeys import Cart
from worker import create_worker

JOURNEYS = Path(sys.executable).parent / "journeys"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def value(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def track(user: str, message_id: str | None = None, event: str = "Product Added") -> dict:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": message_id or f"m-{uuid.uuid4()}",
        "properties": {"sku": "chair", "price": 120},
    }


# The worker -----------------------------------------------------------------------------------


@pytest.fixture
async def scraped_worker(temporal, store, executor) -> Any:
    """A worker whose Temporal client exports Prometheus on its own port; yields (stack, url)."""
    port = free_port()
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))
    )
    client = await Client.connect(
        temporal.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    stack, task_queue = make_stack(temporal, store, [Cart])
    sending = SendingActivities(store, policy=NO_LIMITS)
    async with create_worker(client, store, task_queue, executor, sending):
        yield stack, f"http://127.0.0.1:{port}/metrics"


async def test_the_worker_endpoint_counts_entries_sends_and_skips_by_journey(scraped_worker):
    stack, url = scraped_worker
    async with httpx.AsyncClient(timeout=30) as http:
        before = (await http.get(url)).text
        reached = stack.user("reached")  # has an email address: the reminder goes out
        unreachable = stack.user("unreachable", email=False)  # no address: skipped
        for user in (reached, unreachable):
            await stack.track("Product Added", user, {"sku": "chair", "price": 120})
            await stack.advance("t_cart", user, timedelta(minutes=61))
        assert len(stack.outbox(reached)) == 1 and not stack.outbox(unreachable)
        after = (await http.get(url)).text

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    email = {"journey": "t_cart", "channel": "email"}
    assert moved("journeys_messages_sent_total", **email) == 1
    assert moved("journeys_messages_skipped_total", **email, reason="no_address") == 1
    assert moved("journeys_messages_skipped_total", **email) == 1  # no other reason
    assert moved("journeys_messages_failed_total", **email) == 0
    assert moved("journeys_journeys_entered_total", journey="t_cart", group="treatment") == 2
    # The same endpoint carries the Temporal SDK's own worker metrics.
    assert value(after, "temporal_activity_execution_latency_count", activity_type="send_message")
    # Names, channels and reasons only: no user reaches the metrics.
    assert reached not in after and unreachable not in after and "@" not in after


def test_a_taken_metrics_address_leaves_the_worker_running_without_metrics():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert worker_metrics.serve(f"127.0.0.1:{taken.getsockname()[1]}") is False
    assert worker_metrics.serve("") is False


@pytest.fixture
def worker_process(temporal, tmp_path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`journeys worker` with JOURNEYS_METRICS_ADDRESS on a free port; yields (process, url)."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'journeys.db'}",
        "JOURNEYS_TASK_QUEUE": f"tq-{uuid.uuid4().hex[:8]}",
        "JOURNEYS_METRICS_ADDRESS": address,
    }
    process = subprocess.Popen(
        [JOURNEYS, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process, f"http://{address}/metrics"
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


def test_journeys_worker_serves_metrics_where_the_setting_says_and_says_where(worker_process):
    process, url = worker_process
    assert process.stdout is not None
    output = ""
    deadline = time.monotonic() + 60
    while f"metrics at {url}" not in output:
        line = process.stdout.readline()
        assert line or process.poll() is None, f"the worker exited:\n{output}"
        output += line
        assert time.monotonic() < deadline, f"the worker never said where metrics are:\n{output}"
    text = httpx.get(url, timeout=30).text
    families = {family.name for family in text_string_to_metric_families(text)}
    assert any(name.startswith("temporal_") for name in families), text  # the SDK's own


# The API ---------------------------------------------------------------------------------------


async def test_the_api_counts_accepted_duplicate_and_rejected_calls(api_for):
    api = await api_for(Cart, segment_secret=SecretStr("segment-secret"))
    before = (await api.http.get("/metrics")).text
    user = f"metrics-{uuid.uuid4().hex[:8]}"
    first = track(user, f"m-{user}")

    assert (await api.http.post("/v1/track", json=first)).json()["status"] == "accepted"
    assert (await api.http.post("/v1/track", json=first)).json()["status"] == "duplicate"
    identify = {"userId": user, "traits": {"email": f"{user}@example.test"}}
    assert (await api.http.post("/v1/identify", json=identify)).status_code == 200
    batch = {"batch": [track(f"{user}-{i}") for i in range(3)] + [{"type": "track"}]}
    assert (await api.http.post("/v1/batch", json=batch)).status_code == 200  # 3 taken, 1 not
    body = json.dumps(track(f"{user}-segment")).encode()
    signed = {"X-Signature": sign_segment(body, "segment-secret")}
    assert (
        await api.http.post("/v1/sources/segment", content=body, headers=signed)
    ).status_code == 200
    assert (await api.http.post("/v1/track", content=b"{")).status_code == 400
    assert (await api.http.post("/v1/track", json={"event": "x"})).status_code == 422
    wrong_key = {"Authorization": "Bearer not-the-key"}
    assert (await api.http.post("/v1/track", json=first, headers=wrong_key)).status_code == 401
    after = (await api.http.get("/metrics")).text

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    accepted = "journeys_api_events_accepted_total"
    assert moved(accepted, kind="track", source="api") == 1 + 3
    assert moved(accepted, kind="identify", source="api") == 1
    assert moved(accepted, kind="track", source="segment") == 1
    assert moved("journeys_api_events_duplicate_total", kind="track", source="api") == 1
    rejected = "journeys_api_requests_rejected_total"
    assert [moved(rejected, status=s) for s in ("400", "401", "422", "503")] == [1, 1, 1, 0]
    assert moved("journeys_api_requests_refused_total") == 0
    assert value(after, "journeys_api_in_flight") == 0  # every slot, batch ones too, given back
    assert value(after, "journeys_api_max_in_flight") == api.settings.api_max_in_flight
    assert user not in after and "@" not in after


async def test_api_metrics_need_the_api_key(api_for):
    api = await api_for(Cart)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
        wrong = await anonymous.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
    response = await api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
