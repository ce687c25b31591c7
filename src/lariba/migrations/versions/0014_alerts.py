"""alerts: alert rules and their state changes

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=True),
        sa.Column("metric", sa.String(32), nullable=True),
        sa.Column("aggregate", sa.String(8), nullable=True),
        sa.Column("cost_measure", sa.String(32), nullable=True),
        sa.Column("comparison", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Numeric(24, 6), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "emails",
            postgresql.ARRAY(sa.String(254)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "state", sa.String(24), server_default=sa.text("'insufficient_data'"), nullable=False
        ),
        sa.Column(
            "state_since",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_value", sa.Numeric(), nullable=True),
        sa.Column("last_evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(source_type = 'metric' AND resource_id IS NOT NULL AND metric IS NOT NULL "
            "AND aggregate IS NOT NULL AND window_seconds IS NOT NULL) OR "
            "(source_type = 'cost' AND cost_measure IS NOT NULL)",
            name=op.f("ck_alert_rules_source_complete"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alert_rules_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_alert_rules_resource_id_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("project_id", "name", name="uq_alert_rules_project_name"),
    )
    op.create_index(
        "ix_alert_rules_project_created",
        "alert_rules",
        ["project_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_alert_rules_resource_id"), "alert_rules", ["resource_id"], unique=False
    )
    op.create_table(
        "alert_state_changes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(24), nullable=False),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("value", sa.Numeric(), nullable=True),
        sa.Column("threshold", sa.Numeric(24, 6), nullable=False),
        sa.Column(
            "emails",
            postgresql.ARRAY(sa.String(254)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rules.id"],
            name=op.f("fk_alert_state_changes_rule_id_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alert_state_changes_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_state_changes")),
    )
    op.create_index(
        "ix_alert_state_changes_rule_id", "alert_state_changes", ["rule_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("alert_state_changes")
    op.drop_table("alert_rules")
