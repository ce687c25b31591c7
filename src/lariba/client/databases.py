"""The calls on managed databases as flows (see ``session``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lariba.client.api import operation
from lariba.client.models import Database, DatabaseCreation, DatabaseCredentials, Operation
from lariba.client.session import Call, Flow, Session


class DatabaseCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/databases"

    def list(self) -> Flow[list[Database]]:
        items = yield from self._session.all_pages(Call("GET", self._path))
        return [Database.from_json(item) for item in items]

    def create(
        self,
        name: str,
        *,
        size: str,
        storage_gb: int,
        engine_version: str | None,
        region: str | None,
        deletion_protection: bool,
        labels: Mapping[str, str] | None,
    ) -> Flow[DatabaseCreation]:
        body: dict[str, Any] = {
            "name": name,
            "size": size,
            "storage_gb": storage_gb,
            "deletion_protection": deletion_protection,
            "labels": dict(labels or {}),
        }
        optional = {"engine_version": engine_version, "region": region}
        body.update({key: value for key, value in optional.items() if value is not None})
        response = yield from self._session.request(Call("POST", self._path, json=body))
        return DatabaseCreation.from_json(response.json())

    def get(self, database_id: str) -> Flow[Database]:
        response = yield from self._session.request(Call("GET", f"{self._path}/{database_id}"))
        return Database.from_json(response.json())

    def reveal(self, database_id: str) -> Flow[DatabaseCredentials]:
        response = yield from self._session.request(
            Call("POST", f"{self._path}/{database_id}/credentials/reveal")
        )
        return DatabaseCredentials.from_json(response.json())

    def delete(self, database_id: str, *, final_snapshot: bool) -> Flow[Operation]:
        params = (("final_snapshot", "true"),) if final_snapshot else ()
        call = Call("DELETE", f"{self._path}/{database_id}", params=params)
        return (yield from operation(self._session, call))
