"""SMTP against a real aiosmtpd server on loopback."""

from __future__ import annotations

import pytest

from activities.providers import (
    PermanentProviderError,
    ProviderConfig,
    RetryableProviderError,
    create_provider,
)
from tests.providers.test_http_providers import MESSAGE
from tests.smtp_server import Mailbox, SmtpServer, free_port


def provider(port: int):
    return create_provider(
        ProviderConfig(provider="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none")
    )


def test_the_email_arrives_with_both_parts_and_the_unsubscribe_headers():
    with SmtpServer() as smtp:
        delivery = provider(smtp.port).send(MESSAGE)
    [mail] = smtp.mailbox.received
    assert mail["To"] == "ada@example.test"
    assert mail["From"] == "Shop <shop@example.test>"
    assert mail["Subject"] == "Your cart"
    assert mail["List-Unsubscribe"] == "<https://x.test/u/t>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"] == delivery.provider_message_id
    assert mail.get_body(("plain",)).get_content().strip() == "Hi"
    assert mail.get_body(("html",)).get_content().strip() == "<p>Hi</p>"


def test_a_5xx_recipient_refusal_is_permanent_and_suppresses_the_address():
    with (
        SmtpServer(Mailbox(rcpt_reply="550 5.1.1 no such user")) as smtp,
        pytest.raises(PermanentProviderError) as refused,
    ):
        provider(smtp.port).send(MESSAGE)
    assert refused.value.suppress_recipient and refused.value.status == 550


def test_a_4xx_reply_or_no_server_is_retryable():
    with (
        SmtpServer(Mailbox(data_reply="451 4.3.0 try again later")) as smtp,
        pytest.raises(RetryableProviderError),
    ):
        provider(smtp.port).send(MESSAGE)
    with pytest.raises(RetryableProviderError):
        provider(free_port()).send(MESSAGE)  # nothing listens: connection refused
