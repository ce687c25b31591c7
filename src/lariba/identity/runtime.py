"""What the identity service keeps per process: its key ring, password hasher and secret box."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba.core.secrets import SecretBox
from lariba.core.settings import Settings
from lariba.identity.passwords import PasswordHashing
from lariba.identity.session_cache import SessionLivenessCache
from lariba.identity.tokens import KeyRing


@dataclass
class IdentityRuntime:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    passwords: PasswordHashing
    keyring: KeyRing
    live_sessions: SessionLivenessCache

    @classmethod
    def create(
        cls, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> IdentityRuntime:
        box = SecretBox(settings.master_key)
        return cls(
            settings=settings,
            sessionmaker=sessionmaker,
            box=box,
            passwords=PasswordHashing(settings),
            keyring=KeyRing(settings=settings, box=box, sessionmaker=sessionmaker),
            live_sessions=SessionLivenessCache(settings.session_check_cache_seconds),
        )


async def identity_runtime(request: Request) -> IdentityRuntime:
    runtime: IdentityRuntime = request.app.state.identity
    return runtime


Runtime = Annotated[IdentityRuntime, Depends(identity_runtime)]
