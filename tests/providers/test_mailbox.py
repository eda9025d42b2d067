"""What the mailbox sees: every header we write, read on the bytes the receiving side got.

Each message is built by the real send activity (`SendingActivities`: the unsubscribe link
signed on a long public URL, the sender's display name, the subject and bodies rendered from
templates) and handed to a provider's real client: SMTP delivers it to aiosmtpd on loopback,
which keeps the DATA bytes as they arrived; the HTTP APIs post it to the vendors' contract
servers, whose request bodies are compared whole. Encodings are asserted on the raw bytes. The
standard library's `email` parser only checks structure and decoded values, with its `compat32`
and its `default` policy both: reading back with the library that wrote it hides mistakes.

The rules: RFC 2369 and 8058 (List-Unsubscribe is angle-bracketed URLs, one of them https;
List-Unsubscribe-Post: List-Unsubscribe=One-Click), RFC 2047 (an encoded-word is at most 75
characters, a line holding one at most 76, each holds whole characters), RFC 5322 (Date,
Message-ID, lines of at most 998 characters, folding only at whitespace) and RFC 2045/2046
(multipart/alternative, text then HTML).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from activities.providers import (
    EmailProvider,
    PermanentProviderError,
    ProviderConfig,
    create_provider,
)
from activities.sending import DeliveryPolicy, SendingActivities
from activities.store import OutboxMessage, Store
from activities.unsubscribe import read_token, unsubscribe_url
from tests.conftest import renderer
from tests.providers.conftest import Vendor
from tests.providers.servers import CONTRACTS, KEY, SmtpServer, message
from workflows.models import SendRequest

TEMPLATES = Path(__file__).resolve().parent / "templates"
"""`t_mailbox/` here, then the shipped templates (its HTML extends the shipped layout)."""

PUBLIC_URL = "https://mail-preferences.shop.example-retailer.test/journeys/unsubscribe/eu-central-1"
SECRET = "test-secret-for-the-mailbox-tests-0123456789"
FROM_EMAIL = "shop@example-retailer.test"
FROM_NAME = "Café Ørsted — Möbel & Licht, Hamburg"
USER = "customer-7d1f0c2e-5b8a-4c1e-9f3a-2d6b8e4a1c90"
EMAIL = "zoe.angstrom@example.test"
FIRST_NAME = "Zoë Ångström-Lüdenscheidt"
CONTEXT: dict[str, Any] = {
    "headline": "Ihre Lampe „Kugel“ wartet \u2013 20 % Rabatt bis Sonntag",
    "product": "Lampe „Kugel“ Ø 40 cm",
    "price": "49,50 €",
    "cart_url": "https://shop.example-retailer.test/cart/recover?c=c-91&utm_source=journeys",
    "image_url": "https://cdn.example-retailer.test/p/kugel-40.jpg",
}
UNSUBSCRIBE_URL = unsubscribe_url(PUBLIC_URL, SECRET, USER, "t_mailbox")
HEADERS = {
    "List-Unsubscribe": f"<{UNSUBSCRIBE_URL}>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
"""What the send activity must hand every provider for this marketing email."""

ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
RFC5322_DATE = re.compile(
    rb"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    rb"\d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$"
)


def test_the_unsubscribe_url_is_long_enough_that_folding_would_break_it() -> None:
    assert (
        UNSUBSCRIBE_URL.startswith("https://")
        and len(f"List-Unsubscribe: <{UNSUBSCRIBE_URL}>") > 200
    )


# Sending through the real send activity ------------------------------------------------------


def send(store: Store, provider: EmailProvider, **request: Any) -> OutboxMessage:
    """One marketing email from the send activity to `provider`; the outbox row it recorded."""
    store.upsert_profile(USER, email=EMAIL, traits={"first_name": FIRST_NAME})
    sending = SendingActivities(
        store,
        renderer(TEMPLATES),
        provider=provider,
        policy=DeliveryPolicy(
            from_email=FROM_EMAIL,
            from_name=FROM_NAME,
            public_url=PUBLIC_URL,
            secret_key=SECRET,
            quiet_hours=None,
            frequency_cap=1000,
            company={"company_name": "Café Ørsted", "postal_address": "Hafenstraße 1, Hamburg"},
        ),
    )
    fields: dict[str, Any] = {
        "journey": "t_mailbox",
        "template": "offer",
        "context": CONTEXT,
        **request,
    }
    result = sending.send_message(
        SendRequest(
            idempotency_key=f"{fields['journey']}:{USER}:run-1:{fields['template']}",
            run_id="run-1",
            seq=1,
            user_id=USER,
            at=datetime.now(UTC),
            **fields,
        )
    )
    assert result.status == "sent", result
    [row] = store.outbox(USER)
    assert row.status == "sent"
    return row


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> Iterator[EmailProvider]:
    """An SMTP provider pointed at the module's aiosmtpd (its inbox emptied for each test)."""
    smtp_server.inbox.raw.clear()
    smtp_server.inbox.received.clear()
    provider = create_provider(
        ProviderConfig(
            provider="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_tls="none"
        )
    )
    yield provider
    provider.close()


def received(server: SmtpServer) -> bytes:
    [raw] = server.inbox.raw
    return raw


# Reading raw header fields ----------------------------------------------------------------------


def header_fields(raw: bytes) -> list[list[bytes]]:
    """The top-level header section, each field as its physical lines (CRLFs removed)."""
    head, separator, _ = raw.partition(b"\r\n\r\n")
    assert separator, "no blank line after the header section"
    fields: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            fields[-1].append(line)
        else:
            fields.append([line])
    return fields


def field(raw: bytes, name: str) -> list[bytes]:
    """The one field called `name`, as its physical lines."""
    found = [
        f for f in header_fields(raw) if f[0].split(b":", 1)[0].lower() == name.lower().encode()
    ]
    assert len(found) == 1, f"{len(found)} {name} fields in {raw[:2000]!r}"
    return found[0]


def unfolded(lines: list[bytes]) -> bytes:
    """RFC 5322 unfolding: the CRLFs go, the whitespace after them stays."""
    return b"".join(lines)


def parsed(raw: bytes) -> tuple[Message, Message]:
    return message_from_bytes(raw, policy=policy.compat32), message_from_bytes(
        raw, policy=policy.default
    )


def assert_encoded_words_are_correct(lines: list[bytes]) -> None:
    """RFC 2047: each encoded-word at most 75 characters, UTF-8, holding whole characters; a
    line that holds one at most 76 characters."""
    for line in lines:
        words = list(ENCODED_WORD.finditer(line))
        if not words:
            continue
        assert len(line) <= 76, f"a line with encoded-words is {len(line)} long: {line!r}"
        for word in words:
            assert len(word.group(0)) <= 75, f"encoded-word of {len(word.group(0))}: {word!r}"
            assert word.group(1).lower() == b"utf-8"
            [(octets, charset)] = decode_header(word.group(0).decode())
            assert isinstance(octets, bytes) and charset == "utf-8"
            octets.decode("utf-8")  # whole characters: no word ends inside a UTF-8 sequence


def compat32_text(value: str) -> str:
    """An unstructured header as an RFC 2047 reader that is not Python's newer parser sees it."""
    return str(make_header(decode_header(re.sub(r"\r?\n(?=[ \t])", "", value))))


# List-Unsubscribe and List-Unsubscribe-Post -----------------------------------------------------


def test_list_unsubscribe_arrives_as_the_angle_bracketed_https_url_never_encoded(
    store: Store, smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    send(store, smtp)
    raw = received(smtp_server)
    lines = field(raw, "List-Unsubscribe")
    assert b"=?" not in unfolded(lines), unfolded(lines)
    # Folded (if at all) only before whitespace that is part of the value: unfolding gives the
    # value back exactly, and the URL is one unbroken run of bytes on the wire.
    assert unfolded(lines).decode("ascii") == f"List-Unsubscribe: <{UNSUBSCRIBE_URL}>"
    assert f"<{UNSUBSCRIBE_URL}>".encode() in raw
    assert all(len(line) <= 998 for line in lines)
    for mail in parsed(raw):
        assert re.sub(r"\r?\n", "", str(mail["List-Unsubscribe"])) == f"<{UNSUBSCRIBE_URL}>"
    # The URL alone names the user and the journey (RFC 8058), signed with our key.
    token = UNSUBSCRIBE_URL.rpartition("/u/")[2]
    assert read_token(SECRET, token) == (USER, "t_mailbox")
    assert field(raw, "List-Unsubscribe-Post") == [
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    ]


def test_a_list_unsubscribe_with_a_mailto_too_is_folded_only_between_its_entries(
    smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    mailto = "mailto:unsubscribe@example-retailer.test?subject=unsubscribe-" + "x" * 40
    value = f"<{mailto}>, <{UNSUBSCRIBE_URL}>"
    smtp.send(message(headers={**HEADERS, "List-Unsubscribe": value}))
    lines = field(received(smtp_server), "List-Unsubscribe")
    assert unfolded(lines).decode("ascii") == f"List-Unsubscribe: {value}"
    assert b"=?" not in unfolded(lines)
    assert all(line.rstrip().endswith((b">", b">,")) for line in lines), lines


# Message-ID and Date ---------------------------------------------------------------------------


def test_message_id_is_angle_bracketed_on_the_senders_domain_and_date_is_rfc5322(
    store: Store, smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    row = send(store, smtp)
    raw = received(smtp_server)
    [message_id] = field(raw, "Message-ID")
    assert re.fullmatch(rb"Message-ID: <[0-9a-f]{32}@example-retailer\.test>", message_id)
    assert message_id.split(b": ", 1)[1].decode() == row.provider_message_id
    [date] = field(raw, "Date")
    value = date.split(b": ", 1)[1]
    assert RFC5322_DATE.match(value), date
    sent_at = parsedate_to_datetime(value.decode())
    assert sent_at.tzinfo is not None
    assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=5)


# From ------------------------------------------------------------------------------------------


def check_from(raw: bytes, display_name: str, address: str) -> list[bytes]:
    lines = field(raw, "From")
    whole = unfolded(lines).decode("ascii")
    # The address is always plain text at the end, never inside an encoded-word.
    assert whole.endswith(f" <{address}>"), whole
    assert_encoded_words_are_correct(lines)
    compat, default = parsed(raw)
    assert default["From"].addresses[0].display_name == display_name
    assert default["From"].addresses[0].addr_spec == address
    name, addr = parseaddr(re.sub(r"\r?\n", "", compat["From"]))
    assert (compat32_text(name), addr) == (display_name, address)
    return lines


def test_a_non_ascii_sender_name_is_encoded_words_and_the_address_stays_plain(
    store: Store, smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    send(store, smtp)
    raw = received(smtp_server)
    lines = check_from(raw, FROM_NAME, FROM_EMAIL)
    assert ENCODED_WORD.search(unfolded(lines))


@pytest.mark.parametrize(
    "display_name",
    [
        "Example Shop",
        "Shop, Inc. (Berlin)",
        'Zoë "the shop" (Berlin), Ltd.',
        "Ærøskøbing Møbler & Lys — a very long display name that needs more than one word",
        "=?utf-8?q?looks_encoded?= Shop",
    ],
)
def test_every_sender_name_reads_back_exactly(
    display_name: str, smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    smtp.send(message(from_name=display_name, from_email=FROM_EMAIL))
    lines = check_from(received(smtp_server), display_name, FROM_EMAIL)
    if display_name.isascii() and "=?" not in display_name:
        assert b"=?" not in unfolded(lines)  # plain (quoted where RFC 5322 needs it)


# Subject ---------------------------------------------------------------------------------------


def check_subject(raw: bytes, subject: str) -> list[bytes]:
    lines = field(raw, "Subject")
    assert_encoded_words_are_correct(lines)
    assert all(len(line) <= 998 for line in lines)
    compat, default = parsed(raw)
    assert default["Subject"] == subject
    assert compat32_text(compat["Subject"]) == subject
    return lines


def test_the_rendered_non_ascii_subject_is_encoded_words_that_decode_back_exactly(
    store: Store, smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    row = send(store, smtp)
    assert row.subject == f"{FIRST_NAME}, {CONTEXT['headline']}"
    lines = check_subject(received(smtp_server), row.subject)
    assert len(lines) > 1  # long enough to be folded
    assert b"\xc3" not in unfolded(lines)  # no raw UTF-8 in the header


SUBJECTS = {
    "latin": "Ihre Lampe „Kugel“ wartet \u2013 20 % Rabatt bis Sonntag, Zoë Ångström-Lüdenscheidt",
    "cjk": "日本語の件名はとても長いのでこの行は折り返される必要がありますよねえそうですよね本当に",
    "symbols": "☕" * 40,
    "combining": "Cafe\u0301 and  two  spaces, then e\u0301 \u00e9 \U0001f600 at the end",
    "looks_encoded": "Café =?utf-8?q?not_an_encoded_word?= taken literally",
    "ascii_looks_encoded": "Your code is =?utf-8?q?ABC?= exactly",
}


@pytest.mark.parametrize("subject", SUBJECTS.values(), ids=SUBJECTS.keys())
def test_a_subject_decodes_back_exactly_from_correct_encoded_words(
    subject: str, smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    smtp.send(message(subject=subject))
    lines = check_subject(received(smtp_server), subject)
    assert all(b < 0x80 for b in unfolded(lines))


def test_an_ascii_subject_is_sent_as_it_is_folded_only_at_its_spaces(
    smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    subject = "You left a lamp in your cart: " + " ".join(["see", "it", "again"] * 12)
    smtp.send(message(subject=subject))
    lines = check_subject(received(smtp_server), subject)
    assert unfolded(lines).decode("ascii") == f"Subject: {subject}"
    assert all(len(line) <= 78 for line in lines)


# MIME structure and links ----------------------------------------------------------------------


def test_the_body_is_multipart_alternative_text_then_html_in_utf8_and_7bit_on_the_wire(
    store: Store, smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    row = send(store, smtp)
    raw = received(smtp_server)
    # 7-bit clean: smtplib does not announce BODY=8BITMIME, so 8-bit bytes would rely on the
    # relay's goodwill (RFC 6152).
    assert all(b < 0x80 for b in raw), "8-bit bytes sent without BODY=8BITMIME"
    assert field(raw, "MIME-Version") == [b"MIME-Version: 1.0"]
    for mail in parsed(raw):
        assert mail.get_content_type() == "multipart/alternative"
        text, html = mail.get_payload()
        assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
        for part, rendered in ((text, row.body_text), (html, row.body_html)):
            assert part.get_content_charset() == "utf-8"
            assert part["MIME-Version"] is None  # only the message has one (RFC 2045)
            body = part.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")
            assert body.strip() == rendered


def test_a_short_non_ascii_body_is_still_7bit_on_the_wire(
    smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    """Short lines are where Python's default picks "8bit" (long ones go quoted-printable)."""
    text, html = "Grüße, Zoë!\nIhr Warenkorb: 49,50 €", "<p>Grüße, Zoë!</p>"
    smtp.send(message(text=text, html=html))
    raw = received(smtp_server)
    assert all(b < 0x80 for b in raw), "8-bit bytes sent without BODY=8BITMIME"
    mail = message_from_bytes(raw, policy=policy.default)
    for subtype, sent in (("plain", text), ("html", html)):
        part = mail.get_body((subtype,))
        assert part is not None
        assert part.get_content().replace("\r\n", "\n").strip() == sent  # type: ignore[attr-defined]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v or "" for k, v in attrs if k in ("href", "src")]


def html_urls(raw: bytes) -> list[str]:
    mail = message_from_bytes(raw, policy=policy.default)
    html = mail.get_body(("html",))
    assert html is not None
    links = Links()
    links.feed(html.get_content())  # type: ignore[attr-defined]
    return links.urls


@pytest.mark.parametrize(
    ("journey", "template", "context", "event"),
    [
        ("t_mailbox", "offer", CONTEXT, {}),
        (
            "cart_recovery",
            "reminder",
            {
                "items": [
                    {
                        "product_id": "kugel-40",
                        "name": "Lampe „Kugel“",
                        "price": 49.5,
                        "currency": "EUR",
                        "url": "https://shop.example-retailer.test/p/kugel-40",
                        "image_url": "https://cdn.example-retailer.test/p/kugel-40.jpg",
                    }
                ],
                "cart_url": CONTEXT["cart_url"],
            },
            {"checkout_url": CONTEXT["cart_url"]},
        ),
    ],
    ids=["test_template", "shipped_cart_reminder"],
)
def test_every_link_in_the_html_is_absolute_https_and_the_body_has_the_unsubscribe_link(
    journey: str,
    template: str,
    context: dict[str, Any],
    event: dict[str, Any],
    store: Store,
    smtp_server: SmtpServer,
    smtp: EmailProvider,
) -> None:
    row = send(store, smtp, journey=journey, template=template, context=context, event=event)
    raw = received(smtp_server)
    urls = html_urls(raw)
    assert urls and all(url.startswith("https://") for url in urls), urls
    own_link = unsubscribe_url(PUBLIC_URL, SECRET, USER, journey)
    assert own_link in urls  # the visible link beside the header (Gmail and Yahoo ask both)
    assert field(raw, "List-Unsubscribe") == [f"List-Unsubscribe: <{own_link}>".encode()]
    assert row.body_text and own_link in row.body_text


# The HTTP providers ----------------------------------------------------------------------------


def expected_body(vendor: str, row: OutboxMessage) -> dict[str, Any]:
    """The whole JSON body each vendor documents, with the same headers as the SMTP message."""
    ours = {"idempotency_key": row.idempotency_key, "journey": "t_mailbox", "step": "offer",
            "user_id": USER}  # fmt: skip
    if vendor == "sendgrid":  # headers: an object of strings
        return {
            "personalizations": [{"to": [{"email": EMAIL}], "custom_args": ours}],
            "from": {"email": FROM_EMAIL, "name": FROM_NAME},
            "subject": row.subject,
            "content": [
                {"type": "text/plain", "value": row.body_text},
                {"type": "text/html", "value": row.body_html},
            ],
            "headers": HEADERS,
            "categories": ["t_mailbox"],
        }
    if vendor == "postmark":  # Headers: a list of {Name, Value}
        return {
            "From": f'"{FROM_NAME}" <{FROM_EMAIL}>',
            "To": EMAIL,
            "Subject": row.subject,
            "HtmlBody": row.body_html,
            "TextBody": row.body_text,
            "Headers": [{"Name": k, "Value": v} for k, v in HEADERS.items()],
            "MessageStream": "broadcast",
            "Tag": "t_mailbox",
            "Metadata": ours,
        }
    if vendor == "mailchimp":  # message.headers: an object
        return {
            "key": KEY,
            "message": {
                "html": row.body_html,
                "text": row.body_text,
                "subject": row.subject,
                "from_email": FROM_EMAIL,
                "from_name": FROM_NAME,
                "to": [{"email": EMAIL, "type": "to"}],
                "headers": HEADERS,
                "tags": ["t_mailbox"],
                "metadata": ours,
            },
        }
    # Klaviyo's Create Event takes properties, time, value, unique_id, metric and profile: no
    # headers. A Klaviyo flow renders and sends the email and adds Klaviyo's own one-click
    # List-Unsubscribe to it (help.klaviyo.com/hc/en-us/articles/115005078267).
    return {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {**CONTEXT, "subject": row.subject},
                "metric": {
                    "data": {"type": "metric", "attributes": {"name": "Journey t_mailbox offer"}}
                },
                "profile": {
                    "data": {"type": "profile", "attributes": {"email": EMAIL, "external_id": USER}}
                },
                "unique_id": row.idempotency_key,
            },
        }
    }


@pytest.mark.parametrize("vendor", sorted(CONTRACTS), indirect=True)
def test_each_http_vendor_receives_the_same_headers_in_the_field_it_documents(
    vendor: Vendor, store: Store
) -> None:
    vendor.answer(*CONTRACTS[vendor.name].ok)
    row = send(store, vendor.provider())
    [request] = vendor.script.seen
    assert request.json() == expected_body(vendor.name, row)
    assert b"=?" not in request.body  # JSON carries the values as they are, never encoded
    if vendor.name == "klaviyo":
        assert b"List-Unsubscribe" not in request.body
    else:
        assert f'"<{UNSUBSCRIBE_URL}>"'.encode() in request.body
        assert b'"List-Unsubscribe=One-Click"' in request.body


# What cannot be written correctly is not sent --------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Hello\r\nBcc: everyone@example.test"},
        {"headers": {**HEADERS, "List-Unsubscribe": f"<{UNSUBSCRIBE_URL}>\r\nBcc: x@example.test"}},
        {"headers": {**HEADERS, "List-Unsubscribe": "<https://bücher.example.test/u/t>"}},
    ],
    ids=["line_break_in_subject", "line_break_in_list_unsubscribe", "non_ascii_url"],
)
def test_a_header_that_cannot_be_written_as_it_must_is_refused_for_good_and_not_sent(
    changes: dict[str, Any], smtp_server: SmtpServer, smtp: EmailProvider
) -> None:
    with pytest.raises(PermanentProviderError, match="cannot build the message"):
        smtp.send(message(**changes))
    assert smtp_server.inbox.raw == []
