"""A project's activity feed (audit events merged with status changes) and a resource's
log (its operations and events)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.cloud.engine.models import Operation, ResourceEvent
from tests.fixtures.cloud import create_instance
from tests.fixtures.monitoring import (
    T0,
    Team,
    add_audit,
    add_operation,
    add_resource,
    add_status_change,
    all_pages,
)


def _activity(team: Team) -> str:
    return f"/v1/projects/{team.project_id}/activity"


def _logs(team: Team) -> str:
    return f"/v1/projects/{team.project_id}/logs"


async def test_activity_merges_changes_and_status_changes_newest_first(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    web = await add_resource(db, project_id=team.project_id, name="web-1")
    created = await add_audit(
        db,
        project_id=team.project_id,
        at=T0 - timedelta(days=300),
        actor=team.owner,
        target_id=web.id,
        details={"name": "web-1"},
    )
    running = await add_status_change(
        db,
        web,
        at=T0 - timedelta(days=300, seconds=-30),
        from_status="pending",
        to_status="running",
    )
    stop = await add_audit(
        db,
        project_id=team.project_id,
        at=T0 - timedelta(days=299),
        action="instance.stop",
        actor=team.member,
        target_id=web.id,
        details={"name": "web-1"},
    )
    stopped = await add_status_change(
        db,
        web,
        at=T0 - timedelta(days=299, seconds=-20),
        from_status="running",
        to_status="stopped",
    )
    drift = await add_status_change(
        db,
        web,
        at=T0 - timedelta(days=298),
        from_status="stopped",
        to_status="running",
        reason="started at the provider",
        type="drift",
    )
    denied = await add_audit(
        db,
        project_id=team.project_id,
        at=T0 - timedelta(days=297),
        action="instance.delete",
        actor=team.viewer,
        target_id=web.id,
        outcome="denied",
        details={"name": "web-1"},
    )
    # Another project's rows never show.
    elsewhere = await add_resource(db, project_id=team.outsider_project_id, name="web-1")
    await add_status_change(
        db, elsewhere, at=T0 - timedelta(days=298), from_status="running", to_status="stopped"
    )

    response = await client.get(_activity(team), params={"limit": 200}, headers=team.viewer.headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    times = [item["at"] for item in items]
    assert times == sorted(times, reverse=True)
    old = [item for item in items if item["at"] < T0.isoformat()]
    assert [(item["source"], item["id"]) for item in old] == [
        ("audit", denied.id),
        ("resource", drift.id),
        ("resource", stopped.id),
        ("audit", stop.id),
        ("resource", running.id),
        ("audit", created.id),
    ]
    assert [item["summary"] for item in old] == [
        "dave@example.com deleted instance web-1 (denied)",
        "instance web-1 changed outside Lariba: stopped → running (started at the provider)",
        "instance web-1: running → stopped",
        "carol@example.com stopped instance web-1",
        "instance web-1: pending → running",
        "alice@example.com created instance web-1",
    ]
    assert old[3]["actor"] == {
        "type": "user",
        "id": str(team.member.id),
        "label": team.member.email,
    }
    assert old[3]["target"] == {"type": "instance", "id": str(web.id), "name": "web-1"}
    assert old[3]["type"] == "instance.stop"
    assert old[2]["actor"] == {"type": "system", "id": None, "label": "lariba"}
    assert old[2]["target"] == {"type": "instance", "id": str(web.id), "name": "web-1"}
    assert old[2]["type"] == "status_changed"
    assert old[1]["type"] == "drift"
    # The API's own rows (the project's creation, members joining) are there too.
    assert items[-1] == old[-1]
    recent = [item["type"] for item in items if item["at"] >= T0.isoformat()]
    assert "project.create" in recent
    assert "invitation.accept" in recent
    assert all(item["target"]["id"] != str(elsewhere.id) for item in items if item["target"])


async def test_activity_of_an_instance_made_through_the_api(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    operation = await create_instance(client, team.member, team.project_id, name="api-1")
    items = (await client.get(_activity(team), headers=team.member.headers)).json()["items"]
    # One transaction wrote both: same time, the resource event sorts first (newest first).
    assert [item["summary"] for item in items[:2]] == [
        "instance api-1: pending (created)",
        "carol@example.com created instance api-1",
    ]
    assert items[0]["at"] == items[1]["at"]
    assert items[1]["target"]["id"] == operation["resource"]["id"]


async def test_activity_pages_hold_every_item_once_across_ties(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    """Rows of both tables at the very same instant: the (time, source, id) cursor still
    splits them between pages without a gap or a repeat."""
    team = shop_team
    web = await add_resource(db, project_id=team.project_id, name="web-1")
    for n in range(4):
        at = T0 - timedelta(days=10, minutes=n // 2)
        await add_audit(db, project_id=team.project_id, at=at, actor=team.owner, target_id=web.id)
        await add_status_change(db, web, at=at, from_status="running", to_status="stopped")
        await add_status_change(db, web, at=at, from_status="stopped", to_status="running")
    everything = (
        await client.get(_activity(team), params={"limit": 200}, headers=team.owner.headers)
    ).json()["items"]
    keys = [(item["at"], item["source"], item["id"]) for item in everything]
    assert len(set(keys)) == len(keys) >= 12 + 4
    for limit in (1, 2, 5, 7):
        paged = await all_pages(client, _activity(team), team.owner, limit=limit)
        assert [(i["at"], i["source"], i["id"]) for i in paged] == keys, limit
    bad = await client.get(
        _activity(team), params={"cursor": "eyJ4IjoxfQ"}, headers=team.owner.headers
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_cursor"


async def test_activity_is_for_members_only(client: httpx.AsyncClient, shop_team: Team) -> None:
    team = shop_team
    for user in (team.owner, team.admin, team.member, team.viewer):
        response = await client.get(_activity(team), headers=user.headers)
        assert response.status_code == 200, user.email
    foreign = await client.get(_activity(team), headers=team.outsider.headers)
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "project_not_found"


async def test_resource_log_is_its_operations_and_events_in_time_order(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    web = await add_resource(db, project_id=team.project_id, name="web-1")
    other = await add_resource(db, project_id=team.project_id, name="web-2")
    start = T0 - timedelta(days=5)
    create = await add_operation(db, web, at=start, type="create", by=team.member)
    pending = await add_status_change(
        db, web, at=start, from_status=None, to_status="pending", reason="created"
    )
    running = await add_status_change(
        db, web, at=start + timedelta(seconds=5), from_status="pending", to_status="running"
    )
    stop = await add_operation(
        db,
        web,
        at=start + timedelta(minutes=1),
        type="stop",
        status="failed",
        by=team.owner,
        error={"code": "provider_error", "message": "the provider refused"},
    )
    await add_operation(db, other, at=start + timedelta(seconds=30), type="create")
    await add_status_change(db, other, at=start, from_status=None, to_status="pending")

    response = await client.get(
        _logs(team), params={"resource_id": str(web.id)}, headers=team.viewer.headers
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(item["source"], item["summary"]) for item in items] == [
        ("event", "pending (created)"),
        ("operation", "create by carol@example.com: succeeded"),
        ("event", "pending → running"),
        ("operation", "stop by alice@example.com: failed (the provider refused)"),
    ]
    assert items[0]["event"]["id"] == pending.id
    assert items[0]["operation"] is None
    assert items[2]["event"]["id"] == running.id
    logged_create = items[1]["operation"]
    assert logged_create["id"] == str(create.id)
    assert logged_create["created_by"] == {
        "type": "user",
        "id": str(team.member.id),
        "label": team.member.email,
    }
    assert logged_create["started_at"] and logged_create["finished_at"]
    assert items[3]["operation"]["id"] == str(stop.id)
    assert items[3]["operation"]["error"] == {
        "code": "provider_error",
        "message": "the provider refused",
    }
    assert items[3]["event"] is None

    for limit in (1, 3):
        paged = await all_pages(client, _logs(team), team.viewer, limit=limit, resource_id=web.id)
        assert paged == items


async def test_resource_log_of_an_api_instance(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    operation = await create_instance(client, team.member, team.project_id, name="api-1")
    resource_id = operation["resource"]["id"]
    response = await client.get(
        _logs(team), params={"resource_id": resource_id}, headers=team.member.headers
    )
    items = response.json()["items"]
    assert {item["source"] for item in items} == {"operation", "event"}
    assert [i["operation"]["id"] for i in items if i["operation"]] == [operation["id"]]
    stored_ops = (
        await db.scalars(
            select(Operation.id).where(Operation.resource_id == uuid.UUID(resource_id))
        )
    ).all()
    stored_events = (
        await db.scalars(
            select(ResourceEvent.id).where(ResourceEvent.resource_id == uuid.UUID(resource_id))
        )
    ).all()
    assert len(items) == len(stored_ops) + len(stored_events)


async def test_unknown_or_foreign_resource_log_is_404(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    theirs = await add_resource(db, project_id=team.outsider_project_id, name="secret")
    await add_status_change(db, theirs, at=T0, from_status="running", to_status="stopped")
    for resource_id in (theirs.id, uuid.uuid4()):
        response = await client.get(
            _logs(team), params={"resource_id": str(resource_id)}, headers=team.owner.headers
        )
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "resource_not_found"
    # The outsider asking through the shop's project id: the project is what is missing.
    foreign = await client.get(
        _logs(team), params={"resource_id": str(theirs.id)}, headers=team.outsider.headers
    )
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "project_not_found"
    missing = await client.get(_logs(team), headers=team.owner.headers)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "resource_id"
