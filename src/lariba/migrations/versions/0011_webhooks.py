"""webhooks: endpoints, signed deliveries and their attempts

Deliveries are made in the database, in the transaction that writes the event:
``lariba_enqueue_webhook_event`` inserts one delivery per matching enabled webhook and
queues the sender job; the trigger on ``resource_events`` calls it for every event. A
rolled-back change therefore sends nothing, and a committed one is never lost.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


# Matching: an exact type, its family ("resource.*") or everything ("*"). The sender job
# is queued through procrastinate's own SQL entry point (the one its Python client calls),
# without a queueing lock, so concurrent event writers never wait on each other.
_ENQUEUE = """
CREATE FUNCTION lariba_enqueue_webhook_event(
    p_project_id uuid, p_event_type text, p_payload jsonb
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    queued integer;
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, project_id, event_type, payload)
    SELECT w.id, w.project_id, p_event_type, p_payload
    FROM webhooks w
    WHERE w.project_id = p_project_id
      AND w.enabled
      AND (p_event_type = ANY (w.event_types)
           OR '*' = ANY (w.event_types)
           OR split_part(p_event_type, '.', 1) || '.*' = ANY (w.event_types));
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM procrastinate_defer_jobs_v1(ARRAY[
            ROW('default', 'send_webhook_deliveries', 0, NULL, NULL, '{}'::jsonb, NULL)
            ::procrastinate_job_to_defer_v1
        ]);
    END IF;
    RETURN queued;
END;
$$;
"""

# The payload of a resource event, as documented in docs/webhooks.md.
_RESOURCE_EVENT_TRIGGER = """
CREATE FUNCTION lariba_resource_event_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lariba_enqueue_webhook_event(
        NEW.project_id,
        'resource.' || NEW.type,
        jsonb_build_object(
            'type', 'resource.' || NEW.type,
            'occurred_at',
                to_char(NEW.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'project_id', NEW.project_id,
            'data', jsonb_build_object(
                'event_id', NEW.id,
                'resource_id', NEW.resource_id,
                'resource_kind', NEW.resource_kind,
                'operation_id', NEW.operation_id,
                'from_status', NEW.from_status,
                'to_status', NEW.to_status,
                'reason', NEW.reason
            )
        )
    );
    RETURN NULL;
END;
$$;

CREATE TRIGGER resource_events_webhooks
    AFTER INSERT ON resource_events
    FOR EACH ROW EXECUTE FUNCTION lariba_resource_event_webhooks();
"""


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(200), server_default=sa.text("''"), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.String(64)), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_webhooks_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index("ix_webhooks_project_created", "webhooks", ["project_id", "created_at", "id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("webhook_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("series", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
        sa.Column("claim_id", sa.UUID(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_webhook_deliveries_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("seq", name=op.f("uq_webhook_deliveries_seq")),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_seq", "webhook_deliveries", ["webhook_id", "seq"]
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("series", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "id"])

    op.execute(_ENQUEUE)
    op.execute(_RESOURCE_EVENT_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER resource_events_webhooks ON resource_events")
    op.execute("DROP FUNCTION lariba_resource_event_webhooks()")
    op.execute("DROP FUNCTION lariba_enqueue_webhook_event(uuid, text, jsonb)")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
