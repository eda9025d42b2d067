"""What the erasure tests share: a shop (the API, cart recovery with the real templates), a person
with unmistakable personal data, driving them to a sent email, running an erasure to its end on
the journey clock, and the searches that prove nothing personal is left.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import inspect, text
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.holdout import assign_group
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import Store
from activities.templates import Renderer
from starter.erasure import erasure_workflow_id
from starter.report import build_report
from tests.conftest import Api, settle
from workflows.erasure import ErasureCounts
from workflows.identity import user_key, workflow_id
from workflows.journeys.cart_recovery import CartRecovery

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SECRET_KEY = "sk-erasure-" + uuid.uuid4().hex
SEGMENT_SECRET = "segment-erasure-" + uuid.uuid4().hex
CART = CartRecovery.name


@dataclass
class Person:
    """A shopper in cart recovery's treatment group, and what identifies them."""

    user_id: str
    email: str
    traits: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return user_key(self.user_id)

    @property
    def workflow_id(self) -> str:
        return workflow_id(CART, self.user_id)

    def needles(self) -> list[str]:
        """Every text that would identify them: IDs, address, names, phone, street, and the
        user ID as unsubscribe links carry it (base64)."""
        encoded = base64.urlsafe_b64encode(self.user_id.encode()).rstrip(b"=").decode()
        return [
            self.user_id,
            self.key,
            self.email,
            self.email.split("@")[0],
            self.traits["last_name"],
            self.traits["name"],
            self.traits["phone"],
            self.traits["address"]["street"],
            encoded,
        ]


def person(email_as_id: bool = False) -> Person:
    while True:
        tag = uuid.uuid4().hex[:10]
        email = f"zebulon.quixote.{tag}@example.test"
        user = email if email_as_id else f"zq-{tag}"
        if assign_group(CART, user, CartRecovery.holdout) == "treatment":
            break
    traits = {
        "email": email,
        "first_name": "Zebulon",
        "last_name": f"Quixote{tag}",
        "name": f"Zebulon Quixote{tag}",
        "phone": f"+44 7700 9{int(tag[:6], 16) % 100000:05d}",
        "address": {"street": f"{tag} Hidden Lane", "city": "Ambridge"},
    }
    return Person(user, email, traits)


async def shop(api_for: Any, store: Store, **overrides: Any) -> Api:
    """The API and a worker with cart recovery, its real templates, no quiet hours."""
    sending = SendingActivities(
        store,
        Renderer(TEMPLATES),
        policy=DeliveryPolicy(quiet_hours=None, frequency_cap=100, secret_key=SECRET_KEY),
    )
    api: Api = await api_for(
        CartRecovery,
        sending=sending,
        secret_key=SecretStr(SECRET_KEY),
        segment_secret=SecretStr(SEGMENT_SECRET),
        **overrides,
    )
    return api


async def identify(api: Api, who: Person, message_id: str | None = None) -> Any:
    call = {"userId": who.user_id, "traits": who.traits, "messageId": message_id or new_id()}
    answer = await api.http.post("/v1/identify", json=call)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def add_to_cart(api: Api, who: Person) -> None:
    call = {
        "userId": who.user_id,
        "messageId": new_id(),
        "event": "Product Added",
        "properties": {"product_id": "lamp-1", "name": "Lamp", "price": 59.0, "quantity": 1},
        "context": {"traits": {"phone": who.traits["phone"]}, "timezone": "Europe/London"},
    }
    answer = await api.http.post("/v1/track", json=call)
    assert answer.status_code == 200, answer.text
    assert answer.json()["journeys"][0]["action"] == "triggered"


async def sent_a_cart_email(api: Api, who: Person) -> None:
    """Identify (address, names, phone, street), add to cart, leave: the reminder goes out."""
    await identify(api, who)
    await add_to_cart(api, who)
    await api.stack.advance(CART, who.user_id, timedelta(minutes=61))
    [reminder] = api.stack.outbox(who.user_id)
    assert reminder.status == "sent" and reminder.recipient == who.email
    assert "Zebulon" in (reminder.body_html or "")  # the email itself is personal, rightly


async def buys(api: Api, who: Person) -> None:
    """Order Completed: the journey converts, with revenue, and closes."""
    call = {
        "userId": who.user_id,
        "messageId": new_id(),
        "event": "Order Completed",
        "properties": {"order_id": f"o-{new_id()}", "revenue": 59.0,
                       "products": [{"product_id": "lamp-1", "price": 59.0, "quantity": 1}]},
    }  # fmt: skip
    answer = await api.http.post("/v1/track", json=call)
    assert answer.status_code == 200, answer.text
    result = await api.stack.result(CART, who.user_id)
    assert result.outcome == "converted"


def new_id() -> str:
    return f"m-{uuid.uuid4().hex}"


def report(store: Store) -> list[dict[str, Any]]:
    """The cart journey's report, as numbers (the time it was generated left out)."""
    return [j.model_dump() for j in build_report(store, [CartRecovery]).journeys]


def erasure_of(store: Store, user_id: str) -> str:
    """The erasure in progress for a user (a Segment delete's answer does not name it)."""
    with store.engine.connect() as conn:
        found = conn.execute(
            text("SELECT erasure_id FROM erasures WHERE user_id = :u"), {"u": user_id}
        ).scalar_one_or_none()
    assert found is not None, "no erasure in progress for the user"
    return str(found)


def erasure_handle(api: Api, erasure_id: str) -> WorkflowHandle[Any, ErasureCounts]:
    return api.stack.client.get_workflow_handle(
        erasure_workflow_id(erasure_id), result_type=ErasureCounts
    )


async def until_step(api: Api, erasure_id: str, step: str, timeout: float = 30.0) -> None:
    """Wait (real time: activities, not journey time) until the erasure reaches `step`."""
    handle = erasure_handle(api, erasure_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while (await handle.query("progress", result_type=ErasureCounts)).step != step:
        assert asyncio.get_running_loop().time() < deadline, f"erasure never at {step!r}"
        await asyncio.sleep(0.05)


async def finish_erasure(api: Api, erasure_id: str) -> dict[str, Any]:
    """Run the erasure to its end, moving its clock over each wait between passes (never a real
    sleep); its status as GET /v1/erasures/{id} answers it."""
    handle = erasure_handle(api, erasure_id)
    for _ in range(10):
        await settle(handle, timeout=180)
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            break
        await api.stack.skipper.fast_forward(handle, timedelta(minutes=2))
    counts = await asyncio.wait_for(handle.result(), 30)
    assert counts.done
    answer = await api.http.get(f"/v1/erasures/{erasure_id}")
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()
    assert status["status"] == "done"
    return status


def leftovers(store: Store, needles: list[str]) -> list[str]:
    """Every (table, column, needle) where a needle is in a value: all tables, all rows, all
    columns, compared case-insensitively, JSON and dates as text."""
    found = []
    lowered = [n.lower() for n in needles]
    with store.engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            for row in result.mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    as_text = value if isinstance(value, str) else json.dumps(value, default=str)
                    found += [
                        f"{table}.{column}: {needle}"
                        for needle, low in zip(needles, lowered, strict=True)
                        if low in as_text.lower()
                    ]
    return found


async def in_temporal(client: Client, who: Person, workflow_ids: list[str]) -> list[str]:
    """What Temporal still has of the person: every execution listed under their user key,
    and each of `workflow_ids` that can still be described or its history fetched."""
    found = [f"listed: {w.id}" async for w in client.list_workflows(f"JourneyUserId = '{who.key}'")]
    for wid in workflow_ids:
        handle = client.get_workflow_handle(wid)
        for what, call in (("described", handle.describe), ("history", handle.fetch_history)):
            try:
                await call()
            except RPCError as err:
                assert err.status == RPCStatusCode.NOT_FOUND, err
                continue
            found.append(f"{what}: {wid}")
    return found


async def until_listed(client: Client, who: Person, timeout: float = 10.0) -> None:
    """Wait until visibility lists a running journey of theirs (it lags a start a moment)."""
    deadline = asyncio.get_running_loop().time() + timeout
    query = f"JourneyUserId = '{who.key}' AND ExecutionStatus = 'Running'"
    while not [w async for w in client.list_workflows(query)]:
        assert asyncio.get_running_loop().time() < deadline, "never listed"
        await asyncio.sleep(0.05)


def history_texts(history: Any) -> str:
    """Every string in a history, with payload data decoded."""
    found: list[str] = []
    stack = [history.to_json_dict()]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("data"), str) and "metadata" in item:
                found.append(base64.b64decode(item["data"]).decode("utf-8", "replace"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.append(item)
    return "\n".join(found)
