"""Request and response bodies of the API key endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from lariba.core.text import NonBlank
from lariba.identity.models import Role

# An API key is meant for automation that someone looks after: it has to be rotated at
# least once a year.
MAX_API_KEY_LIFETIME_DAYS = 365

KeyName = Annotated[str, StringConstraints(min_length=1, max_length=100), NonBlank]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyName = Field(description="What the key is for (1-100 characters), e.g. `ci-deploy`.")
    project_id: uuid.UUID | None = Field(
        default=None,
        description="Limit the key to this project (one you are a member of). "
        "Unset: the key reaches every project you are a member of.",
    )
    role: Literal["admin", "member", "viewer"] | None = Field(
        default=None,
        description="Cap the key at this role: it acts with the lower of this and your own "
        "role in a project. Unset: your own role. A key can never act as `owner`.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the key stops working (with a timezone). Must be in the future and "
        f"at most {MAX_API_KEY_LIFETIME_DAYS} days ahead. Unset: the key does not expire.",
    )


class ApiKeyOut(BaseModel):
    """An API key as listed: never the key itself, only its first characters."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    project_id: uuid.UUID | None
    role: Role | None
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="Last authenticated use, to the minute; null if never used."
    )
    revoked_at: datetime | None = Field(description="Set once the key is revoked.")


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key. Shown only now: store it safely.")
