"""The in-app channel: messages a journey sent to a user's inbox, for the app to show.

GET  /v1/users/{user_id}/messages                  newest first, with read state
POST /v1/users/{user_id}/messages/{id}/read        mark one read (idempotent)
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel

router = APIRouter()

MessageId = Annotated[int, Path(ge=1, le=2**63 - 1)]
"""A database row ID: bounded, so a huge number is a 422 rather than an overflow in the driver."""


class InboxMessage(BaseModel):
    id: int
    journey: str
    template: str
    subject: str | None
    html: str | None
    text: str | None
    context: dict[str, Any]
    sentAt: datetime
    readAt: datetime | None


@router.get("/v1/users/{user_id}/messages")
async def inbox(user_id: str, request: Request) -> list[InboxMessage]:
    """The user's in-app messages, newest first."""
    rows = await asyncio.to_thread(request.app.state.store.messages, user_id, "in_app")
    return [
        InboxMessage(
            id=row.id,
            journey=row.journey,
            template=row.template,
            subject=row.subject,
            html=row.body_html,
            text=row.body_text,
            context=row.context,
            sentAt=row.created_at,
            readAt=row.read_at,
        )
        for row in rows
    ]


@router.post("/v1/users/{user_id}/messages/{message_id}/read", status_code=204)
async def mark_read(user_id: str, message_id: MessageId, request: Request) -> None:
    """Mark a message read; 404 if the user has no such in-app message."""
    found = await asyncio.to_thread(request.app.state.store.mark_read, user_id, message_id)
    if not found:
        raise HTTPException(404, f"user {user_id!r} has no in-app message {message_id}")
