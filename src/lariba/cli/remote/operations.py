"""``lariba operations``: follow the background changes of a project, and the ``--wait``
every changing command shares."""

from __future__ import annotations

from typing import Annotated

import typer

from lariba.cli.remote.connection import Connection, ProfileOption, ProjectOption
from lariba.cli.remote.output import Format, OutputOption, emit_record, show_progress
from lariba.client import Client, Operation

app = typer.Typer(
    help="""Operations: changes carried out in the background (create, stop, delete ...).

Examples:

  lariba operations get 14007f7b...

  lariba operations wait 14007f7b... --timeout 600
""",
    no_args_is_help=True,
)

WaitOption = Annotated[
    bool,
    typer.Option("--wait", help="Show progress until the operation finishes; exit 5 if it fails."),
]
TimeoutOption = Annotated[
    float, typer.Option(help="With --wait: give up after this many seconds (exit 5).")
]
OperationId = Annotated[str, typer.Argument(help="The operation's id.")]


def wait_for(client: Client, operation: Operation, *, timeout: float) -> Operation:
    """Follows ``operation`` to its end, its progress on stderr; raises ``OperationFailed``
    or ``OperationTimeout`` (exit 5)."""
    return client.operations(operation.project_id).wait(
        operation, timeout=timeout, on_progress=show_progress
    )


def emit_operation(operation: Operation, output: Format, *, kind: str) -> None:
    """A change that was not waited for: the operation carrying it out, and how to follow
    it. ``kind`` names the resource, e.g. ``Bucket``."""
    if output is not Format.table:
        emit_record(operation, output)
        return
    typer.echo(
        f"{kind} {operation.resource_id}: {operation.type} is {operation.status} "
        f"(operation {operation.id}). Follow it with `lariba operations wait {operation.id}`."
    )


def _not_found(operation_id: str, project_id: str) -> str:
    return f"operation {operation_id} not found in project {project_id}"


@app.command("get")
def get_operation(
    operation_id: OperationId,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Show an operation: its status, progress and error."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(not_found=_not_found(operation_id, project_id)) as client:
        operation = client.operations(project_id).get(operation_id)
    emit_record(operation, output)


@app.command("wait")
def wait_operation(
    operation_id: OperationId,
    timeout: TimeoutOption = 300,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Show an operation's progress until it finishes; exit 5 if it fails or times out."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(not_found=_not_found(operation_id, project_id)) as client:
        operation = client.operations(project_id).get(operation_id)
        done = wait_for(client, operation, timeout=timeout)
    emit_record(done, output)
