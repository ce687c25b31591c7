"""How long to wait before trying again."""

from __future__ import annotations

import random


def backoff(retry: int, *, base: float, cap: float) -> float:
    """Capped exponential backoff with "equal jitter": between half and all of
    ``min(cap, base * 2**(retry-1))``, so retries spread out yet never hammer."""
    ceiling: float = min(cap, base * 2.0 ** (retry - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not a secret
