"""``lariba buckets``: list, create, show and delete object storage buckets."""

from __future__ import annotations

from typing import Annotated

import typer

from lariba.cli.remote.connection import (
    EXIT_API_ERROR,
    Connection,
    ProfileOption,
    ProjectOption,
    fail,
    not_found_in_project,
    parse_labels,
)
from lariba.cli.remote.operations import TimeoutOption, WaitOption, emit_operation, wait_for
from lariba.cli.remote.output import Column, Format, OutputOption, emit_list, emit_record
from lariba.client import Bucket, Client

app = typer.Typer(
    help="""Buckets: object storage in a project. Copy files in and out with `lariba cp`.

Examples:

  lariba buckets create reports --versioning --label env=prod --wait

  lariba buckets list --output json

  lariba buckets delete reports --force --wait
""",
    no_args_is_help=True,
)

BucketRef = Annotated[
    str, typer.Argument(help="The bucket's name or id (see `lariba buckets list`).")
]

COLUMNS: list[Column] = [
    ("ID", lambda b: b.id),
    ("NAME", lambda b: b.name),
    ("STATUS", lambda b: b.status),
    ("REGION", lambda b: b.region),
    ("OBJECTS", lambda b: b.objects),
    ("BYTES", lambda b: b.bytes),
    ("VERSIONING", lambda b: b.versioning),
    ("LABELS", lambda b: b.labels),
]


def find_bucket(client: Client, project_id: str, ref: str) -> Bucket:
    """The project's bucket whose id or name is ``ref``; ends the command (exit 1) when
    there is none."""
    buckets = client.buckets(project_id).list()
    for bucket in buckets:
        if bucket.id == ref:
            return bucket
    for bucket in buckets:
        if bucket.name == ref:
            return bucket
    fail(not_found_in_project("bucket", ref, project_id), EXIT_API_ERROR)


@app.command("list")
def list_buckets(
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """List a project's buckets, oldest first."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        buckets = client.buckets(project_id).list()
    emit_list(buckets, COLUMNS, output)


@app.command("create")
def create_bucket(
    name: Annotated[
        str,
        typer.Argument(
            help="A name, unique in the project: 3-63 lowercase letters, digits, hyphens, dots."
        ),
    ],
    versioning: Annotated[
        bool, typer.Option("--versioning", help="Keep earlier versions of overwritten objects.")
    ] = False,
    region: Annotated[str | None, typer.Option(help="Default: the catalog's first.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value. Repeatable.")] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = 300,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Create a bucket. With --wait, show progress until it is available, then show it.

    Example: lariba buckets create reports --label env=prod --wait
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    labels = parse_labels(label)
    with connection.client() as client:
        operation = client.buckets(project_id).create(
            name, region=region, versioning=versioning, labels=labels
        )
        if not wait:
            emit_operation(operation, output, kind="Bucket")
            return
        wait_for(client, operation, timeout=timeout)
        bucket = client.buckets(project_id).get(operation.resource_id)
    emit_record(bucket, output)


@app.command("get")
def get_bucket(
    bucket: BucketRef,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Show one bucket: its status, object count and bytes stored."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        found = find_bucket(client, project_id, bucket)
    emit_record(found, output)


@app.command("delete")
def delete_bucket(
    bucket: BucketRef,
    force: Annotated[
        bool, typer.Option("--force", help="Delete it with every object it holds.")
    ] = False,
    wait: WaitOption = False,
    timeout: TimeoutOption = 300,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Delete a bucket. It must be empty, unless --force.

    Example: lariba buckets delete reports --force --wait
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        found = find_bucket(client, project_id, bucket)
        operation = client.buckets(project_id).delete(found.id, force=force)
        if not wait:
            emit_operation(operation, output, kind="Bucket")
            return
        done = wait_for(client, operation, timeout=timeout)
    if output is Format.table:
        typer.echo(f"Bucket {found.name} ({found.id}) deleted.")
    else:
        emit_record(done, output)
