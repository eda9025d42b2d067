"""SMTP against a real aiosmtpd server on loopback: what arrives, and how replies are read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from activities.providers import (
    AmbiguousProviderError,
    EmailProvider,
    PermanentProviderError,
    ProviderConfig,
    RetryableProviderError,
    create_provider,
)
from activities.providers.smtp import message_id
from tests.providers.servers import (
    UNSUBSCRIBE,
    Inbox,
    SmtpServer,
    free_port,
    message,
    self_signed_cert,
)

MESSAGE = message()


def smtp(port: int, **settings: Any) -> EmailProvider:
    settings.setdefault("smtp_tls", "none")
    return create_provider(
        ProviderConfig(provider="smtp", smtp_host="127.0.0.1", smtp_port=port, **settings)
    )


def test_the_email_arrives_with_both_parts_the_unsubscribe_headers_and_a_stable_id() -> None:
    with SmtpServer() as server:
        first = smtp(server.port).send(MESSAGE)
        again = smtp(server.port).send(MESSAGE)  # a retry of the same step
    mail, repeat = server.inbox.received
    assert server.inbox.envelopes[0][:2] == ("shop@example.test", ["ada@example.test"])
    assert mail["To"] == "ada@example.test"
    assert mail["From"] == "Example Shop <shop@example.test>"
    assert mail["Subject"] == MESSAGE.subject
    for name, value in UNSUBSCRIBE.items():
        assert mail[name] == value
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().strip() == MESSAGE.text  # type: ignore[union-attr]
    assert mail.get_body(("html",)).get_content().strip() == MESSAGE.html  # type: ignore[union-attr]
    # The same Message-ID on every attempt, so a receiver that dedupes on it sees one message.
    assert mail["Message-ID"] == first.provider_message_id == repeat["Message-ID"]
    assert first.provider_message_id == again.provider_message_id
    assert mail["Message-ID"].endswith("@example.test>")
    assert message_id(message(idempotency_key="another")) != mail["Message-ID"]


def test_an_unknown_mailbox_is_permanent_and_suppresses_the_address() -> None:
    with (
        SmtpServer(Inbox(rcpt_reply="550 5.1.1 <ada@example.test>: user unknown")) as server,
        pytest.raises(PermanentProviderError) as refused,
    ):
        smtp(server.port).send(MESSAGE)
    assert (refused.value.status, refused.value.suppress_recipient) == (550, True)
    assert server.inbox.received == []


def test_a_policy_refusal_is_permanent_but_not_the_recipients_fault() -> None:
    with (
        SmtpServer(Inbox(data_reply="550 5.7.1 message looks like spam")) as server,
        pytest.raises(PermanentProviderError) as refused,
    ):
        smtp(server.port).send(MESSAGE)
    assert (refused.value.status, refused.value.suppress_recipient) == (550, False)


def test_a_4yz_reply_is_retryable() -> None:
    with (
        SmtpServer(Inbox(data_reply="451 4.3.0 try again later")) as server,
        pytest.raises(RetryableProviderError) as busy,
    ):
        smtp(server.port).send(MESSAGE)
    assert busy.value.status == 451


def test_no_server_is_retryable() -> None:
    with pytest.raises(RetryableProviderError, match="cannot connect"):
        smtp(free_port()).send(MESSAGE)


def test_no_reply_after_the_message_went_out_is_ambiguous() -> None:
    """The server has the mail but the "250" never came in time: it may well deliver it."""
    with SmtpServer(Inbox(hold=1.0)) as server:
        started = time.monotonic()
        with pytest.raises(AmbiguousProviderError):
            smtp(server.port, timeout=0.5).send(MESSAGE)
        assert time.monotonic() - started < 0.95
        assert len(server.inbox.received) == 1


def test_auth_logs_in_with_the_username_and_password() -> None:
    with SmtpServer(auth=("journeys", "s3cret-pass")) as server:
        smtp(server.port, smtp_username="journeys", smtp_password=SecretStr("s3cret-pass")).send(
            MESSAGE
        )
    assert server.inbox.envelopes[0][2] == "journeys"


def test_a_wrong_password_is_permanent_and_never_in_the_error() -> None:
    with (
        SmtpServer(auth=("journeys", "s3cret-pass")) as server,
        pytest.raises(PermanentProviderError) as refused,
    ):
        smtp(server.port, smtp_username="journeys", smtp_password=SecretStr("wrong-pass-77")).send(
            MESSAGE
        )
    assert refused.value.status == 535 and not refused.value.suppress_recipient
    assert "wrong-pass-77" not in str(refused.value) + repr(refused.value)
    assert server.inbox.received == []


def test_starttls_required_but_not_offered_is_refused_not_sent_in_plain_text() -> None:
    with (
        SmtpServer() as server,  # aiosmtpd without a TLS context offers no STARTTLS
        pytest.raises(PermanentProviderError, match="STARTTLS"),
    ):
        smtp(server.port, smtp_tls="starttls").send(MESSAGE)
    assert server.inbox.received == []


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    # openssl is part of the base system: if it is missing, this fails loudly.
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trusted(cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Our certificate as the only CA the client trusts (OpenSSL reads SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    yield


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_tls_then_auth_with_a_verified_certificate(
    tls: str, cert: tuple[Path, Path], trusted: None
) -> None:
    """The client verifies the certificate (trusted via SSL_CERT_FILE) and the STARTTLS
    server offers AUTH only after TLS: success means encrypted, verified and logged in."""
    with SmtpServer(auth=("journeys", "s3cret-pass"), tls=tls, cert=cert) as server:  # type: ignore[arg-type]
        smtp(
            server.port,
            smtp_tls=tls,
            smtp_username="journeys",
            smtp_password=SecretStr("s3cret-pass"),
        ).send(MESSAGE)
    assert server.inbox.envelopes[0][2] == "journeys"


def test_an_untrusted_certificate_is_refused_for_good(cert: tuple[Path, Path]) -> None:
    with (
        SmtpServer(tls="starttls", cert=cert) as server,
        pytest.raises(PermanentProviderError, match="TLS"),
    ):
        smtp(server.port, smtp_tls="starttls").send(MESSAGE)
    assert server.inbox.received == []
