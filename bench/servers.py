"""The processes a benchmark runs against: a PostgreSQL database of its own and uvicorn
servers on 127.0.0.1, each stopped again however the benchmark ends."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from lariba.core.embedded import EmbeddedPostgres

HOST = "127.0.0.1"
REPOSITORY = Path(__file__).resolve().parent.parent
_READY_TIMEOUT_SECONDS = 60.0
_STOP_TIMEOUT_SECONDS = 10.0


class SetupError(Exception):
    """Something the benchmark needs did not start; the message says what and why."""


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def bench_database(server_url: str | None, workdir: Path) -> Iterator[str]:
    """A new, empty database for this run, dropped at the end: on ``server_url`` when given
    (it must allow CREATE DATABASE), else on an embedded PostgreSQL under ``workdir``."""
    with contextlib.ExitStack() as stack:
        if server_url is None:
            server = EmbeddedPostgres.start(workdir / "postgres")
            stack.callback(server.stop)
            server_url = server.admin_url()
        name = f"lariba_bench_{uuid.uuid4().hex[:12]}"
        admin = _libpq_url(server_url)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )

        stack.callback(drop)
        yield _with_database(server_url, name)


def postgres_version(url: str) -> str:
    with psycopg.connect(_libpq_url(url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class UvicornServer:
    """One single-worker uvicorn process serving an app factory on 127.0.0.1."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, *, name: str, factory: str, env: dict[str, str], workdir: Path) -> UvicornServer:
        """Starts ``factory`` (``module:function``); its output goes to ``workdir/<name>.log``."""
        port = free_port()
        env = env | {"LARIBA_HOST": HOST, "LARIBA_PORT": str(port)}
        log_path = workdir / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-server-header",
        ]
        with log_path.open("wb") as log:
            # A session of its own: Ctrl-C reaches the benchmark, which stops the server
            # in order, instead of every process at once.
            process = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name=name, port=port, process=process, log_path=log_path)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, path: str) -> None:
        """Returns once ``path`` answers 200."""
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SetupError(f"{self.name} exited at start-up:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(path).status_code == 200:
                        return
                time.sleep(0.1)
        raise SetupError(
            f"{self.name} not ready after {_READY_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}"
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far; NaN without Linux's
        /proc."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime and stime: fields 14 and 15 of proc(5), counted from after the command name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
