"""A user's push devices: the FCM registration tokens the `push` channel sends to.

    POST   /v1/users/{user_id}/devices           {"token": "...", "platform": "ios"}: register
    GET    /v1/users/{user_id}/devices           the user's devices, most recently seen first
    DELETE /v1/users/{user_id}/devices/{token}   forget one (the app logged out)

An identify carrying Segment's `context.device.token` (or a `push_token` trait) registers the
same way (activities/devices.py). A token is the credential to notify a device, so answers show
only its last 8 characters. A token registered for another user moves to this one (a shared
device, a new login); FCM's UNREGISTERED answer drops it (activities/providers/fcm.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.devices import MAX_TOKEN, normal_token
from activities.store import DeviceRow, Store
from starter.methods import refuse_other_methods

router = APIRouter()

UserId = Annotated[str, Path(min_length=1, max_length=255)]
Token = Annotated[str, Path(min_length=1, max_length=MAX_TOKEN)]
SHOWN = 8
"""Characters of a token an answer shows (its end)."""


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=MAX_TOKEN, pattern=r"^[!-~]+$")
    """The FCM registration token the app got from the Firebase SDK (printable ASCII, no
    spaces, as FCM's and APNs' tokens are)."""
    platform: Literal["ios", "android", "web"] | None = None

    @field_validator("token")
    @classmethod
    def _one_word(cls, value: str) -> str:
        token = normal_token(value)
        if token is None:
            raise ValueError("a token is printable characters without spaces")
        return token


class Device(BaseModel):
    tokenEnd: str
    """The token's last 8 characters: enough to tell devices apart, not to notify one."""
    platform: str | None
    createdAt: datetime
    updatedAt: datetime


class Devices(BaseModel):
    userId: str
    devices: list[Device]


def _shown(row: DeviceRow) -> Device:
    return Device(
        tokenEnd=row.token[-SHOWN:],
        platform=row.platform,
        createdAt=row.created_at,
        updatedAt=row.updated_at,
    )


@router.post(
    "/v1/users/{user_id}/devices",
    status_code=201,
    responses={200: {"model": Device, "description": "Known already: its time updated"}},
)
async def add_device(
    user_id: UserId, device: DeviceIn, request: Request, response: Response
) -> Device:
    """Register a push device for the user: 201 when it is new to them, 200 when known."""
    store: Store = request.app.state.store
    new = await asyncio.to_thread(store.add_device, user_id, device.token, device.platform)
    if not new:
        response.status_code = 200
    rows = await asyncio.to_thread(store.devices_of, user_id)
    row = next((r for r in rows if r.token == device.token), None)
    if row is None:  # moved to another user meanwhile: what this call registered still stands
        raise HTTPException(409, "the device was registered for another user meanwhile")
    return _shown(row)


@router.get("/v1/users/{user_id}/devices")
async def list_devices(user_id: UserId, request: Request) -> Devices:
    """The user's push devices, most recently seen first (an unknown user has none)."""
    store: Store = request.app.state.store
    rows = await asyncio.to_thread(store.devices_of, user_id)
    return Devices(userId=user_id, devices=[_shown(r) for r in rows])


@router.delete(
    "/v1/users/{user_id}/devices/{token}",
    status_code=204,
    responses={404: {"description": "The user has no such device"}},
)
async def remove_device(user_id: UserId, token: Token, request: Request) -> Response:
    """Forget one of the user's devices: no push goes to it any more."""
    store: Store = request.app.state.store
    if not await asyncio.to_thread(store.remove_device, token, user_id):
        raise HTTPException(404, "no such device for this user")
    return Response(status_code=204)


refuse_other_methods(router, "/v1/users/{user_id}/devices", ("GET", "POST"))
