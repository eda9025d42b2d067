"""A user's push devices on the running API: registered by POST or by a Segment mobile call's
`context.device.token`, listed without their tokens, removed, and gone with an erasure."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.erasure.harness import finish_erasure, leftovers, shop

# Segment's identify example from a mobile library (segment.com/docs/connections/spec/
# identify), trimmed: the APNs token in context.device.token, the OS in context.device.type.
SEGMENT_MOBILE_IDENTIFY: dict[str, Any] = {
    "anonymousId": "507f191e810c19729de860ea",
    "context": {
        "device": {
            "id": "B5372DB0-C21E-11E4-8DFC-AA07A5B093DB",
            "manufacturer": "Apple",
            "model": "iPhone7,2",
            "type": "ios",
            "token": "ff15bc0c20c4aa6cd50854ff165fd265c838e5405bfeb9571066395b8c9da449",
        },
        "ip": "8.8.8.8",
        "locale": "nl-NL",
        "os": {"name": "iPhone OS", "version": "8.1.3"},
    },
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "timestamp": "2015-02-23T22:28:55.111Z",
    "traits": {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "premium"},
    "type": "identify",
    "userId": "97980cfea0067",
    "version": "1.1",
}
FCM_TOKEN = "eX4mPl3_t0k:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ-hQMRKRrZuJAEcl7B3"


def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


@pytest.mark.both_databases
async def test_register_list_and_remove_a_device_without_echoing_its_token(
    api_for: Any, store: Any
) -> None:
    api = await api_for()
    who = user()
    first = await api.http.post(
        f"/v1/users/{who}/devices", json={"token": FCM_TOKEN, "platform": "android"}
    )
    assert first.status_code == 201, first.text
    assert first.json()["tokenEnd"] == FCM_TOKEN[-8:] and first.json()["platform"] == "android"
    again = await api.http.post(f"/v1/users/{who}/devices", json={"token": FCM_TOKEN})
    assert again.status_code == 200, again.text
    assert again.json()["platform"] == "android"  # not forgotten by a call that omits it
    await api.http.post(f"/v1/users/{who}/devices", json={"token": "web-token-0001"})

    listed = await api.http.get(f"/v1/users/{who}/devices")
    assert listed.status_code == 200
    assert [(d["tokenEnd"], d["platform"]) for d in listed.json()["devices"]] == [
        ("ken-0001", None),
        (FCM_TOKEN[-8:], "android"),
    ]
    for answer in (first, again, listed):
        assert FCM_TOKEN[:-8] not in answer.text
    assert [d.token for d in store.devices_of(who)] == ["web-token-0001", FCM_TOKEN]

    # Another user's call cannot remove it; the owner's can, once.
    assert (await api.http.delete(f"/v1/users/{user()}/devices/{FCM_TOKEN}")).status_code == 404
    gone = await api.http.delete(f"/v1/users/{who}/devices/{FCM_TOKEN}")
    assert gone.status_code == 204
    assert (await api.http.delete(f"/v1/users/{who}/devices/{FCM_TOKEN}")).status_code == 404
    assert [d.token for d in store.devices_of(who)] == ["web-token-0001"]


async def test_bad_registrations_are_refused_by_field_and_the_key_is_required(
    api_for: Any, store: Any
) -> None:
    api = await api_for()
    who = user()
    for body, field in [
        ({"token": FCM_TOKEN, "app": "shop"}, "app"),
        ({"token": "x" * 1025}, "token"),
        ({"token": ""}, "token"),
        ({"token": "two words"}, "token"),
        ({"token": FCM_TOKEN, "platform": "windows"}, "platform"),
        ({}, "token"),
    ]:
        answer = await api.http.post(f"/v1/users/{who}/devices", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text
    assert store.devices_of(who) == []
    async with httpx.AsyncClient(base_url=api.url) as stranger:
        for method, path in [("POST", "devices"), ("GET", "devices"), ("DELETE", "devices/t")]:
            answer = await stranger.request(
                method, f"/v1/users/{who}/{path}", json={"token": FCM_TOKEN}
            )
            assert answer.status_code == 401, (method, answer.text)
    assert store.devices_of(who) == []


@pytest.mark.both_databases
async def test_a_segment_mobile_identify_registers_its_device_once(
    api_for: Any, store: Any
) -> None:
    api = await api_for()
    call = {**SEGMENT_MOBILE_IDENTIFY, "userId": user(), "messageId": f"m-{uuid.uuid4()}"}
    answer = await api.http.post("/v1/identify", json=call)
    assert answer.status_code == 200, answer.text
    token = call["context"]["device"]["token"]
    [device] = store.devices_of(call["userId"])
    assert (device.token, device.platform) == (token, "ios")
    first_seen = device.created_at

    replayed = await api.http.post("/v1/identify", json=call)  # Segment retries: same call
    assert replayed.json()["status"] == "duplicate"
    [device] = store.devices_of(call["userId"])
    assert device.created_at == first_seen

    # An Android track with context.device.token, and a push_token trait in a batch.
    other = user()
    track = {
        "type": "track",
        "userId": other,
        "event": "Application Opened",
        "context": {"device": {"type": "android", "token": FCM_TOKEN}},
    }
    identify = {"type": "identify", "userId": other, "traits": {"push_token": "web-token-0002"}}
    plain = {"type": "identify", "userId": user(), "traits": {"email": "p@example.com"}}
    batch = await api.http.post("/v1/batch", json={"batch": [track, identify, plain]})
    assert batch.status_code == 200, batch.text
    assert {(d.token, d.platform) for d in store.devices_of(other)} == {
        (FCM_TOKEN, "android"),
        ("web-token-0002", None),
    }
    assert store.devices_of(plain["userId"]) == []


async def test_an_erased_user_leaves_no_device_and_no_subscription(
    api_for: Any, store: Any
) -> None:
    api = await shop(api_for, store)
    who = user()
    call = {**SEGMENT_MOBILE_IDENTIFY, "userId": who, "messageId": f"m-{uuid.uuid4()}"}
    assert (await api.http.post("/v1/identify", json=call)).status_code == 200
    token = call["context"]["device"]["token"]
    store.set_channel_subscription(who, "push", "*", True, "api")
    assert store.devices_of(who) and store.channel_subscriptions(who)
    assert leftovers(store, [token]), "the search finds the token before"

    answer = await api.http.delete(f"/v1/users/{who}")
    assert answer.status_code == 202, answer.text
    await finish_erasure(api, answer.json()["erasureId"])

    assert store.devices_of(who) == [] and store.channel_subscriptions(who) == {}
    assert leftovers(store, [who, token]) == []  # every column of every table
