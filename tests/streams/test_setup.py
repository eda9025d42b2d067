"""How the consumer is set up: `journeys dev` with JOURNEYS_AMQP_URL consumes beside the API,
`journeys consume` refuses a wrong URL or login clearly, and docker-compose's `streams` profile
runs it with settings the code reads."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import pytest

from activities.store import Store
from starter.settings import Settings
from starter.streams.command import broker_source, describe
from tests.starter.test_dev import Dev
from tests.streams.broker import JOURNEYS, ROOT, TEST_AMQP_URL, eventually, signed_up
from tests.test_deployment import COMPOSE, SAMPLE, resolved


async def test_journeys_dev_consumes_the_queue_beside_the_api(broker, queue, tmp_path):
    dev = Dev(tmp_path)
    dev.env.update(JOURNEYS_AMQP_URL=TEST_AMQP_URL, JOURNEYS_AMQP_QUEUE=queue)
    dev.env.update(JOURNEYS_METRICS_ADDRESS="", JOURNEYS_QUIET_HOURS="")
    user = f"dev-{time.time_ns()}"
    with dev:
        assert f"events queue     {queue} on amqp://journeys:***@" in dev.output
        assert "journeys:journeys@" not in dev.output  # never the password
        await broker.publish(queue, signed_up(user))
        store = Store(f"sqlite:///{tmp_path / 'journeys.db'}")
        try:
            # The shipped onboarding journey starts on Signed Up (entered, treated or held out).
            await eventually(lambda: store.runs("onboarding", user), "the journey entered", 60)
        finally:
            store.dispose()
        assert dev.stop() == 0, dev.output
    assert await broker.ready(queue) == 0


def test_the_queue_and_prefetch_come_from_the_flags_else_the_url_else_the_settings():
    settings = Settings(_env_file=None, amqp_queue="from-settings", amqp_prefetch=7)
    url = "amqp://u:secret@host:5672/vh?queue=from-url&prefetch=3&heartbeat=30"
    source = broker_source(settings, url)
    assert source is not None and (source.queue, source.prefetch) == ("from-url", 3)
    assert source.url == "amqp://u:secret@host:5672/vh?heartbeat=30"  # the rest is aio-pika's
    flagged = broker_source(settings, url, "from-flag", 9)
    assert flagged is not None and (flagged.queue, flagged.prefetch) == ("from-flag", 9)
    bare = broker_source(settings, "amqps://host/vh")
    assert bare is not None and (bare.queue, bare.prefetch) == ("from-settings", 7)
    assert broker_source(settings) is None  # no JOURNEYS_AMQP_URL: dev runs no consumer
    assert "secret" not in describe(source) and "u:***@host" in describe(source)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://u:secret@host/vhost", "not an AMQP URL (amqp:// or amqps://): http://u:***@host"),
        ("amqp://host/?prefetch=0", "prefetch must be 1 or more, not 0"),
        ("amqp://host/?prefetch=many", "prefetch must be a number, not 'many'"),
    ],
)
def test_a_url_that_cannot_be_used_is_refused_naming_why(url: str, error: str):
    with pytest.raises(ValueError, match=re.escape(error)):
        broker_source(Settings(_env_file=None), url)


def test_journeys_consume_without_a_url_says_what_to_set(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "JOURNEYS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [JOURNEYS, "consume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "give an amqp:// URL or set JOURNEYS_AMQP_URL" in done.stderr


def test_journeys_consume_stops_at_once_on_a_login_the_broker_refuses(broker, tmp_path):
    wrong = TEST_AMQP_URL.replace("journeys:journeys@", "journeys:wrong-password@")
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "JOURNEYS_DATA_DIR": str(tmp_path),
        "JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'journeys.db'}",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",  # connected lazily: the broker refuses first
    }  # fmt: skip
    done = subprocess.run(
        [JOURNEYS, "consume", wrong + "?queue=never-declared"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "refused" in done.stderr and "wrong-password" not in done.stderr


def test_the_compose_consumer_reads_settings_the_code_knows(monkeypatch):
    services = COMPOSE["services"]
    consumer, rabbitmq = services["consumer"], services["rabbitmq"]
    assert consumer["command"] == ["journeys", "consume"]
    assert consumer["profiles"] == rabbitmq["profiles"] == ["streams"]
    assert consumer["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert consumer["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    monkeypatch.setitem(SAMPLE, "RABBITMQ_PASSWORD", "rabbit-pw")
    env: dict[str, Any] = {k: resolved(v) for k, v in consumer["environment"].items()}
    known = {f"JOURNEYS_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= known | {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    source = broker_source(Settings(_env_file=None))
    assert source is not None
    vhost = resolved(rabbitmq["environment"]["RABBITMQ_DEFAULT_VHOST"])
    user = resolved(rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"])
    assert source.url == f"amqp://{user}:rabbit-pw@rabbitmq:5672/{vhost}"
    assert (source.queue, source.prefetch) == ("journeys.events", 64)
    assert rabbitmq["ports"] == ["127.0.0.1:5672:5672"]  # never beyond the host's loopback
