"""The provider stand-ins of tests/channels/sms and tests/channels/push, for the tests here that
use both (the authoring guide's journey)."""

from tests.channels.push.conftest import fcm_account, fcm_api
from tests.channels.sms.conftest import twilio_api

__all__ = ["fcm_account", "fcm_api", "twilio_api"]
