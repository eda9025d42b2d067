"""What the engagement tests share: the send activity with tracking on, a vendor stand-in per
test, and reading what was recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlmodel import select

from activities.providers import EmailProvider, ProviderConfig, create_provider
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import MessageEvent, OutboxMessage, Store
from tests.conftest import renderer, serving
from tests.providers.servers import CONTRACTS, KEY, Script, contract_app

TEMPLATES = Path(__file__).parent / "templates"
SECRET = "engagement-tests-secret-0123456789"
PUBLIC = "https://journeys.example.test"
"""Where recipients reach the API; the tests ask the running API for the paths of links."""
TRACKING = {"secret_key": SecretStr(SECRET), "public_url": PUBLIC}
"""The API's settings that match the send activity's."""


def sending(
    store: Store, provider: EmailProvider | None = None, **policy: Any
) -> SendingActivities:
    rules: dict[str, Any] = {
        "quiet_hours": None,
        "frequency_cap": 100,
        "secret_key": SECRET,
        "public_url": PUBLIC,
        "track_clicks": True,
        "track_opens": True,
        **policy,
    }
    return SendingActivities(
        store,
        renderer(TEMPLATES),
        provider=provider,
        policy=DeliveryPolicy(**rules),
    )


@asynccontextmanager
async def vendor(name: str, *replies: tuple[int, Any, dict[str, str]]) -> AsyncIterator[Any]:
    """The vendor's documented API on loopback, answering `replies` in turn; yields its
    provider client (our real one)."""
    contract = CONTRACTS[name]
    script = Script()
    for status, body, headers in replies:
        script.then(status, body, headers)
    async with serving(contract_app(script, contract.path, contract.check)) as url:
        config = ProviderConfig(provider=name, base_url=url, api_key=SecretStr(KEY))  # type: ignore[arg-type]
        provider = create_provider(config)
        try:
            yield provider
        finally:
            provider.close()


def events(store: Store, kind: str | None = None) -> list[MessageEvent]:
    with store.session() as session:
        query = select(MessageEvent).order_by(MessageEvent.id)  # type: ignore[arg-type]
        if kind is not None:
            query = query.where(MessageEvent.kind == kind)
        return list(session.exec(query))


def sent(store: Store, user: str, template: str) -> OutboxMessage:
    [row] = [m for m in store.outbox(user) if m.template == template]
    return row


def send_steps(store: Store, user: str) -> list[tuple[str, str, str | None]]:
    [run] = store.runs(user_id=user)
    return [(s.name, s.status, s.detail) for s in store.steps(run.run_id) if s.kind == "send"]
