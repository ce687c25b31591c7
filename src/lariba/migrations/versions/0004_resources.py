"""resources: the lifecycle engine's resources, operations, events and project quotas

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "'pending','provisioning','running','stopping','stopped','deleting','deleted','error'"
_JSONB = postgresql.JSONB(astext_type=sa.Text())


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("spec", _JSONB, nullable=False),
        sa.Column("desired_state", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.String(255), nullable=True),
        sa.Column("observed", _JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("usage", _JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("labels", _JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("generation", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("observed_generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("create_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("retries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", _JSONB, nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name=op.f("ck_resources_status")),
        sa.CheckConstraint(
            "desired_state IN ('running','stopped','deleted')",
            name=op.f("ck_resources_desired_state"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_resources_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
    )
    op.create_index(
        "uq_resources_project_kind_name",
        "resources",
        ["project_id", "kind", "name"],
        unique=True,
        postgresql_where=sa.text("status <> 'deleted'"),
    )
    op.create_index(
        "ix_resources_project_kind_created",
        "resources",
        ["project_id", "kind", "created_at", "id"],
    )
    op.create_index("ix_resources_labels", "resources", ["labels"], postgresql_using="gin")

    op.create_table(
        "operations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column("resource_kind", sa.String(32), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", _JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("progress", sa.String(200), nullable=True),
        sa.Column("error", _JSONB, nullable=True),
        sa.Column("target_generation", sa.Integer(), nullable=False),
        sa.Column("created_by_type", sa.String(16), nullable=False),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
        sa.Column("created_by_label", sa.String(320), nullable=True),
        _timestamp("created_at"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('pending','running','succeeded','failed')",
            name=op.f("ck_operations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_operations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_operations_resource_id_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    op.create_index(
        "uq_operations_one_active_per_resource",
        "operations",
        ["resource_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.create_index(
        "ix_operations_project_created", "operations", ["project_id", "created_at", "id"]
    )
    op.create_index(
        "ix_operations_resource_created", "operations", ["resource_id", "created_at", "id"]
    )

    op.create_table(
        "resource_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column("resource_kind", sa.String(32), nullable=False),
        sa.Column("operation_id", sa.UUID(), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _timestamp("occurred_at"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_resource_events_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_resource_events_resource_id_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_events")),
    )
    op.create_index("ix_resource_events_project_id", "resource_events", ["project_id", "id"])
    op.create_index("ix_resource_events_resource_id", "resource_events", ["resource_id", "id"])

    op.create_table(
        "project_quotas",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("limits", _JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_quotas_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_quotas")),
    )
    # A project goes only when none of its resources is left at the provider: deleting
    # the rows would orphan what they describe.
    op.execute(
        """
        CREATE FUNCTION refuse_deleting_project_with_resources() RETURNS trigger AS $$
        BEGIN
            IF EXISTS (
                SELECT 1 FROM resources WHERE project_id = OLD.id AND status <> 'deleted'
            ) THEN
                RAISE EXCEPTION 'project % still has resources', OLD.id
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN OLD;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER projects_keep_while_resources BEFORE DELETE ON projects "
        "FOR EACH ROW EXECUTE FUNCTION refuse_deleting_project_with_resources()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER projects_keep_while_resources ON projects")
    op.execute("DROP FUNCTION refuse_deleting_project_with_resources()")
    op.drop_table("project_quotas")
    op.drop_table("resource_events")
    op.drop_table("operations")
    op.drop_table("resources")
