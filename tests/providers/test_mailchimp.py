"""Mailchimp audiences (the `audience` channel): the real client against a loopback stand-in
that keeps the Marketing API's documented contract (tests/providers/mailchimp_marketing.py:
Basic auth, the subscriber hash, problem documents, 429 past 10 connections), alone, through
the real send activity, and from a running journey at virtual time.

What is asserted is what a team's Mailchimp journeys rely on: the member added or updated with
exactly the merge fields and tags a step names, its status never changed, each step once in
effect whatever Mailchimp answered first, and nothing at all for a held-out user.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.audiences import (
    MAX_CONNECTIONS,
    MailchimpAudience,
    data_center,
    mailchimp_audience,
    subscriber_hash,
)
from activities.holdout import assign_group
from activities.providers import (
    AmbiguousProviderError,
    PermanentProviderError,
    ProviderConfigError,
    RetryableProviderError,
)
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import OutboxMessage, Store
from activities.suppression import QuietHours
from activities.templates import Renderer
from starter.settings import Settings
from tests.providers.audience_journeys import AudienceCart
from tests.providers.mailchimp_marketing import LIST_ID, MC_KEY, MailchimpMarketing, md5
from tests.providers.servers import LoopbackServer, Received, free_port, message
from worker import sending_from
from workflows.models import SendRequest

ADA = "Ada.Lovelace@Example.test"
ADA_HASH = hashlib.md5(b"ada.lovelace@example.test").hexdigest()
STEP = {"tags": ["cart_abandoner"], "merge_fields": {"CARTVAL": 49.5}, "items": [{"sku": "lamp"}]}


@pytest.fixture(scope="module")
def mailchimp_server() -> Iterator[LoopbackServer]:
    with LoopbackServer(MailchimpMarketing()) as server:
        yield server


@dataclass
class Mailchimp:
    """The stand-in for one test, and audiences pointed at it (closed afterwards)."""

    server: LoopbackServer
    opened: list[MailchimpAudience] = field(default_factory=list)

    @property
    def api(self) -> MailchimpMarketing:
        stub: MailchimpMarketing = self.server.stub  # type: ignore[assignment]
        return stub

    def audience(self, api_key: str = MC_KEY, **settings: Any) -> MailchimpAudience:
        settings.setdefault("base_url", self.server.url)
        settings.setdefault("timeout", 2.0)
        audience = mailchimp_audience(api_key, settings.pop("list_id", LIST_ID), **settings)
        self.opened.append(audience)
        return audience


@pytest.fixture
def mailchimp(mailchimp_server: LoopbackServer) -> Iterator[Mailchimp]:
    mailchimp_server.stub.reset()  # type: ignore[attr-defined]
    found = Mailchimp(mailchimp_server)
    yield found
    for audience in found.opened:
        audience.close()
    found.api.script.released.set()  # end any slow answer now


def step(**properties: Any) -> Any:
    return message(to=ADA, properties=properties)


# The requests, as documented ------------------------------------------------------------------


def test_a_step_adds_the_member_then_tags_it_exactly_as_documented(mailchimp: Mailchimp) -> None:
    delivery = mailchimp.audience().send(step(**STEP))
    assert (delivery.provider, delivery.provider_message_id) == ("mailchimp_audience", ADA_HASH)

    put, tags = mailchimp.api.requests()
    assert (put.method, put.path) == ("PUT", f"/3.0/lists/{LIST_ID}/members/{ADA_HASH}")
    user, _, password = base64.b64decode(put.headers["authorization"][6:]).decode().partition(":")
    assert put.headers["authorization"].startswith("Basic ") and (user, password) == (
        "journeys",
        MC_KEY,
    )
    assert put.headers["content-type"] == "application/json"
    assert put.json() == {
        "email_address": ADA,  # as the user gave it; only the hash is lower-cased
        "status_if_new": "subscribed",
        "merge_fields": {"CARTVAL": 49.5},
    }
    assert (tags.method, tags.path) == ("POST", f"/3.0/lists/{LIST_ID}/members/{ADA_HASH}/tags")
    assert tags.json() == {"tags": [{"name": "cart_abandoner", "status": "active"}]}
    member = mailchimp.api.members[ADA_HASH]
    assert (member["status"], member["merge_fields"], member["tags"]) == (
        "subscribed",
        {"CARTVAL": 49.5},
        {"cart_abandoner"},
    )


def test_the_subscriber_hash_is_the_md5_of_the_lower_cased_address() -> None:
    expected = hashlib.md5(b"urist.mcvankab@freddiesjokes.com").hexdigest()
    assert subscriber_hash("Urist.McVankab@FreddiesJokes.com") == expected
    assert (
        subscriber_hash("urist.mcvankab@freddiesjokes.com")
        == expected
        == md5("URIST.MCVANKAB@FREDDIESJOKES.COM")
    )


def test_removed_tags_go_inactive_and_a_step_without_tags_only_updates_the_member(
    mailchimp: Mailchimp,
) -> None:
    audience = mailchimp.audience()
    audience.send(step(**STEP))
    audience.send(step(tags=["cart_abandoner_24h"], remove_tags=["cart_abandoner"]))
    assert mailchimp.api.requests()[-1].json() == {
        "tags": [
            {"name": "cart_abandoner_24h", "status": "active"},
            {"name": "cart_abandoner", "status": "inactive"},
        ]
    }
    audience.send(step(merge_fields={"FNAME": "Ada"}))
    assert [r.method for r in mailchimp.api.requests()] == ["PUT", "POST", "PUT", "POST", "PUT"]
    member = mailchimp.api.members[ADA_HASH]
    assert member["tags"] == {"cart_abandoner_24h"}
    assert member["merge_fields"] == {"CARTVAL": 49.5, "FNAME": "Ada"}


def test_a_members_status_is_never_changed_and_new_ones_get_the_steps_status(
    mailchimp: Mailchimp,
) -> None:
    mailchimp.api.members[ADA_HASH] = {
        "id": ADA_HASH, "email_address": ADA, "status": "unsubscribed",
        "merge_fields": {}, "tags": set(), "list_id": LIST_ID,
    }  # fmt: skip
    mailchimp.audience().send(step(**STEP))
    assert "status" not in mailchimp.api.requests("PUT")[0].json()
    assert mailchimp.api.members[ADA_HASH]["status"] == "unsubscribed"

    mailchimp.audience().send(message(to="zoe@example.test", properties={}), marketing=False)
    assert mailchimp.api.members[md5("zoe@example.test")]["status"] == "transactional"
    mailchimp.audience(status_if_new="pending").send(message(to="eve@example.test"))
    assert mailchimp.api.members[md5("eve@example.test")]["status"] == "pending"


def test_the_data_center_comes_from_the_key_and_the_key_stays_secret() -> None:
    assert data_center(MC_KEY) == "us6" and data_center("0123abcd") is None
    audience = mailchimp_audience(MC_KEY, LIST_ID)
    try:
        assert "https://us6.api.mailchimp.com" in repr(audience)
        assert MC_KEY not in repr(audience)
    finally:
        audience.close()
    with pytest.raises(ProviderConfigError, match="data center"):
        mailchimp_audience("0123456789abcdef", LIST_ID)
    with pytest.raises(ProviderConfigError, match="JOURNEYS_MAILCHIMP_API_KEY"):
        mailchimp_audience(" ", LIST_ID)
    with pytest.raises(ProviderConfigError, match="JOURNEYS_MAILCHIMP_LIST_ID"):
        mailchimp_audience(MC_KEY, None)


def test_the_worker_builds_the_audience_from_its_settings(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    monkeypatch.setenv("JOURNEYS_MAILCHIMP_API_KEY", MC_KEY)
    monkeypatch.setenv("JOURNEYS_MAILCHIMP_LIST_ID", LIST_ID)
    monkeypatch.setenv("JOURNEYS_MAILCHIMP_STATUS_IF_NEW", "pending")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert MC_KEY not in repr(settings)
    sending = sending_from(settings, store)
    try:
        assert isinstance(sending.audience, MailchimpAudience)
        assert "https://us6.api.mailchimp.com" in repr(sending.audience)
    finally:
        sending.audience.close()
    monkeypatch.delenv("JOURNEYS_MAILCHIMP_LIST_ID")
    with pytest.raises(ProviderConfigError, match="JOURNEYS_MAILCHIMP_LIST_ID"):
        sending_from(Settings(_env_file=None), store)  # type: ignore[call-arg]


# Mailchimp's answers ---------------------------------------------------------------------------


def test_too_many_connections_is_retried_later_and_nothing_else_is_asked(
    mailchimp: Mailchimp,
) -> None:
    detail = "You have exceeded the limit of 10 simultaneous connections."
    mailchimp.api.fail_next("PUT", 429, "Too Many Requests", detail)
    with pytest.raises(RetryableProviderError) as caught:
        mailchimp.audience().send(step(**STEP))
    assert (caught.value.status, caught.value.retry_after) == (429, None)  # Temporal's backoff
    assert "Too Many Requests" in caught.value.reason and "simultaneous" in caught.value.reason
    assert [r.method for r in mailchimp.api.requests()] == ["PUT"]  # no tags for a member not set

    mailchimp.api.fail_next("PUT", 429, "Too Many Requests", detail, **{"Retry-After": "3"})
    with pytest.raises(RetryableProviderError) as later:
        mailchimp.audience().send(step(**STEP))
    assert later.value.retry_after == 3.0


def test_a_server_error_on_the_tags_is_retried_and_the_retry_is_one_effect(
    mailchimp: Mailchimp,
) -> None:
    audience = mailchimp.audience()
    mailchimp.api.fail_next("POST", 503, "Service Unavailable", "Please try again later.")
    with pytest.raises(RetryableProviderError):
        audience.send(step(**STEP))
    audience.send(step(**STEP))  # what Temporal's retry does: both requests again
    member = mailchimp.api.members[ADA_HASH]
    assert (member["merge_fields"], member["tags"]) == ({"CARTVAL": 49.5}, {"cart_abandoner"})


@pytest.mark.parametrize(
    ("setup", "status", "named"),
    [
        ({"api_key": "0000-us6"}, 401, "API Key Invalid"),
        ({"list_id": "f00ba4"}, 404, "Resource Not Found"),
        ({"merge": {"CART_VALUE": 1}}, 400, "CART_VALUE: This merge field does not exist."),
    ],
)
def test_mailchimps_refusals_are_permanent_and_name_the_problem(
    mailchimp: Mailchimp, setup: dict[str, Any], status: int, named: str
) -> None:
    merge = setup.pop("merge", {"CARTVAL": 1})
    with pytest.raises(PermanentProviderError) as caught:
        mailchimp.audience(**setup).send(step(merge_fields=merge, tags=["x"]))
    assert caught.value.status == status and named in caught.value.reason
    assert not caught.value.suppress_recipient  # Mailchimp's refusal is not the address's fault
    assert MC_KEY not in caught.value.reason
    assert [r.method for r in mailchimp.api.requests()] == ["PUT"]


def test_a_key_echoed_back_is_redacted(mailchimp: Mailchimp) -> None:
    mailchimp.api.fail_next("PUT", 400, "Invalid Resource", f"key {MC_KEY} is not allowed here")
    with pytest.raises(PermanentProviderError) as caught:
        mailchimp.audience().send(step(**STEP))
    assert MC_KEY not in caught.value.reason and "[redacted]" in caught.value.reason


def test_no_answer_is_ambiguous_and_a_refused_connection_retryable(mailchimp: Mailchimp) -> None:
    mailchimp.api.latency = 1.0
    with pytest.raises(AmbiguousProviderError):
        mailchimp.audience(timeout=0.3).send(step(**STEP))
    assert mailchimp.audience().idempotent  # so the send activity asks again: PUT is idempotent
    down = mailchimp.audience(base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RetryableProviderError):
        down.send(step(**STEP))


@pytest.mark.parametrize(
    "values",
    [{"tags": "cart_abandoner"}, {"tags": [""]}, {"remove_tags": [3]}, {"merge_fields": ["X"]}],
)
def test_a_step_of_the_wrong_shape_is_refused_before_any_request(
    mailchimp: Mailchimp, values: dict[str, Any]
) -> None:
    with pytest.raises(PermanentProviderError, match="audience: `"):
        mailchimp.audience().send(step(**values))
    assert mailchimp.api.requests() == []


def test_a_worker_never_opens_more_connections_than_mailchimp_allows(
    mailchimp: Mailchimp,
) -> None:
    mailchimp.api.latency = 0.2
    audience = mailchimp.audience()
    with ThreadPoolExecutor(24) as pool:
        done = list(
            pool.map(
                lambda i: audience.send(message(to=f"u{i}@example.test", properties=STEP)),
                range(24),
            )
        )
    assert len(done) == 24 and len(mailchimp.api.members) == 24  # not one 429 on the way
    assert 1 < mailchimp.api.peak <= MAX_CONNECTIONS


# Through the send activity ---------------------------------------------------------------------

USER = "customer-4c1d"


def sending_to(store: Store, audience: MailchimpAudience | None, **traits: Any) -> Any:
    store.upsert_profile(USER, email=ADA, traits=traits)
    always_quiet = QuietHours.parse("00:00-23:59")  # an audience update is no message: not held
    policy = DeliveryPolicy(quiet_hours=always_quiet, frequency_cap=1, secret_key="s")
    return SendingActivities(store, Renderer([]), policy=policy, audience=audience)


def request(**changes: Any) -> SendRequest:
    fields: dict[str, Any] = {
        "idempotency_key": f"t_audience_cart:{USER}:run-1:2",
        "run_id": "run-1",
        "seq": 2,
        "journey": "t_audience_cart",
        "user_id": USER,
        "template": "abandoned",
        "context": STEP,
        "at": datetime.now(UTC),
        "channel": "audience",
    }
    return SendRequest(**{**fields, **changes})


def test_the_send_activity_updates_the_member_once(mailchimp: Mailchimp, store: Store) -> None:
    sending = sending_to(store, mailchimp.audience())
    assert sending.send_message(request()).status == "sent"  # no template, no quiet hours
    [row] = store.outbox(USER)
    assert (row.channel, row.provider, row.recipient, row.status) == (
        "audience", "mailchimp_audience", ADA, "sent"
    )  # fmt: skip
    assert row.provider_message_id == ADA_HASH
    assert sending.send_message(request()).status == "duplicate"  # a retried activity
    assert len(mailchimp.api.requests()) == 2
    # Not an email: another update the same day is not held by the email frequency cap.
    second = request(idempotency_key="k-2", seq=4, template="still_abandoned")
    assert sending.send_message(second).status == "sent"


def test_a_step_a_dead_worker_left_sending_is_completed(mailchimp: Mailchimp, store: Store) -> None:
    """The update may or may not have reached Mailchimp; doing it again is the same update."""
    sending = sending_to(store, mailchimp.audience())
    claimed = request()
    store.insert_once(
        OutboxMessage(
            idempotency_key=claimed.idempotency_key, run_id="run-1", journey=claimed.journey,
            user_id=USER, template="abandoned", channel="audience", recipient=ADA,
            status="sending", provider="mailchimp_audience", context=STEP,
            journey_time=claimed.at,
        )
    )  # fmt: skip
    assert sending.send_message(claimed).status == "sent"
    [row] = store.outbox(USER)
    assert row.status == "sent" and mailchimp.api.members[ADA_HASH]["tags"] == {"cart_abandoner"}


def test_an_unsubscribed_user_gets_no_marketing_update_as_for_an_email(
    mailchimp: Mailchimp, store: Store
) -> None:
    sending = sending_to(store, mailchimp.audience(), unsubscribed=True)
    result = sending.send_message(request())
    assert (result.status, result.reason) == ("skipped", "unsubscribed")
    assert mailchimp.api.requests() == []
    transactional = sending.send_message(request(idempotency_key="k-t", marketing=False))
    assert transactional.status == "sent"
    assert mailchimp.api.members[ADA_HASH]["status"] == "transactional"


def test_a_user_without_an_address_is_skipped(mailchimp: Mailchimp, store: Store) -> None:
    sending = sending_to(store, mailchimp.audience())
    store.upsert_profile("nobody", traits={"first_name": "N"})
    result = sending.send_message(request(user_id="nobody", idempotency_key="k-nobody"))
    assert (result.status, result.reason) == ("skipped", "no_address")
    assert mailchimp.api.requests() == []


def test_without_an_audience_the_channel_fails_loudly(store: Store) -> None:
    with pytest.raises(ApplicationError, match="JOURNEYS_MAILCHIMP_API_KEY") as caught:
        sending_to(store, None).send_message(request())
    assert caught.value.non_retryable


# From a running journey, at virtual time --------------------------------------------------------


def in_group(stack: Any, group: str) -> str:
    while True:
        user = stack.user("shopper")
        if assign_group(AudienceCart.name, user, AudienceCart.holdout) == group:
            return user


def for_member(requests: list[Received], email: str) -> list[Received]:
    return [r for r in requests if md5(email) in r.path]


async def test_a_journey_tags_its_user_after_an_hour_and_retags_a_day_later_holdout_untouched(
    mailchimp: Mailchimp, stack_for: Any, store: Store
) -> None:
    """Mailchimp is busy at the first update (429): Temporal retries it and the member is
    updated once. The held-out user runs the same timers and Mailchimp hears nothing of them."""
    policy = DeliveryPolicy(quiet_hours=None, frequency_cap=100, secret_key="s")
    sending = SendingActivities(store, policy=policy, audience=mailchimp.audience())
    stack = await stack_for(AudienceCart, sending=sending)
    treated, held_out = in_group(stack, "treatment"), in_group(stack, "holdout")
    treated_email, held_email = f"{treated}@example.test", f"{held_out}@example.test"
    for user in (treated, held_out):
        await stack.track("Product Added", user, {"product_id": "lamp", "price": 25})
    mailchimp.api.fail_next("PUT", 429, "Too Many Requests", "10 simultaneous connections.")

    for user in (treated, held_out):
        await stack.advance("t_audience_cart", user, timedelta(hours=1, minutes=1))
    member = mailchimp.api.members[md5(treated_email)]
    assert (member["merge_fields"], member["tags"]) == ({"CARTVAL": 25}, {"cart_abandoner"})

    for user in (treated, held_out):
        await stack.advance("t_audience_cart", user, timedelta(hours=23, minutes=1))
    assert member["tags"] == {"cart_abandoner_24h"}
    mine = for_member(mailchimp.api.requests(), treated_email)
    assert [r.method for r in mine] == ["PUT", "PUT", "POST", "PUT", "POST"]  # the 429 first
    assert [(row.template, row.status) for row in stack.outbox(treated)] == [
        ("abandoned", "sent"),
        ("still_abandoned", "sent"),
    ]

    assert for_member(mailchimp.api.requests(), held_email) == []
    assert md5(held_email) not in mailchimp.api.members
    assert stack.outbox(held_out) == []
    state = await stack.state("t_audience_cart", held_out)
    assert (state.group, state.messages_sent) == ("holdout", 0)
    held = [(s.name, s.status) for s in store.steps(state_run(store, held_out)) if s.kind == "send"]
    assert held == [("abandoned", "held_out"), ("still_abandoned", "held_out")]


def state_run(store: Store, user: str) -> str:
    [run] = store.runs(user_id=user)
    return run.run_id
