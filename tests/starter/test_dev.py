"""`journeys dev` as a newcomer runs it: one command, everything up, Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

JOURNEYS = Path(sys.executable).parent / "journeys"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Dev:
    """A `journeys dev` process on free ports with its own data folder."""

    def __init__(self, data: Path) -> None:
        self.temporal_port, self.ui_port, self.api_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "JOURNEYS_DATA_DIR": str(data),
            "JOURNEYS_DATABASE_URL": f"sqlite:///{data / 'journeys.db'}",
            "JOURNEYS_API_PORT": str(self.api_port),
            "JOURNEYS_TEMPORAL_UI_PORT": str(self.ui_port),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
        }
        self.env.pop("JOURNEYS_API_KEY", None)
        self.output = ""

    def __enter__(self) -> Dev:
        self.process = subprocess.Popen(
            [str(JOURNEYS), "dev"], env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while "Ctrl-C stops everything." not in self.output:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                pytest.fail(f"journeys dev exited early:\n{self.output}")
            self.output += line
            if time.monotonic() > deadline:
                pytest.fail(f"journeys dev did not come up:\n{self.output}")
        match = re.search(r"API key\s+(\S+)", self.output)
        assert match, self.output
        self.key = match.group(1)
        return self

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        assert self.process.stdout is not None
        self.output += self.process.stdout.read()
        return code

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )


def test_journeys_dev_runs_everything_and_ctrl_c_stops_everything(tmp_path):
    with Dev(tmp_path) as dev:
        for where in (
            f"127.0.0.1:{dev.temporal_port}",
            f"http://127.0.0.1:{dev.ui_port}",
            f"http://127.0.0.1:{dev.api_port}",
            "(generated",
        ):
            assert where in dev.output
        with dev.http() as http:
            assert http.get("/healthz").status_code == 200
            event = {
                "userId": "dev-user", "event": "Product Added",
                "properties": {"sku": "s", "price": 25},
                "context": {"traits": {"email": "dev-user@example.test"}},
            }  # fmt: skip
            response = http.post("/v1/track", json=event)
            assert response.status_code == 200, response.text
            assert response.json()["journeys"][0]["journey"] == "cart_recovery"
            assert (
                http.post("/v1/track", json=event, headers={"Authorization": ""}).status_code == 401
            )
            # The dashboard lists every shipped journey and links them to the dev server's UI.
            page = http.get("/dashboard")
            assert page.status_code == 200
            assert 'data-journey="cart_recovery"' in page.text
            ui_list = f"http://localhost:{dev.ui_port}/namespaces/default/workflows?query="
            assert ui_list in page.text
        assert httpx.get(f"http://127.0.0.1:{dev.ui_port}/", timeout=30).status_code == 200

        assert dev.stop() == 0
        assert "Traceback" not in dev.output
        for port in (dev.temporal_port, dev.ui_port, dev.api_port):
            assert not port_open(port), f"port {port} still open after Ctrl-C"
    assert (tmp_path / "temporal.db").exists()

    # The journey lives in the SQLite file: a second `journeys dev` finds it still waiting.
    with Dev(tmp_path) as dev:
        listing = subprocess.run(
            [str(Path(sys.executable).parent / "temporal"), "workflow", "describe",
             "--address", f"127.0.0.1:{dev.temporal_port}", "-w", "cart_recovery:dev-user",
             "--output", "json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        status = json.loads(listing.stdout)["workflowExecutionInfo"]["status"]
        assert status == "WORKFLOW_EXECUTION_STATUS_RUNNING", listing.stdout + listing.stderr
        assert dev.stop() == 0
