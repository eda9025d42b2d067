"""What the ESP tells us back, over real HTTP: each vendor's webhook with the example payloads
its documentation gives (our recipient and identifiers put in; nothing else invented), signed
or authenticated as the vendor does, about emails a journey really sent through that vendor's
documented API (its stand-in on loopback) or the outbox.

Sources of the payloads: SendGrid's Event Webhook reference (docs/for-developers/tracking-events/
event.md) and its Signed Event Webhook guide (ECDSA over timestamp + body); Postmark's bounce,
spam complaint and subscription change webhook pages (basic auth in the webhook URL); Mandrill's
message event format and "Authenticating webhook requests" (HMAC-SHA1 over URL + sorted fields).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr
from sqlmodel import select

from activities.erasure import address_hash
from activities.store import EmailSuppression, Store
from starter.report import build_report
from tests.engagement.helpers import SECRET, TRACKING, events, send_steps, sending, sent, vendor
from tests.engagement.journeys import Engage

DAY_AND_A_MINUTE = timedelta(days=1, minutes=1)

pytestmark = pytest.mark.both_databases
"""Each test on SQLite and on PostgreSQL."""

SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
"""SendGrid's half of the Signed Event Webhook's key pair: it signs, we verify."""
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
).decode()
"""The verification key as SendGrid's Mail Settings show it: base64 DER, no PEM armour."""
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hooks", "p4ss-for-the-postmark-webhook"
MANDRILL_KEY = "KfFuThPttL_KoUyDndHW3A"
"""A webhook key in the shape Mandrill generates (22 characters)."""
FEEDBACK = {
    **TRACKING,
    "sendgrid_webhook_public_key": SecretStr(SENDGRID_PUBLIC),
    "postmark_webhook_user": POSTMARK_USER,
    "postmark_webhook_password": SecretStr(POSTMARK_PASSWORD),
    "mandrill_webhook_key": SecretStr(MANDRILL_KEY),
}


def signed(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """The headers SendGrid sends with a signed Event Webhook request."""
    timestamp = timestamp or str(int(time.time()))
    signature = SENDGRID_KEY.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def suppressed(store: Store, address: str) -> str | None:
    with store.session() as session:
        row = session.exec(
            select(EmailSuppression).where(
                EmailSuppression.address_hash == address_hash(SECRET, address)
            )
        ).first()
        return row.reason if row else None


# SendGrid ----------------------------------------------------------------------------------------

SENDGRID_MESSAGE_ID = "14c5d75ce93.dfd.64b469"
"""What SendGrid's Mail Send answered in X-Message-Id; its events' sg_message_id extend it."""


def sendgrid_bounce(email: str) -> dict[str, Any]:
    """The Event Webhook reference's Bounce example."""
    return {
        "email": email,
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "bounce",
        "category": "cat facts",
        "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "reason": "500 unknown recipient",
        "status": "5.0.0",
        "type": "bounce",
    }


def sendgrid_processed(email: str) -> dict[str, Any]:
    """The reference's Processed example (nothing for us to do)."""
    return {
        "email": email,
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "processed",
        "category": "cat facts",
        "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    }


async def test_a_sendgrid_bounce_suppresses_the_address_once_however_often_it_is_posted(
    api_for, store
):
    reply = (202, "", {"X-Message-Id": SENDGRID_MESSAGE_ID})
    async with vendor("sendgrid", reply) as provider:
        api = await api_for(Engage, sending=sending(store, provider), **FEEDBACK)
        user = api.stack.user(first_name="Ada")
        address = f"{user}@example.test"
        await api.stack.track("Engage Requested", user)
        await api.stack.advance("t_engage", user, timedelta(seconds=1))
        assert sent(store, user, "offer").provider_message_id == SENDGRID_MESSAGE_ID
        body = json.dumps([sendgrid_processed(address), sendgrid_bounce(address)]).encode()
        headers = signed(body)
        async with httpx.AsyncClient(base_url=api.url) as sendgrid:  # no API key
            first = await sendgrid.post("/v1/feedback/sendgrid", content=body, headers=headers)
            replayed = await sendgrid.post("/v1/feedback/sendgrid", content=body, headers=headers)
            assert first.status_code == 200, first.text
            assert first.json() == {"status": "accepted", "applied": 1, "duplicates": 0}
            assert replayed.json() == {"status": "accepted", "applied": 0, "duplicates": 1}

            refused = {
                "signed over another body": (body, signed(body + b" ")),
                "body altered after signing": (body.replace(b"500", b"550"), headers),
                "timestamp altered": (body, {**headers, **_timestamp(headers, "1")}),
                "no signature": (body, {"Content-Type": "application/json"}),
                "signature not base64": (
                    body, {**headers, "X-Twilio-Email-Event-Webhook-Signature": "%%%"}
                ),
                "timestamp not a number": (body, {**headers, **_timestamp(headers, "soon")}),
            }  # fmt: skip
            for why, (content, given) in refused.items():
                answer = await sendgrid.post(
                    "/v1/feedback/sendgrid", content=content, headers=given
                )
                assert answer.status_code == 401, why
                signature = given.get("X-Twilio-Email-Event-Webhook-Signature")
                assert not signature or signature not in answer.text  # never echoed

            hostile = {
                b"not json": 400,
                b'{"event": "bounce"}': 422,  # an object, not the array of events
                b"[1]": 422,
                b'[{"event": "bounce", "email": 5}]': 422,
                b'[{"event": "bounce", "email": "not-an-address"}]': 422,
                b'[{"event": "bounce", "email": "a\\u0000@example.test"}]': 422,
                b"[" * 100_000 + b"]" * 100_000: 400,
                b"[NaN]": 400,
            }
            for content, status in hostile.items():  # signed: only the shape is wrong
                answer = await sendgrid.post(
                    "/v1/feedback/sendgrid", content=content, headers=signed(content)
                )
                assert answer.status_code == status, (content[:40], answer.text)
            assert (await sendgrid.post("/v1/feedback/klaviyo", content=b"{}")).status_code == 404

        [bounce] = events(store)  # one row: the replay and the refused requests left none
        [run] = api.stack.runs(user)
        assert (bounce.kind, bounce.source, bounce.detail) == ("bounce", "sendgrid", "bounce")
        assert (bounce.journey, bounce.step, bounce.user_id, bounce.run_id) == (
            "t_engage", "offer", user, run.run_id
        )  # fmt: skip
        assert suppressed(store, address) == "hard_bounce"  # for every journey, whoever holds it
        profile = store.get_profile(user)
        assert profile is not None and profile.traits["email_suppressed"] is True
        await api.stack.advance("t_engage", user, DAY_AND_A_MINUTE)
    assert send_steps(store, user)[1] == ("reminder", "skipped", "address_suppressed")
    [offer, _] = build_report(store, [Engage], journey="t_engage").journeys[0].steps
    assert (offer.sent, offer.bounced, offer.delivered) == (1, 1, 0)


def _timestamp(headers: dict[str, str], value: str) -> dict[str, str]:
    return {"X-Twilio-Email-Event-Webhook-Timestamp": value}


def sendgrid_engagement(email: str, event: str, sg_event_id: str, **fields: Any) -> dict[str, Any]:
    """The reference's Spam Report, Unsubscribe and Bounce (type blocked) examples."""
    return {
        "email": email,
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "category": "cat facts",
        "sg_event_id": sg_event_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **fields,
    }


async def test_sendgrid_complaints_unsubscribes_and_blocks_by_our_custom_args(api_for, store):
    api = await api_for(Engage, sending=sending(store), **FEEDBACK)
    stack = api.stack
    users = {kind: stack.user(first_name=kind) for kind in ("spam", "unsub", "blocked", "fine")}
    for user in users.values():
        await stack.track("Engage Requested", user)
        await stack.advance("t_engage", user, timedelta(seconds=1))

    def ours(user: str) -> dict[str, str]:
        """The custom args our SendGrid provider sends, which SendGrid puts in every event."""
        row = sent(store, user, "offer")
        return {"idempotency_key": row.idempotency_key, "journey": "t_engage", "step": "offer",
                "user_id": user}  # fmt: skip

    def address(kind: str) -> str:
        return f"{users[kind]}@example.test"

    batch = [
        sendgrid_engagement(
            address("spam"), "spamreport", "37nvH5QBz858KGVYCM4uOA==", **ours(users["spam"])
        ),
        sendgrid_engagement(
            address("unsub"), "unsubscribe", "zz_BjPgU_5pS-J8vlfB1sg==", **ours(users["unsub"])
        ),
        sendgrid_engagement(
            address("blocked"), "bounce", "6g4ZI7SA-xmRDv57GoPIPw==",
            reason="500 unknown recipient", status="5.0.0", type="blocked",
            **ours(users["blocked"]),
        ),
        sendgrid_engagement("example@test.com", "unsubscribe", "ahSCB7xYcXFb-hEaawsPRw=="),
    ]  # fmt: skip
    body = json.dumps(batch).encode()
    answer = await api.http.post("/v1/feedback/sendgrid", content=body, headers=signed(body))
    assert answer.json() == {"status": "accepted", "applied": 4, "duplicates": 0}, answer.text

    assert suppressed(store, address("spam")) == "complaint"
    assert suppressed(store, address("blocked")) is None  # a block is counted, not suppressed
    assert suppressed(store, "example@test.com") == "unsubscribed"  # nobody holds it: the address
    unsubscribed = store.get_profile(users["unsub"])
    assert unsubscribed is not None and unsubscribed.email_unsubscribed_at is not None
    assert unsubscribed.email_unsubscribed_from == "t_engage"
    for user in users.values():
        await stack.advance("t_engage", user, DAY_AND_A_MINUTE)
    assert send_steps(store, users["spam"])[1] == ("reminder", "skipped", "address_suppressed")
    assert send_steps(store, users["unsub"])[1] == ("reminder", "skipped", "unsubscribed")
    assert send_steps(store, users["blocked"])[1] == ("reminder", "sent", None)

    [journey] = build_report(store, [Engage], journey="t_engage").journeys
    offer = journey.steps[0]
    assert (offer.sent, offer.complained, offer.unsubscribed, offer.soft_bounced) == (4, 1, 1, 1)
    assert (offer.bounced, offer.delivered) == (0, 4)
    assert journey.complained == 1 and journey.emails_delivered == 6
    assert journey.complaint_rate is not None and journey.complaint_rate > 0.003
    page = await api.http.get("/dashboard")  # the API key as Bearer
    assert page.status_code == 200
    assert 'class="complaint-rate warn"' in page.text and "over 0.30%" in page.text
    assert 'class="engagement-step" data-step="offer"' in page.text


# Postmark ----------------------------------------------------------------------------------------

POSTMARK_BOUNCED = "883953f4-6105-42a2-a16a-77a8eac79483"
POSTMARK_COMPLAINED = "00000000-0000-0000-0000-000000000000"
"""The MessageIDs of Postmark's examples: what its /email API answered for our two sends."""


def postmark_bounce(email: str) -> dict[str, Any]:
    """The bounce webhook page's example."""
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "Test",
        "MessageID": POSTMARK_BOUNCED,
        "Metadata": {"a_key": "a_value", "b_key": "b_value"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message "
        "(ex: unknown user, mailbox not found).",
        "Details": "Test bounce details",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Test subject",
    }


def postmark_complaint(email: str) -> dict[str, Any]:
    """The spam complaint webhook page's example."""
    return {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "Test",
        "MessageID": POSTMARK_COMPLAINED,
        "Metadata": {"a_key": "a_value", "b_key": "b_value"},
        "ServerID": 1234,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Test subject",
        "Content": "<Abuse report dump>",
    }


def postmark_subscription_change(email: str, metadata: dict[str, str]) -> dict[str, Any]:
    """The subscription change webhook page's example, for a recipient's unsubscribe (which
    Postmark suppresses with the reason ManualSuppression)."""
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 123456,
        "MessageStream": "outbound",
        "ChangedAt": "2020-02-01T10:53:34.416071Z",
        "Recipient": email,
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Tag": "my-tag",
        "Metadata": metadata,
    }


def postmark_sent(message_id: str) -> tuple[int, Any, dict[str, str]]:
    return (200, {"To": "x@example.test", "SubmittedAt": "2026-12-07T08:00:00Z",
                  "MessageID": message_id, "ErrorCode": 0, "Message": "OK"}, {})  # fmt: skip


async def test_postmark_bounce_complaint_and_unsubscribe_behind_basic_auth(api_for, store):
    replies = [postmark_sent(POSTMARK_BOUNCED), postmark_sent(POSTMARK_COMPLAINED),
               postmark_sent("b5f9a5b2-0000-4000-8000-000000000003")]  # fmt: skip
    async with vendor("postmark", *replies) as provider:
        api = await api_for(Engage, sending=sending(store, provider), **FEEDBACK)
        stack = api.stack
        bounced, complained, left = (stack.user(first_name=n) for n in ("B", "C", "L"))
        for user in (bounced, complained, left):
            await stack.track("Engage Requested", user)
            await stack.advance("t_engage", user, timedelta(seconds=1))
        assert sent(store, bounced, "offer").provider_message_id == POSTMARK_BOUNCED
        ours = {"idempotency_key": sent(store, left, "offer").idempotency_key}
        auth = (POSTMARK_USER, POSTMARK_PASSWORD)
        async with httpx.AsyncClient(base_url=api.url, auth=auth) as postmark:
            for payload in (
                postmark_bounce(f"{bounced}@example.test"),
                postmark_complaint(f"{complained}@example.test"),
                postmark_subscription_change(f"{left}@example.test", ours),
                postmark_bounce(f"{bounced}@example.test"),  # retried by Postmark: one effect
            ):
                answer = await postmark.post("/v1/feedback/postmark", json=payload)
                assert answer.status_code == 200, answer.text
            assert answer.json()["duplicates"] == 1
            assert (await postmark.post("/v1/feedback/postmark", content=b"{")).status_code == 400
            assert (await postmark.post("/v1/feedback/postmark", json=[1])).status_code == 422
            metadata = {**postmark_complaint("a@example.test"), "Metadata": "x"}
            assert (await postmark.post("/v1/feedback/postmark", json=metadata)).status_code == 422
        for credentials in (
            (POSTMARK_USER, "wrong-password-for-postmark"),
            ("x", POSTMARK_PASSWORD),
        ):
            async with httpx.AsyncClient(base_url=api.url, auth=credentials) as other:
                answer = await other.post("/v1/feedback/postmark", json=postmark_bounce("a@b.c"))
                assert answer.status_code == 401
                assert answer.headers["www-authenticate"].startswith("Basic")
        async with httpx.AsyncClient(base_url=api.url) as anonymous:
            answer = await anonymous.post("/v1/feedback/postmark", json=postmark_bounce("a@b.c"))
            assert answer.status_code == 401
        for user in (bounced, complained, left):
            await stack.advance("t_engage", user, DAY_AND_A_MINUTE)
    assert suppressed(store, f"{bounced}@example.test") == "hard_bounce"
    assert suppressed(store, f"{complained}@example.test") == "complaint"
    assert send_steps(store, bounced)[1] == ("reminder", "skipped", "address_suppressed")
    assert send_steps(store, complained)[1] == ("reminder", "skipped", "address_suppressed")
    assert send_steps(store, left)[1] == ("reminder", "skipped", "unsubscribed")
    kinds = sorted((e.kind, e.user_id) for e in events(store))
    assert kinds == sorted([("bounce", bounced), ("complaint", complained), ("unsubscribe", left)])


# Mandrill ----------------------------------------------------------------------------------------

MANDRILL_ID = "exampleaaaaaaaaaaaaaaaaaaaaaaaaa2"
"""The `_id` of Mandrill's hard bounce example: what messages/send answered for our send."""


def mandrill_hard_bounce(email: str) -> dict[str, Any]:
    """The message event format page's hard_bounce example."""
    return {
        "event": "hard_bounce",
        "msg": {
            "ts": 1365109999,
            "subject": "This an example webhook message",
            "email": email,
            "sender": "example.sender@mandrillapp.com",
            "tags": ["webhook-example"],
            "state": "bounced",
            "metadata": {"user_id": 111},
            "_id": MANDRILL_ID,
            "_version": "exampleaaaaaaaaaaaaaaa",
            "bounce_description": "bad_mailbox",
            "bgtools_code": 10,
            "diag": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        },
        "_id": MANDRILL_ID,
        "ts": 1384954004,
    }


def mandrill_signed(url: str, fields: dict[str, str], key: str = MANDRILL_KEY) -> dict[str, str]:
    """X-Mandrill-Signature as Mandrill computes it."""
    data = url + "".join(f"{name}{fields[name]}" for name in sorted(fields))
    digest = hmac.new(key.encode(), data.encode(), hashlib.sha1).digest()
    return {"X-Mandrill-Signature": base64.b64encode(digest).decode(),
            "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip


async def test_a_mandrill_hard_bounce_signed_over_its_url_suppresses_the_address(api_for, store):
    reply = (200, [{"email": "x@example.test", "status": "sent", "_id": MANDRILL_ID}], {})
    async with vendor("mailchimp", reply) as provider:
        api = await api_for(Engage, sending=sending(store, provider), **FEEDBACK)
        user = api.stack.user(first_name="Ada")
        await api.stack.track("Engage Requested", user)
        await api.stack.advance("t_engage", user, timedelta(seconds=1))
        url = "https://journeys.example.test/v1/feedback/mandrill"  # as entered in Mandrill
        fields = {"mandrill_events": json.dumps([mandrill_hard_bounce(f"{user}@example.test")])}
        body = urlencode(fields)
        async with httpx.AsyncClient(base_url=api.url) as mandrill:
            assert (await mandrill.head("/v1/feedback/mandrill")).status_code == 200
            refused = {
                "no signature": {"Content-Type": "application/x-www-form-urlencoded"},
                "another key": mandrill_signed(url, fields, "another-key-0123456789"),
                "another URL": mandrill_signed(url + "/", fields),
            }
            for why, headers in refused.items():
                answer = await mandrill.post("/v1/feedback/mandrill", content=body, headers=headers)
                assert answer.status_code == 401, why
            answer = await mandrill.post(
                "/v1/feedback/mandrill", content=body, headers=mandrill_signed(url, fields)
            )
            assert answer.json() == {"status": "accepted", "applied": 1, "duplicates": 0}
            unparsable = {"a field twice": body + "&" + body, "not form encoding": "%\xff"}
            for why, content in unparsable.items():
                answer = await mandrill.post(
                    "/v1/feedback/mandrill",
                    content=content.encode("latin-1"),
                    headers={"X-Mandrill-Signature": "c2lnbmVk"},
                )
                assert answer.status_code == 400, why
            hostile = {  # signed: only the shape is wrong
                "events not JSON": ({"mandrill_events": "[{"}, 400),
                "events not a list": ({"mandrill_events": "{}"}, 422),
                "an event not an object": ({"mandrill_events": "[1]"}, 422),
                "msg not an object": ({"mandrill_events": '[{"event": "spam", "msg": 1}]'}, 422),
                "no events field": ({"other": "1"}, 422),
            }
            for why, (given, status) in hostile.items():
                answer = await mandrill.post(
                    "/v1/feedback/mandrill",
                    content=urlencode(given),
                    headers=mandrill_signed(url, given),
                )
                assert answer.status_code == status, (why, answer.text)
        await api.stack.advance("t_engage", user, DAY_AND_A_MINUTE)
    [bounce] = events(store)
    assert (bounce.kind, bounce.source, bounce.detail, bounce.user_id) == (
        "bounce", "mandrill", "bad_mailbox", user
    )  # fmt: skip
    assert suppressed(store, f"{user}@example.test") == "hard_bounce"
    assert send_steps(store, user)[1] == ("reminder", "skipped", "address_suppressed")
