"""SMTP (stdlib smtplib): any mail server or relay, STARTTLS or TLS, with AUTH when given."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage

from activities.providers.base import (
    AmbiguousProviderError,
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfig,
    RetryableProviderError,
)

BAD_ADDRESS = frozenset({550, 551, 553})
"""Mailbox unavailable, not local, name not allowed: stop mailing that address."""


class SmtpProvider:
    name = "smtp"
    idempotent = False

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def send(self, message: OutgoingMessage) -> Delivery:
        mail = build_email(message)
        try:
            with self._connect() as smtp:
                if self.config.smtp_username:
                    password = self.config.smtp_password
                    smtp.login(
                        self.config.smtp_username, password.get_secret_value() if password else ""
                    )
                try:
                    smtp.send_message(mail)
                except smtplib.SMTPServerDisconnected as err:
                    raise AmbiguousProviderError("smtp: disconnected while sending") from err
                except TimeoutError as err:
                    raise AmbiguousProviderError("smtp: no answer after sending") from err
        except smtplib.SMTPRecipientsRefused as err:
            code, reply = next(iter(err.recipients.values()))
            raise _classify(code, reply) from err
        except smtplib.SMTPResponseException as err:
            raise _classify(err.smtp_code, err.smtp_error) from err
        except (ConnectionError, TimeoutError, OSError) as err:
            if isinstance(err, AmbiguousProviderError):
                raise
            raise RetryableProviderError(f"smtp: cannot connect ({type(err).__name__})") from err
        return Delivery(provider=self.name, provider_message_id=mail["Message-ID"])

    def _connect(self) -> smtplib.SMTP:
        host, port, timeout = self.config.smtp_host, self.config.smtp_port, self.config.timeout
        if self.config.smtp_tls == "ssl":
            return smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(host, port, timeout=timeout)
        if self.config.smtp_tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        return smtp

    def close(self) -> None:
        pass


def build_email(message: OutgoingMessage) -> EmailMessage:
    """A multipart/alternative email; its Message-ID derives from the idempotency key, so a
    receiving system that dedupes on Message-ID sees one message."""
    mail = EmailMessage()
    mail["From"] = message.sender
    mail["To"] = message.to
    mail["Subject"] = message.subject
    digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
    mail["Message-ID"] = f"<{digest}@journeys>"
    for name, value in message.headers.items():
        mail[name] = value
    mail.set_content(message.text or " ")
    mail.add_alternative(message.html or "<p></p>", subtype="html")
    return mail


def _classify(code: int, reply: bytes | str) -> Exception:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    reason = f"smtp: {code} {text[:200]}"
    if 400 <= code < 500:
        return RetryableProviderError(reason, code)
    return PermanentProviderError(reason, code, suppress_recipient=code in BAD_ADDRESS)
