"""The scale benchmarks' moving parts work (not how fast: benchmarks print figures, never
assert them): the arguments of `bench.ingest` for replicas, the round-robin in front of them,
the bare SDK journey the worker is compared with, and the provider stand-in of the
exactly-once check."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio.testing import TimeSkipper, WorkflowEnvironment

from activities.providers import ProviderConfig, create_provider
from activities.providers.base import OutgoingMessage
from bench import esp, raw_worker, scale
from bench.ingest import RoundRobin, arguments
from bench.raw_journey import RawStart
from tests.conftest import settle


def test_replicas_and_postgres_url_turn_the_scale_phases_on() -> None:
    args = arguments(
        ["--database-url", "postgresql://u:p@db/journeys", "--workers", "2", "--apis", "2"]
    )
    assert (args.workers, args.apis) == (2, 2)
    assert args.database_url == "postgresql+psycopg://u:p@db/journeys"
    assert scale.wanted(args)
    assert not scale.wanted(arguments([]))
    assert not scale.wanted(arguments(["--workers", "2", "--apis", "2", "--no-scale"]))


class _Recorder:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    async def post_json(self, path: str, payload: Any) -> tuple[int, bytes]:
        self.calls.append(self.name)
        return 200, b"{}"

    async def close(self) -> None:
        self.calls.append(f"closed {self.name}")


async def test_round_robin_sends_each_call_to_the_next_replica() -> None:
    calls: list[str] = []
    poster = RoundRobin([_Recorder("a", calls), _Recorder("b", calls)])
    for _ in range(3):
        await poster.post_json("/v1/track", {})
    await poster.close()
    assert calls == ["a", "b", "a", "closed a", "closed b"]


async def test_the_bare_sdk_journey_enters_sends_once_and_waits(
    temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    engine = raw_worker.database(f"sqlite:///{tmp_path / 'raw.db'}")
    queue, user = f"raw-{uuid.uuid4().hex[:8]}", f"raw-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(raw_worker.THREADS) as executor:
        async with raw_worker.create_worker(temporal.client, queue, engine, executor):
            handle = await temporal.client.start_workflow(
                "RawJourney",
                RawStart(user_id=user),
                id=f"raw:{user}",
                task_queue=queue,
                start_signal="event",
                start_signal_args=[{"name": "Signed Up"}],
                result_type=int,
            )
            await settle(handle)
            assert raw_worker.count_sends(engine, user) == 1
            with engine.connect() as conn:
                entries = conn.execute(raw_worker.entries.select()).all()
            assert [row.user_id for row in entries] == [user]
            # Open on its timer (a day) until the clock passes it.
            await TimeSkipper(temporal.client).fast_forward(handle, timedelta(days=1, minutes=1))
            assert await handle.result() == 1
    assert raw_worker.count_sends(engine, user) == 1
    engine.dispose()


def test_the_provider_stand_in_counts_each_postmark_call_by_key() -> None:
    server = esp.Server(0, hold=0.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        provider = create_provider(
            ProviderConfig(
                provider="postmark",
                api_key=SecretStr("token"),
                base_url=f"http://127.0.0.1:{server.server_address[1]}",
            )
        )
        message = OutgoingMessage(
            to="a@example.test", from_email="j@example.test", subject="s", html="<p>h</p>",
            text="t", idempotency_key="run-1:1", journey="j", step="s", user_id="u",
        )  # fmt: skip
        for _ in range(2):  # Postmark does not dedupe: two calls are two emails
            assert provider.send(message).provider_message_id
        assert server.deliveries.received == {"run-1:1": 2}
    finally:
        server.shutdown()
        server.server_close()
