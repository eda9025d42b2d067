"""`journeys api` refuses to start rather than serve open or sign with a published key.

Each test starts the real `journeys api` as a subprocess against the session's Temporal dev
server. Where the code under test would start serving anyway, the test makes the calls an
attacker would (no key, a forged unsubscribe link) and fails saying what they were allowed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from activities.store import Store
from activities.unsubscribe import make_token
from starter.api import create_app
from starter.settings import (
    DEVELOPMENT_KEY,
    MIN_SECRET_LENGTH,
    InsecureSettings,
    MissingSecretKey,
    Settings,
    signing_key,
)
from tests.starter.test_dev import free_port
from worker import delivery_policy

JOURNEYS = str(Path(sys.executable).parent / "journeys")
ROOT = Path(__file__).resolve().parents[2]
GOOD = "k" * 32
SHORT = "s" * (MIN_SECRET_LENGTH - 1)

SECRET_VARIABLES = (
    "JOURNEYS_API_KEY",
    "JOURNEYS_SECRET_KEY",
    "JOURNEYS_SHOPIFY_SECRET",
    "JOURNEYS_STRIPE_SECRET",
    "JOURNEYS_STANDARD_WEBHOOK_SECRET",
    "JOURNEYS_SEGMENT_SECRET",
)


@dataclass
class Started:
    """What became of `journeys api`: its exit code and output, or None while it serves."""

    returncode: int | None
    output: str
    url: str


def environment(temporal: object, tmp_path: Path, **variables: str) -> dict[str, str]:
    """The process environment: no JOURNEYS_* of the caller's, a fresh database and data
    folder (no kept secret key), the test's Temporal, a free port, then `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env.update(
        TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,  # type: ignore[attr-defined]
        JOURNEYS_DATABASE_URL=f"sqlite:///{tmp_path / 'journeys.db'}",
        JOURNEYS_DATA_DIR=str(tmp_path / "data"),
        JOURNEYS_API_PORT=str(free_port()),
        JOURNEYS_TASK_QUEUE=f"tq-{uuid.uuid4().hex[:8]}",
        **variables,
    )
    return env


def start_api(env: dict[str, str], tmp_path: Path) -> tuple[Started, subprocess.Popen[bytes]]:
    """Start `journeys api`; return once it has exited or answers /healthz."""
    log = tmp_path / f"api-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [JOURNEYS, "api"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{env['JOURNEYS_API_PORT']}"
    deadline = time.monotonic() + 60
    while process.poll() is None:
        try:
            httpx.get(f"{url}/healthz", timeout=2)
            return Started(None, log.read_text(), url), process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"journeys api neither started nor exited: {log}"
        time.sleep(0.1)
    return Started(process.returncode, log.read_text(), url), process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def what_an_anonymous_caller_gets(url: str) -> dict[str, int]:
    """The answers to a call with no credential at all, on each surface a key should guard."""
    event = {"userId": "intruder", "event": "Product Added", "messageId": uuid.uuid4().hex}
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        return {
            "POST /v1/track": anonymous.post("/v1/track", json=event).status_code,
            "GET /dashboard": anonymous.get("/dashboard").status_code,
            "GET /outbox": anonymous.get("/outbox").status_code,
        }


def test_an_empty_api_key_off_loopback_is_refused_at_start_not_taken_as_no_key(temporal, tmp_path):
    env = environment(
        temporal, tmp_path, JOURNEYS_API_KEY="", JOURNEYS_API_HOST="0.0.0.0",
        JOURNEYS_SECRET_KEY=GOOD,
    )  # fmt: skip
    started, process = start_api(env, tmp_path)
    try:
        if started.returncode is None:
            pytest.fail(
                "journeys api served on 0.0.0.0 with JOURNEYS_API_KEY='': without any "
                f"credential {what_an_anonymous_caller_gets(started.url)}"
            )
    finally:
        stop(process)
    assert started.returncode == 2, started.output
    assert "JOURNEYS_API_KEY is set but empty" in started.output
    assert f"at least {MIN_SECRET_LENGTH} characters" in started.output
    assert "Traceback" not in started.output


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOURNEYS_API_KEY", ""),
        ("JOURNEYS_API_KEY", SHORT),
        ("JOURNEYS_SECRET_KEY", ""),
        ("JOURNEYS_SECRET_KEY", "  " + SHORT[:-2] + "  "),  # blanks do not count
        ("JOURNEYS_SHOPIFY_SECRET", ""),
        ("JOURNEYS_STRIPE_SECRET", "whsec_" + SHORT[:9]),
        ("JOURNEYS_STANDARD_WEBHOOK_SECRET", ""),
        ("JOURNEYS_SEGMENT_SECRET", SHORT),
    ],
)
def test_an_empty_or_short_secret_is_refused_at_start_naming_it(
    temporal, tmp_path, variable, value
):
    env = environment(temporal, tmp_path, JOURNEYS_API_KEY=GOOD, JOURNEYS_SECRET_KEY=GOOD)
    env[variable] = value
    started, process = start_api(env, tmp_path)
    try:
        if started.returncode is None:
            with httpx.Client(base_url=started.url, timeout=30) as http:
                health = http.get("/healthz").status_code
            pytest.fail(f"journeys api served with {variable} of {len(value.strip())} "
                        f"characters (/healthz {health})")  # fmt: skip
    finally:
        stop(process)
    assert started.returncode == 2, started.output
    length = len(value.strip())
    said = "empty" if length == 0 else f"{length} characters"
    assert f"{variable} is set but {said}" in started.output, started.output
    assert f"at least {MIN_SECRET_LENGTH} characters" in started.output
    if value.strip():
        assert value.strip() not in started.output  # named, never echoed
    assert "Traceback" not in started.output


def test_a_kept_secret_key_that_is_empty_is_refused_too(temporal, tmp_path):
    """What `journeys dev` keeps in the data folder is the secret key when none is set."""
    env = environment(temporal, tmp_path, JOURNEYS_API_KEY=GOOD)
    kept = Path(env["JOURNEYS_DATA_DIR"]) / "secret_key"
    kept.parent.mkdir()
    kept.write_text("\n")
    started, process = start_api(env, tmp_path)
    try:
        if started.returncode is None:
            pytest.fail("journeys api served signing with the empty kept secret key")
    finally:
        stop(process)
    assert started.returncode == 2, started.output
    assert f"the kept secret key {kept} is set but empty" in started.output


def test_secrets_of_the_minimum_length_start_and_the_key_is_required(temporal, tmp_path):
    """The control: exactly MIN_SECRET_LENGTH characters everywhere serves, and guards."""
    exact = "e" * MIN_SECRET_LENGTH
    env = environment(temporal, tmp_path, **dict.fromkeys(SECRET_VARIABLES, exact))
    started, process = start_api(env, tmp_path)
    try:
        assert started.returncode is None, started.output
        assert what_an_anonymous_caller_gets(started.url) == {
            "POST /v1/track": 401, "GET /dashboard": 401, "GET /outbox": 401,
        }  # fmt: skip
        with httpx.Client(
            base_url=started.url, headers={"Authorization": f"Bearer {exact}"}, timeout=30
        ) as http:
            event = {"userId": "u", "event": "Page Viewed", "messageId": uuid.uuid4().hex}
            assert http.post("/v1/track", json=event).status_code == 200
    finally:
        stop(process)


def test_the_development_key_never_signs_for_an_api_listening_beyond_loopback(temporal, tmp_path):
    """JOURNEYS_PUBLIC_URL on loopback (the default) is not enough: listening on 0.0.0.0,
    anyone who reaches the API could unsubscribe anyone with a link signed with the published
    development key."""
    env = environment(temporal, tmp_path, JOURNEYS_API_KEY=GOOD, JOURNEYS_API_HOST="0.0.0.0")
    started, process = start_api(env, tmp_path)
    try:
        if started.returncode is None:
            victim = f"victim-{uuid.uuid4().hex[:8]}"
            forged = make_token(DEVELOPMENT_KEY, victim, "cart_recovery")
            answer = httpx.post(f"{started.url}/u/{forged}", timeout=30)
            store = Store(env["JOURNEYS_DATABASE_URL"])
            try:
                profile = store.get_profile(victim)
            finally:
                store.dispose()
            traits = profile.traits if profile is not None else {}
            pytest.fail(
                "journeys api served on 0.0.0.0 signing unsubscribe links with the development "
                f"key: a forged link answered {answer.status_code}, and the victim's "
                f"unsubscribed trait is {traits.get('unsubscribed')!r}"
            )
    finally:
        stop(process)
    assert started.returncode == 2, started.output
    assert "set JOURNEYS_SECRET_KEY: the API listens on 0.0.0.0" in started.output


@pytest.mark.parametrize("api_host", ["0.0.0.0", "::", "192.0.2.10"])
def test_the_development_key_needs_the_listening_host_on_loopback_too(
    api_host: str, tmp_path: Path
) -> None:
    """The rule itself, where the API and the worker both take their signing key."""
    settings = Settings(_env_file=None, api_host=api_host, data_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(MissingSecretKey, match="JOURNEYS_SECRET_KEY"):
        signing_key(settings)
    with pytest.raises(MissingSecretKey):
        delivery_policy(settings)
    on_loopback = settings.model_copy(update={"api_host": "127.0.0.1"})
    assert signing_key(on_loopback) == DEVELOPMENT_KEY
    configured = settings.model_copy(update={"secret_key": SecretStr(GOOD)})
    assert signing_key(configured) == GOOD


def test_the_app_itself_refuses_an_empty_key_or_no_key_off_loopback(tmp_path: Path) -> None:
    """For whoever builds the app without the CLI (uvicorn --factory, a test, `journeys dev`)."""
    base = Settings(_env_file=None, data_dir=tmp_path, secret_key=SecretStr(GOOD))  # type: ignore[call-arg]
    for blank in ("", "   "):
        with pytest.raises(InsecureSettings, match="JOURNEYS_API_KEY is set but empty"):
            create_app(base.model_copy(update={"api_key": SecretStr(blank)}))
    with pytest.raises(InsecureSettings, match=r"without JOURNEYS_API_KEY on 0\.0\.0\.0"):
        create_app(base.model_copy(update={"api_host": "0.0.0.0"}))
    create_app(base)  # keyless on loopback: allowed (tests/security/test_loopback_mode.py)
