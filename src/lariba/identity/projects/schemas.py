"""Request and response bodies of projects, memberships, invitations and ownership transfer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from lariba.core.addresses import EmailAddress
from lariba.core.text import NonBlank, Trimmed
from lariba.identity.models import Project, Role

ProjectName = Annotated[str, StringConstraints(min_length=1, max_length=100), NonBlank]
ProjectDescription = Annotated[str, StringConstraints(max_length=1000), Trimmed]


def _refuse_owner(value: Any) -> Any:
    if value == Role.owner.value:
        raise ValueError(
            "owner cannot be assigned; use POST /v1/projects/{project_id}/transfer-ownership"
        )
    return value


# Ownership changes hands only through transfer-ownership, never by assigning the role.
AssignableRole = Annotated[
    Literal[Role.admin, Role.member, Role.viewer], BeforeValidator(_refuse_owner)
]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ProjectName = Field(description="1-100 characters; surrounding spaces are removed.")
    description: ProjectDescription | None = Field(default=None, description="Up to 1000 chars.")


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # null is refused below; the schema says so by not offering it.
    name: ProjectName | SkipJsonSchema[None] = Field(
        default=None, description="New name; omit to keep it."
    )
    description: ProjectDescription | None = Field(
        default=None, description="New description; null clears it, omit to keep it."
    )

    @field_validator("name", mode="before")
    @classmethod
    def _name_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("a project always has a name; omit the field to keep it")
        return value


class ProjectOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    role: Role = Field(description="Your effective role in the project.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, project: Project, role: Role) -> ProjectOut:
        return cls(
            id=project.id,
            name=project.name,
            description=project.description,
            role=role,
            created_at=project.created_at,
            updated_at=project.updated_at,
        )


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    display_name: str | None
    role: Role
    joined_at: datetime


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: AssignableRole = Field(description="admin, member or viewer.")


class TransferOwnershipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID = Field(description="A current member, who becomes the owner.")


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress = Field(description="Who is invited; they accept with this e-mail.")
    role: AssignableRole = Field(default=Role.member, description="Role given on acceptance.")


class InvitationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    project_id: uuid.UUID
    email: str
    role: Role
    invited_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime


class InvitationCreated(InvitationOut):
    """The new invitation. Its token is shown here once, unless it was e-mailed instead."""

    email_sent: bool = Field(description="Whether the invitation was e-mailed to the invitee.")
    token: str | None = Field(
        default=None, description="Secret token, shown once; null when it was e-mailed."
    )
    accept_url: str | None = Field(
        default=None, description="POST here (logged in as the invitee) to accept; shown once."
    )
