"""The ``lariba`` commands for users of a Lariba Cloud server: log in, then manage
projects, instances, buckets and their objects, databases and operations through the API
(``lariba.client``)."""

from __future__ import annotations

import typer

from lariba.cli.remote import (
    account,
    buckets,
    databases,
    instances,
    objects,
    operations,
    projects,
)


def register_user_commands(app: typer.Typer) -> None:
    account.register(app)
    app.add_typer(projects.app, name="projects")
    app.add_typer(instances.app, name="instances")
    app.add_typer(buckets.app, name="buckets")
    objects.register(app)
    app.add_typer(databases.app, name="databases")
    app.add_typer(operations.app, name="operations")
