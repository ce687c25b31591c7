"""The cloud service's background work: the reconciler of every resource kind."""

from __future__ import annotations

from lariba.cloud.buckets.reconcile import BucketKind
from lariba.cloud.databases.reconcile import DatabaseKind, DatabaseSnapshotKind
from lariba.cloud.engine.reconciler import ResourceKind, reconciler_tasks
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.cloud.instances.reconcile import InstanceKind
from lariba.core.jobs import TaskRegistrar

KINDS: tuple[ResourceKind, ...] = (
    InstanceKind(),
    DatabaseKind(),
    DatabaseSnapshotKind(),
    BucketKind(),
)


def cloud_tasks(runtime: CloudRuntime) -> TaskRegistrar:
    return reconciler_tasks(runtime, KINDS)
