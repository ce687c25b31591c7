"""activity: resource events by project and time, for the activity feed's keyset pages

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_resource_events_project_occurred",
        "resource_events",
        ["project_id", "occurred_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_resource_events_project_occurred", table_name="resource_events")
