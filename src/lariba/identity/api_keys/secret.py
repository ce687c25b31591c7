"""The API key format: ``lrb_`` + 32 random base62 characters + a 6-character checksum.

The prefix makes a leaked key recognisable to secret scanners; the CRC32 checksum lets
the API reject a mistyped or made-up key without a database lookup. Only a SHA-256 of
the key is stored: the key has 190 bits of entropy, so a slow hash would add nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib

PREFIX = "lrb_"
_ALPHABET = string.digits + string.ascii_letters
_BODY_LENGTH = 32
_CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + _BODY_LENGTH + _CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = len(PREFIX) + 6


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_LENGTH)


def generate_api_key() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))
    return PREFIX + body + _checksum(body)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(PREFIX)


def is_well_formed(key: str) -> bool:
    if len(key) != KEY_LENGTH or not key.startswith(PREFIX):
        return False
    body = key[len(PREFIX) : len(PREFIX) + _BODY_LENGTH]
    if any(c not in _ALPHABET for c in body):
        return False
    return secrets.compare_digest(key[-_CHECKSUM_LENGTH:], _checksum(body))


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
