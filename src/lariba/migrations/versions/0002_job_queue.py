"""job queue: procrastinate's tables, functions and triggers

The schema is the one shipped with the procrastinate version pinned in uv.lock (3.10).
Upgrading procrastinate means a new migration applying its SQL migration files in order
(``procrastinate.schema.SchemaManager.get_migrations_path()``), never editing this one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Run through the driver with no parameters, so the SQL's % and :: stay literal.
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    driver_connection.execute(SchemaManager.get_schema())


def downgrade() -> None:
    raise NotImplementedError(
        "the job queue schema is not removed automatically; drop the procrastinate_* "
        "objects by hand if you really mean to"
    )
