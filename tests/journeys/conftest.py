"""Driving the shipped journeys through the public webhook, with their real templates."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activities.holdout import assign_group
from activities.sending import SendingActivities
from activities.store import OutboxMessage, Store
from activities.templates import Renderer
from tests.conftest import NO_LIMITS, Api
from workflows.models import JourneyState

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class Shop:
    """One API on a fresh worker running shipped journeys, and the calls a customer makes."""

    api: Api

    def user(self, journey: str, group: str = "treatment", prefix: str = "u") -> str:
        """A new user ID that `journey`'s holdout puts in `group`."""
        while True:
            user = f"{prefix}-{uuid.uuid4().hex[:10]}"
            if assign_group(journey, user, 0.15) == group:
                return user

    async def identify(self, user: str, **traits: Any) -> None:
        traits.setdefault("email", f"{user}@example.test")
        response = await self.api.http.post("/v1/identify", json={"userId": user, "traits": traits})
        assert response.status_code == 200, response.text

    async def track(
        self, user: str, event: str, properties: dict[str, Any] | None = None, *,
        ago: timedelta | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """POST /v1/track; `ago` backdates the event (history for segments)."""
        body: dict[str, Any] = {"userId": user, "event": event, "properties": properties or {}}
        if ago is not None:
            body["timestamp"] = (datetime.now(UTC) - ago).isoformat()
        response = await self.api.http.post("/v1/track", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def advance(self, journey: str, user: str, by: timedelta) -> None:
        await self.api.stack.advance(journey, user, by)

    async def outcome(self, journey: str, user: str) -> JourneyState:
        """The journey's state once it has ended (its outcome), also while it stays open to
        refuse re-entry; fails if it has not ended within 20 s."""
        for _ in range(400):
            state = await self.api.stack.state(journey, user)
            if state.outcome is not None:
                return state
            await asyncio.sleep(0.05)
        raise AssertionError(f"{journey} for {user} has not ended: step {state.step!r}")

    def sent(self, user: str) -> list[OutboxMessage]:
        return [m for m in self.api.stack.outbox(user) if m.status == "sent"]

    def templates(self, user: str) -> list[str]:
        return [m.template for m in self.sent(user)]


@pytest.fixture
def shop_for(api_for: Any, store: Store) -> Iterator[Any]:
    """`await shop_for(JourneyA, ...)`: the API and a worker with the real templates."""

    async def start(*journeys: type, **overrides: Any) -> Shop:
        sending = SendingActivities(store, Renderer(TEMPLATES), policy=NO_LIMITS)
        return Shop(await api_for(*journeys, sending=sending, **overrides))

    yield start
