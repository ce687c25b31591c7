"""``lariba alerts``: rules that watch a resource's metric or the project's cost, their
state and its history."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer

from lariba.cli.remote.connection import (
    EXIT_USAGE,
    Connection,
    ProfileOption,
    ProjectOption,
    fail,
    not_found_in_project,
)
from lariba.cli.remote.output import Column, Format, OutputOption, emit_list, emit_record
from lariba.client import AlertRule, CostSource, MetricSource
from lariba.client.models import AlertSource
from lariba.client.monitoring import UNCHANGED

app = typer.Typer(
    help="""Alert rules: a resource's metric or the project's cost compared with a threshold,
evaluated every minute; a change of state is notified (webhooks, e-mail) and kept in the
rule's history.

Examples:

  lariba alerts create "web-1 cpu high" --resource 3f0c... --metric cpu_percent \\
    --comparison '>' --threshold 80 --window 5m --email ops@example.com

  lariba alerts create month --cost end_of_month_forecast --comparison '>=' --threshold 500

  lariba alerts list

  lariba alerts history e902...
""",
    no_args_is_help=True,
)

AlertId = Annotated[str, typer.Argument(help="The rule's id (see `lariba alerts list`).")]


def _source(rule: AlertRule) -> str:
    source = rule.source
    if isinstance(source, CostSource):
        return f"cost {source.measure}"
    return f"{source.metric} {source.aggregate or ''} of {source.resource_id}".replace("  ", " ")


COLUMNS: list[Column] = [
    ("ID", lambda r: r.id),
    ("NAME", lambda r: r.name),
    ("SOURCE", _source),
    ("CONDITION", lambda r: f"{r.comparison} {r.threshold}"),
    ("WINDOW", lambda r: r.window),
    ("STATE", lambda r: r.state),
    ("ENABLED", lambda r: r.enabled),
    ("LAST_VALUE", lambda r: r.last_value),
]

HISTORY_COLUMNS: list[Column] = [
    ("AT", lambda c: c.at),
    ("FROM", lambda c: c.from_state),
    ("TO", lambda c: c.to_state),
    ("VALUE", lambda c: c.value),
    ("THRESHOLD", lambda c: c.threshold),
]

ResourceOption = Annotated[
    str | None,
    typer.Option("--resource", help="Watch a metric of this instance, bucket or database."),
]
MetricOption = Annotated[
    str | None,
    typer.Option(help="With --resource: the metric, e.g. cpu_percent, memory_bytes."),
]
AggregateOption = Annotated[
    str | None,
    typer.Option(help="With --metric: avg, min, max, sum or count. Default: the metric's own."),
]
CostOption = Annotated[
    str | None,
    typer.Option(
        "--cost",
        help="Watch the project's cost instead: month_to_date, end_of_month_forecast or "
        "window (the cost of the last --window).",
    ),
]
ComparisonOption = Annotated[
    str | None,
    typer.Option(
        help="'>', '>=', '<' or '<=': the rule alerts while value <comparison> threshold."
    ),
]
ThresholdOption = Annotated[Decimal | None, typer.Option(help="A number, e.g. 80 or 0.5.")]
WindowOption = Annotated[
    str | None,
    typer.Option(help="60s, 5m, 1h, 1d ...: metrics 1m to 24h; a cost window up to 31d."),
]
EmailOption = Annotated[
    list[str] | None, typer.Option("--email", help="E-mail on each change. Repeat (up to 10).")
]


def _chosen_source(
    resource: str | None, metric: str | None, aggregate: str | None, cost: str | None
) -> AlertSource | None:
    if cost is not None:
        if resource is not None or metric is not None or aggregate is not None:
            fail("give either --cost, or --resource with --metric, not both", EXIT_USAGE)
        return CostSource(measure=cost)
    if resource is None and metric is None and aggregate is None:
        return None
    if resource is None or metric is None:
        fail("--resource and --metric go together", EXIT_USAGE)
    return MetricSource(resource_id=resource, metric=metric, aggregate=aggregate)


@app.command("list")
def list_alerts(
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """List a project's alert rules with their state, oldest first."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        rules = client.alerts(project_id).list()
    emit_list(rules, COLUMNS, output)


@app.command("create")
def create_alert(
    name: Annotated[str, typer.Argument(help="A name, unique in the project.")],
    resource: ResourceOption = None,
    metric: MetricOption = None,
    aggregate: AggregateOption = None,
    cost: CostOption = None,
    comparison: ComparisonOption = None,
    threshold: ThresholdOption = None,
    window: WindowOption = None,
    email: EmailOption = None,
    enabled: Annotated[
        bool, typer.Option("--enabled/--disabled", help="A disabled rule is not evaluated.")
    ] = True,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Create an alert rule (needs the admin role).

    Examples:

      lariba alerts create "web-1 cpu high" --resource 3f0c... --metric cpu_percent \\
        --comparison '>' --threshold 80 --window 5m

      lariba alerts create "daily spend" --cost window --window 24h --comparison '>' \\
        --threshold 10
    """
    source = _chosen_source(resource, metric, aggregate, cost)
    if source is None:
        fail("say what to watch: --resource ID --metric NAME, or --cost MEASURE", EXIT_USAGE)
    if comparison is None or threshold is None:
        fail(
            "--comparison and --threshold are required, e.g. --comparison '>' --threshold 80",
            EXIT_USAGE,
        )
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        rule = client.alerts(project_id).create(
            name=name,
            source=source,
            comparison=comparison,
            threshold=threshold,
            window=window,
            enabled=enabled,
            emails=email or (),
        )
    emit_record(rule, output)


@app.command("get")
def get_alert(
    alert_id: AlertId,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Show an alert rule and its state."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(not_found=not_found_in_project("alert", alert_id, project_id)) as client:
        rule = client.alerts(project_id).get(alert_id)
    emit_record(rule, output)


@app.command("update")
def update_alert(
    alert_id: AlertId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    resource: ResourceOption = None,
    metric: MetricOption = None,
    aggregate: AggregateOption = None,
    cost: CostOption = None,
    comparison: ComparisonOption = None,
    threshold: ThresholdOption = None,
    window: WindowOption = None,
    email: Annotated[
        list[str] | None,
        typer.Option("--email", help="Replace the addresses. Repeat (up to 10)."),
    ] = None,
    no_emails: Annotated[bool, typer.Option("--no-emails", help="Remove every address.")] = False,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Turn evaluation on or off.")
    ] = None,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Change an alert rule: only the options given (needs the admin role). The rule
    keeps its state; the next evaluation applies the new terms.

    Examples:

      lariba alerts update e902... --threshold 90

      lariba alerts update e902... --disabled
    """
    if email and no_emails:
        fail("give either --email or --no-emails, not both", EXIT_USAGE)
    source = _chosen_source(resource, metric, aggregate, cost)
    changes: dict[str, Any] = {
        "name": name,
        "source": source,
        "comparison": comparison,
        "threshold": threshold,
        "window": window,
        "enabled": enabled,
        "emails": [] if no_emails else email,
    }
    given = {key: value for key, value in changes.items() if value is not None}
    if not given:
        fail("nothing to change: see `lariba alerts update --help`", EXIT_USAGE)
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(not_found=not_found_in_project("alert", alert_id, project_id)) as client:
        rule = client.alerts(project_id).update(
            alert_id,
            name=given.get("name", UNCHANGED),
            source=given.get("source", UNCHANGED),
            comparison=given.get("comparison", UNCHANGED),
            threshold=given.get("threshold", UNCHANGED),
            window=given.get("window", UNCHANGED),
            enabled=given.get("enabled", UNCHANGED),
            emails=given.get("emails", UNCHANGED),
        )
    emit_record(rule, output)


@app.command("delete")
def delete_alert(
    alert_id: AlertId,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
) -> None:
    """Delete an alert rule and its history (needs the admin role)."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(not_found=not_found_in_project("alert", alert_id, project_id)) as client:
        client.alerts(project_id).delete(alert_id)
    typer.echo(f"Alert rule {alert_id} deleted.")


@app.command("history")
def alert_history(
    alert_id: AlertId,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """An alert rule's state changes, newest first."""
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client(not_found=not_found_in_project("alert", alert_id, project_id)) as client:
        changes = client.alerts(project_id).history(alert_id)
    emit_list(changes, HISTORY_COLUMNS, output)
