"""The API on a fresh worker, and what an operator's tests do with it: users in a given group,
events over HTTP, and waiting for Temporal visibility (eventually consistent) to catch up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from activities.holdout import assign_group
from tests.conftest import Api
from workflows.journey import Journey


@dataclass
class Operator:
    """One API (with its worker) and the calls the tests make through it."""

    api: Api

    def user(
        self, journey: type[Journey], group: str = "treatment", prefix: str = "op", at: str = ""
    ) -> str:
        """A new user ID that `journey`'s holdout puts in `group`; `at="example.com"` makes it
        an email address (a user ID that is hashed into its key)."""
        while True:
            user = f"{prefix}-{uuid.uuid4().hex[:10]}" + (f"@{at}" if at else "")
            if assign_group(journey.name, user, journey.holdout) == group:
                return user

    async def track(self, user: str, event: str, *, email: bool = True, **properties: Any) -> None:
        """POST /v1/track; with the user's email address as a context trait unless told not."""
        body: dict[str, Any] = {"userId": user, "event": event, "properties": properties}
        if email:
            address = user if "@" in user else f"{user}@example.test"
            body["context"] = {"traits": {"email": address}}
        response = await self.api.http.post("/v1/track", json=body)
        assert response.status_code == 200, response.text

    async def listed(
        self, journey: str, done: Callable[[list[dict[str, Any]]], bool], **params: Any
    ) -> list[dict[str, Any]]:
        """Every user GET /v1/journeys/{journey}/users lists (all pages), once `done` says the
        listing has caught up; fails after 20 s with the last listing."""
        users: list[dict[str, Any]] = []
        for _ in range(200):
            users = await self.all_pages(journey, **params)
            if done(users):
                return users
            await asyncio.sleep(0.1)
        raise AssertionError(f"visibility never caught up: {users}")

    async def all_pages(self, journey: str, **params: Any) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            response = await self.api.http.get(f"/v1/journeys/{journey}/users", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            users += page["users"]
            cursor = page["nextCursor"]
            if cursor is None:
                return users

    async def closed(self, journey: str, user: str) -> WorkflowExecutionStatus | None:
        """The journey's Temporal status once it is no longer running (fails after 20 s)."""
        handle = self.api.stack.handle(journey, user)
        for _ in range(400):
            status = (await handle.describe()).status
            if status != WorkflowExecutionStatus.RUNNING:
                return status
            await asyncio.sleep(0.05)
        raise AssertionError(f"{journey} for {user} is still running")


def keys(users: list[dict[str, Any]]) -> set[str]:
    return {u["userKey"] for u in users}


@pytest.fixture
def operator_for(api_for: Any) -> Iterator[Any]:
    """`await operator_for(JourneyA, ...)`: the API on a fresh worker running those journeys."""

    async def start(*journeys: type[Journey]) -> Operator:
        return Operator(await api_for(*journeys))

    yield start
