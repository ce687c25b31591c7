"""The processes a benchmark runs against: a PostgreSQL database of its own, uvicorn
servers, Lariba workers and a moto server on 127.0.0.1, each stopped again however the
benchmark ends."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from lariba.core import migrate
from lariba.core.db import create_engine, create_sessionmaker
from lariba.core.embedded import EmbeddedPostgres
from lariba.core.secrets import SecretBox
from lariba.core.settings import Settings
from lariba.identity.tokens import ensure_signing_key

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


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server to create benchmark databases on."""

    url: str
    # The postmaster of an embedded server, whose process tree is PostgreSQL's CPU;
    # None for a configured server, which may be on another machine.
    postmaster_pid: int | None

    def cpu_seconds(self) -> float:
        """CPU time PostgreSQL has used so far (NaN when it is not ours to measure)."""
        if self.postmaster_pid is None:
            return math.nan
        return tree_cpu_seconds(self.postmaster_pid)


@contextlib.contextmanager
def postgres_server(server_url: str | None, workdir: Path) -> Iterator[PostgresServer]:
    """``server_url`` when given, else an embedded PostgreSQL under ``workdir``, stopped at
    the end."""
    if server_url is not None:
        yield PostgresServer(url=server_url, postmaster_pid=None)
        return
    server = EmbeddedPostgres.start(workdir / "postgres")
    try:
        pid = server.server.get_pid()
        yield PostgresServer(url=server.admin_url(), postmaster_pid=int(pid) if pid else None)
    finally:
        server.stop()


@contextlib.contextmanager
def new_database(server_url: str) -> Iterator[str]:
    """A new, empty database on ``server_url`` (it must allow CREATE DATABASE), dropped at
    the end."""
    name = f"lariba_bench_{uuid.uuid4().hex[:12]}"
    admin = _libpq_url(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(server_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def bench_database(server_url: str | None, workdir: Path) -> Iterator[str]:
    """A new, empty database for this run, dropped at the end: on ``server_url`` when given
    (it must allow CREATE DATABASE), else on an embedded PostgreSQL under ``workdir``."""
    with postgres_server(server_url, workdir) as server, new_database(server.url) as url:
        yield url


def prepare_database(url: str, settings: Settings) -> None:
    """Migrates the database and adds the signing key ``lariba serve`` would create."""
    migrate.upgrade(url)

    async def add_signing_key() -> None:
        engine = create_engine(settings, url, pool_size=1, max_overflow=0)
        try:
            async with create_sessionmaker(engine).begin() as session:
                await ensure_signing_key(session, box=SecretBox(settings.master_key))
        finally:
            await engine.dispose()

    asyncio.run(add_signing_key())


def postgres_version(url: str) -> str:
    with psycopg.connect(_libpq_url(url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3 of proc(5) is index 0);
    None when the process is gone or this is not Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, its children that have exited, and its live
    children (PostgreSQL's backends, say); NaN without Linux's /proc."""
    fields = _stat_fields(pid)
    if fields is None:
        return math.nan
    # utime, stime, cutime, cstime: fields 14-17 of proc(5).
    ticks = sum(int(value) for value in fields[11:15])
    for child in _children(pid):
        if (child_fields := _stat_fields(child)) is not None:
            ticks += sum(int(value) for value in child_fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class ServerProcess:
    """A process the benchmark started in a session of its own, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def spawn(
        cls, *, name: str, command: list[str], env: dict[str, str], workdir: Path
    ) -> ServerProcess:
        """Starts ``command``; its output goes to ``workdir/<name>.log``."""
        log_path = workdir / f"{name}.log"
        return cls(
            name=name, process=_popen(command, env=env, log_path=log_path), log_path=log_path
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far; NaN without Linux's /proc."""
        fields = _stat_fields(self.process.pid)
        if fields is None:
            return math.nan
        # utime and stime: fields 14 and 15 of proc(5).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise SetupError(f"{self.name} exited:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _popen(command: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C reaches the benchmark, which stops the process
        # in order, instead of every process at once.
        return subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until(process: ServerProcess, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise SetupError(f"{process.name} exited at start-up:\n{process.log_tail()}")
        if ready():
            return
        time.sleep(0.1)
    raise SetupError(
        f"{process.name} not {what} after {_READY_TIMEOUT_SECONDS:.0f} s:\n{process.log_tail()}"
    )


@dataclass
class UvicornServer(ServerProcess):
    """One single-worker uvicorn process serving an app factory on 127.0.0.1."""

    port: int

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
        process = _popen(command, env=env, log_path=log_path)
        return cls(name=name, port=port, process=process, log_path=log_path)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, path: str) -> None:
        """Returns once ``path`` answers 200."""
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:

            def answers() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return client.get(path).status_code == 200
                return False

            _wait_until(self, answers, "ready")


@dataclass
class MotoServer(ServerProcess):
    """``python -m moto.server`` on 127.0.0.1: a process of its own, so neither the
    benchmark's client nor anything else shares its interpreter lock."""

    port: int

    @classmethod
    def start(cls, *, env: dict[str, str], workdir: Path, name: str = "moto") -> MotoServer:
        port = free_port()
        log_path = workdir / f"{name}.log"
        command = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
        server = cls(
            name=name,
            port=port,
            process=_popen(command, env=env, log_path=log_path),
            log_path=log_path,
        )
        _wait_until(server, server._answers, "ready")
        return server

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _answers(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{self.endpoint_url}/moto-api/", timeout=2.0).status_code == 200
        return False

    def reset(self) -> None:
        """Back to moto's initial state: the default VPC and AMIs, no instances."""
        response = httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=30.0)
        if response.status_code != 200:
            raise SetupError(f"moto reset: HTTP {response.status_code} {response.text[:200]}")

    def api_requests(self) -> int:
        """AWS API requests served so far (werkzeug's request log, moto's own API aside)."""
        count = 0
        with self.log_path.open("rb") as log:
            for line in log:
                if b'] "' in line and b"/moto-api" not in line:
                    count += 1
        return count


def start_worker(*, name: str, env: dict[str, str], workdir: Path) -> ServerProcess:
    """A ``lariba worker`` process, as an operator runs it."""
    command = [sys.executable, "-m", "lariba.cli.main", "worker"]
    return ServerProcess.spawn(name=name, command=command, env=env, workdir=workdir)
