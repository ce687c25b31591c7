"""``lariba``: run the platform and administer it.

The server stack (FastAPI, SQLAlchemy, uvicorn ...) is imported by the commands that run
it, so that the user commands (``lariba login``, ``lariba cp`` ...) start quickly."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from lariba.cli.remote import register_user_commands

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from lariba.cli.serving import ApiServer
    from lariba.core.settings import Settings
    from lariba.identity.runtime import IdentityRuntime

__all__ = ["ApiServer", "app"]

app = typer.Typer(
    help="Lariba Cloud: a self-hosted cloud platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Token signing keys: rotate, list, retire; secrets at rest: rotate-secrets.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
register_user_commands(app)

T = TypeVar("T")


class _Terminated(Exception):
    """SIGTERM, turned into an exception so clean-up (stopping PostgreSQL) runs."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Terminated


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    from lariba.core.logging import configure_logging
    from lariba.core.settings import Settings

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            typer.echo(f"lariba: invalid setting: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    return settings


def _with_identity(
    settings: Settings, url: str, action: Callable[[AsyncSession, IdentityRuntime], Awaitable[T]]
) -> T:
    from lariba.core.db import create_engine, create_sessionmaker
    from lariba.identity.runtime import IdentityRuntime

    async def run() -> T:
        engine = create_engine(settings, url, pool_size=1, max_overflow=0)
        runtime = IdentityRuntime.create(settings, create_sessionmaker(engine))
        try:
            async with runtime.sessionmaker.begin() as session:
                return await action(session, runtime)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [LARIBA_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [LARIBA_PORT].")] = None,
) -> None:
    """Run the API. With no LARIBA_DATABASE_URL, starts an embedded PostgreSQL first."""
    import uvicorn

    from lariba.app import create_app, warm_up
    from lariba.cli.serving import ApiServer
    from lariba.core import migrate as migrations
    from lariba.core.embedded import database_url_for
    from lariba.identity.bootstrap import bootstrap
    from lariba.providers.catalog import CatalogError, load_catalog

    settings = _settings(host=host, port=port)
    try:
        load_catalog(settings.provider.value, settings.catalog_file)
    except CatalogError as exc:
        typer.echo(f"lariba: {exc}", err=True)
        raise typer.Exit(2) from None
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with database_url_for(settings) as url:
            migrations.upgrade(url)
            created = _with_identity(settings, url, bootstrap)
            if created is not None:
                _announce_admin(*created)
            api = create_app(settings, database_url=url)
            warm_up(api)
            config = uvicorn.Config(
                api,
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                proxy_headers=True,
                server_header=False,
            )
            typer.echo(
                f"Lariba Cloud is running on http://{settings.host}:{settings.port}", err=True
            )
            ApiServer(config).run()
    except (KeyboardInterrupt, _Terminated):
        pass
    typer.echo("Lariba Cloud stopped.", err=True)


def _announce_admin(email: str, password: str | None) -> None:
    lines = [f"Platform admin: {email}"]
    if password is not None:
        lines.append(f"Password (shown once, change it after logging in): {password}")
    else:
        lines.append("Password: the value of LARIBA_ADMIN_PASSWORD")
    banner = "\n".join(["=" * 72, *lines, "=" * 72])
    print(banner, file=sys.stderr, flush=True)


@app.command()
def worker() -> None:
    """Run a background worker: the jobs of every API replica, until SIGINT/SIGTERM."""
    from lariba.app import job_queue
    from lariba.cloud.engine.runtime import CloudRuntime
    from lariba.core import migrate as migrations
    from lariba.core.db import create_engine, create_sessionmaker
    from lariba.core.embedded import database_url_for
    from lariba.core.metrics import serve_metrics

    settings = _settings()

    async def run(url: str) -> None:
        engine = create_engine(settings, url)
        cloud = CloudRuntime.create(
            settings, database_url=url, sessionmaker=create_sessionmaker(engine)
        )
        # Before taking jobs: the first ones would otherwise wait for boto3's clients.
        cloud.provider.warm_up()
        jobs = job_queue(settings, url, cloud)
        await jobs.open()
        try:
            await jobs.run_worker(concurrency=settings.worker_concurrency)
        finally:
            await jobs.close()
            await cloud.close()
            await engine.dispose()

    with database_url_for(settings) as url:
        migrations.upgrade(url)
        # Its reconcile passes and provider errors: the API's /metrics only has its own.
        metrics = (
            serve_metrics(host=settings.worker_metrics_host, port=settings.worker_metrics_port)
            if settings.worker_metrics_port
            else None
        )
        typer.echo("Lariba worker is running.", err=True)
        try:
            asyncio.run(run(url))
        finally:
            if metrics is not None:
                metrics.close()
    typer.echo("Lariba worker stopped.", err=True)


@app.command()
def migrate() -> None:
    """Apply database migrations and exit."""
    from lariba.core import migrate as migrations
    from lariba.core.embedded import database_url_for

    settings = _settings()
    with database_url_for(settings) as url:
        migrations.upgrade(url)
    typer.echo("Database is up to date.")


@app.command("settings")
def settings_table() -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    from lariba.core.settings import settings_reference

    typer.echo(settings_reference(), nl=False)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key; the previous key keeps verifying until retired."""
    from lariba.core.embedded import database_url_for
    from lariba.identity.tokens import create_signing_key

    settings = _settings()

    async def rotate(session: AsyncSession, runtime: IdentityRuntime) -> str:
        return (await create_signing_key(session, box=runtime.box)).kid

    with database_url_for(settings) as url:
        kid = _with_identity(settings, url, rotate)
    typer.echo(f"New signing key {kid} is active. Retire older keys once their tokens expire.")


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys and their status."""
    from sqlalchemy import select

    from lariba.core.embedded import database_url_for
    from lariba.identity.models import SigningKey

    settings = _settings()

    async def load(session: AsyncSession, _runtime: IdentityRuntime) -> list[tuple[str, str, str]]:
        rows = await session.scalars(select(SigningKey).order_by(SigningKey.created_at))
        return [(k.kid, k.status, k.created_at.isoformat()) for k in rows]

    with database_url_for(settings) as url:
        keys = _with_identity(settings, url, load)
    for kid, status, created in keys:
        typer.echo(f"{kid}\t{status}\t{created}")


@keys_app.command("retire")
def keys_retire(kid: Annotated[str, typer.Argument(help="The key id (kid) to retire.")]) -> None:
    """Stop a key from verifying tokens. Tokens it signed stop working."""
    from lariba.core.embedded import database_url_for
    from lariba.core.errors import LaribaError
    from lariba.identity.tokens import retire_signing_key

    settings = _settings()

    async def retire(session: AsyncSession, _runtime: IdentityRuntime) -> None:
        await retire_signing_key(session, kid)

    with database_url_for(settings) as url:
        try:
            _with_identity(settings, url, retire)
        except (ValueError, LaribaError) as exc:
            typer.echo(f"lariba: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"Signing key {kid} is retired.")


@keys_app.command("rotate-secrets")
def keys_rotate_secrets() -> None:
    """Re-encrypt every secret at rest under LARIBA_SECRET_KEY, reading the old ones with
    LARIBA_SECRET_KEY_PREVIOUS. Run it with both set, before the API starts on the new key."""
    from lariba.cli.rotation import RotationReport, rotate_secrets
    from lariba.core.embedded import database_url_for
    from lariba.core.secrets import SecretDecryptionError

    settings = _settings()
    previous = settings.secret_key_previous
    if previous is not None and previous.get_secret_value().encode() == settings.master_key:
        typer.echo("lariba: LARIBA_SECRET_KEY_PREVIOUS is the current key", err=True)
        raise typer.Exit(2)

    async def rotate(session: AsyncSession, _runtime: IdentityRuntime) -> RotationReport:
        return await rotate_secrets(
            session,
            current=settings.master_key,
            previous=previous.get_secret_value().encode() if previous is not None else None,
        )

    with database_url_for(settings) as url:
        try:
            report = _with_identity(settings, url, rotate)
        except SecretDecryptionError as exc:
            typer.echo(f"lariba: nothing changed: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        f"Re-encrypted under the current master key: {report.database_credentials} database "
        f"passwords, {report.signing_keys} signing keys, {report.totp_secrets} TOTP seeds, "
        f"{report.idempotent_responses} stored responses, {report.webhook_secrets} webhook "
        "secrets. "
        "LARIBA_SECRET_KEY_PREVIOUS can be removed."
    )


if __name__ == "__main__":
    app()
