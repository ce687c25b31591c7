"""usage: metered segments of resource usage and their daily rollups

A trigger on ``resources`` meters every change of status, spec or usage in the same
transaction as the change: a retried or concurrent worker either commits its change (and
its meter reading) or neither, so nothing is counted twice.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What a resource is metered for in a given state: (meter, sku, quantity) rows. A meter
# runs while its row is returned; its quantity (1 instance, GiB allocated, bytes stored)
# is multiplied by the seconds it runs. Changing these rules takes a new migration.
METERS = """
CREATE FUNCTION lariba_usage_meters(r resources)
RETURNS TABLE (meter text, sku text, quantity numeric)
LANGUAGE sql IMMUTABLE AS $$
    SELECT m.meter, COALESCE(m.sku, 'unknown'), m.quantity FROM (
        -- The size the provider reports: a resize asked of a running instance takes
        -- effect when the instance restarts.
        SELECT 'instance' AS meter,
               COALESCE(r.observed->>'size', r.spec->>'size') AS sku,
               1::numeric AS quantity
         WHERE r.kind = 'instance' AND r.status = 'running'
        UNION ALL
        SELECT 'database', r.spec->>'size', 1::numeric
         WHERE r.kind = 'database' AND r.status IN ('available', 'modifying')
        UNION ALL
        SELECT 'database_storage', 'gib', (r.spec->>'storage_gb')::numeric
         WHERE r.kind = 'database' AND r.status IN ('available', 'modifying')
        UNION ALL
        SELECT 'snapshot_storage', 'gib', (r.spec->>'storage_gb')::numeric
         WHERE r.kind = 'database_snapshot' AND r.status = 'available'
        UNION ALL
        SELECT 'bucket_storage', 'bytes', (r.usage->>'storage_bytes')::numeric
         WHERE r.kind = 'bucket' AND r.status NOT IN ('deleted', 'error')
    ) m
    WHERE m.quantity > 0
$$
"""

# Segments end and start at the transaction's time, as the resource's events do, so usage
# seconds equal the time between the events. A transaction that began before the previous
# change committed can neither end a segment before it started (that segment is dropped:
# it lasted no time) nor start one before the last one ended (it starts there instead).
METER_TRIGGER = """
CREATE FUNCTION lariba_meter_resource() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM usage_segments s
     WHERE s.resource_id = NEW.id AND s.ended_at IS NULL AND s.started_at >= now()
       AND NOT EXISTS (
           SELECT 1 FROM lariba_usage_meters(NEW) w
            WHERE w.meter = s.meter AND w.sku = s.sku
              AND w.quantity = s.quantity);
    UPDATE usage_segments s SET ended_at = now()
     WHERE s.resource_id = NEW.id AND s.ended_at IS NULL
       AND NOT EXISTS (
           SELECT 1 FROM lariba_usage_meters(NEW) w
            WHERE w.meter = s.meter AND w.sku = s.sku
              AND w.quantity = s.quantity);
    INSERT INTO usage_segments
        (project_id, resource_id, resource_kind, meter, sku, quantity, started_at)
    SELECT NEW.project_id, NEW.id, NEW.kind, w.meter, w.sku, w.quantity,
           GREATEST(now(), (SELECT max(s.ended_at) FROM usage_segments s
                             WHERE s.resource_id = NEW.id AND s.meter = w.meter))
      FROM lariba_usage_meters(NEW) w
     WHERE NOT EXISTS (
           SELECT 1 FROM usage_segments s
            WHERE s.resource_id = NEW.id AND s.ended_at IS NULL AND s.meter = w.meter);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "usage_segments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column("resource_kind", sa.String(32), nullable=False),
        sa.Column("meter", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("ended_at > started_at", name=op.f("ck_usage_segments_positive")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_usage_segments_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_segments")),
    )
    op.create_index(
        "uq_usage_segments_open",
        "usage_segments",
        ["resource_id", "meter"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_index(
        "ix_usage_segments_resource_meter_ended",
        "usage_segments",
        ["resource_id", "meter", "ended_at"],
    )
    op.create_index(
        "ix_usage_segments_project_started", "usage_segments", ["project_id", "started_at"]
    )
    # Recent windows (today's report, the nightly rollup) find segments by their end.
    op.create_index("ix_usage_segments_ended", "usage_segments", ["ended_at"])
    op.create_table(
        "usage_daily",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column("resource_kind", sa.String(32), nullable=False),
        sa.Column("meter", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        # quantity times seconds: instance-seconds, GiB-seconds, byte-seconds.
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_usage_daily_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "project_id", "day", "resource_id", "meter", "sku", name=op.f("pk_usage_daily")
        ),
    )
    op.create_table(
        "usage_rollup_state",
        sa.Column("id", sa.Boolean(), server_default=sa.true(), nullable=False),
        # Every whole UTC day before this one is in usage_daily.
        sa.Column("rolled_through", sa.Date(), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_usage_rollup_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_rollup_state")),
    )
    op.execute(METERS)
    op.execute(METER_TRIGGER)
    op.execute(
        "CREATE TRIGGER resources_meter_insert AFTER INSERT ON resources "
        "FOR EACH ROW EXECUTE FUNCTION lariba_meter_resource()"
    )
    op.execute(
        "CREATE TRIGGER resources_meter_update "
        "AFTER UPDATE OF status, spec, usage, observed ON resources "
        "FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status "
        "OR OLD.spec IS DISTINCT FROM NEW.spec OR OLD.usage IS DISTINCT FROM NEW.usage "
        "OR OLD.observed->>'size' IS DISTINCT FROM NEW.observed->>'size') "
        "EXECUTE FUNCTION lariba_meter_resource()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER resources_meter_update ON resources")
    op.execute("DROP TRIGGER resources_meter_insert ON resources")
    op.execute("DROP FUNCTION lariba_meter_resource()")
    op.execute("DROP FUNCTION lariba_usage_meters(resources)")
    op.drop_table("usage_rollup_state")
    op.drop_table("usage_daily")
    op.drop_index("ix_usage_segments_ended", table_name="usage_segments")
    op.drop_index("ix_usage_segments_project_started", table_name="usage_segments")
    op.drop_index("ix_usage_segments_resource_meter_ended", table_name="usage_segments")
    op.drop_index("uq_usage_segments_open", table_name="usage_segments")
    op.drop_table("usage_segments")
