"""resource metrics: raw samples, hourly aggregates and the rollup's watermark

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _resource_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["resource_id"],
        ["resources.id"],
        name=op.f(f"fk_{table}_resource_id_resources"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "resource_metric_samples",
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        _resource_fk("resource_metric_samples"),
        sa.PrimaryKeyConstraint(
            "resource_id", "name", "at", name=op.f("pk_resource_metric_samples")
        ),
    )
    # The rollup and the purge scan by time across every resource.
    op.create_index("ix_resource_metric_samples_at", "resource_metric_samples", ["at"])
    op.create_table(
        "resource_metric_hourly",
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("min", sa.Double(), nullable=False),
        sa.Column("max", sa.Double(), nullable=False),
        # The sum, not the average: the average of several hours is then exact.
        sa.Column("sum", sa.Double(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        _resource_fk("resource_metric_hourly"),
        sa.PrimaryKeyConstraint(
            "resource_id", "name", "hour", name=op.f("pk_resource_metric_hourly")
        ),
    )
    op.create_index("ix_resource_metric_hourly_hour", "resource_metric_hourly", ["hour"])
    op.create_table(
        "resource_metric_rollup_state",
        sa.Column("id", sa.Boolean(), server_default=sa.true(), nullable=False),
        # Every hour before this one is in resource_metric_hourly.
        sa.Column("rolled_through", sa.DateTime(timezone=True), nullable=False),
        # Raw samples before this moment were purged: older windows read the hourly ones.
        sa.Column("raw_purged_before", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id", name=op.f("ck_resource_metric_rollup_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_metric_rollup_state")),
    )


def downgrade() -> None:
    op.drop_table("resource_metric_rollup_state")
    op.drop_index("ix_resource_metric_hourly_hour", table_name="resource_metric_hourly")
    op.drop_table("resource_metric_hourly")
    op.drop_index("ix_resource_metric_samples_at", table_name="resource_metric_samples")
    op.drop_table("resource_metric_samples")
