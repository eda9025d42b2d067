"""SMTP (stdlib smtplib): any mail server or relay; STARTTLS (587), implicit TLS (465) or none.

One connection per message: sends come from many worker threads, a few per second at most, and
a fresh connection never trips over a relay's idle timeout. AUTH runs when a username is set;
STARTTLS is required when configured (never a silent fall-back to plain text).

The Message-ID derives from the idempotency key, so a receiving system that dedupes on it sees
one message even if a crash made us send twice. Headers are written by `_mime.MAIL_POLICY`:
List-Unsubscribe exactly as given (`<https://…>`, never RFC 2047 encoded-words, which mailbox
providers do not read as a URL), Subject and a sender's name in correct encoded-words, the
bodies in 7 bits.

Replies: 4yz is Retryable, 5yz Permanent. A refused recipient (at RCPT, or at DATA) suppresses
the address when the reply says the mailbox is bad: enhanced status 5.1.x (no such user, bad
domain, bad syntax) or 5.2.1 (disabled), or, without one, basic code 550, 551 or 553. A policy
refusal (5.7.x: spam, DMARC) or a refused sender is not the recipient's fault. A timeout or a
dropped connection after the final "." is Ambiguous: the server may have queued the mail.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import socket
import ssl
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import formatdate
from typing import TYPE_CHECKING

from activities.providers._mime import MAIL_POLICY
from activities.providers.base import (
    AmbiguousProviderError,
    Delivery,
    OutgoingMessage,
    PermanentProviderError,
    ProviderConfig,
    ProviderError,
    RetryableProviderError,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

BAD_MAILBOX_CODES = frozenset({550, 551, 553})
BAD_MAILBOX_ENHANCED = re.compile(r"^5\.(1\.(1|2|3|6|10)|2\.1)$")
ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "message-id",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
"""Written by `build_email` itself: a message's `headers` cannot replace them."""


class _Connection(smtplib.SMTP):
    """smtplib.SMTP that remembers whether the message's final "." went out."""

    sent_final_dot = False

    def send(self, s: ReadableBuffer | str) -> None:
        data = s.encode() if isinstance(s, str) else bytes(s)
        super().send(s)
        if data.endswith(b"\r\n.\r\n"):
            self.sent_final_dot = True


class _SslConnection(_Connection, smtplib.SMTP_SSL):
    pass


class SmtpProvider:
    name = "smtp"
    idempotent = False

    def __init__(self, config: ProviderConfig) -> None:
        self._host = config.smtp_host
        self._port = config.smtp_port
        self._tls = config.smtp_tls
        self._timeout = config.timeout
        self._username = config.smtp_username
        self._password = config.smtp_password

    def __repr__(self) -> str:
        return f"<SmtpProvider {self._host}:{self._port} tls={self._tls}>"

    def __enter__(self) -> SmtpProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing held between sends."""

    def send(self, message: OutgoingMessage) -> Delivery:
        try:
            mail = build_email(message)
        except (ValueError, TypeError) as err:  # e.g. a header with a line break in it
            raise PermanentProviderError(f"smtp: cannot build the message ({err})") from None
        smtp = self._open()
        try:
            self._send(smtp, mail, message)
        finally:
            _quit(smtp)
        return Delivery(provider=self.name, provider_message_id=mail["Message-ID"])

    def _open(self) -> _Connection:
        """Connected, TLS and AUTH done; failures here never sent anything."""
        context = ssl.create_default_context()
        smtp: _Connection
        try:
            if self._tls == "ssl":
                smtp = _SslConnection(
                    self._host, self._port, timeout=self._timeout, context=context
                )
            else:
                smtp = _Connection(self._host, self._port, timeout=self._timeout)
        except smtplib.SMTPResponseException as err:  # e.g. "421 too busy" as the greeting
            raise _from_reply(err.smtp_code, err.smtp_error, recipient=False) from None
        except ssl.SSLCertVerificationError as err:
            raise PermanentProviderError(f"smtp: TLS failed ({err.reason})") from None
        except (OSError, smtplib.SMTPException) as err:
            raise RetryableProviderError(f"smtp: cannot connect ({type(err).__name__})") from None
        try:
            if self._tls == "starttls":
                smtp.starttls(context=context)
            if self._username:
                password = self._password.get_secret_value() if self._password else ""
                smtp.login(self._username, password)
        except smtplib.SMTPNotSupportedError as err:
            _quit(smtp)
            reason = f"smtp: the server does not support {_what(err)}"
            raise PermanentProviderError(reason) from None
        except smtplib.SMTPResponseException as err:  # 535 bad credentials, 454 try later
            _quit(smtp)
            raise _from_reply(err.smtp_code, err.smtp_error, recipient=False) from None
        except ssl.SSLCertVerificationError as err:
            _quit(smtp)
            raise PermanentProviderError(f"smtp: TLS failed ({err.reason})") from None
        except (OSError, smtplib.SMTPServerDisconnected) as err:
            _quit(smtp)
            raise RetryableProviderError(f"smtp: connection lost ({type(err).__name__})") from None
        except smtplib.SMTPException as err:  # e.g. no AUTH mechanism we both speak
            _quit(smtp)
            raise PermanentProviderError(f"smtp: {type(err).__name__}: {err}"[:300]) from None
        return smtp

    def _send(self, smtp: _Connection, mail: EmailMessage, message: OutgoingMessage) -> None:
        try:
            smtp.send_message(mail, from_addr=message.from_email, to_addrs=[message.to])
        except smtplib.SMTPRecipientsRefused as err:
            code, reply = next(iter(err.recipients.values()))
            raise _from_reply(code, reply, recipient=True) from None
        except smtplib.SMTPSenderRefused as err:
            raise _from_reply(err.smtp_code, err.smtp_error, recipient=False) from None
        except smtplib.SMTPResponseException as err:  # DATA refused
            raise _from_reply(err.smtp_code, err.smtp_error, recipient=True) from None
        except smtplib.SMTPNotSupportedError as err:  # e.g. an address that needs SMTPUTF8
            raise PermanentProviderError(f"smtp: {err}"[:300]) from None
        except (OSError, smtplib.SMTPException) as err:  # timeout, disconnect, reset
            if smtp.sent_final_dot:
                raise AmbiguousProviderError(
                    f"smtp: no reply after sending the message ({type(err).__name__})"
                ) from None
            raise RetryableProviderError(
                f"smtp: connection lost before the message was sent ({type(err).__name__})"
            ) from None


def build_email(message: OutgoingMessage) -> EmailMessage:
    """multipart/alternative (text, then HTML, both UTF-8) with the message's headers and a
    Message-ID that is the same for every attempt at this journey step.

    ValueError when a header cannot be written as it must be (a line break in it, a
    List-Unsubscribe URL that is not ASCII)."""
    mail = EmailMessage(policy=MAIL_POLICY)
    mail["From"] = Address(display_name=message.from_name or "", addr_spec=message.from_email)
    mail["To"] = message.to
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(message)
    for name, value in message.headers.items():
        if name.lower() not in RESERVED_HEADERS:
            mail[name] = value
    mail["MIME-Version"] = "1.0"
    mail.make_alternative()
    for body, subtype in ((message.text or " ", "plain"), (message.html or "<p></p>", "html")):
        part = MIMEPart(policy=MAIL_POLICY)  # a part, so no MIME-Version of its own
        part.set_content(body, subtype=subtype)
        # typeshed types EmailMessage.attach as taking an EmailMessage; the stdlib takes any
        # part, and a MIMEPart is wanted here (no MIME-Version header of its own).
        mail.attach(part)  # type: ignore[arg-type]
    return mail


def message_id(message: OutgoingMessage) -> str:
    """`<hash of the idempotency key@sender's domain>`: stable across retries, opaque."""
    digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
    domain = message.from_email.rpartition("@")[2] or socket.getfqdn()
    return f"<{digest}@{domain}>"


def _from_reply(code: int, reply: bytes | str, *, recipient: bool) -> ProviderError:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    reason = f"smtp: {code} {' '.join(text.split())[:300]}"
    if 400 <= code < 500:
        return RetryableProviderError(reason, code)
    enhanced = ENHANCED.match(text)
    if enhanced:
        bad_mailbox = bool(BAD_MAILBOX_ENHANCED.match(enhanced.group(1)))
    else:
        bad_mailbox = code in BAD_MAILBOX_CODES
    return PermanentProviderError(reason, code, suppress_recipient=recipient and bad_mailbox)


def _what(err: smtplib.SMTPNotSupportedError) -> str:
    text = str(err).lower()
    return "STARTTLS" if "starttls" in text else "AUTH" if "auth" in text else "a needed command"


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye if the server still listens; the message's fate is already known."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
