"""The provider contract: what the cloud service may ask of any cloud.

Every call is idempotent where the cloud allows it, raises ``TransientProviderError`` for
what is worth retrying (throttling, 5xx, timeouts), ``PermanentProviderError`` for what is
not (the provider refused the request; its reason is kept) and ``ProviderNotFound`` when
the resource is gone. Resources are tagged with Lariba's resource and project ids, so
``find_instance`` can tell whether a create already happened before a crash.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

from lariba.core.metrics import PROVIDER_ERRORS

if TYPE_CHECKING:
    from lariba.providers.databases import DatabaseProvider
    from lariba.providers.metrics import MetricsProvider
    from lariba.providers.storage import StorageProvider

TAG_RESOURCE_ID = "lariba:resource-id"
TAG_PROJECT_ID = "lariba:project-id"


class ProviderError(Exception):
    """Base of provider failures. ``code`` is the provider's own error code when it has
    one (``Throttling``, ``InvalidParameterValue`` ...), ``message`` its explanation."""

    retriable = False

    def __init__(self, message: str, *, code: str = "provider_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        _count(self)


def _count(error: ProviderError) -> None:
    """Counts the error in ``lariba_provider_errors_total``, once per failure. Every
    provider builds its errors through this constructor, so this is the one place that
    sees them all. An error built while handling a failure already counted under the same
    code is that failure translated again (S3's and RDS's not-found codes re-raised as
    ``ProviderNotFound``): not a second error. Errors built outside a provider's package
    (the reconciler's "gave up" summary, a test's fake provider) are not the provider's."""
    handling = sys.exc_info()[1]
    if getattr(handling, _COUNTED, None) == error.code:
        setattr(error, _COUNTED, error.code)
        return
    provider = _provider_building_error()
    if provider is None:
        return
    PROVIDER_ERRORS.labels(provider, error.code, str(error.retriable).lower()).inc()
    setattr(error, _COUNTED, error.code)
    if handling is not None and not isinstance(handling, ProviderError):
        # The SDK's own exception (a botocore ClientError): whatever is built from it next
        # under the same code is the same failure. (An exception type with __slots__ may
        # refuse the mark: then a re-translation counts twice, which beats failing.)
        with contextlib.suppress(AttributeError):
            setattr(handling, _COUNTED, error.code)


_COUNTED = "_lariba_counted"


def _provider_building_error() -> str | None:
    """``aws`` when the code building the error is in ``lariba.providers.aws``."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # a subclass's __init__ calling ours
    parts = str(frame.f_globals.get("__name__", "")).split(".")
    if len(parts) >= 4 and parts[:2] == ["lariba", "providers"]:
        return parts[2]
    return None


class TransientProviderError(ProviderError):
    """Throttling, a 5xx, a timeout, a connection failure: retry with backoff."""

    retriable = True


class PermanentProviderError(ProviderError):
    """The provider refused the request (a 4xx): retrying the same call cannot succeed."""


class ProviderNotFound(PermanentProviderError):
    """The resource does not exist at the provider (deleted, or never created)."""


class InstanceState(StrEnum):
    """What the provider reports, in EC2's words."""

    pending = "pending"
    running = "running"
    stopping = "stopping"
    stopped = "stopped"
    shutting_down = "shutting-down"
    terminated = "terminated"


@dataclass(frozen=True)
class FirewallRule:
    """Inbound traffic to allow. ``protocol`` ``all`` ignores the ports."""

    protocol: Literal["tcp", "udp", "icmp", "all"]
    port_from: int | None
    port_to: int | None
    cidr: str


@dataclass(frozen=True)
class InstanceSpec:
    """What to create. ``size`` and ``image`` are catalog names, which each provider maps to
    its own (an EC2 instance type and AMI, or local resource limits)."""

    resource_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    region: str
    size: str
    image: str
    user_data: str | None = None
    ssh_public_key: str | None = None
    firewall: tuple[FirewallRule, ...] = ()
    public_ip: bool = False


@dataclass(frozen=True)
class ObservedInstance:
    """An instance as the provider sees it now."""

    provider_id: str
    region: str
    state: InstanceState
    size: str | None
    resource_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    private_ip: str | None = None
    public_ip: str | None = None
    launched_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


class ComputeProvider(Protocol):
    """Virtual machines. Instances are addressed by region and the provider's id."""

    async def create_instance(self, spec: InstanceSpec) -> ObservedInstance:
        """Creates the instance, tagged with the spec's resource and project ids, and
        returns as soon as the provider has accepted it (state ``pending`` or later).
        Callers look for an existing instance with ``find_instance`` first."""
        ...

    async def find_instance(
        self, *, region: str, resource_id: uuid.UUID
    ) -> ObservedInstance | None:
        """The live (not terminated) instance tagged with ``resource_id``, if any."""
        ...

    async def describe_instance(self, *, region: str, provider_id: str) -> ObservedInstance:
        """Raises ProviderNotFound when it does not exist (terminated counts as existing
        while the provider still reports it)."""
        ...

    async def start_instance(self, *, region: str, provider_id: str) -> None: ...

    async def stop_instance(self, *, region: str, provider_id: str) -> None: ...

    async def reboot_instance(self, *, region: str, provider_id: str) -> None: ...

    async def resize_instance(self, *, region: str, provider_id: str, size: str) -> None:
        """Changes the size of a stopped instance (PermanentProviderError otherwise)."""
        ...

    async def terminate_instance(self, *, region: str, provider_id: str) -> None:
        """Idempotent: terminating a terminated or missing instance succeeds."""
        ...

    async def console_output(self, *, region: str, provider_id: str) -> str:
        """The instance's console output, most recent last; may be empty."""
        ...

    async def list_instances(self, *, region: str) -> list[ObservedInstance]:
        """Every live instance tagged by Lariba in the region: the provider's own
        inventory, to detect drift, orphans and duplicates."""
        ...


@dataclass(frozen=True)
class Provider:
    """One cloud: its compute, storage, database and metrics parts. A part a deployment does not
    offer is None, and its API answers that the provider does not offer it."""

    name: str
    compute: ComputeProvider
    storage: StorageProvider | None = None
    database: DatabaseProvider | None = None
    metrics: MetricsProvider | None = None
    # Builds now what the first calls would (boto3's clients): a server or worker calls it
    # before it takes work.
    warm_up: Callable[[], None] = field(default=lambda: None)
