"""Erasure (GDPR/CCPA) end to end, on the running API, a worker and the Temporal dev server.

A real user goes through cart recovery (identify with their address, names, phone and street;
a cart; the reminder email sent with their name in it; a purchase), then is erased. Afterwards
every value of every column of every table is searched for anything that identifies them, and
Temporal for any history of theirs; the report's numbers are the same as before the erasure.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from activities.store import EmailSuppression, JourneyRun, OutboxMessage
from starter.sources import sign_segment
from tests.erasure.harness import (
    CART,
    SEGMENT_SECRET,
    add_to_cart,
    buys,
    erasure_handle,
    erasure_of,
    finish_erasure,
    history_texts,
    identify,
    in_temporal,
    leftovers,
    new_id,
    person,
    report,
    sent_a_cart_email,
    shop,
    until_listed,
    until_step,
)
from workflows.models import Event


@pytest.mark.both_databases
async def test_an_erased_user_leaves_nothing_personal_and_the_counts_stay(
    api_for: Any, store: Any
) -> None:
    api = await shop(api_for, store)
    erased, kept = person(), person()
    for who in (erased, kept):
        await sent_a_cart_email(api, who)
    first_identify = new_id()
    await identify(api, erased, first_identify)
    await buys(api, erased)
    assert await in_temporal(api.stack.client, erased, []), "their history is there before"
    before = report(store)
    assert before[0]["entries"] == 2 and before[0]["treatment"]["converted"] == 1
    assert leftovers(store, erased.needles()), "the search finds the person before"

    answer = await api.http.delete(f"/v1/users/{erased.user_id}")
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    erasure_id = accepted["erasureId"]
    assert answer.headers["location"] == accepted["statusUrl"] == f"/v1/erasures/{erasure_id}"
    assert accepted["status"] in ("accepted", "running")
    again = await api.http.delete(f"/v1/users/{erased.user_id}")  # while it runs: the same one
    assert again.status_code == 202 and again.json()["erasureId"] == erasure_id

    status = await finish_erasure(api, erasure_id)
    assert status["historiesDeleted"] >= 1 and status["recordsErased"] > 0
    assert status["journeysEnded"] == 0  # the journey had converted and closed

    # Nothing in the database identifies them; the other shopper is all there.
    assert leftovers(store, erased.needles()) == []
    assert {f.split(":")[0] for f in leftovers(store, kept.needles())} >= {
        "profiles.email", "outbox.recipient", "outbox.body_html", "journey_runs.user_id"
    }  # fmt: skip
    # Nor in Temporal: no history listed under their key, none to describe or fetch.
    assert await in_temporal(api.stack.client, erased, [erased.workflow_id]) == []
    # The erasure's own history holds its ID and counts, nothing of the person.
    own = history_texts(await erasure_handle(api, erasure_id).fetch_history())
    assert erasure_id in own
    assert [n for n in erased.needles() if n.lower() in own.lower()] == []

    # The report is what it was: the entry, the sent email, the conversion and its revenue.
    assert report(store) == before
    [run] = [r for r in store.runs(journey=CART) if r.user_id.startswith("erased_")]
    assert (run.outcome, run.revenue, run.messages_sent) == ("converted", 59.0, 1)
    with store.session() as session:
        [message] = session.exec(select(OutboxMessage).where(OutboxMessage.run_id == run.run_id))
        assert message.user_id == run.user_id and message.status == "sent"
        assert (message.recipient, message.subject, message.body_html) == ("", None, None)
        assert session.exec(select(EmailSuppression)).all() == []  # never unsubscribed

    # A sender retrying a call from before is a duplicate: it brings nothing back.
    retried = await identify(api, erased, first_identify)
    assert retried["status"] == "duplicate" and store.get_profile(erased.user_id) is None
    # Later events are a new person's: a new journey, and none of the old profile.
    await add_to_cart(api, erased)
    profile = store.get_profile(erased.user_id)
    assert profile is not None and profile.email is None
    assert profile.traits == {"phone": erased.traits["phone"], "timezone": "Europe/London"}
    [new_run] = store.runs(user_id=erased.user_id) or [None]
    assert new_run is None  # qualifying: not entered until the cart is left an hour


async def test_a_segment_delete_in_a_batch_ends_a_running_journey_and_nothing_in_flight_returns(
    api_for: Any, store: Any
) -> None:
    """Segment's documented delete ({"type": "delete", "userId", "messageId"}) in /v1/batch,
    for a user known by their email address (so their key in Temporal is a hash), whose
    journey is still running. Calls in flight when the erasure began (an event recorded, its
    journey started after the first pass) are erased by the next pass."""
    api = await shop(api_for, store)
    erased = person(email_as_id=True)
    await sent_a_cart_email(api, erased)
    before = report(store)
    assert before[0]["treatment"]["in_window"] == 1

    delete = {"type": "delete", "userId": erased.user_id, "messageId": new_id()}
    answer = await api.http.post("/v1/batch", json={"batch": [delete]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["status"] == "accepted"
    erasure_id = erasure_of(store, erased.user_id)

    # The first pass is done: the journey ended as the `remove` signal ends it, its record is
    # under the tombstone, and its history's deletion is under way.
    await until_step(api, erasure_id, "waiting for calls in flight")
    [run] = store.runs(journey=CART)
    assert (run.outcome, run.outcome_reason) == ("exited", "erased")
    assert run.user_id.startswith("erased_") and store.get_profile(erased.user_id) is None
    # Then what an API call in flight since before the erasure does: record its event (with
    # the address, recreating the profile) and start the journey.
    at = datetime.now(UTC)
    store.receive(message_id=new_id(), user_id=erased.user_id, kind="track", at=at,
                  event="Product Added", properties={"product_id": "lamp-2"},
                  traits={"email": erased.email, "name": erased.traits["name"]})  # fmt: skip
    await api.stack.router.route(
        Event(name="Product Added", user_id=erased.user_id, message_id=new_id(), timestamp=at,
              properties={"product_id": "lamp-2"})
    )  # fmt: skip
    assert store.get_profile(erased.user_id) is not None
    await until_listed(api.stack.client, erased)

    status = await finish_erasure(api, erasure_id)
    assert status["passes"] == 3  # the second still found a journey running: one more
    assert status["journeysEnded"] == 2
    assert leftovers(store, erased.needles()) == []
    assert await in_temporal(api.stack.client, erased, [erased.workflow_id]) == []

    after = report(store)
    assert after[0]["entries"] == before[0]["entries"] == 1
    assert after[0]["treatment"]["in_window"] == 0
    assert after[0]["exits"] == {"exited:erased": 1}
    assert after[0]["steps"] == before[0]["steps"]  # the reminder still counts as sent
    [run] = store.runs(journey=CART)
    assert run.user_id.startswith("erased_") and run.workflow_id == f"{CART}:{run.user_id}"

    again = await api.http.post("/v1/batch", json={"batch": [delete]})
    assert again.json()["results"][0]["status"] == "duplicate"


async def test_a_segment_delete_from_the_segment_source_erases_the_user(
    api_for: Any, store: Any
) -> None:
    api = await shop(api_for, store)
    erased = person()
    await sent_a_cart_email(api, erased)
    delete = {"type": "delete", "userId": erased.user_id, "messageId": new_id()}
    body = json.dumps(delete).encode()
    signed = {"X-Signature": sign_segment(body, SEGMENT_SECRET), "Content-Type": "application/json"}

    answer = await api.http.post("/v1/sources/segment", content=body, headers=signed)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "accepted"
    assert answer.json()["calls"][0]["messageId"] == delete["messageId"]
    status = await finish_erasure(api, erasure_of(store, erased.user_id))
    assert status["journeysEnded"] == 1
    assert leftovers(store, erased.needles()) == []
    assert await in_temporal(api.stack.client, erased, [erased.workflow_id]) == []

    replayed = await api.http.post("/v1/sources/segment", content=body, headers=signed)
    assert replayed.json()["calls"][0]["status"] == "duplicate"


async def test_an_unsubscribed_address_stays_unmailed_after_erasure_as_a_hash_only(
    api_for: Any, store: Any
) -> None:
    """Who unsubscribed and was erased leaves a keyed hash of the address: a new profile with
    it gets no marketing email. Who had not unsubscribed leaves nothing: they are mailed."""
    api = await shop(api_for, store)
    unsubscribed, subscribed = person(), person()
    for who in (unsubscribed, subscribed):
        await identify(api, who)
    answer = await api.http.put(
        f"/v1/users/{unsubscribed.user_id}/subscription", json={"email": False}
    )
    assert answer.status_code == 200 and answer.json()["email"] is False
    for who in (unsubscribed, subscribed):
        answer = await api.http.delete(f"/v1/users/{who.user_id}")
        await finish_erasure(api, answer.json()["erasureId"])
        assert leftovers(store, who.needles()) == []
    with store.session() as session:
        [kept] = session.exec(select(EmailSuppression)).all()
    assert kept.reason == "unsubscribed" and len(kept.address_hash) == 64

    # Both addresses come back, each under a new user ID, and leave a cart.
    for who in (unsubscribed, subscribed):
        back = person()
        back.traits["email"] = back.email = who.email
        await identify(api, back)
        await add_to_cart(api, back)
        await api.stack.advance(CART, back.user_id, timedelta(minutes=61))
        [step] = [s for r in store.runs(user_id=back.user_id) for s in store.steps(r.run_id)
                  if s.kind == "send"]  # fmt: skip
        if who is unsubscribed:
            assert (step.status, step.detail) == ("skipped", "unsubscribed")
            assert api.stack.outbox(back.user_id) == []
        else:
            assert step.status == "sent"


async def test_journeys_erase_on_the_command_line(api_for: Any, store: Any, tmp_path: Any) -> None:
    """`journeys erase USER` starts the same erasure against TEMPORAL_ADDRESS and the database."""
    api = await shop(api_for, store)
    erased = person()
    await sent_a_cart_email(api, erased)
    env = {
        **os.environ,
        "JOURNEYS_DATABASE_URL": store.url,
        "TEMPORAL_ADDRESS": api.stack.client.service_client.config.target_host,
        "JOURNEYS_TASK_QUEUE": api.stack.router.task_queue,
        "JOURNEYS_DATA_DIR": str(tmp_path),
    }
    journeys = str(Path(sys.executable).parent / "journeys")
    done = await asyncio.to_thread(
        subprocess.run, [journeys, "erase", erased.user_id], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    erasure_id = erasure_of(store, erased.user_id)
    assert f"erasure {erasure_id} accepted" in done.stdout
    assert erased.user_id not in done.stdout + done.stderr
    await finish_erasure(api, erasure_id)
    assert leftovers(store, erased.needles()) == []
    assert await in_temporal(api.stack.client, erased, [erased.workflow_id]) == []


async def test_erasure_answers_for_unknown_ids_and_without_the_key(
    api_for: Any, store: Any
) -> None:
    api = await shop(api_for, store)
    unknown = await api.http.get("/v1/erasures/er_nothing")
    assert unknown.status_code == 404
    nul = await api.http.delete("/v1/users/a%00b")
    assert nul.status_code == 422
    for method, path in (("DELETE", "/v1/users/someone"), ("GET", "/v1/erasures/er_x")):
        answer = await api.http.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert answer.status_code == 401
    with store.session() as session:
        assert session.exec(select(JourneyRun)).all() == []
