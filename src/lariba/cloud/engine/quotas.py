"""Per-project quotas: limits (platform defaults, overridden per project by platform
admins), use (resources at the provider) and reservations (accepted, not yet created).
Checked under a lock on the project row, before anything reaches the provider."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import BigInteger, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import ProjectQuota, Resource, ResourceStatus
from lariba.core.errors import Forbidden
from lariba.core.settings import Settings
from lariba.identity.models import Project


def default_limits(settings: Settings) -> dict[str, int]:
    """Every quota Lariba knows, with the platform's default limit."""
    return {
        "instances": settings.quota_instances,
        "vcpus": settings.quota_vcpus,
        "buckets": settings.quota_buckets,
        "storage_bytes": settings.quota_storage_bytes,
        "databases": settings.quota_databases,
        "database_storage_gb": settings.quota_database_storage_gb,
    }


@dataclass(frozen=True)
class QuotaUse:
    name: str
    limit: int
    in_use: int
    reserved: int

    @property
    def available(self) -> int:
        return max(0, self.limit - self.in_use - self.reserved)


class QuotaExceeded(Forbidden):
    def __init__(self, use: QuotaUse, requested: int) -> None:
        super().__init__(
            f"Quota {use.name} exceeded: the project may use {use.limit}, uses {use.in_use}, "
            f"has {use.reserved} reserved, and this needs {requested} more. Free some up, "
            "or ask a platform admin to raise the quota.",
            code="quota_exceeded",
            extra={
                "quota": use.name,
                "limit": use.limit,
                "in_use": use.in_use,
                "reserved": use.reserved,
                "requested": requested,
            },
        )


async def project_limits(
    session: AsyncSession, *, settings: Settings, project_id: uuid.UUID
) -> dict[str, int]:
    overrides = await session.scalar(
        select(ProjectQuota.limits).where(ProjectQuota.project_id == project_id)
    )
    return _with_overrides(settings, overrides)


def _with_overrides(settings: Settings, overrides: dict[str, int] | None) -> dict[str, int]:
    return {**default_limits(settings), **(overrides or {})}


async def quota_use(
    session: AsyncSession,
    *,
    settings: Settings,
    project_id: uuid.UUID,
    limits: dict[str, int] | None = None,
    excluding: uuid.UUID | None = None,
) -> list[QuotaUse]:
    """Every quota with its use; ``limits`` when the caller has read them already, and
    without the resource ``excluding`` (one the caller is adding)."""
    if limits is None:
        limits = await project_limits(session, settings=settings, project_id=project_id)
    entry = func.jsonb_each_text(Resource.usage).table_valued("key", "value").alias("entry")
    # bigint: storage_bytes passes 2**31 at 2 GiB.
    amount = cast(entry.c.value, BigInteger)
    rows = await session.execute(
        select(
            entry.c.key,
            func.coalesce(func.sum(amount).filter(Resource.provider_id.is_not(None)), 0),
            func.coalesce(func.sum(amount).filter(Resource.provider_id.is_(None)), 0),
        )
        .select_from(Resource)
        .join(entry, literal_column("true"))
        .where(
            Resource.project_id == project_id,
            Resource.status != ResourceStatus.deleted.value,
            *([Resource.id != excluding] if excluding is not None else []),
        )
        .group_by(entry.c.key)
    )
    counted = {row[0]: (int(row[1]), int(row[2])) for row in rows}
    return [
        QuotaUse(
            name=name,
            limit=limit,
            in_use=counted.get(name, (0, 0))[0],
            reserved=counted.get(name, (0, 0))[1],
        )
        for name, limit in limits.items()
    ]


async def reserve(
    session: AsyncSession,
    *,
    settings: Settings,
    project_id: uuid.UUID,
    requested: dict[str, int],
    adding: uuid.UUID | None = None,
) -> None:
    """Refuses (403 ``quota_exceeded``) unless ``requested`` fits in what is left. Locks
    the project row until the transaction ends, so concurrent requests of one project
    are counted one at a time; the caller writes the resource's ``usage`` in the same
    transaction. ``adding``: the new resource whose ``usage`` is ``requested``, already
    written by this transaction — checking last holds the lock for less time.

    The lock is ``FOR NO KEY UPDATE``: it queues behind other creates' locks but not
    behind the key-share lock a resource's insert takes on its project (its foreign key),
    so two creates that each inserted first cannot deadlock."""
    # The lock and the project's own limits in one statement: it is on every create.
    overrides = (
        await session.execute(
            select(ProjectQuota.limits)
            .select_from(Project)
            .outerjoin(ProjectQuota, ProjectQuota.project_id == Project.id)
            .where(Project.id == project_id)
            .with_for_update(of=Project, key_share=True)
        )
    ).scalar()
    limits = _with_overrides(settings, overrides)
    uses = await quota_use(
        session, settings=settings, project_id=project_id, limits=limits, excluding=adding
    )
    for use in uses:
        wanted = requested.get(use.name, 0)
        if wanted > 0 and use.in_use + use.reserved + wanted > use.limit:
            raise QuotaExceeded(use, wanted)


async def set_limits(
    session: AsyncSession, *, project_id: uuid.UUID, limits: dict[str, int]
) -> None:
    current = await session.scalar(
        select(ProjectQuota.limits).where(ProjectQuota.project_id == project_id)
    )
    merged = {**(current or {}), **limits}
    await session.execute(
        insert(ProjectQuota)
        .values(project_id=project_id, limits=merged)
        .on_conflict_do_update(
            index_elements=[ProjectQuota.project_id],
            set_={"limits": merged, "updated_at": func.now()},
        )
    )
