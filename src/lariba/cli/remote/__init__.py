"""The ``lariba`` commands for users of a Lariba Cloud server: log in, then manage
projects, instances, buckets and their objects, databases and operations through the API
(``lariba.client``), and read what a project used, cost and did: usage, cost, logs, the
audit log, alert rules and live events."""

from __future__ import annotations

import typer

from lariba.cli.remote import (
    account,
    alerts,
    buckets,
    databases,
    instances,
    monitoring,
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
    monitoring.register(app)
    app.add_typer(alerts.app, name="alerts")
