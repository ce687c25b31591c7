"""The metrics of each resource kind: their names, units, default aggregate and which
providers report them (docs/metrics.md describes each one's source)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lariba.providers.metrics import CPU_PERCENT, MEMORY_BYTES, NETWORK_IN_BYTES, NETWORK_OUT_BYTES

# How a step's samples become one value.
Aggregate = Literal["avg", "min", "max", "sum", "count"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    unit: str
    description: str
    # Gauges average over a step; per-period amounts (bytes sent) add up.
    aggregate: Aggregate
    providers: frozenset[str]


BOTH = frozenset({"aws", "local"})

METRICS: tuple[Metric, ...] = (
    Metric(
        CPU_PERCENT,
        "instance",
        "percent",
        "CPU used, in percent of the instance's vCPUs.",
        "avg",
        BOTH,
    ),
    Metric(
        MEMORY_BYTES,
        "instance",
        "bytes",
        "Memory in use: resident memory of the instance's processes (local); the CloudWatch "
        "agent's mem_used (aws, when the agent is installed).",
        "avg",
        BOTH,
    ),
    Metric(
        NETWORK_IN_BYTES,
        "instance",
        "bytes",
        "Bytes received during the sample's period (CloudWatch NetworkIn).",
        "sum",
        frozenset({"aws"}),
    ),
    Metric(
        NETWORK_OUT_BYTES,
        "instance",
        "bytes",
        "Bytes sent during the sample's period (CloudWatch NetworkOut).",
        "sum",
        frozenset({"aws"}),
    ),
    Metric("storage_bytes", "bucket", "bytes", "Bytes stored in the bucket.", "avg", BOTH),
    Metric("object_count", "bucket", "objects", "Objects in the bucket.", "avg", BOTH),
    Metric("size_bytes", "database", "bytes", "The database's size on disk.", "avg", BOTH),
    Metric("connections", "database", "connections", "Open connections.", "avg", BOTH),
)


def metrics_of(kind: str) -> list[Metric]:
    return [m for m in METRICS if m.kind == kind]


def metric(kind: str, name: str) -> Metric | None:
    return next((m for m in METRICS if m.kind == kind and m.name == name), None)
