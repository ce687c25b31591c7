"""Envelope encryption: a data key per secret, wrapped by a key derived from the master key."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from lariba.core.envelope import Envelope
from lariba.core.secrets import SecretDecryptionError

OLD = b"old-master-key-0123456789abcdefghijklmnop"
NEW = b"new-master-key-0123456789abcdefghijklmnop"


def test_seal_and_open_round_trip_with_a_fresh_data_key_each_time() -> None:
    envelope = Envelope(OLD)
    first = envelope.seal(b"hunter2", purpose="database-password:1")
    second = envelope.seal(b"hunter2", purpose="database-password:1")
    assert envelope.open(first, purpose="database-password:1") == b"hunter2"
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext != second.ciphertext
    assert "hunter2" not in first.ciphertext


def test_purpose_binds_the_secret_to_its_use() -> None:
    envelope = Envelope(OLD)
    sealed = envelope.seal(b"hunter2", purpose="database-password:1")
    with pytest.raises(SecretDecryptionError):
        envelope.open(sealed, purpose="database-password:2")


def test_tampering_is_detected() -> None:
    envelope = Envelope(OLD)
    sealed = envelope.seal(b"hunter2", purpose="p")
    raw = bytearray(base64.urlsafe_b64decode(sealed.ciphertext))
    raw[-1] ^= 1
    altered = dataclasses.replace(sealed, ciphertext=base64.urlsafe_b64encode(raw).decode())
    with pytest.raises(SecretDecryptionError, match="altered"):
        envelope.open(altered, purpose="p")


def test_rotation_rewraps_the_data_key_and_keeps_the_ciphertext() -> None:
    sealed = Envelope(OLD).seal(b"hunter2", purpose="p")
    with pytest.raises(SecretDecryptionError, match="neither the current nor"):
        Envelope(NEW).open(sealed, purpose="p")
    rotating = Envelope(NEW, [OLD])
    assert rotating.open(sealed, purpose="p") == b"hunter2"
    rewrapped = rotating.rewrap(sealed, purpose="p")
    assert rewrapped.kek_id == Envelope(NEW).current.id != sealed.kek_id
    assert rewrapped.ciphertext == sealed.ciphertext
    assert Envelope(NEW).open(rewrapped, purpose="p") == b"hunter2"
    assert rotating.rewrap(rewrapped, purpose="p") is rewrapped
