"""event stream: resource events readable in commit order

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Ids come from a sequence at INSERT time, so events commit out of id order. The
    # writing transaction's id lets a reader deliver only events whose transaction is
    # older than every one still in flight (pg_snapshot_xmin), which no later commit can
    # precede. Rows already there get this migration's id: all committed before any reader.
    op.execute(
        "ALTER TABLE resource_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()"
    )
    op.create_index(
        "ix_resource_events_project_id_xid", "resource_events", ["project_id", "xid", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_resource_events_project_id_xid", table_name="resource_events")
    op.drop_column("resource_events", "xid")
