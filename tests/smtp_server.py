"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the tests."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    """What the server received; `hold` seconds before answering DATA (a slow server);
    `rcpt_reply` / `data_reply` to refuse instead (e.g. "550 5.1.1 no such user")."""

    received: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    """Each message's bytes exactly as they came over DATA (what a mailbox provider reads)."""
    hold: float = 0.0
    rcpt_reply: str | None = None
    data_reply: str | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    spool: Path | None = None

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        if self.data_reply:
            return self.data_reply
        mail = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append(mail)  # type: ignore[arg-type]
        self.raw.append(bytes(envelope.original_content or envelope.content))
        if self.spool is not None:
            (self.spool / f"{time.time_ns()}.eml").write_bytes(envelope.content)
        self.arrived.set()
        if self.hold:
            await asyncio.sleep(self.hold)
        return "250 Message accepted for delivery"


class SmtpServer:
    """`with SmtpServer() as smtp:` a server on a free loopback port; `smtp.mailbox`."""

    def __init__(self, mailbox: Mailbox | None = None) -> None:
        self.mailbox = mailbox or Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
