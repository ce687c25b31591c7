"""``lariba projects``: list, create, show, delete projects and pick the default one."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from lariba.cli.remote.connection import Connection, ProfileOption
from lariba.cli.remote.output import Column, Format, OutputOption, emit_list, emit_record
from lariba.client import Project

app = typer.Typer(
    help="""Projects: everything you create belongs to one.

Examples:

  lariba projects create analytics

  lariba projects use 0b5f...   (instance commands then need no --project)

  lariba projects list --output json
""",
    no_args_is_help=True,
)

ProjectId = Annotated[str, typer.Argument(help="The project's id (see `lariba projects list`).")]

COLUMNS: list[Column] = [
    ("ID", lambda p: p.id),
    ("NAME", lambda p: p.name),
    ("ROLE", lambda p: p.role),
    ("CREATED", lambda p: p.created_at),
    ("DESCRIPTION", lambda p: p.description),
]


def _not_found(project_id: str) -> str:
    return f"project {project_id} not found (or you are not a member): see `lariba projects list`"


@app.command("list")
def list_projects(
    profile_name: ProfileOption = "default", output: OutputOption = Format.table
) -> None:
    """List the projects you are a member of."""
    connection = Connection.open(profile_name)
    with connection.client() as client:
        projects = client.projects.list()
    emit_list(projects, COLUMNS, output)


@app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(help="A name for the project.")],
    description: Annotated[str | None, typer.Option(help="What the project is for.")] = None,
    use: Annotated[
        bool, typer.Option("--use", help="Make it the profile's default project.")
    ] = False,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Create a project; you become its owner.

    Example: lariba projects create analytics --description "Reports" --use
    """
    connection = Connection.open(profile_name)
    with connection.client() as client:
        project = client.projects.create(name, description)
    if use:
        _use(connection, project)
    _emit(project, output)


@app.command("get")
def get_project(
    project_id: ProjectId,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Show one project."""
    connection = Connection.open(profile_name)
    with connection.client(not_found=_not_found(project_id)) as client:
        project = client.projects.get(project_id)
    _emit(project, output)


@app.command("delete")
def delete_project(project_id: ProjectId, profile_name: ProfileOption = "default") -> None:
    """Delete a project (the owner only; delete its resources first).

    Example: lariba projects delete 0b5f...
    """
    connection = Connection.open(profile_name)
    with connection.client(not_found=_not_found(project_id)) as client:
        client.projects.delete(project_id)
    profile = connection.profile
    if profile is not None and profile.project == project_id:
        connection.save(replace(profile, project=None))
    typer.echo(f"Project {project_id} deleted.")


@app.command("use")
def use_project(project_id: ProjectId, profile_name: ProfileOption = "default") -> None:
    """Make a project the default of the profile's commands (no --project needed).

    Example: lariba projects use 0b5f...
    """
    connection = Connection.open(profile_name)
    with connection.client(not_found=_not_found(project_id)) as client:
        project = client.projects.get(project_id)
    _use(connection, project)


def _use(connection: Connection, project: Project) -> None:
    assert connection.profile is not None
    connection.save(replace(connection.profile, project=project.id))
    typer.echo(
        f"Default project of profile {connection.profile_name}: {project.name} ({project.id}).",
        err=True,
    )


def _emit(project: Project, output: Format) -> None:
    if output is Format.table:
        emit_list([project], COLUMNS, output)
    else:
        emit_record(project, output)
