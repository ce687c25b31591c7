"""How commands print what the API returned: a table for people (the default), JSON or
YAML for scripts. Operation progress goes to stderr so stdout stays parseable."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
import yaml

from lariba.client import Operation


class Format(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[
    Format,
    typer.Option("--output", "-o", help="table (for people), json or yaml (for scripts)."),
]

# A table column: its heading and how to read its cell from a record.
Column = tuple[str, Callable[[Any], object]]


def plain(value: Any) -> Any:
    """A record as JSON-ready data: dataclasses as objects, times as ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        # Amounts stay exact: as the API sends them, decimal strings.
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit_data(data: Any, output: Format) -> None:
    if output is Format.yaml:
        typer.echo(yaml.safe_dump(plain(data), sort_keys=False, allow_unicode=True), nl=False)
    else:
        typer.echo(json.dumps(plain(data), indent=2, ensure_ascii=False))


def emit_list(records: Sequence[Any], columns: Sequence[Column], output: Format) -> None:
    if output is not Format.table:
        emit_data(list(records), output)
        return
    if not records:
        typer.echo("(none)")
        return
    rows = [[heading for heading, _ in columns]]
    rows += [[_cell(read(record)) for _, read in columns] for record in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def emit_line(record: Any, columns: Sequence[Column], output: Format) -> None:
    """One record of a stream, printed as it comes: its cells on a line (table), a JSON
    object on a line (json: JSON lines), or a YAML document."""
    if output is Format.json:
        typer.echo(json.dumps(plain(record), ensure_ascii=False))
    elif output is Format.yaml:
        typer.echo(
            "---\n" + yaml.safe_dump(plain(record), sort_keys=False, allow_unicode=True), nl=False
        )
    else:
        typer.echo("  ".join(_cell(read(record)) for _, read in columns))


def emit_record(record: Any, output: Format) -> None:
    if output is not Format.table:
        emit_data(record, output)
        return
    flat = _flatten(plain(record))
    width = max(len(key) for key in flat)
    for key, value in flat.items():
        typer.echo(f"{key.ljust(width)}  {value}")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = _cell(value)
    return flat


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def show_progress(operation: Operation) -> None:
    progress = f": {operation.progress}" if operation.progress else ""
    typer.echo(f"{operation.type} {operation.status}{progress}", err=True)
