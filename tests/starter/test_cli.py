"""`journeys worker` and `journeys api` as separate processes against a Temporal server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from temporalio.testing import TimeSkipper

from activities.holdout import assign_group
from activities.store import Store
from tests.starter.test_dev import free_port
from workflows.identity import workflow_id

JOURNEYS = str(Path(sys.executable).parent / "journeys")


def test_the_api_refuses_to_serve_open_off_loopback():
    env = {**os.environ, "JOURNEYS_API_HOST": "0.0.0.0"}
    env.pop("JOURNEYS_API_KEY", None)
    done = subprocess.run([JOURNEYS, "api"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "JOURNEYS_API_KEY" in done.stderr


async def test_worker_and_api_processes_run_a_journey_together(temporal, tmp_path):
    address = temporal.client.service_client.config.target_host
    api_port, key, task_queue = free_port(), uuid.uuid4().hex, f"tq-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "JOURNEYS_DATABASE_URL": f"sqlite:///{tmp_path / 'journeys.db'}",
        "JOURNEYS_TASK_QUEUE": task_queue,
        "JOURNEYS_API_KEY": key,
        "JOURNEYS_API_PORT": str(api_port),
        "JOURNEYS_QUIET_HOURS": "",  # the send must not wait for morning whenever CI runs
    }
    logs = {role: (tmp_path / f"{role}.log").open("w") for role in ("worker", "api")}
    processes = [
        subprocess.Popen([JOURNEYS, role], env=env, stdout=logs[role], stderr=subprocess.STDOUT)
        for role in ("worker", "api")
    ]
    try:
        url = f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "journeys api did not come up"
                await asyncio.sleep(0.1)
            user = next(  # cart_recovery holds 15 % out: take a user who gets the email
                u
                for u in (f"cli-{uuid.uuid4().hex[:8]}" for _ in range(100))
                if assign_group("cart_recovery", u, 0.15) == "treatment"
            )
            event = {
                "userId": user, "event": "Product Added",
                "properties": {"product_id": "p", "price": 25},
                "context": {"traits": {"email": f"{user}@example.test"}},
            }  # fmt: skip
            assert (await http.post("/v1/track", json=event)).status_code == 200

        handle = temporal.client.get_workflow_handle(workflow_id("cart_recovery", user))
        assert processes[0].poll() is None, (tmp_path / "worker.log").read_text()
        await asyncio.wait_for(
            TimeSkipper(temporal.client).fast_forward(handle, timedelta(minutes=61)), 30
        )
        store = Store(env["JOURNEYS_DATABASE_URL"])
        deadline = time.monotonic() + 30
        while not store.outbox(user):
            assert time.monotonic() < deadline, "the worker process sent nothing"
            await asyncio.sleep(0.05)
        [message] = store.outbox(user)
        assert (message.template, message.recipient) == ("reminder", f"{user}@example.test")
        store.dispose()
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        for log in logs.values():
            log.close()


async def test_schedules_command_lists_pauses_resumes_and_names_unknown_journeys(temporal):
    from starter.schedules import ensure_schedules
    from workflows.journeys import FeatureAdoption, WinBack

    await ensure_schedules(temporal.client, [FeatureAdoption, WinBack], f"tq-{uuid.uuid4().hex}")
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host}

    def journeys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [JOURNEYS, "schedules", *args], env=env, capture_output=True, text=True, timeout=60
        )

    listed = journeys("list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "cron '0 9 * * *' (UTC)" in lines["feature_adoption"]
    assert "cron '0 10 * * *' (UTC)" in lines["win_back"]

    assert journeys("pause", "win_back", "--reason", "copy review").returncode == 0
    assert (
        "PAUSED"
        in {line.split()[0]: line for line in journeys("list").stdout.splitlines()}["win_back"]
    )
    assert journeys("resume", "win_back").returncode == 0
    assert "active" in journeys("list").stdout.split("win_back", 1)[1].split("\n")[0]

    unknown = journeys("trigger", "onboarding")
    assert unknown.returncode == 2
    assert "no segment schedule for journey 'onboarding'" in unknown.stderr
