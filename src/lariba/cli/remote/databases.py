"""``lariba databases``: create, list, show, reveal and delete managed PostgreSQL
databases."""

from __future__ import annotations

from typing import Annotated

import typer

from lariba.cli.remote.connection import (
    Connection,
    ProfileOption,
    ProjectOption,
    not_found_in_project,
    parse_labels,
)
from lariba.cli.remote.operations import TimeoutOption, WaitOption, emit_operation, wait_for
from lariba.cli.remote.output import (
    Column,
    Format,
    OutputOption,
    emit_data,
    emit_list,
    emit_record,
    plain,
)

app = typer.Typer(
    help="""Databases: managed PostgreSQL in a project.

Examples:

  lariba databases create orders --size small --storage-gb 10 --wait

  lariba databases reveal 7d1e...   (the connection URI, with the password)

  lariba databases delete 7d1e... --final-snapshot --wait
""",
    no_args_is_help=True,
)

DatabaseId = Annotated[str, typer.Argument(help="The database's id (see `lariba databases list`).")]

COLUMNS: list[Column] = [
    ("ID", lambda d: d.id),
    ("NAME", lambda d: d.name),
    ("STATUS", lambda d: d.status),
    ("SIZE", lambda d: d.size),
    ("STORAGE_GB", lambda d: d.storage_gb),
    ("VERSION", lambda d: d.engine_version),
    ("REGION", lambda d: d.region),
    ("HOST", lambda d: f"{d.endpoint.host}:{d.endpoint.port}" if d.endpoint else None),
    ("LABELS", lambda d: d.labels),
]


@app.command("list")
def list_databases(
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """List a project's databases, oldest first."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        databases = client.databases(project_id).list()
    emit_list(databases, COLUMNS, output)


@app.command("create")
def create_database(
    name: Annotated[str, typer.Argument(help="A name, unique in the project.")],
    size: Annotated[str, typer.Option(help="A catalog database size, e.g. small.")],
    storage_gb: Annotated[int, typer.Option(help="Disk size in GB.")],
    engine_version: Annotated[
        str | None, typer.Option(help="PostgreSQL major version. Default: the newest offered.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="Default: the catalog's first.")] = None,
    deletion_protection: Annotated[
        bool,
        typer.Option("--deletion-protection", help="Refuse deletion until it is turned off."),
    ] = False,
    label: Annotated[list[str] | None, typer.Option(help="key=value. Repeatable.")] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Create a database and print its password, which is shown only this once. With
    --wait, show progress until it is available, then show it.

    Example: lariba databases create orders --size small --storage-gb 10 --wait
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    labels = parse_labels(label)
    with connection.client() as client:
        created = client.databases(project_id).create(
            name,
            size=size,
            storage_gb=storage_gb,
            engine_version=engine_version,
            region=region,
            deletion_protection=deletion_protection,
            labels=labels,
        )
        credentials = created.credentials
        # The password is printed before any wait: a wait that fails must not lose it.
        if output is Format.table:
            typer.echo(f"username  {credentials.username}")
            typer.echo(f"password  {credentials.password}")
            typer.echo(
                "The password is shown only now: keep it somewhere safe. Project admins can "
                f"see it again with `lariba databases reveal {created.resource_id}`.",
                err=True,
            )
        if not wait:
            if output is Format.table:
                emit_operation(created, output, kind="Database")
            else:
                emit_data(created, output)
            return
        wait_for(client, created, timeout=timeout)
        database = client.databases(project_id).get(created.resource_id)
    if output is Format.table:
        emit_record(database, output)
    else:
        emit_data({**plain(database), "credentials": plain(credentials)}, output)


@app.command("get")
def get_database(
    database_id: DatabaseId,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Show one database: its status, size and endpoint (not its password: see reveal)."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=not_found_in_project("database", database_id, project_id)
    ) as client:
        database = client.databases(project_id).get(database_id)
    emit_record(database, output)


@app.command("reveal")
def reveal_database(
    database_id: DatabaseId,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Print the connection URI, password included (project admins only; the server
    records who asked). With -o json or yaml, every connection detail.

    Example: psql "$(lariba databases reveal 7d1e...)"
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=not_found_in_project("database", database_id, project_id)
    ) as client:
        credentials = client.databases(project_id).reveal(database_id)
    if output is not Format.table:
        emit_data(credentials, output)
    elif credentials.uri is None:
        typer.echo(
            f"lariba: database {database_id} has no address yet: wait for it with "
            f"`lariba databases get {database_id}`",
            err=True,
        )
        raise typer.Exit(1)
    else:
        typer.echo(credentials.uri)


@app.command("delete")
def delete_database(
    database_id: DatabaseId,
    final_snapshot: Annotated[
        bool,
        typer.Option(
            "--final-snapshot", help="Take a snapshot first (see the database snapshots)."
        ),
    ] = False,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Delete a database.

    Example: lariba databases delete 7d1e... --final-snapshot --wait
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=not_found_in_project("database", database_id, project_id)
    ) as client:
        operation = client.databases(project_id).delete(database_id, final_snapshot=final_snapshot)
        if not wait:
            emit_operation(operation, output, kind="Database")
            return
        done = wait_for(client, operation, timeout=timeout)
    if output is Format.table:
        typer.echo(f"Database {database_id} deleted.")
    else:
        emit_record(done, output)
