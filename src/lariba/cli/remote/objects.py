"""``lariba cp`` and ``lariba ls``: objects in buckets, named by ``lariba://BUCKET/KEY``
URLs, copied to and from local files."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from lariba.cli.remote.buckets import find_bucket
from lariba.cli.remote.connection import (
    EXIT_USAGE,
    Connection,
    ProfileOption,
    ProjectOption,
    fail,
)
from lariba.cli.remote.output import Column, Format, OutputOption, emit_data, emit_list
from lariba.client import StoredObject

SCHEME = "lariba://"
URL_FORM = "lariba://BUCKET/KEY, e.g. lariba://reports/2024/summary.pdf"
DEFAULT_PART_SIZE = "8MiB"

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ObjectUrl:
    """``lariba://BUCKET/KEY``: BUCKET is a bucket's name or id, KEY may be empty."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def parse_url(text: str) -> ObjectUrl | None:
    """The object ``text`` names, or None when it is a local path."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        if text.lower().startswith("lariba:"):
            fail(f"{text}: not a bucket URL: expected {URL_FORM}", EXIT_USAGE)
        return None
    if scheme.lower() != "lariba":
        fail(
            f"{text}: {scheme}:// is not supported: copy between a local path and {URL_FORM}",
            EXIT_USAGE,
        )
    bucket, _, key = rest.partition("/")
    if not bucket:
        fail(f"{text}: the URL names no bucket: expected {URL_FORM}", EXIT_USAGE)
    return ObjectUrl(bucket=bucket, key=key)


def parse_size(text: str) -> int:
    """``8MiB``, ``512KiB``, ``5MB`` or a number of bytes."""
    match = _SIZE.match(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None or float(match.group(1)) * unit < 1:
        fail(f"--part-size {text}: expected a size such as 8MiB, 512KiB or 5MB", EXIT_USAGE)
    return int(float(match.group(1)) * unit)


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


class ProgressLine:
    """``12.0 MiB / 40.0 MiB  30%`` on stderr, rewritten in place as a transfer goes on."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // total if total else 100
        sys.stderr.write(f"\r{_mib(done)} / {_mib(total)}  {percent:3d}%")
        sys.stderr.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def cp(
    source: Annotated[str, typer.Argument(help="A local file, or lariba://BUCKET/KEY.")],
    destination: Annotated[
        str,
        typer.Argument(
            help="lariba://BUCKET/KEY, or a local path. A key or path ending in / (or an "
            "existing directory) gets the source's file name."
        ),
    ],
    part_size: Annotated[
        str,
        typer.Option(
            help="Files bigger than this are uploaded in parts of this size (at least the "
            "server's minimum part size, usually 5MiB)."
        ),
    ] = DEFAULT_PART_SIZE,
    content_type: Annotated[
        str | None, typer.Option(help="The object's Content-Type, e.g. application/pdf.")
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show a progress line on stderr. Default: only when stderr is a terminal.",
            show_default=False,
        ),
    ] = None,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """Copy a local file into a bucket, or an object out of one.

    BUCKET is the bucket's name or id in the project.

    Examples:

      lariba cp report.pdf lariba://reports/2024/

      lariba cp lariba://reports/2024/report.pdf ./downloads/
    """
    source_url, destination_url = parse_url(source), parse_url(destination)
    if (source_url is None) == (destination_url is None):
        fail(
            f"one side of `lariba cp` is a local path and the other {URL_FORM}",
            EXIT_USAGE,
        )
    size = parse_size(part_size)
    # Local mistakes are reported before anything is asked of the server.
    if destination_url is not None:
        local = _readable_file(source)
        key = destination_url.key
        if not key or key.endswith("/"):
            key += local.name
        _upload(
            local,
            ObjectUrl(bucket=destination_url.bucket, key=key),
            part_size=size,
            content_type=content_type,
            progress=progress,
            project=project,
            profile_name=profile_name,
            output=output,
        )
        return
    assert source_url is not None
    if not source_url.key or source_url.key.endswith("/"):
        fail(f"{source}: name an object (lariba://BUCKET/KEY), not a folder", EXIT_USAGE)
    _download(
        source_url,
        _writable_path(destination, source_url.key),
        progress=progress,
        project=project,
        profile_name=profile_name,
        output=output,
    )


def _upload(
    local: Path,
    url: ObjectUrl,
    *,
    part_size: int,
    content_type: str | None,
    progress: bool | None,
    project: str | None,
    profile_name: str,
    output: Format,
) -> None:
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    show = _progress_line(progress)
    with connection.client() as client:
        bucket = find_bucket(client, project_id, url.bucket)
        try:
            stored = client.objects(project_id, bucket.id).upload(
                url.key, local, content_type=content_type, part_size=part_size, on_progress=show
            )
        finally:
            if show is not None:
                show.end()
    _report(stored, f"Uploaded {local} to {url} ({stored.size} bytes).", output)


def _download(
    url: ObjectUrl,
    target: Path,
    *,
    progress: bool | None,
    project: str | None,
    profile_name: str,
    output: Format,
) -> None:
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    show = _progress_line(progress)
    missing = (
        f"object {url.key} not found in bucket {url.bucket}: see `lariba ls {SCHEME}{url.bucket}/`"
    )
    with connection.client(not_found=missing) as client:
        bucket = find_bucket(client, project_id, url.bucket)
        try:
            stored = client.objects(project_id, bucket.id).download(
                url.key, target, on_progress=show
            )
        finally:
            if show is not None:
                show.end()
    _report(stored, f"Downloaded {url} to {target} ({stored.size} bytes).", output)


def _progress_line(progress: bool | None) -> ProgressLine | None:
    wanted = sys.stderr.isatty() if progress is None else progress
    return ProgressLine() if wanted else None


def ls(
    url: Annotated[
        str,
        typer.Argument(help="lariba://BUCKET/ or lariba://BUCKET/PREFIX (a folder ends in /)."),
    ],
    recursive: Annotated[
        bool,
        typer.Option("--recursive", "-r", help="Every object under the prefix, not folders."),
    ] = False,
    project: ProjectOption = None,
    profile_name: ProfileOption = "default",
    output: OutputOption = Format.table,
) -> None:
    """List the folders and objects under a prefix of a bucket.

    Examples:

      lariba ls lariba://reports/

      lariba ls lariba://reports/2024/ --output json
    """
    where = parse_url(url)
    if where is None:
        fail(f"{url}: expected lariba://BUCKET/ or lariba://BUCKET/PREFIX", EXIT_USAGE)
    connection = Connection.open(profile_name)
    project_id = connection.project_id(project)
    with connection.client() as client:
        bucket = find_bucket(client, project_id, where.bucket)
        listing = client.objects(project_id, bucket.id).list(
            prefix=where.key or None, delimiter=None if recursive else "/"
        )
    if output is not Format.table:
        emit_data(listing, output)
        return
    rows: list[tuple[str, int | None, object]] = [(p, None, None) for p in listing.prefixes]
    rows += [(o.key, o.size, o.last_modified) for o in listing.objects]
    emit_list(rows, _LS_COLUMNS, output)


_LS_COLUMNS: list[Column] = [
    ("KEY", lambda row: row[0]),
    ("SIZE", lambda row: row[1]),
    ("MODIFIED", lambda row: row[2]),
]


def _report(stored: StoredObject, message: str, output: Format) -> None:
    if output is Format.table:
        typer.echo(message)
    else:
        emit_data(stored, output)


def _readable_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "no such file"
        fail(f"{text}: {reason}: name a local file to upload", EXIT_USAGE)
    if not os.access(path, os.R_OK):
        fail(f"{text}: cannot read it (permission denied)", EXIT_USAGE)
    return path


def _writable_path(text: str, key: str) -> Path:
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", os.sep)):
        path = path / key.rsplit("/", 1)[-1]
    if not path.parent.is_dir():
        fail(f"{text}: no such directory: {path.parent}", EXIT_USAGE)
    return path


def register(app: typer.Typer) -> None:
    app.command("cp")(cp)
    app.command("ls")(ls)
