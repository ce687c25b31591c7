"""How the reconciler makes an instance at the provider match its record."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from lariba.cloud.engine.models import DesiredState, Resource, ResourceStatus
from lariba.cloud.engine.reconciler import (
    Converged,
    Outcome,
    ReconcilePass,
    Requeue,
    failure_reason,
)
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.core.failpoints import failpoint
from lariba.providers.base import (
    ComputeProvider,
    FirewallRule,
    InstanceSpec,
    InstanceState,
    ObservedInstance,
    PermanentProviderError,
    ProviderNotFound,
)

KIND = "instance"

# Provider states that settle by themselves: look again shortly.
_SETTLING = {
    InstanceState.pending: ResourceStatus.pending,
    InstanceState.stopping: ResourceStatus.stopping,
}
_GONE = (InstanceState.terminated, InstanceState.shutting_down)
# A pass that keeps acting (stop, resize, start) looks again at once, a few times.
_STEPS_PER_PASS = 6


def instance_spec(resource: Resource) -> InstanceSpec:
    spec = resource.spec
    return InstanceSpec(
        resource_id=resource.id,
        project_id=resource.project_id,
        name=resource.name,
        region=resource.region,
        size=spec["size"],
        image=spec["image"],
        user_data=spec.get("user_data"),
        ssh_public_key=spec.get("ssh_public_key"),
        firewall=tuple(FirewallRule(**rule) for rule in spec.get("firewall", [])),
        public_ip=bool(spec.get("public_ip", False)),
    )


def observation(instance: ObservedInstance) -> dict[str, Any]:
    """What the API shows of the provider's view."""
    port = instance.extra.get("port")
    return {
        "state": instance.state.value,
        "size": instance.size,
        "private_ip": instance.private_ip,
        "public_ip": instance.public_ip,
        "port": int(port) if port else None,
        "launched_at": instance.launched_at.isoformat() if instance.launched_at else None,
    }


class InstanceKind:
    name = KIND

    async def reconcile(self, work: ReconcilePass) -> Outcome:
        compute = work.runtime.provider.compute
        if work.resource.desired_state == DesiredState.deleted.value:
            return await _delete(work, compute)
        observed = await _ensure_created(work, compute)
        looked_again = False
        for _ in range(_STEPS_PER_PASS):
            if observed is not None and observed.state in _SETTLING and not looked_again:
                # A change often settles within a call or two: look once more before
                # leaving it to a later pass.
                looked_again = True
                observed = await _describe(work, compute)
            outcome = await _step(work, compute, observed)
            if outcome is not None:
                return outcome
            observed = await _describe(work, compute)
        return Requeue(after=work.runtime.settings.reconcile_poll_seconds)

    async def drifted(self, runtime: CloudRuntime) -> Sequence[uuid.UUID]:
        compute = runtime.provider.compute
        async with runtime.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(Resource.id, Resource.region, Resource.status).where(
                        Resource.kind == KIND,
                        Resource.status.in_(
                            (ResourceStatus.running.value, ResourceStatus.stopped.value)
                        ),
                        Resource.provider == runtime.provider.name,
                    )
                )
            ).all()
        drifted: list[uuid.UUID] = []
        for region in {row.region for row in rows}:
            live = {
                instance.resource_id: instance
                for instance in await compute.list_instances(region=region)
            }
            for row in rows:
                if row.region != region:
                    continue
                instance = live.get(row.id)
                if instance is None or instance.state.value != row.status:
                    drifted.append(row.id)
        return drifted


async def _describe(work: ReconcilePass, compute: ComputeProvider) -> ObservedInstance | None:
    provider_id = work.resource.provider_id
    if provider_id is None:
        return None
    try:
        return await compute.describe_instance(region=work.resource.region, provider_id=provider_id)
    except ProviderNotFound:
        return None


async def _ensure_created(work: ReconcilePass, compute: ComputeProvider) -> ObservedInstance | None:
    """The instance at the provider, created if need be, never twice: the intent is
    committed before the create call, and once a create has been attempted, the
    instance is looked up by its resource-id tag before trying again."""
    resource = work.resource
    if resource.provider_id is not None:
        return await _describe(work, compute)
    found = None
    if resource.create_attempts > 0:
        found = await compute.find_instance(region=resource.region, resource_id=resource.id)
    if found is None:
        await work.save(
            create_attempts=resource.create_attempts + 1,
            status=ResourceStatus.provisioning.value,
            progress="creating the instance at the provider",
        )
        found = await compute.create_instance(instance_spec(work.resource))
        failpoint("instance-created")
    work.note(provider_id=found.provider_id, observed=observation(found))
    return found


async def _step(
    work: ReconcilePass, compute: ComputeProvider, observed: ObservedInstance | None
) -> Outcome | None:
    """Acts once towards the desired state. None: it acted, observe again."""
    resource = work.resource
    region, provider_id = resource.region, resource.provider_id
    if observed is None or observed.state in _GONE or provider_id is None:
        gone = PermanentProviderError("terminated outside Lariba", code="InstanceGone")
        await work.save(
            status=ResourceStatus.error.value, reason=failure_reason(gone), event_type="drift"
        )
        raise gone
    work.note(observed=observation(observed))
    if observed.state in _SETTLING:
        await work.save(status=_SETTLING[observed.state].value)
        return Requeue(after=work.runtime.settings.reconcile_poll_seconds)
    state = observed.state.value
    desired = resource.desired_state
    if work.operation is None:
        if state != desired:
            # Stopped or started outside Lariba (or by the instance itself): the provider's
            # word wins, as EC2's console would show it.
            await work.save(
                status=state,
                desired_state=state,
                reason=f"{state} outside Lariba",
                event_type="drift",
            )
            return Converged()
        return Converged(status=state)
    if observed.size is not None and observed.size != resource.spec["size"]:
        if state == InstanceState.running:
            await work.save(status=ResourceStatus.stopping.value, progress="stopping to resize")
            await compute.stop_instance(region=region, provider_id=provider_id)
            return None
        await work.save(progress=f"resizing to {resource.spec['size']}")
        await compute.resize_instance(
            region=region, provider_id=provider_id, size=resource.spec["size"]
        )
        return None
    if desired == DesiredState.running and state == InstanceState.stopped:
        await work.save(status=ResourceStatus.pending.value, progress="starting")
        await compute.start_instance(region=region, provider_id=provider_id)
        return None
    if desired == DesiredState.stopped and state == InstanceState.running:
        await work.save(status=ResourceStatus.stopping.value, progress="stopping")
        await compute.stop_instance(region=region, provider_id=provider_id)
        return None
    if work.operation.type == "reboot" and not work.operation.params.get("rebooted"):
        await work.save(progress="rebooting")
        await compute.reboot_instance(region=region, provider_id=provider_id)
        await work.save(operation_params={"rebooted": True})
        return None
    return Converged(status=state)


async def _delete(work: ReconcilePass, compute: ComputeProvider) -> Outcome:
    resource = work.resource
    provider_id = resource.provider_id
    if provider_id is None and resource.create_attempts > 0:
        found = await compute.find_instance(region=resource.region, resource_id=resource.id)
        provider_id = found.provider_id if found is not None else None
    if provider_id is not None:
        await work.save(progress="terminating the instance")
        await compute.terminate_instance(region=resource.region, provider_id=provider_id)
        try:
            observed = await compute.describe_instance(
                region=resource.region, provider_id=provider_id
            )
        except ProviderNotFound:
            observed = None
        if observed is not None and observed.state not in (InstanceState.terminated,):
            await work.save(status=ResourceStatus.deleting.value, observed=observation(observed))
            return Requeue(after=work.runtime.settings.reconcile_poll_seconds)
    work.note(
        deleted_at=datetime.now(UTC),
        observed={**resource.observed, "state": InstanceState.terminated.value},
    )
    return Converged(status=ResourceStatus.deleted.value)
