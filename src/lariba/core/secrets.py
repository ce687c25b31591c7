"""Encryption of secrets at rest (signing keys, TOTP seeds) with AES-256-GCM."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"


class SecretDecryptionError(Exception):
    """The ciphertext was not made with this master key, or was altered."""


class SecretBox:
    """Encrypts short secrets with a key derived from the master key.

    ``purpose`` is bound as associated data, so a ciphertext stored for one purpose
    (say a TOTP seed) cannot be replayed as another (say a signing key).
    """

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"lariba-secrets-v1").derive(
                master_key
            )
        )

    def encrypt(self, plaintext: bytes, *, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, purpose.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, purpose: str) -> bytes:
        version, _, body = token.partition(".")
        if version != _VERSION:
            raise SecretDecryptionError("unknown ciphertext version")
        raw = base64.urlsafe_b64decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], purpose.encode())
        except InvalidTag as exc:
            raise SecretDecryptionError("secret cannot be decrypted with this master key") from exc
