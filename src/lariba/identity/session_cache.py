"""A per-process memory of sessions recently seen live, so a client calling many times a
second with one access token costs one session lookup per interval, not one per call.

Revocations made by this process forget the user's entries at once; a revocation made by
another replica is seen here within ``ttl_seconds`` (``LARIBA_SESSION_CHECK_CACHE_SECONDS``,
0 turns the cache off).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class LiveSession:
    user_id: uuid.UUID
    email: str
    is_platform_admin: bool
    checked_at: float


class SessionLivenessCache:
    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: OrderedDict[uuid.UUID, LiveSession] = OrderedDict()

    def get(self, session_id: uuid.UUID, *, user_id: uuid.UUID) -> LiveSession | None:
        entry = self._entries.get(session_id)
        if entry is None or entry.user_id != user_id:
            return None
        if time.monotonic() - entry.checked_at >= self._ttl:
            del self._entries[session_id]
            return None
        return entry

    def remember(
        self,
        session_id: uuid.UUID,
        *,
        user_id: uuid.UUID,
        email: str,
        is_platform_admin: bool,
    ) -> None:
        if self._ttl <= 0:
            return
        self._entries[session_id] = LiveSession(
            user_id=user_id,
            email=email,
            is_platform_admin=is_platform_admin,
            checked_at=time.monotonic(),
        )
        self._entries.move_to_end(session_id)
        while len(self._entries) > _MAX_ENTRIES:
            self._entries.popitem(last=False)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """Drops every entry of the user: called whenever their sessions or rights change."""
        for session_id in [s for s, e in self._entries.items() if e.user_id == user_id]:
            del self._entries[session_id]
