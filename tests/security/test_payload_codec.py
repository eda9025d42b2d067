"""Payload encryption: Temporal stores ciphertext, and only key holders read it back.

With JOURNEYS_PAYLOAD_KEYS set, every client the product builds (`starter.client.connect`: the
API, the worker, `journeys replay`) encrypts payloads with AES-256-GCM (starter/codec.py). Here,
on the real dev server:

- a journey started through the API, for a user whose email, names and a product URL are known,
  leaves none of them in any payload of its raw history (bytes as the server stores them), while
  the worker decodes them and sends the email with them;
- a history written under key A replays under keys "B,A", and `journeys replay` reads it too;
  under "B" alone it fails with `UnknownPayloadKey` naming "A";
- payloads written before encryption pass through: the recorded histories replay, and a journey
  started in clear carries on once the worker encrypts;
- the codec endpoint (starter/codec_server.py) decodes what the worker encoded for a caller with
  the API key, and the `temporal` CLI reads histories through it; without the key it is a 401;
  the Web UI's origin passes CORS and no other; the local codec server, keyless, serves loopback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.history.v1 import History
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import TimeSkipper, WorkflowEnvironment

from activities.holdout import assign_group
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import Store
from activities.templates import Renderer
from starter.api import create_app
from starter.client import connect
from starter.codec import (
    ENCODING,
    KEY_ID,
    ClearCodec,
    EncryptionCodec,
    PayloadDecodeError,
    UnknownPayloadKey,
    data_converter,
    ensure_key_file,
    generate_key,
    parse_keys,
)
from starter.codec_server import JSON, LocalCodecServer
from starter.dev import dev_server_command, temporal_binary
from starter.replay import group_of, load_history, replay
from starter.routing import Router
from starter.settings import Settings
from tests.conftest import Stack, serving
from tests.replay.conftest import HISTORIES
from worker import create_worker
from workflows.identity import workflow_id
from workflows.journeys.cart_recovery import CartRecovery

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
KEY_A, KEY_B = generate_key("A"), generate_key("B")
UI = "http://localhost:8233"


def settings_with(keys: str | None, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        payload_keys=SecretStr(keys) if keys else None,
        **overrides,
    )


def codec_of(keys: str) -> EncryptionCodec:
    return EncryptionCodec(parse_keys(keys))


@dataclass
class Shop:
    """API, worker and client as the product builds them, all from one Settings with keys A."""

    url: str
    key: str
    http: httpx.AsyncClient
    client: Client
    stack: Stack
    settings: Settings


@pytest.fixture
async def shop(
    temporal: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor, tmp_path: Path
) -> AsyncIterator[Shop]:
    """`connect(settings)` for the worker, and the API connecting by itself (its lifespan calls
    `connect(settings)` too): nothing here picks a converter but the product's code."""
    task_queue = f"tq-codec-{uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex
    settings = settings_with(
        KEY_A,
        api_key=SecretStr(key),
        task_queue=task_queue,
        temporal_address=temporal.client.service_client.config.target_host,
        temporal_namespace=temporal.client.namespace,
        data_dir=tmp_path,
        temporal_ui_url=UI,
    )
    client = await connect(settings)
    sending = SendingActivities(
        store, Renderer(TEMPLATES), policy=DeliveryPolicy(quiet_hours=None, frequency_cap=100)
    )
    router = Router(client, store, [CartRecovery], task_queue)
    stack = Stack(client, store, router, TimeSkipper(client))
    async with create_worker(client, store, task_queue, executor, sending):
        app = create_app(settings, store=store, journeys=[CartRecovery])
        async with (
            serving(app) as url,
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as http,
        ):
            yield Shop(url, key, http, client, stack, settings)


def shopper() -> tuple[str, dict[str, Any], str]:
    """A user in cart recovery's treatment group, their traits, and a product URL of theirs."""
    while True:
        tag = uuid.uuid4().hex[:10]
        user = f"user-{tag}"
        if assign_group(CartRecovery.name, user, CartRecovery.holdout) == "treatment":
            break
    traits = {
        "email": f"zebulon.quixote.{tag}@example.test",
        "first_name": "Zebulon",
        "last_name": f"Quixote-{tag}",
        "display_name": f"Zebulon Quixote-{tag}",  # no denylist knows every name a trait has
    }
    return user, traits, f"https://shop.example/p/lamp-{tag}?ref=cart-{tag}"


async def abandon_a_cart(shop: Shop, user: str, traits: dict[str, Any], url: str) -> None:
    """Identify, add to cart (with the product's URL), leave: the reminder goes out."""
    answer = await shop.http.post("/v1/identify", json={"userId": user, "traits": traits})
    assert answer.status_code == 200, answer.text
    call = {
        "userId": user,
        "event": "Product Added",
        "properties": {"product_id": "lamp-1", "name": "Lamp", "price": 59.0, "url": url},
    }
    answer = await shop.http.post("/v1/track", json=call)
    assert answer.status_code == 200, answer.text
    assert answer.json()["journeys"][0]["action"] == "triggered"
    await shop.stack.advance(CartRecovery.name, user, timedelta(minutes=61))


async def raw_history(client: Client, workflow: str) -> History:
    """The history exactly as the server returns it: no data converter, no codec."""
    history = History()
    token = b""
    while True:
        page = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=workflow),
                next_page_token=token,
            )
        )
        history.events.extend(page.history.events)
        token = page.next_page_token
        if not token:
            return history


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere in a protobuf message (lists and maps included)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            items = [value]
        elif field.message_type.GetOptions().map_entry:
            items = [v for v in value.values() if isinstance(v, Message)]
        else:
            items = list(value)
        for item in items:
            yield from payloads_in(item)


def is_search_attribute(payload: Payload) -> bool:
    """Search attributes are indexed by the server, so never encoded (they hold no PII here:
    workflows/identity.py)."""
    return b"type" in payload.metadata and payload.metadata.get("encoding") == b"json/plain"


CORE_MARKER_FIELDS = {
    frozenset({"id", "deprecated"}),  # a patch marker (workflow.patched)
    frozenset({"seq", "attempt", "activity_id", "activity_type", "complete_time", "backoff",
               "original_schedule_time", "activation_index"}),  # a local activity's marker
}  # fmt: skip


def is_core_marker(payload: Payload) -> bool:
    """The SDK core's own marker data: which patch, which local activity ran when. Written by
    core, outside the data converter; no user data (the activity's result is encrypted)."""
    try:
        fields = json.loads(payload.data)
    except ValueError:
        return False
    return isinstance(fields, dict) and frozenset(fields) in CORE_MARKER_FIELDS


def personal(traits: dict[str, Any], url: str) -> list[str]:
    return [
        traits["email"],
        traits["email"].split("@")[0],
        traits["last_name"],
        traits["display_name"],
        "Zebulon",
        url,
        url.split("?")[0],
    ]


async def test_histories_hold_ciphertext_only_and_the_worker_still_sends_with_the_values(
    shop: Shop,
) -> None:
    user, traits, url = shopper()
    await abandon_a_cart(shop, user, traits, url)

    # The worker decoded them: the email went to the address, with the name and the URL in it.
    [reminder] = shop.stack.outbox(user)
    assert reminder.status == "sent" and reminder.recipient == traits["email"]
    assert "Hi Zebulon" in (reminder.body_html or "")
    assert url in (reminder.body_html or "")

    history = await raw_history(shop.client, workflow_id(CartRecovery.name, user))
    payloads = list(payloads_in(history))
    assert len(payloads) > 10, "the history has the journey's inputs, signals and activities"
    stored = history.SerializeToString()
    for value in personal(traits, url):
        assert value.encode() not in stored, f"{value!r} in the stored history"
        for payload in payloads:
            raw = payload.data + b"".join(payload.metadata.values())
            assert value.encode() not in raw, f"{value!r} in a payload: {payload.metadata}"
    encrypted = [p for p in payloads if p.metadata.get("encoding") == ENCODING]
    clear = [p for p in payloads if p.metadata.get("encoding") != ENCODING]
    assert all(p.metadata[KEY_ID] == b"A" for p in encrypted)
    unexpected = [p for p in clear if not (is_search_attribute(p) or is_core_marker(p))]
    assert not unexpected, unexpected

    # Control: the values are in there, encrypted; key A reads them back.
    decoded = b"".join(p.data for p in codec_of(KEY_A).decode_sync(encrypted))
    assert url.encode() in decoded and b'"journey":"cart_recovery"' in decoded


async def test_a_history_under_key_a_replays_under_b_a_and_fails_naming_a_under_b_alone(
    shop: Shop, tmp_path: Path
) -> None:
    user, traits, url = shopper()
    await abandon_a_cart(shop, user, traits, url)
    handle = shop.client.get_workflow_handle(workflow_id(CartRecovery.name, user))
    history = await handle.fetch_history()

    rotated = data_converter(settings_with(f"{KEY_B},{KEY_A}"))
    report = await replay([history], converter=rotated)
    assert report.ok, report.summary()
    assert report.replayed == {"cart_recovery": 1}  # the start input decoded too (group_of)
    [sealed] = codec_of(f"{KEY_B},{KEY_A}").encode_sync([Payload(data=b"new")])
    assert sealed.metadata[KEY_ID] == b"B"  # the first key encrypts from now on

    report = await replay([history], converter=data_converter(settings_with(KEY_B)))
    [failure] = report.failures
    assert "key ID 'A'" in failure.error and "JOURNEYS_PAYLOAD_KEYS" in failure.error, failure
    assert report.replayed == {"cart_recovery": 1}  # named from its workflow ID, unreadable
    started = history.events[0].workflow_execution_started_event_attributes
    with pytest.raises(UnknownPayloadKey) as raised:
        codec_of(KEY_B).decode_sync(list(started.input.payloads))
    assert raised.value.key_id == "A" and "'A'" in str(raised.value)

    # `journeys replay FILE` takes the keys from the environment, as the worker does.
    path = tmp_path / "cart_recovery.encrypted.json"
    path.write_text(history.to_json())
    code, out = journeys_replay(path, f"{KEY_B},{KEY_A}")
    assert code == 0 and "cart_recovery" in out, out
    code, out = journeys_replay(path, KEY_B)
    assert code == 1 and "'A'" in out and "JOURNEYS_PAYLOAD_KEYS" in out, out


def journeys_replay(path: Path, keys: str) -> tuple[int, str]:
    env = {**os.environ, "JOURNEYS_PAYLOAD_KEYS": keys, "JOURNEYS_DATA_DIR": str(path.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "starter.cli", "replay", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


async def test_unencrypted_payloads_pass_through_and_unknown_or_altered_ones_fail_clearly() -> None:
    codec = codec_of(f"{KEY_B},{KEY_A}")
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email":"x@example.test"}')
    assert codec.decode_sync([plain]) == [plain]
    assert await codec.decode([plain]) == [plain]

    [sealed] = codec_of(KEY_A).encode_sync([plain])
    assert b"x@example.test" not in sealed.SerializeToString()
    assert codec.decode_sync([sealed]) == [plain]
    with pytest.raises(UnknownPayloadKey, match="key ID 'A'") as raised:
        codec_of(KEY_B).decode_sync([sealed])
    assert raised.value.key_id == "A" and raised.value.known == ["B"]
    # The same ID with other key material, or an altered payload: refused, never garbage.
    with pytest.raises(PayloadDecodeError, match="key ID 'A'"):
        codec_of(generate_key("A")).decode_sync([sealed])
    flipped = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    altered = Payload(metadata=sealed.metadata, data=flipped)
    with pytest.raises(PayloadDecodeError):
        codec.decode_sync([altered])


async def test_recorded_histories_written_in_clear_replay_with_encryption_on() -> None:
    files = sorted(p for p in HISTORIES.glob("*.json") if p.name != "index.json")
    histories = [load_history(path) for path in files]
    converter = data_converter(settings_with(f"{KEY_B},{KEY_A}"))
    report = await replay(histories, converter=converter)
    assert report.ok and report.total == len(files), report.summary()
    assert {group_of(h, converter) for h in histories} == {group_of(h) for h in histories}


async def test_a_journey_started_in_clear_carries_on_once_the_worker_encrypts(
    temporal: WorkflowEnvironment, store: Store, executor: ThreadPoolExecutor
) -> None:
    task_queue = f"tq-codec-{uuid.uuid4().hex[:8]}"
    sending = SendingActivities(store, policy=DeliveryPolicy(quiet_hours=None, frequency_cap=100))
    user = f"legacy-{uuid.uuid4().hex[:10]}"
    while assign_group(CartRecovery.name, user, CartRecovery.holdout) != "treatment":
        user = f"legacy-{uuid.uuid4().hex[:10]}"
    store.upsert_profile(user, email=f"{user}@example.test", traits={})
    plain = temporal.client
    assert plain.data_converter is pydantic_data_converter
    async with create_worker(plain, store, task_queue, executor, sending):
        router = Router(plain, store, [CartRecovery], task_queue)
        stack = Stack(plain, store, router, TimeSkipper(plain))
        await stack.track("Product Added", user, {"product_id": "p1", "price": 30.0})
        await stack.state(CartRecovery.name, user)

    settings = settings_with(
        KEY_A,
        temporal_address=plain.service_client.config.target_host,
        temporal_namespace=plain.namespace,
    )
    encrypting = await connect(settings)
    async with create_worker(encrypting, store, task_queue, executor, sending):
        router = Router(encrypting, store, [CartRecovery], task_queue)
        stack = Stack(encrypting, store, router, TimeSkipper(encrypting))
        await stack.track("Product Added", user, {"product_id": "p2", "price": 20.0})
        await stack.advance(CartRecovery.name, user, timedelta(minutes=61))
        [reminder] = stack.outbox(user)
        assert reminder.status == "sent"
        state = await stack.state(CartRecovery.name, user)
        assert state.messages_sent == 1
    history = await raw_history(encrypting, workflow_id(CartRecovery.name, user))
    encodings = {p.metadata.get("encoding") for p in payloads_in(history)}
    assert ENCODING in encodings and b"json/plain" in encodings  # both, in one history


async def test_the_codec_endpoint_decodes_for_the_api_key_holder_and_refuses_anyone_else(
    shop: Shop,
) -> None:
    user, traits, url = shopper()
    await abandon_a_cart(shop, user, traits, url)
    history = await raw_history(shop.client, workflow_id(CartRecovery.name, user))
    encrypted = [p for p in payloads_in(history) if p.metadata.get("encoding") == ENCODING]
    body = {"payloads": [wire(p) for p in encrypted]}
    headers = {"X-Namespace": shop.settings.temporal_namespace, "Origin": UI}

    answer = await shop.http.post("/codec/decode", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == UI
    decoded = answer.json()["payloads"]
    assert len(decoded) == len(encrypted)
    assert all(p["metadata"]["encoding"] != wire(encrypted[0])["metadata"]["encoding"]
               for p in decoded)  # fmt: skip
    assert any(url in from_wire(p).data.decode() for p in decoded)

    # Encode, then decode: the round trip the UI makes for what it sends.
    plain = {"payloads": [wire(Payload(metadata={"encoding": b"json/plain"}, data=b'"hi"'))]}
    sealed = (await shop.http.post("/codec/encode", json=plain)).json()
    assert from_wire(sealed["payloads"][0]).metadata[KEY_ID] == b"A"
    assert (await shop.http.post("/codec/decode", json=sealed)).json() == plain

    async with httpx.AsyncClient(base_url=shop.url, timeout=30) as anonymous:
        wrong = {"Authorization": f"Bearer {shop.key[:-1]}x"}
        for refused in (
            await anonymous.post("/codec/decode", json=body, headers=headers),
            await anonymous.post("/codec/decode", json=body, headers={**headers, **wrong}),
            await anonymous.post("/codec/encode", json=plain),
        ):
            assert refused.status_code == 401, refused.text
            assert url not in refused.text and shop.key not in refused.text
        # The browser's preflight needs no key; only the UI's origin is let through.
        ok = await anonymous.options("/codec/decode", headers=preflight(UI))
        assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == UI
        assert "x-namespace" in ok.headers["access-control-allow-headers"]
        foreign = await anonymous.options("/codec/decode", headers=preflight("https://evil.test"))
        assert "access-control-allow-origin" not in foreign.headers
    answer = await shop.http.post("/codec/decode", json=body, headers=preflight("https://x.test"))
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    other = await shop.http.post("/codec/decode", json=body, headers={"X-Namespace": "other"})
    assert other.status_code == 403
    malformed = await shop.http.post("/codec/decode", content=b"{", headers={"Content-Type": JSON})
    assert malformed.status_code == 400
    assert "/codec/decode" not in (await shop.http.get("/openapi.json")).text

    # The `temporal` CLI (Go's remote codec client) reads the history through the endpoint.
    shown = await temporal_cli(
        shop, "workflow", "show", "-w", workflow_id(CartRecovery.name, user), "--output", "json",
        "--codec-endpoint", f"{shop.url}/codec", "--codec-auth", f"Bearer {shop.key}",
    )  # fmt: skip
    assert url in shown
    assert url not in await temporal_cli(
        shop, "workflow", "show", "-w", workflow_id(CartRecovery.name, user), "--output", "json"
    )


async def test_the_local_codec_server_serves_the_web_ui_keyless_on_loopback_only(
    shop: Shop,
) -> None:
    user, traits, url = shopper()
    await abandon_a_cart(shop, user, traits, url)
    history = await raw_history(shop.client, workflow_id(CartRecovery.name, user))
    encrypted = [p for p in payloads_in(history) if p.metadata.get("encoding") == ENCODING]

    with pytest.raises(ValueError, match="loopback"):
        LocalCodecServer(shop.settings, host="0.0.0.0")
    local = LocalCodecServer(shop.settings)
    async with local.serving() as endpoint, httpx.AsyncClient(timeout=30) as browser:
        assert endpoint.startswith("http://127.0.0.1:") and endpoint.endswith("/codec")
        for origin in (UI, "http://127.0.0.1:8233"):  # the UI, by either loopback name
            ok = await browser.options(f"{endpoint}/decode", headers=preflight(origin))
            assert ok.headers["access-control-allow-origin"] == origin
        answer = await browser.post(
            f"{endpoint}/decode",
            json={"payloads": [wire(p) for p in encrypted]},
            headers={"Origin": UI, "X-Namespace": shop.settings.temporal_namespace},
        )
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == UI
        assert any(url in from_wire(p).data.decode() for p in answer.json()["payloads"])
        assert (await browser.get(f"{endpoint.removesuffix('/codec')}/docs")).status_code == 404
        # A page that rebinds its own name to 127.0.0.1 sends that name: refused; and a body
        # a cross-site form could send (not JSON) is refused too.
        rebound = await browser.post(
            f"{endpoint}/decode", json={"payloads": []}, headers={"Host": "evil.test"}
        )
        assert rebound.status_code == 400
        form = await browser.post(
            f"{endpoint}/decode",
            content=b'{"payloads": []}',
            headers={"Content-Type": "text/plain"},
        )
        assert form.status_code == 415


async def test_journeys_dev_keeps_one_key_0600_and_points_the_web_ui_at_the_codec(
    tmp_path: Path,
) -> None:
    first = ensure_key_file(tmp_path)
    kept = tmp_path / "payload_keys"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert ensure_key_file(tmp_path) == first  # the next start reuses it: journeys stay readable
    [(key_id, key)] = parse_keys(first)
    assert len(key) == 32
    # Every command run in that folder (the worker, `journeys replay`) finds the same key.
    converter = data_converter(settings_with(None, data_dir=tmp_path))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.current_key_id == key_id
    # Without keys nothing is encrypted, and an encrypted payload names the key it needs.
    clear = data_converter(settings_with(None, data_dir=tmp_path / "none")).payload_codec
    assert isinstance(clear, ClearCodec)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    assert await clear.encode([plain]) == [plain] == await clear.decode([plain])
    with pytest.raises(UnknownPayloadKey, match=f"key ID '{key_id}'.*JOURNEYS_PAYLOAD_KEYS"):
        await clear.decode(codec_of(first).encode_sync([plain]))

    endpoint = "http://127.0.0.1:41234/codec"
    command = dev_server_command(settings_with(None, data_dir=tmp_path), endpoint)
    assert command[0] == temporal_binary()
    assert command[command.index("--ui-codec-endpoint") + 1] == endpoint


def wire(payload: Payload) -> dict[str, Any]:
    """A payload as the Temporal UI sends it (protobuf JSON: bytes in base64)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(payload)


def from_wire(item: dict[str, Any]) -> Payload:
    from google.protobuf import json_format

    return json_format.ParseDict(item, Payload())


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }


async def temporal_cli(shop: Shop, *args: str) -> str:
    address = shop.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        temporal_binary(), *args, "--address", address, "--namespace", shop.client.namespace,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return "\n".join(payload_texts(json.loads(out)))


def payload_texts(node: Any) -> Iterator[str]:
    """The data of every payload in a history's JSON (base64 there), as text."""
    if isinstance(node, dict):
        if "metadata" in node and isinstance(node.get("data"), str):
            yield base64.b64decode(node["data"]).decode("utf-8", "replace")
        for value in node.values():
            yield from payload_texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from payload_texts(value)
