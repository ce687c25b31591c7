"""Request and response bodies of the webhook endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from lariba.monitoring.models import Webhook, WebhookAttempt, WebhookDelivery
from lariba.monitoring.webhooks.ssrf import MAX_URL_LENGTH

# The event types Lariba sends.
EVENT_TYPES = (
    "resource.status_changed",
    "resource.drift",
    "operation.pending",
    "operation.running",
    "operation.succeeded",
    "operation.failed",
    "budget.threshold_crossed",
    "alert.triggered",
    "alert.resolved",
)
# Patterns: a whole family, or everything.
EVENT_FAMILIES = ("resource", "operation", "budget", "alert")
MAX_EVENT_TYPES = 20

Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where events are POSTed: https:// (http:// only where the operator "
        "allows it), no credentials, resolving to public addresses only.",
        examples=["https://hooks.example.com/lariba"],
    ),
]
Description = Annotated[str, Field(max_length=200, description="A note for people.")]
EventTypes = Annotated[
    list[str],
    Field(
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description="Events to send: exact types (`resource.status_changed`, "
        "`resource.drift`, `operation.pending`, `operation.running`, `operation.succeeded`, "
        "`operation.failed`, `budget.threshold_crossed`, `alert.triggered`, "
        "`alert.resolved`), a family (`resource.*`, `operation.*`, `budget.*`, `alert.*`) "
        "or `*` for all.",
        examples=[["resource.status_changed"]],
        json_schema_extra={
            "items": {
                "type": "string",
                "enum": [*EVENT_TYPES, *(f"{family}.*" for family in EVENT_FAMILIES), "*"],
            }
        },
    ),
]


def _check_event_types(values: list[str]) -> list[str]:
    for value in values:
        if value == "*" or value in EVENT_TYPES:
            continue
        family, _, rest = value.partition(".")
        if rest == "*" and family in EVENT_FAMILIES:
            continue
        known = ", ".join((*EVENT_TYPES, *(f"{f}.*" for f in EVENT_FAMILIES), "*"))
        raise ValueError(f"unknown event type {value!r}; one of {known}")
    return sorted(set(values), key=values.index)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    description: Description = ""
    event_types: EventTypes
    enabled: StrictBool = True

    @field_validator("event_types")
    @classmethod
    def _known_event_types(cls, values: list[str]) -> list[str]:
        return _check_event_types(values)


class WebhookUpdate(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    description: Description | None = None
    event_types: EventTypes | None = None
    enabled: StrictBool | None = None

    @field_validator("event_types")
    @classmethod
    def _known_event_types(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _check_event_types(values)


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    project_id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookOut:
        return cls.model_validate(webhook)


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_...`). Shown only in this response: keep it "
        "where your receiver reads it."
    )


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    series: int = Field(description="1 for the first sending, +1 per replay.")
    number: int = Field(description="Attempt number within its series, from 1.")
    started_at: datetime
    duration_ms: int
    succeeded: bool
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered.")
    error: str | None = Field(description="Why the attempt failed, when it did.")
    response_body: str | None = Field(description="The start of the receiver's answer.")


class DeliveryOut(BaseModel):
    id: uuid.UUID = Field(description="Sent as `Lariba-Webhook-Id`, the same on every attempt.")
    webhook_id: uuid.UUID
    event_type: str
    status: str = Field(description="pending, succeeded or failed.")
    payload: dict[str, Any] = Field(description="The JSON body POSTed.")
    series: int
    attempt_count: int = Field(description="Attempts made in the current series.")
    next_attempt_at: datetime | None = Field(description="When a pending delivery is sent next.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptOut] = Field(description="Every attempt, oldest first.")

    @classmethod
    def of(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
        return cls(
            id=delivery.id,
            webhook_id=delivery.webhook_id,
            event_type=delivery.event_type,
            status=delivery.status,
            payload=delivery.payload,
            series=delivery.series,
            attempt_count=delivery.attempt_count,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
            attempts=[AttemptOut.model_validate(attempt) for attempt in attempts],
        )
