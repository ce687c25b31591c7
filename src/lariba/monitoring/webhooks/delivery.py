"""The sender of webhook deliveries: claims due deliveries (a lease taken with ``FOR
UPDATE SKIP LOCKED``, so two workers never send one at the same time), POSTs them signed,
logs every attempt, and retries failures with capped exponential backoff and jitter."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import procrastinate
import structlog
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lariba import __version__
from lariba.core.retry import backoff
from lariba.core.secrets import SecretBox, SecretDecryptionError
from lariba.core.settings import Settings
from lariba.monitoring.models import Webhook, WebhookAttempt, WebhookDelivery
from lariba.monitoring.webhooks.ssrf import PinnedTransport, UnsafeWebhookUrl, allowed_networks

log = structlog.get_logger(__name__)

SEND_TASK = "send_webhook_deliveries"
# The one job waiting for the next retry (earlier events bring it forward).
NEXT_SEND_LOCK = "send_webhook_deliveries:next"
BATCH_SIZE = 20
RESPONSE_BODY_CHARS = 1024
# A lease outlives the attempt by this much, for recording it.
LEASE_MARGIN_SECONDS = 30.0


def secret_purpose(webhook_id: uuid.UUID) -> str:
    """SecretBox purpose of a webhook's secret: a ciphertext opens only as its own."""
    return f"webhook-secret:{webhook_id}"


def sign(secret: str, *, timestamp: int, body: bytes) -> str:
    """``Lariba-Webhook-Signature``: HMAC-SHA256 of ``{timestamp}.{body}`` keyed with the
    whole secret (``whsec_...``, as UTF-8), in hex."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Claimed:
    delivery_id: uuid.UUID
    webhook_id: uuid.UUID
    claim_id: uuid.UUID
    url: str
    secret: str | None
    payload: dict[str, Any]
    series: int
    number: int


@dataclass(frozen=True)
class AttemptResult:
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_body: str | None

    @property
    def succeeded(self) -> bool:
        return self.error is None


class WebhookSender:
    """Sends what is due, then queues itself for the next retry."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        boxes: Sequence[SecretBox],
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        # The current master key first, then the previous one during a key rotation.
        self._boxes = tuple(boxes)
        self._allowed = allowed_networks(settings.webhook_allowed_networks)

    def client(self) -> httpx.AsyncClient:
        """Redirects are never followed (a 3xx is a failed attempt); no proxy from the
        environment, which would bypass the address check."""
        return httpx.AsyncClient(
            transport=PinnedTransport(allowed=self._allowed),
            follow_redirects=False,
            trust_env=False,
            timeout=self._settings.webhook_timeout_seconds,
            headers={"User-Agent": f"Lariba-Webhooks/{__version__}"},
        )

    async def run(self, jobs: procrastinate.App) -> int:
        """Sends every due delivery; returns how many attempts were made."""
        sent = 0
        async with self.client() as client:
            while claimed := await self.claim():
                await asyncio.gather(*(self.deliver(client, item) for item in claimed))
                sent += len(claimed)
        await self.schedule_next(jobs)
        return sent

    async def claim(self) -> list[Claimed]:
        lease = timedelta(seconds=self._settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
        claim_id = uuid.uuid4()
        due = (
            select(WebhookDelivery.id)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= func.now(),
                or_(
                    WebhookDelivery.claimed_until.is_(None),
                    WebhookDelivery.claimed_until <= func.now(),
                ),
                Webhook.enabled.is_(True),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(BATCH_SIZE)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
        async with self._sessionmaker.begin() as session:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(due.scalar_subquery()))
                .values(claim_id=claim_id, claimed_until=func.now() + lease)
                .execution_options(synchronize_session=False)
            )
            rows = (
                await session.execute(
                    select(WebhookDelivery, Webhook)
                    .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                    .where(WebhookDelivery.claim_id == claim_id)
                )
            ).all()
        return [
            Claimed(
                delivery_id=delivery.id,
                webhook_id=webhook.id,
                claim_id=claim_id,
                url=webhook.url,
                secret=self._open(webhook),
                payload=delivery.payload,
                series=delivery.series,
                number=delivery.attempt_count + 1,
            )
            for delivery, webhook in rows
        ]

    def _open(self, webhook: Webhook) -> str | None:
        for box in self._boxes:
            try:
                return box.decrypt(
                    webhook.secret_encrypted, purpose=secret_purpose(webhook.id)
                ).decode()
            except SecretDecryptionError:
                continue
        return None

    async def deliver(self, client: httpx.AsyncClient, claimed: Claimed) -> None:
        if claimed.secret is None:
            # Never send unsigned: the attempt fails visibly in the log instead.
            result = AttemptResult(
                started_at=datetime.now(UTC),
                duration_ms=0,
                status_code=None,
                error="the signing secret cannot be decrypted with this server's master "
                "key; rotate the webhook's secret",
                response_body=None,
            )
        else:
            result = await self.attempt(client, claimed, claimed.secret)
        await self.record(claimed, result)

    async def attempt(
        self, client: httpx.AsyncClient, claimed: Claimed, secret: str
    ) -> AttemptResult:
        body = encode_body(claimed.payload)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Lariba-Webhook-Id": str(claimed.delivery_id),
            "Lariba-Webhook-Timestamp": str(timestamp),
            "Lariba-Webhook-Signature": sign(secret, timestamp=timestamp, body=body),
        }
        started_at = datetime.now(UTC)
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        answer: str | None = None
        timeout = self._settings.webhook_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                async with client.stream(
                    "POST", claimed.url, content=body, headers=headers
                ) as response:
                    status_code = response.status_code
                    answer = await _start_of(response)
            if response.is_redirect:
                error = (
                    f"HTTP {status_code}: redirects are not followed "
                    f"(Location: {response.headers.get('location', '')[:200]})"
                )
            elif not response.is_success:
                error = f"HTTP {status_code}"
        except UnsafeWebhookUrl as exc:
            error = f"refused: {exc}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {timeout:g}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        return AttemptResult(
            started_at=started_at,
            duration_ms=round((time.monotonic() - started) * 1000),
            status_code=status_code,
            error=error,
            response_body=answer,
        )

    async def record(self, claimed: Claimed, result: AttemptResult) -> None:
        settings = self._settings
        async with self._sessionmaker.begin() as session:
            delivery = await session.get(WebhookDelivery, claimed.delivery_id, with_for_update=True)
            if delivery is None or delivery.claim_id != claimed.claim_id:
                # Deleted meanwhile, or our lease ran out and another sender took over.
                log.warning("webhook_lease_lost", delivery_id=str(claimed.delivery_id))
                return
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    series=claimed.series,
                    number=claimed.number,
                    started_at=result.started_at,
                    duration_ms=result.duration_ms,
                    succeeded=result.succeeded,
                    status_code=result.status_code,
                    error=result.error,
                    response_body=result.response_body,
                )
            )
            delivery.attempt_count = claimed.number
            delivery.last_status_code = result.status_code
            delivery.last_error = result.error
            delivery.claim_id = None
            delivery.claimed_until = None
            if result.succeeded:
                delivery.status = "succeeded"
                delivery.next_attempt_at = None
            elif claimed.number >= settings.webhook_max_attempts:
                delivery.status = "failed"
                delivery.next_attempt_at = None
            else:
                delay = backoff(
                    claimed.number,
                    base=settings.webhook_retry_base_seconds,
                    cap=settings.webhook_retry_max_seconds,
                )
                # The database's clock: the one the claim compares with.
                delivery.next_attempt_at = func.now() + timedelta(seconds=delay)
        log.info(
            "webhook_attempt",
            delivery_id=str(claimed.delivery_id),
            webhook_id=str(claimed.webhook_id),
            attempt=claimed.number,
            status_code=result.status_code,
            succeeded=result.succeeded,
            duration_ms=result.duration_ms,
        )

    async def schedule_next(self, jobs: procrastinate.App) -> None:
        """Queues a sender for the earliest pending retry. A delivery leased by another
        sender counts from its lease's end, so a busy neighbour is not polled in a loop."""
        async with self._sessionmaker.begin() as session:
            when: datetime | None = await session.scalar(
                select(
                    func.min(
                        func.greatest(
                            WebhookDelivery.next_attempt_at, WebhookDelivery.claimed_until
                        )
                    )
                )
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.status == "pending", Webhook.enabled.is_(True))
            )
            if when is None:
                return
            deferrer = jobs.configure_task(
                SEND_TASK, schedule_at=when, queueing_lock=NEXT_SEND_LOCK
            )
            try:
                await deferrer.defer_async()
            except procrastinate.exceptions.AlreadyEnqueued:
                await session.execute(
                    text(
                        "UPDATE procrastinate_jobs SET scheduled_at = :when "
                        "WHERE queueing_lock = :lock AND status = 'todo' "
                        "AND scheduled_at > :when"
                    ),
                    {"when": when, "lock": NEXT_SEND_LOCK},
                )


async def _start_of(response: httpx.Response) -> str:
    """The first RESPONSE_BODY_CHARS of the answer; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_BODY_CHARS * 4:  # enough bytes for that many characters
            break
    return b"".join(chunks).decode("utf-8", errors="replace")[:RESPONSE_BODY_CHARS]
