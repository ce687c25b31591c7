"""Instance use cases: every change is an operation the reconciler carries out."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Sequence

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine import quotas
from lariba.cloud.engine.errors import InvalidState, ProviderUnavailable
from lariba.cloud.engine.models import (
    DesiredState,
    OperationType,
    Resource,
    ResourceStatus,
)
from lariba.cloud.engine.operations import (
    begin_operation,
    latest_operation,
    refuse_if_busy,
)
from lariba.cloud.engine.resources import (
    audit_change,
    create_resource,
    list_resources,
    load_resource,
    refuse_deleted,
    region_of,
    relabel,
)
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.cloud.engine.schemas import OperationOut
from lariba.cloud.instances.reconcile import KIND
from lariba.cloud.instances.schemas import ConsoleOut, InstanceCreate, InstanceOut
from lariba.core.errors import InvalidInput
from lariba.core.pagination import Page, PageRequest
from lariba.identity.audit import RequestContext
from lariba.identity.authz import ProjectAccess
from lariba.providers.base import ProviderError, TransientProviderError
from lariba.providers.catalog import Size


def _fingerprint(public_key: str) -> str:
    blob = base64.b64decode(public_key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _size(cloud: CloudRuntime, name: str) -> Size:
    size = cloud.catalog.size(name)
    if size is None:
        known = ", ".join(s.name for s in cloud.catalog.sizes)
        raise InvalidInput("size", f"unknown size {name!r}; choose one of {known}")
    return size


async def create_instance(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    body: InstanceCreate,
    ctx: RequestContext,
) -> OperationOut:
    region = region_of(cloud, body.region)
    size = _size(cloud, body.size)
    if cloud.catalog.image(body.image) is None:
        known = ", ".join(i.name for i in cloud.catalog.images)
        raise InvalidInput("image", f"unknown image {body.image!r}; choose one of {known}")
    _resource, operation = await create_resource(
        session,
        cloud=cloud,
        jobs=jobs,
        access=access,
        ctx=ctx,
        kind=KIND,
        name=body.name,
        region=region,
        spec={
            "size": size.name,
            "image": body.image,
            "user_data": body.user_data,
            "ssh_public_key": body.ssh_public_key,
            "ssh_key_fingerprint": (
                _fingerprint(body.ssh_public_key) if body.ssh_public_key else None
            ),
            "firewall": [rule.model_dump() for rule in body.firewall],
            "public_ip": body.public_ip,
        },
        usage={"instances": 1, "vcpus": size.vcpus},
        labels=body.labels,
    )
    return OperationOut.of(operation)


async def load_instance(
    session: AsyncSession, *, access: ProjectAccess, instance_id: uuid.UUID, lock: bool = False
) -> Resource:
    return await load_resource(
        session, access=access, kind=KIND, resource_id=instance_id, lock=lock
    )


async def list_instances(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    page: PageRequest,
    statuses: Sequence[str],
    labels: Sequence[str],
) -> Page[InstanceOut]:
    resources, cursor = await list_resources(
        session, access=access, kind=KIND, page=page, statuses=statuses, labels=labels
    )
    return Page(items=[InstanceOut.of(r) for r in resources], next_cursor=cursor)


async def update_labels(
    session: AsyncSession,
    *,
    access: ProjectAccess,
    instance_id: uuid.UUID,
    labels: dict[str, str],
    ctx: RequestContext,
) -> OperationOut:
    resource = await load_instance(session, access=access, instance_id=instance_id, lock=True)
    operation = await relabel(session, access=access, resource=resource, labels=labels, ctx=ctx)
    return OperationOut.of(operation)


# What each power action needs and sets: allowed desired states, new desired state,
# immediate status.
_POWER_ACTIONS: dict[OperationType, tuple[tuple[str, ...], str, str | None]] = {
    OperationType.start: ((DesiredState.stopped.value,), DesiredState.running.value, "pending"),
    OperationType.stop: ((DesiredState.running.value,), DesiredState.stopped.value, "stopping"),
    OperationType.reboot: ((DesiredState.running.value,), DesiredState.running.value, None),
}


async def power_action(
    session: AsyncSession,
    *,
    jobs: procrastinate.App,
    access: ProjectAccess,
    instance_id: uuid.UUID,
    action: OperationType,
    ctx: RequestContext,
) -> OperationOut:
    resource = await load_instance(session, access=access, instance_id=instance_id, lock=True)
    await refuse_if_busy(session, resource)
    refuse_deleted(resource)
    allowed, desired, status = _POWER_ACTIONS[action]
    if resource.desired_state not in allowed and resource.status != ResourceStatus.error.value:
        raise InvalidState(
            f"Instance {resource.id} is {resource.desired_state}; it cannot {action.value}.",
            extra={"resource_status": resource.status, "desired_state": resource.desired_state},
        )
    if resource.provider_id is None and action is not OperationType.start:
        raise InvalidState(
            f"Instance {resource.id} does not exist at the provider yet; start it or delete it.",
            extra={"resource_status": resource.status},
        )
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=action,
        actor=access.principal.actor,
        status=status,
    )
    resource.desired_state = desired
    await audit_change(
        session, ctx=ctx, access=access, action=f"instance.{action.value}", resource=resource
    )
    return OperationOut.of(operation)


async def resize(
    session: AsyncSession,
    *,
    cloud: CloudRuntime,
    jobs: procrastinate.App,
    access: ProjectAccess,
    instance_id: uuid.UUID,
    size_name: str,
    ctx: RequestContext,
) -> OperationOut:
    """Changes the size; a running instance is stopped, resized and started again."""
    size = _size(cloud, size_name)
    resource = await load_instance(session, access=access, instance_id=instance_id, lock=True)
    await refuse_if_busy(session, resource)
    refuse_deleted(resource)
    if resource.provider_id is None:
        raise InvalidState(
            f"Instance {resource.id} does not exist at the provider; delete it and create "
            "another with the size you want.",
            extra={"resource_status": resource.status},
        )
    if resource.spec["size"] == size.name:
        raise InvalidState(
            f"Instance {resource.id} already has size {size.name}.", code="size_unchanged"
        )
    old_vcpus = int(resource.usage.get("vcpus", 0))
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=OperationType.resize,
        actor=access.principal.actor,
        params={"from_size": resource.spec["size"], "to_size": size.name},
    )
    if size.vcpus > old_vcpus:
        await quotas.reserve(
            session,
            settings=cloud.settings,
            project_id=resource.project_id,
            requested={"vcpus": size.vcpus - old_vcpus},
        )
    resource.spec = {**resource.spec, "size": size.name}
    resource.usage = {**resource.usage, "vcpus": size.vcpus}
    await audit_change(
        session,
        ctx=ctx,
        access=access,
        action="instance.resize",
        resource=resource,
        details={"size": size.name},
    )
    return OperationOut.of(operation)


async def delete_instance(
    session: AsyncSession,
    *,
    jobs: procrastinate.App,
    access: ProjectAccess,
    instance_id: uuid.UUID,
    ctx: RequestContext,
) -> OperationOut:
    """Deletes the instance; an operation still running on it is superseded (a
    create that never finishes must not keep its instance alive). Deleting again answers
    the delete operation already under way or done; a delete that failed is retried."""
    resource = await load_instance(session, access=access, instance_id=instance_id, lock=True)
    if resource.desired_state == DesiredState.deleted.value:
        previous = await latest_operation(session, resource, OperationType.delete)
        if previous is not None and (
            resource.status != ResourceStatus.error.value or previous.status != "failed"
        ):
            return OperationOut.of(previous)
    operation = await begin_operation(
        session,
        jobs=jobs,
        resource=resource,
        type=OperationType.delete,
        actor=access.principal.actor,
        status=ResourceStatus.deleting.value,
        supersede=True,
    )
    resource.desired_state = DesiredState.deleted.value
    await audit_change(session, ctx=ctx, access=access, action="instance.delete", resource=resource)
    return OperationOut.of(operation)


async def console_output(cloud: CloudRuntime, resource: Resource) -> ConsoleOut:
    if resource.provider_id is None or resource.status == ResourceStatus.deleted.value:
        return ConsoleOut(instance_id=resource.id, output="")
    try:
        output = await cloud.provider.compute.console_output(
            region=resource.region, provider_id=resource.provider_id
        )
    except TransientProviderError as exc:
        raise ProviderUnavailable(
            f"The provider did not answer ({exc.code}); try again shortly.",
            headers={"Retry-After": "5"},
        ) from exc
    except ProviderError as exc:
        raise InvalidState(f"The provider refused: {exc.message} ({exc.code})") from exc
    return ConsoleOut(instance_id=resource.id, output=output)
