"""The API calls of the client as flows (see ``session``): what each call sends and how
its answer is read. ``Client`` and ``AsyncClient`` expose them as methods."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lariba.client.errors import OperationFailed, OperationTimeout
from lariba.client.models import FirewallRule, Instance, Operation, Project, User
from lariba.client.session import Call, Flow, Session, pause

ProgressCallback = Callable[[Operation], None]


def _repeated(name: str, values: str | Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple((name, value) for value in values)


def operation(session: Session, call: Call) -> Flow[Operation]:
    """The operation a change answers with."""
    response = yield from session.request(call)
    return Operation.from_json(response.json())


def sign_up(session: Session, *, email: str, password: str, display_name: str | None) -> Flow[User]:
    body: dict[str, Any] = {"email": email, "password": password}
    if display_name is not None:
        body["display_name"] = display_name
    response = yield from session.request(
        Call("POST", "/v1/auth/signup", json=body, authenticated=False)
    )
    return User.from_json(response.json())


def me(session: Session) -> Flow[User]:
    response = yield from session.request(Call("GET", "/v1/me"))
    return User.from_json(response.json())


def log_out(session: Session) -> Flow[None]:
    """Ends the session on the server (its tokens stop working)."""
    yield from session.request(Call("POST", "/v1/auth/logout", json={}))


class ProjectCalls:
    def __init__(self, session: Session) -> None:
        self._session = session

    def list(self) -> Flow[list[Project]]:
        items = yield from self._session.all_pages(Call("GET", "/v1/projects"))
        return [Project.from_json(item) for item in items]

    def create(self, name: str, description: str | None) -> Flow[Project]:
        body = {"name": name, "description": description}
        response = yield from self._session.request(Call("POST", "/v1/projects", json=body))
        return Project.from_json(response.json())

    def get(self, project_id: str) -> Flow[Project]:
        response = yield from self._session.request(Call("GET", f"/v1/projects/{project_id}"))
        return Project.from_json(response.json())

    def delete(self, project_id: str) -> Flow[None]:
        yield from self._session.request(Call("DELETE", f"/v1/projects/{project_id}"))


class InstanceCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/instances"

    def list(
        self,
        *,
        status: str | Iterable[str] | None,
        label: str | Iterable[str] | None,
        page_size: int | None,
    ) -> Flow[list[Instance]]:
        params = _repeated("status", status) + _repeated("label", label)
        items = yield from self._session.all_pages(
            Call("GET", self._path, params=params), page_size=page_size
        )
        return [Instance.from_json(item) for item in items]

    def create(
        self,
        *,
        name: str,
        size: str,
        image: str,
        region: str | None,
        user_data: str | None,
        ssh_public_key: str | None,
        firewall: Iterable[FirewallRule],
        public_ip: bool,
        labels: Mapping[str, str] | None,
        idempotency_key: str | None,
    ) -> Flow[Operation]:
        body: dict[str, Any] = {
            "name": name,
            "size": size,
            "image": image,
            "firewall": [rule.to_json() for rule in firewall],
            "public_ip": public_ip,
            "labels": dict(labels or {}),
        }
        optional = {"region": region, "user_data": user_data, "ssh_public_key": ssh_public_key}
        body.update({key: value for key, value in optional.items() if value is not None})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return (
            yield from operation(
                self._session, Call("POST", self._path, json=body, headers=headers)
            )
        )

    def get(self, instance_id: str) -> Flow[Instance]:
        response = yield from self._session.request(Call("GET", f"{self._path}/{instance_id}"))
        return Instance.from_json(response.json())

    def action(self, instance_id: str, action: str, body: Any = None) -> Flow[Operation]:
        """start, stop, reboot or resize (with ``body``)."""
        return (
            yield from operation(
                self._session, Call("POST", f"{self._path}/{instance_id}/{action}", json=body)
            )
        )

    def delete(self, instance_id: str) -> Flow[Operation]:
        return (yield from operation(self._session, Call("DELETE", f"{self._path}/{instance_id}")))

    def console(self, instance_id: str) -> Flow[str]:
        response = yield from self._session.request(
            Call("GET", f"{self._path}/{instance_id}/console")
        )
        output: str = response.json()["output"]
        return output


class OperationCalls:
    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._path = f"/v1/projects/{project_id}/operations"

    def get(self, operation_id: str) -> Flow[Operation]:
        response = yield from self._session.request(Call("GET", f"{self._path}/{operation_id}"))
        return Operation.from_json(response.json())

    def wait(
        self,
        operation: Operation | str,
        *,
        timeout: float,
        poll: float,
        on_progress: ProgressCallback | None,
    ) -> Flow[Operation]:
        """Polls until the operation succeeds (returning it) or fails (raising
        ``OperationFailed``); raises ``OperationTimeout`` after ``timeout`` seconds."""
        operation_id = operation.id if isinstance(operation, Operation) else operation
        deadline = time.monotonic() + timeout
        seen: tuple[str, str | None] | None = None
        while True:
            current = yield from self.get(operation_id)
            if on_progress is not None and (current.status, current.progress) != seen:
                seen = (current.status, current.progress)
                on_progress(current)
            if current.status == "succeeded":
                return current
            if current.status == "failed":
                raise OperationFailed(current)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationTimeout(current, timeout=timeout)
            yield from pause(min(poll, remaining))
