"""Personal data stays in the database and the email; secrets stay in the environment.

A shopper known by an email address (as user ID, or as a trait of a plain user ID) with a phone,
a name and a postal address goes through the API, and cart recovery sends them a reminder.
Then everything an operator or a log collector sees is searched for those values:

- Temporal visibility (workflow IDs, search attributes, memo) never holds them: a user ID that
  is not a plain identifier is hashed (workflows/identity.py);
- workflow histories (the Temporal UI shows every payload) never hold contact details or names:
  the entry snapshot drops CONTACT_TRAITS (activities/entry.py), the send activity reads the
  profile itself. The one exception is the user ID, which a journey needs: an email address
  used as the user ID is in histories as `user_id`, and nowhere else;
- logs, at DEBUG, from the API, the worker and the SDK, hold none of them; nor do the metrics.

And the API key, the secret key, the provider key and the sources' secrets appear in no log,
in neither /healthz nor the OpenAPI document, and in no error answer.
"""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from activities.holdout import assign_group
from activities.sending import DeliveryPolicy, SendingActivities
from activities.templates import Renderer
from tests.security.conftest import SOURCE_SECRETS
from workflows.journeys.cart_recovery import CartRecovery

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SECRET_KEY = "sk-unsubscribe-" + uuid.uuid4().hex
PROVIDER_KEY = "pk-provider-" + uuid.uuid4().hex
SMTP_PASSWORD = "smtp-" + uuid.uuid4().hex
WEBHOOK_SECRET = "whsec_" + base64.b64encode(uuid.uuid4().bytes).decode()


def shopper(email_as_id: bool) -> tuple[str, dict[str, Any]]:
    """A user ID in cart recovery's treatment group, and their unmistakable personal data."""
    while True:
        tag = uuid.uuid4().hex[:10]
        email = f"zebulon.quixote.{tag}@example.test"
        user = email if email_as_id else f"user-{tag}"
        if assign_group(CartRecovery.name, user, CartRecovery.holdout) == "treatment":
            break
    traits = {
        "email": email,
        "phone": f"+44 7700 9{tag[:5].translate(str.maketrans('abcdef', '123456'))}",
        "first_name": "Zebulon",
        "last_name": f"Quixote-{tag}",
        "name": f"Zebulon Quixote-{tag}",
        "address": {"street": f"{tag} Hidden Lane", "city": "Ambridge"},
    }
    return user, traits


def personal(traits: dict[str, Any]) -> list[str]:
    """Every value that identifies the person, as text to search for."""
    return [
        traits["email"],
        traits["email"].split("@")[0],
        traits["phone"],
        traits["phone"].replace(" ", "")[3:],
        traits["last_name"],
        traits["name"],
        "Zebulon",
        traits["address"]["street"],
    ]


@pytest.fixture
async def shop(api_for: Any, store: Any) -> Any:
    """The API with every secret set, a worker running cart recovery with the real templates."""
    sending = SendingActivities(
        store,
        Renderer(TEMPLATES),
        policy=DeliveryPolicy(quiet_hours=None, frequency_cap=100, secret_key=SECRET_KEY),
    )
    return await api_for(
        CartRecovery,
        sending=sending,
        secret_key=SecretStr(SECRET_KEY),
        provider_api_key=SecretStr(PROVIDER_KEY),
        smtp_password=SecretStr(SMTP_PASSWORD),
        webhook_secret=SecretStr(WEBHOOK_SECRET),
        **SOURCE_SECRETS,
    )


async def abandon_a_cart(api: Any, user: str, traits: dict[str, Any]) -> None:
    """Identify, add to cart with contact details in context, leave: the reminder goes out."""
    answer = await api.http.post("/v1/identify", json={"userId": user, "traits": traits})
    assert answer.status_code == 200, answer.text
    call = {
        "userId": user,
        "event": "Product Added",
        "properties": {"product_id": "lamp-1", "name": "Lamp", "price": 59.0, "quantity": 1},
        "context": {"traits": {"phone": traits["phone"]}, "timezone": "Europe/London"},
    }
    answer = await api.http.post("/v1/track", json=call)
    assert answer.status_code == 200 and answer.json()["journeys"][0]["action"] == "triggered"
    await api.stack.advance(CartRecovery.name, user, timedelta(minutes=61))
    [reminder] = api.stack.outbox(user)
    assert reminder.status == "sent" and reminder.recipient == traits["email"]
    assert "Hi Zebulon" in (reminder.body_html or "")  # the email itself is personal, rightly


async def temporal_view(client: Client, task_queue: str) -> tuple[str, str]:
    """(visibility, histories) of every workflow on the queue, as searchable text: IDs, search
    attributes, memo and execution info; every history event with its payloads decoded."""
    visible: list[str] = []
    histories: list[str] = []
    async for listed in client.list_workflows(f"TaskQueue = '{task_queue}'"):
        handle = client.get_workflow_handle(listed.id, run_id=listed.run_id)
        description = await handle.describe()
        visible += [listed.id, str(listed.typed_search_attributes), str(await listed.memo())]
        visible.append(str(description.raw_description))
        history = await handle.fetch_history()
        histories.append(" ".join(_texts(history.to_json_dict())))
    assert visible and histories, "no workflows found on the task queue"
    return "\n".join(visible), "\n".join(histories)


def _texts(node: Any) -> list[str]:
    """Every string in a history's JSON, with payload data (base64) decoded."""
    found: list[str] = []
    stack = [node]
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
    return found


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record's message and attributes (`extra` fields, arguments, exception text)."""
    return "\n".join(
        f"{record.getMessage()} {record.__dict__!r} {record.exc_text or ''}"
        for record in caplog.records
    )


@pytest.mark.parametrize("email_as_id", [False, True], ids=["plain-user-id", "email-as-user-id"])
async def test_personal_data_stays_out_of_temporal_and_the_logs(
    shop: Any, caplog: pytest.LogCaptureFixture, email_as_id: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    user, traits = shopper(email_as_id)
    await abandon_a_cart(shop, user, traits)

    visibility, histories = await temporal_view(shop.stack.client, shop.stack.router.task_queue)
    if email_as_id:
        assert f'"user_id":"{user}"' in histories  # the journey needs to know whom it is for
        histories = histories.replace(f'"user_id":"{user}"', '"user_id":<the user ID>')
    logs = logged(caplog)
    metrics = await shop.http.get("/metrics")
    assert metrics.status_code == 200 and "journeys_api" in metrics.text
    assert "cart_recovery" in histories and len(caplog.records) > 0
    for value in personal(traits):
        assert value not in visibility, f"{value!r} in Temporal visibility"
        assert value not in histories, f"{value!r} in a workflow history"
        assert value not in logs, f"{value!r} in the logs"
        assert value not in metrics.text, f"{value!r} in the metrics"


SECRETS = [
    SECRET_KEY,
    PROVIDER_KEY,
    SMTP_PASSWORD,
    WEBHOOK_SECRET,
    *(secret.get_secret_value() for secret in SOURCE_SECRETS.values()),
]


async def test_no_secret_in_logs_health_docs_or_error_answers(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user, traits = shopper(email_as_id=False)
    await abandon_a_cart(shop, user, traits)
    answers: list[httpx.Response] = [
        await shop.http.get("/healthz"),
        await shop.http.get("/openapi.json"),
        await shop.http.get("/docs"),
        await shop.http.get("/metrics"),
        await shop.http.get("/dashboard"),
        await shop.http.post("/v1/track", json={"event": "x"}),  # 422
        await shop.http.post("/v1/track", content=b"{"),  # 400
        await shop.http.post("/v1/users/u/messages/1/read"),  # 404
        await shop.http.post("/v1/sources/stripe", content=b"{}"),  # 401, no signature
        await shop.http.post(
            "/v1/sources/webhook",
            content=b"{}",
            headers={"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
        ),  # 401, wrong signature
        await shop.http.get("/u/not-a-token"),  # 400
    ]
    async with httpx.AsyncClient(base_url=shop.url) as anonymous:
        wrong = {"Authorization": f"Bearer {shop.key[:-1]}x"}
        answers += [
            await anonymous.post("/v1/track", json={"userId": "u", "event": "x"}),
            await anonymous.post("/v1/track", json={"userId": "u", "event": "x"}, headers=wrong),
            await anonymous.get("/outbox"),
            await anonymous.get("/dashboard"),
        ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200, 200, 200, 200, 200, 422, 400, 404, 401, 401, 400, 401, 401, 401, 401]
    logs = logged(caplog)
    for secret in [shop.key, *SECRETS]:
        assert secret not in logs
        for answer in answers:
            assert secret not in answer.text, (answer.request.url, answer.status_code)
            assert all(secret not in value for value in answer.headers.values())
