"""The ``lariba`` commands for users of a Lariba Cloud server: log in, then manage
projects, instances and operations through the API (``lariba.client``)."""

from __future__ import annotations

import typer

from lariba.cli.remote import account, instances, operations, projects


def register_user_commands(app: typer.Typer) -> None:
    account.register(app)
    app.add_typer(projects.app, name="projects")
    app.add_typer(instances.app, name="instances")
    app.add_typer(operations.app, name="operations")
