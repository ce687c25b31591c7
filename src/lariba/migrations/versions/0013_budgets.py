"""budgets: a monthly amount per project and the thresholds notified

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("amount_usd", sa.Numeric(14, 2), nullable=False),
        sa.Column("thresholds", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column(
            "block_provisioning", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("notified_month", sa.String(7), nullable=True),
        sa.Column(
            "notified",
            postgresql.ARRAY(sa.Integer()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
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
        sa.CheckConstraint("amount_usd > 0", name=op.f("ck_budgets_positive_amount")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_budgets_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_budgets")),
    )


def downgrade() -> None:
    op.drop_table("budgets")
