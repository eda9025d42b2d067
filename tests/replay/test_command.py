"""`journeys replay` against a live server: journeys in flight replay on the code that started
them, and the command names each one that changed code (or a retired journey) would break."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from starter.ingest import Ingestor
from starter.replay import WORKFLOWS, replay_recent, replayer, workflow_runner
from tests.histories.record import CHAIR, MINUTE, Recorder
from tests.replay.retired import Retired
from worker import create_worker
from workflows.identity import workflow_id
from workflows.journeys import CartRecovery, Onboarding

ROOT = Path(__file__).resolve().parents[2]
TIPS_AT_ONCE = '["workflows.journeys", "tests.replay.tips_at_once"]'


async def journeys(client: Client, *args: str, **env: str) -> tuple[int, str, str]:
    """Run `journeys ARGS` in its own process against the test server: (code, stdout, stderr)."""
    address = client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", *args,
        cwd=ROOT, env={**os.environ, "TEMPORAL_ADDRESS": address, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def listed(
    client: Client, since: datetime, ids: set[str], *, running: bool = False,
    absent: frozenset[str] = frozenset(),
) -> None:  # fmt: skip
    """Wait until visibility (eventually consistent) lists the workflows `ids`, not `absent`."""
    query = f"StartTime >= '{since.isoformat().replace('+00:00', 'Z')}'"
    if running:
        query += " AND ExecutionStatus = 'Running'"
    for _ in range(200):
        seen = {execution.id async for execution in client.list_workflows(query)}
        if ids <= seen and not absent & seen:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"visibility lists {seen}, not {ids}")


async def test_replay_passes_on_journeys_in_flight_and_names_those_changed_code_breaks(
    stack_for, store, temporal
):
    since = datetime.now(UTC)
    stack = await stack_for(Onboarding, CartRecovery)
    ingestor = Ingestor(store, stack.router)
    rec = Recorder(
        temporal.client, store, ingestor, stack.router.task_queue, f"c{uuid.uuid4().hex[:6]}"
    )
    waiting, done = rec.user("onboarding", "wait"), rec.user("onboarding", "done")
    cart = rec.user("cart_recovery", "cart")
    for user in (waiting, done, cart):
        await rec.identify(user)
    await rec.track(waiting, "Signed Up")  # welcome sent; waiting for day 2
    await rec.track(done, "Signed Up")
    await rec.track(done, "Activated")  # converted: closed
    await rec.track(cart, "Product Added", CHAIR)
    await rec.advance("cart_recovery", cart, 61 * MINUTE)  # reminder sent; waiting for 24 h
    closed = workflow_id("onboarding", done)
    ids = {workflow_id("onboarding", waiting), closed, workflow_id("cart_recovery", cart)}
    await listed(temporal.client, since, ids)
    await listed(temporal.client, since, ids - {closed}, running=True, absent=frozenset({closed}))

    # As a library: every history, or only the running ones, replays on the shipped code.
    report = await replay_recent(temporal.client, since=since)
    assert report.ok, report.summary()
    assert set(report.workflow_ids) >= ids  # (and any segment run a schedule started)
    assert (report.replayed["onboarding"], report.replayed["cart_recovery"]) == (2, 1)
    running = await replay_recent(
        temporal.client, journeys=["onboarding"], since=since, running=True
    )
    assert running.workflow_ids == [workflow_id("onboarding", waiting)]

    # As the command, on this code: exit 0 and a line per journey.
    code, out, err = await journeys(temporal.client, "replay", "--since", since.isoformat())
    assert code == 0, out + err
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert lines["onboarding"][1:] == ["replayed", "2", "failed", "0"]
    assert lines["cart_recovery"][1:] == ["replayed", "1", "failed", "0"]

    # On changed onboarding code (loaded as a worker would load it): exit 1, naming the
    # journeys it would break, while cart recovery is untouched.
    code, out, err = await journeys(
        temporal.client, "replay", "--since", since.isoformat(), "--running",
        JOURNEYS_JOURNEY_MODULES=TIPS_AT_ONCE,
    )  # fmt: skip
    assert code == 1, out + err
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert lines["onboarding"][1:] == ["replayed", "1", "failed", "1"]
    assert lines["cart_recovery"][1:] == ["replayed", "1", "failed", "0"]
    [failed] = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert workflow_id("onboarding", waiting) in failed
    assert "Nondeterminism" in failed and "'record_step'" in failed
    assert "docs/deploys.md" in err


async def test_replay_names_running_journeys_of_a_journey_the_code_no_longer_has(
    stack_for, temporal
):
    since = datetime.now(UTC)
    stack = await stack_for(Retired)
    user = stack.user("retired")
    await stack.track("Retired Journey Started", user)
    await stack.state("t_retired", user)
    await listed(temporal.client, since, {workflow_id("t_retired", user)}, running=True)

    code, out, err = await journeys(temporal.client, "replay", "--since", since.isoformat())
    assert code == 1, out + err
    [failed] = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert workflow_id("t_retired", user) in failed
    assert "no journey 't_retired' in this code" in failed


async def test_the_replayer_runs_what_the_worker_runs(temporal, store, executor):
    worker = create_worker(temporal.client, store, f"tq-{uuid.uuid4().hex[:8]}", executor)
    ours, theirs = replayer().config(), worker.config()
    assert list(ours["workflows"]) == list(theirs["workflows"]) == list(WORKFLOWS)
    runner = theirs["workflow_runner"]
    assert type(runner) is type(workflow_runner())
    assert runner.restrictions == workflow_runner().restrictions  # type: ignore[attr-defined]
    assert ours["data_converter"] is temporal.client.data_converter is pydantic_data_converter
    assert list(ours["interceptors"]) == list(theirs["interceptors"]) == []
    assert list(ours["workflow_failure_exception_types"]) == list(
        theirs["workflow_failure_exception_types"]
    )
