"""Twilio's side of the `sms` channel for the tests: its Messages API on loopback, and the
settings that point our worker and API at it.

    def test_x(twilio_api):                       # a fresh stand-in per test
        TwilioSMS(**twilio_settings_for(twilio_api)) ...
        twilio_api.script(refused(21610))         # scripted answers, then 201s
        twilio_api.received / twilio_api.forms()  # what Twilio got
    api = await api_for(Journey, **SMS_API)       # our API with the webhooks enabled
    await post_webhook(api.url, INBOUND, inbound_params(number, "STOP"), public_url=PUBLIC)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from tests.providers.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, TwilioServer

PUBLIC = "https://journeys.example.test"
"""JOURNEYS_PUBLIC_URL in these tests: what webhooks are signed for."""
SECRET = "sms-tests-secret-0123456789abcdef"
"""JOURNEYS_SECRET_KEY: keys the phone hashes in sms_opt_outs."""
INBOUND = "/v1/sms/twilio/inbound"
STATUS = "/v1/sms/twilio/status"
SMS_API: dict[str, Any] = {
    "sms_provider": "twilio",
    "twilio_account_sid": ACCOUNT_SID,
    "twilio_auth_token": SecretStr(AUTH_TOKEN),
    "twilio_from": FROM_NUMBER,
    "public_url": PUBLIC,
    "secret_key": SecretStr(SECRET),
}
"""Settings overrides for `api_for(...)`: SMS through Twilio, webhooks enabled."""


def twilio_settings_for(server: TwilioServer, **changes: Any) -> dict[str, Any]:
    """TwilioSMS's constructor arguments, pointed at the stand-in (as worker.py passes them)."""
    return {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": FROM_NUMBER,
        "messaging_service_sid": None,
        "base_url": server.base_url,
        "status_callback": f"{PUBLIC}{STATUS}",
        "timeout": 2.0,
        **changes,
    }


@pytest.fixture
def twilio_api() -> Iterator[TwilioServer]:
    """Twilio's Messages API on loopback for one test (see tests/providers/twilio_api.py)."""
    with TwilioServer() as server:
        yield server
        server.release()
