"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from lariba.core.errors import InvalidInput
from lariba.core.settings import Settings

MAX_PASSWORD_LENGTH = 256


class PasswordHashing:
    """argon2id with the parameters from settings; hashes made with older parameters are
    reported by ``needs_rehash`` so login can upgrade them."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Verified against when the account does not exist, so an unknown e-mail costs
        # as much time as a wrong password.
        self._decoy = self._hasher.hash("lariba-decoy-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._decoy, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


@cache
def _common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password_policy(
    password: str, *, settings: Settings, email: str | None = None, field: str = "password"
) -> None:
    """Raises InvalidInput naming ``field`` when the password is too short, too long,
    one of the most common passwords, or the user's own e-mail address."""
    if len(password) < settings.password_min_length:
        raise InvalidInput(
            field,
            f"must be at least {settings.password_min_length} characters",
            code="password_too_short",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            field, f"must be at most {MAX_PASSWORD_LENGTH} characters", code="password_too_long"
        )
    lowered = password.lower()
    if lowered in _common_passwords() or (email and lowered in {email, email.split("@")[0]}):
        raise InvalidInput(
            field, "is too common or too easy to guess; choose another", code="password_too_common"
        )
