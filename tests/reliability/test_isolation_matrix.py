"""Tenant isolation over resource ids, generated from the route table: project A has one
real resource of every kind, and a member of project B calls every route that takes a
resource id with A's ids, under A's project id and under B's own (the classic IDOR). Every
call is 404 and A's rows, and B's, are unchanged.

A route with an id segment this module cannot fill fails the coverage test, so a new route
cannot slip past the matrix: add its id to ``_ids`` below.

(Routes with only a project id are covered by tests/identity/test_tenant_isolation.py.)"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.core.db import Base, create_engine, create_sessionmaker
from lariba.core.settings import Settings
from lariba.identity.models import ApiKey, Project
from lariba.models import import_all_models
from lariba.monitoring.models import WebhookAttempt, WebhookDelivery
from lariba.monitoring.webhooks.service import enqueue_event, event_payload
from lariba.providers.base import Provider
from lariba.providers.local import local_provider
from lariba.providers.local.database_server import DatabaseServer
from tests.fixtures.app import BASE_URL
from tests.fixtures.buckets import create_bucket, objects_url, put_object
from tests.fixtures.cloud import (
    cloud_app,
    cloud_settings,
    create_instance,
    wait_for_operation,
)
from tests.fixtures.database import _admin_execute, database_url
from tests.fixtures.databases import create_database, local_databases, succeeded
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.routes import Operation, operations
from tests.identity.test_invitations import add_member

pytestmark = pytest.mark.asyncio(loop_scope="module")

import_all_models()
# Tables whose rows hang off a project through another table.
_DATABASE_CREDENTIALS = Base.metadata.tables["database_credentials"]
_RESOURCES = Base.metadata.tables["resources"]


def _ordered(table: Table) -> list[Any]:
    return list(table.primary_key.columns) or list(table.columns)


async def project_rows(
    db: AsyncSession, project_id: object, *, request_counts: bool = True
) -> dict[str, list[Any]]:
    """Every row that belongs to the project, table by table: the project itself, every
    table with a ``project_id``, database credentials and webhook attempts. Without
    ``request_counts`` when the project's own members call it: their requests, even
    refused ones, are the project's usage."""
    pid = uuid.UUID(str(project_id))
    out: dict[str, list[Any]] = {}
    for table in Base.metadata.sorted_tables:
        if table.name == "usage_request_counts" and not request_counts:
            continue
        if "project_id" in table.columns:
            where = table.c.project_id == pid
        elif table is Project.__table__:
            where = table.c.id == pid
        elif table is _DATABASE_CREDENTIALS:
            where = table.c.resource_id.in_(
                select(_RESOURCES.c.id).where(_RESOURCES.c.project_id == pid)
            )
        elif table is WebhookAttempt.__table__:
            where = table.c.delivery_id.in_(
                select(WebhookDelivery.id).where(WebhookDelivery.project_id == pid)
            )
        else:
            continue
        rows = await db.execute(select(table).where(where).order_by(*_ordered(table)))
        out[table.name] = list(rows)
    await db.rollback()
    return out


@dataclasses.dataclass
class World:
    """Project A (alice's, with carol as member and a pending invitation) with one
    resource of each kind; project B (bob's) with a bucket and a webhook of its own."""

    app: FastAPI
    client: httpx.AsyncClient
    db: AsyncSession
    data_dir: Path
    alice: TestUser
    bob: TestUser
    a: str
    b: str
    ids: dict[str, str]
    b_ids: dict[str, str]
    invitation_token: str


@pytest.fixture(scope="module")
def matrix_database_url(postgres_server_url: str, template_database: str) -> Iterator[str]:
    """One database for the module: the resources are made once and shared by its tests."""
    name = f"lariba_matrix_{uuid.uuid4().hex[:12]}"
    _admin_execute(
        postgres_server_url,
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_database)
        ),
    )
    yield database_url(postgres_server_url, name)
    _admin_execute(
        postgres_server_url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
    )


def _provider(settings: Settings, server: DatabaseServer) -> Provider:
    # Databases on the run's shared server, the rest as a deployment's local provider.
    return dataclasses.replace(
        local_provider(settings), database=local_databases(server, settings.data_dir)
    )


async def _build(
    client: httpx.AsyncClient, ids: dict[str, str], b_ids: dict[str, str]
) -> tuple[TestUser, TestUser, str, str, str]:
    """Creates the users, projects and provider resources (needs the worker)."""
    alice = await sign_up(client, email="alice@example.com")
    bob = await sign_up(client, email="bob@example.com")
    carol = await sign_up(client, email="carol@example.com")
    a = (await create_project(client, alice, name="victim"))["id"]
    b = (await create_project(client, bob, name="attacker"))["id"]
    await add_member(client, alice, a, carol, "member")
    ids["user_id"] = str(carol.id)
    invited = await client.post(
        f"/v1/projects/{a}/invitations",
        json={"email": "dave@example.com", "role": "viewer"},
        headers=alice.headers,
    )
    assert invited.status_code == 201, invited.text
    ids["invitation_id"] = invited.json()["id"]

    instance = await create_instance(client, alice, a, name="victim-vm")
    database = await create_database(client, alice, a, name="victimdb")
    ids["bucket_id"] = await create_bucket(client, alice, a, name="victim-bucket")
    b_ids["bucket_id"] = await create_bucket(client, bob, b, name="attacker-bucket")
    assert (await wait_for_operation(client, alice, instance))["status"] == "succeeded"
    await succeeded(client, alice, database)
    ids["instance_id"] = instance["resource"]["id"]
    ids["operation_id"] = instance["id"]
    ids["database_id"] = database["resource"]["id"]
    snapshot = await client.post(
        f"/v1/projects/{a}/databases/{ids['database_id']}/snapshots",
        json={"name": "victim-snap"},
        headers=alice.headers,
    )
    assert snapshot.status_code == 202, snapshot.text
    await succeeded(client, alice, snapshot.json())
    ids["snapshot_id"] = snapshot.json()["resource"]["id"]

    sent = await put_object(
        client, client, alice, a, ids["bucket_id"], "readme.txt", b"only alice's\n"
    )
    assert sent.status_code == 200, sent.text
    upload = await client.post(
        f"{objects_url(a, ids['bucket_id'])}/uploads",
        json={"key": "big.bin"},
        headers=alice.headers,
    )
    assert upload.status_code == 201, upload.text
    ids["upload_id"] = upload.json()["upload_id"]
    return alice, bob, a, b, invited.json()["token"]


async def _build_without_worker(client: httpx.AsyncClient, db: AsyncSession, world: World) -> None:
    """Webhooks, a delivery, an alert rule and an API key: made with no worker running,
    so the delivery stays as it is while the tests run."""
    for user, project, ids in (
        (world.alice, world.a, world.ids),
        (world.bob, world.b, world.b_ids),
    ):
        hook = await client.post(
            f"/v1/projects/{project}/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
            headers=user.headers,
        )
        assert hook.status_code == 201, hook.text
        ids["webhook_id"] = hook.json()["id"]
    queued = await enqueue_event(
        db,
        project_id=uuid.UUID(world.a),
        event_type="resource.drift",
        payload=event_payload(
            event_type="resource.drift", project_id=uuid.UUID(world.a), data={"n": 1}
        ),
    )
    await db.commit()
    assert queued == 1
    delivery = await db.scalar(
        select(WebhookDelivery.id).where(WebhookDelivery.project_id == uuid.UUID(world.a))
    )
    await db.rollback()
    world.ids["delivery_id"] = str(delivery)
    rule = await client.post(
        f"/v1/projects/{world.a}/alerts",
        json={
            "name": "cost",
            "source": {"type": "cost", "measure": "month_to_date"},
            "comparison": ">",
            "threshold": "100",
        },
        headers=world.alice.headers,
    )
    assert rule.status_code == 201, rule.text
    world.ids["alert_id"] = rule.json()["id"]
    key = await client.post("/v1/me/api-keys", json={"name": "ci"}, headers=world.alice.headers)
    assert key.status_code == 201, key.text
    world.ids["api_key_id"] = key.json()["id"]


@asynccontextmanager
async def own_state_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app whose lifespan runs already, giving each request a state of its
    own, as uvicorn does (see ``tests.fixtures.app.running_client``)."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


async def _release(provider: Provider, db: AsyncSession) -> None:
    """Ends the module's instances (real processes) and drops its databases from the
    server the whole run shares, straight at the provider: no worker needed, and it works
    after a setup that failed half-way."""
    for instance in await provider.compute.list_instances(region="local"):
        await provider.compute.terminate_instance(
            region=instance.region, provider_id=instance.provider_id
        )
    assert provider.database is not None
    ours = set(
        await db.scalars(select(_RESOURCES.c.provider_id).where(_RESOURCES.c.kind == "database"))
    )
    for database in await provider.database.list_databases(region="local"):
        if database.provider_id in ours:
            await provider.database.delete_database(
                region=database.region, provider_id=database.provider_id
            )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    matrix_database_url: str,
    databases_server: DatabaseServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    data_dir = tmp_path_factory.mktemp("matrix")
    settings = cloud_settings(data_dir, webhook_allowed_networks="127.0.0.0/8")
    provider = _provider(settings, databases_server)
    ids: dict[str, str] = {}
    b_ids: dict[str, str] = {}
    engine = create_engine(settings, matrix_database_url, pool_size=1, max_overflow=0)
    async with create_sessionmaker(engine)() as db:
        try:
            async with cloud_app(settings, matrix_database_url, provider=provider) as (_, client):
                alice, bob, a, b, token = await _build(client, ids, b_ids)
            async with (
                cloud_app(settings, matrix_database_url, provider=provider, run_worker=False) as (
                    app,
                    _,
                ),
                own_state_client(app) as client,
            ):
                built = World(app, client, db, data_dir, alice, bob, a, b, ids, b_ids, token)
                await _build_without_worker(client, db, built)
                # Request counts are saved by the tests' own flushes from now on, never by
                # a background flush landing between a call and the rows compared after it.
                await app.state.request_meter.stop()
                yield built
        finally:
            await db.rollback()
            await _release(provider, db)
    await engine.dispose()


# Bodies a member's request would carry: valid, so that the id lookup is what answers.
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "{user_id}"): {"role": "admin"},
    ("PATCH", "{instance_id}"): {"labels": {"stolen": "yes"}},
    ("POST", "resize"): {"size": "medium"},
    ("PATCH", "{database_id}"): {"labels": {"stolen": "yes"}},
    ("POST", "snapshots"): {"name": "stolen"},
    ("POST", "restore"): {"name": "stolen"},
    ("PATCH", "{bucket_id}"): {"labels": {"stolen": "yes"}},
    ("PUT", "versioning"): {"enabled": True},
    ("POST", "copy"): {"source_key": "readme.txt", "key": "stolen.txt"},
    ("POST", "presign"): {"key": "readme.txt", "method": "GET"},
    ("POST", "uploads"): {"key": "stolen.bin"},
    ("POST", "parts"): {"part_number": 1, "content_length": 10},
    ("POST", "complete"): {"parts": [{"part_number": 1, "etag": "0" * 32}]},
    ("PATCH", "{webhook_id}"): {"description": "stolen"},
    ("PATCH", "{alert_id}"): {"name": "stolen"},
}
# For routes that read or delete one object by ?key=.
_QUERY = {"key": "readme.txt"}


def _segments(op: Operation) -> list[str]:
    return [part[1:-1] for part in op.path.split("/") if part.startswith("{")]


def with_resource_id(app: FastAPI) -> list[Operation]:
    """Every route whose path names something besides a project."""
    return [op for op in operations(app) if set(_segments(op)) - {"project_id"}]


def _body(op: Operation) -> dict[str, Any] | None:
    if not op.has_json_body:
        return None
    last = op.path.rsplit("/", 1)[-1]
    body = _BODIES.get((op.method, last))
    assert body is not None, f"add a valid body for {op.method} {op.path} to _BODIES"
    return body


def _project_scoped(world: World) -> list[Operation]:
    return [op for op in with_resource_id(world.app) if op.path.startswith("/v1/projects/")]


async def _all_rows(world: World) -> dict[str, list[Any]]:
    """A's rows and B's, by "a.<table>" and "b.<table>", with the requests counted so
    far saved (they are saved every few seconds otherwise)."""
    await world.app.state.request_meter.flush()
    a = await project_rows(world.db, world.a)
    # B's requests in B's own project are B's usage; none may count against A.
    b = await project_rows(world.db, world.b, request_counts=False)
    return {
        **{f"a.{t}": rows for t, rows in a.items()},
        **{f"b.{t}": rows for t, rows in b.items()},
    }


def changed(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> dict[str, Any]:
    """The tables whose rows differ, with the rows gone and the rows new."""
    return {
        table: {
            "gone": [row for row in rows if row not in after.get(table, [])],
            "new": [row for row in after.get(table, []) if row not in rows],
        }
        for table, rows in before.items()
        if after.get(table) != rows
    }


async def _assert_404_and_unchanged(world: World, op: Operation, **values: str) -> None:
    before = await _all_rows(world)
    response = await world.client.request(
        op.method,
        op.url(**values),
        params=_QUERY,
        json=_body(op),
        headers=world.bob.headers,
    )
    where = (op.method, op.url(**values))
    assert response.status_code == 404, (*where, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), where
    assert response.json()["code"].endswith("not_found"), (*where, response.json())
    assert not changed(before, await _all_rows(world)), where


# Routes with an id outside /v1/projects/{project_id}, and the rule each follows for a
# stranger's id. Each rule has its own test below.
OUTSIDE_PROJECTS = {
    # Another user's key: 404, by the key id alone (test_another_users_api_key_is_404).
    ("GET", "/v1/me/api-keys/{api_key_id}"),
    ("DELETE", "/v1/me/api-keys/{api_key_id}"),
    # The token is the invitation's secret; whoever holds it still must be the invited
    # address (403 invitation_email_mismatch, as docs/auth.md says).
    ("POST", "/v1/invitations/{token}/accept"),
    # Platform admin routes: every non-admin is 403, whatever the id.
    ("PATCH", "/v1/admin/users/{user_id}"),
    # Signed URLs: no bearer credential at all, the signature in the URL (bound to the
    # bucket, the key and the method) is the credential, so a stranger's bearer token
    # grants nothing here and a signature made for one bucket opens no other.
    ("GET", "/v1/storage/{bucket_id}/{key}"),
    ("HEAD", "/v1/storage/{bucket_id}/{key}"),
    ("PUT", "/v1/storage/{bucket_id}/{key}"),
}


async def test_every_id_segment_can_be_filled(world: World) -> None:
    routes = with_resource_id(world.app)
    known = set(world.ids) | {"project_id", "token", "key"}
    for op in routes:
        unknown = set(_segments(op)) - known
        assert not unknown, (
            f"{op.method} {op.path} takes {sorted(unknown)}: make one in project A in "
            "this module's `world` fixture, so the isolation matrix covers the route"
        )
        if op.path.startswith("/v1/projects/"):
            _body(op)
        else:
            assert (op.method, op.path) in OUTSIDE_PROJECTS, (
                f"{op.method} {op.path}: add it to OUTSIDE_PROJECTS with its rule, and a "
                "test that a stranger cannot use another tenant's id there"
            )
    assert {(op.method, op.path) for op in routes} >= OUTSIDE_PROJECTS, "a route is gone"
    assert len(routes) >= 50


async def test_a_stranger_gets_404_for_every_resource_under_its_project(world: World) -> None:
    checked = 0
    for op in _project_scoped(world):
        await _assert_404_and_unchanged(world, op, project_id=world.a, **world.ids)
        checked += 1
    assert checked >= 50


async def test_a_stranger_gets_404_for_the_victims_ids_under_their_own_project(
    world: World,
) -> None:
    checked = 0
    for op in _project_scoped(world):
        await _assert_404_and_unchanged(world, op, project_id=world.b, **world.ids)
        checked += 1
    assert checked >= 50


async def test_a_victims_child_under_the_strangers_own_parent_is_404(world: World) -> None:
    """An upload id or a delivery id of A under B's own bucket or webhook."""
    nested = [
        op for op in _project_scoped(world) if {"upload_id", "delivery_id"} & set(_segments(op))
    ]
    for op in nested:
        await _assert_404_and_unchanged(
            world, op, **{**world.ids, **world.b_ids, "project_id": world.b}
        )
    assert len(nested) == 4


async def test_copying_from_a_victims_bucket_into_ones_own_is_404(world: World) -> None:
    before = await _all_rows(world)
    response = await world.client.post(
        f"{objects_url(world.b, world.b_ids['bucket_id'])}/copy",
        json={
            "source_bucket_id": world.ids["bucket_id"],
            "source_key": "readme.txt",
            "key": "stolen.txt",
        },
        headers=world.bob.headers,
    )
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "bucket_not_found"
    assert not changed(before, await _all_rows(world))


async def test_another_users_api_key_is_404(world: World) -> None:
    url = f"/v1/me/api-keys/{world.ids['api_key_id']}"
    for method in ("GET", "DELETE"):
        response = await world.client.request(method, url, headers=world.bob.headers)
        assert response.status_code == 404, (method, response.text)
        assert response.json()["code"].endswith("not_found")
    key = await world.db.get(ApiKey, uuid.UUID(world.ids["api_key_id"]))
    assert key is not None
    assert key.revoked_at is None
    await world.db.rollback()


async def test_someone_elses_invitation_token_is_refused(world: World) -> None:
    before = await _all_rows(world)
    response = await world.client.post(
        f"/v1/invitations/{world.invitation_token}/accept", headers=world.bob.headers
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "invitation_email_mismatch"
    # Nothing changed but A's audit trail, which shows A's admins the refused attempt.
    difference = changed(before, await _all_rows(world))
    [attempt] = difference.pop("a.audit_events")["new"]
    assert not difference
    assert (attempt.actor_label, attempt.action, attempt.outcome) == (
        "bob@example.com",
        "invitation.accept",
        "denied",
    )


async def test_platform_admin_routes_refuse_a_project_owner(world: World) -> None:
    before = await _all_rows(world)
    changes = [
        ("PATCH", f"/v1/admin/users/{world.alice.id}", {"is_active": False}),
        ("PATCH", f"/v1/admin/users/{world.bob.id}", {"is_platform_admin": True}),
        ("PUT", f"/v1/admin/projects/{world.a}/quotas", {"instances": 0}),
        ("PUT", f"/v1/admin/projects/{world.b}/quotas", {"instances": 1000}),
    ]
    for method, url, body in changes:
        response = await world.client.request(method, url, json=body, headers=world.bob.headers)
        assert response.status_code == 403, (url, response.text)
    me = await world.client.get("/v1/me", headers=world.bob.headers)
    assert me.json()["is_platform_admin"] is False
    assert not changed(before, await _all_rows(world))


async def test_signed_urls_open_only_the_object_they_were_signed_for(world: World) -> None:
    bucket = world.ids["bucket_id"]
    stored = world.data_dir / "buckets" / f"lariba-{uuid.UUID(bucket).hex}"
    files_before = sorted(p.read_bytes() for p in stored.rglob("*") if p.is_file())
    for method in ("GET", "HEAD", "PUT"):
        # A bearer token is no credential here.
        response = await world.client.request(
            method,
            f"/v1/storage/{bucket}/readme.txt",
            content=b"overwritten" if method == "PUT" else None,
            headers=world.bob.headers,
        )
        assert response.status_code == 403, (method, response.text)
    # A signature bob got for his own bucket, replayed against alice's bucket id.
    for method in ("GET", "PUT"):
        signed = await world.client.post(
            f"{objects_url(world.b, world.b_ids['bucket_id'])}/presign",
            json={"key": "readme.txt", "method": method, "content_length": 11}
            if method == "PUT"
            else {"key": "readme.txt", "method": method},
            headers=world.bob.headers,
        )
        assert signed.status_code == 200, signed.text
        url = signed.json()["url"].replace(world.b_ids["bucket_id"], bucket)
        assert bucket in url
        response = await world.client.request(
            method,
            url,
            content=b"overwritten" if method == "PUT" else None,
            headers=signed.json()["headers"],
        )
        assert response.status_code == 403, (method, response.text)
        assert response.json()["code"] == "signature_invalid"
    assert sorted(p.read_bytes() for p in stored.rglob("*") if p.is_file()) == files_before
