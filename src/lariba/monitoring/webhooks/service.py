"""Use cases of webhooks: managing a project's endpoints and their secrets, reading the
delivery log, replaying a delivery, and ``enqueue_event``, the channel every event
source (resource events by trigger, alerts) delivers through."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.errors import Conflict, InvalidInput, NotFound
from lariba.core.jobs import JobQueue
from lariba.core.pagination import (
    Page,
    PageRequest,
    SequencePageRequest,
    fetch_page,
    fetch_page_newest_first,
)
from lariba.core.secrets import SecretBox
from lariba.core.settings import Environment, Settings
from lariba.identity import audit
from lariba.identity.audit import Actor, RequestContext
from lariba.monitoring.models import Webhook, WebhookAttempt, WebhookDelivery
from lariba.monitoring.webhooks.delivery import SEND_TASK, secret_purpose
from lariba.monitoring.webhooks.schemas import (
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from lariba.monitoring.webhooks.ssrf import UnsafeWebhookUrl, allowed_networks, check_destination

# A runaway script fails loudly instead of fanning every event out a thousand times.
MAX_WEBHOOKS_PER_PROJECT = 20
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Caller:
    """Who manages the webhooks, for the audit log."""

    ctx: RequestContext
    actor: Actor


def generate_secret() -> str:
    return SECRET_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def allow_http(settings: Settings) -> bool:
    if settings.webhook_allow_http is not None:
        return settings.webhook_allow_http
    return settings.env is Environment.development


async def _check_url(settings: Settings, url: str) -> None:
    try:
        await check_destination(
            url,
            allow_http=allow_http(settings),
            allowed=allowed_networks(settings.webhook_allowed_networks),
        )
    except UnsafeWebhookUrl as exc:
        raise InvalidInput("url", str(exc), code=exc.code) from None


async def _get(
    session: AsyncSession, *, project_id: uuid.UUID, webhook_id: uuid.UUID, lock: bool = False
) -> Webhook:
    stmt = select(Webhook).where(Webhook.id == webhook_id, Webhook.project_id == project_id)
    if lock:
        stmt = stmt.with_for_update()
    webhook = await session.scalar(stmt)
    if webhook is None:
        raise NotFound(f"Webhook {webhook_id} not found.", code="webhook_not_found")
    return webhook


def _with_secret(webhook: Webhook, secret: str) -> WebhookWithSecret:
    return WebhookWithSecret(**WebhookOut.of(webhook).model_dump(), secret=secret)


async def create_webhook(
    session: AsyncSession,
    *,
    settings: Settings,
    box: SecretBox,
    caller: Caller,
    project_id: uuid.UUID,
    body: WebhookCreate,
) -> WebhookWithSecret:
    await _check_url(settings, body.url)
    count = await session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.project_id == project_id)
    )
    if (count or 0) >= MAX_WEBHOOKS_PER_PROJECT:
        raise Conflict(
            f"A project has at most {MAX_WEBHOOKS_PER_PROJECT} webhooks; delete one first.",
            code="webhook_limit_reached",
        )
    webhook_id = uuid.uuid4()
    secret = generate_secret()
    webhook = Webhook(
        id=webhook_id,
        project_id=project_id,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        enabled=body.enabled,
        secret_encrypted=box.encrypt(secret.encode(), purpose=secret_purpose(webhook_id)),
    )
    session.add(webhook)
    await session.flush()
    await session.refresh(webhook)
    await _audit(session, caller, "webhook.create", webhook, {"url": webhook.url})
    return _with_secret(webhook, secret)


async def list_webhooks(
    session: AsyncSession, *, project_id: uuid.UUID, page: PageRequest
) -> Page[WebhookOut]:
    rows, next_cursor = await fetch_page(
        session,
        select(Webhook).where(Webhook.project_id == project_id),
        page=page,
        created_at=Webhook.created_at,
        ident=Webhook.id,
    )
    return Page(items=[WebhookOut.of(row[0]) for row in rows], next_cursor=next_cursor)


async def get_webhook(
    session: AsyncSession, *, project_id: uuid.UUID, webhook_id: uuid.UUID
) -> WebhookOut:
    return WebhookOut.of(await _get(session, project_id=project_id, webhook_id=webhook_id))


async def update_webhook(
    session: AsyncSession,
    *,
    settings: Settings,
    caller: Caller,
    project_id: uuid.UUID,
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
) -> WebhookOut:
    webhook = await _get(session, project_id=project_id, webhook_id=webhook_id, lock=True)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in changes:
        await _check_url(settings, changes["url"])
    for name, value in changes.items():
        setattr(webhook, name, value)
    if changes.get("enabled") is False:
        # Switched off means no more traffic, including retries already planned.
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.status == "pending")
            .values(
                status="failed",
                next_attempt_at=None,
                last_error="webhook disabled before delivery",
                updated_at=func.now(),
            )
        )
    webhook.updated_at = func.now()
    await session.flush()
    await session.refresh(webhook)
    await _audit(session, caller, "webhook.update", webhook, changes)
    return WebhookOut.of(webhook)


async def rotate_secret(
    session: AsyncSession,
    *,
    box: SecretBox,
    caller: Caller,
    project_id: uuid.UUID,
    webhook_id: uuid.UUID,
) -> WebhookWithSecret:
    webhook = await _get(session, project_id=project_id, webhook_id=webhook_id, lock=True)
    secret = generate_secret()
    webhook.secret_encrypted = box.encrypt(secret.encode(), purpose=secret_purpose(webhook.id))
    webhook.updated_at = func.now()
    await session.flush()
    await session.refresh(webhook)
    await _audit(session, caller, "webhook.rotate_secret", webhook, None)
    return _with_secret(webhook, secret)


async def delete_webhook(
    session: AsyncSession, *, caller: Caller, project_id: uuid.UUID, webhook_id: uuid.UUID
) -> None:
    webhook = await _get(session, project_id=project_id, webhook_id=webhook_id, lock=True)
    await _audit(session, caller, "webhook.delete", webhook, {"url": webhook.url})
    await session.delete(webhook)
    await session.flush()


async def _attempts_of(
    session: AsyncSession, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    by_delivery: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    if delivery_ids:
        attempts = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.id)
        )
        for attempt in attempts:
            by_delivery[attempt.delivery_id].append(attempt)
    return by_delivery


async def list_deliveries(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    webhook_id: uuid.UUID,
    page: SequencePageRequest,
    status: str | None = None,
) -> Page[DeliveryOut]:
    await _get(session, project_id=project_id, webhook_id=webhook_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    rows, next_cursor = await fetch_page_newest_first(
        session, stmt, page=page, ident=WebhookDelivery.seq
    )
    deliveries: list[WebhookDelivery] = [row[0] for row in rows]
    attempts = await _attempts_of(session, [delivery.id for delivery in deliveries])
    return Page(
        items=[DeliveryOut.of(delivery, attempts[delivery.id]) for delivery in deliveries],
        next_cursor=next_cursor,
    )


async def replay_delivery(
    session: AsyncSession,
    *,
    jobs: JobQueue,
    caller: Caller,
    project_id: uuid.UUID,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
) -> DeliveryOut:
    """Sends the same payload again, under the same delivery id, as a new series of
    attempts (with its own retries)."""
    webhook = await _get(session, project_id=project_id, webhook_id=webhook_id)
    delivery = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id)
        .with_for_update()
    )
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} not found.", code="delivery_not_found")
    if delivery.status == "pending":
        raise Conflict(
            "This delivery is still being sent; replay it once it has succeeded or failed.",
            code="delivery_in_progress",
        )
    if not webhook.enabled:
        raise Conflict("The webhook is disabled; enable it first.", code="webhook_disabled")
    delivery.status = "pending"
    delivery.series += 1
    delivery.attempt_count = 0
    delivery.next_attempt_at = func.now()
    delivery.claim_id = None
    delivery.claimed_until = None
    delivery.last_status_code = None
    delivery.last_error = None
    delivery.updated_at = func.now()
    await session.flush()
    await session.refresh(delivery)
    await jobs.defer(session, SEND_TASK)
    await _audit(
        session,
        caller,
        "webhook.delivery_replay",
        webhook,
        {"delivery_id": str(delivery.id), "series": delivery.series},
    )
    attempts = await _attempts_of(session, [delivery.id])
    return DeliveryOut.of(delivery, attempts[delivery.id])


def event_payload(
    *,
    event_type: str,
    project_id: uuid.UUID,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of an event, in the shape every webhook event has."""
    moment = (occurred_at or datetime.now(UTC)).astimezone(UTC)
    return {
        "type": event_type,
        "occurred_at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "project_id": str(project_id),
        "data": data,
    }


async def enqueue_event(
    session: AsyncSession, *, project_id: uuid.UUID, event_type: str, payload: dict[str, Any]
) -> int:
    """Queues ``payload`` for every enabled webhook of the project that wants
    ``event_type``, in the caller's transaction (nothing is sent if it rolls back);
    returns the number of deliveries. Resource events go through the same SQL function
    by a trigger on ``resource_events``."""
    queued = await session.scalar(
        text(
            "SELECT lariba_enqueue_webhook_event(:project_id, :event_type, CAST(:payload AS jsonb))"
        ),
        {"project_id": project_id, "event_type": event_type, "payload": json.dumps(payload)},
    )
    return int(queued or 0)


async def _audit(
    session: AsyncSession,
    caller: Caller,
    action: str,
    webhook: Webhook,
    details: dict[str, Any] | None,
) -> None:
    await audit.record(
        session,
        ctx=caller.ctx,
        actor=caller.actor,
        action=action,
        target_type="webhook",
        target_id=webhook.id,
        project_id=webhook.project_id,
        details=details,
    )
