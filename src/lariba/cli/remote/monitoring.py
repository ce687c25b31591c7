"""``lariba usage``, ``cost``, ``logs``, ``audit`` and ``events``: what a project used and
cost, what happened to a resource, who did what, and its status changes live."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from lariba.cli.remote.connection import Connection, ProfileOption, ProjectOption
from lariba.cli.remote.output import (
    Column,
    Format,
    OutputOption,
    emit_data,
    emit_line,
    emit_list,
    emit_record,
)
from lariba.client import CostReport, Event, LogEntry, UsageReport

FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Start, inclusive: ISO 8601 (UTC without an offset), e.g. 2026-11-01. "
        "Default: the start of this UTC month.",
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", help="End, exclusive. Default and latest: now."),
]
GroupByOption = Annotated[
    list[str] | None,
    typer.Option("--group-by", help="day, resource, resource_kind or meter. Repeat for several."),
]


def _resource(item: object) -> str | None:
    resource = getattr(item, "resource", None)
    if resource is None:
        return None
    if resource.name is None:
        return f"{resource.kind} {resource.id}"
    return f"{resource.kind} {resource.name} ({resource.id})"


USAGE_COLUMNS: list[Column] = [
    ("METER", lambda i: i.meter),
    ("SKU", lambda i: i.sku),
    ("QUANTITY", lambda i: i.quantity),
    ("UNIT", lambda i: i.unit),
    ("COST_USD", lambda i: i.cost_usd),
    ("DAY", lambda i: i.day),
    ("RESOURCE", _resource),
]

COST_COLUMNS: list[Column] = [
    ("COST_USD", lambda i: i.cost_usd),
    ("DAY", lambda i: i.day),
    ("KIND", lambda i: i.resource_kind),
    ("METER", lambda i: i.meter),
    ("SKU", lambda i: i.sku),
    ("RESOURCE", _resource),
]


def usage(
    start: FromOption = None,
    end: ToOption = None,
    group_by: GroupByOption = None,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """What a project used, per meter and size, with what it cost.

    Examples:

      lariba usage

      lariba usage --group-by resource --from 2026-11-01 --to 2026-11-15

      lariba usage --group-by day --output json
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        report = client.usage(project_id).report(start=start, end=end, group_by=group_by)
    if output is not Format.table:
        emit_data(report, output)
        return
    _window_line(report)
    emit_list(report.items, USAGE_COLUMNS, output)


def _window_line(report: UsageReport | CostReport) -> None:
    typer.echo(
        f"Project {report.project_id}, from {report.start.isoformat(timespec='seconds')} "
        f"to {report.end.isoformat(timespec='seconds')}"
    )


cost_app = typer.Typer(
    help="""What a project cost, this month's forecast, its FOCUS export and its budget.

Without a subcommand, shows the cost report.

Examples:

  lariba cost

  lariba cost --group-by resource --group-by day

  lariba cost export november.csv --from 2026-11-01 --to 2026-12-01

  lariba cost budget set 20 --threshold 50 --threshold 100 --block-provisioning

  lariba cost budget show
""",
    invoke_without_command=True,
)


@cost_app.callback()
def cost(
    context: typer.Context,
    start: FromOption = None,
    end: ToOption = None,
    group_by: GroupByOption = None,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """What a project cost (grouped by resource kind unless --group-by says otherwise),
    its total and this month's forecast."""
    if context.invoked_subcommand is not None:
        return
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        report = client.cost(project_id).report(start=start, end=end, group_by=group_by)
    if output is not Format.table:
        emit_data(report, output)
        return
    _window_line(report)
    emit_list(report.items, COST_COLUMNS, output)
    forecast = report.forecast
    typer.echo(f"Total: {report.total_usd} {report.currency}")
    typer.echo(
        f"Forecast for {forecast.month}: {forecast.end_of_month_usd} USD "
        f"({forecast.month_to_date_usd} so far, {forecast.run_rate_usd_per_hour} per hour now)"
    )


@cost_app.command("export")
def export_cost(
    file: Annotated[Path, typer.Argument(help="Where to write the CSV.", dir_okay=False)],
    start: FromOption = None,
    end: ToOption = None,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
) -> None:
    """Write usage and cost as CSV in FinOps FOCUS columns: one row per resource, meter
    and sku per UTC day.

    Example: lariba cost export november.csv --from 2026-11-01 --to 2026-12-01
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        client.cost(project_id).export(file, start=start, end=end)
    typer.echo(f"Wrote {file}", err=True)


budget_app = typer.Typer(
    help="""A project's monthly budget in USD: notified at each threshold, and with
--block-provisioning no new resources once it is spent.

Examples:

  lariba cost budget set 20 --threshold 50 --threshold 80 --threshold 100

  lariba cost budget show --output json
""",
    no_args_is_help=True,
)
cost_app.add_typer(budget_app, name="budget")


@budget_app.command("show")
def show_budget(
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Show the budget and where this month stands against it."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=f"project {project_id} has no budget: set one with `lariba cost budget set`"
    ) as client:
        budget = client.cost(project_id).budget()
    emit_record(budget, output)


@budget_app.command("set")
def set_budget(
    amount: Annotated[Decimal, typer.Argument(help="USD a month, e.g. 20 or 19.99.")],
    threshold: Annotated[
        list[int] | None,
        typer.Option(help="Percent of the amount to notify at. Repeat. Default: 50, 80, 100."),
    ] = None,
    block_provisioning: Annotated[
        bool,
        typer.Option(help="Refuse new instances, buckets and databases once it is spent."),
    ] = False,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Set (or replace) the monthly budget (needs the admin role).

    Example: lariba cost budget set 20 --threshold 80 --block-provisioning
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        budget = client.cost(project_id).set_budget(
            amount, thresholds=threshold, block_provisioning=block_provisioning
        )
    emit_record(budget, output)


@budget_app.command("delete")
def delete_budget(
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
) -> None:
    """Remove the budget (needs the admin role)."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(not_found=f"project {project_id} has no budget") as client:
        client.cost(project_id).delete_budget()
    typer.echo(f"Budget of project {project_id} removed.")


LOG_COLUMNS: list[Column] = [
    ("AT", lambda e: e.at),
    ("SOURCE", lambda e: e.source),
    ("SUMMARY", lambda e: e.summary),
]


def logs(
    resource_id: Annotated[
        str, typer.Argument(help="An instance, bucket or database id (deleted ones too).")
    ],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new entries as they come, until Ctrl-C."
        ),
    ] = False,
    poll: Annotated[
        float, typer.Option(help="With --follow: read the log again every this many seconds.")
    ] = 2.0,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """A resource's log, oldest first: its operations (who asked for what, and how it
    went) and its status changes. What an instance printed is `lariba instances console`.

    Examples:

      lariba logs 3f0c...

      lariba logs 3f0c... --follow

      lariba logs 3f0c... --follow --output json   (one JSON object per line)
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(
        not_found=f"resource {resource_id} not found in project {project_id}"
    ) as client:
        if not follow:
            entries: list[LogEntry] = client.logs(project_id).get(resource_id)
            emit_list(entries, LOG_COLUMNS, output)
            return
        for entry in client.logs(project_id).follow(resource_id, poll=poll):
            emit_line(entry, LOG_COLUMNS, output)


AUDIT_COLUMNS: list[Column] = [
    ("ID", lambda e: e.id),
    ("TIME", lambda e: e.occurred_at),
    ("ACTOR", lambda e: e.actor_label or e.actor_type),
    ("ACTION", lambda e: e.action),
    ("TARGET", lambda e: f"{e.target_type} {e.target_id}" if e.target_id else e.target_type),
    ("OUTCOME", lambda e: e.outcome),
]


def audit(
    actor: Annotated[
        str | None, typer.Option(help="A user or API key id, or an e-mail (any case).")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(help="An action (instance.stop), or a prefix ending in a dot (instance.)."),
    ] = None,
    target_type: Annotated[
        str | None, typer.Option(help="instance, bucket, database, project, member, ...")
    ] = None,
    target_id: Annotated[str | None, typer.Option(help="The id of what was acted on.")] = None,
    outcome: Annotated[str | None, typer.Option(help="success, failure or denied.")] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="At or after: ISO 8601 with a zone (2026-11-01T00:00:00Z)."),
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Before: ISO 8601 with a zone.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (newest first).")] = 50,
    export: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Write every matching event to this file instead, oldest first, as JSON "
            "lines (no --limit).",
        ),
    ] = None,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """A project's audit log, newest first: who did what to which, and how it went
    (needs the admin role).

    Examples:

      lariba audit --action instance. --limit 20

      lariba audit --actor ada@example.com --outcome denied --output json

      lariba audit --from 2026-01-01T00:00:00Z --export audit-2026.jsonl
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    filters = {
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "outcome": outcome,
        "start": start,
        "end": end,
    }
    with connection.client() as client:
        if export is not None:
            count = client.audit(project_id).export(export, **filters)
            typer.echo(f"Wrote {count} audit events to {export}", err=True)
            return
        events = client.audit(project_id).list(limit=limit, **filters)
    emit_list(events, AUDIT_COLUMNS, output)


EVENT_COLUMNS: list[Column] = [
    ("ID", lambda e: e.id),
    ("TIME", lambda e: e.occurred_at),
    ("RESOURCE", lambda e: f"{e.resource_kind} {e.resource_id}"),
    ("TYPE", lambda e: e.type),
    ("CHANGE", lambda e: _change(e)),
]


def _change(event: Event) -> str:
    change = f"{event.from_status} → {event.to_status}" if event.from_status else event.to_status
    return f"{change} ({event.reason})" if event.reason else change


def events(
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Print each event as it happens, until Ctrl-C (exit 130)."
        ),
    ] = False,
    after: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="With --follow: first replay the events after this id (0: all of them), "
            "then go live. Default: from now.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, help="Without --follow: show this many (newest first).")
    ] = 50,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """The status changes of a project's instances, buckets and databases, and the
    changes seen at the provider (drift). With --follow, live: the stream resumes by
    itself where it was if the connection drops.

    Examples:

      lariba events

      lariba events --follow

      lariba events --follow --after 0 --output json   (history, then live, JSON lines)
    """
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        if not follow:
            emit_list(client.events(project_id).list(limit=limit), EVENT_COLUMNS, output)
            return
        typer.echo(f"Following the events of project {project_id} (Ctrl-C to stop)", err=True)
        for event in client.events(project_id).stream(after=after):
            emit_line(event, EVENT_COLUMNS, output)


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)
    app.add_typer(cost_app, name="cost")
    app.command("logs")(logs)
    app.command("audit")(audit)
    app.command("events")(events)
