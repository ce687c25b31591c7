"""The instances API's rules: validation, quotas, conflicts, filters, tenant isolation.
Most run without a worker, so what they see is exactly what the request did."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Operation, Resource, ResourceEvent
from lariba.identity.models import User
from lariba.providers.base import Provider
from lariba.providers.catalog import load_catalog
from lariba.providers.local import LocalCompute
from tests.fixtures.cloud import (
    act,
    cloud_client,
    cloud_settings,
    create_instance,
    wait_for_operation,
)
from tests.fixtures.faults import CountingCompute
from tests.fixtures.identity import TestUser, create_project, sign_up
from tests.fixtures.routes import operations

VALID: dict[str, Any] = {"name": "web-1", "size": "nano", "image": "shell"}
# Bodies a member's request would carry, by method and last path segment.
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "{instance_id}"): {"labels": {"stolen": "yes"}},
    ("POST", "resize"): {"size": "small"},
}


def counting_local(tmp_path: Path) -> CountingCompute:
    return CountingCompute(
        LocalCompute(catalog=load_catalog("local"), root=tmp_path / "instances", enabled=True)
    )


async def _project(client: httpx.AsyncClient) -> tuple[TestUser, str]:
    user = await sign_up(client)
    return user, (await create_project(client, user))["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"size": "gigantic"}, "size"),
        ({"image": "windows-95"}, "image"),
        ({"region": "mars-1"}, "region"),
        ({"name": "Web_1"}, "name"),
        ({"name": "-web"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"user_data": "x" * (16 * 1024 + 1)}, "user_data"),
        (
            {"firewall": [{"protocol": "tcp", "port_from": 22, "cidr": "10.0.0.300/8"}]},
            "firewall.0.cidr",
        ),
        (
            {"firewall": [{"protocol": "tcp", "port_from": 22, "cidr": "10.0.0.1/8"}]},
            "firewall.0.cidr",
        ),
        ({"firewall": [{"protocol": "tcp", "cidr": "10.0.0.0/8"}]}, "firewall.0"),
        (
            {"firewall": [{"protocol": "tcp", "port_from": 80, "port_to": 22, "cidr": "::/0"}]},
            "firewall.0",
        ),
        ({"ssh_public_key": "ssh-ed25519 not-base64!"}, "ssh_public_key"),
        ({"labels": {"Bad Key": "x"}}, "labels.Bad Key.[key]"),
        ({"owner": "someone"}, "owner"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    tmp_path: Path, test_database_url: str, db: AsyncSession, change: dict[str, Any], field: str
) -> None:
    compute = counting_local(tmp_path)
    settings = cloud_settings(tmp_path)
    async with cloud_client(
        settings, test_database_url, provider=Provider("local", compute), run_worker=False
    ) as client:
        user, pid = await _project(client)
        response = await client.post(
            f"/v1/projects/{pid}/instances", json={**VALID, **change}, headers=user.headers
        )
    assert response.status_code == 422, response.text
    problem = response.json()
    fields = [error["field"] for error in problem["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), problem
    assert await db.scalar(select(func.count()).select_from(Resource)) == 0
    assert sum(compute.calls.values()) == 0


async def test_instance_quota_refusal_makes_no_provider_call(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    compute = counting_local(tmp_path)
    settings = cloud_settings(tmp_path, quota_instances=1, local_compute_enabled=True)
    async with cloud_client(
        settings, test_database_url, provider=Provider("local", compute)
    ) as client:
        user, pid = await _project(client)
        first = await create_instance(
            client, user, pid, name="one", size="nano", user_data="exec sleep 60"
        )
        assert (await wait_for_operation(client, user, first))["status"] == "succeeded"
        calls_before = sum(compute.calls.values())
        assert compute.calls["create_instance"] == 1

        refused = await client.post(
            f"/v1/projects/{pid}/instances", json={**VALID, "name": "two"}, headers=user.headers
        )
        assert refused.status_code == 403, refused.text
        body = refused.json()
        assert body["code"] == "quota_exceeded"
        assert (body["quota"], body["limit"], body["in_use"], body["requested"]) == (
            "instances",
            1,
            1,
            1,
        )
        assert sum(compute.calls.values()) == calls_before
        await wait_for_operation(
            client, user, await act(client, user, pid, first["resource"]["id"], "delete")
        )
    names = (await db.scalars(select(Resource.name))).all()
    assert names == ["one"]


async def test_vcpu_quota_counts_reserved_instances(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    compute = counting_local(tmp_path)
    # nano has 1 vCPU, medium 2 (catalogs/local.toml).
    settings = cloud_settings(tmp_path, quota_vcpus=2)
    async with cloud_client(
        settings, test_database_url, provider=Provider("local", compute), run_worker=False
    ) as client:
        user, pid = await _project(client)
        await create_instance(client, user, pid, name="a", size="nano")
        quotas = await client.get(f"/v1/projects/{pid}/quotas", headers=user.headers)
        assert quotas.status_code == 200
        by_name = {q["name"]: q for q in quotas.json()["items"]}
        # Accepted, not yet created at the provider: reserved, not in use.
        assert by_name["vcpus"] == {
            "name": "vcpus",
            "limit": 2,
            "in_use": 0,
            "reserved": 1,
            "available": 1,
        }
        assert by_name["instances"]["reserved"] == 1

        refused = await client.post(
            f"/v1/projects/{pid}/instances",
            json={**VALID, "name": "b", "size": "medium"},
            headers=user.headers,
        )
        assert refused.status_code == 403
        assert (refused.json()["quota"], refused.json()["requested"]) == ("vcpus", 2)
    assert sum(compute.calls.values()) == 0
    assert (await db.scalars(select(Resource.name))).all() == ["a"]


async def test_platform_admin_sets_quotas(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    # Check admin rights on every call, so the promotion below applies at once.
    settings = cloud_settings(tmp_path, session_check_cache_seconds=0)
    async with cloud_client(settings, test_database_url, run_worker=False) as client:
        user, pid = await _project(client)
        url = f"/v1/admin/projects/{pid}/quotas"
        refused = await client.put(url, json={"instances": 500}, headers=user.headers)
        assert refused.status_code == 403
        await db.execute(update(User).where(User.id == user.id).values(is_platform_admin=True))
        await db.commit()
        changed = await client.put(url, json={"instances": 500}, headers=user.headers)
        assert changed.status_code == 200, changed.text
        limits = {q["name"]: q["limit"] for q in changed.json()["items"]}
        assert limits["instances"] == 500
        assert limits["vcpus"] == settings.quota_vcpus
        shown = await client.get(f"/v1/projects/{pid}/quotas", headers=user.headers)
        assert {q["name"]: q["limit"] for q in shown.json()["items"]} == limits
        negative = await client.put(url, json={"vcpus": -1}, headers=user.headers)
        assert negative.status_code == 422
        missing = await client.put(
            f"/v1/admin/projects/{uuid.uuid4()}/quotas", json={"vcpus": 1}, headers=user.headers
        )
        assert missing.status_code == 404


async def test_second_action_while_one_runs_is_409_naming_it(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, run_worker=False
    ) as client:
        user, pid = await _project(client)
        created = await create_instance(
            client, user, pid, **{k: v for k, v in VALID.items() if k != "name"}
        )
        iid = created["resource"]["id"]
        for action, body in (("stop", None), ("reboot", None), ("resize", {"size": "small"})):
            response = await client.post(
                f"/v1/projects/{pid}/instances/{iid}/{action}", json=body, headers=user.headers
            )
            assert response.status_code == 409, (action, response.text)
            problem = response.json()
            assert problem["code"] == "operation_in_progress"
            assert problem["operation_id"] == created["id"]
            assert problem["operation_type"] == "create"
        # Delete supersedes the create that never ran.
        deleted = await act(client, user, pid, iid, "delete")
        superseded = await client.get(
            f"/v1/projects/{pid}/operations/{created['id']}", headers=user.headers
        )
        assert superseded.json()["status"] == "failed"
        assert superseded.json()["error"]["code"] == "superseded"
        # Deleting again answers the delete already under way.
        again = await client.delete(f"/v1/projects/{pid}/instances/{iid}", headers=user.headers)
        assert again.status_code == 202
        assert again.json()["id"] == deleted["id"]
        stop = await client.post(f"/v1/projects/{pid}/instances/{iid}/stop", headers=user.headers)
        assert stop.status_code == 409
        assert stop.json()["code"] == "operation_in_progress"
    statuses = (
        await db.execute(select(Operation.type, Operation.status).order_by(Operation.created_at))
    ).all()
    assert statuses == [("create", "failed"), ("delete", "pending")]
    assert deleted["type"] == "delete"


async def test_name_is_unique_per_project(tmp_path: Path, test_database_url: str) -> None:
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, run_worker=False
    ) as client:
        user, pid = await _project(client)
        await create_instance(client, user, pid, name="web", size="nano")
        taken = await client.post(
            f"/v1/projects/{pid}/instances", json={**VALID, "name": "web"}, headers=user.headers
        )
        assert taken.status_code == 409
        assert taken.json()["code"] == "name_taken"
        other = (await create_project(client, user, name="other"))["id"]
        await create_instance(client, user, other, name="web", size="nano")


async def test_list_filters_by_status_and_label_with_cursor_pages(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, run_worker=False
    ) as client:
        user, pid = await _project(client)
        for i in range(5):
            await create_instance(
                client,
                user,
                pid,
                name=f"vm-{i}",
                size="nano",
                labels={"env": "prod" if i % 2 else "dev", "n": str(i)},
            )
        await db.execute(update(Resource).where(Resource.name == "vm-0").values(status="running"))
        await db.commit()
        url = f"/v1/projects/{pid}/instances"
        prod = await client.get(url, params={"label": "env=prod"}, headers=user.headers)
        assert [i["name"] for i in prod.json()["items"]] == ["vm-1", "vm-3"]
        both = await client.get(
            url, params=[("label", "env=prod"), ("label", "n=3")], headers=user.headers
        )
        assert [i["name"] for i in both.json()["items"]] == ["vm-3"]
        has_key = await client.get(url, params={"label": "n"}, headers=user.headers)
        assert len(has_key.json()["items"]) == 5
        running = await client.get(url, params={"status": "running"}, headers=user.headers)
        assert [i["name"] for i in running.json()["items"]] == ["vm-0"]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(url, params=params, headers=user.headers)).json()
            seen += [i["name"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"vm-{i}" for i in range(5)]
        bad = await client.get(url, params={"status": "exploded"}, headers=user.headers)
        assert bad.status_code == 422
        bad_label = await client.get(url, params={"label": "=x"}, headers=user.headers)
        assert bad_label.status_code == 422


async def test_labels_update_is_an_immediate_operation(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, run_worker=False
    ) as client:
        user, pid = await _project(client)
        iid = (await create_instance(client, user, pid, name="web", size="nano"))["resource"]["id"]
        response = await client.patch(
            f"/v1/projects/{pid}/instances/{iid}",
            json={"labels": {"tier": "gold"}},
            headers=user.headers,
        )
        assert response.status_code == 202, response.text
        assert (response.json()["type"], response.json()["status"]) == ("update", "succeeded")
    resource = await db.get(Resource, uuid.UUID(iid))
    assert resource is not None and resource.labels == {"tier": "gold"}


async def test_project_with_instances_cannot_be_deleted(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, run_worker=False
    ) as client:
        user, pid = await _project(client)
        iid = (await create_instance(client, user, pid, name="web", size="nano"))["resource"]["id"]
        refused = await client.delete(f"/v1/projects/{pid}", headers=user.headers)
        assert refused.status_code == 409
        assert refused.json()["code"] == "project_not_empty"
        assert await db.get(Resource, uuid.UUID(iid)) is not None
        await db.execute(update(Resource).values(status="deleted"))
        await db.commit()
        gone = await client.delete(f"/v1/projects/{pid}", headers=user.headers)
        assert gone.status_code == 204


async def test_every_instance_and_operation_route_is_404_to_another_tenant(
    tmp_path: Path, test_database_url: str, db: AsyncSession, app: FastAPI
) -> None:
    async with cloud_client(
        cloud_settings(tmp_path), test_database_url, run_worker=False
    ) as client:
        alice, alice_pid = await _project(client)
        bob, bob_pid = await _project(client)
        created = await create_instance(client, alice, alice_pid, name="secret", size="nano")
        iid = created["resource"]["id"]
        before = (await db.execute(select(Resource.__table__))).all()
        events_before = await db.scalar(select(func.count()).select_from(ResourceEvent))
        app_routes = [
            op
            for op in operations(app)
            if "{instance_id}" in op.path or "{operation_id}" in op.path
        ]
        assert len(app_routes) >= 10
        for op in app_routes:
            for project_id in (alice_pid, bob_pid):
                url = op.url(project_id=project_id, instance_id=iid, operation_id=created["id"])
                body = _BODIES.get((op.method, op.path.rsplit("/", 1)[-1]))
                response = await client.request(op.method, url, json=body, headers=bob.headers)
                assert response.status_code == 404, (op.method, url, response.text)
        assert (await db.execute(select(Resource.__table__))).all() == before
        assert await db.scalar(select(func.count()).select_from(ResourceEvent)) == events_before


async def test_concurrent_creates_of_one_name_make_one_instance(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    settings = cloud_settings(tmp_path)
    async with (
        cloud_client(settings, test_database_url, run_worker=False) as first,
        cloud_client(settings, test_database_url, run_worker=False) as second,
    ):
        user, pid = await _project(first)
        answers = await asyncio.gather(
            *(
                client.post(f"/v1/projects/{pid}/instances", json=VALID, headers=user.headers)
                for client in (first, second, first, second)
            )
        )
    assert sorted(a.status_code for a in answers) == [202, 409, 409, 409]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"name_taken"}
    assert await db.scalar(select(func.count()).select_from(Resource)) == 1


async def test_concurrent_creates_never_pass_the_quota(
    tmp_path: Path, test_database_url: str, db: AsyncSession
) -> None:
    """Creates through two API replicas at once, each writing its resource before it
    checks the quota: exactly the quota's worth is accepted, no request deadlocks, and
    the refused ones leave nothing behind."""
    settings = cloud_settings(tmp_path, quota_instances=3)
    async with (
        cloud_client(settings, test_database_url, run_worker=False) as first,
        cloud_client(settings, test_database_url, run_worker=False) as second,
    ):
        user, pid = await _project(first)
        answers = await asyncio.gather(
            *(
                client.post(
                    f"/v1/projects/{pid}/instances",
                    json={**VALID, "name": f"web-{index}"},
                    headers=user.headers,
                )
                for index, client in enumerate([first, second] * 5)
            )
        )
    assert sorted(a.status_code for a in answers) == [202] * 3 + [403] * 7, [
        a.text for a in answers
    ]
    assert {a.json()["code"] for a in answers if a.status_code == 403} == {"quota_exceeded"}
    accepted = {a.json()["resource"]["id"] for a in answers if a.status_code == 202}
    assert {str(i) for i in (await db.scalars(select(Resource.id))).all()} == accepted
    assert await db.scalar(select(func.count()).select_from(Operation)) == 3
    assert await db.scalar(select(func.count()).select_from(ResourceEvent)) == 3
