"""Closed-loop HTTP/1.1 load: N keep-alive connections, each sending its next request as soon
as the previous answer is read. A plain asyncio-streams client, because on a small machine
the client shares the CPU with the server and every cycle it spends is one the server lacks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_CONNECTION_CLOSE = b"\r\nconnection: close"


class ProtocolError(Exception):
    """The server answered something this client does not read (no Content-Length, ...)."""


@dataclass(frozen=True)
class Target:
    """One endpoint to load: where it is and the exact request to send."""

    name: str
    port: int
    path: str
    headers: dict[str, str] = field(default_factory=dict)

    def request(self) -> bytes:
        lines = [f"GET {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class LoadResult:
    target: str
    seconds: float
    errors: int
    # Of the requests answered 200 within the timed window, sorted.
    latencies_ms: list[float]
    first_error: str | None = None

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @classmethod
    def merged(cls, parts: list[LoadResult]) -> LoadResult:
        """One result from several runs against the same target."""
        return cls(
            target=parts[0].target,
            seconds=sum(part.seconds for part in parts),
            errors=sum(part.errors for part in parts),
            latencies_ms=sorted(ms for part in parts for ms in part.latencies_ms),
            first_error=next((part.first_error for part in parts if part.first_error), None),
        )

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies_ms:
            return float("nan")
        rank = max(1, round(fraction * len(self.latencies_ms)))
        return self.latencies_ms[min(rank, len(self.latencies_ms)) - 1]


@dataclass
class _Window:
    """Shared by the connections of one run: the timed window and what fell into it."""

    starts_at: float
    ends_at: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def error(self, finished: float, reason: str) -> None:
        if self.starts_at <= finished < self.ends_at:
            self.errors += 1
            self.first_error = self.first_error or reason


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Sends one request; returns the status and whether the server keeps the connection."""
    writer.write(request)
    head = await reader.readuntil(_HEADER_END)
    status = int(head[9:12])
    lowered = head.lower()
    start = lowered.find(_CONTENT_LENGTH)
    if start < 0:
        raise ProtocolError(f"response without Content-Length (status {status})")
    start += len(_CONTENT_LENGTH)
    length = int(lowered[start : lowered.index(b"\r\n", start)])
    await reader.readexactly(length)
    return status, _CONNECTION_CLOSE not in lowered


async def _connection(target: Target, window: _Window) -> None:
    request = target.request()
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while (started := time.perf_counter()) < window.ends_at:
        try:
            if streams is None:
                streams = await asyncio.open_connection("127.0.0.1", target.port)
            status, keep_alive = await _exchange(*streams, request)
        except (OSError, asyncio.IncompleteReadError, ValueError, ProtocolError) as exc:
            window.error(time.perf_counter(), f"{type(exc).__name__}: {exc}")
            if streams is not None:
                streams[1].close()
                streams = None
            await asyncio.sleep(0.01)  # a dead server must not turn this into a busy loop
            continue
        finished = time.perf_counter()
        if status != 200:
            window.error(finished, f"HTTP {status}")
        elif window.starts_at <= finished < window.ends_at:
            window.latencies_ms.append((finished - started) * 1000)
        if not keep_alive:
            streams[1].close()
            streams = None
    if streams is not None:
        streams[1].close()


async def run_load(
    target: Target, *, connections: int, warmup: float, duration: float
) -> LoadResult:
    """Loads ``target`` for ``warmup`` + ``duration`` seconds without a pause between them;
    only answers that arrive within the last ``duration`` seconds count."""
    now = time.perf_counter()
    window = _Window(starts_at=now + warmup, ends_at=now + warmup + duration)
    await asyncio.gather(*(_connection(target, window) for _ in range(connections)))
    window.latencies_ms.sort()
    return LoadResult(
        target=target.name,
        seconds=duration,
        errors=window.errors,
        latencies_ms=window.latencies_ms,
        first_error=window.first_error,
    )
