"""``lariba instances``: create, list, show, power actions, resize, delete, console."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lariba.cli.remote.connection import (
    EXIT_USAGE,
    Connection,
    ProfileOption,
    ProjectOption,
    fail,
    not_found_in_project,
    parse_labels,
)
from lariba.cli.remote.operations import TimeoutOption, WaitOption, emit_operation, wait_for
from lariba.cli.remote.output import Column, Format, OutputOption, emit_list, emit_record
from lariba.client import Client, FirewallRule, Instance, Operation

app = typer.Typer(
    help="""Instances: virtual machines in a project. Changes run as operations; --wait follows one.

Examples:

  lariba instances create web-1 --size small --image shell --user-data-file boot.sh --wait

  lariba instances list --output json

  lariba instances stop 3f0c... --wait
""",
    no_args_is_help=True,
)

InstanceId = Annotated[str, typer.Argument(help="The instance's id (see `lariba instances list`).")]

COLUMNS: list[Column] = [
    ("ID", lambda i: i.id),
    ("NAME", lambda i: i.name),
    ("STATUS", lambda i: i.status),
    ("SIZE", lambda i: i.size),
    ("IMAGE", lambda i: i.image),
    ("REGION", lambda i: i.region),
    ("ADDRESS", lambda i: i.addresses.public_ip or i.addresses.private_ip),
    ("LABELS", lambda i: i.labels),
]


@app.command("list")
def list_instances(
    status: Annotated[
        list[str] | None, typer.Option(help="Only these statuses (repeat the option).")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="Only instances with this label: key=value or key.")
    ] = None,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """List a project's instances, oldest first.

    Example: lariba instances list --status running --label env=prod
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        instances = client.instances(project_id).list(status=status, label=label)
    emit_list(instances, COLUMNS, output)


@app.command("create")
def create_instance(
    name: Annotated[str, typer.Argument(help="A name, unique in the project.")],
    size: Annotated[str, typer.Option(help="A catalog size, e.g. nano, small.")],
    image: Annotated[str, typer.Option(help="A catalog image, e.g. shell.")],
    region: Annotated[str | None, typer.Option(help="Default: the catalog's first.")] = None,
    user_data_file: Annotated[
        Path | None, typer.Option(help="First-boot script to run (at most 16 KiB).")
    ] = None,
    ssh_key_file: Annotated[
        Path | None, typer.Option(help="An SSH public key file, e.g. ~/.ssh/id_ed25519.pub.")
    ] = None,
    firewall: Annotated[
        list[str] | None,
        typer.Option(
            help="Inbound traffic to allow: PROTOCOL[:PORT[-PORT]]@CIDR, e.g. "
            "tcp:22@203.0.113.0/24, tcp:8000-8100@0.0.0.0/0, icmp@0.0.0.0/0. Repeatable."
        ),
    ] = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value. Repeatable.")] = None,
    public_ip: Annotated[bool, typer.Option(help="Give it a public address.")] = False,
    wait: WaitOption = False,
    timeout: TimeoutOption = 300,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Create an instance. With --wait, show progress until it runs, then show it.

    Example: lariba instances create web-1 --size nano --image shell \\
      --user-data-file boot.sh --firewall tcp:22@0.0.0.0/0 --label env=prod --wait
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    rules = [_firewall_rule(rule) for rule in firewall or ()]
    labels = parse_labels(label)
    user_data = _read_file(user_data_file, "--user-data-file")
    ssh_key = _read_file(ssh_key_file, "--ssh-key-file")
    with connection.client() as client:
        operation = client.instances(project_id).create(
            name=name,
            size=size,
            image=image,
            region=region,
            user_data=user_data,
            ssh_public_key=ssh_key.strip() if ssh_key else None,
            firewall=rules,
            public_ip=public_ip,
            labels=labels,
        )
        _finish(client, operation, wait=wait, timeout=timeout, output=output)


@app.command("get")
def get_instance(
    instance_id: InstanceId,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Show one instance."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=not_found_in_project("instance", instance_id, project_id)
    ) as client:
        instance = client.instances(project_id).get(instance_id)
    emit_record(instance, output)


def _power_action(action: str, summary: str) -> None:
    def command(
        instance_id: InstanceId,
        wait: WaitOption = False,
        timeout: TimeoutOption = 300,
        project: ProjectOption = None,
        profile_name: ProfileOption = "default",
        output: OutputOption = Format.table,
    ) -> None:
        connection = Connection.open(profile_name)
        project_id = connection.project_id(project)
        with connection.client(
            not_found=not_found_in_project("instance", instance_id, project_id)
        ) as client:
            instances = client.instances(project_id)
            operation = getattr(instances, action)(instance_id)
            _finish(client, operation, wait=wait, timeout=timeout, output=output)

    command.__doc__ = f"{summary}\n\nExample: lariba instances {action} 3f0c... --wait"
    app.command(action)(command)


_power_action("start", "Start a stopped instance.")
_power_action("stop", "Stop a running instance (it keeps its disk and address).")
_power_action("reboot", "Reboot a running instance.")


@app.command("resize")
def resize_instance(
    instance_id: InstanceId,
    size: Annotated[str, typer.Argument(help="The new catalog size.")],
    wait: WaitOption = False,
    timeout: TimeoutOption = 300,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Change an instance's size (a running instance is stopped and started again).

    Example: lariba instances resize 3f0c... medium --wait
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=not_found_in_project("instance", instance_id, project_id)
    ) as client:
        operation = client.instances(project_id).resize(instance_id, size)
        _finish(client, operation, wait=wait, timeout=timeout, output=output)


@app.command("delete")
def delete_instance(
    instance_id: InstanceId,
    wait: WaitOption = False,
    timeout: TimeoutOption = 300,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Delete an instance.

    Example: lariba instances delete 3f0c... --wait
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=not_found_in_project("instance", instance_id, project_id)
    ) as client:
        operation = client.instances(project_id).delete(instance_id)
        if not wait:
            emit_operation(operation, output, kind="Instance")
            return
        done = wait_for(client, operation, timeout=timeout)
    if output is Format.table:
        typer.echo(f"Instance {instance_id} deleted.")
    else:
        emit_record(done, output)


@app.command("console")
def console_output(
    instance_id: InstanceId,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
) -> None:
    """Print an instance's console output, most recent last."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=not_found_in_project("instance", instance_id, project_id)
    ) as client:
        text = client.instances(project_id).console(instance_id)
    typer.echo(text, nl=not text.endswith("\n"))


def _finish(
    client: Client, operation: Operation, *, wait: bool, timeout: float, output: Format
) -> None:
    """Without --wait, shows the operation; with it, follows it and shows the instance."""
    if not wait:
        emit_operation(operation, output, kind="Instance")
        return
    wait_for(client, operation, timeout=timeout)
    instance: Instance = client.instances(operation.project_id).get(operation.resource_id)
    emit_record(instance, output)


def _firewall_rule(text: str) -> FirewallRule:
    spec, at, cidr = text.rpartition("@")
    protocol, _, ports = spec.partition(":")
    if not at or not protocol or not cidr:
        fail(
            f"--firewall {text}: expected PROTOCOL[:PORT[-PORT]]@CIDR, e.g. tcp:22@0.0.0.0/0",
            EXIT_USAGE,
        )
    first, _, last = ports.partition("-")
    try:
        port_from = int(first) if first else None
        port_to = int(last) if last else None
    except ValueError:
        fail(f"--firewall {text}: ports are numbers, e.g. tcp:8000-8100@0.0.0.0/0", EXIT_USAGE)
    return FirewallRule(protocol=protocol, cidr=cidr, port_from=port_from, port_to=port_to)


def _read_file(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    try:
        return path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{option} {path}: cannot read it ({exc})", EXIT_USAGE)
