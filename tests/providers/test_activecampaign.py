"""ActiveCampaign: the real client against two loopback stand-ins that keep the vendor's
documented contract (the account's API for the contact sync, the Event Tracking API for the
event), alone and through the real send activity and a running journey.

What is asserted is what the send activity relies on: both requests exactly as documented (the
JSON contact, the form-encoded event), the contact synced before the event, and each answer
read as taken, retry later (with Retry-After, or a second after a bare 429), maybe taken (no
answer to the event: recorded "unknown", never resent), or refused for good (suppressing the
address only when ActiveCampaign says the email is bad).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.providers import (
    AmbiguousProviderError,
    EmailProvider,
    PermanentProviderError,
    ProviderConfig,
    ProviderConfigError,
    RetryableProviderError,
    create_provider,
)
from activities.providers.activecampaign import CONTACT_SYNC, event_name
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import OutboxMessage, Store
from starter.settings import Settings
from tests.conftest import renderer
from tests.providers.servers import (
    AC_ACCOUNT_ID,
    AC_EVENT_KEY,
    AC_SYNCED,
    AC_TRACKED,
    KEY,
    LoopbackServer,
    Received,
    Script,
    Stub,
    activecampaign_contact_check,
    activecampaign_event_check,
    free_port,
    message,
)
from workflows.models import SendRequest

MESSAGE = message()
FIELDS = {"items": "12", "subject": "13"}
"""Custom field IDs for two context values (the stand-in takes any numeric ID)."""


def errors(title: str, code: str, pointer: str = "/data/attributes/email") -> dict[str, Any]:
    """ActiveCampaign v3's validation answer (its 422 body)."""
    return {
        "errors": [{"title": title, "detail": "", "code": code, "source": {"pointer": pointer}}]
    }


INVALID_EMAIL = (422, errors("Contact Email Address is not valid.", "email_invalid"), {})


# The two stand-ins ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ac_servers() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    api = LoopbackServer(Stub(CONTACT_SYNC, activecampaign_contact_check))
    tracking = LoopbackServer(Stub("/event", activecampaign_event_check))
    with api, tracking:
        yield api, tracking


@dataclass
class ActiveCampaign:
    """Both stand-ins for one test: script their answers, get clients pointed at them."""

    api: LoopbackServer
    tracking: LoopbackServer
    opened: list[EmailProvider] = field(default_factory=list)

    @property
    def contacts(self) -> Script:
        return self.api.stub.script

    @property
    def events(self) -> Script:
        return self.tracking.stub.script

    def ok(self) -> ActiveCampaign:
        self.contacts.then(*AC_SYNCED)
        self.events.then(*AC_TRACKED)
        return self

    def config(self, **settings: Any) -> ProviderConfig:
        fields: dict[str, Any] = {
            "provider": "activecampaign",
            "api_key": SecretStr(KEY),
            "base_url": self.api.url,
            "activecampaign_account_id": AC_ACCOUNT_ID,
            "activecampaign_event_key": SecretStr(AC_EVENT_KEY),
            "activecampaign_tracking_url": f"{self.tracking.url}/event",
            "activecampaign_fields": FIELDS,
            "timeout": 2.0,
        }
        return ProviderConfig(**{**fields, **settings})

    def provider(self, **settings: Any) -> EmailProvider:
        provider = create_provider(self.config(**settings))
        self.opened.append(provider)
        return provider


@pytest.fixture
def ac(ac_servers: tuple[LoopbackServer, LoopbackServer]) -> Iterator[ActiveCampaign]:
    api, tracking = ac_servers
    api.stub.script, tracking.stub.script = Script(), Script()
    found = ActiveCampaign(api, tracking)
    yield found
    for provider in found.opened:
        provider.close()
    api.stub.script.released.set()  # end any delayed answer now
    tracking.stub.script.released.set()


def form(request: Received) -> list[tuple[str, str]]:
    return parse_qsl(request.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)


def expected_event(msg: Any, name: str) -> list[tuple[str, str]]:
    data = {
        "idempotency_key": msg.idempotency_key,
        "journey": msg.journey,
        "step": msg.step,
        "user_id": msg.user_id,
        "subject": msg.subject,
    }
    return [
        ("actid", AC_ACCOUNT_ID),
        ("key", AC_EVENT_KEY),
        ("event", name),
        ("eventdata", json.dumps(data, separators=(",", ":"))),
        ("visit", json.dumps({"email": msg.to}, separators=(",", ":"))),
    ]


# Taken --------------------------------------------------------------------------------------


def test_a_step_syncs_the_contact_then_tracks_its_event_exactly_as_documented(
    ac: ActiveCampaign,
) -> None:
    delivery = ac.ok().provider().send(MESSAGE)
    assert (delivery.provider, delivery.provider_message_id) == (
        "activecampaign", MESSAGE.idempotency_key
    )  # fmt: skip

    [sync] = ac.contacts.seen
    assert (sync.method, sync.path) == ("POST", "/api/3/contact/sync")
    assert sync.headers["api-token"] == KEY
    assert sync.headers["content-type"] == "application/json"
    assert sync.json() == {
        "contact": {
            "email": "ada@example.test",
            "firstName": "Ada",  # from the render context's first_name
            "fieldValues": [
                {"field": "12", "value": '[{"sku":"lamp-1","price":49.5}]'},
                {"field": "13", "value": "You left a lamp in your cart"},
            ],
        }
    }

    [event] = ac.events.seen
    assert (event.method, event.path) == ("POST", "/event")
    assert event.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "api-token" not in event.headers  # the account's token stays with its API
    assert AC_EVENT_KEY.encode() not in sync.body  # and the event key with the tracker
    assert form(event) == expected_event(MESSAGE, "cart_recovery reminder")
    # `visit` encoded as the reference's sample: visit=%7B%22email%22%3A%22{{email}}%22%7D
    assert b"&visit=%7B%22email%22%3A%22ada%40example.test%22%7D" in event.body


def test_names_the_context_lacks_are_left_out_not_blanked(ac: ActiveCampaign) -> None:
    """A contact sync updates the contact: an empty firstName would erase the one it has."""
    ac.ok().provider(activecampaign_fields={}).send(message(properties={"cart_url": "u"}))
    assert ac.contacts.seen[0].json() == {"contact": {"email": "ada@example.test"}}


def test_names_are_also_read_under_user_and_last_name_goes_too(ac: ActiveCampaign) -> None:
    props = {"user": {"firstName": "Ada", "last_name": "Lovelace"}}
    ac.ok().provider(activecampaign_fields={}).send(message(properties=props))
    assert ac.contacts.seen[0].json()["contact"] == {
        "email": "ada@example.test",
        "firstName": "Ada",
        "lastName": "Lovelace",
    }


def test_event_names_fit_the_32_characters_and_stay_distinct() -> None:
    assert event_name(message(journey="cart_recovery", step="social_proof")) == (
        "cart_recovery social_proof"
    )
    long_a = event_name(message(journey="quarterly_business_review", step="executive_summary"))
    long_b = event_name(message(journey="quarterly_business_review", step="executive_digest"))
    assert len(long_a) == len(long_b) == 32
    assert long_a.startswith("quarterly_business_revi~") and long_a != long_b
    assert long_a == event_name(
        message(journey="quarterly_business_review", step="executive_summary")
    )


def test_a_long_event_name_is_accepted_by_the_tracker(ac: ActiveCampaign) -> None:
    ac.ok().provider().send(message(journey="quarterly_business_review", step="executive_summary"))
    [event] = ac.events.seen
    assert len(dict(form(event))["event"]) == 32


def test_the_api_url_may_be_given_with_its_api_path(ac: ActiveCampaign) -> None:
    ac.ok().provider(base_url=f"{ac.api.url}/api/3/").send(MESSAGE)
    assert [r.path for r in ac.contacts.seen] == ["/api/3/contact/sync"]


def test_activecampaign_does_not_dedupe_on_our_key(ac: ActiveCampaign) -> None:
    """Every event it takes starts the automation again: a resend is a second email."""
    assert ac.provider().idempotent is False


# Retry later ---------------------------------------------------------------------------------


def test_a_rate_limited_contact_sync_retries_after_retry_after_and_tracks_nothing(
    ac: ActiveCampaign,
) -> None:
    ac.contacts.then(429, {"message": "Too Many Requests"}, {"Retry-After": "7"})
    with pytest.raises(RetryableProviderError) as busy:
        ac.provider().send(MESSAGE)
    assert (busy.value.status, busy.value.retry_after) == (429, 7.0)
    assert "contact sync" in busy.value.reason
    assert ac.events.seen == []


def test_a_429_without_retry_after_waits_the_one_second_window(ac: ActiveCampaign) -> None:
    """5 requests per second per account: a second is when the budget comes back."""
    ac.contacts.then(*AC_SYNCED)
    ac.events.then(429, "")
    with pytest.raises(RetryableProviderError) as busy:
        ac.provider().send(MESSAGE)
    assert (busy.value.status, busy.value.retry_after) == (429, 1.0)
    assert "event" in busy.value.reason


@pytest.mark.parametrize("where", ["contacts", "events"])
def test_a_server_error_is_retryable(ac: ActiveCampaign, where: str) -> None:
    if where == "contacts":
        ac.contacts.then(503, {"message": "Service Unavailable"})
    else:
        ac.contacts.then(*AC_SYNCED)
        ac.events.then(503, {})
    with pytest.raises(RetryableProviderError) as down:
        ac.provider().send(MESSAGE)
    assert (down.value.status, down.value.retry_after) == (503, None)
    assert len(ac.events.seen) == (1 if where == "events" else 0)


def test_no_answer_to_the_contact_sync_is_retryable_not_ambiguous(ac: ActiveCampaign) -> None:
    """The sync is an upsert that asks for no email: repeating it cannot send twice."""
    ac.contacts.then(*AC_SYNCED, delay=1.0)
    ac.events.then(*AC_TRACKED)
    with pytest.raises(RetryableProviderError, match="contact sync") as slow:
        ac.provider(timeout=0.3).send(MESSAGE)
    assert not isinstance(slow.value, AmbiguousProviderError)
    assert ac.events.seen == []


@pytest.mark.parametrize("down", ["api", "tracking"])
def test_a_refused_connection_is_retryable(ac: ActiveCampaign, down: str) -> None:
    ac.ok()
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = (
        {"base_url": nowhere}
        if down == "api"
        else {"activecampaign_tracking_url": f"{nowhere}/event"}
    )
    with pytest.raises(RetryableProviderError, match="cannot connect"):
        ac.provider(**settings).send(MESSAGE)


# Maybe taken ---------------------------------------------------------------------------------


def test_no_answer_to_the_event_is_ambiguous_and_it_was_asked_once(ac: ActiveCampaign) -> None:
    ac.contacts.then(*AC_SYNCED)
    ac.events.then(*AC_TRACKED, delay=1.0)
    started = time.monotonic()
    with pytest.raises(AmbiguousProviderError, match="no answer") as silent:
        ac.provider(timeout=0.4).send(MESSAGE)
    assert time.monotonic() - started < 0.95
    assert not isinstance(silent.value, RetryableProviderError | PermanentProviderError)
    assert (len(ac.contacts.seen), len(ac.events.seen)) == (1, 1)


def test_an_event_answer_without_success_is_ambiguous(ac: ActiveCampaign) -> None:
    """A 200 that does not say success 1 or 0 (a proxy's page): it may have been tracked."""
    ac.contacts.then(*AC_SYNCED)
    ac.events.then(200, "<html>OK</html>")
    with pytest.raises(AmbiguousProviderError):
        ac.provider().send(MESSAGE)


# Refused -----------------------------------------------------------------------------------

OTHER_KEY = "ac-live-0000-do-not-leak"


def test_a_bad_api_token_is_permanent_hidden_and_tracks_nothing(ac: ActiveCampaign) -> None:
    ac.ok()
    provider = ac.provider(api_key=SecretStr(OTHER_KEY))
    with pytest.raises(PermanentProviderError) as refused:
        provider.send(MESSAGE)
    assert (refused.value.status, refused.value.suppress_recipient) == (403, False)
    assert "Forbidden" in refused.value.reason
    assert OTHER_KEY not in str(refused.value) + repr(refused.value) + repr(provider)
    assert (len(ac.contacts.seen), ac.events.seen) == (1, [])


def test_a_wrong_event_key_is_refused_for_good_without_suppressing(ac: ActiveCampaign) -> None:
    """The tracker answers 200 {"success": 0}: nothing spawned, and not the address's fault."""
    ac.ok()
    provider = ac.provider(activecampaign_event_key=SecretStr(OTHER_KEY))
    with pytest.raises(PermanentProviderError) as refused:
        provider.send(MESSAGE)
    assert (refused.value.status, refused.value.suppress_recipient) == (200, False)
    assert "event not tracked: Invalid actid or key" in refused.value.reason
    assert OTHER_KEY not in str(refused.value) + repr(refused.value) + repr(provider)


def test_a_key_echoed_back_is_redacted(ac: ActiveCampaign) -> None:
    ac.contacts.then(*AC_SYNCED)
    ac.events.then(200, {"success": 0, "message": f"bad key {AC_EVENT_KEY}"})
    with pytest.raises(PermanentProviderError) as refused:
        ac.provider().send(MESSAGE)
    assert AC_EVENT_KEY not in str(refused.value) and "[redacted]" in refused.value.reason


def test_a_malformed_address_is_refused_by_the_contact_sync_and_suppressed(
    ac: ActiveCampaign,
) -> None:
    ac.ok()  # never reached: the contract refuses first, with 422 email_invalid
    with pytest.raises(PermanentProviderError) as refused:
        ac.provider().send(message(to="ada.example.test"))
    assert (refused.value.status, refused.value.suppress_recipient) == (422, True)
    assert "Contact Email Address is not valid. (email_invalid)" in refused.value.reason
    assert ac.events.seen == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (422, errors("Invalid field values.", "field_invalid", "/data/attributes/fieldValues")),
        (422, errors("Email address already exists in the system", "duplicate")),
        (402, {"message": "The request could not be processed due to account payment issues."}),
        (404, {"message": "No Result found"}),
    ],
    ids=["bad_custom_field", "duplicate", "payment", "wrong_api_url"],
)
def test_a_contact_refusal_that_is_not_the_address_does_not_suppress(
    ac: ActiveCampaign, status: int, body: Any
) -> None:
    ac.contacts.then(status, body)
    with pytest.raises(PermanentProviderError) as refused:
        ac.provider().send(MESSAGE)
    assert refused.value.status == status and not refused.value.suppress_recipient
    assert ac.events.seen == []


def test_a_custom_field_the_contract_refuses_is_not_the_recipients_fault(
    ac: ActiveCampaign,
) -> None:
    ac.ok()
    with pytest.raises(PermanentProviderError) as refused:
        ac.provider(activecampaign_fields={"items": "not-an-id"}).send(MESSAGE)
    assert refused.value.status == 422 and not refused.value.suppress_recipient


def test_a_malformed_event_is_refused_for_good(ac: ActiveCampaign) -> None:
    """The tracker's documented 400 answer is an empty object."""
    ac.contacts.then(*AC_SYNCED)
    ac.events.then(400, {})
    with pytest.raises(PermanentProviderError) as refused:
        ac.provider().send(MESSAGE)
    assert (refused.value.status, refused.value.suppress_recipient) == (400, False)


# Settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("api_key", "JOURNEYS_PROVIDER_API_KEY"),
        ("base_url", "JOURNEYS_PROVIDER_BASE_URL"),
        ("activecampaign_account_id", "JOURNEYS_ACTIVECAMPAIGN_ACCOUNT_ID"),
        ("activecampaign_event_key", "JOURNEYS_ACTIVECAMPAIGN_EVENT_KEY"),
    ],
)
def test_each_missing_setting_is_named(missing: str, named: str) -> None:
    config: dict[str, Any] = {
        "provider": "activecampaign",
        "api_key": SecretStr(KEY),
        "base_url": "https://acme.api-us1.com",
        "activecampaign_account_id": AC_ACCOUNT_ID,
        "activecampaign_event_key": SecretStr(AC_EVENT_KEY),
    }
    config[missing] = None
    with pytest.raises(ProviderConfigError, match=rf"{missing} \({named}\)"):
        create_provider(ProviderConfig(**config))


def test_the_tracking_url_must_be_absolute() -> None:
    config = ProviderConfig(
        provider="activecampaign",
        api_key=SecretStr(KEY),
        base_url="https://acme.api-us1.com",
        activecampaign_account_id=AC_ACCOUNT_ID,
        activecampaign_event_key=SecretStr(AC_EVENT_KEY),
        activecampaign_tracking_url="/event",
    )
    with pytest.raises(ProviderConfigError, match="JOURNEYS_ACTIVECAMPAIGN_TRACKING_URL"):
        create_provider(config)


def test_the_settings_read_the_activecampaign_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_EMAIL_PROVIDER", "activecampaign")
    monkeypatch.setenv("JOURNEYS_PROVIDER_API_KEY", KEY)
    monkeypatch.setenv("JOURNEYS_PROVIDER_BASE_URL", "https://acme.api-us1.com")
    monkeypatch.setenv("JOURNEYS_ACTIVECAMPAIGN_ACCOUNT_ID", AC_ACCOUNT_ID)
    monkeypatch.setenv("JOURNEYS_ACTIVECAMPAIGN_EVENT_KEY", AC_EVENT_KEY)
    monkeypatch.setenv("JOURNEYS_ACTIVECAMPAIGN_FIELDS", '{"cart_url": "12"}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.email_provider == "activecampaign"
    assert settings.activecampaign_account_id == AC_ACCOUNT_ID
    assert settings.activecampaign_event_key is not None
    assert settings.activecampaign_event_key.get_secret_value() == AC_EVENT_KEY
    assert AC_EVENT_KEY not in repr(settings)
    assert settings.activecampaign_tracking_url == "https://trackcmp.net/event"
    assert settings.activecampaign_fields == {"cart_url": "12"}
    provider = create_provider(
        ProviderConfig(
            provider=settings.email_provider,
            api_key=settings.provider_api_key,
            base_url=settings.provider_base_url,
            activecampaign_account_id=settings.activecampaign_account_id,
            activecampaign_event_key=settings.activecampaign_event_key,
            activecampaign_tracking_url=settings.activecampaign_tracking_url,
            activecampaign_fields=settings.activecampaign_fields,
        )
    )
    try:
        assert provider.name == "activecampaign"
        assert KEY not in repr(provider) and AC_EVENT_KEY not in repr(provider)
    finally:
        provider.close()


# Through the real send activity -------------------------------------------------------------

TEMPLATES = Path(__file__).resolve().parent / "templates"
USER = "customer-7d1f0c2e"
EMAIL = "zoe@example.test"
CONTEXT = {
    "headline": "Ihre Lampe wartet",
    "product": "Lampe Kugel",
    "price": "49,50 €",
    "cart_url": "https://shop.example.test/cart/recover?c=c-91",
    "image_url": "https://cdn.example.test/p/kugel-40.jpg",
}
CONTEXT_FIELDS = {"cart_url": "12", "subject": "13"}


def sending_to(store: Store, provider: EmailProvider) -> SendingActivities:
    store.upsert_profile(USER, email=EMAIL, traits={"first_name": "Zoë"})
    return SendingActivities(
        store,
        renderer(TEMPLATES),
        provider=provider,
        policy=DeliveryPolicy(
            from_email="shop@example.test",
            public_url="https://shop.example.test/journeys",
            secret_key="test-secret",
            quiet_hours=None,
            frequency_cap=1000,
            company={"company_name": "Café", "postal_address": "Hafenstraße 1, Hamburg"},
        ),
    )


def request() -> SendRequest:
    return SendRequest(
        idempotency_key=f"t_mailbox:{USER}:run-1:offer",
        run_id="run-1",
        seq=1,
        journey="t_mailbox",
        user_id=USER,
        template="offer",
        context=CONTEXT,
        at=datetime.now(UTC),
    )


def test_the_send_activity_delivers_once_and_the_vendor_got_exactly_these_bodies(
    ac: ActiveCampaign, store: Store
) -> None:
    ac.ok()
    sending = sending_to(store, ac.provider(activecampaign_fields=CONTEXT_FIELDS))
    result = sending.send_message(request())
    assert result.status == "sent", result
    [row] = store.outbox(USER)
    assert (row.status, row.provider, row.provider_message_id) == (
        "sent", "activecampaign", row.idempotency_key
    )  # fmt: skip
    assert row.subject == "Zoë, Ihre Lampe wartet"

    [sync] = ac.contacts.seen
    assert sync.json() == {
        "contact": {
            "email": EMAIL,
            "fieldValues": [
                {"field": "12", "value": CONTEXT["cart_url"]},
                {"field": "13", "value": "Zoë, Ihre Lampe wartet"},
            ],
        }
    }
    [event] = ac.events.seen
    outgoing = message(
        to=EMAIL,
        subject=row.subject,
        idempotency_key=row.idempotency_key,
        journey="t_mailbox",
        step="offer",
        user_id=USER,
    )
    assert form(event) == expected_event(outgoing, "t_mailbox offer")

    # Temporal retries the activity (its completion was lost): nothing is sent again.
    assert sending.send_message(request()).status == "duplicate"
    assert (len(ac.contacts.seen), len(ac.events.seen)) == (1, 1)


def test_an_unanswered_event_is_recorded_unknown_and_never_resent(
    ac: ActiveCampaign, store: Store
) -> None:
    ac.contacts.then(*AC_SYNCED)
    ac.events.then(*AC_TRACKED, delay=1.0)
    sending = sending_to(store, ac.provider(timeout=0.4))
    result = sending.send_message(request())
    assert (result.status, result.reason) == ("sent", "unconfirmed")
    [row] = store.outbox(USER)
    assert row.status == "unknown" and "no answer" in (row.error or "")
    assert sending.send_message(request()).status == "duplicate"  # the activity retried
    assert (len(ac.contacts.seen), len(ac.events.seen)) == (1, 1)


def test_a_worker_that_died_mid_call_leaves_unknown_and_nothing_is_resent(
    ac: ActiveCampaign, store: Store
) -> None:
    ac.ok()
    sending = sending_to(store, ac.provider())
    claimed = OutboxMessage(
        idempotency_key=request().idempotency_key,
        run_id="run-1",
        journey="t_mailbox",
        user_id=USER,
        template="offer",
        recipient=EMAIL,
        status="sending",
        provider="activecampaign",
        journey_time=datetime.now(UTC),
    )
    assert store.insert_once(claimed)
    assert sending.send_message(request()).status == "duplicate"
    [row] = store.outbox(USER)
    assert row.status == "unknown"
    assert (ac.contacts.seen, ac.events.seen) == ([], [])


def test_an_unanswered_contact_sync_retries_the_activity_and_sends_once(
    ac: ActiveCampaign, store: Store
) -> None:
    ac.contacts.then(*AC_SYNCED, delay=1.0).then(*AC_SYNCED)
    ac.events.then(*AC_TRACKED)
    sending = sending_to(store, ac.provider(timeout=0.4))
    with pytest.raises(ApplicationError) as retry:
        sending.send_message(request())
    assert retry.value.type == "ProviderRetry"
    assert store.outbox(USER) == [] and ac.events.seen == []  # the claim is released
    assert sending.send_message(request()).status == "sent"
    assert (len(ac.contacts.seen), len(ac.events.seen)) == (2, 1)


def test_a_rate_limit_becomes_the_activitys_next_retry_delay(
    ac: ActiveCampaign, store: Store
) -> None:
    ac.contacts.then(429, {"message": "Too Many Requests"}, {"Retry-After": "3"})
    sending = sending_to(store, ac.provider())
    with pytest.raises(ApplicationError) as retry:
        sending.send_message(request())
    assert (retry.value.type, retry.value.next_retry_delay) == (
        "ProviderRetry",
        timedelta(seconds=3),
    )
    assert store.outbox(USER) == [] and ac.events.seen == []


def test_an_address_activecampaign_calls_invalid_is_suppressed(
    ac: ActiveCampaign, store: Store
) -> None:
    ac.contacts.then(*INVALID_EMAIL)
    sending = sending_to(store, ac.provider())
    result = sending.send_message(request())
    assert (result.status, result.reason) == ("failed", "provider_refused")
    [row] = store.outbox(USER)
    assert row.status == "failed" and "email_invalid" in (row.error or "")
    profile = store.get_profile(USER)
    assert profile is not None and profile.traits["email_suppressed"] is True
    assert ac.events.seen == []


# Inside a running journey -------------------------------------------------------------------


async def test_in_a_journey_a_busy_account_is_waited_out_and_each_step_tracked_once(
    ac: ActiveCampaign, stack_for: Any, store: Store
) -> None:
    """429 with Retry-After on the first sync: the step is tracked once after the wait. An
    unanswered event on the third step: recorded "unknown", never tracked again by Temporal's
    retries, and the journey goes on to its receipt. (The second step's template lacks a value
    on purpose, so it fails before any request.)"""
    from tests.delivery.journeys import Promo
    from tests.delivery.test_rules import TEMPLATES as DELIVERY_TEMPLATES
    from tests.delivery.test_rules import steps

    ac.contacts.then(429, {"message": "Too Many Requests"}, {"Retry-After": "1"})
    ac.contacts.then(*AC_SYNCED)
    ac.events.then(*AC_TRACKED).then(*AC_TRACKED, delay=1.5).then(*AC_TRACKED)
    policy = DeliveryPolicy(quiet_hours=None, frequency_cap=100, secret_key="s")
    provider = ac.provider(timeout=0.5, activecampaign_fields={})
    stack = await stack_for(
        Promo, sending=SendingActivities(store, renderer(DELIVERY_TEMPLATES), provider, policy)
    )
    user = stack.user(first_name="Ada")
    await stack.track("Promo Requested", user, {"product": "lamp"})
    for _ in range(100):  # retried a second later: the 429 released the claimed row
        outbox = stack.outbox(user)
        if outbox and outbox[0].status == "sent":
            break
        await asyncio.sleep(0.1)
    [first] = stack.outbox(user)
    assert (first.status, first.provider) == ("sent", "activecampaign")
    assert len(ac.contacts.seen) == 2 and len(ac.events.seen) == 1

    for _ in range(3):
        await stack.advance("t_promo", user, timedelta(days=1, minutes=1))
    assert [(s[0], s[1]) for s in steps(stack, user)] == [
        ("first", "sent"),
        ("second", "failed"),
        ("third", "unknown"),
        ("receipt", "sent"),
    ]
    names = [dict(form(e))["event"] for e in ac.events.seen]
    assert names == ["t_promo first", "t_promo third", "t_promo receipt"]
    keys = [json.loads(dict(form(e))["eventdata"])["idempotency_key"] for e in ac.events.seen]
    rows = stack.outbox(user)
    assert keys == [row.idempotency_key for row in rows]
    assert [row.status for row in rows] == ["sent", "unknown", "sent"]
