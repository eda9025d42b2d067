"""`journeys send-test`: a step's email to a tester through the real provider (here a real SMTP
server on loopback), "[TEST]" in the subject, and nothing recorded, counted or capped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from activities.store import (
    JourneyRun,
    JourneyStepRow,
    OutboxMessage,
    SendWait,
    Store,
)
from activities.unsubscribe import InvalidUnsubscribeToken, read_token
from starter.cli import main
from starter.settings import DEVELOPMENT_KEY
from tests.smtp_server import SmtpServer

TEMPLATES = Path(__file__).parent / "templates"
TESTER = "tester@example.test"


@pytest.fixture
def smtp(store: Store, monkeypatch: pytest.MonkeyPatch):
    with SmtpServer() as server:
        for name, value in {
            "DATABASE_URL": store.url,
            "JOURNEY_MODULES": "tests.experiments.journeys",
            "TEMPLATES_DIRS": str(TEMPLATES),
            "EMAIL_PROVIDER": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(server.port),
            "SMTP_TLS": "none",
            "FROM_EMAIL": "journeys@shop.test",
        }.items():
            monkeypatch.setenv(f"JOURNEYS_{name}", value)
        yield server


def received(raw: bytes) -> EmailMessage:
    mail = message_from_bytes(raw, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    return mail


def body(mail: EmailMessage, kind: str) -> str:
    part = mail.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def nothing_recorded(store: Store) -> None:
    with store.engine.connect() as conn:
        for table in (OutboxMessage, JourneyRun, JourneyStepRow, SendWait):
            count = conn.execute(select(func.count()).select_from(table)).scalar_one()
            assert count == 0, f"{table.__tablename__} has {count} rows"
    since = datetime.now(UTC) - timedelta(days=7)
    assert store.marketing_sent_since("ada", since) == 0  # the frequency cap counts none


def test_a_test_send_renders_a_real_profile_goes_through_smtp_and_is_never_recorded(
    store, smtp, capsys
):
    store.upsert_profile("ada", email="ada@example.test", traits={"first_name": "Ada"})
    now = datetime.now(UTC)
    for i in range(2):
        store.receive(
            message_id=f"r{i}", user_id="ada", kind="track", at=now - timedelta(days=i + 1),
            event="Report Created",
        )  # fmt: skip

    code = main(["send-test", "t_urgent_offer", "offer", "--to", TESTER, "--user", "ada"])
    assert code == 0, capsys.readouterr().err
    assert "sent a test of t_urgent_offer offer to tester@example.test through smtp" in (
        capsys.readouterr().out
    )
    [raw] = smtp.mailbox.raw
    assert b"\r\nSubject: [TEST] Your cart is waiting\r\n" in raw
    assert b"\r\nTo: tester@example.test\r\n" in raw
    assert b"\r\nX-Journeys-Test: true\r\n" in raw
    assert b"ada@example.test" not in raw  # the tester gets it, never the user
    mail = received(raw)
    html = body(mail, "html")
    assert "Your cart is waiting, Ada. You created 2 reports this week." in html

    # Its unsubscribe link reaches the page, but no key the API checks signed it.
    [token] = re.findall(r"/u/([A-Za-z0-9_.-]+)", str(mail["List-Unsubscribe"]))
    with pytest.raises(InvalidUnsubscribeToken):
        read_token(DEVELOPMENT_KEY, token)

    nothing_recorded(store)


def test_a_variant_and_the_preview_context_without_a_user(store, smtp, capsys):
    variant = ["--variant", "last_chance"]
    code = main(["send-test", "t_urgent_offer", "offer", "--to", TESTER, *variant])
    assert code == 0, capsys.readouterr().err
    [raw] = smtp.mailbox.raw
    assert b"\r\nSubject: [TEST] Last chance: your cart is waiting\r\n" in raw
    html = body(received(raw), "html")
    assert "Your cart is waiting, there. You created 0 reports this week." in html
    assert "rendered with the journey's preview context" in capsys.readouterr().out
    nothing_recorded(store)


def test_bad_input_and_no_provider_send_nothing(store, smtp, monkeypatch, capsys):
    assert main(["send-test", "t_urgent_offer", "offer", "--to", "a@x.test, b@y.test"]) == 2
    assert main(["send-test", "t_urgent_offer", "offer", "--to", TESTER, "--user", "nobody"]) == 2
    assert main(["send-test", "t_nope", "offer", "--to", TESTER]) == 2
    assert main(["send-test", "t_urgent_offer", "missing", "--to", TESTER]) == 1
    monkeypatch.setenv("JOURNEYS_EMAIL_PROVIDER", "outbox")
    assert main(["send-test", "t_urgent_offer", "offer", "--to", TESTER]) == 1
    output = capsys.readouterr()
    assert "no email provider is configured" in output.err
    assert "Subject: [TEST] Your cart is waiting" in output.out
    assert smtp.mailbox.raw == []
    nothing_recorded(store)
