"""Payload encryption: what journeys write into Temporal histories is AES-256-GCM ciphertext.

Event properties, profile traits and the context a step renders travel through Temporal as
workflow inputs, signals and activity inputs and results, and every one of them is stored in
the workflow's history, which the Temporal Web UI and CLI show to whoever reaches them. With
JOURNEYS_PAYLOAD_KEYS set, `data_converter(settings)` adds `EncryptionCodec` to the pydantic
data converter, and every client the product creates (`starter.client.connect`: the API, the
worker, `journeys dev`, `journeys replay`, `journeys schedules`) uses it, so the server only
ever stores ciphertext.

    JOURNEYS_PAYLOAD_KEYS="k2025b:<base64 of 32 bytes>,k2025a:<base64 of 32 bytes>"

The first key encrypts; every key decrypts, chosen by the key ID each encrypted payload names in
its metadata: to rotate, put the new key first and keep the old ones until no running journey
(or replayed history) has payloads under them. A payload without the encrypted encoding passes
through decoding unchanged: journeys started before encryption was turned on carry on, and the
recorded histories in tests/histories still replay. A payload under a key ID that is not
configured is `UnknownPayloadKey`, naming the ID.

The format is the one of Temporal's samples (samples-python `encryption`, and the Go and
TypeScript ones): metadata `encoding: binary/encrypted` and `encryption-key-id: <id>`, data the
12-byte nonce followed by AES-GCM's ciphertext and tag of the serialized original payload.

Exceptions:

    PayloadKeyError (ValueError)          JOURNEYS_PAYLOAD_KEYS (or the key file) is malformed
    PayloadDecodeError (ValueError)       an encrypted payload that cannot be decrypted
      UnknownPayloadKey                   ... under a key ID that is not configured
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from starter.settings import Settings

__all__ = [
    "ENCODING",
    "KEY_FILE",
    "KEY_ID",
    "ClearCodec",
    "EncryptionCodec",
    "PayloadDecodeError",
    "PayloadKeyError",
    "UnknownPayloadKey",
    "data_converter",
    "ensure_key_file",
    "generate_key",
    "parse_keys",
    "payload_codec",
    "payload_keys",
]

ENCODING = b"binary/encrypted"
"""The `encoding` metadata of an encrypted payload (as in Temporal's encryption samples)."""
KEY_ID = "encryption-key-id"
"""The metadata naming the key a payload was encrypted with."""
KEY_FILE = "payload_keys"
"""In the data folder: the key `journeys dev` generates when JOURNEYS_PAYLOAD_KEYS is unset."""

NONCE_BYTES = 12
_KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class PayloadKeyError(ValueError):
    """JOURNEYS_PAYLOAD_KEYS is not `key_id:base64(32 bytes)[,...]`. The message names the key
    ID or position, never key material."""


class PayloadDecodeError(ValueError):
    """An encrypted payload could not be decrypted with the configured keys."""


class UnknownPayloadKey(PayloadDecodeError):
    """A payload was encrypted under a key ID that is not in JOURNEYS_PAYLOAD_KEYS: put that key
    back (after the current one) to read it."""

    def __init__(self, key_id: str, known: Sequence[str]) -> None:
        self.key_id = key_id
        self.known = list(known)
        if self.known:
            where = f"which is not in JOURNEYS_PAYLOAD_KEYS ({', '.join(self.known)})"
            remedy = "add that key after the current one to decrypt it"
        else:
            where = "and JOURNEYS_PAYLOAD_KEYS is not set here"
            remedy = "set it, with that key, as on the workers that wrote it"
        super().__init__(f"payload encrypted with key ID {key_id!r}, {where}: {remedy}")


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """`key_id:base64(32 bytes)`, comma-separated, in order (the first encrypts).

    Raises PayloadKeyError for an empty list, a malformed or repeated key ID, or key material
    that is not base64 of exactly 32 bytes (AES-256)."""
    keys: list[tuple[str, bytes]] = []
    for position, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        key_id, colon, material = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not _KEY_ID_PATTERN.match(key_id):
            raise PayloadKeyError(
                f"JOURNEYS_PAYLOAD_KEYS entry {position} is not `key_id:base64key` with a key ID "
                "of letters, digits, '.', '_' or '-' (at most 64)"
            )
        if any(key_id == known for known, _ in keys):
            raise PayloadKeyError(f"JOURNEYS_PAYLOAD_KEYS names key ID {key_id!r} twice")
        keys.append((key_id, _key_bytes(key_id, material.strip())))
    if not keys:
        raise PayloadKeyError("JOURNEYS_PAYLOAD_KEYS holds no key")
    return keys


def _key_bytes(key_id: str, material: str) -> bytes:
    urlsafe = "-" in material or "_" in material  # base64url is taken too
    try:
        key = base64.b64decode(
            material.encode("ascii"), altchars=b"-_" if urlsafe else None, validate=True
        )
    except (binascii.Error, UnicodeEncodeError):
        raise PayloadKeyError(f"key {key_id!r} in JOURNEYS_PAYLOAD_KEYS is not base64") from None
    if len(key) != 32:
        raise PayloadKeyError(
            f"key {key_id!r} in JOURNEYS_PAYLOAD_KEYS is {len(key)} bytes; AES-256 takes 32 "
            "(generate one: python -c 'import os,base64; print(base64.b64encode(os.urandom(32))"
            ".decode())')"
        )
    return key


def generate_key(key_id: str | None = None) -> str:
    """A new `key_id:base64key` entry: 32 random bytes, and a random key ID unless given."""
    key_id = key_id or f"k{secrets.token_hex(4)}"
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode('ascii')}"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM on every payload, with key rotation by key ID.

    Encodes with the first key. Decodes each encrypted payload with the key its metadata names,
    and passes payloads without the encrypted encoding through unchanged (written before
    encryption was turned on). Decryption is also offered synchronously (`decode_sync`) for code
    that reads a history outside an event loop's coroutine (`journeys replay`'s summary)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise PayloadKeyError("EncryptionCodec needs at least one key")
        super().__init__()
        self.key_ids = [key_id for key_id, _ in keys]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self._current = self.key_ids[0]

    @property
    def current_key_id(self) -> str:
        """The key ID new payloads are encrypted under."""
        return self._current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.encode_sync(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.decode_sync(payloads)

    def encode_sync(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._current]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), None)
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self._current.encode("ascii")},
                    data=nonce + sealed,
                )
            )
        return encoded

    def decode_sync(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decode_one(payload) for payload in payloads]

    def _decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was turned on, or not ours to decrypt
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownPayloadKey(key_id, self.key_ids)
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
        except InvalidTag:
            raise PayloadDecodeError(
                f"payload under key ID {key_id!r} does not decrypt: that ID's key material is "
                "not the one it was encrypted with, or the payload was altered"
            ) from None
        return Payload.FromString(plain)


class ClearCodec(PayloadCodec):
    """No keys configured: payloads are written in clear and read as they are, and an encrypted
    one is `UnknownPayloadKey` naming its key ID (not the SDK's "Unknown payload encoding"), so
    a service started without the keys says which setting it lacks."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.encode_sync(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.decode_sync(payloads)

    def encode_sync(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    def decode_sync(self, payloads: Sequence[Payload]) -> list[Payload]:
        for payload in payloads:
            if payload.metadata.get("encoding") == ENCODING:
                key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
                raise UnknownPayloadKey(key_id, [])
        return list(payloads)


def payload_keys(settings: Settings) -> str | None:
    """JOURNEYS_PAYLOAD_KEYS, else the key `journeys dev` keeps in the data folder, else None."""
    if settings.payload_keys is not None:
        return settings.payload_keys.get_secret_value()
    kept = settings.data_dir / KEY_FILE
    return kept.read_text().strip() if kept.is_file() else None


def payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec the settings configure, or None (payloads stored in clear)."""
    keys = payload_keys(settings)
    return EncryptionCodec(parse_keys(keys)) if keys else None


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter with `EncryptionCodec` when keys are configured (else
    `ClearCodec`: payloads in clear, and a clear error for an encrypted one).

    Every client and worker of the product, and the Replayer, use this one converter, so the
    JOURNEYS_PAYLOAD_KEYS setting turns encryption on everywhere at once."""
    codec: PayloadCodec = payload_codec(settings) or ClearCodec()
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


def ensure_key_file(data_dir: Path) -> str:
    """The key kept in `data_dir` (mode 0600), generated on first use: `journeys dev` encrypts
    with it when JOURNEYS_PAYLOAD_KEYS is unset, and reuses it on every later start so the
    journeys in flight stay readable."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start: the key is never readable by others, even briefly.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(generate_key() + "\n")
    path.chmod(0o600)
    text = path.read_text().strip()
    parse_keys(text)  # a damaged file fails here, naming what is wrong
    return text
