"""A project's audit log: filters, pages, roles, the JSON-lines export, and the trail
staying append-only for the application's own database role."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from lariba.identity.audit import AuditFilter
from lariba.identity.models import AuditEvent
from lariba.monitoring.audit.service import export_audit
from tests.fixtures.identity import TestUser
from tests.fixtures.monitoring import T0, Team, add_audit, all_pages


def _url(team: Team, suffix: str = "") -> str:
    return f"/v1/projects/{team.project_id}/audit{suffix}"


async def _seed(db: AsyncSession, team: Team) -> dict[str, AuditEvent]:
    """Five events of the project at T0 + n minutes and one of another project."""
    web = uuid.uuid4()
    rows = {
        "create": await add_audit(
            db,
            project_id=team.project_id,
            at=T0,
            actor=team.member,
            target_id=web,
            details={"name": "web-1"},
        ),
        "stop": await add_audit(
            db,
            project_id=team.project_id,
            at=T0 + timedelta(minutes=1),
            action="instance.stop",
            actor=team.owner,
            target_id=web,
        ),
        "bucket": await add_audit(
            db,
            project_id=team.project_id,
            at=T0 + timedelta(minutes=2),
            action="bucket.delete",
            actor=team.owner,
            target_type="bucket",
        ),
        "denied": await add_audit(
            db,
            project_id=team.project_id,
            at=T0 + timedelta(minutes=3),
            action="instance.delete",
            actor=team.member,
            target_id=web,
            outcome="denied",
        ),
        "instances": await add_audit(
            db,
            project_id=team.project_id,
            at=T0 + timedelta(minutes=4),
            action="instances.custom",
            actor=team.admin,
        ),
    }
    await add_audit(
        db, project_id=team.outsider_project_id, at=T0, actor=team.outsider, target_id=web
    )
    return rows


async def _ids(client: httpx.AsyncClient, team: Team, **params: str) -> list[int]:
    response = await client.get(
        _url(team),
        params={"to": (T0 + timedelta(hours=1)).isoformat(), **params},
        headers=team.owner.headers,
    )
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_project_audit_is_the_projects_events_newest_first(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    response = await client.get(_url(team), headers=team.owner.headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    ids = [item["id"] for item in items]
    assert ids == sorted(ids, reverse=True)
    stored = (
        await db.scalars(
            select(AuditEvent.id)
            .where(AuditEvent.project_id == uuid.UUID(team.project_id))
            .order_by(AuditEvent.id.desc())
        )
    ).all()
    assert ids == list(stored)
    # The project's creation and the three invitations accepted through the API.
    assert items[-1]["action"] == "project.create"
    assert items[-1]["actor_label"] == team.owner.email
    assert {item["project_id"] for item in items} == {team.project_id}


async def test_filters_narrow_the_audit_log(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    rows = await _seed(db, team)
    ids = {name: row.id for name, row in rows.items()}

    assert await _ids(client, team, **{"from": T0.isoformat()}) == [
        ids["instances"],
        ids["denied"],
        ids["bucket"],
        ids["stop"],
        ids["create"],
    ]
    # The actor by e-mail (in any case) and by id.
    assert await _ids(client, team, actor="CAROL@example.com") == [ids["denied"], ids["create"]]
    assert await _ids(client, team, actor=str(team.member.id)) == [ids["denied"], ids["create"]]
    # An exact action, and a prefix ending in a dot (which is not "instances.").
    assert await _ids(client, team, action="instance.stop") == [ids["stop"]]
    assert await _ids(client, team, action="instance.") == [
        ids["denied"],
        ids["stop"],
        ids["create"],
    ]
    assert await _ids(client, team, action="instance") == []
    assert await _ids(client, team, target_type="bucket") == [ids["bucket"]]
    assert await _ids(client, team, target_id=rows["stop"].target_id or "") == [
        ids["denied"],
        ids["stop"],
        ids["create"],
    ]
    assert await _ids(client, team, outcome="denied") == [ids["denied"]]
    # from is inclusive, to exclusive.
    window = {
        "from": (T0 + timedelta(minutes=1)).isoformat(),
        "to": (T0 + timedelta(minutes=3)).isoformat(),
    }
    assert await _ids(client, team, **window) == [ids["bucket"], ids["stop"]]
    combined = await _ids(client, team, actor=team.owner.email, action="instance.")
    assert combined == [ids["stop"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00"}, "from"),
        ({"outcome": "maybe"}, "outcome"),
        ({"cursor": "W10"}, "cursor"),
    ],
)
async def test_invalid_filters_are_422_naming_the_field(
    client: httpx.AsyncClient, shop_team: Team, params: dict[str, str], field: str
) -> None:
    for suffix in ("", "/export"):
        response = await client.get(
            _url(shop_team, suffix), params=params, headers=shop_team.owner.headers
        )
        if field == "cursor" and suffix:
            continue  # the export has no pages
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field


async def test_pages_hold_every_event_once(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    for _ in range(7):
        await add_audit(db, project_id=team.project_id, at=T0, actor=team.owner)
    everything = (
        await client.get(_url(team), params={"limit": 200}, headers=team.owner.headers)
    ).json()["items"]
    assert len(everything) >= 11
    for limit in (1, 3, 5):
        paged = await all_pages(client, _url(team), team.owner, limit=limit)
        assert [e["id"] for e in paged] == [e["id"] for e in everything]
    filtered = await all_pages(client, _url(team), team.owner, limit=2, action="instance.create")
    assert len(filtered) == 7


async def test_only_project_admins_and_owners_read_the_audit_log(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    await _seed(db, team)
    for user in (team.owner, team.admin):
        for suffix in ("", "/export"):
            response = await client.get(_url(team, suffix), headers=user.headers)
            assert response.status_code == 200, (user.email, suffix, response.text)
    for user in (team.member, team.viewer):
        for suffix in ("", "/export"):
            response = await client.get(_url(team, suffix), headers=user.headers)
            assert response.status_code == 403, (user.email, suffix)
            assert response.json()["code"] == "insufficient_role"
            assert response.json()["required_role"] == "admin"
    for suffix in ("", "/export"):
        foreign = await client.get(_url(team, suffix), headers=team.outsider.headers)
        missing = await client.get(
            f"/v1/projects/{uuid.uuid4()}/audit{suffix}", headers=team.outsider.headers
        )
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["code"] == missing.json()["code"] == "project_not_found"
    # The outsider's own log holds nothing of the shop.
    own = await client.get(
        f"/v1/projects/{team.outsider_project_id}/audit", headers=team.outsider.headers
    )
    assert {e["project_id"] for e in own.json()["items"]} == {team.outsider_project_id}


async def test_export_streams_json_lines_oldest_first(
    client: httpx.AsyncClient, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    rows = await _seed(db, team)
    async with client.stream(
        "GET", _url(team, "/export"), params={"action": "instance."}, headers=team.admin.headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith(f'attachment; filename="audit-{team.project_id}-')
        assert disposition.endswith('.jsonl"')
        lines = [line async for line in response.aiter_lines() if line]
    events = [json.loads(line) for line in lines]
    assert [e["id"] for e in events] == [rows[n].id for n in ("create", "stop", "denied")]
    assert events[0]["action"] == "instance.create"
    assert events[0]["details"] == {"name": "web-1"}
    assert events[0]["actor_label"] == team.member.email
    assert {e["project_id"] for e in events} == {team.project_id}
    # Unfiltered: the whole log of the project, the same rows as the list, reversed.
    whole = await client.get(_url(team, "/export"), headers=team.owner.headers)
    listed = await client.get(_url(team), params={"limit": 200}, headers=team.owner.headers)
    exported = [json.loads(line)["id"] for line in whole.text.splitlines()]
    assert exported == [e["id"] for e in reversed(listed.json()["items"])]


async def test_export_reads_the_trail_in_batches(
    app: FastAPI, shop_team: Team, db: AsyncSession
) -> None:
    team = shop_team
    for _ in range(5):
        await add_audit(db, project_id=team.project_id, at=T0, actor=team.owner)
    where = AuditFilter(project_id=uuid.UUID(team.project_id), action="instance.create")
    chunks = [
        chunk async for chunk in export_audit(app.state.sessionmaker, where=where, batch_size=2)
    ]
    assert [chunk.count(b"\n") for chunk in chunks] == [2, 2, 1]
    ids = [json.loads(line)["id"] for chunk in chunks for line in chunk.splitlines()]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


async def test_platform_admins_export_every_project(
    client: httpx.AsyncClient, shop_team: Team, platform_admin_user: TestUser, db: AsyncSession
) -> None:
    team = shop_team
    await _seed(db, team)
    response = await client.get(
        "/v1/admin/audit/export",
        params={"action": "instance.create"},
        headers=platform_admin_user.headers,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    events = [json.loads(line) for line in response.text.splitlines()]
    assert {e["project_id"] for e in events} == {team.project_id, team.outsider_project_id}
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    # The same filters as the admin search.
    only_shop = await client.get(
        "/v1/admin/audit/export",
        params={"project_id": team.project_id, "since": T0.isoformat()},
        headers=platform_admin_user.headers,
    )
    assert {json.loads(line)["project_id"] for line in only_shop.text.splitlines()} == {
        team.project_id
    }
    for user in (team.owner, team.admin):
        refused = await client.get("/v1/admin/audit/export", headers=user.headers)
        assert refused.status_code == 403
        assert refused.json()["code"] == "platform_admin_required"


async def test_admin_search_takes_an_action_prefix(
    client: httpx.AsyncClient, shop_team: Team, platform_admin_user: TestUser, db: AsyncSession
) -> None:
    rows = await _seed(db, shop_team)
    response = await client.get(
        "/v1/admin/audit",
        params={"action": "bucket.", "project_id": shop_team.project_id},
        headers=platform_admin_user.headers,
    )
    assert [e["id"] for e in response.json()["items"]] == [rows["bucket"].id]


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEvent).values(outcome="success"),
        delete(AuditEvent),
        text("TRUNCATE audit_events"),
    ],
    ids=["update", "delete", "truncate"],
)
async def test_the_apps_own_connection_cannot_change_the_trail(
    app: FastAPI, shop_team: Team, db: AsyncSession, statement: object
) -> None:
    """Through the very sessionmaker the API serves requests with, as its own role."""
    before = await db.scalar(select(func.count()).select_from(AuditEvent))
    assert before
    await db.rollback()  # its read lock would make TRUNCATE wait for this test forever
    async with app.state.sessionmaker() as session:
        role = await session.scalar(text("SELECT current_user"))
        assert role
        # Refused by the trigger, not by a lock someone else holds.
        await session.execute(text("SET LOCAL lock_timeout = '10s'"))
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(statement)
        await session.rollback()
    assert await db.scalar(select(func.count()).select_from(AuditEvent)) == before
