"""A database's password: made here, sealed in the request's transaction (core.envelope),
and put in a connection string only for the answers that may show it."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.databases.models import DatabaseCredential
from lariba.cloud.databases.reconcile import envelope, password_purpose
from lariba.cloud.databases.schemas import Credentials
from lariba.cloud.engine.models import Resource
from lariba.cloud.engine.runtime import CloudRuntime
from lariba.providers.databases import DatabaseProvider


def new_password() -> str:
    """32 URL-safe characters (192 bits): usable in a connection URI as is."""
    return secrets.token_urlsafe(24)


def seal(session: AsyncSession, cloud: CloudRuntime, resource: Resource, password: str) -> None:
    """Stores the resource's password, sealed under the current master key."""
    sealed = envelope(cloud.settings).seal(password.encode(), purpose=password_purpose(resource.id))
    credential = DatabaseCredential(resource_id=resource.id)
    credential.store(sealed)
    session.add(credential)


def credentials_view(provider: DatabaseProvider, resource: Resource, password: str) -> Credentials:
    names = provider.names(resource.id)
    observed = resource.observed or {}
    host, port = observed.get("host"), observed.get("port")
    uri = None
    if host and port:
        uri = (
            f"postgresql://{quote(names.username, safe='')}:{quote(password, safe='')}"
            f"@{host}:{port}/{quote(names.database, safe='')}"
        )
    return Credentials(
        username=names.username,
        password=password,
        database=names.database,
        host=host,
        port=port,
        uri=uri,
    )
