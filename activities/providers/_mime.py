"""Writing an email so that mailbox providers read what we meant: the SMTP provider's policy.

Python's `email.policy.SMTP` folds every header at 78 characters and turns a word it cannot
fold into RFC 2047 encoded-words. `List-Unsubscribe: <https://…/u/long-token>` then goes out
as `=?utf-8?q?=3Chttps=3A//…?=`, which Gmail and Yahoo do not read as a URL, so one-click
unsubscribe silently fails. A larger `max_line_length` for the whole message would avoid that
but lets Python write encoded-words far longer than RFC 2047's 75 characters; and even at 78 it
writes 76-character ones on 77-character lines, and leaves text that looks like an
encoded-word ("=?utf-8?q?…?=") plain, so readers decode it into something else.

`MAIL_POLICY` therefore writes:

- `List-*` (RFC 2369's angle-bracketed URLs, RFC 8058's List-Unsubscribe-Post) exactly as
  given: printable ASCII only, folded only before whitespace already in the value (unfolding
  gives it back byte for byte), no line over RFC 5322's 998 characters, never encoded.
- Subject: printable ASCII as it is, folded the same way; anything else (non-ASCII, or text
  containing "=?") whole as UTF-8 encoded-words (Q, or B when that takes fewer), each at most
  75 characters and holding whole characters, on lines of at most 76 (RFC 2047 section 2),
  which decode back exactly.
- From: a display name that needs it with its plain ASCII words as they are and the rest as
  such encoded-words; the address itself always plain.
- Bodies in 7 bits (quoted-printable where needed): smtplib does not announce BODY=8BITMIME,
  so 8-bit bytes would depend on the relay's goodwill (RFC 6152).
- Every other header as `policy.SMTP` writes it.
"""

from __future__ import annotations

import base64
import re
import string
from collections.abc import Callable
from email.headerregistry import Address
from email.policy import EmailPolicy
from typing import Any

SOFT_LIMIT = 78
"""RFC 5322 2.1.1: a line SHOULD be at most 78 characters..."""
HARD_LIMIT = 998
"""...and MUST be at most 998."""
WORD_LIMIT = 75
"""RFC 2047 section 2: an encoded-word is at most 75 characters..."""
ENCODED_LINE_LIMIT = 76
"""...and a line holding one at most 76."""

VERBATIM = frozenset(
    {
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-help",
        "list-subscribe",
        "list-post",
        "list-owner",
        "list-archive",
    }
)
"""Headers whose values are URLs or keywords, written as given (RFC 2369, RFC 8058)."""

_LITERAL = frozenset(string.ascii_letters + string.digits + "!*+-/")
"""Characters a Q encoded-word may carry as themselves anywhere, phrases included (RFC 2047
5(3)); every other octet is written =XX, and a space as "_"."""
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
"""RFC 5322 atext: a display-name word made only of these is written as it is."""
_CHUNK = re.compile(r"[ \t]*[^ \t]+|[ \t]+")
"""A word with the whitespace before it: the places a line may break (before the whitespace)."""
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def printable(text: str) -> bool:
    """Printable ASCII, tabs allowed: what a header may carry as it is."""
    return all(" " <= c <= "~" or c == "\t" for c in text)


def plain(text: str) -> bool:
    """Printable ASCII that no reader could take for an encoded-word."""
    return printable(text) and "=?" not in text


def fold_as_is(name: str, value: str, linesep: str = "\r\n") -> str | None:
    """`Name: value`, broken into lines only before whitespace the value already has (so
    unfolding restores it exactly), at 78 characters where it can; None when a word is too
    long for any line (998)."""
    lines: list[str] = []
    line = f"{name}:"
    for i, chunk in enumerate(_CHUNK.findall(" " + value)):
        if i and chunk.strip() and len(line) + len(chunk) > SOFT_LIMIT:
            lines.append(line)
            line = chunk  # begins with whitespace: a continuation line
        else:
            line += chunk
    lines.append(line)
    if any(len(line) > HARD_LIMIT for line in lines):
        return None
    return linesep.join(lines) + linesep


def encoded_words(text: str, first: int = WORD_LIMIT) -> list[str]:
    """`text` as UTF-8 encoded-words, the first at most `first` characters long, the rest at
    most 75, none splitting a character: in Q or in B, whichever needs fewer words (Q when
    even). Readers drop the whitespace between adjacent encoded-words (RFC 2047 6.2), so the
    text's own spaces travel inside them."""
    q, b = _split(text, first, _q), _split(text, first, _b)
    return b if len(b) < len(q) else q


def _q(octets: bytes) -> str:
    return "".join(
        "_" if o == 0x20 else chr(o) if chr(o) in _LITERAL else f"={o:02X}" for o in octets
    )


def _b(octets: bytes) -> str:
    return base64.b64encode(octets).decode("ascii")


def _split(text: str, first: int, encode: Callable[[bytes], str]) -> list[str]:
    prefix = "=?utf-8?q?" if encode is _q else "=?utf-8?b?"
    words: list[str] = []
    room = max(first, WORD_LIMIT // 2)
    current = b""
    for char in text:
        octets = char.encode("utf-8", "replace")  # a lone surrogate has no UTF-8: "?"
        if current and len(prefix) + len(encode(current + octets)) + 2 > room:
            words.append(f"{prefix}{encode(current)}?=")
            current, room = b"", WORD_LIMIT
        current += octets
    words.append(f"{prefix}{encode(current)}?=")
    return words


def fold_encoded(name: str, words: list[str], linesep: str = "\r\n") -> str:
    """`Name: word word …`, a new line wherever the next word would pass 76 characters."""
    lines: list[str] = []
    line = f"{name}:"
    for i, word in enumerate(words):
        if i and len(line) + 1 + len(word) > ENCODED_LINE_LIMIT:
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    lines.append(line)
    return linesep.join(lines) + linesep


def write_text(name: str, text: str, linesep: str = "\r\n") -> str:
    """An unstructured header (Subject): as it is when it can be, else encoded-words."""
    if plain(text):
        folded = fold_as_is(name, text, linesep)
        if folded is not None:
            return folded
    first = ENCODED_LINE_LIMIT - len(name) - 2
    return fold_encoded(name, encoded_words(text, first), linesep)


def write_mailbox(name: str, value: Any, linesep: str = "\r\n") -> str | None:
    """One `Display Name <address>` whose name needs encoding; None to leave it to Python
    (no name, a plain one it quotes as needed, several addresses, a non-ASCII address)."""
    addresses: tuple[Address, ...] = getattr(value, "addresses", ())
    if len(addresses) != 1:
        return None
    [address] = addresses
    if not address.display_name or plain(address.display_name):
        return None
    if not address.addr_spec.isascii():
        return None
    words = phrase_words(address.display_name, ENCODED_LINE_LIMIT - len(name) - 2)
    return fold_encoded(name, [*words, f"<{address.addr_spec}>"], linesep)


def phrase_words(text: str, first: int) -> list[str]:
    """A display name as the words to write: an atom (plain ASCII word) as it is, each run of
    other words as encoded-words holding their spaces. Encoded-words then meet only where a
    run is too long for one (over about 45 UTF-8 bytes): some readers, Python's own address
    parser among them, keep the space between two encoded-words, which RFC 2047 6.2 drops."""
    if not text.strip() or "  " in text or text != text.strip():
        return encoded_words(text, first)  # spacing only encoded-words can carry exactly
    words: list[str] = []
    run: list[str] = []
    for word in text.split(" "):
        if all(c in _ATEXT for c in word) and "=?" not in word:
            if run:
                words += encoded_words(" ".join(run), WORD_LIMIT if words else first)
                run = []
            words.append(word)
        else:
            run.append(word)
    if run:
        words += encoded_words(" ".join(run), WORD_LIMIT if words else first)
    return words


def check_verbatim(name: str, value: str) -> None:
    """A `List-*` value we can write as given, or ValueError saying why not."""
    if not printable(value):
        raise ValueError(
            f"{name} must be printable ASCII on one line (percent-encode a URL's non-ASCII "
            "characters, use punycode for its host)"
        )
    if fold_as_is(name, value) is None:
        raise ValueError(f"{name} has a word too long for a header line (998 characters)")


class MailPolicy(EmailPolicy):
    """`policy.SMTP` that writes the headers above as the module docstring says."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        key = name.lower()
        if key in VERBATIM and isinstance(value, str):
            check_verbatim(name, value)
            return (name, value)  # kept as given: never parsed, so never re-encoded
        if key == "subject" and isinstance(value, str):
            if len(value.splitlines()) > 1:  # as EmailPolicy: no header injection
                raise ValueError("Header values may not contain linefeed or carriage return")
            return (name, value)  # as given: parsing would decode text that looks encoded
        return super().header_store_parse(name, value)

    def fold(self, name: str, value: Any) -> str:
        written = self._write(name, value)
        return written if written is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        written = self._write(name, value)
        if written is not None:
            return written.encode("ascii")
        return super().fold_binary(name, value)

    def _write(self, name: str, value: Any) -> str | None:
        key = name.lower()
        if key in VERBATIM:
            text = _FOLD.sub("", str(value))
            return fold_as_is(name, text, self.linesep) if printable(text) else None
        if key == "subject":
            return write_text(name, _FOLD.sub("", str(value)), self.linesep)
        if key == "from":
            return write_mailbox(name, value, self.linesep)
        return None


MAIL_POLICY = MailPolicy(linesep="\r\n", cte_type="7bit")
"""The policy every message the SMTP provider sends is built and written with."""
