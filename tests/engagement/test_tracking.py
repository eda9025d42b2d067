"""Clicks and opens end to end: a journey's email goes through the real SMTP server, its raw
bytes are parsed for the rewritten links (with the `compat32` and `default` policies both), and
each link is followed against the running API: it lands where the email meant, the click is
recorded against journey, step, variant, user and run, and no altered or foreign token
redirects anywhere."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from email import message_from_bytes, policy
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from activities.providers import ProviderConfig, create_provider
from activities.tracking import (
    InvalidTrackingToken,
    TrackedMessage,
    click_token,
    open_token,
    read_click,
    track_email,
)
from activities.unsubscribe import make_token, unsubscribe_url
from starter.report import build_report, render_text
from tests.engagement.helpers import PUBLIC, SECRET, TRACKING, events, sending
from tests.engagement.journeys import Engage
from tests.smtp_server import SmtpServer

LAMP = "https://shop.example.test/p/lamp?ref=mail&c=42"
HELP = "https://shop.example.test/help"
DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)

pytestmark = pytest.mark.both_databases
"""Each test on SQLite and on PostgreSQL."""


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a":
            self.hrefs.append(found.get("href") or "")
        if tag == "img":
            self.images.append(found.get("src") or "")


def html_of(raw: bytes) -> str:
    """The HTML part, read with both of the standard library's policies (they must agree)."""
    modern = message_from_bytes(raw, policy=policy.default).get_body(("html",))
    assert modern is not None
    legacy = message_from_bytes(raw, policy=policy.compat32)
    [part] = [p for p in legacy.walk() if p.get_content_type() == "text/html"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    old = payload.decode(part.get_content_charset() or "utf-8")
    new = modern.get_content()  # type: ignore[attr-defined]
    assert old.replace("\r\n", "\n") == new.replace("\r\n", "\n")
    return new


def links(html: str) -> Links:
    parsed = Links()
    parsed.feed(html)
    return parsed


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC + "/"), url
    return url.removeprefix(PUBLIC)


async def test_a_link_in_the_sent_email_lands_on_its_target_and_records_the_click(api_for, store):
    with SmtpServer() as smtp:
        provider = create_provider(
            ProviderConfig(
                provider="smtp", smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none"
            )
        )
        api = await api_for(Engage, sending=sending(store, provider), **TRACKING)
        user = api.stack.user(first_name="Ada")
        await api.stack.track("Engage Requested", user)
        await api.stack.advance("t_engage", user, timedelta(seconds=1))
        [raw] = smtp.mailbox.raw
        provider.close()
    found = links(html_of(raw))
    tracked = [h for h in found.hrefs if h.startswith(f"{PUBLIC}/c/")]
    assert len(tracked) == 2  # the lamp and the help page
    unsubscribe = unsubscribe_url(PUBLIC, SECRET, user, "t_engage")
    assert unsubscribe in found.hrefs  # never rewritten: one click must unsubscribe
    assert "mailto:help@shop.example.test" in found.hrefs and "#details" in found.hrefs
    assert LAMP not in found.hrefs and HELP not in found.hrefs
    assert "https://cdn.example.test/lamp.jpg" in found.images  # images are not links
    [pixel] = [src for src in found.images if src.startswith(f"{PUBLIC}/o/")]
    text = message_from_bytes(raw, policy=policy.default).get_body(("plain",))
    assert text is not None and LAMP in text.get_content()  # type: ignore[attr-defined]
    [run] = api.stack.runs(user)
    [row] = api.stack.outbox(user)
    seq = int(row.idempotency_key.rsplit("/", 1)[1])

    async with httpx.AsyncClient(base_url=api.url) as browser:  # no key, no cookie
        lamp = await browser.get(path_of(tracked[0]))
        help_page = await browser.get(path_of(tracked[1]))
        assert (lamp.status_code, lamp.headers["location"]) == (302, LAMP)
        assert (help_page.status_code, help_page.headers["location"]) == (302, HELP)
        assert lamp.headers["referrer-policy"] == "no-referrer"  # the token stays with us
        assert lamp.headers["cache-control"] == "no-store"
        again = await browser.get(path_of(tracked[0]))
        assert again.headers["location"] == LAMP
        image = await browser.get(path_of(pixel))
        assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
        assert image.headers["cache-control"] == "no-store"
        assert (await browser.get(path_of(pixel))).status_code == 200

    clicks = events(store, "click")
    assert len(clicks) == 2  # once per message and link, however often it is followed
    first = next(c for c in clicks if c.url == "https://shop.example.test/p/lamp")
    assert (first.journey, first.step, first.variant, first.user_id, first.run_id) == (
        "t_engage", "offer", None, user, run.run_id
    )  # fmt: skip
    assert first.message_key == f"{run.run_id}/{seq}" and first.source == "tracking"
    assert "ref=mail" not in (first.url or "")  # a target's query is not kept
    [opened] = events(store, "open")
    assert (opened.step, opened.user_id, opened.message_key) == ("offer", user, first.message_key)


async def test_no_altered_or_foreign_token_redirects_anywhere(api_for, store):
    api = await api_for(Engage, sending=sending(store), **TRACKING)
    message = TrackedMessage("run-x", 1, "t_engage", "offer")
    good = click_token(SECRET, message, LAMP)
    payload, signature = good.split(".")
    evil = "https://evil.example/phish"
    fields = json.loads(base64.urlsafe_b64decode(payload + "=="))
    fields[6] = evil
    swapped = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    refused = {
        "the target swapped, signature kept": f"{swapped}.{signature}",
        "a character changed": good[:5] + ("A" if good[5] != "A" else "B") + good[6:],
        "the signature changed": f"{payload}.{signature[:-2]}AA",
        "truncated": good[:-4],
        "no signature": payload,
        "signed with another key": click_token("another-secret-0123456789", message, evil),
        "an open token": open_token(SECRET, message),
        "an unsubscribe token": make_token(SECRET, "u1", "t_engage"),
        "javascript: signed with the key": click_token(SECRET, message, "javascript:alert(1)"),
        "scheme-relative": click_token(SECRET, message, "//evil.example/x"),
        "backslash host": click_token(SECRET, message, "https:\\\\evil.example"),
        "a header split": click_token(SECRET, message, "https://a.example/\r\nSet-Cookie: x=1"),
        "not base64": "!!!.***",
        "empty parts": ".",
    }
    async with httpx.AsyncClient(base_url=api.url) as browser:
        for why, token in refused.items():
            answer = await browser.get(f"/c/{token}")
            assert answer.status_code in (400, 404), why
            assert "location" not in answer.headers, why
            assert evil not in answer.text, why
        # The target is only ever the signed one: a parameter naming another is ignored.
        answer = await browser.get(f"/c/{good}", params={"url": evil, "redirect": evil})
        assert (answer.status_code, answer.headers["location"]) == (302, LAMP)
        assert (await browser.get(f"/o/{good}.gif")).status_code == 404  # a link is no pixel
    [only] = events(store)  # the genuine click alone was recorded
    assert (only.kind, only.url) == ("click", "https://shop.example.test/p/lamp")
    with pytest.raises(InvalidTrackingToken):
        read_click(SECRET, click_token(SECRET, message, "ftp://files.example/x"))


async def test_the_report_shows_each_steps_engagement_and_revenue_after_a_click(api_for, store):
    api = await api_for(Engage, sending=sending(store), **TRACKING)
    stack = api.stack
    clicker, opener, buyer = (stack.user(first_name=n) for n in ("Ada", "Bo", "Cy"))
    for user in (clicker, opener, buyer):
        await stack.track("Engage Requested", user)
        await stack.advance("t_engage", user, timedelta(seconds=1))

    async def follow(user: str, kind: str) -> None:
        [row] = stack.outbox(user)
        pattern = (
            r'href="(https://journeys\.example\.test/c/[^"]+)"'
            if kind == "click"
            else (r'src="(https://journeys\.example\.test/o/[^"]+)"')
        )
        url = re.search(pattern, row.body_html or "").group(1)  # type: ignore[union-attr]
        async with httpx.AsyncClient(base_url=api.url) as browser:
            assert (await browser.get(urlsplit(url).path)).status_code in (200, 302)

    await follow(clicker, "open")
    await follow(clicker, "click")
    await follow(opener, "open")
    for user in (clicker, buyer):  # both buy the next day; one of them clicked first
        await stack.advance("t_engage", user, DAY + MINUTE)
        await stack.track("Order Completed", user, {"revenue": 80.0 if user == clicker else 30.0})
        await stack.result("t_engage", user)
    await stack.advance("t_engage", opener, DAY + MINUTE)

    report = build_report(store, [Engage], journey="t_engage")
    [journey] = report.journeys
    offer, reminder = journey.steps
    assert (offer.step, offer.sent, offer.delivered) == ("offer", 3, 3)
    assert (offer.opened, offer.clicked, offer.bounced, offer.complained) == (2, 1, 0, 0)
    assert (offer.click_conversions, offer.click_revenue) == (1, 80.0)
    assert (reminder.sent, reminder.opened, reminder.clicked) == (3, 0, 0)
    assert (journey.click_conversions, journey.click_revenue) == (1, 80.0)
    assert journey.treatment.converted == 2  # the headline counts every conversion
    assert journey.complaint_rate == 0.0 and journey.emails_delivered == 6
    text = render_text(report)
    assert "revenue after a click within 7d: 80.00 from 1 treatment entries" in text
    assert "complaint rate: 0.00% of 6 delivered emails" in text


def test_links_are_rewritten_where_they_are_links_and_nowhere_else():
    message = TrackedMessage("run-1", 3, "j", "s", "b")
    html = (
        '<html><body><A HREF="https://a.example/x?p=1&amp;q=2">A</A>'
        "<a title='t' href='http://b.example/'>B</a>"
        '<a href="https://t.example/u/abc">own unsubscribe path</a>'
        '<a href="https://keep.example/unsub">kept</a>'
        '<a href="tel:+441234">call</a><a name="x">anchor</a>'
        f'<a href="https://long.example/{"x" * 2100}">long</a>'
        "<p>https://plain.example/text stays text</p></BODY></html>"
    )
    out = track_email(
        html,
        message=message,
        public_url="https://t.example/",
        secret=SECRET,
        keep=frozenset({"https://keep.example/unsub"}),
    )
    hrefs = links(out).hrefs
    first, second = hrefs[0], hrefs[1]
    assert read_click(SECRET, first.removeprefix("https://t.example/c/")) == (
        message, "https://a.example/x?p=1&q=2"
    )  # fmt: skip
    assert read_click(SECRET, second.removeprefix("https://t.example/c/"))[1] == "http://b.example/"
    assert hrefs[2:5] == ["https://t.example/u/abc", "https://keep.example/unsub", "tel:+441234"]
    assert hrefs[-1].startswith("https://long.example/")  # too long to carry: left alone
    assert "https://plain.example/text stays text" in out
    assert out.index('<img src="https://t.example/o/') < out.index("</BODY>")
    untouched = track_email(
        html, message=message, public_url="https://t.example", secret=SECRET, clicks=False,
        opens=False,
    )  # fmt: skip
    assert untouched == html


async def test_reading_a_tracked_email_in_the_outbox_records_no_open_and_no_click(api_for, store):
    """The outbox page shows the email as written: links to their own targets, no pixel."""
    api = await api_for(Engage, sending=sending(store), **TRACKING)
    user = api.stack.user(first_name="Ada")
    await api.stack.track("Engage Requested", user)
    await api.stack.advance("t_engage", user, timedelta(seconds=1))
    [row] = api.stack.outbox(user)
    assert f"{PUBLIC}/c/" in (row.body_html or "") and f"{PUBLIC}/o/" in (row.body_html or "")

    page = await api.http.get("/outbox")
    assert page.status_code == 200
    frame = page.text.split('srcdoc="')[1].split('"')[0]
    assert f"{PUBLIC}/c/" not in frame and f"{PUBLIC}/o/" not in frame
    assert "https://shop.example.test/p/lamp" in frame  # the link's own target
    assert events(store, "open") == [] and events(store, "click") == []
