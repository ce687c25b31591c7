"""Request and response bodies of the platform admin endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator


class AdminUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str | None
    is_active: bool
    is_platform_admin: bool
    mfa_enabled: bool
    created_at: datetime


class AdminUserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_active: StrictBool | None = Field(
        default=None, description="false disables the account and ends all its sessions."
    )
    is_platform_admin: StrictBool | None = Field(default=None, description="Grant or take admin.")


class AdminProjectOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    owner_id: uuid.UUID | None
    owner_email: str | None
    member_count: int
    created_at: datetime
    updated_at: datetime


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor_type: str
    actor_id: uuid.UUID | None
    actor_label: str | None
    action: str
    target_type: str | None
    target_id: str | None
    project_id: uuid.UUID | None
    outcome: str
    client_ip: str | None
    request_id: str | None
    details: dict[str, Any]

    @field_validator("client_ip", mode="before")
    @classmethod
    def _address_as_text(cls, value: Any) -> Any:
        # psycopg reads INET as an ipaddress object.
        return None if value is None else str(value)
