"""FcmPush against FCM HTTP v1's contract (tests/providers/fcm_api.py): OAuth2 through
google-auth with a real RSA-signed JWT grant, one send per device, FCM's errors read as FCM
documents them, and a send that is final once any device has the notification."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from activities.devices import device_from_call, normal_token
from activities.providers.base import (
    AmbiguousProviderError,
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfigError,
    ProviderError,
    RetryableProviderError,
)
from activities.providers.fcm import FcmPush
from tests.channels.push.conftest import FcmServer
from tests.providers.fcm_api import (
    HANG,
    INVALID_TOKEN,
    QUOTA_EXCEEDED,
    SENDER_ID_MISMATCH,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNREGISTERED,
    ServiceAccount,
)

PHONE = "fGx9_phone:APA91bH" + "q" * 140
TABLET = "dT3k_tablet:APA91bE" + "r" * 140
LAPTOP = "cW1z_laptop:APA91bF" + "s" * 140


def message(*devices: str, **data: str) -> OutgoingMessage:
    return OutgoingMessage(
        to="u-42",
        from_email="",
        subject="Your cart misses you",
        html="",
        text="2 items are waiting: finish your order",
        idempotency_key="cart_recovery:u-42/reminder",
        journey="cart_recovery",
        step="reminder",
        user_id="u-42",
        devices=list(devices),
        data=data or {"journey": "cart_recovery", "url": "https://shop.example/cart"},
    )


def test_each_device_gets_fcms_documented_body_with_one_cached_access_token(
    fcm_api: FcmServer,
) -> None:
    with fcm_api.push() as push:
        first = push.send(message(PHONE, TABLET))
        second = push.send(message(LAPTOP))

    assert isinstance(first, Delivery) and first.provider == "fcm"
    assert first.provider_message_id is not None
    assert first.provider_message_id.startswith(f"projects/{fcm_api.project_id}/messages/")
    assert second.provider_message_id != first.provider_message_id
    assert fcm_api.api.sent[0] == {
        "token": PHONE,
        "notification": {
            "title": "Your cart misses you",
            "body": "2 items are waiting: finish your order",
        },
        "data": {"journey": "cart_recovery", "url": "https://shop.example/cart"},
    }
    assert [m["token"] for m in fcm_api.api.sent] == [PHONE, TABLET, LAPTOP]
    # One token for three sends: google-auth's token is reused until near its expiry.
    assert len(fcm_api.api.token_requests()) == 1
    [issued] = fcm_api.api.tokens_issued
    assert {r.headers["authorization"] for r in fcm_api.api.sends()} == {f"Bearer {issued}"}


def test_a_refused_access_token_is_refreshed_once_and_the_send_goes_through(
    fcm_api: FcmServer,
) -> None:
    with fcm_api.push() as push:
        push.send(message(PHONE))
        fcm_api.api.revoke_tokens()  # revoked or expired early: FCM answers 401
        delivery = push.send(message(TABLET))
    assert delivery.provider_message_id
    assert len(fcm_api.api.tokens_issued) == 2
    assert [m["token"] for m in fcm_api.api.sent] == [PHONE, TABLET]


def test_a_second_401_after_the_refresh_is_a_refusal_not_a_loop(fcm_api: FcmServer) -> None:
    fcm_api.api.fail(PHONE, UNAUTHENTICATED, UNAUTHENTICATED)
    with fcm_api.push() as push, pytest.raises(PermanentProviderError) as raised:
        push.send(message(PHONE))
    assert len(fcm_api.api.sends()) == 2 and len(fcm_api.api.tokens_issued) == 2
    assert "no registered device" in raised.value.reason
    assert "THIRD_PARTY_AUTH_ERROR" in raised.value.reason


def test_concurrent_sends_share_one_token_request(fcm_api: FcmServer) -> None:
    with fcm_api.push() as push, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: push.send(message(f"{PHONE}{i}")), range(16)))
    assert all(r.provider_message_id for r in results)
    assert len(fcm_api.api.token_requests()) == 1


def test_an_unregistered_token_is_forgotten_and_the_other_devices_still_get_it(
    fcm_api: FcmServer,
) -> None:
    forgotten: list[str] = []
    fcm_api.api.unregister(PHONE).fail(LAPTOP, INVALID_TOKEN)
    with fcm_api.push(on_unregistered=forgotten.append) as push:
        delivery = push.send(message(PHONE, TABLET, LAPTOP))
    assert delivery.provider_message_id
    assert forgotten == [PHONE, LAPTOP]
    assert [m["token"] for m in fcm_api.api.sent] == [TABLET]


def test_every_device_dead_is_permanent_without_a_token_in_the_reason(
    fcm_api: FcmServer,
) -> None:
    forgotten: list[str] = []
    fcm_api.api.unregister(PHONE).fail(TABLET, UNREGISTERED)
    with fcm_api.push(on_unregistered=forgotten.append) as push:
        with pytest.raises(PermanentProviderError) as raised:
            push.send(message(PHONE, TABLET))
        with pytest.raises(PermanentProviderError, match="no registered device"):
            push.send(message())  # nobody left: nothing sent, no error from FCM
    assert forgotten == [PHONE, TABLET]
    assert "no registered device" in raised.value.reason and "2 unregistered" in raised.value.reason
    assert PHONE not in repr(raised.value) and TABLET not in raised.value.reason


def test_a_sender_id_mismatch_refuses_that_device_only(fcm_api: FcmServer) -> None:
    forgotten: list[str] = []
    fcm_api.api.fail(PHONE, SENDER_ID_MISMATCH)
    with fcm_api.push(on_unregistered=forgotten.append) as push:
        assert push.send(message(PHONE, TABLET)).provider_message_id
        fcm_api.api.fail(PHONE, SENDER_ID_MISMATCH)
        with pytest.raises(PermanentProviderError, match="SENDER_ID_MISMATCH"):
            push.send(message(PHONE))
    assert forgotten == []  # refused, not dead: the token stays


def test_quota_and_unavailable_with_nobody_reached_are_retryable_with_retry_after(
    fcm_api: FcmServer,
) -> None:
    fcm_api.api.fail(PHONE, QUOTA_EXCEEDED).fail(TABLET, UNAVAILABLE)
    with fcm_api.push() as push:
        with pytest.raises(RetryableProviderError) as raised:
            push.send(message(PHONE, TABLET))
        assert raised.value.retry_after == 30.0
        assert "QUOTA_EXCEEDED" in raised.value.reason
        assert push.send(message(PHONE, TABLET)).provider_message_id  # later, it goes


def test_one_device_reached_and_another_unavailable_is_a_delivery_never_an_error(
    fcm_api: FcmServer,
) -> None:
    """A retry would notify the first device twice: FCM has no idempotency key."""
    fcm_api.api.fail(PHONE, UNAVAILABLE).fail(LAPTOP, HANG)
    with fcm_api.push(timeout=0.5) as push:
        delivery = push.send(message(PHONE, TABLET, LAPTOP))
    assert delivery.provider_message_id
    assert [m["token"] for m in fcm_api.api.sent] == [TABLET]


def test_a_hung_send_with_nobody_reached_is_ambiguous(fcm_api: FcmServer) -> None:
    fcm_api.api.fail(PHONE, HANG).fail(TABLET, UNAVAILABLE)
    with fcm_api.push(timeout=0.5) as push, pytest.raises(AmbiguousProviderError):
        push.send(message(PHONE, TABLET))
    assert FcmPush.idempotent is False  # so the send activity will not resend it


def test_secrets_never_reach_an_error(fcm_api: FcmServer, tmp_path: Path) -> None:
    """The access token, the private key and device tokens stay out of reasons and reprs,
    even when FCM's answer quotes them."""
    fcm_api.api.fail(PHONE, UNAVAILABLE)
    with fcm_api.push() as push:
        with pytest.raises(RetryableProviderError) as raised:
            push.send(message(PHONE))
        [access] = fcm_api.api.tokens_issued
        texts = [raised.value.reason, repr(raised.value), repr(push), str(raised.value)]
    pem_body = fcm_api.account.private_key_pem.splitlines()[1]
    for text in texts:
        assert access not in text and pem_body not in text and PHONE not in text

    # A key the token endpoint refuses (another account's key under this one's name).
    other = ServiceAccount.generate()
    (tmp_path / "other").mkdir()
    wrong = other.write(tmp_path / "other", token_uri=f"{fcm_api.url}/token",
                        client_email=fcm_api.account.client_email)  # fmt: skip
    sends, grants = len(fcm_api.api.sends()), len(fcm_api.api.token_requests())
    with FcmPush(wrong, None, fcm_api.url) as push, pytest.raises(ProviderError) as refused:
        push.send(message(PHONE, TABLET, LAPTOP))
    assert len(fcm_api.api.token_requests()) == grants + 1  # asked once, not per device
    assert isinstance(refused.value, PermanentProviderError)
    assert "Invalid JWT Signature" in refused.value.reason
    assert other.private_key_pem.splitlines()[1] not in repr(refused.value)
    assert len(fcm_api.api.sends()) == sends  # nothing went to FCM without a token


def test_missing_settings_name_the_variable(tmp_path: Path, fcm_account: ServiceAccount) -> None:
    with pytest.raises(ProviderConfigError, match="JOURNEYS_FCM_CREDENTIALS_FILE"):
        FcmPush(None, "p")
    with pytest.raises(ProviderConfigError, match="JOURNEYS_FCM_CREDENTIALS_FILE"):
        FcmPush(tmp_path / "missing.json", "p")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"private_key": fcm_account.private_key_pem}))
    with pytest.raises(ProviderConfigError) as raised:
        FcmPush(broken, "p")
    assert fcm_account.private_key_pem.splitlines()[1] not in str(raised.value)
    no_project = fcm_account.write(tmp_path, "http://127.0.0.1:9/token", project_id=None)
    with pytest.raises(ProviderConfigError, match="JOURNEYS_FCM_PROJECT_ID"):
        FcmPush(no_project, None)
    with FcmPush(no_project, "explicit-project") as push:  # the setting names it instead
        assert push.project_id == "explicit-project"


def test_a_project_the_account_cannot_send_for_is_refused(fcm_api: FcmServer) -> None:
    push = FcmPush(fcm_api.credentials_file, "someone-elses", fcm_api.url)
    with push, pytest.raises(PermanentProviderError, match="PERMISSION_DENIED"):
        push.send(message(PHONE))
    assert fcm_api.api.sent == []


# Tokens carried by Segment calls (activities/devices.py) ----------------------------------


def test_a_token_comes_from_context_device_then_from_traits() -> None:
    ios = {"device": {"id": "B5372DB0", "token": " ff15bc0c20c4aa6cd5 ", "type": "ios"}}
    assert device_from_call({}, ios) == ("ff15bc0c20c4aa6cd5", "ios")
    assert device_from_call({"push_token": "abc:APA91b"}, {}) == ("abc:APA91b", None)
    assert device_from_call({"device_token": "abc:1", "platform": "Android"}, None) == (
        "abc:1",
        "android",
    )
    assert device_from_call({"push_token": "t1"}, {"device": {"type": "android"}}) == (
        "t1",
        "android",
    )
    assert device_from_call({"push_token": "t"}, {"device": {"token": "d"}}) == ("d", None)
    assert device_from_call({"email": "a@example.com"}, {"device": {"id": "x"}}) is None
    assert device_from_call({}, {"device": {"token": "t", "type": "windows"}}) == ("t", None)


@pytest.mark.parametrize(
    "bad", [None, "", "   ", 42, ["t"], "two words", "tab\there", "x" * 1025, "tok\x00en", "é"]
)
def test_unusable_tokens_are_ignored(bad: object) -> None:
    assert normal_token(bad) is None
    assert device_from_call({"push_token": bad}, {"device": {"token": bad}}) is None


def test_the_lock_is_not_held_across_sends(fcm_api: FcmServer) -> None:
    """A hung device does not stop another thread's send (only token refreshes take turns)."""
    fcm_api.api.fail(PHONE, HANG)
    with fcm_api.push(timeout=2.0) as push:
        push.send(message(TABLET))  # the token is cached
        hung = threading.Thread(target=lambda: _quietly(push, message(PHONE)))
        hung.start()
        assert push.send(message(LAPTOP)).provider_message_id
        hung.join(5)


def _quietly(push: FcmPush, outgoing: OutgoingMessage) -> None:
    with contextlib.suppress(ProviderError):
        push.send(outgoing)


def test_the_stand_in_refuses_what_fcm_refuses(fcm_api: FcmServer) -> None:
    """So a client bug shows up as FCM's own 400/401, not as a pass."""
    with fcm_api.push() as push:
        access = push._access_token()
    url = f"{fcm_api.url}/v1/projects/{fcm_api.project_id}/messages:send"
    bearer = {"Authorization": f"Bearer {access}"}
    for body in [
        {"message": {"token": PHONE, "topic": "news"}},
        {"message": {"token": PHONE, "data": {"count": 2}}},
        {"message": {"token": PHONE, "priority": "high"}},
        {"message": {"notification": {"title": "t"}}},
    ]:
        answer = httpx.post(url, json=body, headers=bearer)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert httpx.post(url, json={"message": {"token": PHONE}}).status_code == 401
    wrong = {"Authorization": "Bearer ya29.not-issued"}
    assert httpx.post(url, json={"message": {"token": PHONE}}, headers=wrong).status_code == 401
    assert httpx.post(url, json={"message": {"token": PHONE}}, headers=bearer).status_code == 200
    assert [m["token"] for m in fcm_api.api.sent] == [PHONE]
