"""Kissmetrics' tracking calls, as its API specifications give them, taken by our endpoint.

The three calls below are the examples of Kissmetrics' "API Specifications" and "Identities"
pages (record an event, set a property, alias), with its placeholder `api-key` replaced by a
key of the length Kissmetrics issues. They are read by the pure mapping first, then sent over
real HTTP to the API on a real Temporal, where they start the shipped onboarding journey.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from starter.settings import Settings, weak_secrets
from starter.sources import InvalidSignature, MissingSignature, SourceCall
from starter.sources import kissmetrics as km
from workflows.journeys.onboarding import Onboarding

KEY = "b8ef5c3a9d2f4e61a07c3d95e1f24b6a8c0d7e13"
"""A site's Kissmetrics API key (40 hex characters, as Kissmetrics issues them)."""

RECORD = f"/e?_k={KEY}&_p=bob&_n=Signed+Up&gender=male&_t=1262304000&_d=1"
SET = f"/s?_k={KEY}&_p=bob&gender=male&_t=1262304000&_d=1"
ALIAS = f"/a?_k={KEY}&_p=User+12345&_n=bob%40bob.com"
NEW_YEAR_2010 = datetime(2010, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 15, 0, 0, 250000, tzinfo=UTC)


def read(path_and_query: str) -> km.KissmetricsCall:
    path, _, query = path_and_query.partition("?")
    kind = km.kind_of(path.strip("/"))
    assert kind is not None
    params = km.parse_params(query.encode(), b"")
    km.verify_key(params.get("_k"), KEY)
    return km.read_call(kind, params)


# The mapping, on the documented calls ----------------------------------------------------------


def test_recording_an_event_is_a_track_call_at_the_time_it_gives() -> None:
    call = read(RECORD)
    [track] = km.kissmetrics_calls(call, "bob", NOW)
    assert track == SourceCall(
        type="track",
        event="Signed Up",
        user_id="bob",
        message_id=km.message_id(call, NOW),
        timestamp=NEW_YEAR_2010,
        properties={"gender": "male"},
    )
    assert track.message_id.startswith("kissmetrics:e:")


def test_setting_properties_is_an_identify_call() -> None:
    [identify] = km.kissmetrics_calls(read(SET), "bob", NOW)
    assert (identify.type, identify.user_id, identify.traits) == (
        "identify",
        "bob",
        {"gender": "male"},
    )
    assert identify.timestamp == NEW_YEAR_2010


def test_an_alias_names_both_identities_and_its_email_identity_becomes_the_email() -> None:
    call = read(ALIAS)
    assert (call.kind, call.person, call.name, call.properties) == (
        "a",
        "User 12345",
        "bob@bob.com",
        {},
    )
    [identify] = km.kissmetrics_calls(call, "User 12345", NOW)
    assert (identify.user_id, identify.traits) == ("User 12345", {"email": "bob@bob.com"})
    assert identify.timestamp == NOW  # no _t: when we received it


def test_an_identity_that_is_an_email_is_the_persons_email_unless_the_call_sets_one() -> None:
    [track] = km.kissmetrics_calls(read(f"/e?_k={KEY}&_p=bob%40bob.com&_n=Viewed"), "u1", NOW)
    assert track.context == {"traits": {"email": "bob@bob.com"}}
    [own] = km.kissmetrics_calls(read(f"/s?_k={KEY}&_p=bob%40bob.com&email=b%40x.test"), "u1", NOW)
    assert own.traits == {"email": "b@x.test"}
    assert km.kissmetrics_calls(read(f"/a?_k={KEY}&_p=anon-1&_n=User+7"), "anon-1", NOW) == []


def test_without_d_1_the_time_given_is_only_part_of_the_dedupe_key() -> None:
    call = read(f"/e?_k={KEY}&_p=bob&_n=Signed+Up&_t=1262304000")
    [track] = km.kissmetrics_calls(call, "bob", NOW)
    assert track.timestamp == NOW
    later = datetime(2026, 11, 25, tzinfo=UTC)
    assert km.message_id(call, later) == km.message_id(call, NOW)  # a retry a day later dedupes


def test_the_message_id_is_kissmetrics_own_duplicate_rule() -> None:
    """Same identity, event, time and properties: one event; any of them differs: another."""
    base = read(RECORD)
    same_order = read(f"/e?gender=male&_d=1&_t=1262304000&_n=Signed+Up&_p=bob&_k={KEY}")
    assert km.message_id(same_order, NOW) == km.message_id(base, NOW)
    for other in (
        RECORD.replace("_p=bob", "_p=alice"),
        RECORD.replace("Signed+Up", "Logged+In"),
        RECORD.replace("1262304000", "1262304001"),
        RECORD.replace("gender=male", "gender=female"),
        RECORD + "&plan=pro",
    ):
        assert km.message_id(read(other), NOW) != km.message_id(base, NOW), other
    # Without _t the second received stands in: a retry within it dedupes, a second later not.
    bare = read(f"/e?_k={KEY}&_p=bob&_n=Signed+Up")
    assert km.message_id(bare, NOW) == km.message_id(bare, NOW.replace(microsecond=900000))
    assert km.message_id(bare, NOW) != km.message_id(bare, NOW.replace(second=1))


def test_commas_and_colons_become_spaces_as_kissmetrics_stores_them() -> None:
    call = read(f"/e?_k={KEY}&_p=foo%3Abar%2Cbaz&_n=foo%3Abar%2Cbaz")
    assert (call.person, call.name) == ("foo bar baz", "foo bar baz")


def test_the_key_is_checked_and_named_never_echoed() -> None:
    with pytest.raises(MissingSignature, match="_k"):
        km.verify_key(None, KEY)
    with pytest.raises(InvalidSignature) as caught:
        km.verify_key("api-key", KEY)
    assert "api-key" not in str(caught.value) and KEY not in str(caught.value)
    km.verify_kissmetrics({}, b"_p=bob&_n=x", KEY)  # no _k in the body: the route checks the query
    with pytest.raises(InvalidSignature):
        km.verify_kissmetrics({}, b"_k=wrong-key&_p=bob", KEY)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("_n=Signed+Up", "_p"),
        ("_p=+&_n=Signed+Up", "_p"),
        ("_p=" + "x" * 256 + "&_n=Signed+Up", "_p"),
        ("_p=bob", "_n"),
        ("_p=bob&_n=" + "x" * 201, "_n"),
        ("_p=bob&_n=Signed+Up&_t=yesterday", "_t"),
        ("_p=bob&_n=Signed+Up&_t=-5&_d=1", "_t"),
        ("_p=bob&_n=Signed+Up&_d=1", "_t"),
        ("_p=bob&_n=Signed+Up&_t=999999999999&_d=1", "_t"),
        ("_p=bob&_p=alice&_n=Signed+Up", "_p"),
        ("_p=bob&_n=Signed+Up&=x", "(no name)"),
        ("_p=bob&_n=Signed+Up&plan=pro%00", "plan"),
    ],
)
def test_a_missing_or_wrong_parameter_is_named(query: str, parameter: str) -> None:
    with pytest.raises(km.BadParameter) as caught:
        km.read_call("e", km.parse_params(query.encode(), b""))
    assert caught.value.parameter == parameter


@pytest.mark.parametrize("query", [b"_p=%ff%fe&_n=x", b"_p=\xff", b"&".join([b"a=1"] * 501)])
def test_parameters_that_are_not_utf_8_form_encoding_are_malformed(query: bytes) -> None:
    with pytest.raises(km.MalformedCall):
        km.parse_params(query, b"")


def test_aliases_link_each_identity_once_and_never_merge_two_known_users() -> None:
    links: dict[str, str] = {}

    def alias(person: str, other: str) -> tuple[str, str] | None:
        link = km.alias_link(person, other, links.get)
        if link is not None:
            links.setdefault(*link)
        return link

    assert alias("anon-1", "bob@bob.com") == ("bob@bob.com", "anon-1")  # the sign-up
    assert alias("anon-1", "bob@bob.com") is None  # again: nothing new
    assert alias("anon-2", "bob@bob.com") == ("anon-2", "anon-1")  # bob on a second device
    assert km.resolve("anon-2", links.get) == km.resolve("bob@bob.com", links.get) == "anon-1"
    assert alias("carol", "dave") == ("dave", "carol")
    assert alias("bob@bob.com", "dave") is None  # both known as different users: kept apart
    # _n joins the user _p names when it has no link of its own, whatever names it already has.
    assert alias("User 9", "anon-1") == ("anon-1", "User 9")
    assert {km.resolve(i, links.get) for i in ("anon-1", "anon-2", "bob@bob.com")} == {"User 9"}


def test_a_cycle_left_by_racing_aliases_still_resolves() -> None:
    links = {"a": "b", "b": "a"}
    assert km.resolve("a", links.get) in ("a", "b")


def test_a_short_kissmetrics_key_is_refused_at_start() -> None:
    [problem] = weak_secrets(Settings(kissmetrics_key=SecretStr("api-key")))
    assert problem.startswith("JOURNEYS_KISSMETRICS_KEY is set but 7 characters")
    assert "api-key" not in problem
    assert weak_secrets(Settings(kissmetrics_key=SecretStr(KEY))) == []


# Over HTTP, into a journey ---------------------------------------------------------------------

SOURCE = "/v1/sources/kissmetrics"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def pixel(response: Any) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["cache-control"] == "no-store"
    assert response.content == km.PIXEL


async def test_the_documented_calls_start_onboarding_and_reach_the_aliased_user(
    api_for: Any,
) -> None:
    """Record and set for bob (the shipped journey holds bob out: it starts and sends nothing);
    then the alias makes bob@bob.com another name of User 12345, so bob@bob.com signing up
    starts User 12345's onboarding, whose welcome goes to bob@bob.com."""
    api = await api_for(Onboarding, kissmetrics_key=SecretStr(KEY))
    store = api.stack.store

    pixel(await api.http.get(SOURCE + RECORD))
    summary = store.event_summary("bob", "Signed Up")
    assert (summary.count, summary.last_properties) == (1, {"gender": "male"})
    assert summary.last_seen.replace(tzinfo=UTC) == NEW_YEAR_2010  # _t, with _d=1
    state = await api.stack.state("onboarding", "bob")
    assert state.group == "holdout"
    pixel(await api.http.get(SOURCE + RECORD))  # a retry: the same event, once
    assert store.event_summary("bob", "Signed Up").count == 1

    path, _, form = SET.partition("?")
    pixel(await api.http.post(SOURCE + path, content=form, headers=FORM))
    assert store.get_profile("bob").traits == {"gender": "male"}

    pixel(await api.http.get(SOURCE + ALIAS))
    assert store.resolve_alias("kissmetrics", "bob@bob.com") == "User 12345"
    assert store.get_profile("User 12345").email == "bob@bob.com"
    pixel(await api.http.get(SOURCE + ALIAS))  # again: no new link, nothing changes

    signed_up = f"/e?_k={KEY}&_p=bob%40bob.com&_n=Signed+Up"
    pixel(await api.http.get(SOURCE + signed_up))
    state = await api.stack.state("onboarding", "User 12345")
    assert state.group == "treatment" and state.messages_sent == 1
    [welcome] = api.stack.outbox("User 12345")
    assert (welcome.template, welcome.recipient, welcome.status) == (
        "welcome",
        "bob@bob.com",
        "sent",
    )
    assert store.event_summary("bob@bob.com", "Signed Up") is None


async def test_post_takes_the_key_from_the_body_or_the_query(api_for: Any) -> None:
    api = await api_for(Onboarding, kissmetrics_key=SecretStr(KEY))
    user = f"km-{uuid.uuid4().hex[:8]}"
    body = f"_k={KEY}&_p={user}&_n=Viewed+Pricing&plan=pro"
    pixel(await api.http.post(f"{SOURCE}/e", content=body, headers=FORM))
    pixel(
        await api.http.post(
            f"{SOURCE}/e?_k={KEY}", content=f"_p={user}&_n=Viewed+Plans", headers=FORM
        )
    )
    assert api.stack.store.event_summary(user, "Viewed Pricing").last_properties == {"plan": "pro"}
    assert api.stack.store.event_summary(user, "Viewed Plans") is not None


async def test_a_call_without_our_key_is_refused_before_anything_is_read(api_for: Any) -> None:
    api = await api_for(Onboarding, kissmetrics_key=SecretStr(KEY))
    for path in (RECORD.replace(KEY, "api-key"), RECORD.replace(f"_k={KEY}&", "")):
        answer = await api.http.get(SOURCE + path)
        assert answer.status_code == 401 and "_k" in answer.json()["detail"]
        assert KEY not in answer.text and "api-key" not in answer.text
    # A POST is refused by the API's gate, before it may hold an ingest slot, connection closed.
    refused = await api.http.post(f"{SOURCE}/e", content="_k=wrong&_p=bob&_n=x", headers=FORM)
    assert refused.status_code == 401 and refused.headers["connection"] == "close"
    assert api.stack.store.event_summary("bob", "x") is None


async def test_the_source_is_off_until_its_key_is_set(api_for: Any) -> None:
    api = await api_for(Onboarding)
    assert (await api.http.get(SOURCE + RECORD)).status_code == 404
    assert (await api.http.post(f"{SOURCE}/e", content="_p=bob", headers=FORM)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("GET", f"/e?_k={KEY}&_n=Signed+Up", None, 422, "_p"),
        ("GET", f"/e?_k={KEY}&_p=bob", None, 422, "_n"),
        ("GET", f"/e?_k={KEY}&_p=bob&_n=x&_t=noon&_d=1", None, 422, "_t"),
        ("GET", f"/e?_k={KEY}&_p=bob&_n=x&_d=1", None, 422, "_t"),
        ("GET", f"/e?_k={KEY}&_p=bob&_p=eve&_n=x", None, 422, "_p"),
        ("GET", f"/e?_k={KEY}&_p=bob&_n=x&note=a%00b", None, 422, "note"),
        ("GET", f"/s?_k={KEY}&_p=bob&email=v%40x.com%2C+a%40evil.com", None, 422, "email"),
        ("GET", f"/a?_k={KEY}&_p=bob", None, 422, "_n"),
        ("GET", f"/e?_k={KEY}&_p=%ff&_n=x", None, 400, None),
        ("GET", f"/x?_k={KEY}&_p=bob", None, 404, None),
        ("POST", "/e", f'{{"_k": "{KEY}", "_p": "bob", "_n": "x"}}', 415, None),
        ("POST", "/e", f"_k={KEY}&" + "&".join(f"p{i}=1" for i in range(600)), 400, None),
    ],
)
async def test_hostile_calls_get_a_4xx_naming_the_parameter_never_a_5xx(
    api_for: Any, method: str, path: str, body: str | None, status: int, field: str | None
) -> None:
    api = await api_for(Onboarding, kissmetrics_key=SecretStr(KEY))
    if method == "GET":
        answer = await api.http.get(SOURCE + path)
    else:
        answer = await api.http.post(
            SOURCE + path,
            content=body,
            headers=FORM if status != 415 else {"Content-Type": "application/json"},
        )
    assert answer.status_code == status, answer.text
    if field is not None:
        assert [e["field"] for e in answer.json()["errors"]] == [field]
        assert "evil" not in answer.text  # the value is never echoed
