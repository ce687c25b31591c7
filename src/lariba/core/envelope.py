"""Envelope encryption of secrets at rest: each secret is sealed with its own random
AES-256-GCM data key, and the data key is wrapped by a key-encryption key (KEK) derived
from the master key. Rotating the master key re-wraps the data keys only.

A KEK is identified by ``kek_id``, a fingerprint of the master key it comes from, stored
beside every wrapped key: a sealed secret says which master key opens it, so during a
rotation the current and the previous master key are both tried by id, never by guess.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lariba.core.secrets import SecretDecryptionError

_NONCE_BYTES = 12
_DATA_KEY_BYTES = 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode())


def _derive(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)


@dataclass(frozen=True)
class Sealed:
    """A secret at rest: its ciphertext under the data key, and the data key wrapped by
    the KEK ``kek_id``. All three are text, for ordinary columns."""

    kek_id: str
    wrapped_key: str
    ciphertext: str


class KeyEncryptionKey:
    """The key that wraps data keys, derived from one master key."""

    def __init__(self, master_key: bytes) -> None:
        self.id = hashlib.sha256(_derive(master_key, b"lariba-kek-id-v1")).hexdigest()[:16]
        self._aead = AESGCM(_derive(master_key, b"lariba-kek-v1"))

    def wrap(self, data_key: bytes, *, purpose: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        return _b64(nonce + self._aead.encrypt(nonce, data_key, f"kek:{purpose}".encode()))

    def unwrap(self, wrapped: str, *, purpose: str) -> bytes:
        raw = _unb64(wrapped)
        try:
            return self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], f"kek:{purpose}".encode()
            )
        except InvalidTag as exc:
            raise SecretDecryptionError("the data key was not wrapped by this key") from exc


class Envelope:
    """Seals with the current master key; opens with the current or a previous one.
    ``purpose`` (say ``database-password:<resource id>``) is bound to both layers, so a
    sealed secret cannot be replayed for another resource or use."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        self.current = KeyEncryptionKey(current)
        self._keks = {self.current.id: self.current}
        for key in previous:
            kek = KeyEncryptionKey(key)
            self._keks.setdefault(kek.id, kek)

    def seal(self, plaintext: bytes, *, purpose: str) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=_DATA_KEY_BYTES * 8)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(nonce, plaintext, purpose.encode())
        return Sealed(
            kek_id=self.current.id,
            wrapped_key=self.current.wrap(data_key, purpose=purpose),
            ciphertext=_b64(nonce + sealed),
        )

    def _data_key(self, sealed: Sealed, *, purpose: str) -> bytes:
        kek = self._keks.get(sealed.kek_id)
        if kek is None:
            raise SecretDecryptionError(
                f"secret is wrapped by key {sealed.kek_id}, which is neither the current nor "
                "the previous master key"
            )
        return kek.unwrap(sealed.wrapped_key, purpose=purpose)

    def open(self, sealed: Sealed, *, purpose: str) -> bytes:
        data_key = self._data_key(sealed, purpose=purpose)
        raw = _unb64(sealed.ciphertext)
        try:
            return AESGCM(data_key).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode()
            )
        except InvalidTag as exc:
            raise SecretDecryptionError("the secret was altered") from exc

    def rewrap(self, sealed: Sealed, *, purpose: str) -> Sealed:
        """The same secret with its data key wrapped by the current KEK (the ciphertext
        is unchanged: rotation never decrypts the secret itself)."""
        if sealed.kek_id == self.current.id:
            return sealed
        data_key = self._data_key(sealed, purpose=purpose)
        return Sealed(
            kek_id=self.current.id,
            wrapped_key=self.current.wrap(data_key, purpose=purpose),
            ciphertext=sealed.ciphertext,
        )


def envelope_from(current: bytes, previous: str | None) -> Envelope:
    """The envelope of the settings' master key (``LARIBA_SECRET_KEY`` or the key file)
    and ``LARIBA_SECRET_KEY_PREVIOUS``."""
    return Envelope(current, [previous.encode()] if previous else [])
